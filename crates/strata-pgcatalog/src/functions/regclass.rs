//! `strata_regclass(text)`: a relation name cast to `regclass` when the
//! name is not a literal (Metabase's
//! `CAST(FORMAT('%I.%I', schema, table) AS REGCLASS)`); `datafusion-pg-catalog`
//! rewrites literal casts only. See `compat::idioms`.

use datafusion::arrow::array::{AsArray, Int32Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature};
use std::sync::Arc;
use strata_catalog::DEFAULT_NAMESPACE;

pub(crate) const REGCLASS: &str = "strata_regclass";

/// The longest relation name looked up; longer text names nothing.
const MAX_NAME: usize = 1024;

/// `[schema.]name` as Postgres reads a relation name: unquoted parts
/// folded to lower case, `"…"` parts as written (`""` a quote).
pub(crate) fn split_name(text: &str) -> Option<Vec<String>> {
    if text.len() > MAX_NAME {
        return None;
    }
    let mut parts = vec![];
    let mut cur = String::new();
    let mut chars = text.trim().chars().peekable();
    let mut quoted_part = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted_part = true;
                loop {
                    match chars.next()? {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            cur.push('"');
                        }
                        '"' => break,
                        other => cur.push(other),
                    }
                }
            }
            '.' => {
                if cur.is_empty() && !quoted_part {
                    return None;
                }
                parts.push(std::mem::take(&mut cur));
                quoted_part = false;
            }
            c => cur.extend(c.to_lowercase()),
        }
    }
    if cur.is_empty() && !quoted_part {
        return None;
    }
    parts.push(cur);
    Some(parts)
}

#[derive(Debug)]
pub(crate) struct Regclass {
    pub(crate) tiers: Arc<strata_tiers::Tiers>,
    pub(crate) signature: Signature,
}

crate::functions::identity_by_arc!(Regclass, tiers);

impl Regclass {
    fn lookup(&self, text: &str) -> Option<i32> {
        let parts = split_name(text)?;
        let (ns, name) = match parts.as_slice() {
            [name] => (DEFAULT_NAMESPACE, name.as_str()),
            [ns, name] => (ns.as_str(), name.as_str()),
            [_db, ns, name] => (ns.as_str(), name.as_str()),
            _ => return None,
        };
        self.tiers
            .catalog
            .table(ns, name)
            .map(|t| crate::table_oid(&t))
    }
}

impl ScalarUDFImpl for Regclass {
    fn name(&self) -> &str {
        REGCLASS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(format!("{REGCLASS} takes a name")));
        };
        let a =
            datafusion::arrow::compute::cast(&arg.to_array(args.number_rows)?, &DataType::Utf8)?;
        let out: Int32Array = a
            .as_string::<i32>()
            .iter()
            .map(|t| t.and_then(|t| self.lookup(t)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::split_name;

    #[test]
    fn names_split_as_postgres_reads_them() {
        assert_eq!(split_name("ns.T"), Some(vec!["ns".into(), "t".into()]));
        assert_eq!(
            split_name("\"My NS\".\"a\"\"b\""),
            Some(vec!["My NS".into(), "a\"b".into()])
        );
        assert_eq!(split_name("orders"), Some(vec!["orders".into()]));
        assert_eq!(split_name("a..b"), None);
        assert_eq!(split_name("\"open"), None);
        assert_eq!(split_name(""), None);
    }
}

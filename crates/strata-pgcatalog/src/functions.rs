//! Postgres functions: those whose answer is the session's (`current_user`,
//! `session_user`, `pg_table_is_visible` by its search_path), registered on
//! each session's own DataFusion context, and `strata_like_escape`. The
//! settings functions (`current_setting`, `set_config`) are the session
//! crate's, which owns the settings.

pub(crate) mod definitions;
pub(crate) mod ident;
pub(crate) mod misc;
pub(crate) mod regclass;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_catalog::DEFAULT_NAMESPACE;

/// A function whose answer does not depend on its arguments: `current_user`
/// and `session_user` (per session), `version()`, and the comment lookups
/// (`obj_description` …), which are NULL since Strata keeps no comments.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Constant {
    name: String,
    value: ScalarValue,
    signature: Signature,
}

impl Constant {
    pub(crate) fn text(name: &str, value: Option<String>, signature: Signature) -> Constant {
        Constant::new(name, ScalarValue::Utf8(value), signature)
    }

    pub(crate) fn new(name: &str, value: ScalarValue, signature: Signature) -> Constant {
        Constant {
            name: name.into(),
            value,
            signature,
        }
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// A UDF holding shared state equals another holding the same state (the
/// same `Arc`s): DataFusion compares and hashes UDFs to tell them apart.
macro_rules! identity_by_arc {
    ($ty:ty, $($field:ident),+) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                $(std::sync::Arc::ptr_eq(&self.$field, &other.$field))&&+
            }
        }

        impl Eq for $ty {}

        impl std::hash::Hash for $ty {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                $((std::sync::Arc::as_ptr(&self.$field) as *const () as usize).hash(state);)+
            }
        }
    };
}
pub(crate) use identity_by_arc;

/// `current_user` is the acting user (the EXECUTE AS target inside one);
/// `session_user` the user that logged in.
pub fn register(ctx: &SessionContext, current_user: &str, session_user: &str) {
    for (name, value) in [
        ("current_user", current_user),
        ("session_user", session_user),
    ] {
        ctx.register_udf(ScalarUDF::from(Constant::text(
            name,
            Some(value.to_string()),
            Signature::nullary(Volatility::Stable),
        )));
    }
}

/// A session's settings, shared with `current_setting` and `set_config`.
pub type Vars = Arc<Mutex<BTreeMap<String, String>>>;

/// Reads a function's text argument `i` (the first row's, for an array).
pub fn text_arg(args: &[ColumnarValue], i: usize) -> DfResult<Option<String>> {
    match args.get(i) {
        Some(ColumnarValue::Scalar(v)) => Ok(match v.cast_to(&DataType::Utf8)? {
            ScalarValue::Utf8(s) => s,
            _ => None,
        }),
        Some(ColumnarValue::Array(a)) if !a.is_empty() => {
            match ScalarValue::try_from_array(a, 0)?.cast_to(&DataType::Utf8)? {
                ScalarValue::Utf8(s) => Ok(s),
                _ => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// `strata_like_escape(pattern, escape)`: a LIKE pattern written with another
/// escape character, rewritten for backslash (what DataFusion's LIKE knows).
/// The parser wraps a non-literal pattern of `LIKE … ESCAPE 'c'` in it; see
/// `strata_sql::like_escape`.
pub(crate) fn like_escape_udf() -> ScalarUDF {
    use datafusion::arrow::array::{AsArray, StringArray};
    let convert = |pattern: Option<&str>, escape: Option<&str>| -> Option<String> {
        let pattern = pattern?;
        let escape = escape?;
        let mut chars = escape.chars();
        let escape = match (chars.next(), chars.next()) {
            (c, None) => c,
            _ => return None,
        };
        Some(strata_sql::like_escape::to_backslash_escapes(
            pattern, escape,
        ))
    };
    datafusion::logical_expr::create_udf(
        strata_sql::like_escape::FUNCTION,
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let escape = text_arg(args, 1)?;
            Ok(match &args[0] {
                ColumnarValue::Scalar(v) => {
                    let p = match v.cast_to(&DataType::Utf8)? {
                        ScalarValue::Utf8(s) => s,
                        _ => None,
                    };
                    ColumnarValue::Scalar(ScalarValue::Utf8(convert(
                        p.as_deref(),
                        escape.as_deref(),
                    )))
                }
                ColumnarValue::Array(a) => {
                    let a = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                    let out: StringArray = a
                        .as_string::<i32>()
                        .iter()
                        .map(|p| convert(p, escape.as_deref()))
                        .collect();
                    ColumnarValue::Array(Arc::new(out))
                }
            })
        }),
    )
}

/// `pg_table_is_visible(oid)` for this session: a Strata table is visible
/// when an unqualified name finds it, i.e. it is in the namespace first in
/// search_path (Django's and psql's table lists filter with it). Other
/// relations (the catalogs) are visible.
#[derive(Debug)]
struct TableVisible {
    vars: Vars,
    tiers: Arc<strata_tiers::Tiers>,
    rel_namespaces: crate::RelationNamespaces,
    signature: Signature,
}

identity_by_arc!(TableVisible, vars, tiers, rel_namespaces);

impl ScalarUDFImpl for TableVisible {
    fn name(&self) -> &str {
        "pg_table_is_visible"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, BooleanArray};
        let n = args.number_rows;
        let Some(arg) = args.args.first() else {
            return Err(datafusion::error::DataFusionError::Plan(
                "pg_table_is_visible takes an oid".into(),
            ));
        };
        let oids = datafusion::arrow::compute::cast(&arg.to_array(n)?, &DataType::Int64)?;
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let current = first_in_search_path(&self.vars.lock());
        // The catalogs' relations as pg_class was last read, then Strata's
        // tables as they are now.
        let mut namespaces: std::collections::HashMap<i64, String> = self
            .rel_namespaces
            .lock()
            .iter()
            .map(|(oid, ns)| (i64::from(*oid), ns.clone()))
            .collect();
        namespaces.extend(
            self.tiers
                .catalog
                .tables()
                .into_iter()
                .map(|t| (i64::from(crate::table_oid(&t)), t.namespace.clone())),
        );
        let out: BooleanArray = (0..n)
            .map(|i| {
                (!oids.is_null(i)).then(|| {
                    namespaces
                        .get(&oids.value(i))
                        .is_none_or(|ns| *ns == current || ns == "pg_catalog")
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

pub fn register_visibility(
    ctx: &SessionContext,
    vars: &Vars,
    tiers: &Arc<strata_tiers::Tiers>,
    rel_namespaces: &crate::RelationNamespaces,
) {
    ctx.register_udf(ScalarUDF::from(TableVisible {
        vars: vars.clone(),
        tiers: tiers.clone(),
        rel_namespaces: rel_namespaces.clone(),
        signature: Signature::any(1, Volatility::Stable),
    }));
}

/// The namespace unqualified names resolve to: the first entry of
/// search_path that names one (`$user` does not), else `public`.
pub fn first_in_search_path(vars: &BTreeMap<String, String>) -> String {
    let path = vars
        .get("search_path")
        .map(String::as_str)
        .unwrap_or(DEFAULT_NAMESPACE);
    path.split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .find(|s| !s.is_empty() && s != "$user")
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

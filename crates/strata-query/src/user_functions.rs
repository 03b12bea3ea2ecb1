//! Functions whose answer is the session's: `current_user` and `session_user`
//! (per-session constants), `current_setting` and `set_config` (the session's
//! settings). They are registered on the session's own DataFusion context.

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
pub(crate) fn register(ctx: &SessionContext, current_user: &str, session_user: &str) {
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
pub(crate) type Vars = Arc<Mutex<BTreeMap<String, String>>>;

/// `current_setting(name [, missing_ok])` and `set_config(name, value,
/// is_local)` over the session's settings (what SHOW and SET see).
#[derive(Debug)]
struct Setting {
    name: &'static str,
    vars: Vars,
    signature: Signature,
}

impl PartialEq for Setting {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.vars, &other.vars)
    }
}

impl Eq for Setting {}

impl std::hash::Hash for Setting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.vars) as usize).hash(state);
    }
}

fn text_arg(args: &[ColumnarValue], i: usize) -> DfResult<Option<String>> {
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

impl ScalarUDFImpl for Setting {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = text_arg(&args.args, 0)?.unwrap_or_default().to_lowercase();
        let value = if self.name == "set_config" {
            let value = text_arg(&args.args, 1)?.unwrap_or_default();
            let mut vars = self.vars.lock();
            crate::settings::check_set_config(&vars, &name)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
            vars.insert(name, value.clone());
            Some(value)
        } else {
            let missing_ok = matches!(
                args.args.get(1),
                Some(ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))))
            );
            match self.vars.lock().get(&name) {
                Some(v) => Some(v.clone()),
                None if missing_ok => None,
                None => {
                    return Err(datafusion::error::DataFusionError::External(Box::new(
                        strata_common::StrataError::UndefinedObject(format!(
                            "unrecognized configuration parameter \"{name}\""
                        )),
                    )));
                }
            }
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)))
    }
}

pub(crate) fn register_settings(ctx: &SessionContext, vars: &Vars) {
    use datafusion::logical_expr::TypeSignature;
    for (name, arities) in [("current_setting", vec![1, 2]), ("set_config", vec![3])] {
        ctx.register_udf(ScalarUDF::from(Setting {
            name,
            vars: vars.clone(),
            signature: Signature::one_of(
                arities.into_iter().map(TypeSignature::Any).collect(),
                Volatility::Volatile,
            ),
        }));
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
    tiers: Arc<crate::tiers::Tiers>,
    rel_namespaces: crate::pg_catalog::RelationNamespaces,
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
        let current = crate::settings::first_in_search_path(&self.vars.lock());
        // The catalogs' relations as pg_class was last read, then Strata's
        // tables as they are now.
        let mut namespaces: std::collections::HashMap<i64, String> = self
            .rel_namespaces
            .lock()
            .iter()
            .map(|(oid, ns)| (i64::from(*oid), ns.clone()))
            .collect();
        namespaces.extend(self.tiers.catalog.tables().into_iter().map(|t| {
            (
                i64::from(crate::pg_catalog::table_oid(&t)),
                t.namespace.clone(),
            )
        }));
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

pub(crate) fn register_visibility(
    ctx: &SessionContext,
    vars: &Vars,
    tiers: &Arc<crate::tiers::Tiers>,
    rel_namespaces: &crate::pg_catalog::RelationNamespaces,
) {
    ctx.register_udf(ScalarUDF::from(TableVisible {
        vars: vars.clone(),
        tiers: tiers.clone(),
        rel_namespaces: rel_namespaces.clone(),
        signature: Signature::any(1, Volatility::Stable),
    }));
}

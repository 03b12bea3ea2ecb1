//! Type-name lookups drivers run on connect: `to_regtype(text)` (psycopg's
//! `TypeInfo.fetch`, which SQLAlchemy calls for `hstore` before anything else)
//! and `pg_type_is_visible(oid)` (SQLAlchemy's column reflection).

use datafusion::arrow::array::{Array, AsArray, Int32Array};
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::ArrowTable;
use std::collections::HashMap;
use std::sync::Arc;

/// SQL spellings of types whose `pg_type.typname` differs.
const ALIASES: [(&str, &str); 18] = [
    ("integer", "int4"),
    ("int", "int4"),
    ("smallint", "int2"),
    ("bigint", "int8"),
    ("real", "float4"),
    ("double precision", "float8"),
    ("float", "float8"),
    ("boolean", "bool"),
    ("character varying", "varchar"),
    ("character", "bpchar"),
    ("char", "bpchar"),
    ("decimal", "numeric"),
    ("timestamp without time zone", "timestamp"),
    ("timestamp with time zone", "timestamptz"),
    ("time without time zone", "time"),
    ("time with time zone", "timetz"),
    ("bit varying", "varbit"),
    ("\"char\"", "char"),
];

/// The longest type name looked up; longer text is no type.
const MAX_NAME: usize = 256;

/// `to_regtype(name)`: the OID of the named type, NULL when there is none.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ToRegtype {
    /// typname → oid, sorted so the struct can derive Hash/Eq.
    oids: Vec<(String, i32)>,
    signature: Signature,
}

impl ToRegtype {
    pub(crate) fn new(pg_type: &ArrowTable) -> DfResult<ToRegtype> {
        let mut oids = HashMap::new();
        for batch in pg_type.data() {
            let schema = batch.schema();
            let column = |name: &str| {
                schema
                    .index_of(name)
                    .map(|i| batch.column(i).clone())
                    .map_err(|e| DataFusionError::Internal(format!("pg_type.{name}: {e}")))
            };
            let names = column("typname")?;
            let oid = column("oid")?;
            let names = names.as_string_opt::<i32>();
            let oid = oid.as_primitive_opt::<Int32Type>();
            let (Some(names), Some(oid)) = (names, oid) else {
                return Err(DataFusionError::Internal(
                    "pg_type has unexpected column types".into(),
                ));
            };
            for i in 0..batch.num_rows() {
                if !names.is_null(i) && !oid.is_null(i) {
                    oids.insert(names.value(i).to_string(), oid.value(i));
                }
            }
        }
        let mut oids: Vec<(String, i32)> = oids.into_iter().collect();
        oids.sort();
        Ok(ToRegtype {
            oids,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Stable),
        })
    }

    fn oid_of(&self, typname: &str) -> Option<i32> {
        self.oids
            .binary_search_by(|(n, _)| n.as_str().cmp(typname))
            .ok()
            .map(|i| self.oids[i].1)
    }

    /// Postgres' reading of a type name: case folded unless quoted, an
    /// optional `pg_catalog.` schema, a type modifier ignored, `[]` for the
    /// array type.
    fn lookup(&self, text: &str) -> Option<i32> {
        if text.len() > MAX_NAME {
            return None;
        }
        let mut name = text.trim().to_string();
        let quoted = name.starts_with('"') && name.ends_with('"') && name.len() >= 2;
        name = if quoted {
            name[1..name.len() - 1].to_string()
        } else {
            name.to_lowercase()
        };
        if let Some(rest) = name.strip_prefix("pg_catalog.") {
            name = rest.to_string();
        }
        let array = name.ends_with("[]");
        if array {
            name.truncate(name.len() - 2);
        }
        if let Some(open) = name.find('(') {
            name.truncate(open);
        }
        let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
        let base = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name.as_str(), |(_, typname)| typname);
        if array {
            self.oid_of(&format!("_{base}"))
        } else {
            self.oid_of(base)
        }
    }
}

impl ScalarUDFImpl for ToRegtype {
    fn name(&self) -> &str {
        "to_regtype"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(
                "to_regtype takes one argument".into(),
            ));
        };
        Ok(match arg {
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => ColumnarValue::Scalar(
                ScalarValue::Int32(v.as_deref().and_then(|t| self.lookup(t))),
            ),
            ColumnarValue::Scalar(_) => ColumnarValue::Scalar(ScalarValue::Int32(None)),
            ColumnarValue::Array(a) => {
                let Some(names) = a.as_string_opt::<i32>() else {
                    return Err(DataFusionError::Plan("to_regtype takes text".into()));
                };
                let out: Int32Array = names
                    .iter()
                    .map(|n| n.and_then(|t| self.lookup(t)))
                    .collect();
                ColumnarValue::Array(Arc::new(out))
            }
        })
    }
}

/// `pg_type_is_visible(oid)`: every type lives in `pg_catalog`, which is
/// always on the search path.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct TypeIsVisible {
    signature: Signature,
}

impl TypeIsVisible {
    pub(crate) fn new() -> TypeIsVisible {
        TypeIsVisible {
            signature: Signature::any(1, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for TypeIsVisible {
    fn name(&self) -> &str {
        "pg_type_is_visible"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Ok(match args.args.first() {
            Some(ColumnarValue::Array(a)) => ColumnarValue::Array(Arc::new(
                (0..a.len())
                    .map(|i| (!a.is_null(i)).then_some(true))
                    .collect::<datafusion::arrow::array::BooleanArray>(),
            )),
            Some(ColumnarValue::Scalar(s)) if s.is_null() => {
                ColumnarValue::Scalar(ScalarValue::Boolean(None))
            }
            _ => ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))),
        })
    }
}

/// `strata_column_default(table oid, attnum)`: the DEFAULT text of a Strata
/// table's column, NULL when it has none (what `pg_get_expr` of its
/// `pg_attrdef` row gives; see `compat/scalar_subqueries.rs`).
#[derive(Debug)]
pub(crate) struct ColumnDefault {
    pub(crate) tiers: Arc<strata_tiers::Tiers>,
    pub(crate) signature: Signature,
}

crate::functions::identity_by_arc!(ColumnDefault, tiers);

impl ScalarUDFImpl for ColumnDefault {
    fn name(&self) -> &str {
        "strata_column_default"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let [relid, attnum] = args.args.as_slice() else {
            return Err(DataFusionError::Plan(
                "strata_column_default takes (table oid, attnum)".into(),
            ));
        };
        let relid = relid.to_array(n)?;
        let relid = datafusion::arrow::compute::cast(&relid, &DataType::Int64)?;
        let relid = relid.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let attnum = attnum.to_array(n)?;
        let attnum = datafusion::arrow::compute::cast(&attnum, &DataType::Int64)?;
        let attnum = attnum.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let tables: HashMap<i64, Arc<strata_catalog::TableDef>> = self
            .tiers
            .catalog
            .tables()
            .into_iter()
            .map(|t| (i64::from(super::table_oid(&t)), t))
            .collect();
        let out: datafusion::arrow::array::StringArray = (0..n)
            .map(|i| {
                if relid.is_null(i) || attnum.is_null(i) {
                    return None;
                }
                let table = tables.get(&relid.value(i))?;
                let index = usize::try_from(attnum.value(i)).ok()?.checked_sub(1)?;
                let column = table.columns.get(index)?;
                let default = column.default.as_deref()?;
                Some(crate::functions::definitions::default_expr(
                    default, &column.ty,
                ))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

//! The `pg_get_*def` family and `pg_get_expr`: the SQL text Postgres prints
//! for a column DEFAULT, a constraint, an index column (pg_dump, DBeaver,
//! Metabase, pgjdbc's getColumns). Strata's only constraints and indexes are
//! one-column primary keys; it has no rules, triggers or partitions, so those
//! definitions are NULL.

use super::ident::{quote_ident, quote_literal};
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{ColumnType, TableDef};
use strata_sql::sqlparser::ast::{self, Expr, UnaryOperator, Value};
use strata_sql::sqlparser::dialect::PostgreSqlDialect;
use strata_sql::sqlparser::parser::Parser;

/// The name Postgres' deparser gives a type in a cast (`format_type`).
fn cast_type_name(ty: &ColumnType) -> String {
    use ColumnType as T;
    match ty {
        T::Boolean => "boolean".into(),
        T::SmallInt => "smallint".into(),
        T::Int => "integer".into(),
        T::BigInt => "bigint".into(),
        T::Real => "real".into(),
        T::Double => "double precision".into(),
        T::Numeric { .. } => "numeric".into(),
        T::Text => "text".into(),
        T::Varchar(_) => "character varying".into(),
        T::Bytea => "bytea".into(),
        T::Date => "date".into(),
        T::Time => "time without time zone".into(),
        T::Timestamp => "timestamp without time zone".into(),
        T::TimestampTz => "timestamp with time zone".into(),
        T::Uuid => "uuid".into(),
        T::Json => "json".into(),
        T::Jsonb => "jsonb".into(),
        T::Array(inner) => format!("{}[]", cast_type_name(inner)),
    }
}

/// A column DEFAULT (Strata keeps its SQL text) as Postgres' `pg_get_expr`
/// prints it for a column of type `ty`: a string literal carries the
/// column's type (`'new'::text`), a positive number is bare (`1`), a
/// negative one a typed string (`'-1'::integer`), a top-level operator
/// expression parenthesized (`(2 + 3)`), calls as written (`now()`).
pub(crate) fn default_expr(default: &str, ty: &ColumnType) -> String {
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(default)
        .and_then(|mut p| p.parse_expr());
    let Ok(expr) = parsed else {
        return default.to_string();
    };
    match &expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s)
            | Value::EscapedStringLiteral(s)
            | Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                format!("{}::{}", quote_literal(s), cast_type_name(ty))
            }
            _ => expr.to_string(),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: inner,
        } => match inner.as_ref() {
            Expr::Value(v) if matches!(v.value, Value::Number(..)) => {
                let text = format!("-{}", v.value);
                let ty = if text.parse::<i32>().is_ok() {
                    "integer"
                } else if text.parse::<i64>().is_ok() {
                    "bigint"
                } else {
                    "numeric"
                };
                format!("'{text}'::{ty}")
            }
            _ => expr.to_string(),
        },
        Expr::BinaryOp { .. } => format!("({expr})"),
        _ => expr.to_string(),
    }
}

fn utf8_rows(arg: &ColumnarValue, n: usize) -> DfResult<StringArray> {
    let a = datafusion::arrow::compute::cast(&arg.to_array(n)?, &DataType::Utf8)?;
    Ok(a.as_string::<i32>().clone())
}

fn int64_rows(
    arg: &ColumnarValue,
    n: usize,
) -> DfResult<datafusion::arrow::array::PrimitiveArray<Int64Type>> {
    let a = datafusion::arrow::compute::cast(&arg.to_array(n)?, &DataType::Int64)?;
    Ok(a.as_primitive::<Int64Type>().clone())
}

/// `pg_get_expr(node text, relation oid [, pretty bool])`: the expression's
/// text. Strata's expression columns (`pg_attrdef.adbin`) already hold it as
/// Postgres prints it; NULL (no partition bound, no index predicate) is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PgGetExpr {
    signature: Signature,
}

impl PgGetExpr {
    pub(crate) fn new() -> PgGetExpr {
        PgGetExpr {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Stable,
            ),
        }
    }
}

impl ScalarUDFImpl for PgGetExpr {
    fn name(&self) -> &str {
        "pg_get_expr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(node) = args.args.first() else {
            return Err(DataFusionError::Plan(
                "pg_get_expr takes (text, oid [, bool])".into(),
            ));
        };
        // An empty node (pg_class.relpartbound of a table that is no
        // partition) is NULL, as Postgres stores it.
        let rows = utf8_rows(node, args.number_rows)?;
        let rows: datafusion::arrow::array::StringArray =
            rows.iter().map(|v| v.filter(|s| !s.is_empty())).collect();
        Ok(ColumnarValue::Array(Arc::new(rows)))
    }
}

/// Finds the Strata table whose derived OID (table OID plus `offset`) is
/// `oid`.
pub(crate) fn table_by_derived_oid(
    tiers: &strata_tiers::Tiers,
    offset: i32,
) -> HashMap<i64, Arc<TableDef>> {
    tiers
        .catalog
        .tables()
        .into_iter()
        .map(|t| (i64::from(crate::table_oid(&t)) + i64::from(offset), t))
        .collect()
}

/// The definitions of the constraints in the shipped `pg_constraint` rows:
/// the CHECKs of information_schema's domains (SQLAlchemy reflects domains
/// and reads every domain constraint's definition).
fn builtin_constraint(oid: i64) -> Option<&'static str> {
    match oid {
        13298 => Some("CHECK (VALUE >= 0)"),
        13311 => Some(
            "CHECK (VALUE::text = ANY (ARRAY['YES'::character varying, 'NO'::character varying]::text[]))",
        ),
        _ => None,
    }
}

/// The primary-key column of a table, quoted as SQL needs.
pub(crate) fn pk_column(t: &TableDef) -> Option<String> {
    t.columns.get(t.pk_index()).map(|c| quote_ident(&c.name))
}

/// `pg_get_constraintdef(oid [, pretty])`: `PRIMARY KEY (id)` for a Strata
/// primary key's constraint OID; NULL for any other OID.
#[derive(Debug)]
pub(crate) struct ConstraintDef {
    pub(crate) tiers: Arc<strata_tiers::Tiers>,
    pub(crate) offset: i32,
    pub(crate) signature: Signature,
}

crate::functions::identity_by_arc!(ConstraintDef, tiers);

impl ScalarUDFImpl for ConstraintDef {
    fn name(&self) -> &str {
        "pg_get_constraintdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Err(DataFusionError::Plan(
                "pg_get_constraintdef takes an oid".into(),
            ));
        };
        let oids = int64_rows(arg, args.number_rows)?;
        let tables = table_by_derived_oid(&self.tiers, self.offset);
        let out: StringArray = (0..oids.len())
            .map(|i| {
                if oids.is_null(i) {
                    return None;
                }
                match tables.get(&oids.value(i)) {
                    Some(t) => Some(format!("PRIMARY KEY ({})", pk_column(t)?)),
                    None => builtin_constraint(oids.value(i)).map(str::to_string),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_print_as_postgres_does() {
        assert_eq!(default_expr("'new'", &ColumnType::Text), "'new'::text");
        assert_eq!(
            default_expr("'x'", &ColumnType::Varchar(Some(5))),
            "'x'::character varying"
        );
        assert_eq!(default_expr("'it''s'", &ColumnType::Text), "'it''s'::text");
        assert_eq!(default_expr("1", &ColumnType::SmallInt), "1");
        assert_eq!(default_expr("1.5", &ColumnType::Double), "1.5");
        assert_eq!(default_expr("-1", &ColumnType::Int), "'-1'::integer");
        assert_eq!(
            default_expr("-5000000000", &ColumnType::BigInt),
            "'-5000000000'::bigint"
        );
        assert_eq!(default_expr("-2.5", &ColumnType::Double), "'-2.5'::numeric");
        assert_eq!(default_expr("true", &ColumnType::Boolean), "true");
        assert_eq!(default_expr("now()", &ColumnType::TimestampTz), "now()");
        assert_eq!(default_expr("2 + 3", &ColumnType::Int), "(2 + 3)");
        assert_eq!(
            default_expr("CURRENT_DATE", &ColumnType::Date),
            "CURRENT_DATE"
        );
        assert_eq!(
            default_expr("'{a}'", &ColumnType::Array(Box::new(ColumnType::Text))),
            "'{a}'::text[]"
        );
    }
}

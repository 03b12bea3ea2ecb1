//! Column types: the SQL names Strata accepts, their Arrow representation and the
//! name Postgres tools see.

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_sql::sqlparser::ast::{self, ArrayElemTypeDef, ExactNumberInfo, TimezoneInfo};

/// Precision and scale of a NUMERIC declared without them.
const DEFAULT_NUMERIC: (u8, i8) = (38, 10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Real,
    Double,
    Numeric { precision: u8, scale: i8 },
    Text,
    Varchar(Option<u64>),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Jsonb,
    Array(Box<ColumnType>),
}

/// The UTC zone name Arrow carries on TIMESTAMPTZ values.
pub const UTC: &str = "+00:00";

impl ColumnType {
    pub fn from_sql(dt: &ast::DataType) -> Result<ColumnType> {
        use ast::DataType as D;
        Ok(match dt {
            D::Bool | D::Boolean => ColumnType::Boolean,
            D::SmallInt(_) | D::Int2(_) => ColumnType::SmallInt,
            D::Int(_) | D::Integer(_) | D::Int4(_) => ColumnType::Int,
            D::BigInt(_) | D::Int8(_) => ColumnType::BigInt,
            D::Real | D::Float4 => ColumnType::Real,
            D::DoublePrecision | D::Float8 | D::Double(_) => ColumnType::Double,
            D::Float(ExactNumberInfo::Precision(p)) if *p <= 24 => ColumnType::Real,
            D::Float(_) => ColumnType::Double,
            D::Numeric(info) | D::Decimal(info) | D::Dec(info) => {
                let (precision, scale) = match info {
                    ExactNumberInfo::None => DEFAULT_NUMERIC,
                    ExactNumberInfo::Precision(p) => (*p as u8, 0),
                    ExactNumberInfo::PrecisionAndScale(p, s) => (*p as u8, *s as i8),
                };
                if precision == 0 || precision > 38 || scale < 0 || scale as u8 > precision {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "NUMERIC precision {precision} and scale {scale} out of range (precision 1..=38, 0 <= scale <= precision)"
                    )));
                }
                ColumnType::Numeric { precision, scale }
            }
            D::Text | D::String(_) => ColumnType::Text,
            D::Varchar(len)
            | D::CharacterVarying(len)
            | D::CharVarying(len)
            | D::Char(len)
            | D::Character(len) => ColumnType::Varchar(len.as_ref().and_then(|l| match l {
                ast::CharacterLength::IntegerLength { length, .. } => Some(*length),
                ast::CharacterLength::Max => None,
            })),
            D::Bytea => ColumnType::Bytea,
            D::Date => ColumnType::Date,
            D::Time(_, _) => ColumnType::Time,
            D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => {
                ColumnType::TimestampTz
            }
            D::Timestamp(_, _) => ColumnType::Timestamp,
            D::Uuid => ColumnType::Uuid,
            D::JSON => ColumnType::Json,
            D::JSONB => ColumnType::Jsonb,
            D::Array(
                ArrayElemTypeDef::SquareBracket(inner, _) | ArrayElemTypeDef::AngleBracket(inner),
            ) => {
                let inner = ColumnType::from_sql(inner)?;
                if matches!(inner, ColumnType::Array(_)) {
                    return Err(StrataError::unsupported("nested arrays are not supported"));
                }
                ColumnType::Array(Box::new(inner))
            }
            D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("timestamptz") => {
                ColumnType::TimestampTz
            }
            other => {
                return Err(StrataError::unsupported(format!(
                    "type {other} is not supported"
                )));
            }
        })
    }

    pub fn arrow_type(&self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::SmallInt => DataType::Int16,
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Real => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Numeric { precision, scale } => DataType::Decimal128(*precision, *scale),
            ColumnType::Text
            | ColumnType::Varchar(_)
            | ColumnType::Uuid
            | ColumnType::Json
            | ColumnType::Jsonb => DataType::Utf8,
            ColumnType::Bytea => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(UTC)))
            }
            ColumnType::Array(inner) => {
                DataType::List(Arc::new(Field::new_list_field(inner.arrow_type(), true)))
            }
        }
    }

    /// The name `system.columns` and tools show.
    pub fn sql_name(&self) -> String {
        match self {
            ColumnType::Boolean => "BOOLEAN".into(),
            ColumnType::SmallInt => "SMALLINT".into(),
            ColumnType::Int => "INT".into(),
            ColumnType::BigInt => "BIGINT".into(),
            ColumnType::Real => "REAL".into(),
            ColumnType::Double => "DOUBLE PRECISION".into(),
            ColumnType::Numeric { precision, scale } => format!("NUMERIC({precision},{scale})"),
            ColumnType::Text => "TEXT".into(),
            ColumnType::Varchar(Some(n)) => format!("VARCHAR({n})"),
            ColumnType::Varchar(None) => "VARCHAR".into(),
            ColumnType::Bytea => "BYTEA".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Time => "TIME".into(),
            ColumnType::Timestamp => "TIMESTAMP".into(),
            ColumnType::TimestampTz => "TIMESTAMPTZ".into(),
            ColumnType::Uuid => "UUID".into(),
            ColumnType::Json => "JSON".into(),
            ColumnType::Jsonb => "JSONB".into(),
            ColumnType::Array(inner) => format!("{}[]", inner.sql_name()),
        }
    }

    /// For types stored as Arrow text but shown to clients as themselves.
    pub fn wire_type_name(&self) -> Option<&'static str> {
        match self {
            ColumnType::Uuid => Some("uuid"),
            ColumnType::Json => Some("json"),
            ColumnType::Jsonb => Some("jsonb"),
            ColumnType::Varchar(_) => Some("varchar"),
            _ => None,
        }
    }

    /// The Postgres type OID tools see in `pg_attribute.atttypid`.
    pub fn pg_type_oid(&self) -> u32 {
        match self {
            ColumnType::Boolean => 16,
            ColumnType::SmallInt => 21,
            ColumnType::Int => 23,
            ColumnType::BigInt => 20,
            ColumnType::Real => 700,
            ColumnType::Double => 701,
            ColumnType::Numeric { .. } => 1700,
            ColumnType::Text => 25,
            ColumnType::Varchar(_) => 1043,
            ColumnType::Bytea => 17,
            ColumnType::Date => 1082,
            ColumnType::Time => 1083,
            ColumnType::Timestamp => 1114,
            ColumnType::TimestampTz => 1184,
            ColumnType::Uuid => 2950,
            ColumnType::Json => 114,
            ColumnType::Jsonb => 3802,
            ColumnType::Array(inner) => match inner.as_ref() {
                ColumnType::Boolean => 1000,
                ColumnType::SmallInt => 1005,
                ColumnType::Int => 1007,
                ColumnType::BigInt => 1016,
                ColumnType::Real => 1021,
                ColumnType::Double => 1022,
                ColumnType::Numeric { .. } => 1231,
                ColumnType::Text => 1009,
                ColumnType::Varchar(_) => 1015,
                ColumnType::Bytea => 1001,
                ColumnType::Date => 1182,
                ColumnType::Time => 1183,
                ColumnType::Timestamp => 1115,
                ColumnType::TimestampTz => 1185,
                ColumnType::Uuid => 2951,
                ColumnType::Json => 199,
                ColumnType::Jsonb => 3807,
                // Nested arrays are rejected at CREATE TABLE.
                ColumnType::Array(_) => 1009,
            },
        }
    }

    /// `pg_attribute.atttypmod`: the declared length or precision in
    /// Postgres' encoding (offset by the 4-byte varlena header), else -1.
    pub fn pg_typmod(&self) -> i32 {
        match self {
            ColumnType::Varchar(Some(n)) => i32::try_from(*n).map_or(-1, |n| n.saturating_add(4)),
            ColumnType::Numeric { precision, scale } => {
                ((i32::from(*precision) << 16) | (i32::from(*scale) & 0xffff)) + 4
            }
            ColumnType::Array(inner) => inner.pg_typmod(),
            _ => -1,
        }
    }

    /// Types whose values can be ordered and hashed as a primary key.
    pub fn can_be_primary_key(&self) -> bool {
        !matches!(
            self,
            ColumnType::Array(_)
                | ColumnType::Json
                | ColumnType::Jsonb
                | ColumnType::Real
                | ColumnType::Double
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_sql::sqlparser::{dialect::PostgreSqlDialect, parser::Parser};

    fn ty(sql: &str) -> Result<ColumnType> {
        let dt = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_data_type()
            .unwrap();
        ColumnType::from_sql(&dt)
    }

    #[test]
    fn maps_postgres_names() {
        assert_eq!(ty("int8").unwrap(), ColumnType::BigInt);
        assert_eq!(ty("double precision").unwrap(), ColumnType::Double);
        assert_eq!(
            ty("numeric(10,2)").unwrap(),
            ColumnType::Numeric {
                precision: 10,
                scale: 2
            }
        );
        assert_eq!(
            ty("timestamp with time zone").unwrap(),
            ColumnType::TimestampTz
        );
        assert_eq!(
            ty("text[]").unwrap(),
            ColumnType::Array(Box::new(ColumnType::Text))
        );
        assert!(ty("numeric(50,2)").is_err());
    }

    #[test]
    fn postgres_oids_and_typmods() {
        assert_eq!(ty("varchar(20)").unwrap().pg_type_oid(), 1043);
        assert_eq!(ty("varchar(20)").unwrap().pg_typmod(), 24);
        assert_eq!(ty("numeric(10,2)").unwrap().pg_typmod(), (10 << 16 | 2) + 4);
        assert_eq!(ty("bigint[]").unwrap().pg_type_oid(), 1016);
        assert_eq!(ty("jsonb").unwrap().pg_type_oid(), 3802);
        assert_eq!(ty("text").unwrap().pg_typmod(), -1);
    }
}

//! Bound parameters as DataFusion values. Text-format values stay strings and are
//! cast to the column or inferred type by the engine (so Postgres' text forms of
//! dates, numbers and booleans all work); binary values are decoded by the type
//! the client declared, or else the type the server described.

use arrow::datatypes::DataType;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Portal;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use postgres_types::FromSql;
use std::sync::Arc;
use strata_catalog::ColumnType;
use strata_common::{Result, StrataError};
use strata_session::Prepared;

use crate::encode::pg_type;
use crate::errors::to_pg;

fn bad_param(idx: usize, msg: impl std::fmt::Display) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "22P02".into(),
        format!("invalid value for parameter ${}: {msg}", idx + 1),
    )))
}

fn decode<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> Result<T> {
    T::from_sql(ty, raw).map_err(|e| invalid(ty, e))
}

fn invalid(ty: &Type, msg: impl std::fmt::Display) -> StrataError {
    StrataError::InvalidText(format!("invalid binary value of type {}: {msg}", ty.name()))
}

/// The type a parameter is decoded as: the client's declared one first.
pub fn param_type(portal: &Portal<Arc<Prepared>>, idx: usize) -> Type {
    if let Some(Some(t)) = portal.statement.parameter_types.get(idx) {
        return t.clone();
    }
    described_type(&portal.statement.statement, idx)
}

/// The type the server describes parameter `idx` with (ParameterDescription).
pub fn described_type(p: &Prepared, idx: usize) -> Type {
    if let Some(Some(ty)) = p.param_sql_types.get(idx) {
        return column_type(ty);
    }
    match p.param_types.get(idx) {
        Some(Some(dt)) => arrow_param_type(dt),
        _ => Type::TEXT,
    }
}

/// An array of an `oid` column's values is `oid[]`, which Arrow holds as a
/// list of int4 whose item keeps the column's oid marker.
fn arrow_param_type(dt: &DataType) -> Type {
    match dt {
        DataType::List(item) if item.metadata().contains_key(OID_ALIAS_KEY) => Type::OID_ARRAY,
        _ => pg_type(dt),
    }
}

/// Field metadata datafusion-pg-catalog puts on its oid columns.
const OID_ALIAS_KEY: &str = "pg.oid_alias";

/// The wire type of a column type (some are text in Arrow but not on the wire).
pub(crate) fn column_type(ty: &ColumnType) -> Type {
    match ty {
        ColumnType::Uuid => Type::UUID,
        ColumnType::Json => Type::JSON,
        ColumnType::Jsonb => Type::JSONB,
        ColumnType::Varchar(_) => Type::VARCHAR,
        other => pg_type(&other.arrow_type()),
    }
}

pub fn decode_params(portal: &Portal<Arc<Prepared>>) -> PgWireResult<Vec<ScalarValue>> {
    (0..portal.parameters.len())
        .map(|idx| {
            let ty = param_type(portal, idx);
            match &portal.parameters[idx] {
                None => Ok(typed_null(&ty)),
                Some(raw) if portal.parameter_format.is_binary(idx) => decode_binary(&ty, raw, idx),
                Some(raw) => {
                    let text =
                        std::str::from_utf8(raw).map_err(|_| bad_param(idx, "not valid UTF-8"))?;
                    text_param(&portal.statement.statement, &ty, idx, text)
                }
            }
        })
        .collect()
}

/// A text-format parameter: a string the engine casts to the parameter's type,
/// except an array in Postgres' text form (`{1,2,NULL}`), which Arrow's casts do
/// not read; it becomes a list of the element type the statement expects, or
/// else of the array type the client declared.
fn text_param(p: &Prepared, ty: &Type, idx: usize, text: &str) -> PgWireResult<ScalarValue> {
    let item = match p.param_types.get(idx) {
        Some(Some(DataType::List(item))) => Some(item.data_type().clone()),
        _ => declared_item_type(ty),
    };
    match item {
        Some(item) => strata_sql::pgtext::parse_text_array(text, &item).map_err(|e| {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "ERROR".into(),
                e.sqlstate().into(),
                format!("{e} (parameter ${})", idx + 1),
            )))
        }),
        None => Ok(ScalarValue::Utf8(Some(text.to_string()))),
    }
}

/// The Arrow element type of an array type a client declared.
fn declared_item_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::BOOL_ARRAY => DataType::Boolean,
        Type::INT2_ARRAY => DataType::Int16,
        Type::INT4_ARRAY | Type::OID_ARRAY => DataType::Int32,
        Type::INT8_ARRAY => DataType::Int64,
        Type::FLOAT4_ARRAY => DataType::Float32,
        Type::FLOAT8_ARRAY => DataType::Float64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => DataType::Utf8,
        _ => return None,
    })
}

fn typed_null(ty: &Type) -> ScalarValue {
    match *ty {
        Type::INT2 => ScalarValue::Int16(None),
        Type::INT4 => ScalarValue::Int32(None),
        Type::INT8 => ScalarValue::Int64(None),
        Type::FLOAT4 => ScalarValue::Float32(None),
        Type::FLOAT8 => ScalarValue::Float64(None),
        Type::BOOL => ScalarValue::Boolean(None),
        _ => ScalarValue::Null,
    }
}

fn micros(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

fn decode_binary(ty: &Type, raw: &Bytes, idx: usize) -> PgWireResult<ScalarValue> {
    binary_value(ty, raw).map_err(|e| match e {
        StrataError::InvalidText(msg) => bad_param(idx, msg),
        other => to_pg(other),
    })
}

/// A value in its type's binary wire format (a parameter, or a field of
/// binary COPY).
pub(crate) fn binary_value(ty: &Type, raw: &[u8]) -> Result<ScalarValue> {
    Ok(match *ty {
        Type::BOOL => ScalarValue::Boolean(Some(decode(ty, raw)?)),
        Type::INT2 => ScalarValue::Int16(Some(decode(ty, raw)?)),
        Type::INT4 => ScalarValue::Int32(Some(decode(ty, raw)?)),
        Type::INT8 => ScalarValue::Int64(Some(decode(ty, raw)?)),
        Type::FLOAT4 => ScalarValue::Float32(Some(decode(ty, raw)?)),
        Type::FLOAT8 => ScalarValue::Float64(Some(decode(ty, raw)?)),
        // Oids are int4 in pg_catalog; those above 2^31 wrap as Postgres' own
        // int4 casts of them do.
        Type::OID => ScalarValue::Int32(Some(decode::<u32>(ty, raw)? as i32)),
        Type::NUMERIC => {
            let d: rust_decimal::Decimal = decode(ty, raw)?;
            ScalarValue::Utf8(Some(d.to_string()))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            ScalarValue::Utf8(Some(decode::<String>(ty, raw)?))
        }
        // Binary JSON is the document's text (after a version byte for JSONB);
        // keep it as written rather than re-serialising it.
        Type::JSON | Type::JSONB => {
            let body = if *ty == Type::JSONB {
                match raw.split_first() {
                    Some((1, rest)) => rest,
                    _ => return Err(invalid(ty, "unsupported jsonb version")),
                }
            } else {
                raw
            };
            let text = std::str::from_utf8(body).map_err(|_| invalid(ty, "json is not UTF-8"))?;
            ScalarValue::Utf8(Some(text.to_string()))
        }
        Type::BYTEA => ScalarValue::Binary(Some(decode::<Vec<u8>>(ty, raw)?)),
        Type::DATE => {
            let d: NaiveDate = decode(ty, raw)?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or_else(|| invalid(ty, "date"))?;
            ScalarValue::Date32(Some((d - epoch).num_days() as i32))
        }
        Type::TIME => {
            let t: NaiveTime = decode(ty, raw)?;
            let us =
                t.num_seconds_from_midnight() as i64 * 1_000_000 + (t.nanosecond() / 1000) as i64;
            ScalarValue::Time64Microsecond(Some(us))
        }
        Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(Some(micros(decode(ty, raw)?)), None),
        Type::TIMESTAMPTZ => {
            let t: DateTime<Utc> = decode(ty, raw)?;
            ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some(Arc::from("+00:00")))
        }
        Type::UUID => {
            if raw.len() != 16 {
                return Err(invalid(ty, "a binary uuid has 16 bytes"));
            }
            let h: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            ScalarValue::Utf8(Some(strata_sql::pgtext::hyphenated_uuid(&h)))
        }
        Type::BOOL_ARRAY => list::<bool>(ty, raw, DataType::Boolean, ScalarValue::Boolean)?,
        Type::INT2_ARRAY => list::<i16>(ty, raw, DataType::Int16, ScalarValue::Int16)?,
        Type::INT4_ARRAY => list::<i32>(ty, raw, DataType::Int32, ScalarValue::Int32)?,
        Type::OID_ARRAY => list::<u32>(ty, raw, DataType::Int32, |v| {
            ScalarValue::Int32(v.map(|v| v as i32))
        })?,
        Type::INT8_ARRAY => list::<i64>(ty, raw, DataType::Int64, ScalarValue::Int64)?,
        Type::FLOAT4_ARRAY => list::<f32>(ty, raw, DataType::Float32, ScalarValue::Float32)?,
        Type::FLOAT8_ARRAY => list::<f64>(ty, raw, DataType::Float64, ScalarValue::Float64)?,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => {
            list::<String>(ty, raw, DataType::Utf8, ScalarValue::Utf8)?
        }
        _ => {
            return Err(StrataError::unsupported(format!(
                "binary values of type {} are not supported; send it as text",
                ty.name()
            )));
        }
    })
}

/// The element type of the array types `binary_value` reads.
fn element_type(array: &Type) -> Type {
    match *array {
        Type::BOOL_ARRAY => Type::BOOL,
        Type::INT2_ARRAY => Type::INT2,
        Type::INT4_ARRAY => Type::INT4,
        Type::OID_ARRAY => Type::OID,
        Type::INT8_ARRAY => Type::INT8,
        Type::FLOAT4_ARRAY => Type::FLOAT4,
        Type::FLOAT8_ARRAY => Type::FLOAT8,
        Type::VARCHAR_ARRAY => Type::VARCHAR,
        _ => Type::TEXT,
    }
}

/// A binary one-dimensional array as an Arrow list value.
fn list<'a, T: FromSql<'a>>(
    ty: &Type,
    raw: &'a [u8],
    item_type: DataType,
    make: impl Fn(Option<T>) -> ScalarValue,
) -> Result<ScalarValue> {
    let elem = element_type(ty);
    let values = crate::binary_array::elements(raw)?
        .into_iter()
        .map(|e| match e {
            None => Ok(make(None)),
            Some(bytes) => decode::<T>(&elem, bytes).map(|v| make(Some(v))),
        })
        .collect::<Result<Vec<ScalarValue>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values, &item_type, true,
    )))
}

//! Results as protocol responses: Arrow batches become DataRows through arrow-pg,
//! streamed batch by batch.

use arrow::array::timezone::Tz;
use arrow::array::{Array, AsArray, Decimal128Array, RecordBatch, StringArray};
use arrow::datatypes::{
    ArrowTemporalType, ArrowTimestampType, DataType, Field, Schema, Time32MillisecondType,
    Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use arrow_pg::encoder::{Encoder, encode_value};
use bytes::{BufMut, BytesMut};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use futures::StreamExt;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldFormat};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};
use std::sync::Arc;
use strata_catalog::{SOURCE_COLUMN_KEY, SOURCE_TABLE_KEY, WIRE_TYPE_KEY};
use strata_common::StrataError;
use strata_session::QueryOutput;

use crate::errors::to_pg;
use crate::float_text::PgFloat;
use crate::vectors::PgVector;

/// Column descriptions; UUID, JSON and VARCHAR columns (text in Arrow) keep their
/// own type, and a table's column names its table and column number.
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for (i, f) in schema.fields().iter().enumerate() {
        let source = |key: &str| f.metadata().get(key).and_then(|v| v.parse::<i32>().ok());
        let table = source(SOURCE_TABLE_KEY);
        let column = source(SOURCE_COLUMN_KEY).and_then(|c| i16::try_from(c).ok());
        let ty = wire_type(f);
        // `SELECT x.oid, x.*` plans with the first column renamed (DataFusion
        // wants unique names); Postgres names both `oid`.
        let renamed = f.name().strip_prefix(strata_session::ALIAS_PREFIX);
        if ty.is_some() || table.is_some() || renamed.is_some() {
            let old = &fields[i];
            let ty = ty.unwrap_or_else(|| old.datatype().clone());
            let name = renamed.unwrap_or(old.name()).to_string();
            fields[i] = FieldInfo::new(name, table, column, ty, old.format());
        }
    }
    Ok(fields)
}

fn wire_type(f: &Field) -> Option<Type> {
    match f.metadata().get(WIRE_TYPE_KEY).map(String::as_str) {
        Some("uuid") => Some(Type::UUID),
        Some("json") => Some(Type::JSON),
        Some("jsonb") => Some(Type::JSONB),
        Some("varchar") => Some(Type::VARCHAR),
        Some("int2vector") => Some(Type::INT2_VECTOR),
        Some("oidvector") => Some(Type::OID_VECTOR),
        _ => None,
    }
}

/// Whether a column's values are encoded through [`TextBacked`]: text in Arrow
/// with a wire format of its own type's (VARCHAR's is text's: arrow-pg's).
fn text_backed(f: &Field) -> bool {
    matches!(wire_type(f), Some(Type::UUID | Type::JSON | Type::JSONB))
}

/// A UUID or JSON value held as text, written in its type's wire format.
#[derive(Debug)]
struct TextBacked<'a>(&'a str);

impl ToSql for TextBacked<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *ty {
            Type::UUID => {
                let hex: String = self.0.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 {
                    return Err(format!("invalid uuid {}", self.0).into());
                }
                for i in 0..16 {
                    out.put_u8(u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)?);
                }
            }
            Type::JSONB => {
                out.put_u8(1);
                out.put_slice(self.0.as_bytes());
            }
            _ => out.put_slice(self.0.as_bytes()),
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::UUID | Type::JSON | Type::JSONB)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for TextBacked<'_> {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

/// A decimal in Postgres' binary NUMERIC form, keeping its display scale
/// (`0.00` stays `0.00`, which arrow-pg's encoding through rust_decimal loses).
#[derive(Debug)]
struct Numeric {
    value: i128,
    scale: i8,
}

impl Numeric {
    fn text(&self) -> String {
        let digits = self.value.unsigned_abs().to_string();
        let scale = self.scale.max(0) as usize;
        let sign = if self.value < 0 { "-" } else { "" };
        if scale == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{sign}{int}.{frac}")
    }
}

impl ToSql for Numeric {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let text = self.text();
        let unsigned = text.trim_start_matches('-');
        let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        let int = int.trim_start_matches('0');
        // Base-10000 digits: the integer part grouped from the right, the
        // fraction grouped from the left.
        let int_padded = format!("{:0>width$}", int, width = int.len().div_ceil(4) * 4);
        let frac_padded = format!("{:0<width$}", frac, width = frac.len().div_ceil(4) * 4);
        let group = |s: &str| -> Vec<i16> {
            s.as_bytes()
                .chunks(4)
                .map(|c| {
                    std::str::from_utf8(c)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0)
                })
                .collect()
        };
        let int_groups = group(&int_padded);
        let mut digits = int_groups.clone();
        digits.extend(group(&frac_padded));
        let mut weight = int_groups.len() as i16 - 1;
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        out.put_i16(digits.len() as i16);
        out.put_i16(weight);
        out.put_u16(if self.value < 0 { 0x4000 } else { 0 });
        out.put_u16(self.scale.max(0) as u16);
        for d in digits {
            out.put_i16(d);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Numeric {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

/// How a column's values are encoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// arrow-pg's encoding.
    Plain,
    /// UUID or JSON held as text.
    TextBacked,
    /// NUMERIC in binary, keeping its scale.
    Numeric,
    /// TIME or TIMESTAMP in text, in Postgres' form.
    Temporal,
    /// REAL or DOUBLE PRECISION in text, in Postgres' form.
    Float,
    /// int2vector or oidvector (see `vectors.rs`).
    Vector,
}

fn encoding(f: &Field, pg: &FieldInfo) -> Encoding {
    let binary = pg.format() == FieldFormat::Binary;
    match f.data_type() {
        _ if text_backed(f) => Encoding::TextBacked,
        DataType::List(_) if matches!(wire_type(f), Some(Type::INT2_VECTOR | Type::OID_VECTOR)) => {
            Encoding::Vector
        }
        DataType::Decimal128(..) if binary => Encoding::Numeric,
        DataType::Time32(_) | DataType::Time64(_) | DataType::Timestamp(..) if !binary => {
            Encoding::Temporal
        }
        DataType::Float32 | DataType::Float64 if !binary => Encoding::Float,
        _ => Encoding::Plain,
    }
}

/// Encodes a batch's rows as DataRows.
fn encode_batch(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Vec<PgWireResult<DataRow>> {
    let plain = batch
        .schema()
        .fields()
        .iter()
        .zip(fields.iter())
        .all(|(f, pg)| encoding(f, pg) == Encoding::Plain);
    if plain {
        return encode_recordbatch(fields.clone(), batch.clone()).collect();
    }
    encode_rows(&mut DataRowEncoder::new(fields.clone()), fields, batch)
}

/// Encodes a batch's rows with `encoder` (DataRows, or COPY's rows): arrow-pg
/// for every column but the ones it encodes differently from Postgres.
pub(crate) fn encode_rows<E: Encoder>(
    encoder: &mut E,
    fields: &[FieldInfo],
    batch: &RecordBatch,
) -> Vec<PgWireResult<E::Item>> {
    let schema = batch.schema();
    let encodings: Vec<Encoding> = schema
        .fields()
        .iter()
        .zip(fields.iter())
        .map(|(f, pg)| encoding(f, pg))
        .collect();
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut result = Ok(());
        for c in 0..batch.num_columns() {
            let array = batch.column(c);
            let field = &fields[c];
            result = match encodings[c] {
                Encoding::Numeric => match array.as_any().downcast_ref::<Decimal128Array>() {
                    Some(d) if d.is_valid(r) => Encoder::encode_field(
                        encoder,
                        &Numeric {
                            value: d.value(r),
                            scale: d.scale(),
                        },
                        field,
                    ),
                    _ => Encoder::encode_field(encoder, &None::<i8>, field),
                },
                Encoding::TextBacked => match array.as_any().downcast_ref::<StringArray>() {
                    Some(a) if a.is_valid(r) => {
                        Encoder::encode_field(encoder, &TextBacked(a.value(r)), field)
                    }
                    _ => Encoder::encode_field(encoder, &None::<i8>, field),
                },
                Encoding::Temporal => match temporal_at(array.as_ref(), r) {
                    Ok(v) => Encoder::encode_field(encoder, &v, field),
                    Err(e) => Err(e),
                },
                Encoding::Vector => match PgVector::at(array.as_ref(), r) {
                    Some(v) => Encoder::encode_field(encoder, &v, field),
                    None => Encoder::encode_field(encoder, &None::<i8>, field),
                },
                Encoding::Float => match PgFloat::at(array.as_ref(), r) {
                    Some(v) => Encoder::encode_field(encoder, &v, field),
                    None => Encoder::encode_field(encoder, &None::<f64>, field),
                },
                Encoding::Plain => encode_value(encoder, array, r, schema.field(c), field),
            };
            if result.is_err() {
                break;
            }
        }
        rows.push(result.map(|_| encoder.take_row()));
    }
    rows
}

/// A TIME or TIMESTAMP value, written in text as Postgres writes it with
/// DateStyle ISO: the fraction of a second only when it is not zero, without
/// trailing zeros (`12:00:00`, `12:00:00.5`), and a time zone offset of hours,
/// then minutes and seconds only when not zero (`+00`, `+05:30`).
#[derive(Debug)]
enum Temporal {
    Time(NaiveTime),
    Timestamp(NaiveDateTime),
    TimestampTz(DateTime<FixedOffset>),
}

fn time_text(t: &NaiveTime) -> String {
    let micros = (t.nanosecond() / 1000).min(999_999);
    let mut s = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    if micros != 0 {
        let frac = format!("{micros:06}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

/// The date and whether it is BC (Postgres has no year 0: it is 1 BC).
fn date_text(d: &NaiveDate) -> (String, bool) {
    let y = d.year();
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    (format!("{year:04}-{:02}-{:02}", d.month(), d.day()), bc)
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m, s) = (abs / 3600, abs % 3600 / 60, abs % 60);
    let mut out = format!("{sign}{h:02}");
    if m != 0 || s != 0 {
        out.push_str(&format!(":{m:02}"));
    }
    if s != 0 {
        out.push_str(&format!(":{s:02}"));
    }
    out
}

impl Temporal {
    fn text(&self) -> String {
        let (datetime, offset) = match self {
            Temporal::Time(t) => return time_text(t),
            Temporal::Timestamp(t) => (*t, None),
            Temporal::TimestampTz(t) => (t.naive_local(), Some(t.offset().local_minus_utc())),
        };
        let (date, bc) = date_text(&datetime.date());
        let mut s = format!("{date} {}", time_text(&datetime.time()));
        if let Some(o) = offset {
            s.push_str(&offset_text(o));
        }
        if bc {
            s.push_str(" BC");
        }
        s
    }
}

impl ToSql for Temporal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Temporal::Time(t) => t.to_sql(ty, out),
            Temporal::Timestamp(t) => t.to_sql(ty, out),
            Temporal::TimestampTz(t) => t.to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Temporal {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
        _format_options: &FormatOptions,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(self.text().as_bytes());
        Ok(IsNull::No)
    }
}

fn out_of_range() -> PgWireError {
    to_pg(StrataError::NumericOutOfRange(
        "time or timestamp out of range".into(),
    ))
}

fn timestamp_at<T: ArrowTimestampType>(
    array: &dyn Array,
    r: usize,
    tz: Option<&str>,
) -> PgWireResult<Temporal> {
    let a = array.as_primitive_opt::<T>().ok_or_else(out_of_range)?;
    match tz {
        None => a
            .value_as_datetime(r)
            .map(Temporal::Timestamp)
            .ok_or_else(out_of_range),
        Some(tz) => {
            let tz: Tz = tz.parse().map_err(|e: arrow::error::ArrowError| {
                to_pg(StrataError::internal(e.to_string()))
            })?;
            a.value_as_datetime_with_tz(r, tz)
                .map(|d| Temporal::TimestampTz(d.fixed_offset()))
                .ok_or_else(out_of_range)
        }
    }
}

fn time_at<T: ArrowTemporalType>(array: &dyn Array, r: usize) -> PgWireResult<Temporal>
where
    i64: From<T::Native>,
{
    array
        .as_primitive_opt::<T>()
        .and_then(|a| a.value_as_time(r))
        .map(Temporal::Time)
        .ok_or_else(out_of_range)
}

/// Row `r` of a TIME or TIMESTAMP column, None for NULL.
fn temporal_at(array: &dyn Array, r: usize) -> PgWireResult<Option<Temporal>> {
    if array.is_null(r) {
        return Ok(None);
    }
    let v = match array.data_type() {
        DataType::Time32(TimeUnit::Second) => time_at::<Time32SecondType>(array, r)?,
        DataType::Time32(_) => time_at::<Time32MillisecondType>(array, r)?,
        DataType::Time64(TimeUnit::Nanosecond) => time_at::<Time64NanosecondType>(array, r)?,
        DataType::Time64(_) => time_at::<Time64MicrosecondType>(array, r)?,
        DataType::Timestamp(unit, tz) => {
            let tz = tz.as_deref();
            match unit {
                TimeUnit::Second => timestamp_at::<TimestampSecondType>(array, r, tz)?,
                TimeUnit::Millisecond => timestamp_at::<TimestampMillisecondType>(array, r, tz)?,
                TimeUnit::Microsecond => timestamp_at::<TimestampMicrosecondType>(array, r, tz)?,
                TimeUnit::Nanosecond => timestamp_at::<TimestampNanosecondType>(array, r, tz)?,
            }
        }
        _ => return Err(out_of_range()),
    };
    Ok(Some(v))
}

pub fn pg_type(dt: &DataType) -> Type {
    into_pg_type(dt).unwrap_or(Type::TEXT)
}

pub(crate) fn tag(name: &str, rows: Option<usize>) -> Tag {
    // "INSERT 0" carries the legacy OID; pgwire appends the row count.
    let (cmd, oid) = match name.rsplit_once(' ') {
        Some((c, o)) if o.parse::<u32>().is_ok() => (c, o.parse::<u32>().ok()),
        _ => (name, None),
    };
    let mut t = Tag::new(cmd);
    if let Some(oid) = oid {
        t = t.with_oid(oid);
    }
    if let Some(r) = rows {
        t = t.with_rows(r);
    }
    t
}

/// Builds the protocol response. The first batch is computed here, inside the
/// part of query handling that a CancelRequest can interrupt: for aggregates and
/// sorts that is where all the work happens.
pub async fn to_response(out: QueryOutput, format: &Format) -> PgWireResult<Response> {
    match out {
        QueryOutput::Command { tag: name, rows } => Ok(Response::Execution(tag(&name, rows))),
        QueryOutput::CopyOut {
            schema,
            stream,
            options,
        } => crate::copy_out::copy_out_response(&schema, stream, options),
        // The handler starts a COPY FROM STDIN: it keeps the load on the connection.
        QueryOutput::CopyIn(_) => Err(to_pg(StrataError::internal(
            "COPY FROM STDIN outside the handler",
        ))),
        QueryOutput::Transaction {
            tag: name,
            in_block,
        } => Ok(if in_block {
            Response::TransactionStart(tag(&name, None))
        } else {
            Response::TransactionEnd(tag(&name, None))
        }),
        QueryOutput::Rows {
            schema,
            mut stream,
            tag: name,
        } => {
            let first = stream.next().await;
            if let Some(Err(e)) = first {
                return Err(to_pg(StrataError::from(e)));
            }
            let stream = futures::stream::iter(first).chain(stream);
            let fields = Arc::new(pg_fields(&schema, format)?);
            let f = fields.clone();
            let rows = stream.flat_map(move |batch| {
                let items: Vec<PgWireResult<_>> = match batch {
                    Ok(b) => encode_batch(&f, &b),
                    Err(e) => vec![Err(to_pg(StrataError::from(e)))],
                };
                futures::stream::iter(items)
            });
            let mut resp = QueryResponse::new(fields, rows);
            resp.set_command_tag(&name);
            Ok(Response::Query(resp))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(value: i128, scale: i8) -> Vec<u8> {
        let mut out = BytesMut::new();
        Numeric { value, scale }
            .to_sql(&Type::NUMERIC, &mut out)
            .unwrap();
        out.to_vec()
    }

    #[test]
    fn numeric_text_keeps_scale() {
        assert_eq!(Numeric { value: 0, scale: 2 }.text(), "0.00");
        assert_eq!(
            Numeric {
                value: -5,
                scale: 3
            }
            .text(),
            "-0.005"
        );
        assert_eq!(
            Numeric {
                value: 123456,
                scale: 2
            }
            .text(),
            "1234.56"
        );
    }

    #[test]
    fn numeric_binary_matches_postgres() {
        // 0.00: no digits, weight 0, scale 2
        assert_eq!(binary(0, 2), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        // 1234.56 = [1234, 5600], weight 0
        assert_eq!(
            binary(123456, 2),
            vec![0, 2, 0, 0, 0, 0, 0, 2, 0x04, 0xd2, 0x15, 0xe0]
        );
        // -0.005 = [50], weight -1, negative, scale 3
        assert_eq!(binary(-5, 3), vec![0, 1, 0xff, 0xff, 0x40, 0, 0, 3, 0, 50]);
        // 10000 = [1], weight 1
        assert_eq!(binary(10000, 0), vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
    }
}

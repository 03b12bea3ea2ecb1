//! Results as protocol responses: Arrow batches become DataRows through arrow-pg,
//! streamed batch by batch.

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use arrow_pg::encoder::{Encoder, encode_value};
use bytes::{BufMut, BytesMut};
use futures::StreamExt;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::DataRowEncoder;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};
use std::sync::Arc;
use strata_catalog::WIRE_TYPE_KEY;
use strata_common::StrataError;
use strata_query::QueryOutput;

use crate::errors::to_pg;

/// Column descriptions; UUID and JSON columns (text in Arrow) keep their own type.
pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    let mut fields = arrow_schema_to_pg_fields(schema, format, None)?;
    for (i, f) in schema.fields().iter().enumerate() {
        if let Some(ty) = wire_type(f) {
            let old = &fields[i];
            fields[i] = FieldInfo::new(old.name().to_string(), None, None, ty, old.format());
        }
    }
    Ok(fields)
}

fn wire_type(f: &Field) -> Option<Type> {
    match f.metadata().get(WIRE_TYPE_KEY).map(String::as_str) {
        Some("uuid") => Some(Type::UUID),
        Some("json") => Some(Type::JSON),
        Some("jsonb") => Some(Type::JSONB),
        _ => None,
    }
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

/// Encodes a batch's rows: arrow-pg for every column but the text-backed ones.
fn encode_batch(fields: &Arc<Vec<FieldInfo>>, batch: &RecordBatch) -> Vec<PgWireResult<DataRow>> {
    let schema = batch.schema();
    let special: Vec<bool> = schema
        .fields()
        .iter()
        .map(|f| wire_type(f).is_some())
        .collect();
    if !special.iter().any(|s| *s) {
        return encode_recordbatch(fields.clone(), batch.clone()).collect();
    }
    let mut encoder = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mut result = Ok(());
        for c in 0..batch.num_columns() {
            let array = batch.column(c);
            let field = &fields[c];
            result = if special[c] {
                match array.as_any().downcast_ref::<StringArray>() {
                    Some(a) if a.is_valid(r) => {
                        Encoder::encode_field(&mut encoder, &TextBacked(a.value(r)), field)
                    }
                    _ => Encoder::encode_field(&mut encoder, &None::<i8>, field),
                }
            } else {
                encode_value(&mut encoder, array, r, schema.field(c), field)
            };
            if result.is_err() {
                break;
            }
        }
        rows.push(result.map(|_| encoder.take_row()));
    }
    rows
}

pub fn pg_type(dt: &DataType) -> Type {
    into_pg_type(dt).unwrap_or(Type::TEXT)
}

fn tag(name: &str, rows: Option<usize>) -> Tag {
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

pub fn to_response(out: QueryOutput, format: &Format) -> PgWireResult<Response> {
    match out {
        QueryOutput::Command { tag: name, rows } => Ok(match name.as_str() {
            "BEGIN" => Response::TransactionStart(tag(&name, rows)),
            "COMMIT" => Response::TransactionEnd(tag(&name, rows)),
            _ => Response::Execution(tag(&name, rows)),
        }),
        QueryOutput::Rows {
            schema,
            stream,
            tag: name,
        } => {
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

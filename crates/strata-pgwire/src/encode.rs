//! Results as protocol responses: Arrow batches become DataRows through arrow-pg,
//! streamed batch by batch.

use arrow::datatypes::{DataType, Schema};
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use futures::StreamExt;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::PgWireResult;
use std::sync::Arc;
use strata_common::StrataError;
use strata_query::QueryOutput;

use crate::errors::to_pg;

pub fn pg_fields(schema: &Schema, format: &Format) -> PgWireResult<Vec<FieldInfo>> {
    arrow_schema_to_pg_fields(schema, format, None)
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
                    Ok(b) => encode_recordbatch(f.clone(), b).collect(),
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

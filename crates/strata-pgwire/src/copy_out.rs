//! COPY TO STDOUT: rows written as CopyData in text, CSV or binary format.
//!
//! Values go through the same encoders as a SELECT's DataRows (so a timestamp
//! or a NUMERIC reads the same either way); this file adds only COPY's framing:
//! text's backslash escapes, CSV's quoting, binary's header and field lengths.
//! One CopyData per row, streamed batch by batch.

use crate::encode::{encode_rows, pg_fields};
use crate::errors::to_pg;
use arrow::datatypes::Schema;
use arrow_pg::encoder::Encoder;
use bytes::{BufMut, BytesMut};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use parking_lot::Mutex;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyResponse, FieldInfo, Response};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::types::ToSqlText;
use postgres_types::{IsNull, ToSql};
use std::sync::Arc;
use strata_common::StrataError;
use strata_session::{CopyFormat, CopyOptions};

const BINARY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The CopyOutResponse and its row stream.
pub fn copy_out_response(
    schema: &Schema,
    stream: SendableRecordBatchStream,
    options: CopyOptions,
) -> PgWireResult<Response> {
    let binary = options.format == CopyFormat::Binary;
    let format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = Arc::new(pg_fields(schema, &format)?);
    let mut encoder = CopyRowEncoder::new(options, fields.len());
    // The header goes out with the first row (pgwire counts CopyData messages
    // for the command tag), or alone when there are no rows.
    let preamble = Arc::new(Mutex::new(encoder.preamble(&fields)));
    let first = preamble.clone();
    let f = fields.clone();
    let rows = stream
        .flat_map(move |batch| {
            let items: Vec<PgWireResult<CopyData>> = match batch {
                Ok(b) => encode_rows(&mut encoder, &f, &b),
                Err(e) => vec![Err(to_pg(StrataError::from(e)))],
            };
            futures::stream::iter(items)
        })
        .map(move |row| {
            row.map(|data| match first.lock().take() {
                Some(mut pre) => {
                    pre.extend_from_slice(&data.data);
                    CopyData::new(pre.freeze())
                }
                None => data,
            })
        })
        .chain(futures::stream::iter(std::iter::from_fn(move || {
            preamble
                .lock()
                .take()
                .map(|pre| Ok(CopyData::new(pre.freeze())))
        })));
    Ok(Response::CopyOut(CopyResponse::new(
        i8::from(binary),
        fields.len(),
        rows,
    )))
}

/// Builds one CopyData per row in COPY's format.
pub(crate) struct CopyRowEncoder {
    options: CopyOptions,
    columns: usize,
    row: BytesMut,
    value: BytesMut,
    column: usize,
}

impl CopyRowEncoder {
    fn new(options: CopyOptions, columns: usize) -> Self {
        CopyRowEncoder {
            options,
            columns,
            row: BytesMut::new(),
            value: BytesMut::new(),
            column: 0,
        }
    }

    /// What precedes the rows: binary's header, or the HEADER line.
    fn preamble(&self, fields: &[FieldInfo]) -> Option<BytesMut> {
        let mut pre = BytesMut::new();
        match self.options.format {
            CopyFormat::Binary => {
                pre.put_slice(BINARY_SIGNATURE);
                pre.put_i32(0); // flags
                pre.put_i32(0); // header extension length
            }
            _ if self.options.header => {
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        pre.put_u8(self.options.delimiter as u8);
                    }
                    self.write_text(f.name().as_bytes(), &mut pre);
                }
                pre.put_u8(b'\n');
            }
            _ => return None,
        }
        Some(pre)
    }

    /// Writes one non-NULL value's text, escaped or quoted as the format wants.
    fn write_text(&self, v: &[u8], out: &mut BytesMut) {
        let o = &self.options;
        let delimiter = o.delimiter as u8;
        if o.format == CopyFormat::Csv {
            let (quote, escape) = (o.quote as u8, o.escape as u8);
            // A value that reads as NULL, or as the end-of-data marker, is
            // quoted too, so that it comes back as itself.
            let quoted = v == o.null.as_bytes()
                || v == b"\\."
                || v.iter()
                    .any(|b| *b == delimiter || *b == quote || *b == b'\n' || *b == b'\r');
            if !quoted {
                out.put_slice(v);
                return;
            }
            out.put_u8(quote);
            for b in v {
                if *b == quote || *b == escape {
                    out.put_u8(escape);
                }
                out.put_u8(*b);
            }
            out.put_u8(quote);
            return;
        }
        for b in v {
            match *b {
                b'\\' => out.put_slice(b"\\\\"),
                b'\n' => out.put_slice(b"\\n"),
                b'\r' => out.put_slice(b"\\r"),
                b'\t' => out.put_slice(b"\\t"),
                0x08 => out.put_slice(b"\\b"),
                0x0c => out.put_slice(b"\\f"),
                0x0b => out.put_slice(b"\\v"),
                b if b == delimiter => {
                    out.put_u8(b'\\');
                    out.put_u8(b);
                }
                b => out.put_u8(b),
            }
        }
    }
}

fn encode_error(e: Box<dyn std::error::Error + Send + Sync>) -> PgWireError {
    PgWireError::ApiError(e)
}

impl Encoder for CopyRowEncoder {
    type Item = CopyData;

    fn encode_field<T>(&mut self, value: &T, field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        if self.column == 0 && self.options.format == CopyFormat::Binary {
            self.row.put_i16(self.columns as i16);
        }
        if self.column > 0 && self.options.format != CopyFormat::Binary {
            self.row.put_u8(self.options.delimiter as u8);
        }
        self.column += 1;
        self.value.clear();
        if self.options.format == CopyFormat::Binary {
            match value
                .to_sql(field.datatype(), &mut self.value)
                .map_err(encode_error)?
            {
                IsNull::Yes => self.row.put_i32(-1),
                IsNull::No => {
                    self.row.put_i32(self.value.len() as i32);
                    self.row.put_slice(&self.value);
                }
            }
            return Ok(());
        }
        let is_null = value
            .to_sql_text(field.datatype(), &mut self.value, field.format_options())
            .map_err(encode_error)?;
        match is_null {
            IsNull::Yes => self.row.put_slice(self.options.null.as_bytes()),
            IsNull::No => {
                let mut out = std::mem::take(&mut self.row);
                self.write_text(&self.value, &mut out);
                self.row = out;
            }
        }
        Ok(())
    }

    fn take_row(&mut self) -> CopyData {
        if self.options.format != CopyFormat::Binary {
            self.row.put_u8(b'\n');
        }
        self.column = 0;
        CopyData::new(self.row.split().freeze())
    }
}

/// Sends a COPY OUT: the CopyOutResponse, each CopyData, CopyDone and the
/// command tag. Unlike pgwire's helper, which only feeds its write buffer,
/// it flushes whenever the row stream has nothing ready, so rows of a stream
/// that waits (a live query's changes) reach the client when they are made,
/// while a stream that is ready keeps filling whole buffers.
pub(crate) async fn send_copy_out<C>(client: &mut C, resp: CopyResponse) -> PgWireResult<()>
where
    C: futures::Sink<pgwire::messages::PgWireBackendMessage> + Unpin,
    C::Error: std::fmt::Debug,
    PgWireError: From<<C as futures::Sink<pgwire::messages::PgWireBackendMessage>>::Error>,
{
    use futures::{FutureExt, SinkExt};
    use pgwire::messages::PgWireBackendMessage as Msg;
    use pgwire::messages::copy::{CopyDone, CopyOutResponse};
    use pgwire::messages::response::CommandComplete;
    let column_formats = resp.column_formats();
    let (format, columns) = (resp.format, resp.columns);
    let mut resp = resp;
    let data_stream = resp.data_stream();
    client
        .send(Msg::CopyOutResponse(CopyOutResponse::new(
            format,
            columns as i16,
            column_formats,
        )))
        .await?;
    let mut rows = 0usize;
    loop {
        let next = match data_stream.next().now_or_never() {
            Some(item) => item,
            None => {
                client.flush().await?;
                data_stream.next().await
            }
        };
        match next {
            Some(Ok(data)) => {
                if data.data.is_empty() {
                    continue;
                }
                if data.data.as_ref() != [0xFF, 0xFF] {
                    rows += 1;
                }
                client.feed(Msg::CopyData(data)).await?;
            }
            // The ErrorResponse ends the COPY (a backend never sends CopyFail).
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    client.send(Msg::CopyDone(CopyDone::new())).await?;
    client
        .send(Msg::CommandComplete(CommandComplete::new(format!(
            "COPY {rows}"
        ))))
        .await?;
    Ok(())
}

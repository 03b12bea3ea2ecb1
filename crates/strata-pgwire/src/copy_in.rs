//! COPY FROM STDIN on the wire: the CopyInResponse, then the client's
//! CopyData fed through a [`CopyReader`] into the statement's load, row by row
//! as it arrives; CopyDone writes the rows, CopyFail or any error drops them.

use crate::copy_reader::{CopyReader, Field};
use crate::encode::tag;
use crate::errors::to_pg;
use crate::handler::{Handler, session_of};
use crate::params::{binary_value, column_type};
use async_trait::async_trait;
use datafusion::scalar::ScalarValue;
use futures::{Sink, SinkExt};
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::copy::CopyHandler;
use pgwire::api::results::{CopyResponse, Response};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use std::fmt::Debug;
use strata_common::{Result, StrataError};
use strata_session::{CopyFormat, CopyIn};
use strata_session::{QueryOutput, Session};
use tracing::Instrument;

/// A connection's COPY FROM STDIN between its CopyInResponse and CopyDone.
pub(crate) struct ActiveCopy {
    load: Box<CopyIn>,
    reader: CopyReader,
    types: Vec<Type>,
}

impl ActiveCopy {
    /// Takes every complete row the input holds.
    async fn take_rows(&mut self, session: &Session, at_end: bool) -> Result<()> {
        loop {
            let row = self.reader.next_row(at_end).map_err(|e| {
                let line = self.reader.line();
                e.with_context(self.load.context(line, None))
            })?;
            let Some((line, fields)) = row else {
                return Ok(());
            };
            if fields.len() != self.types.len() {
                let msg = match self.load.columns().get(fields.len()) {
                    Some(col) => format!("missing data for column \"{}\"", col.name),
                    None => "extra data after last expected column".to_string(),
                };
                return Err(StrataError::BadCopyFormat(msg).with_context(
                    self.load
                        .context(line, Some(fields.len().min(self.types.len()))),
                ));
            }
            let mut values = Vec::with_capacity(fields.len());
            for (j, f) in fields.into_iter().enumerate() {
                values.push(match f {
                    Field::Null => None,
                    Field::Text(s) => Some(ScalarValue::Utf8(Some(s))),
                    Field::Binary(raw) => Some(
                        binary_value(&self.types[j], &raw)
                            .map_err(|e| e.with_context(self.load.context(line, Some(j))))?,
                    ),
                });
            }
            self.load.push(session, line, values).await?;
        }
    }
}

/// Starts a COPY FROM STDIN: keeps its state on the connection and answers
/// with the CopyInResponse.
pub(crate) fn start(handler: &Handler, load: Box<CopyIn>) -> Response {
    let options = load.options().clone();
    let types: Vec<Type> = load.columns().iter().map(|c| column_type(&c.ty)).collect();
    let binary = options.format == CopyFormat::Binary;
    let columns = types.len();
    *handler.copy.lock() = Some(ActiveCopy {
        load,
        reader: CopyReader::new(options),
        types,
    });
    Response::CopyIn(CopyResponse::new(
        i8::from(binary),
        columns,
        futures::stream::empty(),
    ))
}

impl Handler {
    /// The connection's copy, taken while a message is handled and put back
    /// only when that succeeds: after an error the rest of the client's data
    /// finds no copy and is ignored, as Postgres ignores it.
    fn take_copy(&self) -> Option<ActiveCopy> {
        self.copy.lock().take()
    }
}

fn failed(session: &Session, e: StrataError) -> PgWireError {
    crate::counted::failed();
    session.statement_failed();
    to_pg(e)
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        // No copy: an earlier error ended it, and Postgres ignores the rest.
        let Some(mut copy) = self.take_copy() else {
            return Ok(());
        };
        copy.reader.feed(&data.data);
        copy.take_rows(&session, false)
            .await
            .map_err(|e| failed(&session, e))?;
        // What is left is one unfinished row: it may not grow past the
        // memory a COPY may hold (a line without a newline, a tuple that
        // announces gigabytes).
        let limit = session.copy_memory_limit();
        if copy.reader.pending() > limit {
            let line = copy.reader.line() + 1;
            let e = StrataError::ProgramLimitExceeded(format!(
                "a COPY row is longer than copy_memory_limit ({limit} bytes)"
            ))
            .with_context(copy.load.context(line, None));
            return Err(failed(&session, e));
        }
        *self.copy.lock() = Some(copy);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        let Some(mut copy) = self.take_copy() else {
            return Ok(());
        };
        let span = tracing::debug_span!("copy_in", user = session.user());
        let out = async {
            copy.take_rows(&session, true).await?;
            copy.load.finish(&session).await
        }
        .instrument(span)
        .await
        .map_err(|e| failed(&session, e))?;
        let QueryOutput::Command { tag: name, rows } = out else {
            return Err(to_pg(StrataError::internal("COPY ended without a count")));
        };
        crate::counted::copy_in_done(rows);
        client
            .send(PgWireBackendMessage::CommandComplete(
                tag(&name, rows).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        drop(self.take_copy());
        let e = StrataError::CopyFailed(format!("COPY from stdin failed: {}", fail.message));
        match session_of(client) {
            Ok(session) => failed(&session, e),
            Err(other) => other,
        }
    }
}

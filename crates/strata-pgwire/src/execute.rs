//! Execute (extended protocol) with rows streamed to the socket.
//!
//! pgwire's default Execute collects a portal's rows in memory before sending
//! any when the client asks for all of them (a row limit of 0, what drivers
//! send unless told to fetch in chunks): one large SELECT would hold its whole
//! result in the server. Here rows go to the socket as they are computed, the
//! socket's backpressure pacing the query. A row limit sends that many rows
//! and PortalSuspended, keeping the rest of the stream in the portal for the
//! next Execute. The ReadyForQuery at Sync then reports the session's own
//! transaction status (see `simple_query.rs`).
//!
//! Responses are fed to the connection's buffer, not flushed: the write to
//! the socket happens at Sync or Flush (or when the buffer fills), as Postgres
//! does, so a pipelined Bind/Execute/Sync costs one `sendto`, not four.
//!
//! A suspended portal keeps its query running, so a connection may hold at
//! most [`MAX_SUSPENDED_PORTALS`] of them (54000 for an Execute with a row
//! limit past that; closing portals or running them to the end frees room).

use crate::handler::Handler;
use crate::simple_query::wire_status;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::query::{ExtendedQueryHandler, send_execution_response};
use pgwire::api::results::{QueryResponse, Response, Tag};
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireConnectionState, copy};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Execute, PortalSuspended};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse};
use std::fmt::Debug;
use std::sync::Arc;
use strata_session::Prepared;

/// The most portals one connection may leave suspended.
pub(crate) const MAX_SUSPENDED_PORTALS: usize = 256;

/// Forgets suspended portals that were closed, replaced or finished since, then
/// refuses a new one past the bound.
fn check_room_for_suspension<C>(handler: &Handler, client: &C, name: &str) -> PgWireResult<()>
where
    C: ClientPortalStore,
    C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
{
    let mut suspended = handler.suspended.lock();
    suspended.retain(|n| match client.portal_store().get_portal(n) {
        Some(Entry::Value(p)) => p
            .state()
            .try_lock()
            .map_or(true, |s| matches!(*s, PortalExecutionState::Suspended(_))),
        _ => false,
    });
    if suspended.len() >= MAX_SUSPENDED_PORTALS && !suspended.contains(name) {
        return Err(crate::errors::to_pg(
            strata_common::StrataError::ProgramLimitExceeded(format!(
                "a connection can keep at most {MAX_SUSPENDED_PORTALS} portals suspended; close some or fetch them to the end"
            )),
        ));
    }
    Ok(())
}

pub(crate) async fn on_execute<C>(
    handler: &Handler,
    client: &mut C,
    message: Execute,
) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    client.set_state(PgWireConnectionState::QueryInProgress);
    let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
    // A negative or zero limit means every row.
    let max_rows = usize::try_from(message.max_rows).unwrap_or(0);
    let portal = match client.portal_store().get_portal(name) {
        Some(Entry::Value(p)) => p,
        Some(Entry::Empty) => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            client.set_state(PgWireConnectionState::ReadyForQuery);
            return Ok(());
        }
        None => return Err(PgWireError::PortalNotFound(name.to_owned())),
    };
    if max_rows > 0
        && let Err(e) = check_room_for_suspension(handler, client, name)
    {
        // An error inside a block aborts it, as any statement's would.
        crate::counted::failed();
        crate::handler::session_of(client)?.statement_failed();
        return Err(e);
    }
    let state = portal.state();
    // The portal is Finished unless this Execute leaves rows in it.
    let taken = std::mem::replace(&mut *state.lock().await, PortalExecutionState::Finished);
    let rows = match taken {
        PortalExecutionState::Initial => {
            match handler.do_query(client, portal.as_ref(), max_rows).await? {
                Response::Query(rows) => Some(rows),
                other => {
                    respond_without_rows(client, other).await?;
                    None
                }
            }
        }
        PortalExecutionState::Suspended(rows) => Some(rows),
        // Executed to its end already: no more rows.
        PortalExecutionState::Finished => {
            client
                .feed(PgWireBackendMessage::CommandComplete(
                    Tag::new("SELECT").with_rows(0).into(),
                ))
                .await?;
            None
        }
    };
    if let Some(mut rows) = rows
        && stream_rows(client, &mut rows, max_rows).await?
    {
        *state.lock().await = PortalExecutionState::Suspended(rows);
        handler.suspended.lock().insert(name.to_string());
    }
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        client.set_state(PgWireConnectionState::ReadyForQuery);
        let status = wire_status(client)?;
        client.set_transaction_status(status);
    }
    Ok(())
}

/// Sends up to `max_rows` rows (all when 0); returns whether rows are left
/// (PortalSuspended sent) rather than the result complete (CommandComplete).
async fn stream_rows<C>(
    client: &mut C,
    rows: &mut QueryResponse,
    max_rows: usize,
) -> PgWireResult<bool>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let mut sent = 0usize;
    while max_rows == 0 || sent < max_rows {
        match rows.data_rows.next().await {
            Some(row) => {
                client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                sent += 1;
            }
            None => {
                let tag = Tag::new(&rows.command_tag).with_rows(sent);
                client
                    .feed(PgWireBackendMessage::CommandComplete(
                        CommandComplete::from(tag),
                    ))
                    .await?;
                return Ok(false);
            }
        }
    }
    client
        .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
        .await?;
    Ok(true)
}

/// A statement's response that has no rows, as pgwire's Execute sends it.
async fn respond_without_rows<C>(client: &mut C, response: Response) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match response {
        Response::Query(_) => {}
        Response::EmptyQuery => {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
        }
        Response::Execution(tag) | Response::TransactionStart(tag) => {
            send_execution_response(client, tag).await?;
        }
        Response::TransactionEnd(tag) => {
            send_execution_response(client, tag).await?;
            // The unnamed portal does not outlive its transaction.
            client.portal_store().rm_portal(DEFAULT_NAME);
        }
        Response::Error(e) => {
            client
                .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                .await?;
        }
        Response::CopyIn(result) => {
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            copy::send_copy_in_response(client, result).await?;
        }
        Response::CopyOut(result) => crate::copy_out::send_copy_out(client, result).await?,
        Response::CopyBoth(result) => {
            client.set_state(PgWireConnectionState::CopyInProgress(true));
            copy::send_copy_both_response(client, result).await?;
        }
    }
    Ok(())
}

//! The simple-query cycle (Query → each statement's response → ReadyForQuery)
//! and the transaction status every ReadyForQuery reports.
//!
//! pgwire derives that status from the one before a message and the kinds of
//! the responses; no response can say that ROLLBACK TO SAVEPOINT made an
//! aborted block usable again. Strata reports the session's own state instead,
//! read after the statements ran: this is pgwire's default `_on_query` with
//! that one change (Execute keeps pgwire's default and corrects the status
//! afterwards, since its ReadyForQuery waits for Sync).

use crate::handler::{Handler, session_of};
use futures::{Sink, SinkExt};
use pgwire::api::query::{
    SimpleQueryHandler, send_execution_response, send_query_response, send_ready_for_query,
};
use pgwire::api::results::Response;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, copy};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use std::fmt::Debug;
use strata_session::TxnStatus;

/// The status a ReadyForQuery reports for the session behind `client`.
pub(crate) fn wire_status<C: ClientInfo>(client: &C) -> PgWireResult<TransactionStatus> {
    Ok(match session_of(client)?.transaction_status() {
        TxnStatus::Idle => TransactionStatus::Idle,
        TxnStatus::InBlock => TransactionStatus::Transaction,
        TxnStatus::Failed => TransactionStatus::Error,
    })
}

/// A query string of nothing but semicolons and blanks: Postgres answers it
/// with EmptyQueryResponse and runs nothing.
fn is_empty_query(q: &str) -> bool {
    q.chars().all(|c| c == ';' || c.is_whitespace())
}

pub(crate) async fn on_query<C>(handler: &Handler, client: &mut C, query: Query) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: pgwire::api::store::PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
        return Err(PgWireError::NotReadyForQuery);
    }
    client.set_state(PgWireConnectionState::QueryInProgress);
    if is_empty_query(&query.query) {
        client
            .feed(PgWireBackendMessage::EmptyQueryResponse(
                EmptyQueryResponse::new(),
            ))
            .await?;
    } else {
        for r in handler.do_query(client, &query.query).await? {
            match r {
                Response::EmptyQuery => {
                    client
                        .feed(PgWireBackendMessage::EmptyQueryResponse(
                            EmptyQueryResponse::new(),
                        ))
                        .await?;
                }
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag)
                | Response::TransactionStart(tag)
                | Response::TransactionEnd(tag) => send_execution_response(client, tag).await?,
                Response::Error(e) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse((*e).into()))
                        .await?;
                }
                Response::CopyIn(result) => {
                    copy::send_copy_in_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
                Response::CopyOut(result) => crate::copy_out::send_copy_out(client, result).await?,
                Response::CopyBoth(result) => {
                    copy::send_copy_both_response(client, result).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                }
            }
        }
    }
    // A COPY FROM STDIN in progress gets its ReadyForQuery when it ends.
    if !matches!(client.state(), PgWireConnectionState::CopyInProgress(_)) {
        let status = wire_status(client)?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await?;
    }
    Ok(())
}

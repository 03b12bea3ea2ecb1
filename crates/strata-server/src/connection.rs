//! One client connection's message loop: pgwire's `process_socket` loop, plus
//! LISTEN notifications. pgwire only writes to a socket in answer to a
//! client message, so an idle listener would never hear anything; this loop
//! waits on the socket and the connection's mailbox together, and sends a
//! NotificationResponse whenever the connection is idle outside a
//! transaction block (where Postgres sends them too).

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::messages::response::{NotificationResponse, TransactionStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use strata_pgwire::ConnectionHandlers;
use tokio::net::TcpStream;

pub async fn serve(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: ConnectionHandlers,
) -> std::io::Result<()> {
    let Some(mut socket) = negotiate_tls(socket, tls).await? else {
        // A direct TLS handshake without TLS configured.
        return Ok(());
    };
    let mut mailbox = handlers.take_notifications();
    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let idle = matches!(socket.state(), PgWireConnectionState::ReadyForQuery)
            && socket.transaction_status() == TransactionStatus::Idle;
        let msg = tokio::select! {
            biased;
            msg = socket.next() => msg,
            Some(n) = async {
                match mailbox.as_mut() {
                    Some(m) => m.recv().await,
                    None => std::future::pending().await,
                }
            }, if idle => {
                socket
                    .send(PgWireBackendMessage::NotificationResponse(
                        NotificationResponse::new(n.pid, n.channel, n.payload),
                    ))
                    .await?;
                continue;
            }
        };
        let Some(Ok(msg)) = msg else { break };
        // Terminate: close the socket (some clients wait for it).
        if matches!(msg, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => msg.is_extended_query(),
        };
        if let Err(mut e) = process_message(
            msg,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await
        {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, extended_query).await?;
        }
    }
    Ok(())
}

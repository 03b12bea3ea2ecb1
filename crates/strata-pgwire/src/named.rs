//! Bounds on what a connection keeps by name: prepared statements (Parse)
//! and portals (Bind). pgwire keeps both until the client closes them, and
//! each holds a plan or bound parameters, so a client naming new ones without
//! end would grow the server without end. Past the bound a Parse or Bind of a
//! new name answers 54000; replacing or closing a name makes room. The
//! unnamed statement and portal are always replaced, never counted.

use crate::handler::Handler;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Portal;
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::stmt::StoredStatement;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Bind, BindComplete, Parse, ParseComplete};
use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;
use strata_common::StrataError;
use strata_session::Prepared;

/// The most named prepared statements one connection may hold.
pub(crate) const MAX_NAMED_STATEMENTS: usize = 10_000;
/// The most named portals one connection may hold.
pub(crate) const MAX_NAMED_PORTALS: usize = 10_000;

/// Names this connection has given, to count them (pgwire's store does not).
#[derive(Debug, Default)]
pub(crate) struct Names {
    statements: HashSet<String>,
    portals: HashSet<String>,
}

fn too_many(what: &str, max: usize) -> PgWireError {
    crate::errors::to_pg(StrataError::ProgramLimitExceeded(format!(
        "a connection can hold at most {max} named {what}; close some"
    )))
}

/// Room for `name` among `names`, after forgetting the ones the store no
/// longer holds (closed by the client).
fn make_room(
    names: &mut HashSet<String>,
    name: &str,
    max: usize,
    held: impl Fn(&str) -> bool,
    what: &str,
) -> PgWireResult<()> {
    if name == DEFAULT_NAME || names.contains(name) {
        return Ok(());
    }
    if names.len() >= max {
        names.retain(|n| held(n));
        if names.len() >= max {
            return Err(too_many(what, max));
        }
    }
    names.insert(name.to_string());
    Ok(())
}

/// Parse, as pgwire does it, once there is room for the statement's name.
pub(crate) async fn on_parse<C>(
    handler: &Handler,
    client: &mut C,
    message: Parse,
) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let name = message
        .name
        .clone()
        .unwrap_or_else(|| DEFAULT_NAME.to_owned());
    {
        let store = client.portal_store();
        make_room(
            &mut handler.names.lock().statements,
            &name,
            MAX_NAMED_STATEMENTS,
            |n| store.get_statement(n).is_some(),
            "prepared statements",
        )?;
    }
    let parser = handler.query_parser();
    match StoredStatement::parse(client, &message, parser).await? {
        Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
        None => client.portal_store().put_empty_statement(&name),
    }
    client
        .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
        .await?;
    Ok(())
}

/// Bind, as pgwire does it, once there is room for the portal's name.
pub(crate) async fn on_bind<C>(handler: &Handler, client: &mut C, message: Bind) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore<Statement = Arc<Prepared>>,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let statement_name = message.statement_name.as_deref().unwrap_or(DEFAULT_NAME);
    let portal_name = message.portal_name.as_deref().unwrap_or(DEFAULT_NAME);
    let statement = client.portal_store().get_statement(statement_name);
    if statement.is_none() {
        return Err(PgWireError::StatementNotFound(statement_name.to_owned()));
    }
    {
        let store = client.portal_store();
        make_room(
            &mut handler.names.lock().portals,
            portal_name,
            MAX_NAMED_PORTALS,
            |n| store.get_portal(n).is_some(),
            "portals",
        )?;
    }
    match statement {
        Some(Entry::Value(statement)) => {
            let portal = Portal::try_new(&message, statement)?;
            client.portal_store().put_portal(Arc::new(portal));
        }
        Some(Entry::Empty) => {
            if !message.parameters.is_empty() {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".to_owned(),
                    "08P01".to_owned(),
                    format!(
                        "bind message supplies {} parameters, but prepared statement {statement_name:?} requires 0",
                        message.parameters.len(),
                    ),
                ))));
            }
            client.portal_store().put_empty_portal(portal_name);
        }
        None => return Err(PgWireError::StatementNotFound(statement_name.to_owned())),
    }
    client
        .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_but_replacing_or_closing_makes_room() {
        let mut names = HashSet::new();
        let closed = |n: &str| n != "s1";
        for i in 0..3 {
            make_room(&mut names, &format!("s{i}"), 3, closed, "x").unwrap();
        }
        // The unnamed one and a name already held never count.
        make_room(&mut names, DEFAULT_NAME, 3, closed, "x").unwrap();
        make_room(&mut names, "s2", 3, closed, "x").unwrap();
        // s1 was closed: its place is taken; then the bound holds.
        make_room(&mut names, "s3", 3, closed, "x").unwrap();
        let err = make_room(&mut names, "s4", 3, |_| true, "x").unwrap_err();
        assert!(format!("{err:?}").contains("54000"), "{err:?}");
    }
}

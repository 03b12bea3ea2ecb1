//! Protocol handlers. `Frontend` is shared by all connections and holds nothing
//! per connection; `ConnectionHandlers` is made for each accepted socket. A
//! connection's `Session` is stored in pgwire's per-connection extension store
//! at login, which is what keeps concurrent logins from ever sharing state.
//! Login itself (SCRAM and friends) is in `login.rs`.

use crate::copy_in::{self, ActiveCopy};
use crate::encode::{pg_fields, to_response};
use crate::errors::{error_info, fatal, to_pg};
use crate::login::{AuthSettings, Login};
use crate::params::{decode_params, described_type};
use async_trait::async_trait;
use futures::FutureExt;
use futures::{Sink, SinkExt};
use pgwire::api::DEFAULT_NAME;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DescribePortalResponse, DescribeResponse, DescribeStatementResponse, FieldInfo, Response,
};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, NoopHandler, PgWireServerHandlers,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription, RowDescription};
use pgwire::messages::extendedquery::{
    Bind, Describe, Execute, Parse, TARGET_TYPE_BYTE_PORTAL, TARGET_TYPE_BYTE_STATEMENT,
};
use pgwire::messages::simplequery::Query;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use strata_session::{CancelSignal, Engine, MailboxReceiver, Prepared, QueryOutput, Session};
use tracing::Instrument;

/// State shared by every connection.
pub struct Frontend {
    pub(crate) engine: Arc<Engine>,
    pub(crate) connections: Arc<ConnectionManager>,
    pub(crate) pids: RandomPidSecretKeyGenerator,
    parser: Arc<StrataQueryParser>,
    pub(crate) auth: AuthSettings,
    /// Makes the mock salts of unknown users stable (see `scram::mock_verifier`).
    pub(crate) mock_secret: Vec<u8>,
    /// Connections that have logged in and not yet closed.
    pub(crate) logged_in: AtomicUsize,
}

impl Frontend {
    pub fn new(engine: Arc<Engine>, auth: AuthSettings) -> strata_common::Result<Arc<Frontend>> {
        let mock_secret = engine.catalog().mock_auth_secret()?;
        Ok(Arc::new(Frontend {
            engine,
            connections: Arc::new(ConnectionManager::new()),
            pids: RandomPidSecretKeyGenerator::default(),
            parser: Arc::new(StrataQueryParser),
            auth,
            mock_secret,
            logged_in: AtomicUsize::new(0),
        }))
    }

    /// Handlers for one accepted connection. `over_limit` makes its login fail
    /// with 53300 so the client learns why it was turned away.
    pub fn connection(self: &Arc<Self>, over_limit: bool) -> ConnectionHandlers {
        // Closed again when the handler is dropped with the connection.
        strata_common::stats::connection_opened();
        let (mailbox, notifications) = strata_session::mailbox();
        ConnectionHandlers {
            notifications: parking_lot::Mutex::new(Some(notifications)),
            inner: Arc::new(Handler {
                mailbox,
                frontend: self.clone(),
                over_limit,
                login: parking_lot::Mutex::new(Login::Start),
                copy: parking_lot::Mutex::new(None),
                holds_slot: Arc::new(AtomicBool::new(false)),
                cancel_handle: parking_lot::Mutex::new(None),
                suspended: parking_lot::Mutex::new(Default::default()),
                names: parking_lot::Mutex::new(Default::default()),
            }),
        }
    }
}

pub struct ConnectionHandlers {
    inner: Arc<Handler>,
    notifications: parking_lot::Mutex<Option<MailboxReceiver>>,
}

impl ConnectionHandlers {
    /// The connection's LISTEN notifications, for its socket loop to
    /// deliver while the connection is idle (taken once).
    pub fn take_notifications(&self) -> Option<MailboxReceiver> {
        self.notifications.lock().take()
    }

    /// Whether the connection has logged in; the accept loop closes one that
    /// has not within the auth timeout.
    pub fn logged_in(&self) -> Arc<AtomicBool> {
        self.inner.holds_slot.clone()
    }

    /// What the accept loop calls when the client has gone away.
    pub fn disconnect_hook(&self) -> DisconnectHook {
        DisconnectHook(self.inner.clone())
    }
}

/// Cancels the statement a connection is running, if any, as a CancelRequest
/// would: a query whose client has gone away stops instead of running on
/// with nobody to read it.
pub struct DisconnectHook(Arc<Handler>);

impl DisconnectHook {
    /// Whether a running statement was cancelled.
    pub async fn fire(&self) -> bool {
        let handle = self.0.cancel_handle.lock().clone();
        match handle {
            Some(h) => h.cancel().await,
            None => false,
        }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.inner.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.inner.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.inner.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.inner.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(pgwire::api::cancel::DefaultCancelHandler::new(
            self.inner.frontend.connections.clone(),
        ))
    }

    fn error_handler(&self) -> Arc<impl pgwire::api::ErrorHandler> {
        Arc::new(NoopHandler)
    }
}

/// One connection's handlers. Its login exchange lives here, so no two
/// connections ever share authentication state.
pub struct Handler {
    pub(crate) frontend: Arc<Frontend>,
    pub(crate) over_limit: bool,
    pub(crate) login: parking_lot::Mutex<Login>,
    /// The COPY FROM STDIN in progress, between its CopyInResponse and the
    /// client's CopyDone.
    pub(crate) copy: parking_lot::Mutex<Option<ActiveCopy>>,
    /// Set once the login took one of the `max_connections` slots.
    pub(crate) holds_slot: Arc<AtomicBool>,
    /// The connection's cancel handle, once logged in.
    pub(crate) cancel_handle: parking_lot::Mutex<Option<Arc<pgwire::api::ConnectionHandle>>>,
    /// Portals this connection left suspended by a row limit (each keeps a
    /// query running); see `execute.rs`.
    pub(crate) suspended: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// The statements and portals this connection named (see `named.rs`).
    pub(crate) names: parking_lot::Mutex<crate::named::Names>,
    /// Where LISTEN notifications for this connection go.
    pub(crate) mailbox: strata_session::Mailbox,
}

impl Drop for Handler {
    fn drop(&mut self) {
        strata_common::stats::connection_closed();
        if self.holds_slot.load(Ordering::SeqCst) {
            self.frontend.logged_in.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Handler {
    /// What a CancelRequest (or the disconnect watcher) fires for the
    /// statement about to run. The receiver also resolves, with an error,
    /// when its sender is replaced; only a real cancel counts.
    async fn cancel_signal(&self) -> Option<SharedCancel> {
        let handle = self.cancel_handle.lock().clone()?;
        let rx = handle.start_query().await;
        let signal: CancelSignal = Box::pin(async move {
            if rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        Some(signal.shared())
    }

    /// The response to one statement's output; a COPY FROM STDIN is kept on
    /// the connection for the CopyData that follows. A query's first rows are
    /// computed here (the statement only planned it), so a cancel counts here
    /// too; writes have committed by now and are not affected.
    async fn respond(
        &self,
        out: QueryOutput,
        format: &Format,
        cancel: &Option<SharedCancel>,
    ) -> PgWireResult<Response> {
        // Rows keep watching the cancel while they stream, after the first.
        let out = match (out, cancel) {
            (
                QueryOutput::Rows {
                    schema,
                    stream,
                    tag,
                },
                Some(c),
            ) => QueryOutput::Rows {
                stream: until_cancelled(schema.clone(), stream, c.clone()),
                schema,
                tag,
            },
            (
                QueryOutput::CopyOut {
                    schema,
                    stream,
                    options,
                },
                Some(c),
            ) => QueryOutput::CopyOut {
                stream: until_cancelled(schema.clone(), stream, c.clone()),
                schema,
                options,
            },
            (other, _) => other,
        };
        // Counted after the cancel wrapping, so a cancel counts as an error.
        let (out, outcome) = crate::counted::output(out);
        let respond = async {
            match out {
                QueryOutput::CopyIn(load) => Ok(copy_in::start(self, load)),
                other => to_response(other, format).await,
            }
        };
        let result = match cancel {
            None => respond.await,
            Some(c) => tokio::select! {
                biased;
                r = respond => r,
                _ = c.clone() => Err(to_pg(strata_common::StrataError::QueryCanceled)),
            },
        };
        if result.is_err()
            && let Some(o) = outcome
        {
            o.fail();
        }
        result
    }
}

/// pgwire's `send_describe_response`, fed instead of sent.
async fn feed_describe_response<C, DR>(client: &mut C, response: &DR) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    DR: DescribeResponse,
{
    if let Some(types) = response.parameters() {
        let oids = types.iter().map(|t| t.oid()).collect();
        client
            .feed(PgWireBackendMessage::ParameterDescription(
                ParameterDescription::new(oids),
            ))
            .await?;
    }
    if response.is_no_data() {
        client
            .feed(PgWireBackendMessage::NoData(NoData::new()))
            .await?;
    } else {
        let fields = response.fields().iter().map(Into::into).collect();
        client
            .feed(PgWireBackendMessage::RowDescription(RowDescription::new(
                fields,
            )))
            .await?;
    }
    Ok(())
}

/// One statement's cancel signal, watched first while it executes and then
/// while its rows are computed and sent.
type SharedCancel = futures::future::Shared<CancelSignal>;

/// The statement's rows, ending with 57014 once `cancel` fires.
fn until_cancelled(
    schema: datafusion::arrow::datatypes::SchemaRef,
    stream: datafusion::execution::SendableRecordBatchStream,
    cancel: SharedCancel,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let rows = futures::stream::unfold(Some((stream, cancel)), |state| async move {
        let (mut stream, cancel) = state?;
        tokio::select! {
            biased;
            _ = cancel.clone() => Some((
                Err(datafusion::error::DataFusionError::External(Box::new(
                    strata_common::StrataError::QueryCanceled,
                ))),
                None,
            )),
            item = stream.next() => item.map(|i| (i, Some((stream, cancel)))),
        }
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows))
}

fn boxed(cancel: &Option<SharedCancel>) -> Option<CancelSignal> {
    cancel.clone().map(|c| Box::pin(c) as CancelSignal)
}

pub(crate) fn session_of<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Arc<Session>>()
        .map(|s| (*s).clone())
        .ok_or_else(|| fatal("08P01", "no session: the connection has not logged in"))
}

pub(crate) fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = "15.0".into();
    p
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::simple_query::on_query(self, client, query).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        let span = tracing::debug_span!("query", user = session.user(), protocol = "simple");
        let cancel = self.cancel_signal().await;
        let (outputs, error) = session
            .run_simple(query, boxed(&cancel))
            .instrument(span)
            .await;
        let mut responses = Vec::with_capacity(outputs.len() + 1);
        for o in outputs {
            // A BINARY cursor's FETCH answers in binary, as Postgres does.
            let format = match &o {
                QueryOutput::Rows { schema, .. }
                    if schema
                        .metadata()
                        .contains_key(strata_catalog::BINARY_RESULT_KEY) =>
                {
                    &Format::UnifiedBinary
                }
                _ => &Format::UnifiedText,
            };
            match self.respond(o, format, &cancel).await {
                Ok(r) => responses.push(r),
                // A statement that fails while computing its first rows ends the
                // string like any other error; the ones before it keep their results.
                Err(PgWireError::UserError(info)) => {
                    session.statement_failed();
                    responses.push(Response::Error(info));
                    return Ok(responses);
                }
                Err(other) => return Err(other),
            }
        }
        if let Some(e) = error {
            crate::counted::failed();
            responses.push(Response::Error(Box::new(error_info(e))));
        }
        Ok(responses)
    }
}

#[derive(Debug)]
pub struct StrataQueryParser;

#[async_trait]
impl QueryParser for StrataQueryParser {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = session_of(client)?;
        let span = tracing::debug_span!("parse", user = session.user());
        session
            .prepare(sql)
            .instrument(span)
            .await
            .inspect_err(|_| crate::counted::failed())
            .map_err(to_pg)
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok((0..stmt.param_types.len())
            .map(|i| described_type(stmt, i))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match &stmt.schema {
            Some(schema) => pg_fields(schema, format.unwrap_or(&Format::UnifiedText)),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Arc<Prepared>;
    type QueryParser = StrataQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.frontend.parser.clone()
    }

    /// Named statements are bounded per connection (see `named.rs`).
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::named::on_parse(self, client, message).await
    }

    /// Named portals are bounded per connection (see `named.rs`).
    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::named::on_bind(self, client, message).await
    }

    /// Rows stream to the socket (see `execute.rs`).
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        crate::execute::on_execute(self, client, message).await
    }

    /// A statement that returns no rows but takes parameters (a plain INSERT)
    /// is described as ParameterDescription + NoData. pgwire's default sends an
    /// empty RowDescription then, which pgjdbc takes for a result set.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            if let Some(Entry::Value(stored)) = client.portal_store().get_statement(name)
                && stored.statement.schema.is_none()
            {
                let server = self
                    .frontend
                    .parser
                    .get_parameter_types(&stored.statement)?;
                let oids = (0..stored.parameter_types.len().max(server.len()))
                    .map(|i| {
                        stored
                            .parameter_types
                            .get(i)
                            .cloned()
                            .flatten()
                            .or_else(|| server.get(i).cloned())
                            .unwrap_or(Type::UNKNOWN)
                            .oid()
                    })
                    .collect();
                client
                    .feed(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(oids),
                    ))
                    .await?;
                client
                    .feed(PgWireBackendMessage::NoData(NoData::new()))
                    .await?;
                return Ok(());
            }
        }
        // A SQL cursor is a portal too (psycopg's server-side cursors
        // describe it by name right after DECLARE).
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(name) = message.name.as_deref()
            && client.portal_store().get_portal(name).is_none()
            && let Some(schema) = session_of(client)?.cursor_columns(name)
        {
            let fields = pg_fields(&schema, &Format::UnifiedText)?;
            feed_describe_response(client, &DescribePortalResponse::new(fields)).await?;
            return Ok(());
        }
        // pgwire's own Describe, but fed rather than flushed (see `execute.rs`):
        // the answer goes out with the rest at Sync or Flush.
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            TARGET_TYPE_BYTE_STATEMENT => match client.portal_store().get_statement(name) {
                Some(Entry::Value(stmt)) => {
                    let response = self.do_describe_statement(client, &stmt).await?;
                    feed_describe_response(client, &response).await
                }
                Some(Entry::Empty) => {
                    feed_describe_response(client, &DescribeStatementResponse::no_data()).await
                }
                None => Err(PgWireError::StatementNotFound(name.to_owned())),
            },
            TARGET_TYPE_BYTE_PORTAL => match client.portal_store().get_portal(name) {
                Some(Entry::Value(portal)) => {
                    let response = self.do_describe_portal(client, &portal).await?;
                    feed_describe_response(client, &response).await
                }
                Some(Entry::Empty) => {
                    feed_describe_response(client, &DescribePortalResponse::no_data()).await
                }
                None => Err(PgWireError::PortalNotFound(name.to_owned())),
            },
            other => Err(PgWireError::InvalidTargetType(other)),
        }
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session_of(client)?;
        let params = decode_params(portal).inspect_err(|_| crate::counted::failed())?;
        let stmt = &portal.statement.statement;
        let span = tracing::debug_span!("execute", user = session.user(), protocol = "extended");
        let cancel = self.cancel_signal().await;
        let out = session
            .execute_with(stmt, params, boxed(&cancel))
            .instrument(span)
            .await
            .inspect_err(|_| crate::counted::failed())
            .map_err(to_pg)?;
        let response = self
            .respond(out, &portal.result_column_format, &cancel)
            .await;
        if response.is_err() {
            session.statement_failed();
        }
        response
    }
}

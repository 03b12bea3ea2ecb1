//! Login: SCRAM-SHA-256 against the catalog's verifiers (cleartext only when
//! configured), the loopback rule for a root without a password, and the
//! registration of a logged-in connection. Unknown users and wrong passwords
//! fail alike with 28P01 after a full exchange, as in Postgres.

use crate::errors::fatal;
use crate::handler::{Handler, server_parameters};
use crate::scram::{self, ScramError, ScramPending};
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures::{Sink, SinkExt};
use pgwire::api::auth::{
    StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::{ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use strata_catalog::{ROOT_USER, Role, password::ScramVerifier};
use strata_session::Session;

/// Authentication options from the `[auth]` config section.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// Ask for the password in cleartext instead of running SCRAM (only
    /// sensible over TLS); it is still checked against the SCRAM verifier.
    pub allow_cleartext: bool,
    /// Refuse logins over connections that did not negotiate TLS.
    pub tls_required: bool,
    /// Logged-in connections allowed at once (`max_connections`).
    pub max_connections: usize,
    /// Of those, the slots only dba and system users may take, so an
    /// operator can always log in (Postgres' `superuser_reserved_connections`).
    pub reserved_connections: usize,
}

/// Where a connection's login stands.
#[derive(Debug, Default)]
pub enum Login {
    #[default]
    Start,
    Cleartext {
        user: String,
    },
    ScramFirst {
        user: String,
        verifier: ScramVerifier,
        mock: bool,
    },
    ScramFinal {
        user: String,
        pending: ScramPending,
    },
    Done,
}

fn auth_failed(user: &str) -> PgWireError {
    fatal(
        "28P01",
        format!("password authentication failed for user \"{user}\""),
    )
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.startup_message(client, message).await {
            Err(e) => close_on_fatal(client, e).await,
            ok => ok,
        }
    }
}

/// A FATAL error ends the connection, as in Postgres: the ErrorResponse is the
/// last message, with no ReadyForQuery after it (which pgwire would send for an
/// error the handler returned), and the server closes its side.
async fn close_on_fatal<C>(client: &mut C, e: PgWireError) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if matches!(e, PgWireError::IoError(_)) {
        return Err(e);
    }
    let info = ErrorInfo::from(e);
    if !info.is_fatal() {
        return Err(PgWireError::UserError(Box::new(info)));
    }
    client
        .send(PgWireBackendMessage::ErrorResponse(info.into()))
        .await?;
    client.close().await?;
    Ok(())
}

impl Handler {
    async fn startup_message<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.over_limit {
                    return Err(fatal("53300", "sorry, too many clients already"));
                }
                if self.frontend.auth.tls_required && !client.is_secure() {
                    return Err(fatal(
                        "28000",
                        "this server requires TLS: connect with sslmode=require",
                    ));
                }
                let user = client
                    .metadata()
                    .get(METADATA_USER)
                    .cloned()
                    .unwrap_or_default();
                self.start(client, user).await
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let state = std::mem::take(&mut *self.login.lock());
                self.password_message(client, state, msg).await
            }
            _ => Ok(()),
        }
    }
}

impl Handler {
    async fn start<C>(&self, client: &mut C, user: String) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let def = self.frontend.engine.catalog().user(&user);
        if let Some(d) = &def
            && d.name == ROOT_USER
            && d.verifier.is_none()
        {
            // Until root has a password, only someone on this machine can be root.
            if client.socket_addr().ip().is_loopback() {
                return self.complete(client, user).await;
            }
            tracing::warn!(peer = %client.socket_addr(), "root without a password refused from a remote address");
            return Err(fatal(
                "28000",
                "root has no password and may log in only from loopback",
            ));
        }
        client.set_state(PgWireConnectionState::AuthenticationInProgress);
        if self.frontend.auth.allow_cleartext {
            *self.login.lock() = Login::Cleartext { user };
            client
                .send(PgWireBackendMessage::Authentication(
                    Authentication::CleartextPassword,
                ))
                .await?;
            return Ok(());
        }
        let (verifier, mock) = match def.and_then(|d| d.scram_verifier()) {
            Some(v) => (v, false),
            None => (
                scram::mock_verifier(&self.frontend.mock_secret, &user),
                true,
            ),
        };
        *self.login.lock() = Login::ScramFirst {
            user,
            verifier,
            mock,
        };
        client
            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                vec![scram::MECHANISM.to_string()],
            )))
            .await?;
        Ok(())
    }

    async fn password_message<C>(
        &self,
        client: &mut C,
        state: Login,
        msg: PasswordMessageFamily,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match state {
            Login::Cleartext { user } => {
                let given = msg.into_password()?.password;
                let verifier = self
                    .frontend
                    .engine
                    .catalog()
                    .user(&user)
                    .and_then(|d| d.scram_verifier());
                // PBKDF2 is CPU work: off the threads that serve sockets.
                let ok = match verifier {
                    Some(v) => tokio::task::spawn_blocking(move || v.matches_password(&given))
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                if !ok {
                    return Err(self.failed(client, &user));
                }
                self.complete(client, user).await
            }
            Login::ScramFirst {
                user,
                verifier,
                mock,
            } => {
                let (mechanism, data) = sasl_initial(msg)?;
                if mechanism != scram::MECHANISM {
                    return Err(fatal(
                        "08P01",
                        "client selected an invalid SASL authentication mechanism",
                    ));
                }
                let data = data.ok_or_else(|| fatal("08P01", "malformed SCRAM message"))?;
                let nonce = scram::server_nonce().map_err(crate::errors::to_pg)?;
                let pending = scram::client_first(&data, verifier, mock, &nonce)
                    .map_err(|e| self.scram_error(client, &user, e))?;
                let server_first = Bytes::from(pending.server_first().to_string());
                *self.login.lock() = Login::ScramFinal { user, pending };
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first),
                    ))
                    .await?;
                Ok(())
            }
            Login::ScramFinal { user, pending } => {
                let data = msg.into_sasl_response()?.data;
                let server_final = pending
                    .client_final(&data)
                    .map_err(|e| self.scram_error(client, &user, e))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(Bytes::from(server_final)),
                    ))
                    .await?;
                self.complete(client, user).await
            }
            Login::Start | Login::Done => Err(fatal("08P01", "unexpected password message")),
        }
    }

    fn scram_error<C: ClientInfo>(&self, client: &C, user: &str, e: ScramError) -> PgWireError {
        match e {
            ScramError::Failed => self.failed(client, user),
            ScramError::Protocol(m) => {
                tracing::info!(user = %user, peer = %client.socket_addr(), error = %m, "login failed: SCRAM protocol error");
                fatal("08P01", m)
            }
        }
    }

    /// Counts this connection among the logged-in ones, or refuses it with
    /// 53300 when they are all taken (the last `reserved_connections` by dba
    /// and system users only). The slot is given back when the handler drops.
    fn take_slot(&self, user: &str) -> PgWireResult<()> {
        let auth = &self.frontend.auth;
        let role = self
            .frontend
            .engine
            .catalog()
            .role_of(user)
            .unwrap_or_default();
        let taken = self.frontend.logged_in.fetch_add(1, Ordering::SeqCst) + 1;
        let refusal = if taken > auth.max_connections {
            Some("sorry, too many clients already")
        } else if taken
            > auth
                .max_connections
                .saturating_sub(auth.reserved_connections)
            && role < Role::Dba
        {
            Some("remaining connection slots are reserved for users with role dba or system")
        } else {
            None
        };
        if let Some(msg) = refusal {
            self.frontend.logged_in.fetch_sub(1, Ordering::SeqCst);
            tracing::info!(user = %user, logged_in = taken - 1, "login refused: {msg}");
            return Err(fatal("53300", msg));
        }
        self.holds_slot.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn failed<C: ClientInfo>(&self, client: &C, user: &str) -> PgWireError {
        // The log may say why; the client may not.
        let known = self.frontend.engine.catalog().user(user).is_some();
        tracing::info!(user = %user, peer = %client.socket_addr(), known_user = known, "login failed");
        auth_failed(user)
    }

    /// A successful login: register the connection for cancellation and give
    /// it its session.
    async fn complete<C>(&self, client: &mut C, user: String) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        *self.login.lock() = Login::Done;
        self.take_slot(&user)?;
        let (pid, secret) = self.frontend.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret.clone());
        let (handle, guard) = self.frontend.connections.register(pid, secret);
        // The handle stays with the handler, not in the session extensions
        // where pgwire would race it against the whole statement: Strata
        // watches it itself and ignores it once a statement commits (see
        // `Session::execute_with`).
        *self.cancel_handle.lock() = Some(handle);
        client.session_extensions().insert(guard);
        let session = Session::new(&self.frontend.engine, &user);
        session.apply_startup_parameters(client.metadata().iter());
        session.attach_mailbox(pid, self.mailbox.clone());
        client
            .session_extensions()
            .insert::<Arc<Session>>(Arc::new(session));
        tracing::info!(user = %user, pid, peer = %client.socket_addr(), "login");
        finish_authentication(client, &server_parameters()).await
    }
}

/// SASLInitialResponse: mechanism name, then the data's length (-1: none) and
/// the data. Parsed here with bounds checks, since a client controls it.
fn sasl_initial(msg: PasswordMessageFamily) -> PgWireResult<(String, Option<Bytes>)> {
    let malformed = || fatal("08P01", "malformed SASLInitialResponse message");
    let mut body = match msg {
        PasswordMessageFamily::Raw(body) => body,
        other => {
            let r = other.into_sasl_initial_response()?;
            return Ok((r.auth_method, r.data));
        }
    };
    let nul = body.iter().position(|b| *b == 0).ok_or_else(malformed)?;
    let mechanism = String::from_utf8(body.split_to(nul).to_vec()).map_err(|_| malformed())?;
    body.advance(1);
    if body.remaining() < 4 {
        return Err(malformed());
    }
    let len = body.get_i32();
    if len < 0 {
        return Ok((mechanism, None));
    }
    let len = usize::try_from(len).map_err(|_| malformed())?;
    if body.remaining() < len {
        return Err(malformed());
    }
    Ok((mechanism, Some(body.split_to(len).freeze())))
}

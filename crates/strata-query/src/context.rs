//! What one statement runs with: the engine, the acting user, the session's
//! DataFusion context (its functions, the user and transaction block a scan
//! reads from its config), search_path, and the transaction block its writes
//! stage into. The session crate owns a connection's state and hands the
//! executors here this much of it.

use crate::engine::{CATALOG_WITH_SYSTEM_COLUMNS, Engine};
use crate::txn::TxnHandle;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_catalog::Role;
use strata_common::{Result, StrataError};
use strata_pgcatalog::Vars;
use strata_sql::ObjectRef;
use strata_sql::sqlparser::ast;

/// The user a statement acts as, carried in the DataFusion session config so a
/// table provider scoping a USER table's scan can read it.
#[derive(Debug, Clone)]
pub struct ActingUser(pub String);

pub struct QueryContext {
    pub(crate) engine: Arc<Engine>,
    pub(crate) ctx: SessionContext,
    user: String,
    /// The user that logged in; differs from `user` inside EXECUTE AS.
    session_user: String,
    /// The session's settings (search_path is read from them).
    vars: Vars,
    /// Shared with EXECUTE AS delegates and the DataFusion config (scans
    /// overlay the block's staged rows).
    txn: TxnHandle,
    /// When the login user was created: a user dropped and re-created under
    /// the same name is another user, and this session is not theirs.
    login_incarnation: Option<i64>,
    /// Set once the running statement's writes start to commit (shared with
    /// EXECUTE AS delegates, whose writes are the statement's).
    committing: Arc<AtomicBool>,
}

impl std::fmt::Debug for QueryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryContext")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl QueryContext {
    /// A context acting as `user` over `state` (the engine's base state, or a
    /// session's own for an EXECUTE AS delegate), with the per-session
    /// Postgres functions registered.
    pub fn new(
        engine: Arc<Engine>,
        mut state: SessionState,
        user: String,
        session_user: String,
        txn: TxnHandle,
        vars: Vars,
        committing: Arc<AtomicBool>,
    ) -> QueryContext {
        state
            .config_mut()
            .set_extension(Arc::new(ActingUser(user.clone())));
        state.config_mut().set_extension(Arc::new(txn.clone()));
        let ctx = SessionContext::new_with_state(state);
        strata_pgcatalog::functions::register(&ctx, &user, &session_user);
        strata_pgcatalog::functions::register_visibility(
            &ctx,
            &vars,
            &engine.tiers,
            &engine.rel_namespaces,
        );
        let login_incarnation = engine.catalog.user(&session_user).map(|u| u.created_at);
        QueryContext {
            engine,
            ctx,
            user,
            session_user,
            vars,
            txn,
            login_incarnation,
            committing,
        }
    }

    /// The user this statement acts as: the login user, or the user an
    /// `EXECUTE AS USER` names for the statement it wraps.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The user that logged in, whatever user a statement acts as.
    pub fn session_user(&self) -> &str {
        &self.session_user
    }

    /// The acting user's role, read from the catalog on every call so that
    /// ALTER USER applies at once; a user dropped while logged in has the
    /// lowest role.
    pub fn role(&self) -> Role {
        self.engine
            .catalog
            .role_of(&self.user)
            .unwrap_or(Role::User)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The DataFusion context statements are planned and run in.
    pub fn df(&self) -> &SessionContext {
        &self.ctx
    }

    /// The session's settings.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// The namespace unqualified names resolve to: the first of search_path.
    pub fn current_namespace(&self) -> String {
        strata_pgcatalog::first_in_search_path(&self.vars.lock())
    }

    /// A name's namespace (the current one when it names none) and name.
    pub fn resolve(&self, r: &ObjectRef) -> (String, String) {
        (
            r.namespace
                .clone()
                .unwrap_or_else(|| self.current_namespace()),
            r.name.clone(),
        )
    }

    pub fn txn(&self) -> &TxnHandle {
        &self.txn
    }

    /// Fails once the user this session logged in as has been dropped (or
    /// dropped and created again): its statements must not run as, or see the
    /// rows of, whoever holds the name now.
    pub fn check_login_user(&self) -> Result<()> {
        let now = self
            .engine
            .catalog
            .user(&self.session_user)
            .map(|u| u.created_at);
        if now == self.login_incarnation {
            return Ok(());
        }
        Err(StrataError::InvalidAuthorization(format!(
            "user \"{}\" that this session logged in as has been dropped; reconnect",
            self.session_user
        )))
    }

    /// A statement starts: it has not begun to commit.
    pub fn start_statement(&self) {
        self.committing.store(false, Ordering::SeqCst);
    }

    /// Called by the write path just before a statement's writes commit:
    /// from here on neither a cancel nor the statement timeout may report
    /// the statement as failed.
    pub(crate) fn mark_committing(&self) {
        self.committing.store(true, Ordering::SeqCst);
    }

    /// Whether the running statement's writes have begun to commit.
    pub fn is_committing(&self) -> bool {
        self.committing.load(Ordering::SeqCst)
    }

    /// The flag `is_committing` reads, for a delegate acting for this
    /// statement (EXECUTE AS).
    pub fn committing_flag(&self) -> Arc<AtomicBool> {
        self.committing.clone()
    }

    /// Plans a statement with DataFusion. A query that names `_seq` or `_deleted`
    /// is planned against the catalog that shows them.
    pub async fn plan(&self, stmt: ast::Statement, sql: &str) -> Result<LogicalPlan> {
        let mut state = self.ctx.state();
        {
            let opts = state.config_mut().options_mut();
            opts.catalog.default_schema = self.current_namespace();
            if mentions_system_columns(sql) {
                opts.catalog.default_catalog = CATALOG_WITH_SYSTEM_COLUMNS.into();
            }
        }
        Ok(state
            .statement_to_plan(DfStatement::Statement(Box::new(stmt)))
            .await?)
    }
}

/// `tableoid` is the catalogs' system column (pg_dump reads it with every
/// catalog row), shown by the same catalog.
fn mentions_system_columns(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower.contains("_seq") || lower.contains("_deleted") || lower.contains("tableoid")
}

//! A connection's session: its settings, transaction block, savepoints,
//! cursors and named statements, and the prepare/execute entry points the
//! wire frontend calls. Statements run with the session's [`QueryContext`]
//! (which the session dereferences to), handed to the executors of
//! `strata-query`.

use crate::settings::{self, show_schema, variable_name};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_query::notify::Listening;
use strata_query::output::{QueryOutput, batch_output, batch_stream};
use strata_query::prepared::{
    PlanKind, Prepared, ValueSrc, bind_params, ends_block, note_param, note_wire_types,
};
use strata_query::txn::{TxnHandle, TxnStatus};
use strata_query::{Engine, QueryContext, ddl, dml, panics, privileges, users};
use strata_sql::sqlparser::ast;
use strata_sql::{Statement, normalize_ident};

pub struct Session {
    /// What statements run with: engine, users, DataFusion context, block.
    cx: QueryContext,
    /// What RESET returns each setting to: the client's startup value or the
    /// default.
    pub(crate) reset_values: Mutex<BTreeMap<String, String>>,
    /// Statements named by SQL PREPARE, for EXECUTE and DEALLOCATE.
    pub(crate) sql_prepared: Mutex<HashMap<String, Arc<Prepared>>>,
    /// Open SQL cursors (shared with EXECUTE AS delegates).
    pub(crate) cursors: Arc<crate::cursors::Cursors>,
    /// LISTEN channels and the block's NOTIFYs (shared with delegates).
    listening: Arc<Listening>,
}

/// Resolves when the running statement should stop (a CancelRequest, the
/// client gone).
pub type CancelSignal = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.cx.user())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Session {
    type Target = QueryContext;

    fn deref(&self) -> &QueryContext {
        &self.cx
    }
}

impl Session {
    /// A new session for one connection, logged in as `user`.
    pub fn new(engine: &Arc<Engine>, user: &str) -> Session {
        let vars = settings::default_vars();
        let reset_values = Mutex::new(vars.clone());
        let cx = QueryContext::new(
            engine.clone(),
            engine.base_state(),
            user.to_string(),
            user.to_string(),
            TxnHandle::default(),
            Arc::new(Mutex::new(vars)),
            Arc::default(),
        );
        settings::register_functions(cx.df(), cx.vars());
        let cursors = Arc::default();
        crate::cursor_list::register(cx.df(), &cursors);
        let listening = Listening::new(engine.tiers().clone());
        strata_query::notify::register_functions(cx.df(), &listening, cx.txn());
        Session {
            cx,
            reset_values,
            sql_prepared: Mutex::new(HashMap::new()),
            cursors,
            listening,
        }
    }

    /// A session acting as `user` with this session's settings, for one
    /// delegated statement (`EXECUTE AS USER`). Privilege checks are the
    /// caller's business.
    pub fn as_user(&self, user: &str) -> Session {
        let vars = Arc::new(Mutex::new(self.vars().lock().clone()));
        let cx = QueryContext::new(
            self.engine().clone(),
            self.df().state(),
            user.to_string(),
            self.session_user().to_string(),
            self.txn().clone(),
            vars,
            self.committing_flag(),
        );
        settings::register_functions(cx.df(), cx.vars());
        strata_query::notify::register_functions(cx.df(), &self.listening, cx.txn());
        Session {
            cx,
            reset_values: Mutex::new(self.reset_values.lock().clone()),
            sql_prepared: Mutex::new(HashMap::new()),
            cursors: self.cursors.clone(),
            listening: self.listening.clone(),
        }
    }

    /// Where this session's notifications go (its connection, once logged in).
    pub fn attach_mailbox(&self, pid: i32, mailbox: strata_query::notify::Mailbox) {
        self.listening.attach(pid, mailbox);
    }

    /// The columns of the open SQL cursor `name` (a portal, for Describe).
    pub fn cursor_columns(&self, name: &str) -> Option<SchemaRef> {
        self.cursors.schema(name)
    }

    /// Idle, in a block, or in an aborted block: what ReadyForQuery reports.
    pub fn transaction_status(&self) -> TxnStatus {
        self.txn().status()
    }

    /// A statement failed after `execute` returned (while its rows streamed):
    /// inside a block that aborts the block, as any other error does.
    pub fn statement_failed(&self) {
        self.txn().fail();
    }

    /// Parses and plans one statement (extended protocol `Parse`).
    pub async fn prepare(&self, sql: &str) -> Result<Option<Arc<Prepared>>> {
        self.check_login_user()?;
        match strata_pgcatalog::compat::parse_one(sql) {
            Ok(None) => Ok(None),
            Ok(Some(stmt)) => self.prepare_in_block(sql, stmt).await.map(Some),
            Err(e) => {
                self.txn().fail();
                Err(e)
            }
        }
    }

    /// Plans a statement as the transaction state allows: in an aborted block
    /// only COMMIT and ROLLBACK (25P02 otherwise), and a failure inside a block
    /// aborts it.
    async fn prepare_in_block(&self, sql: &str, stmt: Statement) -> Result<Arc<Prepared>> {
        let result = match self.check_not_aborted(ends_block(&stmt)) {
            Ok(()) => self.prepare_consistently(sql, stmt).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.txn().fail();
        }
        result
    }

    /// Plans a statement against one version of the catalog: a planning error
    /// while DDL changed a table under it (a column read from one definition,
    /// looked up in the next) plans it again, so the statement sees either the
    /// old table or the new one, as under Postgres' locks.
    async fn prepare_consistently(&self, sql: &str, stmt: Statement) -> Result<Arc<Prepared>> {
        let mut attempt = 0;
        loop {
            let before = self.engine().catalog().version();
            let result = panics::catch(self.prepare_statement(sql, stmt.clone())).await;
            match result {
                Ok(mut p) => {
                    if let Some(fresh) = Arc::get_mut(&mut p) {
                        fresh.source = Some(stmt);
                    }
                    return Ok(p);
                }
                Err(e) if attempt < MAX_REPLANS && self.engine().catalog().version() != before => {
                    tracing::debug!(error = %e, "the catalog changed while planning; planning again");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// In an aborted block only what ends it runs.
    fn check_not_aborted(&self, ends_block: bool) -> Result<()> {
        if self.txn().status() == TxnStatus::Failed && !ends_block {
            return Err(StrataError::InFailedTransaction);
        }
        Ok(())
    }

    pub(crate) async fn prepare_statement(
        &self,
        sql: &str,
        stmt: Statement,
    ) -> Result<Arc<Prepared>> {
        let catalog_version = self.engine().catalog().version();
        let command = |stmt: Statement| Prepared {
            sql: sql.to_string(),
            kind: PlanKind::Command(Box::new(stmt)),
            param_types: vec![],
            param_sql_types: vec![],
            schema: None,
            catalog_version,
            source: None,
            optimized: Default::default(),
        };
        if let Statement::ExecuteAs {
            user,
            statement,
            sql: inner_sql,
        } = &stmt
        {
            // The inner statement is planned as the target so Describe shows
            // its columns; it is planned again when it runs.
            privileges::check_delegation(self, user)?;
            let inner = Box::pin(
                self.as_user(user)
                    .prepare_statement(inner_sql, (**statement).clone()),
            )
            .await?;
            if !inner.param_types.is_empty() {
                return Err(StrataError::unsupported(
                    "parameters inside EXECUTE AS USER are not supported",
                ));
            }
            let mut p = command(stmt);
            p.schema = inner.schema.clone();
            return Ok(Arc::new(p));
        }
        let Statement::Sql(ast) = stmt else {
            let mut p = command(stmt);
            p.schema = match &p.kind {
                PlanKind::Command(s) => match s.as_ref() {
                    Statement::Fetch {
                        cursor,
                        move_only: false,
                        ..
                    } => self.cursors.schema(cursor),
                    other => ddl::result_schema(other),
                },
                _ => None,
            };
            return Ok(Arc::new(p));
        };
        let mut ast = ast;
        if sql.to_ascii_lowercase().contains("pg_cursors") {
            crate::cursor_list::rewrite(&mut ast);
        }
        let casts = cast_params(&ast);
        let mut prepared = match *ast {
            ast::Statement::Query(q) => {
                if let Some(point) = dml::point_select(self, &q)? {
                    let (kind, schema, param_types) = point;
                    Prepared {
                        sql: sql.into(),
                        kind,
                        param_types,
                        param_sql_types: vec![],
                        schema: Some(schema),
                        catalog_version,
                        source: None,
                        optimized: Default::default(),
                    }
                } else {
                    let names = postgres_column_names(&q);
                    let plan = self.plan(ast::Statement::Query(q), sql).await?;
                    let analyzed = self.analyzed_schema(&plan);
                    let mut p = query_prepared(sql, plan, catalog_version)?;
                    p.schema = p.schema.map(|s| {
                        let s = match &analyzed {
                            Some(a) => retype(&s, a),
                            None => s,
                        };
                        rename_fields(s, names)
                    });
                    p
                }
            }
            ast @ ast::Statement::Explain { .. } => {
                let plan = self.plan(ast, sql).await?;
                query_prepared(sql, plan, catalog_version)?
            }
            ast::Statement::Insert(ins) => {
                dml::prepare_insert(self, sql, ins, catalog_version).await?
            }
            ast::Statement::Update(upd) => {
                dml::prepare_update(self, sql, upd, catalog_version).await?
            }
            ast::Statement::Delete(del) => {
                dml::prepare_delete(self, sql, del, catalog_version).await?
            }
            ast::Statement::Declare { stmts } => {
                let (name, options, query) = crate::cursors::declaration(stmts)?;
                let plan = self.plan(ast::Statement::Query(query), sql).await?;
                let mut p = query_prepared(sql, plan, catalog_version)?;
                p.kind = match p.kind {
                    PlanKind::Query(plan) => PlanKind::Declare {
                        name,
                        hold: options.hold,
                        binary: options.binary,
                        plan,
                    },
                    other => other,
                };
                // DECLARE itself returns no rows; FETCH describes them.
                p.schema = None;
                p
            }
            ast::Statement::ShowVariable { variable } => {
                let mut p = command(Statement::Sql(Box::new(ast::Statement::ShowVariable {
                    variable: variable.clone(),
                })));
                p.schema = Some(show_schema(&variable_name(&variable)));
                p
            }
            other => command(Statement::Sql(Box::new(other))),
        };
        if let Some(schema) = prepared.schema.take() {
            prepared.schema = Some(self.mark_sources(&prepared.kind, schema));
        }
        if let PlanKind::PointSelect(p) = &prepared.kind
            && let ValueSrc::Param(i) = p.key
        {
            let ty = p.table.pk().ty.clone();
            note_param(&mut prepared, i, &ty);
        }
        for (i, ty) in casts {
            note_param(&mut prepared, i, &ty);
        }
        note_wire_types(&mut prepared);
        Ok(Arc::new(prepared))
    }

    /// The result columns as the rows will have them: DataFusion's analyzer
    /// coerces types after the plan is built (a UNION of an int and a bigint
    /// is bigint), and a client must be told the type it will be sent.
    fn analyzed_schema(&self, plan: &LogicalPlan) -> Option<Schema> {
        let state = self.df().state();
        let analyzed = state
            .analyzer()
            .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
            .ok()?;
        Some(analyzed.schema().as_arrow().clone())
    }

    /// Marks the result columns that are a table's columns as is with where
    /// they come from (see `SOURCE_TABLE_KEY`).
    fn mark_sources(&self, kind: &PlanKind, schema: SchemaRef) -> SchemaRef {
        let source = |i: usize| -> Option<(Arc<strata_catalog::TableDef>, usize)> {
            match kind {
                PlanKind::PointSelect(p) => {
                    let col = *p.projection.get(i)?;
                    Some((p.table.clone(), col))
                }
                PlanKind::Query(plan) => {
                    let (qualifier, field) = plan.schema().qualified_field(i);
                    let qualifier = qualifier?;
                    let ns = qualifier
                        .schema()
                        .map(str::to_string)
                        .unwrap_or_else(|| self.current_namespace());
                    let def = self.engine().catalog().table(&ns, qualifier.table())?;
                    let col = def.column_index(field.name())?;
                    Some((def, col))
                }
                _ => None,
            }
        };
        if schema.fields().is_empty()
            || !matches!(kind, PlanKind::Query(_) | PlanKind::PointSelect(_))
        {
            return schema;
        }
        if let PlanKind::Query(plan) = kind
            && plan.schema().fields().len() != schema.fields().len()
        {
            return schema;
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| match source(i) {
                Some((def, col)) => {
                    let mut meta = f.metadata().clone();
                    meta.insert(
                        strata_catalog::SOURCE_TABLE_KEY.into(),
                        strata_pgcatalog::table_oid(&def).to_string(),
                    );
                    meta.insert(
                        strata_catalog::SOURCE_COLUMN_KEY.into(),
                        (col + 1).to_string(),
                    );
                    f.as_ref().clone().with_metadata(meta)
                }
                None => f.as_ref().clone(),
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Executes a prepared statement with bound parameters. An error inside a
    /// transaction block aborts the block.
    pub async fn execute(
        &self,
        prepared: &Arc<Prepared>,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput> {
        self.execute_with(prepared, params, None).await
    }

    /// `execute`, cut short by `cancel` (a CancelRequest, the client going
    /// away) or statement_timeout — but only before the statement starts to
    /// commit: a statement whose writes are committing runs to its end and
    /// reports success, so a client is never told that a committed statement
    /// failed.
    pub async fn execute_with(
        &self,
        prepared: &Arc<Prepared>,
        params: Vec<ScalarValue>,
        cancel: Option<CancelSignal>,
    ) -> Result<QueryOutput> {
        self.check_login_user()?;
        self.check_not_aborted(prepared.ends_block())?;
        self.start_statement();
        let run = panics::catch(self.execute_prepared(prepared, params));
        tokio::pin!(run);
        let deadline = self
            .statement_timeout()
            .map(|limit| tokio::time::Instant::now() + limit);
        let mut cancel = cancel.unwrap_or_else(|| Box::pin(std::future::pending()));
        let timeout = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(timeout);
        // Each fires once; after the commit has begun it is ignored.
        let (mut watch_cancel, mut watch_timeout) = (true, true);
        let result = loop {
            tokio::select! {
                biased;
                out = &mut run => break out,
                _ = &mut cancel, if watch_cancel => {
                    if !self.is_committing() {
                        break Err(StrataError::QueryCanceled);
                    }
                    watch_cancel = false;
                }
                _ = &mut timeout, if watch_timeout => {
                    if !self.is_committing() {
                        break Err(StrataError::StatementTimeout);
                    }
                    watch_timeout = false;
                }
            }
        };
        let result = match deadline {
            Some(d) => result.map(|o| settings::output_until(o, d)),
            None => result,
        };
        if result.is_err() {
            self.txn().fail();
        }
        result
    }

    async fn execute_prepared(
        &self,
        prepared: &Arc<Prepared>,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput> {
        let mut prepared = prepared.clone();
        let mut attempt = 0;
        loop {
            if prepared.catalog_version != self.engine().catalog().version()
                && !matches!(prepared.kind, PlanKind::Command(_))
            {
                // A table changed since this was planned: plan again from the text.
                prepared = self.replan(&prepared).await?;
            }
            match self.execute_planned(&prepared, params.clone()).await {
                // Altered between planning and the write lock; nothing was
                // written, so the statement runs again on the new definition.
                Err(StrataError::DefinitionChanged(m)) if attempt < MAX_REPLANS => {
                    tracing::debug!(reason = %m, "planning the statement again");
                    attempt += 1;
                    prepared = self.replan(&prepared).await?;
                }
                other => return other,
            }
        }
    }

    /// Plans a statement again after DDL. Its result columns were described
    /// to the client already (Describe, or a driver's cached statement), so
    /// they may not change type: the client would decode the new values by
    /// the old types. Postgres refuses the same way.
    async fn replan(&self, prepared: &Prepared) -> Result<Arc<Prepared>> {
        let again = match &prepared.source {
            Some(stmt) => self.prepare_in_block(&prepared.sql, stmt.clone()).await?,
            None => self
                .prepare(&prepared.sql)
                .await?
                .ok_or_else(|| StrataError::internal("statement vanished"))?,
        };
        if !same_result_type(prepared.schema.as_ref(), again.schema.as_ref()) {
            self.txn().fail();
            return Err(StrataError::FeatureNotSupported(
                "cached plan must not change result type".into(),
            ));
        }
        Ok(again)
    }

    async fn execute_planned(
        &self,
        prepared: &Arc<Prepared>,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput> {
        let params = coerce_params(prepared, params)?;
        match &prepared.kind {
            PlanKind::Query(plan) => {
                if let Some(output) = self.execute_optimized(prepared, plan, &params) {
                    return Ok(output);
                }
                let plan = bind_params((**plan).clone(), &params)?;
                let df = self.df().execute_logical_plan(plan).await?;
                let schema = result_schema(prepared, df.schema().as_arrow());
                let stream = self.engine().execute(df);
                Ok(QueryOutput::Rows {
                    schema,
                    stream,
                    tag: "SELECT".into(),
                })
            }
            PlanKind::PointSelect(p) => {
                dml::execute_point_select(self, p, &params, prepared.schema.clone()).await
            }
            PlanKind::Insert(p) => dml::execute_insert(self, p, &params).await,
            PlanKind::Update(p) => dml::execute_update(self, p, params).await,
            PlanKind::Delete(p) => dml::execute_delete(self, p, params).await,
            PlanKind::Declare {
                name,
                hold,
                binary,
                plan,
            } => {
                let options = crate::cursors::Options {
                    hold: *hold,
                    binary: *binary,
                };
                self.declare_cursor(&prepared.sql, name, options, plan, params)
                    .await
            }
            PlanKind::Command(stmt) => self.execute_command(stmt).await,
        }
    }

    /// A prepared query run from its plan optimized once (see
    /// `strata_query::plan_cache`); None when it does not qualify or the
    /// values do not bind, and the query is planned as usual.
    fn execute_optimized(
        &self,
        prepared: &Prepared,
        plan: &LogicalPlan,
        params: &[ScalarValue],
    ) -> Option<QueryOutput> {
        let state = self.df().state();
        let typed = prepared.param_types.iter().all(Option::is_some);
        let optimized = prepared.optimized.get(plan, &state, typed)?;
        let bound = bind_params(optimized.clone(), params).ok()?;
        let schema = result_schema(prepared, bound.schema().as_arrow());
        let stream = self.engine().execute_optimized(state, bound);
        Some(QueryOutput::Rows {
            schema,
            stream,
            tag: "SELECT".into(),
        })
    }

    /// Runs a simple-query string: every statement in turn, stopping at the
    /// first error. Results of all but the last statement are read fully before
    /// the next statement runs, as Postgres does.
    /// `cancel` cuts its statements short as it does for `execute_with`.
    pub async fn run_simple(
        &self,
        sql: &str,
        cancel: Option<CancelSignal>,
    ) -> (Vec<QueryOutput>, Option<StrataError>) {
        use futures::FutureExt;
        let cancel = cancel.map(|c| c.shared());
        let stmts = match strata_pgcatalog::compat::parse_sql(sql) {
            Ok(s) => s,
            Err(e) => {
                self.txn().fail();
                return (vec![], Some(e));
            }
        };
        let n = stmts.len();
        let mut out = Vec::with_capacity(n);
        for (i, stmt) in stmts.into_iter().enumerate() {
            let result = async {
                let p = self.prepare_in_block(sql, stmt).await?;
                let signal = cancel.clone().map(|c| Box::pin(c) as CancelSignal);
                let o = self.execute_with(&p, vec![], signal).await?;
                if i + 1 < n {
                    // Its rows are computed here, still cancellable.
                    match cancel.clone() {
                        None => materialize(o).await,
                        Some(c) => tokio::select! {
                            biased;
                            r = materialize(o) => r,
                            _ = c => Err(StrataError::QueryCanceled),
                        },
                    }
                } else {
                    Ok(o)
                }
            }
            .await
            .inspect_err(|_| self.txn().fail());
            match result {
                Ok(o) => out.push(o),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    async fn execute_command(&self, stmt: &Statement) -> Result<QueryOutput> {
        privileges::check_statement(self, stmt)?;
        match stmt {
            Statement::ExecuteAs {
                user,
                statement,
                sql,
            } => {
                privileges::check_delegation(self, user)?;
                tracing::debug!(acting_as = %user, "execute as");
                let delegate = self.as_user(user);
                let p = Box::pin(delegate.prepare_statement(sql, (**statement).clone())).await?;
                Box::pin(delegate.execute(&p, vec![])).await
            }
            Statement::CreateUser { .. }
            | Statement::AlterUser { .. }
            | Statement::DropUser { .. } => users::execute(self, stmt).await,
            Statement::Sql(ast) => match ast.as_ref() {
                ast::Statement::Set(set) => self.set(set),
                ast::Statement::ShowVariable { variable } => self.show(&variable_name(variable)),
                ast::Statement::Reset(r) => match &r.reset {
                    ast::Reset::ALL => self.reset(None),
                    ast::Reset::ConfigurationParameter(name) => {
                        self.reset(Some(&name.to_string().to_lowercase()))
                    }
                },
                ast::Statement::Discard { object_type } => self.discard(object_type),
                ast::Statement::Prepare {
                    name,
                    data_types,
                    statement,
                } => crate::sql_prepare::prepare(self, name, data_types, statement).await,
                ast::Statement::Execute {
                    name: Some(name),
                    parameters,
                    ..
                } => Box::pin(crate::sql_prepare::execute(self, name, parameters)).await,
                ast::Statement::Deallocate { name, .. } => {
                    crate::sql_prepare::deallocate(self, name)
                }
                ast::Statement::StartTransaction { .. } => {
                    self.txn().begin();
                    Ok(QueryOutput::Transaction {
                        tag: "BEGIN".into(),
                        in_block: true,
                    })
                }
                ast::Statement::LISTEN { channel } => {
                    self.listening.listen(self, &channel.value).await?;
                    Ok(QueryOutput::command("LISTEN"))
                }
                ast::Statement::UNLISTEN { channel } => {
                    self.listening.unlisten(&channel.value);
                    Ok(QueryOutput::command("UNLISTEN"))
                }
                ast::Statement::NOTIFY { channel, payload } => {
                    let in_block = self.txn().in_block();
                    let payload = payload.as_deref().unwrap_or("");
                    self.listening.notify(in_block, &channel.value, payload)?;
                    Ok(QueryOutput::command("NOTIFY"))
                }
                ast::Statement::Commit { .. } => self.end_block(true).await,
                ast::Statement::Rollback {
                    savepoint: None, ..
                } => self.end_block(false).await,
                copy @ ast::Statement::Copy { .. } => crate::copy::execute(self, copy).await,
                ast::Statement::Savepoint { name } => {
                    let max = self.engine().options().max_transaction_memory;
                    self.txn().savepoint(&normalize_ident(name), max)?;
                    Ok(QueryOutput::command("SAVEPOINT"))
                }
                ast::Statement::ReleaseSavepoint { name } => {
                    self.txn().release(&normalize_ident(name))?;
                    Ok(QueryOutput::command("RELEASE"))
                }
                ast::Statement::Rollback {
                    savepoint: Some(name),
                    ..
                } => {
                    self.txn().rollback_to(&normalize_ident(name))?;
                    Ok(QueryOutput::command("ROLLBACK"))
                }
                other => ddl::execute(self, other).await,
            },
            Statement::Fetch {
                cursor,
                direction,
                move_only,
            } => self.cursors.fetch(cursor, *direction, *move_only).await,
            Statement::CloseCursor { name } => {
                self.cursors.close(name.as_deref())?;
                Ok(QueryOutput::command(if name.is_some() {
                    "CLOSE CURSOR"
                } else {
                    "CLOSE CURSOR ALL"
                }))
            }
            other => ddl::execute_strata(self, other).await,
        }
    }

    async fn end_block(&self, commit: bool) -> Result<QueryOutput> {
        let committing = commit && self.txn().status() == TxnStatus::InBlock;
        if committing {
            // WITH HOLD cursors read their rows before the block commits; if
            // they cannot, the block rolls back (as in Postgres).
            let max = self.engine().options().max_transaction_memory;
            if let Err(e) = self.cursors.hold_for_commit(max).await {
                let _ = strata_query::write::end_block(self, false).await;
                return Err(e);
            }
        }
        let result = strata_query::write::end_block(self, commit).await;
        let committed = committing && matches!(result, Ok("COMMIT"));
        self.cursors.end_transaction(committed);
        self.listening.end_block(committed);
        Ok(QueryOutput::Transaction {
            tag: result?.into(),
            in_block: false,
        })
    }

    /// DECLARE … CURSOR: starts the query and keeps its stream under `name`.
    /// Outside a block only WITH HOLD is allowed, and then the cursor's
    /// transaction is the DECLARE itself: its rows are read at once.
    async fn declare_cursor(
        &self,
        sql: &str,
        name: &str,
        options: crate::cursors::Options,
        plan: &LogicalPlan,
        params: Vec<ScalarValue>,
    ) -> Result<QueryOutput> {
        let in_block = self.txn().status() == TxnStatus::InBlock;
        if !in_block && !options.hold {
            return Err(StrataError::NoActiveTransaction(
                "DECLARE CURSOR can only be used in transaction blocks".into(),
            ));
        }
        let plan = bind_params(plan.clone(), &params)?;
        let df = self.df().execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = self.engine().execute(df);
        self.cursors.declare(name, sql, schema, stream, options)?;
        if !in_block {
            let max = self.engine().options().max_transaction_memory;
            self.cursors.hold_for_commit(max).await?;
            self.cursors.end_transaction(true);
        }
        Ok(QueryOutput::command("DECLARE CURSOR"))
    }
}

/// Parameters whose type a cast states (`$1::uuid`, `CAST($2 AS INT)`), which
/// DataFusion leaves untyped.
fn cast_params(stmt: &ast::Statement) -> Vec<(usize, strata_catalog::ColumnType)> {
    let mut out = vec![];
    let _ = ast::visit_expressions(stmt, |e| {
        if let ast::Expr::Cast {
            expr, data_type, ..
        } = e
            && let ast::Expr::Value(v) = expr.as_ref()
            && let ast::Value::Placeholder(p) = &v.value
            && let Ok(i) = p.trim_start_matches('$').parse::<usize>()
            && i >= 1
            && let Ok(ty) = strata_catalog::ColumnType::from_sql(data_type)
        {
            out.push((i - 1, ty));
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// The output names Postgres gives a SELECT's unnamed expressions: a function
/// call is named after the function, a cast after what it casts, anything else
/// `?column?`. DataFusion names them after their text (`count(*)`, `Int64(1)`).
/// None for a query whose columns cannot be matched to its select list.
fn postgres_column_names(q: &ast::Query) -> Option<Vec<Option<String>>> {
    fn name_of(e: &ast::Expr) -> Option<String> {
        match e {
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => None,
            ast::Expr::Function(f) => f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_lowercase()),
            ast::Expr::Cast { expr, .. } | ast::Expr::Nested(expr) => match expr.as_ref() {
                ast::Expr::Identifier(id) => Some(strata_sql::normalize_ident(id)),
                ast::Expr::CompoundIdentifier(parts) => {
                    parts.last().map(strata_sql::normalize_ident)
                }
                other => name_of(other),
            },
            _ => Some("?column?".into()),
        }
    }
    let ast::SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    sel.projection
        .iter()
        .map(|item| match item {
            ast::SelectItem::UnnamedExpr(e) => Some(name_of(e)),
            ast::SelectItem::ExprWithAlias { .. } => Some(None),
            _ => None,
        })
        .collect()
}

fn rename_fields(schema: SchemaRef, names: Option<Vec<Option<String>>>) -> SchemaRef {
    match names {
        Some(names) if names.len() == schema.fields().len() => {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .zip(names)
                .map(|(f, n)| match n {
                    Some(n) => f.as_ref().clone().with_name(n),
                    None => f.as_ref().clone(),
                })
                .collect();
            Arc::new(Schema::new(fields))
        }
        _ => schema,
    }
}

/// `named`'s fields (names, metadata) with `typed`'s data types, where the
/// two have as many fields.
/// A query's result columns: the names the prepared schema gives (those
/// Postgres would give), with the types the rows will have.
fn result_schema(prepared: &Prepared, rows: &Schema) -> SchemaRef {
    match &prepared.schema {
        Some(s) if s.fields().len() == rows.fields().len() => retype(s, rows),
        _ => Arc::new(rows.clone()),
    }
}

fn retype(named: &SchemaRef, typed: &Schema) -> SchemaRef {
    let fields = named.fields();
    if fields.len() != typed.fields().len()
        || fields
            .iter()
            .zip(typed.fields().iter())
            .all(|(a, b)| a.data_type() == b.data_type())
    {
        return named.clone();
    }
    let fields: Vec<Field> = fields
        .iter()
        .zip(typed.fields().iter())
        .map(|(a, b)| {
            a.as_ref()
                .clone()
                .with_data_type(b.data_type().clone())
                .with_nullable(a.is_nullable() || b.is_nullable())
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, named.metadata().clone()))
}

/// Whether two plans return columns of the same types, in the same order.
fn same_result_type(a: Option<&SchemaRef>, b: Option<&SchemaRef>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.fields().len() == b.fields().len()
                && a.fields()
                    .iter()
                    .zip(b.fields().iter())
                    .all(|(x, y)| x.data_type() == y.data_type())
        }
        _ => false,
    }
}

/// How often one statement is planned again because DDL changed its table
/// under it before it gives up with 40001.
const MAX_REPLANS: usize = 5;

fn query_prepared(sql: &str, plan: LogicalPlan, catalog_version: u64) -> Result<Prepared> {
    let types = plan.get_parameter_types()?;
    let mut param_types: Vec<Option<DataType>> = vec![];
    for (name, ty) in types {
        let idx: usize = name.trim_start_matches('$').parse().map_err(|_| {
            StrataError::unsupported(format!(
                "named parameter {name} is not supported; use $1, $2, ..."
            ))
        })?;
        if idx == 0 {
            return Err(StrataError::syntax("parameter $0 does not exist"));
        }
        if param_types.len() < idx {
            param_types.resize(idx, None);
        }
        param_types[idx - 1] = ty;
    }
    let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
    Ok(Prepared {
        sql: sql.into(),
        kind: PlanKind::Query(Box::new(plan)),
        param_types,
        param_sql_types: vec![],
        schema: Some(schema),
        catalog_version,
        source: None,
        optimized: Default::default(),
    })
}

/// Casts bound parameters to the types the plan inferred for them.
fn coerce_params(p: &Prepared, params: Vec<ScalarValue>) -> Result<Vec<ScalarValue>> {
    if params.len() < p.param_types.len() {
        return Err(StrataError::ProtocolViolation(format!(
            "statement needs {} parameters, {} given",
            p.param_types.len(),
            params.len()
        )));
    }
    params
        .into_iter()
        .enumerate()
        .map(|(i, v)| match p.param_types.get(i) {
            Some(Some(ty)) if &v.data_type() != ty => {
                let shown = v.to_string();
                let invalid = || {
                    StrataError::InvalidText(format!(
                        "invalid input syntax for type {ty}: \"{shown}\" (parameter ${})",
                        i + 1
                    ))
                };
                let cast = v.cast_to(ty).map_err(|_| invalid())?;
                // A number sent in binary converts to an integer only exactly,
                // as its text form would: 7.9 is an error, never 7 (a truncated
                // key would select, update or delete another row). Decimal and
                // float parameters round, as Postgres' assignment does.
                if v.data_type().is_numeric()
                    && ty.is_integer()
                    && !cast.is_null()
                    && !strata_common::exact::keeps_value(&cast, &v)
                {
                    return Err(invalid());
                }
                Ok(cast)
            }
            _ => Ok(v),
        })
        .collect()
}

async fn materialize(o: QueryOutput) -> Result<QueryOutput> {
    use futures::TryStreamExt;
    match o {
        QueryOutput::Rows {
            schema,
            stream,
            tag,
        } => {
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            Ok(batch_output(schema, batches, &tag))
        }
        QueryOutput::CopyOut {
            schema,
            stream,
            options,
        } => {
            let batches: Vec<RecordBatch> = stream.try_collect().await?;
            Ok(QueryOutput::CopyOut {
                stream: batch_stream(schema.clone(), batches),
                schema,
                options,
            })
        }
        // The client's rows come after the query string's response ends.
        QueryOutput::CopyIn(_) => Err(StrataError::unsupported(
            "COPY FROM STDIN must be the last statement of a query string",
        )),
        other => Ok(other),
    }
}

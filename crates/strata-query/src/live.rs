//! Live queries: `SUBSCRIBE TO …` answered as a COPY OUT stream of
//! `_op, _seq, columns…` rows — first up to `last_rows` current rows
//! (`snapshot`), then one row per committed change of the subscriber's rows.
//!
//! Writers collect what a commit changed only while someone subscribes (an
//! existence check per written key, the old row per deleted key), and
//! publish it after the commit, so a block's changes appear at COMMIT and
//! never on ROLLBACK. Each subscriber reads a bounded queue; one that falls
//! behind is cut off with an error instead of slowing writers.

use crate::context::QueryContext;
use crate::copy::CopyOptions;
use crate::dml::quote;
use crate::merged::live_row;
use crate::output::QueryOutput;
use crate::tiers::Tiers;
use crate::write::Put;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};
use strata_sql::{ObjectRef, Statement, TableKind};
use strata_tiers::changes::{Change, ChangeOp, ChangeReceiver, ChangeSet, RecvEnd};

/// What a commit needs from before it to describe its changes.
pub(crate) struct Before {
    /// Per put: the key's live version before (an update) or None (an insert).
    existed: Vec<Option<Vec<ScalarValue>>>,
    /// The rows the deletes remove (keys with no live row are left out).
    deleted: Vec<Vec<ScalarValue>>,
}

/// Reads what the changes replace, if any live query listens or the
/// table's changes are logged for resuming. Call holding `changes.writing()`.
pub(crate) async fn before_commit(
    tiers: &Tiers,
    table: &Arc<TableDef>,
    partition: &str,
    puts: &[Put],
    deletes: &[Vec<u8>],
) -> Result<Option<Before>> {
    let wanted = tiers.changes.listened(table.id) || tiers.change_log.logging(table.id);
    if !wanted || table.kind == TableKind::Stream && puts.is_empty() {
        return Ok(None);
    }
    let mut existed = Vec::with_capacity(puts.len());
    for (k, _) in puts {
        existed.push(live_row(tiers, table, partition, k).await?);
    }
    let mut deleted = vec![];
    for k in deletes {
        if let Some(row) = live_row(tiers, table, partition, k).await? {
            deleted.push(row);
        }
    }
    Ok(Some(Before { existed, deleted }))
}

/// How many `_seq` numbers a commit of `puts` uses: one per put and, when
/// its changes are described, one per deleted row, so that every change
/// has its own `_seq` to resume after.
pub(crate) fn seq_count(before: Option<&Before>, puts: usize) -> u64 {
    (puts + before.map_or(0, |b| b.deleted.len())) as u64
}

/// A commit's changes numbered from `first` (puts, then deletes), added to
/// the change log in the commit's batch when the table's log is on.
pub(crate) fn describe(
    tiers: &Tiers,
    batch: &mut strata_store::Batch,
    table: &TableDef,
    partition: &str,
    puts: &[Put],
    before: Option<Before>,
    first: u64,
) -> Result<Option<Vec<Change>>> {
    let Some(before) = before else {
        return Ok(None);
    };
    let mut changes = Vec::with_capacity(puts.len() + before.deleted.len());
    for (i, ((_, row), existed)) in puts.iter().zip(before.existed).enumerate() {
        changes.push(Change {
            op: if existed.is_some() {
                ChangeOp::Update
            } else {
                ChangeOp::Insert
            },
            seq: first + i as u64,
            row: row.clone(),
            old: existed,
        });
    }
    let after_puts = first + puts.len() as u64;
    for (j, row) in before.deleted.into_iter().enumerate() {
        changes.push(Change {
            op: ChangeOp::Delete,
            seq: after_puts + j as u64,
            row,
            old: None,
        });
    }
    if tiers.change_log.logging(table.id) {
        let now = strata_catalog::now_micros();
        tiers
            .change_log
            .append(&tiers.store, batch, table, partition, &changes, now)?;
    }
    Ok(Some(changes))
}

/// Publishes a committed partition's changes (called in commit order).
pub(crate) fn publish(
    tiers: &Tiers,
    table: &TableDef,
    partition: &str,
    changes: Option<Vec<Change>>,
) {
    if let Some(changes) = changes {
        tiers.changes.publish(ChangeSet {
            table_id: table.id,
            user: partition.to_string(),
            changes,
        });
    }
}

/// `SUBSCRIBE TO …`.
pub async fn subscribe(session: &QueryContext, stmt: &Statement) -> Result<QueryOutput> {
    let Statement::Subscribe {
        table,
        columns,
        filter,
        last_rows,
        from_seq,
        copy_options,
    } = stmt
    else {
        return Err(StrataError::internal("not a subscription"));
    };
    let options = copy_format(copy_options.as_deref())?;
    let def = resolve(session, table)?;
    // Checked here, not left to the snapshot's scan: `LIMIT 0` reads nothing.
    crate::privileges::check_table_access(&session.engine.catalog, session.user(), &def, false)?;
    let projection: Vec<usize> = match columns {
        None => (0..def.columns.len()).collect(),
        Some(cols) => cols
            .iter()
            .map(|c| {
                def.columns
                    .iter()
                    .position(|d| &d.name == c)
                    .ok_or_else(|| {
                        StrataError::UndefinedColumn(format!(
                            "column \"{c}\" of relation \"{}\" does not exist",
                            def.name
                        ))
                    })
            })
            .collect::<Result<_>>()?,
    };
    let table_schema = def.arrow_schema(false);
    let predicate = match filter {
        Some(f) => Some(compile(session, &table_schema, f)?),
        None => None,
    };
    let tiers = session.engine.tiers.clone();
    // Listen and start the table's change log while no writer is between
    // deciding how to describe its changes and publishing them: every commit
    // after `start` reaches the receiver, and is in the log.
    let user = crate::provider::partition_of(&def, session.user());
    let (receiver, start, log) = {
        let _settled = tiers.changes.settle().await;
        let receiver = tiers.changes.subscribe(def.id, &user);
        tiers.change_log.subscribe(&tiers.store, def.id)?;
        let log = LogGuard {
            tiers: tiers.clone(),
            table_id: def.id,
        };
        (receiver, tiers.store.last_seq(), log)
    };
    // Resuming: the log must still reach back to `from_seq` (checked again
    // as it is read).
    if let Some(s) = from_seq {
        if *s > start {
            return Err(StrataError::InvalidParameterValue(format!(
                "from_seq {s} is past the last committed _seq ({start})"
            )));
        }
        tiers.change_log.reaches(def.id, *s)?;
    }
    let snapshot = match from_seq {
        Some(_) => vec![],
        None => snapshot(session, &def, &projection, filter.as_deref(), *last_rows).await?,
    };
    // Changes up to here are in the snapshot (see `max_seq`), or were
    // received before the resumed-from `_seq`.
    let sent_upto = match from_seq {
        Some(s) => *s,
        None => start.max(max_seq(&snapshot)),
    };
    let schema = output_schema(&table_schema, &projection);
    let guard = tiers.live.register(
        receiver.depth(),
        session.user(),
        &def.namespace,
        &def.name,
        &describe_statement(stmt),
        strata_catalog::now_micros(),
    );
    let killed = guard.query.killed();
    let feed = Feed {
        rx: receiver,
        queue_size: tiers.changes.capacity(),
        killed,
        live: Live {
            guard,
            catalog: session.engine.catalog.clone(),
            def: def.clone(),
            user,
            table_schema,
            schema: schema.clone(),
            projection,
            predicate,
        },
        _log: log,
        tiers,
        sent_upto,
        replay: from_seq.map(|_| sent_upto),
        tick: tokio::time::interval_at(
            tokio::time::Instant::now() + std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        ),
    };
    let changes = futures::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        match feed.next().await {
            Ok(Some(batch)) => Some((Ok(batch), Some(feed))),
            Ok(None) => None,
            Err(e) => Some((Err(DataFusionError::External(Box::new(e))), None)),
        }
    });
    let stream = futures::stream::iter(snapshot.into_iter().map(Ok)).chain(changes);
    Ok(QueryOutput::CopyOut {
        schema: schema.clone(),
        stream: Box::pin(RecordBatchStreamAdapter::new(schema, stream)),
        options,
    })
}

/// The COPY options after `TO STDOUT`, read by COPY's own option parser.
fn copy_format(text: Option<&str>) -> Result<CopyOptions> {
    let Some(text) = text else {
        return CopyOptions::parse(&[], &[]);
    };
    let sql = format!("COPY subscription TO STDOUT {text}");
    let bad = || StrataError::Syntax(format!("invalid COPY options: {text}"));
    match strata_sql::parse_one(&sql).map_err(|_| bad())? {
        Some(Statement::Sql(ast)) => match *ast {
            datafusion::sql::sqlparser::ast::Statement::Copy {
                options,
                legacy_options,
                ..
            } => CopyOptions::parse(&options, &legacy_options),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The largest `_seq` among snapshot rows (column 1), 0 without rows.
fn max_seq(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column(1).as_any().downcast_ref::<Int64Array>())
        .flat_map(|a| a.iter().flatten())
        .max()
        .unwrap_or(0)
        .max(0) as u64
}

/// Keeps a table's change log on while a subscription is open.
struct LogGuard {
    tiers: Arc<Tiers>,
    table_id: u32,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.tiers
            .change_log
            .unsubscribe(self.table_id, strata_catalog::now_micros());
    }
}

/// Logged changes read per step while resuming.
const REPLAY_CHUNK: usize = 1024;

/// A subscription's changes after its snapshot: first those of the change
/// log after `from_seq` (resuming), then those of the bus, each `_seq` once.
struct Feed {
    rx: ChangeReceiver,
    /// The queue's size, for the message when it overflows.
    queue_size: usize,
    killed: tokio::sync::watch::Receiver<bool>,
    live: Live,
    _log: LogGuard,
    tiers: Arc<Tiers>,
    /// The last `_seq` the client has (or has seen reflected in the snapshot).
    sent_upto: u64,
    /// While resuming, where the next log read starts after.
    replay: Option<u64>,
    /// How often a quiet subscription checks its table is still there.
    tick: tokio::time::Interval,
}

impl Feed {
    /// The next batch of changes; None when the subscription is killed.
    async fn next(&mut self) -> Result<Option<RecordBatch>> {
        while let Some(after) = self.replay {
            let (entries, next) = self.tiers.change_log.read(
                &self.tiers.store,
                &self.live.def,
                after,
                REPLAY_CHUNK,
            )?;
            if entries.is_empty() {
                // Caught up: whatever committed since is on the bus.
                self.replay = None;
                break;
            }
            self.replay = Some(next);
            let set = ChangeSet {
                table_id: self.live.def.id,
                user: self.live.user.clone(),
                changes: entries
                    .into_iter()
                    .filter(|e| e.user == self.live.user)
                    .map(|e| e.change)
                    .collect(),
            };
            if let Some(b) = self.deliver(&set)? {
                return Ok(Some(b));
            }
        }
        loop {
            let got = tokio::select! {
                got = self.rx.recv() => got,
                // KILL LIVE QUERY: the stream ends, the COPY completes.
                _ = self.killed.changed() => return Ok(None),
                // A quiet table may have been dropped or altered meanwhile.
                _ = self.tick.tick() => {
                    self.check_table()?;
                    continue;
                }
            };
            match got {
                Ok(set) => {
                    // Changes up to `sent_upto` came from the log or the
                    // snapshot already; a set's `_seq`s grow.
                    let sent = set
                        .changes
                        .iter()
                        .take_while(|c| c.seq <= self.sent_upto)
                        .count();
                    let batch = match sent {
                        0 => self.deliver(&set)?,
                        n if n == set.changes.len() => None,
                        n => self.deliver(&ChangeSet {
                            table_id: set.table_id,
                            user: set.user.clone(),
                            changes: set.changes[n..].to_vec(),
                        })?,
                    };
                    if let Some(b) = batch {
                        return Ok(Some(b));
                    }
                }
                Err(RecvEnd::Lagged) => {
                    return Err(StrataError::LimitExceeded(format!(
                        "the subscription fell more than {} commits behind and was cut off; resume with OPTIONS (from_seq = {})",
                        self.queue_size, self.sent_upto
                    )));
                }
                Err(RecvEnd::Closed) => return Ok(None),
            }
        }
    }

    /// Ends the subscription when its table is gone or altered: rows of the
    /// new definition cannot go out under the columns already announced.
    fn check_table(&self) -> Result<()> {
        let def = &self.live.def;
        match self.tiers.catalog.table_by_id(def.id) {
            Some(now) if now.version == def.version => Ok(()),
            Some(_) => Err(StrataError::SerializationFailure(format!(
                "table {} was altered; subscribe again (OPTIONS (from_seq = {}) resumes where this ended)",
                def.qualified_name(),
                self.sent_upto
            ))),
            None => Err(StrataError::UndefinedTable(format!(
                "{} (dropped while subscribed)",
                def.qualified_name()
            ))),
        }
    }

    /// The rows of `set` this subscriber sees; moves `sent_upto` past it.
    fn deliver(&mut self, set: &ChangeSet) -> Result<Option<RecordBatch>> {
        self.check_table()?;
        let batch = self.live.batch(set).map_err(|e| match e {
            DataFusionError::External(e) => match e.downcast::<StrataError>() {
                Ok(e) => *e,
                Err(e) => StrataError::internal(e.to_string()),
            },
            e => StrataError::from(e),
        })?;
        if let Some(last) = set.changes.last() {
            self.sent_upto = self.sent_upto.max(last.seq);
        }
        if let Some(b) = &batch {
            self.live
                .guard
                .query
                .sent(b.num_rows(), strata_catalog::now_micros());
        }
        Ok(batch)
    }
}

/// Re-checked at every change a subscriber or a table channel's listener
/// would get: a user dropped or demoted since it started gets nothing more.
pub(crate) fn check_follower(
    catalog: &strata_catalog::Catalog,
    user: &str,
    def: &TableDef,
) -> Result<()> {
    if catalog.user(user).is_none() {
        return Err(StrataError::InsufficientPrivilege(format!(
            "user \"{user}\" no longer exists"
        )));
    }
    crate::privileges::check_table_access(catalog, user, def, false)
}

fn resolve(session: &QueryContext, table: &ObjectRef) -> Result<Arc<TableDef>> {
    let (ns, name) = session.resolve(table);
    if !session.engine.catalog.namespace_exists(&ns) {
        return Err(StrataError::UndefinedNamespace(ns));
    }
    session.engine.catalog.require_table(&ns, &name)
}

fn output_schema(table: &Schema, projection: &[usize]) -> SchemaRef {
    let mut fields = vec![
        Field::new("_op", DataType::Utf8, false),
        Field::new("_seq", DataType::Int64, false),
    ];
    fields.extend(
        projection
            .iter()
            .map(|&i| table.field(i).clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

/// The WHERE condition as an expression over the table's columns.
fn compile(session: &QueryContext, schema: &Schema, filter: &str) -> Result<Arc<dyn PhysicalExpr>> {
    let df_schema = DFSchema::try_from(schema.clone())?;
    let expr = session.df().parse_sql_expr(filter, &df_schema)?;
    Ok(session.df().create_physical_expr(expr, &df_schema)?)
}

/// Up to `last_rows` current rows, oldest first, through the session's own
/// SELECT (so row scoping and access levels apply exactly as to a query).
async fn snapshot(
    session: &QueryContext,
    def: &TableDef,
    projection: &[usize],
    filter: Option<&str>,
    last_rows: u64,
) -> Result<Vec<RecordBatch>> {
    let cols: Vec<String> = projection
        .iter()
        .map(|&i| quote(&def.columns[i].name))
        .collect();
    let mut sql = format!(
        "SELECT '{op}' AS _op, _seq, {} FROM {}.{}",
        cols.join(", "),
        quote(&def.namespace),
        quote(&def.name),
        op = "snapshot"
    );
    if let Some(f) = filter {
        sql.push_str(&format!(" WHERE {f}"));
    }
    sql.push_str(&format!(" ORDER BY _seq DESC LIMIT {last_rows}"));
    let stmt = strata_sql::parse_one(&sql)?
        .ok_or_else(|| StrataError::internal("empty snapshot query"))?;
    let Statement::Sql(ast) = stmt else {
        return Err(StrataError::internal("snapshot query"));
    };
    let plan = session.plan(*ast, &sql).await?;
    let batches = session
        .df()
        .execute_logical_plan(plan)
        .await?
        .collect()
        .await?;
    // Newest first from the query; the stream is oldest first.
    let mut rows: Vec<RecordBatch> = vec![];
    for b in batches.iter().rev() {
        let n = b.num_rows();
        let idx = datafusion::arrow::array::UInt32Array::from_iter_values((0..n as u32).rev());
        let cols = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::take(c, &idx, None))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| StrataError::internal(e.to_string()))?;
        rows.push(
            RecordBatch::try_new(b.schema(), cols)
                .map_err(|e| StrataError::internal(e.to_string()))?,
        );
    }
    Ok(rows)
}

/// The statement as `system.live_queries` shows it.
fn describe_statement(stmt: &Statement) -> String {
    let Statement::Subscribe {
        table,
        columns,
        filter,
        last_rows,
        from_seq,
        ..
    } = stmt
    else {
        return String::new();
    };
    let name = match &table.namespace {
        Some(ns) => format!("{ns}.{}", table.name),
        None => table.name.clone(),
    };
    let mut out = match columns {
        Some(c) => format!("SUBSCRIBE TO SELECT {} FROM {name}", c.join(", ")),
        None => format!("SUBSCRIBE TO {name}"),
    };
    if let Some(f) = filter {
        out.push_str(&format!(" WHERE {f}"));
    }
    if *last_rows > 0 {
        out.push_str(&format!(" OPTIONS (last_rows = {last_rows})"));
    }
    if let Some(s) = from_seq {
        out.push_str(&format!(" OPTIONS (from_seq = {s})"));
    }
    out
}

/// `KILL LIVE QUERY 'LQ-…'`: the subscriber's own, or any for dba and system.
pub async fn kill(session: &QueryContext, live_id: &str) -> Result<QueryOutput> {
    let live = &session.engine.tiers.live;
    let Some(q) = live.get(live_id) else {
        return Err(StrataError::UndefinedObject(format!(
            "live query \"{live_id}\" does not exist"
        )));
    };
    if q.user != session.user() && session.role() < strata_catalog::Role::Dba {
        return Err(StrataError::InsufficientPrivilege(format!(
            "permission denied to kill live query \"{live_id}\" of another user"
        )));
    }
    live.kill(live_id);
    Ok(QueryOutput::command("KILL LIVE QUERY"))
}

/// One subscription's view of the change bus.
struct Live {
    /// Keeps the subscription listed until the stream goes.
    guard: strata_tiers::changes::LiveGuard,
    catalog: Arc<strata_catalog::Catalog>,
    def: Arc<TableDef>,
    user: String,
    table_schema: SchemaRef,
    schema: SchemaRef,
    projection: Vec<usize>,
    predicate: Option<Arc<dyn PhysicalExpr>>,
}

impl Live {
    /// Rows as a batch of the table's columns.
    fn rows<'a>(
        &self,
        rows: impl Iterator<Item = &'a Vec<ScalarValue>> + Clone,
    ) -> datafusion::error::Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.table_schema.fields().len());
        for (i, f) in self.table_schema.fields().iter().enumerate() {
            let values = rows.clone().map(|r| {
                r.get(i).cloned().unwrap_or_else(|| {
                    ScalarValue::try_from(f.data_type()).unwrap_or(ScalarValue::Null)
                })
            });
            columns.push(ScalarValue::iter_to_array(values)?);
        }
        Ok(RecordBatch::try_new(self.table_schema.clone(), columns)?)
    }

    /// Per row, whether it passes the WHERE condition (NULL does not).
    fn passes(&self, rows: &RecordBatch) -> datafusion::error::Result<Vec<bool>> {
        let Some(p) = &self.predicate else {
            return Ok(vec![true; rows.num_rows()]);
        };
        let v = p.evaluate(rows)?.into_array(rows.num_rows())?;
        let b = v
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| DataFusionError::Plan("WHERE is not a condition".into()))?;
        Ok((0..b.len()).map(|i| b.is_valid(i) && b.value(i)).collect())
    }

    /// The rows of a change set this subscriber sees, if any.
    fn batch(&self, set: &ChangeSet) -> datafusion::error::Result<Option<RecordBatch>> {
        if set.table_id != self.def.id || set.user != self.user {
            return Ok(None);
        }
        check_follower(&self.catalog, &self.guard.query.user, &self.def)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let n = set.changes.len();
        let rows = self.rows(set.changes.iter().map(|c| &c.row))?;
        let passes = self.passes(&rows)?;
        // An update whose new row fails the filter but whose old row passed
        // leaves the subscriber's view: it is sent as a delete of the old row.
        let olds: Vec<&Vec<ScalarValue>> = set
            .changes
            .iter()
            .map(|c| c.old.as_ref().unwrap_or(&c.row))
            .collect();
        let old_rows = self.rows(olds.iter().copied())?;
        let old_passes = self.passes(&old_rows)?;
        let mut keep = Vec::with_capacity(n);
        let mut ops = Vec::with_capacity(n);
        let mut leaving = Vec::with_capacity(n);
        for (i, c) in set.changes.iter().enumerate() {
            let leaves = c.op == ChangeOp::Update && !passes[i] && old_passes[i];
            keep.push(passes[i] || leaves);
            leaving.push(leaves);
            ops.push(if leaves { ChangeOp::Delete } else { c.op });
        }
        let rows = if leaving.iter().any(|l| *l) {
            // Each column: the old value where the row leaves, else the new one.
            let mask = BooleanArray::from(leaving);
            let cols = rows
                .columns()
                .iter()
                .zip(old_rows.columns())
                .map(|(new, old)| datafusion::arrow::compute::kernels::zip::zip(&mask, old, new))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(self.table_schema.clone(), cols)?
        } else {
            rows
        };
        let mask = BooleanArray::from(keep);
        let mut out: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                ops.iter().map(|o| o.as_str()),
            )),
            Arc::new(Int64Array::from_iter_values(
                set.changes.iter().map(|c| c.seq as i64),
            )),
        ];
        for &i in &self.projection {
            out.push(rows.column(i).clone());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), out)?;
        let batch = filter_record_batch(&batch, &mask)?;
        Ok((batch.num_rows() > 0).then_some(batch))
    }
}

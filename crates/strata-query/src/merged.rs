//! The scan of one table partition across both tiers.
//!
//! One blocking task takes a RocksDB snapshot and reads, from that single
//! point in time, the partition's manifest and deletion vectors (or, for
//! primary-key point queries, the primary-key index) and then its hot rows. So
//! a flush committing mid-query can neither hide rows (gone from hot, file not
//! yet seen) nor show them twice (file seen, hot rows still seen).
//!
//! The cold side needs no merge with the hot side: a key has at most one live
//! version, because a write that supersedes a cold row sets that row's
//! deletion-vector bit in the same batch (see `dml.rs`). Cold files stream
//! first, then hot rows, each bounded by small channels; a LIMIT or a cancelled
//! query stops both.

use crate::codec::{StoredRow, fill_value};
use crate::scan::{BATCH_ROWS, KeySelection, for_each_row, rows_to_batch};
use crate::tiers::Tiers;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_optimizer::pruning::PruningPredicate;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_cold::LiveFile;
use strata_cold::manifest::{self, Location};
use strata_cold::prune::FileStatistics;
use strata_cold::reader::{OutColumn, ScanSpec, scan_file};
use strata_common::{Result, StrataError, keys};
use strata_store::{CF_PK_INDEX, StoreSnapshot};

fn df_err(e: StrataError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The cold files a scan reads, each with the positions to read (None: all live rows).
type ColdPlan = Vec<(LiveFile, Option<Vec<u32>>)>;

/// Chooses the cold files (and rows) for a selection, as of a snapshot.
pub(crate) fn plan_cold(
    snap: &StoreSnapshot<'_>,
    table: &TableDef,
    user: &str,
    selection: &KeySelection,
    predicate: Option<&PruningPredicate>,
) -> Result<ColdPlan> {
    let files = manifest::load_partition(snap, table.id, user)?;
    if files.is_empty() {
        return Ok(vec![]);
    }
    if let KeySelection::Points(points) = selection {
        // The primary-key index says exactly where each key's live version is.
        let mut wanted: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for p in points {
            let key = keys::row_key(table.id, user, p)?;
            if let Some(v) = snap.get(CF_PK_INDEX, &key)? {
                let loc = Location::decode(&v)?;
                wanted.entry(loc.file_id).or_default().push(loc.position);
            }
        }
        return Ok(files
            .into_iter()
            .filter_map(|f| {
                let mut pos = wanted.remove(&f.meta.file_id)?;
                pos.sort_unstable();
                pos.dedup();
                Some((f, Some(pos)))
            })
            .collect());
    }
    let keep = match predicate {
        Some(p) => p
            .prune(&FileStatistics {
                table,
                files: &files,
            })
            .unwrap_or_else(|_| vec![true; files.len()]),
        None => vec![true; files.len()],
    };
    Ok(files
        .into_iter()
        .zip(keep)
        .filter(|(f, keep)| *keep && f.live_rows() > 0)
        .map(|(f, _)| (f, None))
        .collect())
}

/// Output columns of a cold scan for a table projection (`columns.len()` is
/// `_seq`, one more is `_deleted`).
pub(crate) fn out_columns(table: &TableDef, projection: &[usize]) -> Result<Vec<OutColumn>> {
    let n = table.columns.len();
    projection
        .iter()
        .map(|&i| {
            Ok(if i < n {
                let c = &table.columns[i];
                OutColumn::Column {
                    column_id: c.id,
                    fill: fill_value(c)?,
                }
            } else if i == n {
                OutColumn::Seq
            } else {
                OutColumn::Deleted
            })
        })
        .collect()
}

#[derive(Debug)]
pub struct MergedScanExec {
    tiers: Arc<Tiers>,
    table: Arc<TableDef>,
    user: String,
    selection: KeySelection,
    projection: Vec<usize>,
    schema: SchemaRef,
    limit: Option<usize>,
    predicate: Option<Arc<PruningPredicate>>,
    properties: Arc<PlanProperties>,
}

impl MergedScanExec {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tiers: Arc<Tiers>,
        table: Arc<TableDef>,
        user: String,
        selection: KeySelection,
        projection: Vec<usize>,
        schema: SchemaRef,
        limit: Option<usize>,
        predicate: Option<Arc<PruningPredicate>>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        MergedScanExec {
            tiers,
            table,
            user,
            selection,
            projection,
            schema,
            limit,
            predicate,
            properties,
        }
    }
}

impl DisplayAs for MergedScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "MergedScanExec: table={}, selection={:?}, limit={:?}, pruning={}",
            self.table.qualified_name(),
            self.selection,
            self.limit,
            self.predicate.is_some()
        )
    }
}

impl ExecutionPlan for MergedScanExec {
    fn name(&self) -> &str {
        "MergedScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let (cold_tx, cold_rx) = tokio::sync::oneshot::channel::<Result<ColdPlan>>();
        let (tx, rx) = tokio::sync::mpsc::channel::<DfResult<RecordBatch>>(2);
        let store = self.tiers.store.clone();
        let table = self.table.clone();
        let user = self.user.clone();
        let selection = self.selection.clone();
        let projection = self.projection.clone();
        let schema = self.schema.clone();
        let limit = self.limit;
        let predicate = self.predicate.clone();
        tokio::task::spawn_blocking(move || {
            store.with_snapshot(|snap| {
                let plan = plan_cold(snap, &table, &user, &selection, predicate.as_deref());
                if cold_tx.send(plan).is_err() {
                    return; // the query is gone
                }
                stream_hot(
                    snap,
                    &table,
                    &user,
                    &selection,
                    &projection,
                    &schema,
                    limit,
                    &tx,
                );
            })
        });

        let spec = ScanSpec {
            schema: self.schema.clone(),
            columns: out_columns(&self.table, &self.projection).map_err(df_err)?,
            predicate: self.predicate.clone(),
        };
        let tiers = self.tiers.clone();
        let table = self.table.clone();
        let parallel = context.session_config().target_partitions().max(1);
        let cold_stream = futures::stream::once(async move {
            let plan = cold_rx
                .await
                .map_err(|_| StrataError::internal("scan task ended early"))??;
            // Files decode side by side, each in a task of its own (a
            // partition's rows come in no particular order anyway).
            let files = futures::stream::iter(plan).map(move |(file, positions)| {
                decode_file(tiers.clone(), table.clone(), spec.clone(), file, positions)
            });
            Ok::<_, StrataError>(files.flatten_unordered(parallel))
        })
        .try_flatten()
        .map_err(df_err);
        let hot_stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            cold_stream.chain(hot_stream),
        )))
    }
}

/// One cold file's batches, decoded by a task of its own that runs ahead of
/// the reader by a couple of batches. The task stops when the reader goes
/// away; a panic in it is an error at the end of the stream, never a file
/// that silently ends early.
fn decode_file(
    tiers: Arc<Tiers>,
    table: Arc<TableDef>,
    spec: ScanSpec,
    file: LiveFile,
    positions: Option<Vec<u32>>,
) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
    let task = tokio::spawn(async move {
        let read = async {
            // Each file is read from the storage its entry names.
            let cold = tiers.storage(&file.meta.storage)?;
            let mut batches = scan_file(&cold, &table, &file, positions.as_deref(), &spec).await?;
            while let Some(batch) = batches.try_next().await? {
                if tx.send(Ok(batch)).await.is_err() {
                    break; // the reader is gone
                }
            }
            Ok(())
        };
        if let Err(e) = read.await {
            let _ = tx.send(Err(e)).await;
        }
    });
    // Aborted when the stream is dropped, so no file decodes for nobody.
    let task = crate::engine::AbortOnDrop(task);
    let rows =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let end = futures::stream::once(async move {
        match task.finish().await {
            Ok(()) => None,
            Err(e) if e.is_panic() => Some(Err(crate::panics::panic_error(e.into_panic()))),
            // Cancelled (the runtime shutting down): the file's rows were not
            // all sent, and a short scan must not pass for a complete one.
            Err(_) => Some(Err(StrataError::QueryCanceled)),
        }
    })
    .filter_map(futures::future::ready);
    rows.chain(end).boxed()
}

/// Sends a partition's hot rows as batches until done or the receiver hangs up.
#[allow(clippy::too_many_arguments)]
fn stream_hot(
    snap: &StoreSnapshot<'_>,
    table: &TableDef,
    user: &str,
    selection: &KeySelection,
    projection: &[usize],
    schema: &SchemaRef,
    limit: Option<usize>,
    tx: &tokio::sync::mpsc::Sender<DfResult<RecordBatch>>,
) {
    let mut buf: Vec<StoredRow> = Vec::with_capacity(BATCH_ROWS.min(limit.unwrap_or(BATCH_ROWS)));
    let mut sent = 0usize;
    let send = |buf: &mut Vec<StoredRow>| -> bool {
        let batch = rows_to_batch(table, schema, projection, buf).map_err(df_err);
        buf.clear();
        tx.blocking_send(batch).is_ok()
    };
    let result = for_each_row(snap, table, user, selection, |row| {
        buf.push(row);
        sent += 1;
        if limit.is_some_and(|l| sent >= l) {
            return Ok(false);
        }
        if buf.len() >= BATCH_ROWS && !send(&mut buf) {
            return Ok(false);
        }
        Ok(true)
    });
    match result {
        Ok(()) => {
            if !buf.is_empty() {
                send(&mut buf);
            }
        }
        Err(e) => {
            let _ = tx.blocking_send(Err(df_err(e)));
        }
    }
}

/// Where the live version of one key is.
enum Found {
    Hot(Vec<datafusion::scalar::ScalarValue>),
    Cold(LiveFile, u32),
    None,
}

/// Finds the live version of one key: the hot row, else the cold row the
/// primary-key index points at (not read). Read from one snapshot, so a
/// concurrent flush or compaction cannot make the key seem absent.
fn locate_live(tiers: &Tiers, table: &Arc<TableDef>, user: &str, key: &[u8]) -> Result<Found> {
    // The common case, a hot row, needs no snapshot.
    let now = strata_catalog::now_micros();
    if let Some(bytes) = tiers.store.get(strata_store::CF_DATA, key)? {
        let row = crate::codec::decode_row(table, &bytes)?;
        return Ok(if row.is_live(table, now) {
            Found::Hot(row.values)
        } else {
            Found::None
        });
    }
    tiers.store.with_snapshot(|snap| -> Result<Found> {
        if let Some(bytes) = snap.get(strata_store::CF_DATA, key)? {
            let row = crate::codec::decode_row(table, &bytes)?;
            return Ok(if row.is_live(table, now) {
                Found::Hot(row.values)
            } else {
                Found::None
            });
        }
        let Some(v) = snap.get(CF_PK_INDEX, key)? else {
            return Ok(Found::None);
        };
        let loc = Location::decode(&v)?;
        let meta = manifest::load_file(snap, table.id, user, loc.file_id)?.ok_or_else(|| {
            StrataError::Storage(format!(
                "primary-key index names missing file {}",
                loc.file_id
            ))
        })?;
        Ok(Found::Cold(
            LiveFile {
                meta,
                deleted: vec![],
            },
            loc.position,
        ))
    })
}

/// Whether a key has a live version in any tier, without reading a cold
/// row: what a plain INSERT's duplicate check needs (a damaged Parquet file
/// does not stop inserting other keys).
pub(crate) fn row_exists(
    tiers: &Tiers,
    table: &Arc<TableDef>,
    user: &str,
    key: &[u8],
) -> Result<bool> {
    Ok(!matches!(
        locate_live(tiers, table, user, key)?,
        Found::None
    ))
}

/// The live version of one key, from whichever tier holds it (see
/// `locate_live`), with a cold row read from its file.
pub(crate) async fn live_row(
    tiers: &Tiers,
    table: &Arc<TableDef>,
    user: &str,
    key: &[u8],
) -> Result<Option<Vec<datafusion::scalar::ScalarValue>>> {
    let found = locate_live(tiers, table, user, key)?;
    let (file, position) = match found {
        Found::Hot(values) => return Ok(Some(values)),
        Found::None => return Ok(None),
        Found::Cold(f, p) => (f, p),
    };
    let cached = (table.id, table.version, file.meta.file_id, position);
    if let Some(row) = tiers.cold_rows.get(&cached) {
        return Ok(Some(row.as_ref().clone()));
    }
    let projection: Vec<usize> = (0..table.columns.len()).collect();
    let spec = ScanSpec {
        schema: table.arrow_schema(false),
        columns: out_columns(table, &projection)?,
        predicate: None,
    };
    let cold = tiers.storage(&file.meta.storage)?;
    let mut stream = scan_file(&cold, table, &file, Some(&[position]), &spec).await?;
    while let Some(batch) = stream.try_next().await? {
        if batch.num_rows() > 0 {
            let values = (0..batch.num_columns())
                .map(|c| {
                    Ok(datafusion::scalar::ScalarValue::try_from_array(
                        batch.column(c),
                        0,
                    )?)
                })
                .collect::<Result<Vec<_>>>()?;
            tiers.cold_rows.insert(cached, Arc::new(values.clone()));
            return Ok(Some(values));
        }
    }
    Ok(None)
}

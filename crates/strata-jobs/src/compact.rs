//! The compaction job: rewrites a partition's files as one, sorted by primary
//! key, leaving out rows the deletion vectors hide. The input files are each
//! sorted, so a k-way merge produces the output in one streaming pass.
//!
//! The job reads the table's definition when it starts and merges by it; at
//! commit, under the table's write lock, it checks that definition is still in
//! force, else discards the new file and merges again (see `definition`).
//!
//! The commit (one WriteBatch under the table's write lock) swaps the files in
//! the manifest and repoints the primary-key index: a row whose index entry
//! still names its old position moves to its new one; a row a writer superseded
//! during the compaction is marked deleted in the new file instead. Old objects
//! are queued for deletion, not deleted, so queries still reading them finish.

use crate::definition::{self, AtCommit, MAX_ATTEMPTS};
use crate::manager::{JobHandle, JobManager};
use crate::objects::{committed, create_file, discard, finish_file};
use crate::{blocking, failpoint, mirror};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{UInt32Type, UInt64Type};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use strata_catalog::{TableDef, now_micros};
use strata_cold::FileMeta;
use strata_cold::manifest::{self, LiveFile, Location, StoredObject};
use strata_cold::reader::{OutColumn, ScanSpec, scan_file};
use strata_cold::writer::{FileWriter, file_schema};
use strata_common::{Result, StrataError, keys};
use strata_store::{Batch, CF_PK_INDEX, Store};
use strata_tiers::Tiers;
use strata_tiers::codec::fill_value;

const OUT_ROWS: usize = 8192;

/// One input file being merged: its stream and the current batch.
struct Cursor {
    stream: BoxStream<'static, Result<RecordBatch>>,
    batch: Option<RecordBatch>,
    row: usize,
    /// Bumped on every new batch, so gathered rows know which batch they are in.
    generation: u64,
}

impl Cursor {
    /// Moves to the next row, fetching batches as needed; false at the end.
    async fn advance(&mut self) -> Result<bool> {
        if let Some(b) = &self.batch
            && self.row + 1 < b.num_rows()
        {
            self.row += 1;
            return Ok(true);
        }
        while let Some(b) = self.stream.next().await {
            let b = b?;
            if b.num_rows() > 0 {
                self.batch = Some(b);
                self.row = 0;
                self.generation += 1;
                return Ok(true);
            }
        }
        self.batch = None;
        Ok(false)
    }
}

/// What compacting one partition did.
struct Outcome {
    files_before: u64,
    files_after: u64,
    rows_written: u64,
    bytes_written: u64,
    /// Times the work was redone because the definition changed.
    retries: u32,
    /// The definition the partition was committed by (the next starts from it).
    table: Arc<TableDef>,
}

pub(crate) async fn run(
    mgr: &JobManager,
    submitted: &TableDef,
    handle: &Arc<JobHandle>,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let tiers = mgr.tiers.clone();
    // The definition as it is now: files flushed after an ALTER TABLE carry
    // columns the submitted definition does not know.
    let mut table = definition::current(&tiers, submitted.id, &submitted.qualified_name())?;
    failpoint::pause("pause_compact", &table.name).await;
    // Every partition with files: "" for a SHARED table, each user's for a USER table.
    let partitions = tiers
        .store
        .with_snapshot(|snap| manifest::partitions(snap, table.id))?;
    let (mut files_before, mut files_after, mut rows_written, mut bytes_written) = (0, 0, 0, 0);
    let mut users = 0u64;
    let mut retries = 0u32;
    for user in &partitions {
        let o = compact_partition(mgr, table, user, handle).await?;
        table = o.table;
        users += u64::from(o.rows_written > 0);
        files_before += o.files_before;
        files_after += o.files_after;
        rows_written += o.rows_written;
        bytes_written += o.bytes_written;
        retries += o.retries;
    }
    Ok(json!({
        "files_before": files_before,
        "files_after": files_after,
        "rows_written": rows_written,
        "bytes_written": bytes_written,
        "users_count": users,
        "definition_retries": retries,
        "duration_ms": started.elapsed().as_millis() as u64,
    }))
}

/// Compacts one partition, redoing the work while the definition (or the
/// partition's set of files) changes under it, at most [`MAX_ATTEMPTS`] times.
async fn compact_partition(
    mgr: &JobManager,
    mut table: Arc<TableDef>,
    user: &str,
    handle: &Arc<JobHandle>,
) -> Result<Outcome> {
    let tiers = mgr.tiers.clone();
    let store = tiers.store.clone();
    for attempt in 0..MAX_ATTEMPTS {
        let mut files =
            store.with_snapshot(|snap| manifest::load_partition(snap, table.id, user))?;
        // A file a flush is still committing piece by piece is not merged yet.
        files.retain(|f| f.meta.visible_rows.is_none());
        let needs_work = files.len() > 1 || files.iter().any(|f| !f.deleted.is_empty());
        if !needs_work {
            return Ok(Outcome {
                files_before: files.len() as u64,
                files_after: files.len() as u64,
                rows_written: 0,
                bytes_written: 0,
                retries: attempt,
                table,
            });
        }
        let merged = {
            let (tiers, table, user, files, handle) = (
                tiers.clone(),
                table.clone(),
                user.to_string(),
                files.clone(),
                handle.clone(),
            );
            // The merge and the Parquet encoding are CPU work: blocking pool.
            blocking::run(move |rt| rt.block_on(merge(&tiers, &table, &user, &files, &handle)))
                .await?
        };
        let object = StoredObject::of(&merged.meta);
        let (guard, current) =
            match definition::lock_for_commit(mgr, &table, handle, &object).await? {
                AtCommit::Commit(guard, current) => (guard, current),
                AtCommit::Changed(newer) => {
                    table = newer;
                    continue;
                }
            };
        // Only a compaction removes files, and one runs per table, but DROP USER
        // purges a partition: then the inputs are gone and so is the work. An
        // input's entry must also be the one merged (a sealed file is not).
        let inputs_present = store.with_snapshot(|snap| -> Result<bool> {
            for f in &files {
                if manifest::load_file(snap, table.id, user, f.meta.file_id)?.as_ref()
                    != Some(&f.meta)
                {
                    return Ok(false);
                }
            }
            Ok(true)
        });
        if !matches!(inputs_present, Ok(true)) {
            drop(guard);
            discard(&tiers, &object).await;
            inputs_present?;
            table = current;
            continue;
        }
        let committed_result = commit(&store, &current, user, &files, &merged);
        drop(guard);
        if let Err(e) = committed_result {
            discard(&tiers, &object).await;
            return Err(e);
        }
        let rows_written = merged.moved.len() as u64;
        if rows_written == 0 {
            discard(&tiers, &object).await;
        } else {
            committed(&tiers, &merged.meta);
        }
        mirror::publish(mgr, &current, user).await;
        return Ok(Outcome {
            files_before: files.len() as u64,
            files_after: u64::from(rows_written > 0),
            rows_written,
            bytes_written: if rows_written > 0 {
                merged.meta.size_bytes
            } else {
                0
            },
            retries: attempt,
            table: current,
        });
    }
    Err(definition::kept_changing(&table))
}

/// A partition's merged file, not yet committed.
struct Merged {
    meta: FileMeta,
    /// (row key, old location) per output row, in output order.
    moved: Vec<(Vec<u8>, Location)>,
}

/// Merges the partition's files, read as `table` defines its columns, into one
/// new file.
async fn merge(
    tiers: &Tiers,
    table: &TableDef,
    user: &str,
    files: &[LiveFile],
    handle: &JobHandle,
) -> Result<Merged> {
    let store = &tiers.store;
    let ncols = table.columns.len();
    let schema = file_schema(table);
    // Output columns: the table's, `_seq`, then where each row came from.
    let mut columns = Vec::with_capacity(ncols + 3);
    for c in &table.columns {
        columns.push(OutColumn::Column {
            column_id: c.id,
            fill: fill_value(c)?,
        });
    }
    columns.push(OutColumn::Seq);
    columns.push(OutColumn::FileId);
    columns.push(OutColumn::Position);
    let mut fields: Vec<arrow::datatypes::FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "__file",
        arrow::datatypes::DataType::UInt64,
        false,
    )));
    fields.push(Arc::new(arrow::datatypes::Field::new(
        "__pos",
        arrow::datatypes::DataType::UInt32,
        false,
    )));
    let spec = ScanSpec {
        schema: Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
        predicate: None,
    };
    let mut cursors = vec![];
    for f in files {
        let cold = tiers.storage(&f.meta.storage)?;
        let stream = scan_file(&cold, table, f, None, &spec).await?;
        cursors.push(Cursor {
            stream,
            batch: None,
            row: 0,
            generation: 0,
        });
    }
    let pk = table.pk_index();
    let key_of = |c: &Cursor| -> Result<Vec<u8>> {
        let b = c
            .batch
            .as_ref()
            .ok_or_else(|| StrataError::internal("merge cursor"))?;
        let mut k = vec![];
        keys::encode_pk(&ScalarValue::try_from_array(b.column(pk), c.row)?, &mut k)?;
        Ok(k)
    };
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if c.advance().await? {
            heap.push(Reverse((key_of(c)?, i)));
        }
    }

    let file_id = store.next_id("cold_file")?;
    let mut writer = create_file(tiers, table, user, file_id)?;
    let total: u64 = files.iter().map(|f| f.live_rows()).sum::<u64>().max(1);
    let mut moved: Vec<(Vec<u8>, Location)> = vec![];
    let mut pending: Vec<(usize, usize)> = vec![]; // (cursor batch slot, row)
    let mut slots: Vec<RecordBatch> = vec![];
    let mut slot_of: HashMap<(usize, u64), usize> = HashMap::new(); // (cursor, generation) -> slot
    let result: Result<()> = async {
        while let Some(Reverse((_, i))) = heap.pop() {
            let c = &mut cursors[i];
            let b = c
                .batch
                .clone()
                .ok_or_else(|| StrataError::internal("merge cursor"))?;
            let slot = match slot_of.get(&(i, c.generation)) {
                Some(&s) => s,
                None => {
                    slots.push(b.clone());
                    slot_of.insert((i, c.generation), slots.len() - 1);
                    slots.len() - 1
                }
            };
            pending.push((slot, c.row));
            let file = b
                .column(ncols + 1)
                .as_primitive::<UInt64Type>()
                .value(c.row);
            let pos = b
                .column(ncols + 2)
                .as_primitive::<UInt32Type>()
                .value(c.row);
            let pk_value = ScalarValue::try_from_array(b.column(pk), c.row)?;
            moved.push((
                keys::row_key(table.id, user, &pk_value)?,
                Location {
                    file_id: file,
                    position: pos,
                },
            ));
            if c.advance().await? {
                heap.push(Reverse((key_of(c)?, i)));
            }
            if pending.len() >= OUT_ROWS {
                write_pending(&mut writer, &slots, &mut pending, ncols + 1).await?;
                slots.clear();
                slot_of.clear();
                handle.check()?;
                handle.set_progress(90.0 * moved.len() as f64 / total as f64);
            }
        }
        write_pending(&mut writer, &slots, &mut pending, ncols + 1).await?;
        handle.check()
    }
    .await;
    let meta = finish_file(tiers, writer, result).await?;
    Ok(Merged { meta, moved })
}

/// Commits a merged file in place of its inputs (the caller holds the table's
/// write lock).
fn commit(
    store: &Store,
    table: &TableDef,
    user: &str,
    files: &[LiveFile],
    merged: &Merged,
) -> Result<()> {
    let mut batch = Batch::default();
    let now = now_micros();
    for f in files {
        manifest::remove_file(store, &mut batch, table.id, &f.meta, now)?;
    }
    if !merged.moved.is_empty() {
        manifest::put_file(store, &mut batch, table.id, &merged.meta)?;
    }
    let index = store.cf(CF_PK_INDEX)?;
    for (pos, (key, old)) in merged.moved.iter().enumerate() {
        let new = Location {
            file_id: merged.meta.file_id,
            position: pos as u32,
        };
        let current = manifest::locate(store, key)?;
        if current == Some(*old) {
            batch.put_cf(index, key, new.encode());
        } else {
            manifest::delete_row(store, &mut batch, table.id, user, new)?;
        }
    }
    store.write(batch)
}

/// Writes the gathered rows (the first `width` columns of their batches).
async fn write_pending(
    writer: &mut FileWriter,
    slots: &[RecordBatch],
    pending: &mut Vec<(usize, usize)>,
    width: usize,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let schema = file_schema_of(slots, width)?;
    let mut columns = Vec::with_capacity(width);
    for c in 0..width {
        let arrays: Vec<&dyn Array> = slots.iter().map(|b| b.column(c).as_ref()).collect();
        columns.push(
            arrow::compute::interleave(&arrays, pending)
                .map_err(|e| StrataError::internal(e.to_string()))?,
        );
    }
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| StrataError::internal(e.to_string()))?;
    pending.clear();
    writer.write(&batch).await
}

fn file_schema_of(slots: &[RecordBatch], width: usize) -> Result<arrow::datatypes::SchemaRef> {
    let first = slots
        .first()
        .ok_or_else(|| StrataError::internal("no input batch"))?;
    let fields: Vec<arrow::datatypes::FieldRef> = first
        .schema()
        .fields()
        .iter()
        .take(width)
        .cloned()
        .collect();
    Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
}

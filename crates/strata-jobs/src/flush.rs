//! The flush job: moves a table's hot rows into one Parquet file per partition.
//!
//! 1. Read the table's definition as it is when the job starts (not when it
//!    was submitted: it may have waited in the queue through an ALTER TABLE).
//! 2. On the blocking pool, under a RocksDB snapshot, stream the partition's
//!    hot rows (in key order, so the file comes out sorted) through Arrow
//!    batches into a Parquet file written through object_store; memory is
//!    bounded by one row group.
//! 3. Commit in one WriteBatch, under the table's write lock: if the
//!    definition changed since step 1 (see `definition`), discard the file and
//!    go back to 2 with the new one. Else add the file to the manifest; for each
//!    flushed row, if its hot version is still the one flushed, delete it from
//!    the hot tier and point the primary-key index at its new position; if a
//!    writer replaced or deleted it meanwhile, mark the flushed copy deleted in
//!    the file's deletion vector instead.
//! 4. Publish `manifest.json`.
//!
//! A crash before step 3 leaves an unreferenced object (removed at startup) and
//! the hot rows untouched; after it, the new state is complete. No acknowledged
//! row is lost and none is visible twice.

use crate::definition::{self, AtCommit, MAX_ATTEMPTS};
use crate::manager::{JobHandle, JobManager};
use crate::objects::{committed, create_file, discard, finish_file};
use crate::{blocking, failpoint, mirror};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use strata_catalog::TableDef;
use strata_cold::FileMeta;
use strata_cold::manifest::{self, Location, StoredObject};
use strata_cold::writer::{FileWriter, file_schema};
use strata_common::{Result, keys};
use strata_sql::TableKind;
use strata_store::{Batch, CF_DATA, CF_PK_INDEX};
use strata_tiers::Tiers;
use strata_tiers::codec::{StoredRow, decode_header};
use strata_tiers::scan::{KeySelection, for_each_row, rows_to_batch};
use tokio::runtime::Handle;

/// Rows per batch handed to the Parquet writer.
const CHUNK_ROWS: usize = 8192;

/// What flushing one partition did.
struct Flushed {
    rows: u64,
    bytes: u64,
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
    let mut table = definition::current(&tiers, submitted.id, &submitted.qualified_name())?;
    failpoint::pause("pause_flush", &table.name).await;
    failpoint::block("busy_flush", &table.name);
    failpoint::panic_if("panic_flush", &table.name);
    let counter = tiers.counter(table.id);
    let counted = counter.rows.load(std::sync::atomic::Ordering::Relaxed);
    if table.has_generated_key() {
        // Created without a PRIMARY KEY: its rows stay hot until ALTER TABLE
        // ADD PRIMARY KEY re-keys them, which it can only do in the hot tier.
        counter.flushed(counted);
        return Ok(json!({
            "rows_flushed": 0,
            "skipped": "the table has no primary key yet",
            "duration_ms": started.elapsed().as_millis() as u64,
        }));
    }
    // SHARED tables have one partition, ""; a USER table one per user with hot
    // rows, each flushed to its own file in its own directory.
    let partitions = match table.kind {
        TableKind::User => store_partitions(&tiers, table.id)?,
        _ => vec![String::new()],
    };
    let mut rows_flushed = 0u64;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut users = 0u64;
    let mut retries = 0u32;
    for user in &partitions {
        let done = flush_partition(mgr, table, user, handle, counted.max(1)).await?;
        retries += done.retries;
        table = done.table;
        if done.rows > 0 {
            rows_flushed += done.rows;
            files += 1;
            bytes += done.bytes;
            users += 1;
        }
    }
    // Every write counted before the snapshot was in it, so those are done.
    counter.flushed(counted);
    Ok(json!({
        "rows_flushed": rows_flushed,
        "users_count": users,
        "parquet_files": files,
        "bytes_written": bytes,
        "definition_retries": retries,
        "duration_ms": started.elapsed().as_millis() as u64,
    }))
}

/// The users with hot rows in a USER table.
fn store_partitions(tiers: &Tiers, table_id: u32) -> Result<Vec<String>> {
    tiers.store.with_snapshot(|snap| {
        strata_store::partitions(snap, CF_DATA, &keys::table_prefix(table_id))
    })
}

/// Flushes one partition, redoing the work while the definition changes
/// under it (at most [`MAX_ATTEMPTS`] times).
async fn flush_partition(
    mgr: &JobManager,
    mut table: Arc<TableDef>,
    user: &str,
    handle: &Arc<JobHandle>,
    estimate: u64,
) -> Result<Flushed> {
    let tiers = mgr.tiers.clone();
    for attempt in 0..MAX_ATTEMPTS {
        let Some(file) = write_file(&tiers, &table, user, handle, estimate).await? else {
            return Ok(Flushed {
                rows: 0,
                bytes: 0,
                retries: attempt,
                table,
            });
        };
        let object = StoredObject::of(&file.meta);
        let (guard, current) =
            match definition::lock_for_commit(mgr, &table, handle, &object).await? {
                AtCommit::Commit(guard, current) => (guard, current),
                AtCommit::Changed(newer) => {
                    table = newer;
                    continue;
                }
            };
        let commit_result = commit(&tiers, &current, user, &file);
        drop(guard);
        let live = match commit_result {
            Ok(live) => live,
            Err(e) => {
                discard(&tiers, &object).await;
                return Err(e);
            }
        };
        if live == 0 {
            // Writers replaced every row meanwhile: nothing was committed.
            discard(&tiers, &object).await;
        } else {
            committed(&tiers, &file.meta);
            handle.set_progress(95.0);
            mirror::publish(mgr, &current, user).await;
        }
        return Ok(Flushed {
            rows: live,
            bytes: if live > 0 { file.meta.size_bytes } else { 0 },
            retries: attempt,
            table: current,
        });
    }
    Err(definition::kept_changing(&table))
}

/// A partition's new file, not yet committed.
struct NewFile {
    meta: FileMeta,
    /// Each row's key and sequence number, in file order.
    rows: Vec<(Vec<u8>, u64)>,
}

/// Writes the partition's hot rows, as `table` reads them, into a new file
/// (on the blocking pool); None if the partition has no live hot rows.
async fn write_file(
    tiers: &Arc<Tiers>,
    table: &Arc<TableDef>,
    user: &str,
    handle: &Arc<JobHandle>,
    estimate: u64,
) -> Result<Option<NewFile>> {
    let tiers = tiers.clone();
    let table = table.clone();
    let user = user.to_string();
    let handle = handle.clone();
    blocking::run(move |rt| {
        failpoint::panic_if("panic_flush_blocking", &table.name);
        let mut out = FileBuilder {
            rt,
            tiers: &tiers,
            table: &table,
            user: &user,
            handle: &handle,
            estimate,
            writer: None,
            rows: vec![],
        };
        let mut pending: Vec<StoredRow> = Vec::with_capacity(CHUNK_ROWS);
        let all = KeySelection::Range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        let written = tiers.store.with_snapshot(|snap| {
            for_each_row(snap, &table, &user, &all, |row| {
                pending.push(row);
                if pending.len() >= CHUNK_ROWS {
                    out.write(&mut pending)?;
                }
                Ok(true)
            })?;
            out.write(&mut pending)
        });
        let Some(writer) = out.writer.take() else {
            written?;
            return Ok(None);
        };
        let meta = rt.block_on(finish_file(&tiers, writer, written))?;
        Ok(Some(NewFile {
            meta,
            rows: out.rows,
        }))
    })
    .await
}

/// Turns chunks of stored rows into the partition's new file.
struct FileBuilder<'a> {
    rt: &'a Handle,
    tiers: &'a Tiers,
    table: &'a TableDef,
    user: &'a str,
    handle: &'a JobHandle,
    estimate: u64,
    writer: Option<FileWriter>,
    rows: Vec<(Vec<u8>, u64)>,
}

impl FileBuilder<'_> {
    fn write(&mut self, chunk: &mut Vec<StoredRow>) -> Result<()> {
        self.handle.check()?;
        if chunk.is_empty() {
            return Ok(());
        }
        let pk = self.table.pk_index();
        for r in chunk.iter() {
            let key = keys::row_key(self.table.id, self.user, &r.values[pk])?;
            self.rows.push((key, r.seq));
        }
        let schema = file_schema(self.table);
        let projection: Vec<usize> = (0..=self.table.columns.len()).collect();
        let batch = rows_to_batch(self.table, &schema, &projection, chunk)?;
        chunk.clear();
        if self.writer.is_none() {
            let file_id = self.tiers.store.next_id("cold_file")?;
            self.writer = Some(create_file(self.tiers, self.table, self.user, file_id)?);
        }
        if let Some(w) = self.writer.as_mut() {
            self.rt.block_on(w.write(&batch))?;
        }
        self.handle
            .set_progress(90.0 * self.rows.len() as f64 / self.estimate as f64);
        Ok(())
    }
}

/// Commits a new file (the caller holds the table's write lock); returns how
/// many of its rows are live. A file none of whose rows is still current is not
/// committed at all.
fn commit(tiers: &Tiers, table: &TableDef, user: &str, file: &NewFile) -> Result<u64> {
    let store = &tiers.store;
    let mut batch = Batch::default();
    let data = store.cf(CF_DATA)?;
    let index = store.cf(CF_PK_INDEX)?;
    let mut live = 0u64;
    for (pos, (key, seq)) in file.rows.iter().enumerate() {
        let loc = Location {
            file_id: file.meta.file_id,
            position: pos as u32,
        };
        let unchanged = match store.get(CF_DATA, key)? {
            Some(v) => decode_header(&v)?.0 == *seq,
            None => false,
        };
        if unchanged {
            batch.delete_cf(data, key);
            batch.put_cf(index, key, loc.encode());
            live += 1;
        } else {
            manifest::delete_row(store, &mut batch, table.id, user, loc)?;
        }
    }
    if live == 0 {
        return Ok(0);
    }
    manifest::put_file(store, &mut batch, table.id, &file.meta)?;
    store.write(batch)?;
    Ok(live)
}

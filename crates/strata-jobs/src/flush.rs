//! The flush job: moves a table's hot rows into one Parquet file per partition.
//!
//! 1. Under a RocksDB snapshot, stream the partition's hot rows (in key order,
//!    so the file comes out sorted) into a Parquet file written through
//!    object_store; memory is bounded by one row group plus a small channel.
//! 2. Commit in one WriteBatch, under the table's write lock: add the file to
//!    the manifest; for each flushed row, if its hot version is still the one
//!    flushed, delete it from the hot tier and point the primary-key index at
//!    its new position; if a writer replaced or deleted it meanwhile, mark the
//!    flushed copy deleted in the file's deletion vector instead.
//! 3. Publish `manifest.json`.
//!
//! A crash before step 2 leaves an unreferenced object (removed at startup) and
//! the hot rows untouched; after it, the new state is complete. No acknowledged
//! row is lost and none is visible twice.

use crate::manager::{JobHandle, JobManager};
use arrow::array::RecordBatch;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use strata_catalog::{TableDef, now_micros};
use strata_cold::manifest::{self, Location};
use strata_cold::writer::{FileWriter, file_schema};
use strata_cold::{ColdStore, FileMeta, layout};
use strata_common::{Result, StrataError, keys};
use strata_query::codec::{StoredRow, decode_header};
use strata_query::scan::{KeySelection, for_each_row, rows_to_batch};
use strata_sql::TableKind;
use strata_store::{Batch, CF_DATA, CF_PK_INDEX};

/// Rows per batch handed from the snapshot reader to the Parquet writer.
const CHUNK_ROWS: usize = 8192;

/// A chunk of flushed rows: the batch, and each row's key and sequence number.
type Chunk = (RecordBatch, Vec<(Vec<u8>, u64)>);

pub(crate) async fn run(
    mgr: &JobManager,
    table: &Arc<TableDef>,
    handle: &JobHandle,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let tiers = mgr.engine.tiers().clone();
    let counter = tiers.counter(table.id);
    let counted = counter.rows.load(std::sync::atomic::Ordering::Relaxed);
    // SHARED tables have one partition, ""; a USER table one per user with hot
    // rows, each flushed to its own file in its own directory.
    let partitions = match table.kind {
        TableKind::User => store_partitions(&tiers, table)?,
        _ => vec![String::new()],
    };
    let mut rows_flushed = 0u64;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut users = 0u64;
    for user in &partitions {
        let (rows, size) = flush_partition(mgr, table, user, handle, counted.max(1)).await?;
        if rows > 0 {
            rows_flushed += rows;
            files += 1;
            bytes += size;
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
        "duration_ms": started.elapsed().as_millis() as u64,
    }))
}

/// The users with hot rows in a USER table.
fn store_partitions(tiers: &strata_query::Tiers, table: &TableDef) -> Result<Vec<String>> {
    tiers.store.with_snapshot(|snap| {
        strata_store::partitions(snap, CF_DATA, &keys::table_prefix(table.id))
    })
}

/// Flushes one partition; returns (rows, bytes written).
async fn flush_partition(
    mgr: &JobManager,
    table: &Arc<TableDef>,
    user: &str,
    handle: &JobHandle,
    estimate: u64,
) -> Result<(u64, u64)> {
    let tiers = mgr.engine.tiers().clone();
    let store = tiers.store.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Chunk>>(2);
    {
        let table = table.clone();
        let user = user.to_string();
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            store.with_snapshot(|snap| {
                let schema = file_schema(&table);
                let projection: Vec<usize> = (0..=table.columns.len()).collect();
                let pk = table.pk_index();
                let mut rows: Vec<StoredRow> = Vec::with_capacity(CHUNK_ROWS);
                let send = |rows: &mut Vec<StoredRow>| -> Result<bool> {
                    let mut keys_seqs = Vec::with_capacity(rows.len());
                    for r in rows.iter() {
                        keys_seqs.push((keys::row_key(table.id, &user, &r.values[pk])?, r.seq));
                    }
                    let batch = rows_to_batch(&table, &schema, &projection, rows)?;
                    rows.clear();
                    Ok(tx.blocking_send(Ok((batch, keys_seqs))).is_ok())
                };
                let all =
                    KeySelection::Range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
                let res = for_each_row(snap, &table, &user, &all, |row| {
                    rows.push(row);
                    if rows.len() >= CHUNK_ROWS {
                        return send(&mut rows);
                    }
                    Ok(true)
                });
                let res = res.and_then(|_| {
                    if rows.is_empty() {
                        Ok(true)
                    } else {
                        send(&mut rows)
                    }
                });
                if let Err(e) = res {
                    let _ = tx.blocking_send(Err(e));
                }
            })
        });
    }

    let mut writer: Option<FileWriter> = None;
    let mut flushed: Vec<(Vec<u8>, u64)> = vec![];
    let outcome: Result<()> = async {
        while let Some(chunk) = rx.recv().await {
            handle.check()?;
            let (batch, keys_seqs) = chunk?;
            if writer.is_none() {
                let file_id = store.next_id("cold_file")?;
                writer = Some(FileWriter::create(&tiers.cold, table, user, file_id)?);
            }
            if let Some(w) = writer.as_mut() {
                w.write(&batch).await?;
            }
            flushed.extend(keys_seqs);
            handle.set_progress(90.0 * flushed.len() as f64 / estimate as f64);
        }
        handle.check()
    }
    .await;
    drop(rx);
    let Some(writer) = writer else {
        outcome?;
        return Ok((0, 0));
    };
    let path = writer.path().clone();
    let meta = finish_file(writer, outcome, &tiers.cold).await?;

    // Commit, serialized with the table's writers.
    let guard = commit_guard(mgr, table, handle, &path).await?;
    let commit = || -> Result<()> {
        let mut batch = Batch::default();
        manifest::put_file(&store, &mut batch, table.id, &meta)?;
        let data = store.cf(CF_DATA)?;
        let index = store.cf(CF_PK_INDEX)?;
        for (pos, (key, seq)) in flushed.iter().enumerate() {
            let loc = Location {
                file_id: meta.file_id,
                position: pos as u32,
            };
            let unchanged = match store.get(CF_DATA, key)? {
                Some(v) => decode_header(&v)?.0 == *seq,
                None => false,
            };
            if unchanged {
                batch.delete_cf(data, key);
                batch.put_cf(index, key, loc.encode());
            } else {
                manifest::delete_row(&store, &mut batch, table.id, user, loc)?;
            }
        }
        store.write(batch)
    };
    if let Err(e) = commit() {
        drop(guard);
        discard(&tiers.cold, &path).await;
        return Err(e);
    }
    drop(guard);
    handle.set_progress(95.0);
    publish_manifest(&tiers, table, user).await;
    Ok((meta.rows, meta.size_bytes))
}

/// Takes the table's write lock for a job's commit. If the table was dropped or
/// the job cancelled meanwhile, removes the job's new object and says why.
pub(crate) async fn commit_guard(
    mgr: &JobManager,
    table: &TableDef,
    handle: &JobHandle,
    path: &object_store::path::Path,
) -> Result<tokio::sync::OwnedMutexGuard<()>> {
    let guard = mgr.engine.write_lock(table.id).lock_owned().await;
    let tiers = mgr.engine.tiers();
    let still_there = tiers.catalog.tables().iter().any(|t| t.id == table.id);
    if still_there && !handle.is_cancelled() {
        return Ok(guard);
    }
    drop(guard);
    discard(&tiers.cold, path).await;
    Err(if still_there {
        StrataError::QueryCanceled
    } else {
        StrataError::UndefinedTable(table.qualified_name())
    })
}

/// Completes a job's new file; if writing it failed (or completing it does),
/// removes the object and returns the error.
pub(crate) async fn finish_file(
    writer: FileWriter,
    written: Result<()>,
    cold: &ColdStore,
) -> Result<FileMeta> {
    let path = writer.path().clone();
    let finished = match written {
        Ok(()) => writer.finish(now_micros()).await,
        Err(e) => Err(e),
    };
    if finished.is_err() {
        discard(cold, &path).await;
    }
    finished
}

/// Removes an object that never made it into a manifest.
pub(crate) async fn discard(cold: &ColdStore, path: &object_store::path::Path) {
    if let Err(e) = cold.delete(path).await {
        tracing::warn!(%path, error = %e, "could not remove an unused object; startup cleanup will");
    }
}

/// Rewrites a partition's `manifest.json` from RocksDB. A failure only delays
/// the mirror (it is rebuilt at startup), so it is logged, not returned.
pub(crate) async fn publish_manifest(tiers: &strata_query::Tiers, table: &TableDef, user: &str) {
    let files = tiers
        .store
        .with_snapshot(|snap| manifest::load_partition(snap, table.id, user));
    let res = match files {
        Ok(files) => {
            let doc = manifest::manifest_json(table, user, &files);
            let bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
            tiers
                .cold
                .put(&layout::manifest_path(table, user), bytes)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        tracing::warn!(table = %table.qualified_name(), error = %e, "could not write manifest.json");
    }
}

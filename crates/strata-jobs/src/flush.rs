//! The flush job: moves a table's hot rows into one Parquet file per partition.
//!
//! 1. Read the table's definition as it is when the job starts (not when it
//!    was submitted: it may have waited in the queue through an ALTER TABLE).
//! 2. On the blocking pool, under a RocksDB snapshot, stream the partition's
//!    hot rows (in key order, so the file comes out sorted) through Arrow
//!    batches into a Parquet file written through object_store; memory is
//!    bounded by one row group.
//! 3. Commit in pieces of [`COMMIT_PIECE_ROWS`] rows, each one WriteBatch
//!    under the table's write lock, so writers wait for one piece at most,
//!    never for the whole file. Before each piece: if the definition changed
//!    since step 1 (see `definition`), stop (before the first piece: discard
//!    the file) and go back to 2 with the new one for the rows still hot. A
//!    piece moves the file's `visible_rows` past its rows (readers never see a
//!    row of the file beyond it, see `FileMeta::visible_rows`) and, for each of
//!    its rows, if the hot version is still the one flushed, deletes it from
//!    the hot tier and points the primary-key index at its new position; if a
//!    writer replaced or deleted it meanwhile, marks the flushed copy deleted
//!    in the file's deletion vector instead. Each piece is atomic, so a reader
//!    sees every row once: hot before its piece, cold after.
//! 4. Publish `manifest.json`.
//!
//! A crash before the first piece leaves an unreferenced object (removed at
//! startup) and the hot rows untouched; between pieces, a file whose
//! committed prefix is complete and consistent (startup seals it: the rest is
//! still hot). No acknowledged row is lost and none is visible twice.

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

/// Rows per piece of a commit: the most a writer of the table waits for is one
/// piece's reads and batch (a few milliseconds), whatever the file's size.
pub(crate) const COMMIT_PIECE_ROWS: usize = 4096;

/// The fewest rows a piece removes with one range delete. Every read builds
/// the memtable's range tombstones into its own list, so they must stay few:
/// a flush of 100,000 users' handfuls of rows must not leave 100,000 of them.
const RANGE_DELETE_ROWS: usize = 1024;

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
        let mut commit = Commit::new(&file);
        let outcome = commit.pieces(mgr, guard, current, user, handle).await;
        if let Ok(Stop::Removed) = outcome {
            // Whoever removed the file queued its object for deletion.
            committed(&tiers, &file.meta);
        } else if commit.in_manifest {
            committed(&tiers, &file.meta);
            if commit.visible < file.rows.len() {
                seal(&tiers, &commit.meta, table.id).await;
            }
            handle.set_progress(95.0);
            let published = match &outcome {
                Ok(Stop::Done(t)) | Ok(Stop::Changed(t)) => t,
                _ => &table,
            };
            mirror::publish(mgr, published, user).await;
        } else {
            // Nothing referenced the file: writers replaced every row, or the
            // first piece never committed.
            discard(&tiers, &object).await;
        }
        let live = commit.live;
        match outcome? {
            Stop::Done(current) => {
                return Ok(Flushed {
                    rows: live,
                    bytes: if commit.in_manifest {
                        file.meta.size_bytes
                    } else {
                        0
                    },
                    retries: attempt,
                    table: current,
                });
            }
            Stop::Removed => {
                return Ok(Flushed {
                    rows: commit.live,
                    bytes: 0,
                    retries: attempt,
                    table,
                });
            }
            // The rest of the rows are still hot: flush them by the new definition.
            Stop::Changed(newer) => {
                tracing::info!(
                    table = %newer.qualified_name(),
                    committed = commit.visible,
                    "the definition changed between the pieces of a flush commit; flushing the rest again"
                );
                table = newer;
            }
        }
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

/// Hides for good the rows of a file past what a stopped commit reached
/// (they are still hot), under the table's write lock so that a DROP TABLE
/// or DROP USER that removed the file's entry meanwhile is not undone.
async fn seal(tiers: &Tiers, meta: &FileMeta, table_id: u32) {
    let _lock = tiers.write_lock(table_id).lock_owned().await;
    let present = tiers.catalog.table_by_id(table_id).is_some()
        && tiers
            .store
            .with_snapshot(|snap| manifest::load_file(snap, table_id, &meta.user, meta.file_id))
            .is_ok_and(|m| m.is_some());
    if present && let Err(e) = manifest::seal_file(&tiers.store, table_id, meta) {
        tracing::warn!(error = %e, path = %meta.path, "cannot seal a partly committed file; startup will");
    }
}

/// Which of a piece's rows (in key order) still have the flushed version
/// hot, and whether the hot tier holds other keys within the piece's range
/// (rows written since the file was), read with one iterator over the range.
fn current_rows(store: &strata_store::Store, rows: &[(Vec<u8>, u64)]) -> Result<(Vec<bool>, bool)> {
    let mut unchanged = vec![false; rows.len()];
    let (Some((first, _)), Some((last, _))) = (rows.first(), rows.last()) else {
        return Ok((unchanged, false));
    };
    let mut others = false;
    let mut i = 0usize;
    store.scan(CF_DATA, first, &just_after(last), |key, value| {
        while i < rows.len() && rows[i].0.as_slice() < key {
            i += 1;
        }
        match rows.get(i) {
            Some((k, seq)) if k.as_slice() == key => {
                unchanged[i] = decode_header(value)?.0 == *seq;
                i += 1;
            }
            _ => others = true,
        }
        Ok(true)
    })?;
    Ok((unchanged, others))
}

/// The first key after `key` (a range's exclusive end that includes `key`).
fn just_after(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    end.push(0);
    end
}

/// Why a piecewise commit stopped.
enum Stop {
    /// Every row of the file was committed (by this definition).
    Done(Arc<TableDef>),
    /// The definition changed between pieces: the rows after the committed
    /// prefix are still hot.
    Changed(Arc<TableDef>),
    /// The file left the manifest between pieces (its partition was purged):
    /// nothing more is committed or published.
    Removed,
}

/// A new file's commit, piece by piece.
struct Commit<'a> {
    file: &'a NewFile,
    /// The file's entry as last committed (or about to be).
    meta: FileMeta,
    /// Rows committed so far (the file's `visible_rows`).
    visible: usize,
    /// Of those, the ones now live in the file.
    live: u64,
    /// Whether the manifest names the file: from the first piece with a live
    /// row on (a file none of whose rows is still current is never added).
    in_manifest: bool,
    /// Positions of superseded rows before the file was in the manifest,
    /// marked deleted when it is added.
    dead: Vec<u32>,
}

impl<'a> Commit<'a> {
    fn new(file: &'a NewFile) -> Self {
        Commit {
            file,
            meta: file.meta.clone(),
            visible: 0,
            live: 0,
            in_manifest: false,
            dead: vec![],
        }
    }

    /// Commits every piece, taking the table's write lock for each (the first
    /// under `guard`, taken by `lock_for_commit`) and checking before each
    /// that the table is still what the file was written by.
    async fn pieces(
        &mut self,
        mgr: &JobManager,
        guard: tokio::sync::OwnedMutexGuard<()>,
        mut current: Arc<TableDef>,
        user: &str,
        handle: &JobHandle,
    ) -> Result<Stop> {
        let tiers = &mgr.tiers;
        let mut guard = Some(guard);
        loop {
            let held = match guard.take() {
                Some(g) => g,
                None => {
                    let g = tiers.write_lock(current.id).lock_owned().await;
                    handle.check()?;
                    match tiers.catalog.table_by_id(current.id) {
                        None => {
                            return Err(strata_common::StrataError::UndefinedTable(format!(
                                "{} (dropped while its job ran)",
                                current.qualified_name()
                            )));
                        }
                        Some(now) if definition::same_layout(&current, &now) => current = now,
                        Some(now) => return Ok(Stop::Changed(now)),
                    }
                    // Between pieces the partition may have been purged (DROP
                    // USER removes the file with the rest of the user's data):
                    // writing the next piece would bring the file back.
                    if self.in_manifest {
                        let file_id = self.meta.file_id;
                        let entry = tiers.store.with_snapshot(|snap| {
                            manifest::load_file(snap, current.id, user, file_id)
                        })?;
                        if entry.as_ref() != Some(&self.meta) {
                            return Ok(Stop::Removed);
                        }
                    }
                    g
                }
            };
            self.piece(tiers, &current, user)?;
            drop(held);
            if self.visible >= self.file.rows.len() {
                return Ok(Stop::Done(current));
            }
            failpoint::pause("pause_flush_piece", &current.name).await;
        }
    }

    /// Commits the next piece (the caller holds the table's write lock).
    fn piece(&mut self, tiers: &Tiers, table: &TableDef, user: &str) -> Result<()> {
        let store = &tiers.store;
        let data = store.cf(CF_DATA)?;
        let index = store.cf(CF_PK_INDEX)?;
        let from = self.visible;
        let to = (from + COMMIT_PIECE_ROWS).min(self.file.rows.len());
        let rows = &self.file.rows[from..to];
        let (unchanged, others) = current_rows(store, rows)?;
        let mut batch = Batch::default();
        let mut live = 0u64;
        let mut dead = vec![];
        for (i, (key, _)) in rows.iter().enumerate() {
            let position = (from + i) as u32;
            if unchanged[i] {
                let loc = Location {
                    file_id: self.file.meta.file_id,
                    position,
                };
                batch.put_cf(index, key, loc.encode());
                live += 1;
            } else {
                dead.push(position);
            }
        }
        match rows {
            // Every hot row of the piece's key range is one it moves: one range
            // delete instead of a tombstone per key, so a scan right after the
            // flush does not walk thousands of them.
            [(first, _), .., (last, _)]
                if !others && dead.is_empty() && rows.len() >= RANGE_DELETE_ROWS =>
            {
                batch.delete_range_cf(data, first, &just_after(last));
            }
            _ => {
                for (i, (key, _)) in rows.iter().enumerate() {
                    if unchanged[i] {
                        batch.delete_cf(data, key);
                    }
                }
            }
        }
        if !self.in_manifest && live == 0 {
            // Nothing of the file is current yet: nothing to commit.
            self.dead.extend(dead);
            self.visible = to;
            return Ok(());
        }
        let mut meta = self.file.meta.clone();
        meta.visible_rows = (to < self.file.rows.len()).then_some(to as u64);
        let newly = if self.in_manifest {
            dead
        } else {
            let mut all = std::mem::take(&mut self.dead);
            all.extend(dead);
            all
        };
        for position in newly {
            let loc = Location {
                file_id: self.file.meta.file_id,
                position,
            };
            manifest::delete_row(store, &mut batch, table.id, user, loc)?;
        }
        manifest::put_file(store, &mut batch, table.id, &meta)?;
        store.write(batch)?;
        self.meta = meta;
        self.in_manifest = true;
        self.visible = to;
        self.live += live;
        Ok(())
    }
}

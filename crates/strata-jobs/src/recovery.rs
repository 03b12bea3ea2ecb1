//! Startup work, before the server accepts connections: corrupt job records
//! are moved aside; jobs a crash left queued or running are marked failed
//! ("interrupted"); finished records past the retention are pruned; objects no
//! manifest references are deleted — those a compaction or drop released
//! (garbage records) and those a job began to upload and never committed
//! (upload records; see `objects`), on whichever storage they are, without
//! listing any storage; `manifest.json` mirrors that may have fallen behind
//! their records are rewritten; the scheduler's write counters start from the
//! hot rows on disk.
//!
//! Nothing here stops the server. A damaged record costs a warning and, for a
//! damaged manifest entry, its table: that table is marked unavailable (no job
//! runs on it, and its reads fail on the entry with a 58030 error), while its
//! objects are kept, since which of them the entry names cannot be read.

use crate::manager::JobManager;
use crate::mirror;
use crate::record::{self, JobStatus};
use std::collections::{BTreeMap, HashSet};
use strata_catalog::now_micros;
use strata_cold::layout;
use strata_cold::manifest::{self, FileMeta, StoredObject};
use strata_common::Result;
use strata_store::CF_COLD;
use strata_tiers::Tiers;

/// Manifest entries are keyed `f` · table id (u32 BE) · user segment · file id
/// (u64 BE) in CF `cold` (see `strata_cold::manifest`).
const FILE_ENTRIES: (&[u8], &[u8]) = (b"f", b"g");

pub(crate) async fn recover(mgr: &JobManager) {
    recover_job_records(mgr);
    let tiers = mgr.tiers.clone();
    // No query runs yet, so every released object can go now.
    collect_garbage(&tiers, i64::MAX).await;
    let entries = match scan_file_entries(&tiers) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the cold-tier manifests; skipping their cleanup");
            return;
        }
    };
    for (table_id, file_ids) in &entries.corrupt {
        let why = format!(
            "its cold-tier manifest has a corrupt entry (file {}); see docs/operations.md",
            file_ids
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(table) = tiers.catalog.table_by_id(*table_id) {
            tracing::error!(table = %table.qualified_name(), reason = %why, "table marked unavailable");
        }
        mgr.mark_unavailable(*table_id, why);
    }
    remove_orphans(&tiers, &entries).await;
    // A flush stopped between the pieces of its commit: the committed prefix
    // stays, the rest of its rows are still hot.
    for (table_id, meta) in &entries.partial {
        match strata_cold::manifest::seal_file(&tiers.store, *table_id, meta) {
            Ok(()) => tracing::info!(path = %meta.path, "sealed a partly committed flush file"),
            Err(e) => {
                tracing::warn!(path = %meta.path, error = %e, "cannot seal a partly committed flush file")
            }
        }
    }
    for table in tiers.catalog.tables() {
        match strata_tiers::scan::count_hot_rows(tiers.store.as_ref(), &table) {
            Ok(hot) => tiers.counter(table.id).add(hot),
            Err(e) => {
                tracing::warn!(table = %table.qualified_name(), error = %e, "cannot count hot rows")
            }
        }
    }
    repair_mirrors(mgr).await;
}

/// Moves corrupt job records aside, marks interrupted ones failed, prunes.
fn recover_job_records(mgr: &JobManager) {
    let store = &mgr.tiers.store;
    match record::quarantine_corrupt(store) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(records = n, "moved corrupt job records aside"),
        Err(e) => tracing::error!(error = %e, "cannot check job records"),
    }
    let records = match record::load_all(store) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot read job records");
            return;
        }
    };
    for mut r in records {
        if r.status.is_finished() {
            continue;
        }
        r.status = JobStatus::Failed;
        r.finished_at = Some(now_micros());
        r.error_message = Some("interrupted".into());
        match record::save(store, &r) {
            Ok(()) => {
                tracing::info!(job_id = %r.job_id, "job interrupted by a restart marked failed")
            }
            Err(e) => tracing::warn!(job_id = %r.job_id, error = %e, "cannot mark job failed"),
        }
    }
    if let Err(e) = mgr.prune_records() {
        tracing::warn!(error = %e, "cannot prune job records");
    }
}

/// What the manifest entries of every table say, read entry by entry so one
/// that does not parse is set aside instead of failing the rest.
#[derive(Default)]
pub(crate) struct FileEntries {
    /// Objects the readable entries name.
    referenced: HashSet<StoredObject>,
    /// File ids of unreadable entries, by table id.
    corrupt: BTreeMap<u32, Vec<u64>>,
    /// An entry whose key is too short to name its file: then no object can
    /// be proven unreferenced.
    unattributable: bool,
    /// Files a flush left partly committed (table id, entry).
    partial: Vec<(u32, FileMeta)>,
}

fn scan_file_entries(tiers: &Tiers) -> Result<FileEntries> {
    let mut out = FileEntries::default();
    tiers
        .store
        .scan(CF_COLD, FILE_ENTRIES.0, FILE_ENTRIES.1, |k, v| {
            match serde_json::from_slice::<FileMeta>(v) {
                Ok(meta) => {
                    out.referenced.insert(StoredObject::of(&meta));
                    if meta.visible_rows.is_some()
                        && let Some((table, _)) = entry_ids(k)
                    {
                        out.partial.push((table, meta));
                    }
                }
                Err(e) => {
                    let ids = entry_ids(k);
                    tracing::error!(
                        key = ?k,
                        error = %e,
                        table_id = ids.map(|i| i.0),
                        "corrupt manifest entry"
                    );
                    match ids {
                        Some((table, file)) => out.corrupt.entry(table).or_default().push(file),
                        None => out.unattributable = true,
                    }
                }
            }
            Ok(true)
        })?;
    Ok(out)
}

/// (table id, file id) of a manifest entry's key.
fn entry_ids(key: &[u8]) -> Option<(u32, u64)> {
    if key.len() < 1 + 4 + 8 {
        return None;
    }
    let table = u32::from_be_bytes(key.get(1..5)?.try_into().ok()?);
    let file = u64::from_be_bytes(key.get(key.len() - 8..)?.try_into().ok()?);
    Some((table, file))
}

/// The file id in an object name `batch-{id}.parquet` (or the object store's
/// temporary `batch-{id}.parquet#…` of an upload that never completed).
fn file_id_of(path: &str) -> Option<u64> {
    let name = path.rsplit('/').next()?;
    let rest = name.strip_prefix("batch-")?;
    let digits = rest.find(".parquet")?;
    rest[..digits].parse().ok()
}

/// Removes the objects of uploads that were begun and never committed (a
/// job that died, a crash), then forgets their records. An object a record
/// names but a manifest entry references was committed just before a crash
/// took the record's removal: it is kept.
async fn remove_orphans(tiers: &Tiers, entries: &FileEntries) {
    if entries.unattributable {
        tracing::warn!("a manifest entry names no file: keeping every unreferenced object");
        return;
    }
    let pending = match manifest::pending_uploads(&tiers.store) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read upload records; orphans stay until the next start");
            return;
        }
    };
    let protected: HashSet<u64> = entries.corrupt.values().flatten().copied().collect();
    let mut orphans = 0usize;
    for (object, _) in pending {
        let referenced = entries.referenced.contains(&object);
        let maybe_corrupt = file_id_of(&object.path).is_some_and(|id| protected.contains(&id));
        if !referenced && !maybe_corrupt {
            match remove_upload(tiers, &object).await {
                Ok(()) => orphans += 1,
                Err(e) => {
                    tracing::warn!(path = %object.path, storage = %object.storage, error = %e, "cannot remove an orphaned object");
                    continue;
                }
            }
        }
        if let Err(e) = manifest::end_upload(&tiers.store, &object) {
            tracing::warn!(path = %object.path, error = %e, "cannot forget an upload record");
        }
    }
    if orphans > 0 {
        tracing::info!(
            orphans,
            "removed objects of uploads that were never committed"
        );
    }
}

/// Removes an uncommitted object and, on a local directory, the staging
/// files (`batch-7.parquet#3`) an interrupted write leaves beside it (one
/// read of the object's own directory). (An S3 multipart upload a crash
/// left open is invisible to listings; a bucket lifecycle rule aborts it,
/// see docs/storage.md.)
async fn remove_upload(tiers: &Tiers, object: &StoredObject) -> Result<()> {
    let store = tiers.storage(&object.storage)?;
    let path = layout::from_stored(&object.path)?;
    store.delete(&path).await?;
    store.remove_staging(&path)?;
    Ok(())
}

/// Rewrites the mirrors that may have fallen behind their records: those
/// noted dirty (a job or a write was under way) and those of partitions whose
/// mirror has no recorded place yet (written by an older version).
async fn repair_mirrors(mgr: &JobManager) {
    let tiers = &mgr.tiers;
    let mut todo: Vec<(u32, String)> = match manifest::dirty_mirrors(&tiers.store) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which manifest.json files are stale");
            vec![]
        }
    };
    for table in tiers.catalog.tables() {
        let users = tiers
            .store
            .with_snapshot(|snap| manifest::partitions(snap, table.id));
        for user in users.unwrap_or_default() {
            if matches!(
                manifest::mirror_location(&tiers.store, table.id, &user),
                Ok(None)
            ) {
                todo.push((table.id, user));
            }
        }
    }
    todo.sort();
    todo.dedup();
    for (table_id, user) in todo {
        if mgr.unavailable(table_id).is_some() {
            continue;
        }
        let Some(table) = tiers.catalog.table_by_id(table_id) else {
            let _ = manifest::clear_mirror_dirty(&tiers.store, table_id, &user);
            continue;
        };
        match mirror::repair(tiers, &table, &user).await {
            Ok(true) => {
                tracing::info!(table = %table.qualified_name(), user = %user, "rewrote a stale or missing manifest.json")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(table = %table.qualified_name(), error = %e, "cannot check manifest.json")
            }
        }
    }
}

/// Deletes objects released before `older_than` (µs) and forgets them.
pub(crate) async fn collect_garbage(tiers: &Tiers, older_than: i64) {
    let list = match manifest::garbage(&tiers.store) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list released objects");
            return;
        }
    };
    for (object, at) in list {
        if at >= older_than {
            continue;
        }
        let path = &object.path;
        // Recorded paths are escaped text: parse, never escape them again.
        let deleted = match (
            object_store::path::Path::parse(path),
            tiers.storage(&object.storage),
        ) {
            (Ok(p), Ok(store)) => store.delete(&p).await,
            (Err(e), _) => {
                tracing::warn!(%path, error = %e, "forgetting an unparsable released path");
                Ok(())
            }
            // A storage that is gone has nothing left to delete.
            (_, Err(e)) if tiers.catalog.storage(&object.storage).is_none() => {
                tracing::warn!(%path, error = %e, "forgetting a released object of a dropped storage");
                Ok(())
            }
            (_, Err(e)) => Err(e),
        };
        match deleted {
            Ok(()) => {
                if let Err(e) = manifest::forget_garbage(&tiers.store, &object) {
                    tracing::warn!(%path, error = %e, "cannot forget a deleted object");
                }
            }
            Err(e) => {
                tracing::warn!(%path, storage = %object.storage, error = %e, "cannot delete a released object")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_ids_of_objects_and_entries() {
        assert_eq!(file_id_of("app/t/batch-17.parquet"), Some(17));
        assert_eq!(file_id_of("app/t/u/batch-3.parquet#12"), Some(3));
        assert_eq!(file_id_of("app/t/manifest.json"), None);
        assert_eq!(file_id_of("app/batch-x.parquet"), None);
        let mut key = vec![b'f'];
        key.extend_from_slice(&9u32.to_be_bytes());
        key.extend_from_slice(b"alice\x00\x01");
        key.extend_from_slice(&42u64.to_be_bytes());
        assert_eq!(entry_ids(&key), Some((9, 42)));
        assert_eq!(entry_ids(b"f\x00\x00"), None);
    }
}

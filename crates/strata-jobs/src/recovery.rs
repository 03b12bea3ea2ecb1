//! Startup work, before the server accepts connections: corrupt job records
//! are moved aside; jobs a crash left queued or running are marked failed
//! ("interrupted"); finished records past the retention are pruned; objects no
//! manifest references (a flush that died before its commit, files a
//! compaction replaced) are deleted; `manifest.json` mirrors that are missing
//! or differ from the records are rewritten; the scheduler's write counters
//! start from the hot rows on disk.
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
use strata_cold::manifest::{self, FileMeta};
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
    let objects = match tiers.cold.list(None).await {
        Ok(o) => Some(o),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the cold storage; orphans stay until the next start");
            None
        }
    };
    if let Some(objects) = &objects {
        remove_orphans(&tiers, &entries, objects).await;
    }
    let mirrors: Vec<&object_store::path::Path> = objects
        .iter()
        .flatten()
        .filter(|p| p.filename() == Some(layout::MANIFEST_FILE))
        .collect();
    for table in tiers.catalog.tables() {
        match strata_tiers::scan::count_hot_rows(tiers.store.as_ref(), &table) {
            Ok(hot) => tiers.counter(table.id).add(hot),
            Err(e) => {
                tracing::warn!(table = %table.qualified_name(), error = %e, "cannot count hot rows")
            }
        }
        if mgr.unavailable(table.id).is_some() {
            continue;
        }
        if let Err(e) = repair_mirrors(&tiers, &table, &mirrors).await {
            tracing::warn!(table = %table.qualified_name(), error = %e, "cannot check manifest.json");
        }
    }
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
    /// Object paths the readable entries name.
    referenced: HashSet<String>,
    /// File ids of unreadable entries, by table id.
    corrupt: BTreeMap<u32, Vec<u64>>,
    /// An entry whose key is too short to name its file: then no object can
    /// be proven unreferenced.
    unattributable: bool,
}

fn scan_file_entries(tiers: &Tiers) -> Result<FileEntries> {
    let mut out = FileEntries::default();
    tiers
        .store
        .scan(CF_COLD, FILE_ENTRIES.0, FILE_ENTRIES.1, |k, v| {
            match serde_json::from_slice::<FileMeta>(v) {
                Ok(meta) => {
                    out.referenced.insert(meta.path);
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

async fn remove_orphans(
    tiers: &Tiers,
    entries: &FileEntries,
    objects: &[object_store::path::Path],
) {
    if entries.unattributable {
        tracing::warn!("a manifest entry names no file: keeping every unreferenced object");
        return;
    }
    let protected: HashSet<u64> = entries.corrupt.values().flatten().copied().collect();
    let mut orphans = 0usize;
    for path in objects {
        let p = path.as_ref();
        let is_data = p.ends_with(".parquet") || p.contains(".parquet#");
        if !is_data || entries.referenced.contains(p) {
            continue;
        }
        if file_id_of(p).is_some_and(|id| protected.contains(&id)) {
            // Possibly the file a corrupt entry names: keep it for repair.
            continue;
        }
        match tiers.cold.delete(path).await {
            Ok(()) => orphans += 1,
            Err(e) => tracing::warn!(path = p, error = %e, "cannot remove an orphaned object"),
        }
    }
    if orphans > 0 {
        tracing::info!(orphans, "removed objects no manifest references");
    }
}

/// Rewrites the table's `manifest.json` mirrors that differ from its records:
/// those of partitions with files, and mirrors left in the table's directory
/// by partitions whose files are all gone (a compaction that wrote nothing,
/// committed just before a crash).
async fn repair_mirrors(
    tiers: &Tiers,
    table: &strata_catalog::TableDef,
    mirrors: &[&object_store::path::Path],
) -> Result<()> {
    let mut users: Vec<String> = tiers
        .store
        .with_snapshot(|snap| manifest::partitions(snap, table.id))?;
    let dir = layout::table_dir(table);
    for path in mirrors.iter().filter(|p| p.prefix_matches(&dir)) {
        let expected: HashSet<String> = users
            .iter()
            .map(|u| layout::manifest_path(table, u).as_ref().to_string())
            .collect();
        if expected.contains(path.as_ref()) {
            continue;
        }
        if let Some(user) = mirror_user(tiers, path).await
            && layout::manifest_path(table, &user) == **path
        {
            users.push(user);
        }
    }
    for user in &users {
        if mirror::repair(tiers, table, user).await? {
            tracing::info!(table = %table.qualified_name(), user = %user, "rewrote a stale or missing manifest.json");
        }
    }
    Ok(())
}

/// The partition a mirror says it is of ("" when it cannot be read: a SHARED
/// table's one partition).
async fn mirror_user(tiers: &Tiers, path: &object_store::path::Path) -> Option<String> {
    let bytes = mirror::read(tiers, path).await.ok().flatten();
    let doc = bytes.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    match doc {
        Some(doc) => doc.get("user").and_then(|u| u.as_str()).map(str::to_string),
        None => Some(String::new()),
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
    for (path, at) in list {
        if at >= older_than {
            continue;
        }
        // Recorded paths are escaped text: parse, never escape them again.
        let deleted = match object_store::path::Path::parse(&path) {
            Ok(p) => tiers.cold.delete(&p).await,
            Err(e) => {
                tracing::warn!(%path, error = %e, "forgetting an unparsable released path; orphan cleanup removes its object");
                Ok(())
            }
        };
        match deleted {
            Ok(()) => {
                if let Err(e) = manifest::forget_garbage(&tiers.store, &path) {
                    tracing::warn!(%path, error = %e, "cannot forget a deleted object");
                }
            }
            Err(e) => tracing::warn!(%path, error = %e, "cannot delete a released object"),
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

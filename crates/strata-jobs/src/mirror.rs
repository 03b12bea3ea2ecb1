//! `manifest.json`: each partition's mirror of its RocksDB records, for engines
//! that read the files directly. RocksDB is authoritative; a mirror that could
//! not be written (an error, a crash between a commit and its publish) is
//! rewritten at the next startup wherever it differs from the records.

use crate::manager::JobManager;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use strata_catalog::TableDef;
use strata_cold::{layout, manifest};
use strata_common::{Result, StrataError};
use strata_tiers::Tiers;

/// The mirror the records call for.
fn expected(tiers: &Tiers, table: &TableDef, user: &str) -> Result<Vec<u8>> {
    let files = tiers
        .store
        .with_snapshot(|snap| manifest::load_partition(snap, table.id, user))?;
    let doc = manifest::manifest_json(table, user, &files);
    serde_json::to_vec_pretty(&doc).map_err(|e| StrataError::internal(e.to_string()))
}

/// Rewrites a partition's mirror after a job's commit. Serialized per table and
/// reading the records inside the lock, so of two jobs publishing at once the
/// later write always carries the later state. A failure only delays the
/// mirror (startup repairs it), so it is logged, not returned.
pub(crate) async fn publish(mgr: &JobManager, table: &TableDef, user: &str) {
    let lock = mgr.publish_lock(table.id);
    let _guard = lock.lock().await;
    let tiers = &mgr.tiers;
    let res = match expected(tiers, table, user) {
        Ok(bytes) => {
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

/// An object's bytes; None if there is no such object.
pub(crate) async fn read(tiers: &Tiers, path: &Path) -> Result<Option<Vec<u8>>> {
    let got = match tiers.cold.object_store().get(path).await {
        Ok(got) => got.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => Err(e),
    };
    got.map(|b| Some(b.to_vec()))
        .map_err(|e| StrataError::Storage(format!("cannot read {}: {e}", path.as_ref())))
}

/// Rewrites a partition's mirror if it is missing, unreadable or says anything
/// else than the records; returns whether it did.
pub(crate) async fn repair(tiers: &Tiers, table: &TableDef, user: &str) -> Result<bool> {
    let want = expected(tiers, table, user)?;
    let path = layout::manifest_path(table, user);
    let have = read(tiers, &path).await?;
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    let same = match &have {
        Some(have) => parse(have).is_some() && parse(have) == parse(&want),
        None => false,
    };
    if same {
        return Ok(false);
    }
    tiers.cold.put(&path, want).await?;
    Ok(true)
}

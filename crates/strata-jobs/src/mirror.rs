//! `manifest.json`: each partition's mirror of its RocksDB records, for engines
//! that read the files directly. RocksDB is authoritative; a mirror that could
//! not be written (an error, a crash between a commit and its publish) is
//! rewritten at the next startup wherever it differs from the records.
//!
//! A mirror is written where the partition is placed now (its storage and
//! template); where it was last written is recorded, so when the placement
//! moves the old mirror is removed instead of left stale.

use crate::manager::JobManager;
use object_store::ObjectStoreExt;
use strata_catalog::TableDef;
use strata_cold::manifest::{self, StoredObject};
use strata_cold::{ColdStore, layout};
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
    if tiers.catalog.table_by_id(table.id).is_none() {
        // Dropped while the job ran: DROP removed its listings, and a
        // listing written now would outlive the table.
        return;
    }
    // Cleared before the records are read: a change after this marks again.
    let cleared = manifest::clear_mirror_dirty(&tiers.store, table.id, user);
    let res = match (cleared, expected(tiers, table, user)) {
        (Ok(()), Ok(bytes)) => write(tiers, table, user, bytes).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    if let Err(e) = res {
        tracing::warn!(table = %table.qualified_name(), error = %e, "could not write manifest.json; startup will");
        if let Err(e) = manifest::mark_mirror_dirty(&tiers.store, table.id, user) {
            tracing::warn!(error = %e, "could not note a stale manifest.json");
        }
    }
}

/// Writes the mirror at the partition's current place and removes the one an
/// earlier placement left.
async fn write(tiers: &Tiers, table: &TableDef, user: &str, bytes: Vec<u8>) -> Result<()> {
    let cold = tiers.placement(table, user)?;
    let path = cold.manifest_path(table, user);
    cold.put(&path, bytes).await?;
    let here = StoredObject::new(cold.id(), &layout::to_stored(&path));
    let before = manifest::mirror_location(&tiers.store, table.id, user)?;
    if before.as_ref() != Some(&here) {
        manifest::set_mirror_location(&tiers.store, table.id, user, &here)?;
        if let Some(old) = before {
            remove(tiers, &old).await;
        }
    }
    Ok(())
}

/// Removes a mirror object; a failure is logged (the object is only a listing).
pub(crate) async fn remove(tiers: &Tiers, object: &StoredObject) {
    if let Err(e) = tiers.delete_object(object).await {
        tracing::warn!(path = %object.path, storage = %object.storage, error = %e, "could not remove an old manifest.json");
    }
}

/// An object's bytes; None if there is no such object.
async fn read(cold: &ColdStore, path: &object_store::path::Path) -> Result<Option<Vec<u8>>> {
    let got = match cold.object_store().get(path).await {
        Ok(got) => got.bytes().await,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => Err(e),
    };
    got.map(|b| Some(b.to_vec())).map_err(|e| {
        StrataError::Storage(format!(
            "cannot read {} on storage \"{}\": {e}",
            path.as_ref(),
            cold.id()
        ))
    })
}

/// Rewrites a partition's mirror if it is missing, unreadable, in an old
/// place or says anything else than the records; returns whether it did.
pub(crate) async fn repair(tiers: &Tiers, table: &TableDef, user: &str) -> Result<bool> {
    let want = expected(tiers, table, user)?;
    let cold = tiers.placement(table, user)?;
    let path = cold.manifest_path(table, user);
    let here = StoredObject::new(cold.id(), &layout::to_stored(&path));
    let recorded = manifest::mirror_location(&tiers.store, table.id, user)?;
    let have = read(&cold, &path).await?;
    let parse = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).ok();
    let same = match &have {
        Some(have) => parse(have).is_some() && parse(have) == parse(&want),
        None => false,
    };
    if same && recorded.as_ref() == Some(&here) {
        manifest::clear_mirror_dirty(&tiers.store, table.id, user)?;
        return Ok(false);
    }
    write(tiers, table, user, want).await?;
    manifest::clear_mirror_dirty(&tiers.store, table.id, user)?;
    Ok(true)
}

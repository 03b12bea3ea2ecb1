//! A job's new object until its commit: where it goes, recording it before it
//! is written, completing it, and removing it when the job does not commit it.
//!
//! Every upload is recorded (`manifest::begin_upload`) before its first byte,
//! and the record is dropped once the object is committed to a manifest or
//! removed. A job that dies in between (an error the removal could not undo,
//! a kill, a crash) leaves the record, and startup removes exactly the objects
//! such records name: no storage is ever listed to find orphans, and nothing
//! Strata did not write is ever deleted.

use strata_catalog::{TableDef, now_micros};
use strata_cold::manifest::{self, StoredObject};
use strata_cold::writer::FileWriter;
use strata_cold::{FileMeta, layout};
use strata_common::Result;
use strata_tiers::Tiers;

/// Starts a partition's new file on the storage the partition is placed on
/// now, recording the upload first.
pub(crate) fn create_file(
    tiers: &Tiers,
    table: &TableDef,
    user: &str,
    file_id: u64,
) -> Result<FileWriter> {
    let cold = tiers.placement(table, user)?;
    let writer = FileWriter::create(&cold, table, user, file_id)?;
    manifest::begin_upload(&tiers.store, &object_of(&writer), now_micros())?;
    // The commit will change the partition's records: until its mirror is
    // published, startup must check it.
    manifest::mark_mirror_dirty(&tiers.store, table.id, user)?;
    Ok(writer)
}

fn object_of(writer: &FileWriter) -> StoredObject {
    StoredObject::new(writer.storage(), &layout::to_stored(writer.path()))
}

/// Completes a job's new file; if writing it failed (or completing it does),
/// removes the object and returns the error.
pub(crate) async fn finish_file(
    tiers: &Tiers,
    writer: FileWriter,
    written: Result<()>,
) -> Result<FileMeta> {
    let object = object_of(&writer);
    let finished = match written {
        Ok(()) => writer.finish(now_micros()).await,
        Err(e) => {
            writer.abort().await;
            Err(e)
        }
    };
    if finished.is_err() {
        discard(tiers, &object).await;
    }
    finished
}

/// The object is in a manifest now: its upload record goes.
pub(crate) fn committed(tiers: &Tiers, meta: &FileMeta) {
    if let Err(e) = manifest::end_upload(&tiers.store, &StoredObject::of(meta)) {
        tracing::warn!(path = %meta.path, error = %e, "could not clear an upload record; startup will (keeping the object)");
    }
}

/// Removes an object that never made it into a manifest, then its upload
/// record; if the removal fails the record stays for startup's cleanup.
pub(crate) async fn discard(tiers: &Tiers, object: &StoredObject) {
    match tiers.delete_object(object).await {
        Ok(()) => {
            if let Err(e) = manifest::end_upload(&tiers.store, object) {
                tracing::warn!(path = %object.path, error = %e, "could not clear an upload record");
            }
        }
        Err(e) => {
            tracing::warn!(path = %object.path, storage = %object.storage, error = %e, "could not remove an unused object; startup cleanup will")
        }
    }
}

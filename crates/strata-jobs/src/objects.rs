//! A job's new object until its commit: completing it, and removing it when
//! the job does not commit it.

use strata_catalog::now_micros;
use strata_cold::writer::FileWriter;
use strata_cold::{ColdStore, FileMeta};
use strata_common::Result;

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

//! Startup work, before the server accepts connections: jobs a crash left
//! queued or running are marked failed ("interrupted"); objects no manifest
//! references (a flush that died before its commit, files a compaction
//! replaced) are deleted; missing `manifest.json` mirrors are rebuilt; the
//! scheduler's write counters start from the hot rows on disk.

use crate::manager::JobManager;
use crate::record::{self, JobStatus};
use std::collections::HashSet;
use strata_catalog::now_micros;
use strata_cold::{layout, manifest};
use strata_common::Result;

pub(crate) async fn recover(mgr: &JobManager) -> Result<()> {
    let tiers = mgr.engine.tiers().clone();
    let store = &tiers.store;
    for mut r in record::load_all(store)? {
        if !r.status.is_finished() {
            r.status = JobStatus::Failed;
            r.finished_at = Some(now_micros());
            r.error_message = Some("interrupted".into());
            record::save(store, &r)?;
            tracing::info!(job_id = %r.job_id, "job interrupted by a restart marked failed");
        }
    }

    // No query runs yet, so every released object can go now.
    collect_garbage(&tiers, i64::MAX).await;
    let referenced = manifest::all_referenced_paths(store)?;
    let mut orphans = 0usize;
    for path in tiers.cold.list(None).await? {
        let is_data = path.as_ref().ends_with(".parquet") || path.as_ref().contains(".parquet#");
        if is_data && !referenced.contains(path.as_ref()) {
            tiers.cold.delete(&path).await?;
            orphans += 1;
        }
    }
    if orphans > 0 {
        tracing::info!(orphans, "removed objects no manifest references");
    }

    let mut seen = HashSet::new();
    for table in tiers.catalog.tables() {
        for f in manifest::load_table(store, table.id)? {
            if seen.insert((table.id, f.meta.user.clone()))
                && !tiers
                    .cold
                    .exists(&layout::manifest_path(&table, &f.meta.user))
                    .await?
            {
                crate::flush::publish_manifest(&tiers, &table, &f.meta.user).await;
                tracing::info!(table = %table.qualified_name(), "rebuilt manifest.json");
            }
        }
        let hot = strata_query::scan::count_hot_rows(store.as_ref(), &table)?;
        tiers.counter(table.id).add(hot);
    }
    Ok(())
}

/// Deletes objects released before `older_than` (µs) and forgets them.
pub(crate) async fn collect_garbage(tiers: &strata_query::Tiers, older_than: i64) {
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
        let p = object_store::path::Path::from(path.as_str());
        match tiers.cold.delete(&p).await {
            Ok(()) => {
                if let Err(e) = manifest::forget_garbage(&tiers.store, &path) {
                    tracing::warn!(%path, error = %e, "cannot forget a deleted object");
                }
            }
            Err(e) => tracing::warn!(%path, error = %e, "cannot delete a released object"),
        }
    }
}

//! Startup's orphan cleanup works from upload records, never from listings:
//! an upload a crash left uncommitted is removed (with its staging file),
//! an object Strata has no record of writing is kept.

use object_store::path::Path;
use std::sync::Arc;
use std::time::Duration;
use strata_catalog::Catalog;
use strata_cold::ColdStore;
use strata_cold::manifest::{self, StoredObject};
use strata_jobs::{JobManager, JobOptions};
use strata_query::{Engine, EngineOptions, Tiers};
use strata_store::Store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_removes_recorded_uploads_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("hot"), false).unwrap());
    let catalog = Arc::new(Catalog::open(store.clone(), Default::default()).unwrap());
    let cold = Arc::new(ColdStore::local("local", &dir.path().join("storage")).unwrap());
    let tiers = Tiers::new(store.clone(), catalog, cold.clone());
    let options = EngineOptions {
        spill_dir: dir.path().join("spill"),
        ..EngineOptions::default()
    };
    let engine = Engine::new(tiers, options).unwrap();

    let orphan = Path::parse("public/t/batch-999.parquet").unwrap();
    let foreign = Path::parse("public/t/batch-1000.parquet").unwrap();
    let unrelated = Path::parse("someone-else/data.parquet").unwrap();
    for p in [&orphan, &foreign, &unrelated] {
        cold.put(p, b"bytes".to_vec()).await.unwrap();
    }
    // The staging file an interrupted local write leaves (object_store will
    // not write such a name itself).
    std::fs::write(
        dir.path().join("storage/public/t/batch-999.parquet#3"),
        b"partial",
    )
    .unwrap();
    // A flush recorded its upload, then the process died before its commit.
    let record = StoredObject::new("local", orphan.as_ref());
    manifest::begin_upload(&store, &record, 1).unwrap();

    let mgr = JobManager::new(
        engine.tiers().clone(),
        JobOptions {
            max_concurrent: 1,
            retention_days: 7,
            max_records: 100,
        },
    )
    .unwrap();
    mgr.start(Duration::from_secs(3600)).await.unwrap();

    assert!(
        !cold.exists(&orphan).await.unwrap(),
        "the recorded upload is removed"
    );
    assert!(
        !dir.path()
            .join("storage/public/t/batch-999.parquet#3")
            .exists(),
        "its staging file too"
    );
    assert!(
        cold.exists(&foreign).await.unwrap(),
        "an object with no record is kept"
    );
    assert!(
        cold.exists(&unrelated).await.unwrap(),
        "objects Strata did not write are kept"
    );
    assert!(
        manifest::pending_uploads(&store).unwrap().is_empty(),
        "the record is gone"
    );
}

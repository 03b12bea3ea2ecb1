//! Job record pruning through the public API, in process: `JobOptions`
//! (the `[jobs]` config section) reach the scheduler's and startup's pruning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_catalog::{Catalog, TableDef};
use strata_cold::ColdStore;
use strata_jobs::{JobKind, JobManager, JobOptions, JobStatus};
use strata_query::{Engine, EngineOptions, Tiers};
use strata_store::Store;

fn engine(dir: &std::path::Path) -> (Arc<Engine>, Arc<TableDef>) {
    let store = Arc::new(Store::open(&dir.join("hot"), false).unwrap());
    let catalog = Arc::new(Catalog::open(store.clone(), Default::default()).unwrap());
    let cold = Arc::new(ColdStore::local("local", &dir.join("storage")).unwrap());
    let tiers = Tiers::new(store, catalog.clone(), cold);
    let options = EngineOptions {
        spill_dir: dir.join("spill"),
        ..EngineOptions::default()
    };
    let engine = Engine::new(tiers, options).unwrap();
    let table = match catalog.table("public", "t") {
        Some(t) => t,
        None => {
            let sql = "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)";
            let Ok(mut stmts) = strata_sql::parse_sql(sql) else {
                panic!("parse")
            };
            let strata_sql::Statement::CreateTable(ct) = stmts.remove(0) else {
                panic!("not a CREATE TABLE")
            };
            let def = TableDef::from_create(&ct, "public", Default::default()).unwrap();
            catalog.create_table(def, false).unwrap().unwrap()
        }
    };
    (engine, table)
}

fn options(retention_days: u64, max_records: usize) -> JobOptions {
    JobOptions {
        max_concurrent: 1,
        retention_days,
        max_records,
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_records_are_pruned_by_count_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, table) = engine(dir.path());
    let mgr = JobManager::new(engine.tiers().clone(), options(7, 3)).unwrap();
    mgr.start(Duration::from_millis(100)).await.unwrap();
    let mut ids = vec![];
    for _ in 0..5 {
        let id = mgr.submit(JobKind::Flush, table.clone()).unwrap();
        until("flush completes", || {
            mgr.records()
                .unwrap()
                .iter()
                .any(|r| r.job_id == id && r.status == JobStatus::Completed)
        })
        .await;
        ids.push(id);
    }
    // The scheduler prunes soon after a job finishes: the 3 newest stay.
    until("pruned to 3", || {
        let kept: Vec<String> = mgr
            .records()
            .unwrap()
            .into_iter()
            .map(|r| r.job_id)
            .collect();
        kept == ids[2..]
    })
    .await;
    drop(mgr);

    // Retention 0 days: startup deletes every finished record.
    let mgr = JobManager::new(engine.tiers().clone(), options(0, 10_000)).unwrap();
    mgr.start(Duration::from_millis(100)).await.unwrap();
    assert!(mgr.records().unwrap().is_empty());
}

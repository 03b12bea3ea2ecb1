//! The job manager: runs flush, compaction and eviction jobs on its own small
//! runtime, at most `jobs.max_concurrent` at a time, one job per (kind, table)
//! at once, and keeps every job's record in `system.jobs` as it moves through
//! queued → running → completed | failed | cancelled. A job that panics ends
//! `failed` like any other error and frees its slot and permit.

use crate::blocking::panicked;
use crate::options::JobOptions;
use crate::record::{self, JobKind, JobRecord, JobStatus};
use crate::{compact, evict, flush};
use futures::FutureExt;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_catalog::{TableDef, now_micros};
use strata_common::{Result, StrataError};
use strata_tiers::{JobControl, Tiers};
use tracing::Instrument;

/// What a running job can see of its own record.
#[derive(Debug)]
pub struct JobHandle {
    pub record: Mutex<JobRecord>,
    cancelled: AtomicBool,
}

impl JobHandle {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Fails with "cancelled" once `KILL JOB` has asked the job to stop.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(StrataError::QueryCanceled)
        } else {
            Ok(())
        }
    }

    pub fn set_progress(&self, percent: f64) {
        self.record.lock().progress = percent.clamp(0.0, 100.0);
    }
}

pub struct JobManager {
    pub(crate) tiers: Arc<Tiers>,
    pub(crate) options: JobOptions,
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Jobs not yet finished, by id.
    active: Mutex<HashMap<String, Arc<JobHandle>>>,
    /// The unfinished job of each (kind, table).
    by_table: Mutex<HashMap<(JobKind, u32), String>>,
    /// Tables startup found damaged records of, with what is wrong: no job runs
    /// on them (it would build on records it cannot read).
    unavailable: Mutex<HashMap<u32, String>>,
    /// One lock per table around writing its `manifest.json` mirrors, so two
    /// jobs' publishes never land out of order (each reads the records inside).
    publish_locks: Mutex<HashMap<u32, Arc<tokio::sync::Mutex<()>>>>,
    /// Partitions whose `manifest.json` a write asked to rewrite and whose
    /// rewrite has not started: a burst of writes costs one rewrite.
    pending_publishes: Mutex<std::collections::HashSet<(u32, String)>>,
    /// Set when a job finishes, so the scheduler prunes records soon after.
    pub(crate) finished_since_prune: AtomicBool,
}

impl std::fmt::Debug for JobManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobManager").finish_non_exhaustive()
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl JobManager {
    /// `options` is the `[jobs]` config section (`&config.jobs`), or just the
    /// number of jobs that may run at once with the other settings' defaults.
    pub fn new(
        tiers: Arc<Tiers>,
        options: impl Into<JobOptions>,
    ) -> std::io::Result<Arc<JobManager>> {
        let options = options.into();
        let max = options.max_concurrent.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(max)
            .thread_name("strata-jobs")
            .enable_all()
            .build()?;
        Ok(Arc::new(JobManager {
            tiers,
            options,
            runtime: Some(runtime),
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            active: Mutex::new(HashMap::new()),
            by_table: Mutex::new(HashMap::new()),
            unavailable: Mutex::new(HashMap::new()),
            publish_locks: Mutex::new(HashMap::new()),
            pending_publishes: Mutex::new(Default::default()),
            finished_since_prune: AtomicBool::new(false),
        }))
    }

    fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match &self.runtime {
            Some(rt) => {
                rt.spawn(fut);
            }
            None => {
                tokio::spawn(fut);
            }
        }
    }

    /// Starts a job of `kind` on `table`, or returns the id of the one already
    /// queued or running. Only the table's id and name are taken from `table`:
    /// the job reads the definition in force when it starts.
    pub fn submit(self: &Arc<Self>, kind: JobKind, table: Arc<TableDef>) -> Result<String> {
        let is_stream = table.kind == strata_sql::TableKind::Stream;
        if is_stream != (kind == JobKind::Evict) {
            if !is_stream {
                return Err(StrataError::ObjectNotInPrerequisiteState(format!(
                    "{} is not a STREAM table: it has no TTL to evict by",
                    table.qualified_name()
                )));
            }
            return Err(StrataError::ObjectNotInPrerequisiteState(format!(
                "{} is a STREAM table: its rows stay in the hot tier and are never flushed",
                table.qualified_name()
            )));
        }
        if let Some(why) = self.unavailable(table.id) {
            return Err(StrataError::DataCorrupted(format!(
                "{} is unavailable: {why}",
                table.qualified_name()
            )));
        }
        let mut by_table = self.by_table.lock();
        if let Some(id) = by_table.get(&(kind, table.id)) {
            return Ok(id.clone());
        }
        let record = JobRecord {
            job_id: kind.new_id(),
            job_type: kind,
            status: JobStatus::Queued,
            namespace_id: table.namespace.clone(),
            table_name: table.name.clone(),
            table_id: table.id,
            created_at: now_micros(),
            started_at: None,
            finished_at: None,
            progress: 0.0,
            result: None,
            error_message: None,
        };
        record::save(&self.tiers.store, &record)?;
        let id = record.job_id.clone();
        let handle = Arc::new(JobHandle {
            record: Mutex::new(record),
            cancelled: AtomicBool::new(false),
        });
        by_table.insert((kind, table.id), id.clone());
        {
            let mut active = self.active.lock();
            active.insert(id.clone(), handle.clone());
            strata_common::stats::job_queue_depth(active.len());
        }
        drop(by_table);

        let this = self.clone();
        // A root span: the job outlives the statement (or scheduler tick)
        // that submitted it, so it must not be logged as part of it.
        let span = tracing::info_span!(
            parent: None,
            "job",
            job_id = %id,
            kind = kind.as_str(),
            table = %table.qualified_name()
        );
        self.spawn(
            async move {
                let permit = this.permits.clone().acquire_owned().await;
                let outcome = if handle.is_cancelled() {
                    Err(StrataError::QueryCanceled)
                } else {
                    {
                        let mut r = handle.record.lock();
                        r.status = JobStatus::Running;
                        r.started_at = Some(now_micros());
                    }
                    this.persist(&handle);
                    tracing::info!("job started");
                    let work = async {
                        match kind {
                            JobKind::Flush => flush::run(&this, &table, &handle).await,
                            JobKind::Compact => compact::run(&this, &table, &handle).await,
                            JobKind::Evict => evict::run(&this, &table, &handle).await,
                        }
                    };
                    // A panic must not leave the job `running` forever with its
                    // (kind, table) slot and its permit taken.
                    match AssertUnwindSafe(work).catch_unwind().await {
                        Ok(outcome) => outcome,
                        Err(payload) => Err(panicked(payload)),
                    }
                };
                drop(permit);
                this.finish(kind, table.id, &handle, outcome);
            }
            .instrument(span),
        );
        Ok(id)
    }

    fn persist(&self, handle: &JobHandle) {
        let r = handle.record.lock().clone();
        if let Err(e) = record::save(&self.tiers.store, &r) {
            tracing::warn!(job_id = %r.job_id, error = %e, "could not save job record");
        }
    }

    fn finish(
        &self,
        kind: JobKind,
        table_id: u32,
        handle: &JobHandle,
        outcome: Result<serde_json::Value>,
    ) {
        let id = {
            let mut r = handle.record.lock();
            r.finished_at = Some(now_micros());
            match outcome {
                Ok(result) => {
                    r.status = JobStatus::Completed;
                    r.progress = 100.0;
                    tracing::info!(%result, "job completed");
                    r.result = Some(result);
                }
                Err(StrataError::QueryCanceled) => {
                    r.status = JobStatus::Cancelled;
                    r.error_message = Some("cancelled by KILL JOB".into());
                    tracing::info!("job cancelled");
                }
                Err(e) => {
                    r.status = JobStatus::Failed;
                    tracing::warn!(error = %e, "job failed");
                    r.error_message = Some(e.to_string());
                }
            }
            count_finished(&r);
            r.job_id.clone()
        };
        self.persist(handle);
        {
            let mut active = self.active.lock();
            active.remove(&id);
            strata_common::stats::job_queue_depth(active.len());
        }
        let mut by_table = self.by_table.lock();
        if by_table.get(&(kind, table_id)) == Some(&id) {
            by_table.remove(&(kind, table_id));
        }
        drop(by_table);
        self.finished_since_prune.store(true, Ordering::SeqCst);
    }

    /// Records of every job: active ones as they are now, others as stored.
    pub fn records(&self) -> Result<Vec<JobRecord>> {
        let mut stored = record::load_all(&self.tiers.store)?;
        let active = self.active.lock();
        for r in stored.iter_mut() {
            if let Some(h) = active.get(&r.job_id) {
                *r = h.record.lock().clone();
            }
        }
        Ok(stored)
    }

    pub fn is_busy(&self, kind: JobKind, table_id: u32) -> bool {
        self.by_table.lock().contains_key(&(kind, table_id))
    }

    /// Why the table is unavailable, if startup found its records damaged.
    /// (The query layer can ask this to refuse reads with a clear error.)
    pub fn unavailable(&self, table_id: u32) -> Option<String> {
        self.unavailable.lock().get(&table_id).cloned()
    }

    pub(crate) fn mark_unavailable(&self, table_id: u32, why: String) {
        self.unavailable.lock().insert(table_id, why);
    }

    pub(crate) fn publish_lock(&self, table_id: u32) -> Arc<tokio::sync::Mutex<()>> {
        self.publish_locks
            .lock()
            .entry(table_id)
            .or_default()
            .clone()
    }

    /// Rewrites a partition's `manifest.json` after a statement changed its
    /// deletion vectors, on the job runtime. Requests that arrive before the
    /// rewrite starts are folded into it; it reads the records (and the table
    /// definition) when it runs, so it always carries the latest state.
    pub(crate) fn republish(self: &Arc<Self>, table_id: u32, user: &str) {
        let key = (table_id, user.to_string());
        if !self.pending_publishes.lock().insert(key.clone()) {
            return;
        }
        let mgr = self.clone();
        self.spawn(async move {
            mgr.pending_publishes.lock().remove(&key);
            // A table dropped since has no listing to keep.
            if let Some(table) = mgr.tiers.catalog.table_by_id(key.0) {
                crate::mirror::publish(&mgr, &table, &key.1).await;
            }
        });
    }

    /// Deletes the finished job records past `jobs.retention_days` or beyond
    /// `jobs.max_records`; returns how many.
    pub(crate) fn prune_records(&self) -> Result<usize> {
        let store = &self.tiers.store;
        let records = record::load_all(store)?;
        let doomed = record::to_prune(
            &records,
            now_micros(),
            self.options.retention_micros(),
            self.options.max_records,
        );
        // A record still active here is finishing right now; keep it for the
        // next prune rather than race its last save.
        let active = self.active.lock();
        let doomed: Vec<String> = doomed
            .into_iter()
            .filter(|id| !active.contains_key(id))
            .collect();
        drop(active);
        record::delete(store, &doomed)?;
        if !doomed.is_empty() {
            tracing::info!(pruned = doomed.len(), "pruned finished job records");
        }
        Ok(doomed.len())
    }
}

/// `JobControl` lives on `Arc<JobManager>` because submitting clones the Arc
/// into the spawned job.
#[derive(Debug)]
pub struct Control(pub Arc<JobManager>);

impl JobControl for Control {
    fn flush_table(&self, table: Arc<TableDef>) -> Result<String> {
        self.0.submit(JobKind::Flush, table)
    }

    fn compact_table(&self, table: Arc<TableDef>) -> Result<String> {
        self.0.submit(JobKind::Compact, table)
    }

    fn kill(&self, job_id: &str) -> Result<()> {
        if let Some(h) = self.0.active.lock().get(job_id) {
            h.cancelled.store(true, Ordering::SeqCst);
            tracing::info!(job_id, "job cancellation requested");
            return Ok(());
        }
        match record::load_all(&self.0.tiers.store)?
            .into_iter()
            .find(|r| r.job_id == job_id)
        {
            Some(r) => Err(StrataError::ObjectNotInPrerequisiteState(format!(
                "job {job_id} is not running (status {})",
                r.status.as_str()
            ))),
            None => Err(StrataError::UndefinedObject(format!(
                "job \"{job_id}\" does not exist"
            ))),
        }
    }

    fn cold_rows_changed(&self, table_id: u32, user: &str) {
        if let Err(e) =
            strata_cold::manifest::mark_mirror_dirty(&self.0.tiers.store, table_id, user)
        {
            tracing::warn!(table_id, error = %e, "could not note a stale manifest.json");
        }
        self.0.republish(table_id, user);
    }

    fn jobs_batch(&self) -> Result<arrow::array::RecordBatch> {
        record::to_batch(&self.0.records()?)
    }
}

/// Adds a finished job to the metrics: its status, and the rows and bytes its
/// result record says it wrote (`rows_flushed` or `rows_written`,
/// `bytes_written`; absent keys count 0).
fn count_finished(r: &JobRecord) {
    let field = |key: &str| {
        r.result
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(serde_json::Value::as_u64)
    };
    let rows = field("rows_flushed")
        .or_else(|| field("rows_written"))
        .unwrap_or(0);
    let bytes = field("bytes_written").unwrap_or(0);
    strata_common::stats::job_finished(r.job_type.as_str(), r.status.as_str(), rows, bytes);
}

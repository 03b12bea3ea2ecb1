//! The job manager: runs flush and compaction jobs on its own small runtime,
//! at most `jobs.max_concurrent` at a time, one job per (kind, table) at once,
//! and keeps every job's record in `system.jobs` as it moves through
//! queued → running → completed | failed | cancelled.

use crate::record::{self, JobKind, JobRecord, JobStatus};
use crate::{compact, evict, flush};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_catalog::{TableDef, now_micros};
use strata_common::{Result, StrataError};
use strata_query::{Engine, JobControl};
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
    pub(crate) engine: Arc<Engine>,
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<tokio::sync::Semaphore>,
    /// Jobs not yet finished, by id.
    active: Mutex<HashMap<String, Arc<JobHandle>>>,
    /// The unfinished job of each (kind, table).
    by_table: Mutex<HashMap<(JobKind, u32), String>>,
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
    pub fn new(engine: Arc<Engine>, max_concurrent: usize) -> std::io::Result<Arc<JobManager>> {
        let max = max_concurrent.max(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(max)
            .thread_name("strata-jobs")
            .enable_all()
            .build()?;
        Ok(Arc::new(JobManager {
            engine,
            runtime: Some(runtime),
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            active: Mutex::new(HashMap::new()),
            by_table: Mutex::new(HashMap::new()),
        }))
    }

    pub(crate) fn spawn<F>(&self, fut: F)
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
    /// queued or running.
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
        record::save(self.engine.store(), &record)?;
        let id = record.job_id.clone();
        let handle = Arc::new(JobHandle {
            record: Mutex::new(record),
            cancelled: AtomicBool::new(false),
        });
        by_table.insert((kind, table.id), id.clone());
        self.active.lock().insert(id.clone(), handle.clone());
        drop(by_table);

        let this = self.clone();
        let span = tracing::info_span!("job", job_id = %id, table = %table.qualified_name());
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
                    tracing::info!(kind = kind.as_str(), "job started");
                    match kind {
                        JobKind::Flush => flush::run(&this, &table, &handle).await,
                        JobKind::Compact => compact::run(&this, &table, &handle).await,
                        JobKind::Evict => evict::run(&this, &table, &handle).await,
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
        if let Err(e) = record::save(self.engine.store(), &r) {
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
            r.job_id.clone()
        };
        self.persist(handle);
        self.active.lock().remove(&id);
        let mut by_table = self.by_table.lock();
        if by_table.get(&(kind, table_id)) == Some(&id) {
            by_table.remove(&(kind, table_id));
        }
    }

    /// Records of every job: active ones as they are now, others as stored.
    pub fn records(&self) -> Result<Vec<JobRecord>> {
        let mut stored = record::load_all(self.engine.store())?;
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
        match record::load_all(self.0.engine.store())?
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

    fn jobs_batch(&self) -> Result<arrow::array::RecordBatch> {
        record::to_batch(&self.0.records()?)
    }
}

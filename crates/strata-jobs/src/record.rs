//! Job records as stored in RocksDB (CF `jobs`, JSON by job id) and shown by
//! `system.jobs`.

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_store::{Batch, CF_JOBS, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Flush,
    Compact,
    /// Removes expired rows of a STREAM table.
    Evict,
}

impl JobKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobKind::Flush => "flush",
            JobKind::Compact => "compact",
            JobKind::Evict => "evict",
        }
    }

    fn id_prefix(&self) -> &'static str {
        match self {
            JobKind::Flush => "FL-",
            JobKind::Compact => "CO-",
            JobKind::Evict => "SE-",
        }
    }

    /// A fresh id: the kind's prefix and 12 hex digits.
    pub fn new_id(&self) -> String {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        format!("{}{}", self.id_prefix(), &hex[..12])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub job_type: JobKind,
    pub status: JobStatus,
    pub namespace_id: String,
    pub table_name: String,
    pub table_id: u32,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Percent done, 0–100.
    pub progress: f64,
    pub result: Option<serde_json::Value>,
    pub error_message: Option<String>,
}

/// Where startup moves job records it cannot read: job ids are ASCII, so no
/// record key starts with 0xFF, and [`load_all`] never reads there. Kept, not
/// deleted, so an operator can look at what was damaged.
const QUARANTINE: &[u8] = b"\xffquarantine/";

/// The end of the key range job records live in (the quarantine starts there).
const RECORDS_END: &[u8] = b"\xff";

pub fn save(store: &Store, r: &JobRecord) -> Result<()> {
    let v = serde_json::to_vec(r).map_err(|e| StrataError::internal(e.to_string()))?;
    store.put(CF_JOBS, r.job_id.as_bytes(), &v)
}

pub fn load_all(store: &Store) -> Result<Vec<JobRecord>> {
    let mut out = vec![];
    store.scan(CF_JOBS, b"", RECORDS_END, |k, v| {
        match serde_json::from_slice::<JobRecord>(v) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(key = %String::from_utf8_lossy(k), error = %e, "skipping unreadable job record"),
        }
        Ok(true)
    })?;
    out.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then(a.job_id.cmp(&b.job_id))
    });
    Ok(out)
}

/// Moves every record that does not parse into the quarantine (one batch),
/// logging each; returns how many. Startup does this so one damaged record
/// costs a warning, not the server.
pub(crate) fn quarantine_corrupt(store: &Store) -> Result<usize> {
    let mut bad: Vec<(Vec<u8>, Vec<u8>)> = vec![];
    store.scan(CF_JOBS, b"", RECORDS_END, |k, v| {
        if let Err(e) = serde_json::from_slice::<JobRecord>(v) {
            tracing::warn!(
                key = %String::from_utf8_lossy(k),
                error = %e,
                "corrupt job record moved aside (CF jobs, key prefix 0xFF \"quarantine/\")"
            );
            bad.push((k.to_vec(), v.to_vec()));
        }
        Ok(true)
    })?;
    if bad.is_empty() {
        return Ok(0);
    }
    let cf = store.cf(CF_JOBS)?;
    let mut batch = Batch::default();
    for (k, v) in &bad {
        batch.put_cf(cf, [QUARANTINE, k.as_slice()].concat(), v);
        batch.delete_cf(cf, k);
    }
    store.write(batch)?;
    Ok(bad.len())
}

/// The ids of the finished records to delete: those finished before
/// `now - retention`, then the oldest finished ones while more than
/// `max_records` records remain. Queued and running records are never chosen.
pub(crate) fn to_prune(
    records: &[JobRecord],
    now: i64,
    retention_micros: i64,
    max_records: usize,
) -> Vec<String> {
    let cutoff = now.saturating_sub(retention_micros);
    let finished_at = |r: &JobRecord| r.finished_at.unwrap_or(r.created_at);
    let mut finished: Vec<&JobRecord> = records.iter().filter(|r| r.status.is_finished()).collect();
    finished.sort_by(|a, b| {
        finished_at(a)
            .cmp(&finished_at(b))
            .then(a.created_at.cmp(&b.created_at))
            .then(a.job_id.cmp(&b.job_id))
    });
    let mut doomed = vec![];
    let mut remaining = records.len();
    for r in finished {
        if finished_at(r) < cutoff || remaining > max_records {
            doomed.push(r.job_id.clone());
            remaining -= 1;
        }
    }
    doomed
}

/// Deletes records by id, in one batch.
pub(crate) fn delete(store: &Store, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let cf = store.cf(CF_JOBS)?;
    let mut batch = Batch::default();
    for id in ids {
        batch.delete_cf(cf, id.as_bytes());
    }
    store.write(batch)
}

/// The rows of `system.jobs`.
pub fn to_batch(records: &[JobRecord]) -> Result<RecordBatch> {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(strata_catalog::UTC)));
    let schema = Arc::new(Schema::new(vec![
        Field::new("job_id", DataType::Utf8, false),
        Field::new("job_type", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("namespace_id", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("created_at", ts(), false),
        Field::new("started_at", ts(), true),
        Field::new("finished_at", ts(), true),
        Field::new("progress", DataType::Float64, false),
        Field::new("result", DataType::Utf8, true),
        Field::new("error_message", DataType::Utf8, true),
    ]));
    let s = |f: &dyn Fn(&JobRecord) -> String| -> ArrayRef {
        Arc::new(StringArray::from(records.iter().map(f).collect::<Vec<_>>()))
    };
    let t = |f: &dyn Fn(&JobRecord) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(records.iter().map(f).collect::<Vec<_>>())
                .with_timezone(strata_catalog::UTC),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        s(&|r| r.job_id.clone()),
        s(&|r| r.job_type.as_str().into()),
        s(&|r| r.status.as_str().into()),
        s(&|r| r.namespace_id.clone()),
        s(&|r| r.table_name.clone()),
        t(&|r| Some(r.created_at)),
        t(&|r| r.started_at),
        t(&|r| r.finished_at),
        Arc::new(Float64Array::from(
            records.iter().map(|r| r.progress).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            records
                .iter()
                .map(|r| r.result.as_ref().map(|v| v.to_string()))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            records
                .iter()
                .map(|r| r.error_message.clone())
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(schema, columns).map_err(|e| StrataError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, status: JobStatus, created: i64, finished: Option<i64>) -> JobRecord {
        JobRecord {
            job_id: id.into(),
            job_type: JobKind::Flush,
            status,
            namespace_id: "app".into(),
            table_name: "t".into(),
            table_id: 1,
            created_at: created,
            started_at: None,
            finished_at: finished,
            progress: 0.0,
            result: None,
            error_message: None,
        }
    }

    #[test]
    fn prunes_old_finished_records_and_never_unfinished_ones() {
        let day = 86_400_000_000i64;
        let now = 10 * day;
        let records = vec![
            rec("old-done", JobStatus::Completed, 0, Some(day)),
            rec("old-failed", JobStatus::Failed, 0, Some(2 * day)),
            rec("old-running", JobStatus::Running, 0, None),
            rec("old-queued", JobStatus::Queued, 0, None),
            rec("new-done", JobStatus::Cancelled, 9 * day, Some(9 * day)),
        ];
        let mut doomed = to_prune(&records, now, 7 * day, 100);
        doomed.sort();
        assert_eq!(doomed, vec!["old-done", "old-failed"]);
        // Retention 0: every finished record goes, unfinished ones stay.
        let mut doomed = to_prune(&records, now, 0, 100);
        doomed.sort();
        assert_eq!(doomed, vec!["new-done", "old-done", "old-failed"]);
    }

    #[test]
    fn keeps_at_most_max_records_dropping_the_oldest_finished() {
        let records: Vec<JobRecord> = (0..6)
            .map(|i| rec(&format!("j{i}"), JobStatus::Completed, i, Some(i)))
            .chain([rec("run", JobStatus::Running, 0, None)])
            .collect();
        let doomed = to_prune(&records, 100, i64::MAX, 3);
        assert_eq!(doomed, vec!["j0", "j1", "j2", "j3"]);
        // Only unfinished records left over the limit: nothing to delete.
        let running: Vec<JobRecord> = (0..4)
            .map(|i| rec(&format!("r{i}"), JobStatus::Running, i, None))
            .collect();
        assert!(to_prune(&running, 100, 0, 1).is_empty());
    }

    #[test]
    fn corrupt_records_are_moved_aside_and_the_rest_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), false).unwrap();
        save(&store, &rec("FL-good", JobStatus::Completed, 1, Some(2))).unwrap();
        store.put(CF_JOBS, b"FL-bad", b"{not json").unwrap();
        assert_eq!(quarantine_corrupt(&store).unwrap(), 1);
        let ids: Vec<String> = load_all(&store)
            .unwrap()
            .into_iter()
            .map(|r| r.job_id)
            .collect();
        assert_eq!(ids, vec!["FL-good"]);
        assert_eq!(store.get(CF_JOBS, b"FL-bad").unwrap(), None);
        let kept = [QUARANTINE, b"FL-bad".as_slice()].concat();
        assert_eq!(
            store.get(CF_JOBS, &kept).unwrap().as_deref(),
            Some(&b"{not json"[..])
        );
        // A second start finds nothing more to move.
        assert_eq!(quarantine_corrupt(&store).unwrap(), 0);
    }
}

//! Job records as stored in RocksDB (CF `jobs`, JSON by job id) and shown by
//! `system.jobs`.

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_store::{CF_JOBS, Store};

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

pub fn save(store: &Store, r: &JobRecord) -> Result<()> {
    let v = serde_json::to_vec(r).map_err(|e| StrataError::internal(e.to_string()))?;
    store.put(CF_JOBS, r.job_id.as_bytes(), &v)
}

pub fn load_all(store: &Store) -> Result<Vec<JobRecord>> {
    let mut out = vec![];
    store.scan(CF_JOBS, b"", b"", |k, v| {
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

//! Background work on tables: the job manager (a bounded pool, `system.jobs`,
//! `KILL JOB`), the flush job that moves hot rows to Parquet, the compaction job
//! that rewrites a partition's files, the eviction job that removes expired rows
//! of STREAM tables, the scheduler that applies flush policies and TTLs, and
//! startup recovery (interrupted jobs, orphaned objects, missing manifests).

mod compact;
mod evict;
mod flush;
mod manager;
mod record;
mod recovery;
mod scheduler;

pub use manager::{Control, JobManager};
pub use record::{JobKind, JobRecord, JobStatus};

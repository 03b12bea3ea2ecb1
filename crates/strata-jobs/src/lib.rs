//! Background work on tables: the job manager (a bounded pool, `system.jobs`,
//! `KILL JOB`, record pruning), the flush job that moves hot rows to Parquet,
//! the compaction job that rewrites a partition's files, the eviction job that
//! removes expired rows of STREAM tables, the scheduler that applies flush
//! policies and TTLs on its own thread, and startup recovery (interrupted
//! jobs, damaged records, orphaned objects, stale manifests).
//!
//! Every job works by the table definition in force when it runs and commits
//! only if that definition is still in force (`definition`); a panicking job
//! ends `failed`.

mod blocking;
mod compact;
mod definition;
mod evict;
mod failpoint;
mod flush;
mod manager;
mod mirror;
mod objects;
mod options;
mod record;
mod recovery;
mod scheduler;

pub use manager::{Control, JobManager};
pub use options::JobOptions;
pub use record::{JobKind, JobRecord, JobStatus};

//! The job manager's settings: the `[jobs]` section of the server config.

use strata_common::config::JobsConfig;

const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone)]
pub struct JobOptions {
    /// Jobs that run at once (and threads of the job runtime).
    pub max_concurrent: usize,
    /// Finished job records older than this many days are pruned.
    pub retention_days: u64,
    /// Finished job records beyond this many (oldest first) are pruned.
    pub max_records: usize,
}

impl JobOptions {
    pub(crate) fn retention_micros(&self) -> i64 {
        i64::try_from(self.retention_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_DAY)
    }
}

impl From<&JobsConfig> for JobOptions {
    fn from(c: &JobsConfig) -> JobOptions {
        JobOptions {
            max_concurrent: c.max_concurrent,
            retention_days: c.retention_days,
            max_records: c.max_records,
        }
    }
}

impl From<JobsConfig> for JobOptions {
    fn from(c: JobsConfig) -> JobOptions {
        JobOptions::from(&c)
    }
}

/// Just the concurrency; retention takes the config's defaults.
impl From<usize> for JobOptions {
    fn from(max_concurrent: usize) -> JobOptions {
        JobOptions {
            max_concurrent,
            ..JobOptions::from(&JobsConfig::default())
        }
    }
}

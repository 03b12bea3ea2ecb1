//! Applies flush policies: on every tick, a table whose writes since its last
//! flush reached its `rows` bound, or whose oldest unflushed write is older than
//! its `interval`, gets a flush job (the manager never runs two for one table).
//! A STREAM table holding rows gets an eviction job at most once per
//! `min(ttl, 60 s)`. The tick also deletes objects released more than a grace
//! period ago.

use crate::manager::JobManager;
use crate::record::JobKind;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use strata_catalog::now_micros;
use strata_sql::TableKind;

/// How long a released object outlives its last reference, for queries that
/// planned against the old manifest.
const GARBAGE_GRACE_MICROS: i64 = 60_000_000;

impl JobManager {
    /// Recovers from the last run, then starts the policy scheduler.
    pub async fn start(self: &Arc<Self>, check_interval: Duration) -> strata_common::Result<()> {
        crate::recovery::recover(self).await?;
        let this = Arc::downgrade(self);
        self.spawn(async move {
            let mut tick = tokio::time::interval(check_interval.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = Instant::now();
            let mut last_eviction: HashMap<u32, Instant> = HashMap::new();
            loop {
                tick.tick().await;
                let Some(mgr) = this.upgrade() else { break };
                mgr.apply_policies();
                mgr.apply_ttls(started, &mut last_eviction);
                let tiers = mgr.engine.tiers().clone();
                crate::recovery::collect_garbage(&tiers, now_micros() - GARBAGE_GRACE_MICROS).await;
            }
        });
        Ok(())
    }

    fn apply_policies(self: &Arc<Self>) {
        let tiers = self.engine.tiers().clone();
        for table in tiers.catalog.tables() {
            if table.kind == TableKind::Stream || self.is_busy(JobKind::Flush, table.id) {
                continue;
            }
            let counter = tiers.counter(table.id);
            let rows = counter.rows.load(Ordering::Relaxed);
            if rows == 0 {
                continue;
            }
            let by_rows = table.flush_policy.rows.is_some_and(|n| rows >= n);
            let by_age = table.flush_policy.interval_secs.is_some_and(|s| {
                counter
                    .oldest
                    .lock()
                    .is_some_and(|t| t.elapsed() >= Duration::from_secs(s))
            });
            if by_rows || by_age {
                let why = if by_rows { "rows" } else { "interval" };
                match self.submit(JobKind::Flush, table.clone()) {
                    Ok(id) => {
                        tracing::info!(table = %table.qualified_name(), job_id = %id, trigger = why, "policy flush")
                    }
                    Err(e) => {
                        tracing::warn!(table = %table.qualified_name(), error = %e, "policy flush not started")
                    }
                }
            }
        }
    }

    fn apply_ttls(self: &Arc<Self>, started: Instant, last: &mut HashMap<u32, Instant>) {
        let tiers = self.engine.tiers().clone();
        for table in tiers.catalog.tables() {
            if table.kind != TableKind::Stream || self.is_busy(JobKind::Evict, table.id) {
                continue;
            }
            let every = Duration::from_secs(table.ttl_seconds.unwrap_or(60).clamp(1, 60));
            let since = last.get(&table.id).copied().unwrap_or(started);
            let holds_rows = tiers.counter(table.id).rows.load(Ordering::Relaxed) > 0;
            if !holds_rows || since.elapsed() < every {
                continue;
            }
            last.insert(table.id, Instant::now());
            if let Err(e) = self.submit(JobKind::Evict, table.clone()) {
                tracing::warn!(table = %table.qualified_name(), error = %e, "eviction not started");
            }
        }
    }
}

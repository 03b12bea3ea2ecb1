//! Applies flush policies: on every tick, a table whose writes since its last
//! flush reached its `rows` bound, or whose oldest unflushed write is older than
//! its `interval`, gets a flush job (the manager never runs two for one table).
//! A STREAM table holding rows gets an eviction job at most once per
//! `min(ttl, 60 s)`. The tick also deletes objects released more than a grace
//! period ago and prunes finished job records.
//!
//! The scheduler runs on a thread and runtime of its own, not on the job
//! runtime: jobs may keep every job thread busy (a large flush), and the
//! scheduler must still tick, or policies and TTLs would silently stop applying.

use crate::blocking::panic_message;
use crate::manager::JobManager;
use crate::record::JobKind;
use futures::FutureExt;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use strata_catalog::now_micros;
use strata_common::StrataError;
use strata_sql::TableKind;
use tracing::Instrument;

/// How long a released object outlives its last reference, for queries that
/// planned against the old manifest.
const GARBAGE_GRACE_MICROS: i64 = 60_000_000;

/// Job records are pruned after a job finished, and at least this often (for
/// records that age past the retention while nothing runs).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What the scheduler remembers between ticks.
struct TickState {
    started: Instant,
    last_eviction: HashMap<u32, Instant>,
    last_prune: Instant,
}

impl JobManager {
    /// Recovers from the last run, then starts the policy scheduler on its own
    /// thread.
    pub async fn start(self: &Arc<Self>, check_interval: Duration) -> strata_common::Result<()> {
        crate::recovery::recover(self).await;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StrataError::internal(format!("cannot start the scheduler: {e}")))?;
        let this = Arc::downgrade(self);
        let period = check_interval.max(Duration::from_millis(100));
        std::thread::Builder::new()
            .name("strata-scheduler".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut tick = tokio::time::interval(period);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let mut state = TickState {
                        started: Instant::now(),
                        last_eviction: HashMap::new(),
                        last_prune: Instant::now(),
                    };
                    loop {
                        tick.tick().await;
                        // Holding only a weak reference between ticks lets the
                        // manager (and this thread) go away with the server.
                        let Some(mgr) = this.upgrade() else { break };
                        let span = tracing::debug_span!("scheduler_tick");
                        let ticked =
                            AssertUnwindSafe(mgr.tick(&mut state).instrument(span)).catch_unwind();
                        if let Err(payload) = ticked.await {
                            tracing::error!(
                                panic = %panic_message(payload.as_ref()),
                                "a scheduler tick panicked; the next one runs as usual"
                            );
                        }
                    }
                });
            })
            .map_err(|e| StrataError::internal(format!("cannot start the scheduler: {e}")))?;
        Ok(())
    }

    async fn tick(self: &Arc<Self>, state: &mut TickState) {
        self.apply_policies();
        self.apply_ttls(state.started, &mut state.last_eviction);
        let tiers = self.tiers.clone();
        crate::recovery::collect_garbage(&tiers, now_micros() - GARBAGE_GRACE_MICROS).await;
        let finished = self.finished_since_prune.swap(false, Ordering::SeqCst);
        if finished || state.last_prune.elapsed() >= PRUNE_EVERY {
            state.last_prune = Instant::now();
            if let Err(e) = self.prune_records() {
                tracing::warn!(error = %e, "could not prune job records");
            }
        }
    }

    fn apply_policies(self: &Arc<Self>) {
        let tiers = self.tiers.clone();
        for table in tiers.catalog.tables() {
            if table.kind == TableKind::Stream
                || self.is_busy(JobKind::Flush, table.id)
                || self.unavailable(table.id).is_some()
                || self.flush_backing_off(table.id)
            {
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
        let tiers = self.tiers.clone();
        for table in tiers.catalog.tables() {
            if table.kind != TableKind::Stream
                || self.is_busy(JobKind::Evict, table.id)
                || self.unavailable(table.id).is_some()
            {
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

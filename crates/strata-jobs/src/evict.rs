//! The eviction job of STREAM tables: deletes rows whose TTL has elapsed.
//!
//! Expired rows are already invisible to every read (the TTL is checked when a
//! row is read, by the TTL in force then), so eviction only reclaims space and
//! must never change a result. It walks the table's keys in chunks, collecting
//! candidates by the current definition; each chunk's deletes commit in one
//! batch under the table's write lock, which ALTER TABLE holds too, and a key
//! is deleted only if, under that lock, its version is still the one the walk
//! saw and it is expired by the TTL read under the lock. So a concurrent
//! re-insert survives, and so does a row a raised TTL made live again.

use crate::definition;
use crate::manager::{JobHandle, JobManager};
use crate::{blocking, failpoint};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use strata_catalog::{TableDef, now_micros};
use strata_common::{Result, keys};
use strata_store::{Batch, CF_DATA};
use strata_tiers::codec::{decode_header, is_live_value};

/// Keys deleted per write batch (and per hold of the write lock).
const CHUNK: usize = 4096;

/// One chunk of the walk: expired (key, seq) pairs, live rows seen, and where
/// the next chunk starts.
struct Walked {
    expired: Vec<(Vec<u8>, u64)>,
    live: u64,
    resume: Option<Vec<u8>>,
}

pub(crate) async fn run(
    mgr: &JobManager,
    submitted: &TableDef,
    handle: &Arc<JobHandle>,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let tiers = mgr.tiers.clone();
    let name = submitted.qualified_name();
    let prefix = keys::table_prefix(submitted.id);
    let end = keys::prefix_successor(&prefix);
    let mut start = prefix;
    let mut evicted = 0u64;
    let mut left = 0u64;
    // Writes counted from here on are not seen by the walk; they are kept.
    let counter = tiers.counter(submitted.id);
    let counted_before = counter.rows.load(Ordering::Relaxed);
    loop {
        handle.check()?;
        let table = definition::current(&tiers, submitted.id, &name)?;
        let walked = {
            let (store, table, start, end) = (
                tiers.store.clone(),
                table.clone(),
                start.clone(),
                end.clone(),
            );
            blocking::run(move |_| walk(&store, &table, &start, &end)).await?
        };
        left += walked.live;
        failpoint::pause("pause_evict", &table.name).await;
        if !walked.expired.is_empty() {
            let lock = mgr.tiers.write_lock(submitted.id);
            let _guard = lock.lock().await;
            // The TTL in force now, under the lock ALTER TABLE takes to change it.
            let table = definition::current(&tiers, submitted.id, &name)?;
            let now = now_micros();
            let store = &tiers.store;
            let cf = store.cf(CF_DATA)?;
            let mut batch = Batch::default();
            for (key, seq) in &walked.expired {
                let Some(v) = store.get(CF_DATA, key)? else {
                    continue;
                };
                if decode_header(&v)?.0 != *seq {
                    continue;
                }
                if is_live_value(&table, &v, now)? {
                    left += 1;
                } else {
                    batch.delete_cf(cf, key);
                    evicted += 1;
                }
            }
            store.write(batch)?;
        }
        match walked.resume {
            Some(k) => start = k,
            None => break,
        }
    }
    // For a STREAM table the write counter tracks rows still held, so the
    // scheduler only starts another eviction when there is something to evict:
    // the rows the walk left, plus every write counted since it started
    // (overwriting those would hide rows written during the eviction until
    // the next write).
    let _ = counter
        .rows
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
            Some(left + now.saturating_sub(counted_before))
        });
    handle.set_progress(100.0);
    Ok(json!({
        "rows_evicted": evicted,
        "rows_left": left,
        "duration_ms": started.elapsed().as_millis() as u64,
    }))
}

/// Collects up to [`CHUNK`] rows of `[start, end)` expired by `table`'s TTL.
fn walk(store: &strata_store::Store, table: &TableDef, start: &[u8], end: &[u8]) -> Result<Walked> {
    let now = now_micros();
    let mut out = Walked {
        expired: Vec::new(),
        live: 0,
        resume: None,
    };
    store.scan(CF_DATA, start, end, |k, v| {
        if out.expired.len() >= CHUNK {
            out.resume = Some(k.to_vec());
            return Ok(false);
        }
        if is_live_value(table, v, now)? {
            out.live += 1;
        } else {
            out.expired.push((k.to_vec(), decode_header(v)?.0));
        }
        Ok(true)
    })?;
    Ok(out)
}

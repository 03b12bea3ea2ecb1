//! The eviction job of STREAM tables: deletes rows whose TTL has elapsed.
//!
//! Expired rows are already invisible to every read (the TTL is checked when a
//! row is read), so eviction only reclaims space and never changes a result.
//! It walks the table's keys in chunks; each chunk's deletes commit in one
//! batch under the table's write lock, and a key is deleted only if its version
//! is still the expired one seen by the walk, so a concurrent re-insert of the
//! same key survives.

use crate::manager::{JobHandle, JobManager};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use strata_catalog::{TableDef, now_micros};
use strata_common::{Result, keys};
use strata_query::codec::{decode_header, is_live_value};
use strata_store::{Batch, CF_DATA};

/// Keys deleted per write batch (and per hold of the write lock).
const CHUNK: usize = 4096;

pub(crate) async fn run(
    mgr: &JobManager,
    table: &Arc<TableDef>,
    handle: &JobHandle,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let store = mgr.engine.store().clone();
    let prefix = keys::table_prefix(table.id);
    let end = keys::prefix_successor(&prefix);
    let mut start = prefix;
    let mut evicted = 0u64;
    let mut left = 0u64;
    loop {
        handle.check()?;
        let now = now_micros();
        let mut expired: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut resume: Option<Vec<u8>> = None;
        store.scan(CF_DATA, &start, &end, |k, v| {
            if expired.len() >= CHUNK {
                resume = Some(k.to_vec());
                return Ok(false);
            }
            if is_live_value(table, v, now)? {
                left += 1;
            } else {
                expired.push((k.to_vec(), decode_header(v)?.0));
            }
            Ok(true)
        })?;
        if !expired.is_empty() {
            let lock = mgr.engine.write_lock(table.id);
            let _guard = lock.lock().await;
            let cf = store.cf(CF_DATA)?;
            let mut batch = Batch::default();
            for (key, seq) in &expired {
                let unchanged = match store.get(CF_DATA, key)? {
                    Some(v) => decode_header(&v)?.0 == *seq,
                    None => false,
                };
                if unchanged {
                    batch.delete_cf(cf, key);
                    evicted += 1;
                }
            }
            store.write(batch)?;
        }
        match resume {
            Some(k) => start = k,
            None => break,
        }
    }
    // For a STREAM table the write counter tracks rows still held, so the
    // scheduler only starts another eviction when there is something to evict.
    mgr.engine
        .tiers()
        .counter(table.id)
        .rows
        .store(left, Ordering::Relaxed);
    handle.set_progress(100.0);
    Ok(json!({
        "rows_evicted": evicted,
        "rows_left": left,
        "duration_ms": started.elapsed().as_millis() as u64,
    }))
}

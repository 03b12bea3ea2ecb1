//! The change log that lets a live query resume (`OPTIONS (from_seq = S)`).
//!
//! A table's changes are logged while it has subscribers and for a retention
//! period after the last one left, in the commit's own write batch (so the
//! log never misses a committed change nor holds one that was not
//! committed). Entries are keyed `table id (BE u32) | _seq (BE u64)`; the
//! key with `_seq` 0 holds the table's `since`: every change with a `_seq`
//! above it is in the log. A `from_seq` below `since` cannot be resumed.
//!
//! Tables nobody subscribes to pay nothing: writers check one map entry.
//! Trimming (by age and by count) runs in the background and only moves
//! `since` forward.

use crate::changes::{Change, ChangeOp};
use crate::codec::{decode_row, encode_row};
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};
use strata_store::{Batch, CF_CHANGES, Store};

/// How long and how much of a table's changes are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub seconds: u64,
    pub max_entries: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            seconds: 3600,
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TableLog {
    since: u64,
    entries: u64,
    /// µs of the oldest entry, 0 when there is none.
    oldest_at: i64,
    subscribers: usize,
    /// µs when the last subscriber left (or the server started).
    idle_since: i64,
}

/// One logged change and the partition (user) it belongs to.
#[derive(Debug, Clone)]
pub struct LoggedChange {
    pub user: String,
    pub change: Change,
}

#[derive(Debug, Default)]
pub struct ChangeLog {
    retention: Mutex<Retention>,
    tables: Mutex<HashMap<u32, TableLog>>,
    /// `tables.len()`, read without the lock by every writer.
    logged: AtomicUsize,
}

fn key(table_id: u32, seq: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&table_id.to_be_bytes());
    k[4..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn corrupt() -> StrataError {
    StrataError::Storage("corrupt change log entry".into())
}

fn op_code(op: ChangeOp) -> u8 {
    match op {
        ChangeOp::Insert => b'i',
        ChangeOp::Update => b'u',
        ChangeOp::Delete => b'd',
    }
}

impl ChangeLog {
    /// The logs left by the last run: each table's `since`, entry count and
    /// oldest entry. Their retention starts again now.
    pub fn load(store: &Store, now: i64) -> Result<ChangeLog> {
        let mut tables: HashMap<u32, TableLog> = HashMap::new();
        store.scan(CF_CHANGES, &[], &[], |k, v| {
            let (Some(id), Some(seq)) = (
                k.get(..4).and_then(|b| b.try_into().ok()),
                k.get(4..12).and_then(|b| b.try_into().ok()),
            ) else {
                return Ok(true);
            };
            let (id, seq) = (u32::from_be_bytes(id), u64::from_be_bytes(seq));
            let t = tables.entry(id).or_insert(TableLog {
                since: u64::MAX,
                entries: 0,
                oldest_at: 0,
                subscribers: 0,
                idle_since: now,
            });
            if seq == 0 {
                t.since = v
                    .try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| corrupt())?;
            } else {
                t.entries += 1;
                if t.oldest_at == 0 {
                    t.oldest_at = entry_time(v)?;
                }
            }
            Ok(true)
        })?;
        // Entries without a `since` record are leftovers nobody can resume from.
        tables.retain(|_, t| t.since != u64::MAX);
        Ok(ChangeLog {
            retention: Mutex::new(Retention::default()),
            logged: AtomicUsize::new(tables.len()),
            tables: Mutex::new(tables),
        })
    }

    pub fn set_retention(&self, retention: Retention) {
        *self.retention.lock() = retention;
    }

    /// Whether a commit to `table_id` must be logged.
    pub fn logging(&self, table_id: u32) -> bool {
        self.logged.load(Ordering::Relaxed) > 0 && self.tables.lock().contains_key(&table_id)
    }

    /// A subscriber starts on `table_id`: the log starts (or goes on).
    /// Call while no writer of the table is between reading what it replaces
    /// and committing (see `ChangeBus::gate`).
    pub fn subscribe(&self, store: &Store, table_id: u32) -> Result<()> {
        if let Some(t) = self.tables.lock().get_mut(&table_id) {
            t.subscribers += 1;
            return Ok(());
        }
        store.between_commits(|last| -> Result<()> {
            let mut batch = Batch::default();
            let cf = store.cf(CF_CHANGES)?;
            batch.delete_range_cf(cf, key(table_id, 0), key(table_id.wrapping_add(1), 0));
            batch.put_cf(cf, key(table_id, 0), last.to_be_bytes());
            store.write(batch)?;
            let mut tables = self.tables.lock();
            tables.insert(
                table_id,
                TableLog {
                    since: last,
                    entries: 0,
                    oldest_at: 0,
                    subscribers: 1,
                    idle_since: 0,
                },
            );
            self.logged.store(tables.len(), Ordering::Relaxed);
            Ok(())
        })
    }

    /// A subscriber of `table_id` has gone.
    pub fn unsubscribe(&self, table_id: u32, now: i64) {
        if let Some(t) = self.tables.lock().get_mut(&table_id) {
            t.subscribers = t.subscribers.saturating_sub(1);
            if t.subscribers == 0 {
                t.idle_since = now;
            }
        }
    }

    /// Every change with a `_seq` above this is in the log.
    pub fn since(&self, table_id: u32) -> Option<u64> {
        self.tables.lock().get(&table_id).map(|t| t.since)
    }

    /// Adds a commit's changes of one partition to its write batch.
    pub fn append(
        &self,
        store: &Store,
        batch: &mut Batch,
        table: &TableDef,
        user: &str,
        changes: &[Change],
        now: i64,
    ) -> Result<()> {
        let cf = store.cf(CF_CHANGES)?;
        let user_len = u16::try_from(user.len()).map_err(|_| corrupt())?;
        for c in changes {
            let mut v = Vec::with_capacity(64);
            v.push(op_code(c.op));
            v.extend_from_slice(&now.to_be_bytes());
            v.extend_from_slice(&user_len.to_le_bytes());
            v.extend_from_slice(user.as_bytes());
            put_row(&mut v, table, c.seq, &c.row)?;
            if let Some(old) = &c.old {
                put_row(&mut v, table, c.seq, old)?;
            }
            batch.put_cf(cf, key(table.id, c.seq), v);
        }
        if let Some(t) = self.tables.lock().get_mut(&table.id) {
            t.entries += changes.len() as u64;
            if t.oldest_at == 0 {
                t.oldest_at = now;
            }
        }
        Ok(())
    }

    /// Up to `max` logged changes of `table` after `after`, oldest first, and
    /// the `_seq` to read on from. An error when the log no longer reaches
    /// back to `after`.
    pub fn read(
        &self,
        store: &Store,
        table: &TableDef,
        after: u64,
        max: usize,
    ) -> Result<(Vec<LoggedChange>, u64)> {
        self.reaches(table.id, after)?;
        let mut out = vec![];
        let mut next = after;
        let start = key(table.id, after.saturating_add(1));
        let end = key(table.id.wrapping_add(1), 0);
        store.scan(CF_CHANGES, &start, &end, |k, v| {
            let seq = k
                .get(4..12)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(corrupt)?;
            out.push(decode_entry(table, v)?);
            next = seq;
            Ok(out.len() < max)
        })?;
        // Trimmed while it was read: what was read may have a gap.
        self.reaches(table.id, after)?;
        Ok((out, next))
    }

    /// Whether the log holds every change of `table_id` after `after`
    /// (55000 when it does not).
    pub fn reaches(&self, table_id: u32, after: u64) -> Result<()> {
        match self.since(table_id) {
            Some(since) if after >= since => Ok(()),
            Some(since) => Err(StrataError::ObjectNotInPrerequisiteState(format!(
                "from_seq {after} is older than the retained change log (it starts after _seq {since}); subscribe again with last_rows"
            ))),
            None => Err(StrataError::ObjectNotInPrerequisiteState(format!(
                "there is no change log to resume from_seq {after} from; subscribe again with last_rows"
            ))),
        }
    }

    /// Drops entries past the retention (by age and count), and the logs of
    /// tables dropped or unsubscribed for longer than the retention.
    pub fn trim(&self, store: &Store, exists: impl Fn(u32) -> bool, now: i64) -> Result<()> {
        let retention = *self.retention.lock();
        let window = (retention.seconds as i64).saturating_mul(1_000_000);
        let cutoff = now.saturating_sub(window);
        let snapshot: Vec<(u32, TableLog)> =
            self.tables.lock().iter().map(|(k, v)| (*k, *v)).collect();
        let cf = store.cf(CF_CHANGES)?;
        for (id, t) in snapshot {
            // Decided and done under the lock: a subscriber arriving since
            // the snapshot keeps the log.
            let unused = {
                let mut tables = self.tables.lock();
                let unused = tables
                    .get(&id)
                    .is_some_and(|t| !exists(id) || t.subscribers == 0 && t.idle_since < cutoff);
                if unused {
                    tables.remove(&id);
                    self.logged.store(tables.len(), Ordering::Relaxed);
                }
                unused
            };
            if unused {
                let mut batch = Batch::default();
                batch.delete_range_cf(cf, key(id, 0), key(id.wrapping_add(1), 0));
                store.write(batch)?;
                continue;
            }
            let over = t.entries.saturating_sub(retention.max_entries);
            if over == 0 && (t.oldest_at == 0 || t.oldest_at >= cutoff) {
                continue;
            }
            // The prefix to drop: entries past the count, then those too old.
            let (mut dropped, mut last, mut oldest) = (0u64, None, 0i64);
            store.scan(
                CF_CHANGES,
                &key(id, 1),
                &key(id.wrapping_add(1), 0),
                |k, v| {
                    let at = entry_time(v)?;
                    if dropped < over || at < cutoff {
                        dropped += 1;
                        last = k.get(4..12).and_then(|b| b.try_into().ok());
                        return Ok(true);
                    }
                    oldest = at;
                    Ok(false)
                },
            )?;
            let Some(last) = last.map(u64::from_be_bytes) else {
                continue;
            };
            let mut batch = Batch::default();
            batch.delete_range_cf(cf, key(id, 1), key(id, last.saturating_add(1)));
            batch.put_cf(cf, key(id, 0), last.to_be_bytes());
            store.write(batch)?;
            if let Some(t) = self.tables.lock().get_mut(&id) {
                t.since = t.since.max(last);
                t.entries = t.entries.saturating_sub(dropped);
                t.oldest_at = oldest;
            }
        }
        Ok(())
    }
}

fn put_row(out: &mut Vec<u8>, table: &TableDef, seq: u64, row: &[ScalarValue]) -> Result<()> {
    let bytes = encode_row(table, seq, 0, row)?;
    let len = u32::try_from(bytes.len()).map_err(|_| corrupt())?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes);
    Ok(())
}

fn entry_time(v: &[u8]) -> Result<i64> {
    v.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .ok_or_else(corrupt)
}

/// Reads one entry with the table's current definition (rows are stored by
/// column id, so columns added or dropped since read as they would in the table).
fn decode_entry(table: &TableDef, v: &[u8]) -> Result<LoggedChange> {
    let op = match v.first() {
        Some(b'i') => ChangeOp::Insert,
        Some(b'u') => ChangeOp::Update,
        Some(b'd') => ChangeOp::Delete,
        _ => return Err(corrupt()),
    };
    let mut pos = 9;
    let user_len = v
        .get(pos..pos + 2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(corrupt)? as usize;
    pos += 2;
    let user = v
        .get(pos..pos + user_len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(corrupt)?
        .to_string();
    pos += user_len;
    let mut rows = vec![];
    while pos < v.len() {
        let len = v
            .get(pos..pos + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(corrupt)? as usize;
        pos += 4;
        let bytes = v.get(pos..pos.saturating_add(len)).ok_or_else(corrupt)?;
        pos += len;
        rows.push(decode_row(table, bytes)?);
        if rows.len() > 2 {
            return Err(corrupt());
        }
    }
    let mut rows = rows.into_iter();
    let row = rows.next().ok_or_else(corrupt)?;
    Ok(LoggedChange {
        user,
        change: Change {
            op,
            seq: row.seq,
            row: row.values,
            old: rows.next().map(|r| r.values),
        },
    })
}

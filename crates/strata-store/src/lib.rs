//! The hot tier: one RocksDB instance with a few column families, shared by every
//! table. Rows live in `data` under keys built by `strata_common::keys`; the catalog
//! and server counters live in their own families. This crate knows bytes, not
//! rows: encoding rows is the query crate's business.
//!
//! Every statement commits as one `WriteBatch`, which also records the highest
//! `_seq` it used, so the sequence counter never goes backwards across a restart
//! or a crash (the WAL replays the batch and the counter together).

use parking_lot::Mutex;
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, WriteBatch,
    WriteOptions,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_common::{Result, StrataError, keys};

/// Column family of table rows.
pub const CF_DATA: &str = "data";
/// Column family of catalog records (namespaces, tables).
pub const CF_CATALOG: &str = "catalog";
/// Column family of server counters.
pub const CF_META: &str = "meta";
/// Column family of the primary-key index of live cold rows: row key → (file id, position).
pub const CF_PK_INDEX: &str = "pk_index";
/// Column family of cold-tier manifests, deletion vectors and objects awaiting deletion.
pub const CF_COLD: &str = "cold";
/// Column family of job records (`system.jobs`).
pub const CF_JOBS: &str = "jobs";
/// Column family of the live-query change log: (table id, `_seq`) → change.
pub const CF_CHANGES: &str = "changes";

const ALL_CFS: [&str; 7] = [
    CF_DATA,
    CF_CATALOG,
    CF_META,
    CF_PK_INDEX,
    CF_COLD,
    CF_JOBS,
    CF_CHANGES,
];

const LAST_SEQ_KEY: &[u8] = b"last_seq";

pub struct Store {
    db: DB,
    last_seq: AtomicU64,
    sync_writes: bool,
    /// Serializes the allocation of a statement's sequence numbers with its commit,
    /// so a batch carrying a higher `_seq` is never overtaken by one carrying a lower.
    commit_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .finish()
    }
}

impl Store {
    pub fn open(path: &Path, sync_writes: bool) -> Result<Store> {
        std::fs::create_dir_all(path)
            .map_err(|e| StrataError::Storage(format!("cannot create {}: {e}", path.display())))?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let cfs = ALL_CFS
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            last_seq: AtomicU64::new(0),
            sync_writes,
            commit_lock: Mutex::new(()),
        };
        let last = match store.db.get_cf(store.cf(CF_META)?, LAST_SEQ_KEY)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StrataError::Storage("corrupt last_seq".into()))?,
            ),
            None => 0,
        };
        store.last_seq.store(last, Ordering::SeqCst);
        tracing::info!(path = %path.display(), last_seq = last, "hot tier opened");
        Ok(store)
    }

    pub fn cf(&self, name: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StrataError::Storage(format!("missing column family {name}")))
    }

    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    /// Commits a batch whose rows were stamped by `reserve_seqs`' closure.
    /// The closure receives the first of `count` fresh sequence numbers and fills
    /// the batch; allocation and commit happen under one lock so sequence numbers
    /// become visible in increasing order.
    pub fn commit_with_seqs<F>(&self, count: u64, fill: F) -> Result<u64>
    where
        F: FnOnce(u64, &mut WriteBatch) -> Result<()>,
    {
        self.commit_with_seqs_then(count, fill, |_| {})
    }

    /// `commit_with_seqs`, then `after(first)` once the batch is written and
    /// before the next commit may start: what it does (publishing the changes
    /// to live queries) happens in `_seq` order.
    pub fn commit_with_seqs_then<F, A>(&self, count: u64, fill: F, after: A) -> Result<u64>
    where
        F: FnOnce(u64, &mut WriteBatch) -> Result<()>,
        A: FnOnce(u64),
    {
        let _guard = self.commit_lock.lock();
        let first = self.last_seq.load(Ordering::SeqCst) + 1;
        let mut batch = WriteBatch::default();
        fill(first, &mut batch)?;
        let last = first + count.max(1) - 1;
        batch.put_cf(self.cf(CF_META)?, LAST_SEQ_KEY, last.to_be_bytes());
        self.write(batch)?;
        self.last_seq.store(last, Ordering::SeqCst);
        after(first);
        Ok(first)
    }

    /// Runs `f` with the last committed `_seq` while no commit is in progress.
    pub fn between_commits<R>(&self, f: impl FnOnce(u64) -> R) -> R {
        let _guard = self.commit_lock.lock();
        f(self.last_seq.load(Ordering::SeqCst))
    }

    /// Commits a batch that needs no sequence numbers (catalog changes).
    pub fn write(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(self.sync_writes);
        Ok(self.db.write_opt(batch, &wo)?)
    }

    pub fn put(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(cf)?, key, value);
        self.write(batch)
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::SeqCst)
    }

    /// Visits keys in `[start, end)` in order (an empty `end` is unbounded) until
    /// `visit` returns false.
    pub fn scan<F>(&self, cf: &str, start: &[u8], end: &[u8], mut visit: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<bool>,
    {
        let iter = self.db.iterator_cf_opt(
            self.cf(cf)?,
            bounded(end),
            IteratorMode::From(start, Direction::Forward),
        );
        visit_until(iter, end, &mut visit)
    }

    /// Runs `f` against one consistent point-in-time view of every column family.
    /// Reads that must agree with each other (a table's manifest, its deletion
    /// vectors and its hot rows) go through one snapshot.
    pub fn with_snapshot<R>(&self, f: impl FnOnce(&StoreSnapshot<'_>) -> R) -> R {
        let snap = StoreSnapshot {
            store: self,
            snap: self.db.snapshot(),
        };
        f(&snap)
    }

    /// Allocates the next value of a named, persisted counter (starting at 1).
    /// Used for ids that must never be reused, such as cold file numbers.
    pub fn next_id(&self, name: &str) -> Result<u64> {
        let _guard = self.commit_lock.lock();
        let key = [b"counter/", name.as_bytes()].concat();
        let current = match self.get(CF_META, &key)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StrataError::Storage(format!("corrupt counter {name}")))?,
            ),
            None => 0,
        };
        let next = current + 1;
        self.put(CF_META, &key, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Deletes every key in `[start, end)` of one column family.
    pub fn delete_range(&self, cf: &str, start: &[u8], end: &[u8]) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(cf)?, start, end);
        self.write(batch)
    }

    /// Flushes memtables so a clean shutdown leaves nothing to replay.
    pub fn flush(&self) -> Result<()> {
        for cf in ALL_CFS {
            self.db.flush_cf(self.cf(cf)?)?;
        }
        Ok(())
    }
}

/// Read options that stop an iterator at `end` (empty: unbounded) inside
/// RocksDB. Without the bound, the last `next` of a range scan walks on over
/// every deleted key after the range looking for a live one: after a flush of
/// 100,000 users, each user's scan skipped the tombstones of all the users
/// after it.
fn bounded(end: &[u8]) -> rocksdb::ReadOptions {
    let mut options = rocksdb::ReadOptions::default();
    if !end.is_empty() {
        options.set_iterate_upper_bound(end.to_vec());
    }
    options
}

/// Feeds an iterator's pairs below `end` (empty: unbounded) to `visit` until it says stop.
fn visit_until<I, F>(iter: I, end: &[u8], visit: &mut F) -> Result<()>
where
    I: Iterator<Item = std::result::Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
    F: FnMut(&[u8], &[u8]) -> Result<bool>,
{
    for item in iter {
        let (k, v) = item?;
        if !end.is_empty() && k.as_ref() >= end {
            break;
        }
        if !visit(&k, &v)? {
            break;
        }
    }
    Ok(())
}

/// A visitor of (key, value) pairs; returns false to stop.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// Reads shared by the live store and a snapshot, so row visitors work on either.
/// The user partitions under `prefix` (`tag | table_id`) of a CF whose keys are
/// `tag | table_id | user segment | ...`, in order. Skips from one partition to
/// the next with one seek each, so the cost is one seek per user, never one
/// step per row.
pub fn partitions(view: &dyn ReadView, cf: &str, prefix: &[u8]) -> Result<Vec<String>> {
    let tag = prefix.len().saturating_sub(4);
    let end = keys::prefix_successor(prefix);
    let mut users = vec![];
    let mut start = prefix.to_vec();
    loop {
        let mut found: Option<(String, Vec<u8>)> = None;
        view.scan_range(cf, &start, &end, &mut |k, _| {
            found = k
                .get(tag..)
                .and_then(keys::split_partition)
                .and_then(|(user, len)| Some((user, k.get(..tag + len)?.to_vec())));
            Ok(false)
        })?;
        let Some((user, partition)) = found else {
            return Ok(users);
        };
        users.push(user);
        start = keys::prefix_successor(&partition);
        if start.is_empty() {
            return Ok(users);
        }
    }
}

pub trait ReadView {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn scan_range(&self, cf: &str, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()>;
}

impl ReadView for Store {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Store::get(self, cf, key)
    }
    fn scan_range(&self, cf: &str, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        self.scan(cf, start, end, visit)
    }
}

impl ReadView for StoreSnapshot<'_> {
    fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        StoreSnapshot::get(self, cf, key)
    }
    fn scan_range(&self, cf: &str, start: &[u8], end: &[u8], visit: &mut Visit<'_>) -> Result<()> {
        self.scan(cf, start, end, visit)
    }
}

/// A consistent read view; see [`Store::with_snapshot`].
pub struct StoreSnapshot<'a> {
    store: &'a Store,
    snap: rocksdb::Snapshot<'a>,
}

impl StoreSnapshot<'_> {
    pub fn get(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.snap.get_cf(self.store.cf(cf)?, key)?)
    }

    /// Like [`Store::scan`], as of the snapshot.
    pub fn scan<F>(&self, cf: &str, start: &[u8], end: &[u8], mut visit: F) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<bool>,
    {
        let iter = self.snap.iterator_cf_opt(
            self.store.cf(cf)?,
            bounded(end),
            IteratorMode::From(start, Direction::Forward),
        );
        visit_until(iter, end, &mut visit)
    }
}

/// Re-exported so crates above build batches without naming rocksdb themselves.
pub use rocksdb::WriteBatch as Batch;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), false).unwrap();
            let first = s
                .commit_with_seqs(3, |seq, b| {
                    b.put_cf(s.cf(CF_DATA)?, b"k", seq.to_be_bytes());
                    Ok(())
                })
                .unwrap();
            assert_eq!(first, 1);
            assert_eq!(s.last_seq(), 3);
        }
        let s = Store::open(dir.path(), false).unwrap();
        assert_eq!(s.last_seq(), 3);
        assert!(s.get(CF_DATA, b"k").unwrap().is_some());
    }

    #[test]
    fn scan_respects_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path(), false).unwrap();
        for k in [b"a1", b"a2", b"b1"] {
            s.put(CF_DATA, k, b"v").unwrap();
        }
        let mut seen = vec![];
        s.scan(CF_DATA, b"a", b"b", |k, _| {
            seen.push(k.to_vec());
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![b"a1".to_vec(), b"a2".to_vec()]);
    }
}

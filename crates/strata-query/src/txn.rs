//! Transaction blocks (BEGIN … COMMIT / ROLLBACK).
//!
//! Outside a block every statement commits on its own. Inside one, a DML
//! statement computes its row versions exactly as it would alone, but instead
//! of writing them it stages them here. Reads in the block see the staged rows
//! through an overlay (the scan in `overlay.rs`, the key lookups in `dml.rs`),
//! and COMMIT writes every staged row of every table in one RocksDB write batch
//! under the tables' write locks, so the block lands whole or not at all.
//! ROLLBACK, a dropped connection or an error at COMMIT just forgets it.
//!
//! An error inside a block aborts it: every later statement gets 25P02 until
//! ROLLBACK (or COMMIT, which then rolls back), as in Postgres.
//!
//! Savepoints (`SAVEPOINT s`, `RELEASE s`, `ROLLBACK TO s`) are snapshots of
//! the staged writes. Staged rows are shared copy-on-write, so a savepoint
//! costs a copy of a partition's map only when the block writes that
//! partition again. ROLLBACK TO restores the snapshot, clears the aborted
//! state and keeps the savepoint, as in Postgres.
//!
//! Isolation is read committed: statements see other sessions' commits as they
//! happen. The one conflict COMMIT re-checks is uniqueness: a key the block
//! inserted that another session committed meanwhile fails the COMMIT with
//! 23505. Concurrent updates of one row are last-writer-wins.

use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};

/// A staged row version: the new row, or None for a deleted key.
pub(crate) type Staged = Option<Vec<ScalarValue>>;

/// One partition's staged row versions by full row key, shared with scans.
pub(crate) type StagedRows = Arc<BTreeMap<Vec<u8>, Staged>>;

/// One partition's staged writes, keyed by full row key. Shared with the
/// scans that overlay them (copied only when the block writes again while a
/// scan still holds them).
#[derive(Debug, Default, Clone)]
pub(crate) struct PartitionWrites {
    pub rows: StagedRows,
    /// Keys that did not exist when first staged: COMMIT checks they still don't.
    pub fresh: HashSet<Vec<u8>>,
}

/// (table id, partition) → staged rows, with the table definition they were
/// staged against.
pub(crate) type BlockWrites = BTreeMap<(u32, String), (Arc<TableDef>, PartitionWrites)>;

#[derive(Debug, Default)]
pub(crate) struct Block {
    pub writes: BlockWrites,
    /// About how much memory the staged rows take.
    pub bytes: usize,
    /// Open savepoints, oldest first (a name may repeat; the newest wins).
    savepoints: Vec<Savepoint>,
}

/// The block as it was when a savepoint was set.
#[derive(Debug)]
struct Savepoint {
    name: String,
    writes: BlockWrites,
    bytes: usize,
}

/// The most savepoints one block may hold open (each holds a snapshot).
pub(crate) const MAX_SAVEPOINTS: usize = 10_000;

/// Staged rows are rows of the definition they were staged against; once the
/// table has been altered they can be neither read by the new definition nor
/// committed, so the block fails (Postgres would have made the ALTER wait for
/// the block; Strata lets the ALTER win and the block retry).
pub(crate) fn check_definition(staged: &TableDef, now: &TableDef) -> Result<()> {
    if staged.version == now.version {
        return Ok(());
    }
    Err(StrataError::SerializationFailure(format!(
        "table {} was altered while this transaction block had changes to it staged; the block cannot commit, retry it",
        now.qualified_name()
    )))
}

/// What a block holds: its staged rows and its savepoints' snapshots.
fn check_room(block: &Block, more: usize, max_bytes: usize) -> Result<()> {
    let held = block
        .savepoints
        .iter()
        .fold(block.bytes, |n, sp| n.saturating_add(sp.bytes));
    if held.saturating_add(more) > max_bytes {
        return Err(StrataError::ProgramLimitExceeded(format!(
            "a transaction block can hold at most {max_bytes} bytes of staged rows and savepoints ([limits] max_transaction_memory_mb); commit in smaller blocks or release savepoints"
        )));
    }
    Ok(())
}

fn no_block(what: &str) -> StrataError {
    StrataError::NoActiveTransaction(format!("{what} can only be used in transaction blocks"))
}

/// The newest savepoint of that name.
fn find_savepoint(block: &Block, name: &str) -> Result<usize> {
    block
        .savepoints
        .iter()
        .rposition(|sp| sp.name == name)
        .ok_or_else(|| {
            StrataError::InvalidSavepoint(format!("savepoint \"{name}\" does not exist"))
        })
}

/// Roughly what one staged row version holds in memory.
fn staged_size(key: &[u8], row: Option<&Vec<ScalarValue>>) -> usize {
    64 + key.len() + row.map_or(0, |r| r.iter().map(ScalarValue::size).sum())
}

impl Block {
    pub fn is_empty(&self) -> bool {
        self.writes.values().all(|(_, w)| w.rows.is_empty())
    }
}

#[derive(Debug, Default)]
pub(crate) enum TxnState {
    #[default]
    Idle,
    Active(Block),
    /// A statement failed inside the block; the block is kept for ROLLBACK TO
    /// a savepoint.
    Failed(Block),
}

/// The session's transaction state, shared with the DataFusion session config
/// (so table scans can overlay staged rows) and with EXECUTE AS delegates.
#[derive(Debug, Default, Clone)]
pub struct TxnHandle(pub(crate) Arc<Mutex<TxnState>>);

/// The wire-level status a ReadyForQuery reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    Idle,
    InBlock,
    Failed,
}

impl TxnHandle {
    pub fn status(&self) -> TxnStatus {
        match &*self.0.lock() {
            TxnState::Idle => TxnStatus::Idle,
            TxnState::Active(_) => TxnStatus::InBlock,
            TxnState::Failed(_) => TxnStatus::Failed,
        }
    }

    /// BEGIN: opens a block (inside one it is a no-op, as in Postgres, which
    /// only warns).
    pub fn begin(&self) {
        let mut s = self.0.lock();
        if matches!(&*s, TxnState::Idle) {
            *s = TxnState::Active(Block::default());
        } else {
            tracing::warn!("there is already a transaction in progress");
        }
    }

    pub fn in_block(&self) -> bool {
        matches!(&*self.0.lock(), TxnState::Active(_))
    }

    /// A statement inside a block failed: the block is aborted.
    pub fn fail(&self) {
        let mut s = self.0.lock();
        *s = match std::mem::take(&mut *s) {
            TxnState::Active(block) => TxnState::Failed(block),
            other => other,
        };
    }

    /// SAVEPOINT `name`. Its snapshot counts against `max_bytes` as if it
    /// were a copy of the staged rows (it becomes one, partition by partition,
    /// as the block writes on).
    pub fn savepoint(&self, name: &str, max_bytes: usize) -> Result<()> {
        let mut s = self.0.lock();
        let TxnState::Active(block) = &mut *s else {
            return Err(no_block("SAVEPOINT"));
        };
        if block.savepoints.len() >= MAX_SAVEPOINTS {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "a transaction block can hold at most {MAX_SAVEPOINTS} savepoints; release some"
            )));
        }
        check_room(block, block.bytes, max_bytes)?;
        let snapshot = Savepoint {
            name: name.to_string(),
            writes: block.writes.clone(),
            bytes: block.bytes,
        };
        block.savepoints.push(snapshot);
        Ok(())
    }

    /// RELEASE SAVEPOINT `name`: forgets it and every savepoint set after it,
    /// keeping the writes.
    pub fn release(&self, name: &str) -> Result<()> {
        let mut s = self.0.lock();
        let TxnState::Active(block) = &mut *s else {
            return Err(no_block("RELEASE SAVEPOINT"));
        };
        let i = find_savepoint(block, name)?;
        block.savepoints.truncate(i);
        Ok(())
    }

    /// ROLLBACK TO SAVEPOINT `name`: the block's writes as they were when it
    /// was set; later savepoints are forgotten, this one stays, and an
    /// aborted block is usable again.
    pub fn rollback_to(&self, name: &str) -> Result<()> {
        let mut s = self.0.lock();
        let mut block = match std::mem::take(&mut *s) {
            TxnState::Active(b) | TxnState::Failed(b) => b,
            TxnState::Idle => return Err(no_block("ROLLBACK TO SAVEPOINT")),
        };
        let result = find_savepoint(&block, name).map(|i| {
            block.savepoints.truncate(i + 1);
            let sp = &block.savepoints[i];
            block.writes = sp.writes.clone();
            block.bytes = sp.bytes;
        });
        *s = match &result {
            Ok(()) => TxnState::Active(block),
            // An unknown savepoint is an error inside the block: it aborts.
            Err(_) => TxnState::Failed(block),
        };
        result
    }

    /// The staged version of one key: None when the block has not touched it,
    /// Some(None) when the block deleted it.
    pub(crate) fn lookup(
        &self,
        table: &TableDef,
        partition: &str,
        key: &[u8],
    ) -> Result<Option<Staged>> {
        match &*self.0.lock() {
            TxnState::Active(b) => match b.writes.get(&(table.id, partition.to_string())) {
                Some((def, w)) => {
                    check_definition(def, table)?;
                    Ok(w.rows.get(key).cloned())
                }
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Whether the open block (active or aborted) has staged writes to the
    /// table `table_id`.
    pub(crate) fn has_writes_to(&self, table_id: u32) -> bool {
        match &*self.0.lock() {
            TxnState::Active(b) | TxnState::Failed(b) => b
                .writes
                .iter()
                .any(|((id, _), (_, w))| *id == table_id && !w.rows.is_empty()),
            TxnState::Idle => false,
        }
    }

    /// One partition's staged rows for a scan by `table`'s definition; None
    /// when there are none.
    pub(crate) fn overlay(&self, table: &TableDef, partition: &str) -> Result<Option<StagedRows>> {
        match &*self.0.lock() {
            TxnState::Active(b) => match b.writes.get(&(table.id, partition.to_string())) {
                Some((def, w)) if !w.rows.is_empty() => {
                    check_definition(def, table)?;
                    Ok(Some(w.rows.clone()))
                }
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Stages one statement's writes. `fresh` are the put keys that exist
    /// neither in the block nor outside it (the caller looked them up).
    pub(crate) fn stage(
        &self,
        table: &Arc<TableDef>,
        partition: &str,
        puts: &[(Vec<u8>, Vec<ScalarValue>)],
        deletes: &[Vec<u8>],
        fresh: Vec<Vec<u8>>,
        max_bytes: usize,
    ) -> Result<()> {
        let mut s = self.0.lock();
        let TxnState::Active(block) = &mut *s else {
            return Ok(());
        };
        let added: usize = deletes.iter().map(|k| staged_size(k, None)).sum::<usize>()
            + puts
                .iter()
                .map(|(k, r)| staged_size(k, Some(r)))
                .sum::<usize>();
        check_room(block, added, max_bytes)?;
        let (def, w) = block
            .writes
            .entry((table.id, partition.to_string()))
            .or_insert_with(|| (table.clone(), PartitionWrites::default()));
        check_definition(def, table)?;
        block.bytes += added;
        let rows = Arc::make_mut(&mut w.rows);
        for k in deletes {
            rows.insert(k.clone(), None);
        }
        for (k, row) in puts {
            rows.insert(k.clone(), Some(row.clone()));
        }
        w.fresh.extend(fresh);
        Ok(())
    }
}

//! Where a DML statement's row versions go: straight into one RocksDB write
//! batch, or, inside a transaction block, into the block (see `txn.rs`) until
//! COMMIT writes every table's staged rows in one batch.
//!
//! A write that supersedes a key's cold version sets that cold row's
//! deletion-vector bit and drops its primary-key index entry in the same batch,
//! so a key never has two live versions.

use crate::codec::encode_row;
use crate::context::QueryContext;
use crate::live::Before;
use crate::merged::{live_row, row_exists};
use crate::txn::{Block, TxnState};
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_cold::manifest::{self, Location};
use strata_common::{Result, StrataError};
use strata_store::{Batch as WriteBatch, CF_DATA, CF_PK_INDEX, Store};

pub(crate) type Put = (Vec<u8>, Vec<ScalarValue>);

pub(crate) fn duplicate_key(table: &TableDef, key: &ScalarValue) -> StrataError {
    StrataError::UniqueViolation(format!(
        "duplicate key value violates unique constraint \"{}_pkey\": Key ({})=({key}) already exists.",
        table.name,
        table.pk().name
    ))
}

/// The live version of a key as this session sees it: the block's staged
/// version when it has one, else the committed one.
pub(crate) async fn visible_row(
    session: &QueryContext,
    table: &Arc<TableDef>,
    partition: &str,
    key: &[u8],
) -> Result<Option<Vec<ScalarValue>>> {
    if let Some(staged) = session.txn().lookup(table, partition, key)? {
        return Ok(staged);
    }
    live_row(&session.engine.tiers, table, partition, key).await
}

/// Whether a key has a live version as this session sees it, without
/// reading a cold row.
pub(crate) fn visible_row_exists(
    session: &QueryContext,
    table: &Arc<TableDef>,
    partition: &str,
    key: &[u8],
) -> Result<bool> {
    if let Some(staged) = session.txn().lookup(table, partition, key)? {
        return Ok(staged.is_some());
    }
    row_exists(&session.engine.tiers, table, partition, key)
}

/// Applies one statement's writes: at once, or staged in the open block.
/// Call with the table's write lock held.
pub(crate) async fn write_rows(
    session: &QueryContext,
    table: &Arc<TableDef>,
    partition: &str,
    puts: &[Put],
    deletes: &[Vec<u8>],
) -> Result<()> {
    if puts.is_empty() && deletes.is_empty() {
        return Ok(());
    }
    let txn = session.txn();
    if !txn.in_block() {
        let tiers = &session.engine.tiers;
        let group = Group::new(&tiers.store, table, partition, puts, deletes)?;
        let _pass = tiers.changes.writing().await;
        let before = crate::live::before_commit(tiers, table, partition, puts, deletes).await?;
        session.mark_committing();
        return commit_groups(tiers, &[group], vec![before]);
    }
    let mut fresh = vec![];
    for (k, _) in puts {
        if txn.lookup(table, partition, k)?.is_none()
            && !row_exists(&session.engine.tiers, table, partition, k)?
        {
            fresh.push(k.clone());
        }
    }
    txn.stage(
        table,
        partition,
        puts,
        deletes,
        fresh,
        session.engine.options.max_transaction_memory,
    )
}

/// One partition's writes, ready for a batch.
struct Group<'a> {
    table: &'a TableDef,
    partition: &'a str,
    puts: &'a [Put],
    deletes: &'a [Vec<u8>],
    superseded: Vec<(&'a [u8], Location)>,
}

impl<'a> Group<'a> {
    fn new(
        store: &Store,
        table: &'a TableDef,
        partition: &'a str,
        puts: &'a [Put],
        deletes: &'a [Vec<u8>],
    ) -> Result<Self> {
        // Cold versions these writes supersede, found before the commit lock.
        let mut superseded = vec![];
        for k in deletes.iter().chain(puts.iter().map(|(k, _)| k)) {
            if let Some(loc) = manifest::locate(store, k)? {
                superseded.push((k.as_slice(), loc));
            }
        }
        Ok(Group {
            table,
            partition,
            puts,
            deletes,
            superseded,
        })
    }

    /// Adds this group's operations to `wb`, numbering its puts from `first`.
    fn fill(&self, store: &Store, wb: &mut WriteBatch, first: u64) -> Result<()> {
        let cf = store.cf(CF_DATA)?;
        let index = store.cf(CF_PK_INDEX)?;
        for (k, loc) in &self.superseded {
            manifest::delete_row(store, wb, self.table.id, self.partition, *loc)?;
            wb.delete_cf(index, k);
        }
        if !self.superseded.is_empty() {
            // The partition's manifest.json is now behind: startup checks it
            // if the server stops before the rewrite that follows.
            manifest::mark_mirror_dirty_in(store, wb, self.table.id, self.partition)?;
        }
        for k in self.deletes {
            wb.delete_cf(cf, k);
        }
        for (i, (k, row)) in self.puts.iter().enumerate() {
            wb.put_cf(cf, k, encode_row(self.table, first + i as u64, 0, row)?);
        }
        Ok(())
    }
}

/// Commits the groups' writes in one batch (numbered from one range of
/// `_seq`), with their change-log entries, publishes their changes to live
/// queries in commit order, and counts the writes for the flush policies.
fn commit_groups(
    tiers: &crate::Tiers,
    groups: &[Group<'_>],
    befores: Vec<Option<Before>>,
) -> Result<()> {
    let store = tiers.store.as_ref();
    let counts: Vec<u64> = groups
        .iter()
        .zip(&befores)
        .map(|(g, b)| crate::live::seq_count(b.as_ref(), g.puts.len()))
        .collect();
    let described = std::cell::RefCell::new(Vec::with_capacity(groups.len()));
    store.commit_with_seqs_then(
        counts.iter().sum(),
        |first, wb| {
            let mut next = first;
            for ((g, before), count) in groups.iter().zip(befores).zip(&counts) {
                g.fill(store, wb, next)?;
                let changes =
                    crate::live::describe(tiers, wb, g.table, g.partition, g.puts, before, next)?;
                described.borrow_mut().push(changes);
                next += count;
            }
            Ok(())
        },
        |_| {
            for (g, changes) in groups.iter().zip(described.take()) {
                crate::live::publish(tiers, g.table, g.partition, changes);
            }
        },
    )?;
    for g in groups {
        tiers.counter(g.table.id).add(g.puts.len() as u64);
        if !g.superseded.is_empty() {
            republish(tiers, g.table.id, g.partition);
        }
    }
    Ok(())
}

/// Asks for a partition's `manifest.json` to be rewritten after its
/// deletion vectors changed (nothing to do on a server without jobs).
fn republish(tiers: &crate::Tiers, table_id: u32, partition: &str) {
    if let Ok(jobs) = tiers.jobs() {
        jobs.cold_rows_changed(table_id, partition);
    }
}

/// COMMIT of a transaction block: every staged write of every table in one
/// batch, under the write locks of all the tables (taken in id order, so two
/// committing blocks cannot deadlock).
pub(crate) async fn commit_block(session: &QueryContext, block: Block) -> Result<()> {
    if block.is_empty() {
        return Ok(());
    }
    let engine = &session.engine;
    let mut ids: Vec<u32> = block.writes.keys().map(|(id, _)| *id).collect();
    ids.dedup();
    let mut guards = Vec::with_capacity(ids.len());
    for id in &ids {
        guards.push(engine.write_lock(*id).lock_owned().await);
    }
    let store = engine.store();
    // Each partition's puts and deletes first, then the groups that borrow them.
    let mut parts = Vec::with_capacity(block.writes.len());
    for ((_, partition), (table, w)) in &block.writes {
        // A table dropped (or dropped and re-created) since the block wrote it.
        // Re-validated under the write locks: the rows were staged by a
        // definition that must still be the table's.
        match engine.catalog.table(&table.namespace, &table.name) {
            Some(t) if t.id == table.id => crate::txn::check_definition(table, &t)?,
            _ => return Err(StrataError::UndefinedTable(table.qualified_name())),
        }
        let mut puts = vec![];
        let mut deletes = vec![];
        for (k, v) in w.rows.iter() {
            match v {
                Some(row) => {
                    if w.fresh.contains(k) && row_exists(&engine.tiers, table, partition, k)? {
                        return Err(duplicate_key(table, &row[table.pk_index()]));
                    }
                    puts.push((k.clone(), row.clone()));
                }
                // A key the block inserted and deleted again was never ours to
                // delete: another session may have inserted it meanwhile.
                None if w.fresh.contains(k) => {}
                None => deletes.push(k.clone()),
            }
        }
        parts.push((table, partition.as_str(), puts, deletes));
    }
    let groups = parts
        .iter()
        .map(|(table, partition, puts, deletes)| Group::new(store, table, partition, puts, deletes))
        .collect::<Result<Vec<_>>>()?;
    let _pass = engine.tiers.changes.writing().await;
    let mut befores = Vec::with_capacity(parts.len());
    for (table, partition, puts, deletes) in &parts {
        befores.push(
            crate::live::before_commit(&engine.tiers, table, partition, puts, deletes).await?,
        );
    }
    session.mark_committing();
    commit_groups(&engine.tiers, &groups, befores)?;
    drop(guards);
    Ok(())
}

/// Ends the session's block: COMMIT (`commit` true) or ROLLBACK. Returns the
/// command tag; COMMIT of an aborted block rolls it back, as in Postgres.
pub async fn end_block(session: &QueryContext, commit: bool) -> Result<&'static str> {
    let state = std::mem::take(&mut *session.txn().0.lock());
    match state {
        TxnState::Active(block) if commit => {
            commit_block(session, block).await?;
            Ok("COMMIT")
        }
        TxnState::Idle => {
            tracing::warn!("there is no transaction in progress");
            Ok(if commit { "COMMIT" } else { "ROLLBACK" })
        }
        _ => Ok("ROLLBACK"),
    }
}

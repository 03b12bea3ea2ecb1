//! `ALTER TABLE t ADD [CONSTRAINT name] PRIMARY KEY (col)` for a table created
//! without a key. Such a table is keyed by a generated `_rowid` (see
//! `strata_catalog::ROWID_COLUMN`); this is the order pg_dump's scripts build
//! a table in (CREATE TABLE, COPY the rows, then add the key).
//!
//! The table's rows are still all hot (flush skips a table keyed by `_rowid`),
//! so re-keying moves each stored row, byte for byte, from its `_rowid` key to
//! the key of its `col` value, and commits that with the new definition in one
//! RocksDB batch: a reader, a crash or a restart sees the table keyed one way
//! or the other, never half. The rows are held in memory for that batch,
//! bounded by `[limits] max_transaction_memory_mb` like a transaction block.

use crate::context::QueryContext;
use crate::write::duplicate_key;
use datafusion::scalar::ScalarValue;
use std::collections::HashSet;
use std::sync::Arc;
use strata_catalog::{ROWID_COLUMN, TableDef};
use strata_common::{Result, StrataError, keys};
use strata_store::{CF_DATA, ReadView};
use strata_tiers::codec::decode_row;

/// Re-keys `current` (whose write lock the caller holds) by `column`.
pub(crate) fn add_primary_key(
    session: &QueryContext,
    current: &Arc<TableDef>,
    column: &str,
) -> Result<()> {
    // DDL takes effect at once, not at COMMIT: rows this block staged under
    // the `_rowid` key could never be moved with the others.
    if session.txn().has_writes_to(current.id) {
        return Err(StrataError::ActiveSqlTransaction(format!(
            "ADD PRIMARY KEY cannot run in a transaction block that wrote to \"{}\"; commit the rows first",
            current.name
        )));
    }
    if !current.has_generated_key() {
        return Err(StrataError::InvalidTableDefinition(format!(
            "multiple primary keys for table \"{}\" are not allowed",
            current.name
        )));
    }
    let idx = current.column_index(column).ok_or_else(|| {
        StrataError::UndefinedColumn(format!("column \"{column}\" named in key does not exist"))
    })?;
    if !current.columns[idx].ty.can_be_primary_key() {
        return Err(StrataError::InvalidTableDefinition(format!(
            "type {} cannot be a primary key",
            current.columns[idx].ty.sql_name()
        )));
    }
    let tiers = &session.engine.tiers;
    if !strata_cold::manifest::table_partitions(&tiers.store, current.id)?.is_empty() {
        // Not reachable through flush, which skips such tables; a guard.
        return Err(StrataError::unsupported(
            "cannot add a primary key to a table with rows in the cold tier",
        ));
    }
    let mut def = (**current).clone();
    for c in &mut def.columns {
        c.primary_key = c.name == column;
    }
    def.columns[idx].nullable = false;
    def.drop_column(ROWID_COLUMN)?;

    let limit = session.engine.options.max_transaction_memory;
    let moves = rekeyed_rows(&tiers.store, current, &def, idx, limit)?;
    let data = tiers.store.cf(CF_DATA)?;
    let moved = moves.iter().filter(|(_, new, _)| new.is_some()).count() as u64;
    session
        .engine
        .catalog
        .update_table_with_rows(def, 0, |_, wb| {
            // Deletes first: a new key equal to an old one must end up written.
            for (old, _, _) in &moves {
                wb.delete_cf(data, old);
            }
            for (_, new, bytes) in &moves {
                if let Some(new) = new {
                    wb.put_cf(data, new, bytes);
                }
            }
            Ok(())
        })?;
    // The rows may flush now that they have their key.
    tiers.counter(current.id).add(moved);
    Ok(())
}

/// A hot row's old key, its new key (None: dropped) and its stored bytes.
type Move = (Vec<u8>, Option<Vec<u8>>, Vec<u8>);

/// Each hot row's old key, new key and stored bytes. Dead versions (deleted,
/// or past a STREAM table's TTL) are dropped rather than moved.
fn rekeyed_rows(
    store: &strata_store::Store,
    current: &TableDef,
    def: &TableDef,
    idx: usize,
    limit: usize,
) -> Result<Vec<Move>> {
    let prefix = keys::table_prefix(current.id);
    let end = keys::prefix_successor(&prefix);
    let now = strata_catalog::now_micros();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut out: Vec<Move> = vec![];
    let mut held = 0usize;
    store.scan_range(CF_DATA, &prefix, &end, &mut |key, bytes| {
        held += 2 * key.len() + bytes.len() + 64;
        if held > limit {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "table \"{}\" is too large to add a primary key in one step (over max_transaction_memory_mb); create it with its PRIMARY KEY and load it again",
                current.name
            )));
        }
        let row = decode_row(current, bytes)?;
        if !row.is_live(current, now) {
            out.push((key.to_vec(), None, vec![]));
            return Ok(true);
        }
        let value = row.values.get(idx).cloned().unwrap_or(ScalarValue::Null);
        if value.is_null() {
            return Err(StrataError::NotNullViolation(format!(
                "column \"{}\" of relation \"{}\" contains null values",
                def.pk().name,
                current.name
            )));
        }
        let (partition, _) = keys::split_partition(key)
            .ok_or_else(|| StrataError::internal("a row key without a partition"))?;
        let new_key = keys::row_key(current.id, &partition, &value)?;
        if !seen.insert(new_key.clone()) {
            return Err(duplicate_key(def, &value));
        }
        out.push((key.to_vec(), Some(new_key), bytes.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

//! Which table definition a job works by.
//!
//! A job is submitted with the definition of that moment, but may wait in the
//! queue or run for long while ALTER TABLE changes it. Rows encoded by a stale
//! definition lose what it does not know (a value of a column added since), so
//! a job reads the current definition when it starts, reads its rows by it,
//! and at commit, under the table's write lock (which ALTER TABLE holds while
//! it changes the definition), checks that definition is still in force. If it
//! is not, the job discards its new object and redoes the work by the new one,
//! a bounded number of times.

use crate::manager::{JobHandle, JobManager};
use crate::objects::discard;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};
use strata_tiers::Tiers;
use tokio::sync::OwnedMutexGuard;

/// How many times a job does its work before giving up on a table whose
/// definition keeps changing under it.
pub(crate) const MAX_ATTEMPTS: u32 = 5;

/// The table's definition as it is now; an error if it was dropped.
pub(crate) fn current(tiers: &Tiers, table_id: u32, name: &str) -> Result<Arc<TableDef>> {
    tiers
        .catalog
        .table_by_id(table_id)
        .ok_or_else(|| StrataError::UndefinedTable(format!("{name} (dropped while its job ran)")))
}

/// Whether what a job built by `read_by` is exactly what it would build by
/// `now`: same columns (ids, names, types, nullability, fill values), kind and
/// storage. A change of options only (flush policy, access level, TTL) bumps
/// the version but leaves encoded rows and files as they are, so such a job
/// need not redo its work.
pub(crate) fn same_layout(read_by: &TableDef, now: &TableDef) -> bool {
    if read_by.version == now.version && read_by.id == now.id {
        return true;
    }
    let columns = |t: &TableDef| serde_json::to_value(&t.columns).ok();
    read_by.id == now.id
        && read_by.namespace == now.namespace
        && read_by.name == now.name
        && read_by.kind == now.kind
        && read_by.storage_id == now.storage_id
        && read_by.use_user_storage == now.use_user_storage
        && columns(read_by).is_some()
        && columns(read_by) == columns(now)
}

/// The error of a job that gave up after [`MAX_ATTEMPTS`].
pub(crate) fn kept_changing(table: &TableDef) -> StrataError {
    StrataError::SerializationFailure(format!(
        "the definition of {} changed {MAX_ATTEMPTS} times while the job ran; run it again",
        table.qualified_name()
    ))
}

/// What a job finds when it takes the table's write lock to commit.
pub(crate) enum AtCommit {
    /// The definition it worked by is in force: commit, holding the lock.
    Commit(OwnedMutexGuard<()>, Arc<TableDef>),
    /// It changed: the new object is gone; redo the work by this definition.
    Changed(Arc<TableDef>),
}

/// Takes the table's write lock for a job's commit and checks the definition
/// the job's object was built by is still in force. If the job was cancelled,
/// the table dropped or its definition changed, removes the new object first.
pub(crate) async fn lock_for_commit(
    mgr: &JobManager,
    read_by: &TableDef,
    handle: &JobHandle,
    object: &strata_cold::manifest::StoredObject,
) -> Result<AtCommit> {
    let guard = mgr.tiers.write_lock(read_by.id).lock_owned().await;
    let tiers = &mgr.tiers;
    let now = tiers.catalog.table_by_id(read_by.id);
    let outcome = match now {
        _ if handle.is_cancelled() => Err(StrataError::QueryCanceled),
        None => Err(StrataError::UndefinedTable(format!(
            "{} (dropped while its job ran)",
            read_by.qualified_name()
        ))),
        Some(now) if same_layout(read_by, &now) => return Ok(AtCommit::Commit(guard, now)),
        Some(now) => {
            tracing::info!(
                table = %read_by.qualified_name(),
                read_by = read_by.version,
                now = now.version,
                "the table's definition changed under the job; redoing its work"
            );
            Ok(AtCommit::Changed(now))
        }
    };
    drop(guard);
    discard(tiers, object).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_catalog::ColumnType;

    fn table() -> TableDef {
        let sql = "CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)";
        let stmt = strata_sql::parse_sql(sql).unwrap().remove(0);
        let strata_sql::Statement::CreateTable(ct) = stmt else {
            panic!("not a CREATE TABLE")
        };
        let mut def =
            TableDef::from_create(&ct, "app", strata_sql::FlushPolicy::default()).unwrap();
        def.id = 7;
        def
    }

    #[test]
    fn an_option_change_keeps_the_layout_a_column_change_does_not() {
        let before = table();
        let mut options = before.clone();
        options.version += 1;
        options.ttl_seconds = Some(5);
        options.flush_policy.rows = Some(3);
        assert!(same_layout(&before, &options));

        let mut added = before.clone();
        added.version += 1;
        added
            .add_column("c".into(), ColumnType::Text, true, None, None)
            .unwrap();
        assert!(!same_layout(&before, &added));

        let mut dropped = before.clone();
        dropped.version += 1;
        dropped.drop_column("v").unwrap();
        assert!(!same_layout(&before, &dropped));

        let mut other = before.clone();
        other.id += 1;
        assert!(!same_layout(&before, &other));
    }
}

//! What DROP USER does to the user's rows. USER-table rows are keyed (and
//! their cold files laid out) by the user's name, so a user created later
//! under the same name would otherwise inherit them. Postgres refuses to drop
//! a role that still owns objects; a Strata user's rows are the closest thing
//! it has to owned objects, and an app that drops a user wants them gone, so
//! DROP USER removes them: the hot rows, the primary-key index and the cold
//! files of every USER table's partition of that user.

use crate::context::QueryContext;
use strata_common::{Result, keys};
use strata_sql::TableKind;
use strata_store::{Batch, CF_DATA, CF_PK_INDEX};

/// Removes every USER-table partition of `user`; returns how many tables had
/// one. Each table's partition goes in one write batch under the table's
/// write lock, so no statement or flush commit of that table interleaves.
pub(crate) async fn purge(session: &QueryContext, user: &str) -> Result<usize> {
    let engine = &session.engine;
    let store = &engine.store;
    let mut purged = 0;
    let mut tables = engine.catalog.tables();
    tables.retain(|t| t.kind == TableKind::User);
    tables.sort_by_key(|t| t.id);
    for table in tables {
        let _guard = engine.write_lock(table.id).lock_owned().await;
        let files = store
            .with_snapshot(|snap| strata_cold::manifest::load_partition(snap, table.id, user))?;
        let prefix = keys::partition_prefix(table.id, user);
        let end = keys::prefix_successor(&prefix);
        let had_hot = store.with_snapshot(|snap| {
            let mut any = false;
            snap.scan(CF_DATA, &prefix, &end, |_, _| {
                any = true;
                Ok(false)
            })?;
            Ok::<bool, strata_common::StrataError>(any)
        })?;
        if files.is_empty() && !had_hot {
            continue;
        }
        let now = strata_catalog::now_micros();
        let mut batch = Batch::default();
        batch.delete_range_cf(store.cf(CF_DATA)?, &prefix, &end);
        batch.delete_range_cf(store.cf(CF_PK_INDEX)?, &prefix, &end);
        for f in &files {
            strata_cold::manifest::remove_file(store, &mut batch, table.id, &f.meta, now)?;
        }
        store.write(batch)?;
        // The listing for external readers goes too; its files are queued for
        // garbage collection above.
        engine.tiers.remove_mirror(&table, user).await;
        purged += 1;
    }
    Ok(purged)
}

//! What every table provider and DML statement reaches through: the hot store,
//! the cold storage, the catalog, per-table write counters for the flush
//! scheduler, and the job manager (installed by the server; the query layer only
//! knows it through [`JobControl`], so `strata-jobs` can sit above this crate).

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use strata_catalog::{Catalog, LOCAL_STORAGE, TableDef};
use strata_cold::manifest::{self, StoredObject};
use strata_cold::{ColdStore, Storages};
use strata_common::{Result, StrataError};
use strata_sql::TableKind;
use strata_store::Store;

/// The job manager as the SQL layer sees it.
pub trait JobControl: Send + Sync + std::fmt::Debug {
    /// Starts a flush of the table, or returns the id of the one queued or running.
    fn flush_table(&self, table: Arc<TableDef>) -> Result<String>;
    /// Starts a compaction of the table, or returns the running one's id.
    fn compact_table(&self, table: Arc<TableDef>) -> Result<String>;
    /// Cancels a queued or running job.
    fn kill(&self, job_id: &str) -> Result<()>;
    /// The rows of `system.jobs`.
    fn jobs_batch(&self) -> Result<RecordBatch>;
    /// A statement's commit superseded or deleted cold rows of a partition
    /// (its deletion vectors changed): the partition's `manifest.json` is
    /// rewritten soon, off the writer's path.
    fn cold_rows_changed(&self, table_id: u32, user: &str);
}

/// Writes since a table's last flush, for the scheduler's `rows` and `interval`
/// triggers. Counted on commit (a write of an existing hot key counts again, so
/// the count is an upper bound of hot rows and a flush may come a little early,
/// never late).
#[derive(Debug, Default)]
pub struct WriteCounter {
    pub rows: AtomicU64,
    pub oldest: Mutex<Option<Instant>>,
}

impl WriteCounter {
    pub fn add(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.rows.fetch_add(n, Ordering::Relaxed);
        let mut oldest = self.oldest.lock();
        if oldest.is_none() {
            *oldest = Some(Instant::now());
        }
    }

    /// After a flush that moved the writes counted up to `seen`.
    pub fn flushed(&self, seen: u64) {
        let before = self
            .rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(r.saturating_sub(seen))
            })
            .unwrap_or(0);
        let left = before.saturating_sub(seen);
        *self.oldest.lock() = (left > 0).then(Instant::now);
    }
}

#[derive(Debug)]
pub struct Tiers {
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    /// The open storages; a file is read from the one its entry names.
    pub storages: Storages,
    /// Committed changes for live queries.
    pub changes: crate::changes::ChangeBus,
    /// The open live queries.
    pub live: Arc<crate::changes::LiveQueries>,
    /// What live queries resume from.
    pub change_log: crate::change_log::ChangeLog,
    /// LISTEN/NOTIFY channels.
    pub notifier: crate::notify::Notifier,
    /// Cold rows decoded for primary-key reads.
    pub cold_rows: crate::row_cache::RowCache,
    jobs: OnceLock<Arc<dyn JobControl>>,
    counters: Mutex<HashMap<u32, Arc<WriteCounter>>>,
    /// One async lock per table: a DML statement holds it from reading the
    /// rows it changes to committing them, and flush, compaction and eviction
    /// commits take it too, so writers never lose updates, uniqueness checks
    /// cannot race, and jobs never interleave with a write.
    write_locks: Mutex<HashMap<u32, Arc<tokio::sync::Mutex<()>>>>,
}

impl Tiers {
    /// `local` is the built-in storage; others open when first used.
    pub fn new(store: Arc<Store>, catalog: Arc<Catalog>, local: Arc<ColdStore>) -> Arc<Tiers> {
        let change_log = crate::change_log::ChangeLog::load(&store, strata_catalog::now_micros())
            .unwrap_or_else(|e| {
                // Subscriptions start afresh; only resuming is lost.
                tracing::warn!(error = %e, "cannot read the live-query change log");
                Default::default()
            });
        Arc::new(Tiers {
            change_log,
            notifier: Default::default(),
            cold_rows: Default::default(),
            store,
            catalog,
            storages: Storages::new(local),
            changes: Default::default(),
            live: Default::default(),
            jobs: OnceLock::new(),
            counters: Mutex::new(HashMap::new()),
            write_locks: Mutex::new(HashMap::new()),
        })
    }

    /// The store of a storage id (the one a file entry names). A storage that
    /// no longer exists is a 58030 error naming it.
    pub fn storage(&self, id: &str) -> Result<Arc<ColdStore>> {
        if id == LOCAL_STORAGE {
            return Ok(self.storages.local());
        }
        let def = self.catalog.storage(id).ok_or_else(|| {
            StrataError::Storage(format!("storage \"{id}\" does not exist any more"))
        })?;
        self.storages.get(&def)
    }

    /// The id of the storage a partition's new files go to: the table's
    /// USE_USER_STORAGE flag → the user's storage → the table's storage
    /// (which defaults to `local`).
    pub fn placement_id(&self, table: &TableDef, user: &str) -> String {
        if table.kind == TableKind::User
            && table.use_user_storage
            && let Some(id) = self.catalog.user(user).and_then(|u| u.storage_id.clone())
        {
            return id;
        }
        table.storage_id.clone()
    }

    /// The store a partition's new files go to (see [`Tiers::placement_id`]),
    /// resolved at each flush and compaction.
    pub fn placement(&self, table: &TableDef, user: &str) -> Result<Arc<ColdStore>> {
        self.storage(&self.placement_id(table, user))
    }

    /// Deletes a recorded object from the storage it is on (a missing object
    /// is not an error).
    pub async fn delete_object(&self, object: &StoredObject) -> Result<()> {
        self.storage(&object.storage)?
            .delete_stored(&object.path)
            .await
    }

    /// Removes a partition's `manifest.json` (a dropped table or user):
    /// wherever it was last written, and at the built-in default place where
    /// mirrors went before their place was recorded. Failures are logged:
    /// the object is only a listing, the files go through garbage records.
    pub async fn remove_mirror(&self, table: &TableDef, user: &str) {
        let mut objects = vec![StoredObject::new(
            LOCAL_STORAGE,
            &strata_cold::layout::to_stored(&strata_cold::layout::manifest_path(table, user)),
        )];
        match manifest::mirror_location(&self.store, table.id, user) {
            Ok(Some(o)) if o != objects[0] => objects.push(o),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(table_id = table.id, error = %e, "cannot read where manifest.json is")
            }
        }
        for object in objects {
            if let Err(e) = self.delete_object(&object).await {
                tracing::debug!(path = %object.path, error = %e, "no manifest.json to remove");
            }
        }
        if let Err(e) = manifest::forget_mirror(&self.store, table.id, user) {
            tracing::warn!(table_id = table.id, error = %e, "cannot forget where manifest.json was");
        }
    }

    /// The table's write lock (see the field).
    pub fn write_lock(&self, table_id: u32) -> Arc<tokio::sync::Mutex<()>> {
        self.write_locks.lock().entry(table_id).or_default().clone()
    }

    pub fn set_jobs(&self, jobs: Arc<dyn JobControl>) {
        let _ = self.jobs.set(jobs);
    }

    pub fn jobs(&self) -> Result<&Arc<dyn JobControl>> {
        self.jobs
            .get()
            .ok_or_else(|| StrataError::unsupported("jobs are not running on this server"))
    }

    pub fn counter(&self, table_id: u32) -> Arc<WriteCounter> {
        self.counters.lock().entry(table_id).or_default().clone()
    }
}

//! The catalog: namespaces, tables and their columns, persisted as JSON records
//! in the hot tier's `catalog` column family and cached in memory. Every change
//! is one RocksDB write, so a crash leaves either the old or the new definition.
//! Table ids are numeric and never reused; they prefix every key of the table's
//! rows, so dropping a table is one range delete. Users and their roles live
//! here too, with SCRAM verifiers in place of passwords.

mod defs;
pub mod password;
mod storages;
mod types;
mod users;

pub use defs::{
    BINARY_RESULT_KEY, ColumnDef, DELETED_COLUMN, NamespaceDef, ROWID_COLUMN, SEQ_COLUMN,
    SOURCE_COLUMN_KEY, SOURCE_TABLE_KEY, TableDef, WIRE_TYPE_KEY,
};
pub use storages::{
    Credentials, DEFAULT_SHARED_TEMPLATE, DEFAULT_USER_TEMPLATE, LOCAL_STORAGE, PLACEHOLDERS,
    Sharding, StorageDef, StorageType, StorageUsers, validate_template,
};
pub use types::{ColumnType, UTC};
pub use users::{ROOT_USER, Role, UserDef, verifier_for};

use parking_lot::RwLock;
use rocksdb::WriteBatch;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_common::keys;
use strata_common::{Result, StrataError};
use strata_sql::{FlushPolicy, TableKind, TableOptions};
use strata_store::{CF_CATALOG, CF_DATA, Store};

/// Names no namespace may take: they are served by the server itself.
pub const RESERVED_NAMESPACES: &[&str] = &["system", "pg_catalog", "information_schema"];
/// The namespace unqualified names resolve to; created at first start.
pub const DEFAULT_NAMESPACE: &str = "public";
/// The schema of the system tables (`system.jobs`, …), beside the namespaces.
pub const SYSTEM_SCHEMA: &str = "system";

const NEXT_TABLE_ID_KEY: &[u8] = b"next_table_id";

fn ns_key(name: &str) -> Vec<u8> {
    format!("ns\0{name}").into_bytes()
}

fn table_key(ns: &str, name: &str) -> Vec<u8> {
    format!("tbl\0{ns}\0{name}").into_bytes()
}

#[derive(Default)]
pub(crate) struct State {
    namespaces: BTreeMap<String, NamespaceDef>,
    tables: BTreeMap<(String, String), Arc<TableDef>>,
    users: BTreeMap<String, Arc<UserDef>>,
    /// Recorded storages; the built-in one is `local_storage`.
    storages: BTreeMap<String, Arc<StorageDef>>,
    local_storage: Arc<StorageDef>,
    next_table_id: u32,
}

pub struct Catalog {
    store: Arc<Store>,
    state: RwLock<State>,
    default_flush_policy: FlushPolicy,
    /// Bumped by every change, so prepared statements know to plan again.
    version: AtomicU64,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Catalog {
    /// Loads the catalog, creating the default namespace on first start.
    pub fn open(store: Arc<Store>, default_flush_policy: FlushPolicy) -> Result<Catalog> {
        let mut state = State {
            next_table_id: 1,
            ..Default::default()
        };
        store.scan(CF_CATALOG, b"", b"", |k, v| {
            if k.starts_with(b"ns\0") {
                let ns: NamespaceDef = serde_json::from_slice(v)?;
                state.namespaces.insert(ns.name.clone(), ns);
            } else if k.starts_with(b"tbl\0") {
                let t: TableDef = serde_json::from_slice(v)?;
                state
                    .tables
                    .insert((t.namespace.clone(), t.name.clone()), Arc::new(t));
            } else if k.starts_with(b"stg\0") {
                let d: StorageDef = serde_json::from_slice(v)?;
                state.storages.insert(d.id.clone(), Arc::new(d));
            } else if k.starts_with(b"user\0") {
                let u: UserDef = serde_json::from_slice(v)?;
                state.users.insert(u.name.clone(), Arc::new(u));
            } else if k == NEXT_TABLE_ID_KEY {
                let bytes: [u8; 4] = v
                    .try_into()
                    .map_err(|_| StrataError::Storage("corrupt next_table_id".into()))?;
                state.next_table_id = u32::from_be_bytes(bytes);
            }
            Ok(true)
        })?;
        tracing::info!(
            namespaces = state.namespaces.len(),
            tables = state.tables.len(),
            users = state.users.len(),
            "catalog loaded"
        );
        let catalog = Catalog {
            store,
            state: RwLock::new(state),
            default_flush_policy,
            version: AtomicU64::new(1),
        };
        if !catalog
            .state
            .read()
            .namespaces
            .contains_key(DEFAULT_NAMESPACE)
        {
            catalog.create_namespace(DEFAULT_NAMESPACE, true)?;
        }
        Ok(catalog)
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn create_namespace(&self, name: &str, if_not_exists: bool) -> Result<bool> {
        if RESERVED_NAMESPACES.contains(&name) {
            return Err(StrataError::ReservedName(format!(
                "namespace name \"{name}\" is reserved"
            )));
        }
        let mut st = self.state.write();
        if st.namespaces.contains_key(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(StrataError::DuplicateNamespace(name.into()))
            };
        }
        let def = NamespaceDef {
            name: name.to_string(),
            created_at: now_micros(),
        };
        self.store
            .put(CF_CATALOG, &ns_key(name), &serde_json::to_vec(&def)?)?;
        self.version.fetch_add(1, Ordering::SeqCst);
        st.namespaces.insert(name.to_string(), def);
        Ok(true)
    }

    /// Drops a namespace; with `cascade` its tables and their rows go too.
    pub fn drop_namespace(&self, name: &str, if_exists: bool, cascade: bool) -> Result<bool> {
        if RESERVED_NAMESPACES.contains(&name) {
            return Err(StrataError::ReservedName(format!(
                "namespace \"{name}\" cannot be dropped"
            )));
        }
        let mut st = self.state.write();
        if !st.namespaces.contains_key(name) {
            return if if_exists {
                Ok(false)
            } else {
                Err(StrataError::UndefinedNamespace(name.into()))
            };
        }
        let tables: Vec<Arc<TableDef>> = st
            .tables
            .values()
            .filter(|t| t.namespace == name)
            .cloned()
            .collect();
        if !tables.is_empty() && !cascade {
            return Err(StrataError::DependentObjects(format!(
                "cannot drop namespace \"{name}\" because it contains {} table(s); use DROP NAMESPACE {name} CASCADE",
                tables.len()
            )));
        }
        let mut batch = WriteBatch::default();
        for t in &tables {
            self.drop_table_into(&mut batch, t)?;
        }
        batch.delete_cf(self.store.cf(CF_CATALOG)?, ns_key(name));
        self.store.write(batch)?;
        for t in &tables {
            st.tables.remove(&(t.namespace.clone(), t.name.clone()));
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        st.namespaces.remove(name);
        Ok(true)
    }

    fn drop_table_into(&self, batch: &mut WriteBatch, t: &TableDef) -> Result<()> {
        batch.delete_cf(self.store.cf(CF_CATALOG)?, table_key(&t.namespace, &t.name));
        let prefix = keys::table_prefix(t.id);
        batch.delete_range_cf(
            self.store.cf(CF_DATA)?,
            &prefix,
            &keys::prefix_successor(&prefix),
        );
        Ok(())
    }

    pub fn namespaces(&self) -> Vec<NamespaceDef> {
        self.state.read().namespaces.values().cloned().collect()
    }

    pub fn namespace_exists(&self, name: &str) -> bool {
        self.state.read().namespaces.contains_key(name)
    }

    pub fn tables(&self) -> Vec<Arc<TableDef>> {
        self.state.read().tables.values().cloned().collect()
    }

    /// The schemas a client sees: every namespace, then `system` (the
    /// system tables').
    pub fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.state.read().namespaces.keys().cloned().collect();
        names.push(SYSTEM_SCHEMA.into());
        names
    }

    /// The names of a namespace's tables.
    pub fn table_names_in(&self, namespace: &str) -> Vec<String> {
        self.state
            .read()
            .tables
            .values()
            .filter(|t| t.namespace == namespace)
            .map(|t| t.name.clone())
            .collect()
    }

    pub fn table(&self, namespace: &str, name: &str) -> Option<Arc<TableDef>> {
        self.state
            .read()
            .tables
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The current definition of the table with this id, if it still exists
    /// (jobs re-read it at commit: the name may have been dropped and reused).
    pub fn table_by_id(&self, id: u32) -> Option<Arc<TableDef>> {
        self.state
            .read()
            .tables
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// Like `table`, but a missing namespace or table is an error.
    pub fn require_table(&self, namespace: &str, name: &str) -> Result<Arc<TableDef>> {
        self.table(namespace, name)
            .ok_or_else(|| StrataError::UndefinedTable(format!("{namespace}.{name}")))
    }

    /// Creates a table from a validated definition; assigns its id.
    pub fn create_table(
        &self,
        mut def: TableDef,
        if_not_exists: bool,
    ) -> Result<Option<Arc<TableDef>>> {
        let mut st = self.state.write();
        if !st.namespaces.contains_key(&def.namespace) {
            return Err(StrataError::UndefinedNamespace(def.namespace.clone()));
        }
        if def.storage_id != LOCAL_STORAGE && !st.storages.contains_key(&def.storage_id) {
            return Err(storages::undefined_storage(&def.storage_id));
        }
        if def.use_user_storage && def.kind != TableKind::User {
            return Err(StrataError::InvalidParameterValue(
                "USE_USER_STORAGE applies to USER tables only".into(),
            ));
        }
        let key = (def.namespace.clone(), def.name.clone());
        if st.tables.contains_key(&key) {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(StrataError::DuplicateTable(format!(
                    "{}.{}",
                    def.namespace, def.name
                )))
            };
        }
        def.id = st.next_table_id;
        def.created_at = now_micros();
        let mut batch = WriteBatch::default();
        let cf = self.store.cf(CF_CATALOG)?;
        batch.put_cf(
            cf,
            table_key(&def.namespace, &def.name),
            serde_json::to_vec(&def)?,
        );
        batch.put_cf(cf, NEXT_TABLE_ID_KEY, (def.id + 1).to_be_bytes());
        self.store.write(batch)?;
        st.next_table_id = def.id + 1;
        let def = Arc::new(def);
        self.version.fetch_add(1, Ordering::SeqCst);
        st.tables.insert(key, def.clone());
        Ok(Some(def))
    }

    pub fn drop_table(&self, namespace: &str, name: &str, if_exists: bool) -> Result<bool> {
        let mut st = self.state.write();
        let key = (namespace.to_string(), name.to_string());
        let Some(t) = st.tables.get(&key).cloned() else {
            return if if_exists {
                Ok(false)
            } else {
                Err(StrataError::UndefinedTable(format!("{namespace}.{name}")))
            };
        };
        let mut batch = WriteBatch::default();
        self.drop_table_into(&mut batch, &t)?;
        self.store.write(batch)?;
        self.version.fetch_add(1, Ordering::SeqCst);
        st.tables.remove(&key);
        Ok(true)
    }

    /// Replaces a table's definition (ALTER TABLE); the id must not change.
    /// A compare-and-swap: `def.version` must still be the stored version (the
    /// definition the change was made from), else another change came first and
    /// this one fails with 40001 rather than silently undo it. The stored
    /// version is then bumped.
    /// `update_table`, committed in one batch with row writes: `fill` adds
    /// them to the batch, numbering `count` new row versions from the first
    /// sequence number it is given (ADD PRIMARY KEY re-keys a table's rows and
    /// changes its key together, so no reader or restart sees one without
    /// the other).
    pub fn update_table_with_rows<F>(
        &self,
        mut def: TableDef,
        count: u64,
        fill: F,
    ) -> Result<Arc<TableDef>>
    where
        F: FnOnce(u64, &mut strata_store::Batch) -> Result<()>,
    {
        let mut st = self.state.write();
        let key = (def.namespace.clone(), def.name.clone());
        check_current(&st.tables, &def)?;
        def.version += 1;
        let record = serde_json::to_vec(&def)?;
        let cf = self.store.cf(CF_CATALOG)?;
        self.store.commit_with_seqs(count, |first, wb| {
            fill(first, wb)?;
            wb.put_cf(cf, table_key(&def.namespace, &def.name), &record);
            Ok(())
        })?;
        let def = Arc::new(def);
        self.version.fetch_add(1, Ordering::SeqCst);
        st.tables.insert(key, def.clone());
        Ok(def)
    }

    pub fn update_table(&self, mut def: TableDef) -> Result<Arc<TableDef>> {
        let mut st = self.state.write();
        let key = (def.namespace.clone(), def.name.clone());
        check_current(&st.tables, &def)?;
        def.version += 1;
        self.store.put(
            CF_CATALOG,
            &table_key(&def.namespace, &def.name),
            &serde_json::to_vec(&def)?,
        )?;
        let def = Arc::new(def);
        self.version.fetch_add(1, Ordering::SeqCst);
        st.tables.insert(key, def.clone());
        Ok(def)
    }

    /// Applies `ALTER TABLE ... SET (...)` options to a definition.
    pub fn apply_options(&self, def: &mut TableDef, options: &TableOptions) -> Result<()> {
        if options.kind.is_some_and(|k| k != def.kind) {
            return Err(StrataError::unsupported("a table's TYPE cannot be changed"));
        }
        if let Some(p) = options.flush_policy {
            def.flush_policy = p;
        }
        if let Some(a) = options.access_level {
            def.access_level = a;
        }
        if let Some(ttl) = options.ttl_seconds {
            if def.kind != TableKind::Stream {
                return Err(StrataError::InvalidParameterValue(
                    "TTL_SECONDS applies to STREAM tables only".into(),
                ));
            }
            def.ttl_seconds = Some(ttl);
        }
        if let Some(s) = &options.storage_id {
            self.require_storage(s)?;
            def.storage_id = s.clone();
        }
        if let Some(u) = options.use_user_storage {
            if u && def.kind != TableKind::User {
                return Err(StrataError::InvalidParameterValue(
                    "USE_USER_STORAGE applies to USER tables only".into(),
                ));
            }
            def.use_user_storage = u;
        }
        Ok(())
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    pub fn default_flush_policy(&self) -> FlushPolicy {
        self.default_flush_policy
    }
}

#[cfg(test)]
mod tests;

/// A changed definition may replace the table's only if it was made from the
/// current one (compare-and-swap on `version`).
fn check_current(tables: &BTreeMap<(String, String), Arc<TableDef>>, def: &TableDef) -> Result<()> {
    match tables.get(&(def.namespace.clone(), def.name.clone())) {
        Some(old) if old.id == def.id && old.version == def.version => Ok(()),
        Some(old) if old.id == def.id => Err(StrataError::SerializationFailure(format!(
            "table \"{}.{}\" was changed by a concurrent statement",
            def.namespace, def.name
        ))),
        _ => Err(StrataError::UndefinedTable(format!(
            "{}.{}",
            def.namespace, def.name
        ))),
    }
}

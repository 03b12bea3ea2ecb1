//! The engine: the shared state every session plans against.

use crate::provider::StrataCatalogProvider;
use crate::session::Session;
use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::prelude::SessionConfig;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{Catalog, DEFAULT_NAMESPACE};
use strata_store::Store;

/// DataFusion catalog holding the tables as users see them.
pub const CATALOG: &str = "strata";
/// The same tables with `_seq` and `_deleted` visible.
pub const CATALOG_WITH_SYSTEM_COLUMNS: &str = "strata_sys";

pub struct Engine {
    pub(crate) store: Arc<Store>,
    pub(crate) catalog: Arc<Catalog>,
    base_state: SessionState,
    /// One async lock per table: a DML statement holds it from reading the rows
    /// it changes to committing them, so concurrent writers never lose updates
    /// and uniqueness checks cannot race.
    write_locks: Mutex<HashMap<u32, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub fn new(store: Arc<Store>, catalog: Arc<Catalog>) -> Arc<Engine> {
        let list = MemoryCatalogProviderList::new();
        list.register_catalog(
            CATALOG.into(),
            Arc::new(StrataCatalogProvider::new(catalog.clone(), false)),
        );
        list.register_catalog(
            CATALOG_WITH_SYSTEM_COLUMNS.into(),
            Arc::new(StrataCatalogProvider::new(catalog.clone(), true)),
        );
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_target_partitions(2);
        let base_state = SessionStateBuilder::new()
            .with_config(config)
            .with_catalog_list(Arc::new(list))
            .with_default_features()
            .build();
        Arc::new(Engine {
            store,
            catalog,
            base_state,
            write_locks: Mutex::new(HashMap::new()),
        })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// A new session for one connection, acting as `user`.
    pub fn session(self: &Arc<Self>, user: &str) -> Session {
        Session::new(self.clone(), self.base_state.clone(), user.to_string())
    }

    pub(crate) fn write_lock(&self, table_id: u32) -> Arc<tokio::sync::Mutex<()>> {
        self.write_locks.lock().entry(table_id).or_default().clone()
    }
}

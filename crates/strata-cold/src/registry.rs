//! The open storages, by id. A storage is opened (an object store client
//! built) the first time a file on it is read or written, and again when its
//! definition changes (ALTER STORAGE: new credentials or endpoint take effect
//! for the next request; requests already under way finish on the old client).

use crate::ColdStore;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{LOCAL_STORAGE, StorageDef};
use strata_common::Result;

pub struct Storages {
    /// The built-in `local` storage, opened by the server at startup.
    local: Arc<ColdStore>,
    open: RwLock<HashMap<String, Arc<ColdStore>>>,
}

impl std::fmt::Debug for Storages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storages")
            .field("local", &self.local)
            .field("open", &self.open.read().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Storages {
    pub fn new(local: Arc<ColdStore>) -> Storages {
        Storages {
            local,
            open: RwLock::new(HashMap::new()),
        }
    }

    pub fn local(&self) -> Arc<ColdStore> {
        self.local.clone()
    }

    /// The store of a definition, opened once per version of the definition.
    pub fn get(&self, def: &Arc<StorageDef>) -> Result<Arc<ColdStore>> {
        if def.id == LOCAL_STORAGE {
            return Ok(self.local.clone());
        }
        if let Some(s) = self.open.read().get(&def.id)
            && (Arc::ptr_eq(s.def(), def) || **s.def() == **def)
        {
            return Ok(s.clone());
        }
        // The local root is only used by `local`, handled above.
        let store = Arc::new(ColdStore::open(def.clone(), std::path::Path::new("/"))?);
        self.open.write().insert(def.id.clone(), store.clone());
        Ok(store)
    }

    /// Forgets a dropped storage's client.
    pub fn forget(&self, id: &str) {
        self.open.write().remove(id);
    }
}

//! A storage: one object store plus a cache of Parquet footers (files are
//! immutable, so a footer read once stays valid until the file is deleted).

use crate::manifest::FileMeta;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::Mutex;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)] // see reader.rs
use parquet::arrow::async_reader::ParquetObjectReader;
use std::collections::HashMap;
use std::sync::Arc;
use strata_common::{Result, StrataError};

/// Footers kept in memory; past this the cache starts over (footers are small
/// and re-reading one costs a single ranged GET).
const FOOTER_CACHE_ENTRIES: usize = 4096;

pub struct ColdStore {
    id: String,
    object_store: Arc<dyn ObjectStore>,
    description: String,
    footers: Mutex<HashMap<String, ArrowReaderMetadata>>,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStore")
            .field("id", &self.id)
            .field("location", &self.description)
            .finish()
    }
}

impl ColdStore {
    /// The built-in `local` storage: a directory on this machine.
    pub fn local(id: &str, root: &std::path::Path) -> Result<ColdStore> {
        std::fs::create_dir_all(root)
            .map_err(|e| StrataError::storage(&format!("cannot create {}", root.display()), e))?;
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| StrataError::storage("cannot open local storage", e))?
            .with_automatic_cleanup(true);
        Ok(ColdStore {
            id: id.into(),
            object_store: Arc::new(fs),
            description: format!("file://{}", root.display()),
            footers: Mutex::new(HashMap::new()),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where the storage keeps its objects, for `system.storages` and logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.object_store
    }

    /// The Parquet footer of a file, from cache or one read.
    pub async fn footer(&self, meta: &FileMeta) -> Result<ArrowReaderMetadata> {
        if let Some(m) = self.footers.lock().get(&meta.path) {
            return Ok(m.clone());
        }
        #[allow(deprecated)]
        let mut reader =
            ParquetObjectReader::new(self.object_store.clone(), Path::from(meta.path.as_str()))
                .with_file_size(meta.size_bytes);
        let footer = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| StrataError::storage(&format!("cannot read {}", meta.path), e))?;
        let mut cache = self.footers.lock();
        if cache.len() >= FOOTER_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(meta.path.clone(), footer.clone());
        Ok(footer)
    }

    pub async fn put(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.object_store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| StrataError::storage(&format!("cannot write {path}"), e))
    }

    pub async fn exists(&self, path: &Path) -> Result<bool> {
        match self.object_store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(StrataError::storage(&format!("cannot stat {path}"), e)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        self.footers.lock().remove(path.as_ref());
        match self.object_store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StrataError::storage(&format!("cannot delete {path}"), e)),
        }
    }

    /// Every object under a prefix (the whole storage with `None`).
    pub async fn list(&self, prefix: Option<&Path>) -> Result<Vec<Path>> {
        self.object_store
            .list(prefix)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| StrataError::storage("cannot list storage", e))
    }
}

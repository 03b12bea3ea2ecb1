//! A storage: one object store plus a cache of Parquet footers (files are
//! immutable, so a footer read once stays valid until the file is deleted).
//!
//! Objects are named by [`Path`]s built in [`crate::layout`]; a path recorded
//! as text comes back through [`crate::layout::from_stored`]. Errors name the
//! object relative to the storage root: the object store's own messages carry
//! the absolute file path, which clients must not see ([`Redactor`]).

use crate::layout;
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

/// Turns object-store and Parquet errors into [`StrataError::Storage`] with
/// every spelling of the storage root taken out, so a message names objects
/// the way the manifest does (`app/t/batch-7.parquet`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Root spellings, longest first (a canonical path can be longer).
    roots: Arc<Vec<String>>,
}

impl Redactor {
    fn new(root: &std::path::Path) -> Redactor {
        let mut roots: Vec<String> = vec![root.display().to_string()];
        // LocalFileSystem canonicalizes its prefix, so its messages use that form.
        if let Ok(canonical) = std::fs::canonicalize(root) {
            roots.push(canonical.display().to_string());
        }
        roots.retain(|r| !r.is_empty() && r != "/");
        roots.sort_by_key(|r| std::cmp::Reverse(r.len()));
        roots.dedup();
        Redactor {
            roots: Arc::new(roots),
        }
    }

    fn redact(&self, message: String) -> String {
        let mut out = message;
        for root in self.roots.iter() {
            out = out
                .replace(&format!("{root}/"), "")
                .replace(root.as_str(), "<storage>");
        }
        out
    }

    /// `{action} {object}: {error}`, with the root taken out.
    pub(crate) fn error(
        &self,
        action: &str,
        object: &str,
        e: impl std::fmt::Display,
    ) -> StrataError {
        StrataError::Storage(self.redact(format!("{action} {object}: {e}")))
    }
}

pub struct ColdStore {
    id: String,
    object_store: Arc<dyn ObjectStore>,
    description: String,
    footers: Mutex<HashMap<String, ArrowReaderMetadata>>,
    redactor: Redactor,
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
            redactor: Redactor::new(root),
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

    pub(crate) fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The Parquet footer of a file, from cache or one read.
    pub async fn footer(&self, meta: &FileMeta) -> Result<ArrowReaderMetadata> {
        if let Some(m) = self.footers.lock().get(&meta.path) {
            return Ok(m.clone());
        }
        let path = layout::from_stored(&meta.path)?;
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(self.object_store.clone(), path)
            .with_file_size(meta.size_bytes);
        let footer = ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
            .await
            .map_err(|e| self.redactor.error("cannot read", &meta.path, e))?;
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
            .map_err(|e| self.redactor.error("cannot write", path.as_ref(), e))
    }

    pub async fn exists(&self, path: &Path) -> Result<bool> {
        match self.object_store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.redactor.error("cannot stat", path.as_ref(), e)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        self.footers.lock().remove(path.as_ref());
        match self.object_store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.redactor.error("cannot delete", path.as_ref(), e)),
        }
    }

    /// Deletes an object named by its recorded text (a manifest entry's path, a
    /// garbage record), which is parsed, never escaped again.
    pub async fn delete_stored(&self, stored: &str) -> Result<()> {
        self.delete(&layout::from_stored(stored)?).await
    }

    /// Every object under a prefix (the whole storage with `None`).
    pub async fn list(&self, prefix: Option<&Path>) -> Result<Vec<Path>> {
        let under = prefix.map(|p| p.as_ref()).unwrap_or("");
        self.object_store
            .list(prefix)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(|e| self.redactor.error("cannot list", under, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_name_objects_relative_to_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let cold = ColdStore::local("local", dir.path()).unwrap();
        let meta = FileMeta {
            file_id: 1,
            user: String::new(),
            path: "app/t%231/batch-1.parquet".into(),
            rows: 1,
            size_bytes: 100,
            row_groups: 1,
            seq_min: 0,
            seq_max: 0,
            created_at: 0,
            columns: vec![],
        };
        let err = cold.footer(&meta).await.unwrap_err();
        let text = err.to_string();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(err.sqlstate(), "58030");
        assert!(text.contains("app/t%231/batch-1.parquet"), "{text}");
        assert!(!text.contains(&dir.path().display().to_string()), "{text}");
        assert!(!text.contains(&canonical.display().to_string()), "{text}");
    }
}

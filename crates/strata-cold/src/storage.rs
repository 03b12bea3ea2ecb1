//! A storage: one object store (a local directory, or an S3-protocol bucket
//! under a key prefix) with its layout (path templates, sharding) and a cache
//! of Parquet footers (files are immutable, so a footer read once stays valid
//! until the file is deleted).
//!
//! Objects are named by [`Path`]s built in [`crate::layout`]; a path recorded
//! as text comes back through [`crate::layout::from_stored`]. Errors name the
//! storage and the object relative to the storage root: the object store's
//! own messages carry the absolute file path, which clients must not see
//! ([`Redactor`]). Credentials are handed to the S3 client and kept nowhere
//! else here.

use crate::instrumented::Instrumented;
use crate::layout;
use crate::manifest::FileMeta;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use parking_lot::Mutex;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
#[allow(deprecated)] // see reader.rs
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::file::metadata::PageIndexPolicy;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use strata_catalog::{StorageDef, StorageType, TableDef};
use strata_common::{Result, StrataError};
use strata_sql::TableKind;

/// Footers kept in memory; past this the cache starts over (footers are small
/// and re-reading one costs a single ranged GET).
const FOOTER_CACHE_ENTRIES: usize = 4096;
/// Bytes read from a file's end to get its footer in one request (Parquet's
/// footer, with our statistics and a bloom filter offset, is usually far smaller).
const FOOTER_PREFETCH_BYTES: usize = 64 * 1024;
/// One S3 request may take this long before it is retried or fails.
const S3_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const S3_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Transient errors (5xx, timeouts, resets) are retried this often, within this
/// time, with exponential backoff; then the request fails and the job or query
/// reports it.
const S3_MAX_RETRIES: usize = 3;
const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// Turns object-store and Parquet errors into [`StrataError::Storage`] with
/// every spelling of the storage root taken out, so a message names objects
/// the way the manifest does (`app/t/batch-7.parquet`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Root spellings, longest first (a canonical path can be longer).
    roots: Arc<Vec<String>>,
    /// The storage id, named in every error.
    storage: Arc<str>,
}

impl Redactor {
    fn new(storage: &str, root: &std::path::Path) -> Redactor {
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
            storage: storage.into(),
        }
    }

    /// For an object store whose messages carry no local path (S3).
    fn without_roots(storage: &str) -> Redactor {
        Redactor {
            roots: Arc::new(vec![]),
            storage: storage.into(),
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

    /// `{action} {object} on storage "{id}": {error}`, with the root taken out.
    pub(crate) fn error(
        &self,
        action: &str,
        object: &str,
        e: impl std::fmt::Display,
    ) -> StrataError {
        StrataError::Storage(self.redact(format!(
            "{action} {object} on storage \"{}\": {e}",
            self.storage
        )))
    }
}

pub struct ColdStore {
    def: Arc<StorageDef>,
    /// The directory of a filesystem storage.
    dir: Option<std::path::PathBuf>,
    object_store: Arc<dyn ObjectStore>,
    footers: Mutex<HashMap<String, ArrowReaderMetadata>>,
    redactor: Redactor,
}

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStore")
            .field("id", &self.def.id)
            .field("location", &self.def.uri)
            .finish()
    }
}

impl ColdStore {
    /// The built-in `local` storage: a directory on this machine.
    pub fn local(id: &str, root: &std::path::Path) -> Result<ColdStore> {
        let mut def = StorageDef::local(root);
        def.id = id.into();
        Self::directory(Arc::new(def), root)
    }

    /// The object store a storage definition names. `local_root` is where the
    /// built-in `local` storage lives.
    pub fn open(def: Arc<StorageDef>, local_root: &std::path::Path) -> Result<ColdStore> {
        match def.storage_type {
            StorageType::Filesystem => {
                let dir = if def.id == strata_catalog::LOCAL_STORAGE {
                    local_root.to_path_buf()
                } else {
                    std::path::PathBuf::from(def.uri.strip_prefix("file://").unwrap_or(&def.uri))
                };
                Self::directory(def, &dir)
            }
            StorageType::S3 => Self::s3(def),
        }
    }

    fn directory(def: Arc<StorageDef>, root: &std::path::Path) -> Result<ColdStore> {
        let redactor = Redactor::new(&def.id, root);
        std::fs::create_dir_all(root)
            .map_err(|e| redactor.error("cannot create", "the storage directory", e))?;
        let fs = LocalFileSystem::new_with_prefix(root)
            .map_err(|e| redactor.error("cannot open", "the storage directory", e))?
            .with_automatic_cleanup(true);
        let mut store = Self::with_store(def, Arc::new(fs), redactor);
        store.dir = Some(root.to_path_buf());
        Ok(store)
    }

    fn s3(def: Arc<StorageDef>) -> Result<ColdStore> {
        let redactor = Redactor::without_roots(&def.id);
        let rest = def.uri.strip_prefix("s3://").unwrap_or(&def.uri);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // Without CREDENTIALS (or REGION, ENDPOINT) the server's AWS_*
        // environment applies; what the storage says wins over it.
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(def.virtual_hosted_style)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(S3_REQUEST_TIMEOUT)
                    .with_connect_timeout(S3_CONNECT_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: S3_MAX_RETRIES,
                retry_timeout: S3_RETRY_TIMEOUT,
            });
        if let Some(r) = &def.region {
            b = b.with_region(r);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(e) = &def.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(c) = &def.credentials {
            b = b
                .with_access_key_id(&c.access_key_id)
                .with_secret_access_key(&c.secret_access_key);
            if let Some(t) = &c.session_token {
                b = b.with_token(t);
            }
        }
        // The builder's messages name configuration keys, never their values.
        let s3 = b
            .build()
            .map_err(|e| redactor.error("cannot configure", "the S3 client", e))?;
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Self::with_store(def, store, redactor))
    }

    fn with_store(
        def: Arc<StorageDef>,
        store: Arc<dyn ObjectStore>,
        redactor: Redactor,
    ) -> ColdStore {
        let object_store: Arc<dyn ObjectStore> = Arc::new(Instrumented::new(&def.id, store));
        ColdStore {
            def,
            dir: None,
            object_store,
            footers: Mutex::new(HashMap::new()),
            redactor,
        }
    }

    pub fn id(&self) -> &str {
        &self.def.id
    }

    /// The definition this store was opened from.
    pub fn def(&self) -> &Arc<StorageDef> {
        &self.def
    }

    /// Directory of one (table, user) partition, from this storage's template.
    pub fn partition_dir(&self, table: &TableDef, user: &str) -> Path {
        let user_table = table.kind == TableKind::User;
        let shard_key = if user_table {
            user
        } else {
            table.name.as_str()
        };
        layout::render(
            self.def.template(user_table),
            &layout::Values {
                namespace: &table.namespace,
                table: &table.name,
                user,
                shard: &self.def.sharding.shard(shard_key),
            },
        )
    }

    pub fn file_path(&self, table: &TableDef, user: &str, file_id: u64) -> Path {
        self.partition_dir(table, user)
            .join(layout::file_name(file_id).as_str())
    }

    pub fn manifest_path(&self, table: &TableDef, user: &str) -> Path {
        self.partition_dir(table, user).join(layout::MANIFEST_FILE)
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
            strata_common::stats::footer_cache(true);
            return Ok(m.clone());
        }
        strata_common::stats::footer_cache(false);
        let path = layout::from_stored(&meta.path)?;
        #[allow(deprecated)]
        let mut reader = ParquetObjectReader::new(self.object_store.clone(), path)
            .with_file_size(meta.size_bytes)
            .with_footer_size_hint(FOOTER_PREFETCH_BYTES);
        // With the page index, a read of a few rows (a primary-key lookup
        // through the index) fetches and decodes only the pages holding them.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let footer = ArrowReaderMetadata::load_async(&mut reader, options)
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

    /// Removes the staging files (`batch-7.parquet#3`) an interrupted write
    /// to a directory leaves beside `path`; object_store neither lists nor
    /// deletes such names. Returns how many it removed (0 on S3, whose
    /// unfinished uploads are not objects).
    pub fn remove_staging(&self, path: &Path) -> Result<usize> {
        let Some(root) = &self.dir else {
            return Ok(0);
        };
        let Some(name) = path.filename() else {
            return Ok(0);
        };
        let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_string()).collect();
        let mut parent = root.clone();
        for p in &parts[..parts.len().saturating_sub(1)] {
            parent.push(p);
        }
        let entries = match std::fs::read_dir(&parent) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.redactor.error("cannot list", path.as_ref(), e)),
        };
        let prefix = format!("{name}#");
        let mut removed = 0;
        for entry in entries.flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            if file.starts_with(&prefix) && file[prefix.len()..].bytes().all(|b| b.is_ascii_digit())
            {
                std::fs::remove_file(entry.path())
                    .map_err(|e| self.redactor.error("cannot delete", file, e))?;
                removed += 1;
            }
        }
        Ok(removed)
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
        assert_eq!(cold.id(), "local");
        let meta = FileMeta {
            file_id: 1,
            user: String::new(),
            storage: "local".into(),
            path: "app/t%231/batch-1.parquet".into(),
            rows: 1,
            size_bytes: 100,
            row_groups: 1,
            seq_min: 0,
            seq_max: 0,
            created_at: 0,
            columns: vec![],
            visible_rows: None,
        };
        let err = cold.footer(&meta).await.unwrap_err();
        let text = err.to_string();
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(err.sqlstate(), "58030");
        assert!(text.contains("app/t%231/batch-1.parquet"), "{text}");
        assert!(text.contains("storage \"local\""), "{text}");
        assert!(!text.contains(&dir.path().display().to_string()), "{text}");
        assert!(!text.contains(&canonical.display().to_string()), "{text}");
    }
}

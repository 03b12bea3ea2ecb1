//! Storages: where cold files go. A storage is a local directory or an
//! S3-protocol bucket (with a key prefix), plus the path templates that lay a
//! partition's files out in it and the sharding that fills `{shard}`.
//!
//! The built-in `local` storage (`{data_dir}/storage`) is never recorded and
//! never droppable. Others are recorded under `stg\0{id}` in the catalog
//! column family. Credentials are kept there (the data directory is the
//! server's secret store, as for SCRAM verifiers) and shown nowhere: the
//! `Debug` form of [`Credentials`] is redacted and no system table has them.

use crate::Catalog;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use strata_common::{Result, StrataError};
use strata_sql::StorageOptions;
use strata_store::CF_CATALOG;

/// Id of the built-in storage.
pub const LOCAL_STORAGE: &str = "local";
/// Directory template of SHARED (and STREAM) tables unless a storage says otherwise.
pub const DEFAULT_SHARED_TEMPLATE: &str = "{namespace}/{tableName}";
/// Directory template of USER tables: one directory per user.
pub const DEFAULT_USER_TEMPLATE: &str = "{namespace}/{tableName}/{userId}";
/// Longest template; a path segment is bounded separately when rendered.
const MAX_TEMPLATE_BYTES: usize = 512;
/// Longest storage id, PATH, ENDPOINT, REGION or DESCRIPTION.
const MAX_TEXT_BYTES: usize = 1024;
/// Bounds of `numeric:N` and `hash:N`.
const MAX_NUMERIC_RANGE: u64 = 1_000_000_000_000;
const MAX_HASH_BUCKETS: u64 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    Filesystem,
    S3,
}

impl StorageType {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageType::Filesystem => "filesystem",
            StorageType::S3 => "s3",
        }
    }
}

/// Static S3 credentials. Without them the server's `AWS_*` environment applies.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Credentials {
    /// Parses `CREDENTIALS '{…}'`; the error never quotes the text.
    pub fn parse(json: &str) -> Result<Credentials> {
        let c: Credentials = serde_json::from_str(json).map_err(|_| {
            invalid(
                "CREDENTIALS must be a JSON object with the string keys access_key_id and \
                 secret_access_key (and optionally session_token), e.g. \
                 '{\"access_key_id\":\"AKIA…\",\"secret_access_key\":\"…\"}'",
            )
        })?;
        if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
            return Err(invalid(
                "CREDENTIALS: access_key_id and secret_access_key must not be empty",
            ));
        }
        Ok(c)
    }
}

/// How `{shard}` is filled from a user id (or, for SHARED tables, the table name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharding {
    #[default]
    None,
    /// The key's first character, lower-cased; `_` unless it is an ASCII letter or digit.
    Alphabetic,
    /// `floor(id / N)` for a numeric id (ranges of N ids); `_` for other ids.
    Numeric(u64),
    /// A stable hash (FNV-1a, 64 bit) of the key modulo N, zero-padded.
    Hash(u64),
}

impl Sharding {
    pub fn parse(text: &str) -> Result<Sharding> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || {
            invalid(format!(
                "invalid SHARDING \"{text}\": expected 'alphabetic', 'numeric:N' (1..={MAX_NUMERIC_RANGE}), \
                 'hash:N' (1..={MAX_HASH_BUCKETS}) or 'none', e.g. SHARDING 'hash:32'"
            ))
        };
        let number = |s: &str, max: u64| -> Result<u64> {
            s.parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(bad)
        };
        Ok(match t.split_once(':') {
            None if t == "alphabetic" => Sharding::Alphabetic,
            None if t == "none" || t.is_empty() => Sharding::None,
            Some(("numeric", n)) => Sharding::Numeric(number(n, MAX_NUMERIC_RANGE)?),
            Some(("hash", n)) => Sharding::Hash(number(n, MAX_HASH_BUCKETS)?),
            _ => return Err(bad()),
        })
    }

    /// The `{shard}` value of a key.
    pub fn shard(self, key: &str) -> String {
        match self {
            Sharding::None => String::new(),
            Sharding::Alphabetic => match key.chars().next() {
                Some(c) if c.is_ascii_alphanumeric() => c.to_ascii_lowercase().to_string(),
                _ => "_".into(),
            },
            Sharding::Numeric(n) => match key.parse::<u64>() {
                Ok(id) => (id / n).to_string(),
                Err(_) => "_".into(),
            },
            Sharding::Hash(n) => {
                let width = (n - 1).max(1).to_string().len();
                format!("{:0width$}", fnv1a(key.as_bytes()) % n)
            }
        }
    }
}

impl std::fmt::Display for Sharding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sharding::None => f.write_str("none"),
            Sharding::Alphabetic => f.write_str("alphabetic"),
            Sharding::Numeric(n) => write!(f, "numeric:{n}"),
            Sharding::Hash(n) => write!(f, "hash:{n}"),
        }
    }
}

impl Serialize for Sharding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sharding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Sharding::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// FNV-1a: stable across versions and platforms (a layout must never move).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageDef {
    pub id: String,
    pub storage_type: StorageType,
    /// `file:///abs/dir` or `s3://bucket/prefix`, as normalised at CREATE.
    pub uri: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub credentials: Option<Credentials>,
    pub shared_tables_template: String,
    pub user_tables_template: String,
    #[serde(default)]
    pub sharding: Sharding,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub virtual_hosted_style: bool,
    pub created_at: i64,
}

fn invalid(msg: impl Into<String>) -> StrataError {
    StrataError::InvalidParameterValue(msg.into())
}

fn bounded(what: &str, text: &str) -> Result<()> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(invalid(format!(
            "{what} is longer than {MAX_TEXT_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Default for StorageDef {
    fn default() -> StorageDef {
        StorageDef::local(std::path::Path::new("storage"))
    }
}

impl StorageDef {
    /// The built-in storage, a directory of this server.
    pub fn local(dir: &std::path::Path) -> StorageDef {
        StorageDef {
            id: LOCAL_STORAGE.into(),
            storage_type: StorageType::Filesystem,
            uri: format!("file://{}", dir.display()),
            region: None,
            endpoint: None,
            credentials: None,
            shared_tables_template: DEFAULT_SHARED_TEMPLATE.into(),
            user_tables_template: DEFAULT_USER_TEMPLATE.into(),
            sharding: Sharding::None,
            description: "built-in storage in the data directory".into(),
            virtual_hosted_style: false,
            created_at: 0,
        }
    }

    /// A new storage from `CREATE STORAGE`, validated.
    pub fn from_options(id: &str, o: &StorageOptions, now: i64) -> Result<StorageDef> {
        bounded("a storage id", id)?;
        if id.is_empty() {
            return Err(invalid("a storage id must not be empty"));
        }
        let storage_type = match o.storage_type.as_deref().map(str::to_ascii_lowercase) {
            Some(t) if t == "filesystem" => StorageType::Filesystem,
            Some(t) if t == "s3" => StorageType::S3,
            Some(t) => {
                return Err(invalid(format!(
                    "unknown storage TYPE \"{t}\": expected 'filesystem' or 's3'"
                )));
            }
            None => {
                return Err(invalid(
                    "CREATE STORAGE needs TYPE 'filesystem' or TYPE 's3', e.g. \
                     CREATE STORAGE s3main TYPE 's3' PATH 's3://bucket/prefix'",
                ));
            }
        };
        let path = o.path.as_deref().ok_or_else(|| {
            invalid("CREATE STORAGE needs PATH ('file:///abs/dir' or 's3://bucket/prefix')")
        })?;
        let uri = match storage_type {
            StorageType::Filesystem => filesystem_uri(path)?,
            StorageType::S3 => s3_uri(path)?,
        };
        let mut def = StorageDef {
            id: id.into(),
            storage_type,
            uri,
            region: None,
            endpoint: None,
            credentials: None,
            shared_tables_template: DEFAULT_SHARED_TEMPLATE.into(),
            user_tables_template: DEFAULT_USER_TEMPLATE.into(),
            sharding: Sharding::None,
            description: String::new(),
            virtual_hosted_style: false,
            created_at: now,
        };
        def.apply(o)?;
        Ok(def)
    }

    /// Applies `ALTER STORAGE … SET` (or CREATE's optional clauses) and
    /// validates the result. TYPE and PATH cannot change: files already
    /// written live there.
    pub fn apply(&mut self, o: &StorageOptions) -> Result<()> {
        if let Some(r) = &o.region {
            bounded("REGION", r)?;
            self.region = Some(r.clone()).filter(|r| !r.is_empty());
        }
        if let Some(e) = &o.endpoint {
            bounded("ENDPOINT", e)?;
            self.endpoint = if e.is_empty() {
                None
            } else {
                Some(endpoint(e)?)
            };
        }
        if let Some(c) = &o.credentials {
            self.credentials = if c.0.trim().is_empty() {
                None
            } else {
                Some(Credentials::parse(&c.0)?)
            };
        }
        if let Some(t) = &o.shared_tables_template {
            self.shared_tables_template = t.clone();
        }
        if let Some(t) = &o.user_tables_template {
            self.user_tables_template = t.clone();
        }
        if let Some(s) = &o.sharding {
            self.sharding = Sharding::parse(s)?;
        }
        if let Some(d) = &o.description {
            bounded("DESCRIPTION", d)?;
            self.description = d.clone();
        }
        if let Some(v) = o.virtual_hosted_style {
            self.virtual_hosted_style = v;
        }
        if self.storage_type == StorageType::Filesystem
            && (self.region.is_some()
                || self.endpoint.is_some()
                || self.credentials.is_some()
                || self.virtual_hosted_style)
        {
            return Err(invalid(
                "REGION, ENDPOINT, CREDENTIALS and VIRTUAL_HOSTED_STYLE apply to TYPE 's3' only",
            ));
        }
        validate_template(&self.shared_tables_template, false, self.sharding)?;
        validate_template(&self.user_tables_template, true, self.sharding)?;
        Ok(())
    }

    pub fn template(&self, user_table: bool) -> &str {
        if user_table {
            &self.user_tables_template
        } else {
            &self.shared_tables_template
        }
    }
}

/// `file:///abs/dir` or `/abs/dir` → `file:///abs/dir`.
fn filesystem_uri(path: &str) -> Result<String> {
    bounded("PATH", path)?;
    let dir = path.strip_prefix("file://").unwrap_or(path);
    if !dir.starts_with('/') {
        return Err(invalid(format!(
            "a filesystem storage's PATH must be absolute, e.g. 'file:///var/lib/strata/cold' (got \"{path}\")"
        )));
    }
    if dir.split('/').any(|s| s == "..") {
        return Err(invalid(
            "a filesystem storage's PATH must not contain \"..\"",
        ));
    }
    let dir = dir.trim_end_matches('/');
    Ok(format!("file://{}", if dir.is_empty() { "/" } else { dir }))
}

/// `s3://bucket[/prefix]`, with a bucket name S3 accepts.
fn s3_uri(path: &str) -> Result<String> {
    bounded("PATH", path)?;
    let example = "e.g. 's3://my-bucket/strata/cold'";
    let rest = path
        .strip_prefix("s3://")
        .ok_or_else(|| invalid(format!("an s3 storage's PATH starts with s3://, {example}")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !valid_bucket {
        return Err(invalid(format!(
            "invalid bucket name \"{bucket}\" (3 to 63 lower-case letters, digits, '-' or '.'), {example}"
        )));
    }
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(invalid(format!(
            "an s3 storage's prefix must not contain \".\" or \"..\", {example}"
        )));
    }
    if segments.is_empty() {
        Ok(format!("s3://{bucket}"))
    } else {
        Ok(format!("s3://{bucket}/{}", segments.join("/")))
    }
}

fn endpoint(e: &str) -> Result<String> {
    let e = e.trim_end_matches('/');
    let host = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or("");
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "invalid ENDPOINT \"{e}\": expected http://host[:port] or https://host[:port], \
             e.g. 'http://127.0.0.1:9000'"
        )));
    }
    Ok(e.to_string())
}

pub(crate) fn storage_key(id: &str) -> Vec<u8> {
    format!("stg\0{id}").into_bytes()
}

pub(crate) fn undefined_storage(id: &str) -> StrataError {
    StrataError::UndefinedObject(format!("storage \"{id}\" does not exist"))
}

/// What refers to a storage, for DROP STORAGE's refusal and system.storages.
#[derive(Debug, Clone, Default)]
pub struct StorageUsers {
    /// `ns.table` of tables placed on it.
    pub tables: Vec<String>,
    /// Users whose own storage it is.
    pub users: Vec<String>,
}

impl Catalog {
    /// Sets where the built-in `local` storage lives (the server's data dir).
    pub fn set_local_storage(&self, dir: &std::path::Path) {
        self.state.write().local_storage = Arc::new(StorageDef::local(dir));
    }

    pub fn storage(&self, id: &str) -> Option<Arc<StorageDef>> {
        let st = self.state.read();
        if id == LOCAL_STORAGE {
            return Some(st.local_storage.clone());
        }
        st.storages.get(id).cloned()
    }

    pub fn require_storage(&self, id: &str) -> Result<Arc<StorageDef>> {
        self.storage(id).ok_or_else(|| undefined_storage(id))
    }

    /// Every storage, `local` first.
    pub fn storages(&self) -> Vec<Arc<StorageDef>> {
        let st = self.state.read();
        std::iter::once(st.local_storage.clone())
            .chain(st.storages.values().cloned())
            .collect()
    }

    /// Records a new storage; `Ok(false)` when it exists and `if_not_exists`.
    pub fn create_storage(&self, def: StorageDef, if_not_exists: bool) -> Result<bool> {
        let mut st = self.state.write();
        if def.id == LOCAL_STORAGE || st.storages.contains_key(&def.id) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(StrataError::DuplicateObject(format!(
                    "storage \"{}\" already exists",
                    def.id
                )))
            };
        }
        self.put_storage(&mut st, def)?;
        Ok(true)
    }

    /// Replaces a storage's record (ALTER STORAGE); `local` cannot change.
    pub fn update_storage(&self, def: StorageDef) -> Result<()> {
        if def.id == LOCAL_STORAGE {
            return Err(StrataError::InsufficientPrivilege(
                "the built-in storage \"local\" cannot be altered".into(),
            ));
        }
        let mut st = self.state.write();
        if !st.storages.contains_key(&def.id) {
            return Err(undefined_storage(&def.id));
        }
        self.put_storage(&mut st, def)?;
        Ok(())
    }

    /// Writes a storage's record and caches it (under the catalog lock).
    fn put_storage(&self, st: &mut crate::State, def: StorageDef) -> Result<()> {
        self.store.put(
            CF_CATALOG,
            &storage_key(&def.id),
            &serde_json::to_vec(&def)?,
        )?;
        st.storages.insert(def.id.clone(), Arc::new(def));
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Tables and users that refer to a storage.
    pub fn storage_users(&self, id: &str) -> StorageUsers {
        let st = self.state.read();
        storage_users_in(&st, id)
    }

    /// Removes a storage nothing refers to. `still_has_files` is asked under
    /// the catalog lock, after the tables and users were checked, so no table
    /// can be moved onto the storage between the checks and the removal.
    pub fn drop_storage(
        &self,
        id: &str,
        if_exists: bool,
        still_has_files: impl FnOnce() -> Result<u64>,
    ) -> Result<bool> {
        if id == LOCAL_STORAGE {
            return Err(StrataError::DependentObjects(
                "cannot drop storage \"local\": it is built in".into(),
            ));
        }
        let mut st = self.state.write();
        if !st.storages.contains_key(id) {
            return if if_exists {
                Ok(false)
            } else {
                Err(undefined_storage(id))
            };
        }
        let users = storage_users_in(&st, id);
        if !users.tables.is_empty() || !users.users.is_empty() {
            let mut what = vec![];
            if !users.tables.is_empty() {
                what.push(format!("tables {}", users.tables.join(", ")));
            }
            if !users.users.is_empty() {
                what.push(format!("users {}", users.users.join(", ")));
            }
            return Err(StrataError::DependentObjects(format!(
                "cannot drop storage \"{id}\" because {} use it",
                what.join(" and ")
            )));
        }
        let files = still_has_files()?;
        if files > 0 {
            return Err(StrataError::DependentObjects(format!(
                "cannot drop storage \"{id}\": {files} cold files still live on it \
                 (compact or drop the tables that own them first)"
            )));
        }
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_cf(self.store.cf(CF_CATALOG)?, storage_key(id));
        self.store.write(batch)?;
        st.storages.remove(id);
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    /// Sets (or with `None` clears) a user's own storage.
    pub fn set_user_storage(&self, name: &str, storage: Option<&str>) -> Result<()> {
        if let Some(id) = storage {
            self.require_storage(id)?;
        }
        let mut def = (*self.require_user(name)?).clone();
        def.storage_id = storage.map(str::to_string);
        self.update_user(def)?;
        Ok(())
    }
}

fn storage_users_in(st: &crate::State, id: &str) -> StorageUsers {
    StorageUsers {
        tables: st
            .tables
            .values()
            .filter(|t| t.storage_id == id)
            .map(|t| t.qualified_name())
            .collect(),
        users: st
            .users
            .values()
            .filter(|u| u.storage_id.as_deref() == Some(id))
            .map(|u| u.name.clone())
            .collect(),
    }
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: &[&str] = &["{namespace}", "{tableName}", "{userId}", "{shard}"];

/// Checks a directory template: known placeholders only, `{namespace}` and
/// `{tableName}` present in that order (so two tables never share a
/// directory), `{userId}` present in a user template and absent from a
/// shared one, `{shard}` only with a SHARDING.
pub fn validate_template(template: &str, user: bool, sharding: Sharding) -> Result<()> {
    let kind = if user { "USER" } else { "SHARED" };
    let example = if user {
        "'{namespace}/{tableName}/{userId}' or '{shard}/{namespace}/{tableName}/{userId}'"
    } else {
        "'{namespace}/{tableName}'"
    };
    let fail = |why: String| -> Result<()> {
        Err(invalid(format!(
            "invalid {kind}_TABLES_TEMPLATE \"{template}\": {why}; a valid one is {example}"
        )))
    };
    if template.len() > MAX_TEMPLATE_BYTES {
        return fail(format!("longer than {MAX_TEMPLATE_BYTES} bytes"));
    }
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        match PLACEHOLDERS.iter().find(|p| tail.starts_with(**p)) {
            Some(p) => rest = &tail[p.len()..],
            None => {
                let shown: String = tail.chars().take(20).collect();
                return fail(format!(
                    "unknown placeholder at \"{shown}\" (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
        }
    }
    let bare = PLACEHOLDERS
        .iter()
        .fold(template.to_string(), |acc, p| acc.replace(p, ""));
    if bare.contains('}') {
        return fail("a '}' outside a placeholder".into());
    }
    let segments: Vec<&str> = template.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return fail("segments must be non-empty and not \".\" or \"..\"".into());
    }
    let ns = template.find("{namespace}");
    let table = template.find("{tableName}");
    match (ns, table) {
        (Some(n), Some(t)) if n < t => {}
        (Some(_), Some(_)) => return fail("{namespace} must come before {tableName}".into()),
        _ => return fail("it must contain {namespace} and {tableName}".into()),
    }
    let has_user = template.contains("{userId}");
    if user && !has_user {
        return fail("a user template must contain {userId}".into());
    }
    if !user && has_user {
        return fail("a shared template cannot contain {userId}".into());
    }
    if template.contains("{shard}") && sharding == Sharding::None {
        return fail(
            "{shard} needs the storage's SHARDING ('alphabetic', 'numeric:N' or 'hash:N')".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked() {
        let ok = |t: &str, user: bool| validate_template(t, user, Sharding::Hash(8)).is_ok();
        assert!(ok("{namespace}/{tableName}", false));
        assert!(ok("{shard}/{namespace}/{tableName}/{userId}", true));
        assert!(ok("tenants/{namespace}-{tableName}/u={userId}", true));
        assert!(!ok("{tableName}/{namespace}/{userId}", true));
        assert!(!ok("{namespace}/{tableName}", true));
        assert!(!ok("{namespace}/{tableName}/{userId}", false));
        assert!(!ok("{namespace}/{tableName}/{user}", true));
        assert!(!ok("{namespace}//{tableName}", false));
        assert!(!ok("{namespace}/../{tableName}", false));
        assert!(
            validate_template("{shard}/{namespace}/{tableName}", false, Sharding::None).is_err()
        );
        let err = validate_template("{tableName}/{namespace}", false, Sharding::None).unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert!(err.to_string().contains("{namespace}/{tableName}"), "{err}");
    }

    #[test]
    fn shards() {
        assert_eq!(Sharding::Alphabetic.shard("Alice"), "a");
        assert_eq!(Sharding::Alphabetic.shard("é"), "_");
        assert_eq!(Sharding::Alphabetic.shard(""), "_");
        assert_eq!(Sharding::Numeric(1000).shard("12345"), "12");
        assert_eq!(Sharding::Numeric(1000).shard("bob"), "_");
        let h = Sharding::Hash(32).shard("alice");
        assert_eq!(h.len(), 2);
        assert_eq!(h, Sharding::Hash(32).shard("alice"));
        assert_eq!(Sharding::Hash(1).shard("x"), "0");
        for s in ["alphabetic", "numeric:1000", "hash:32", "none"] {
            assert_eq!(Sharding::parse(s).unwrap().to_string(), s);
        }
        for s in ["hash:0", "hash:x", "numeric:", "zebra", "hash:100000"] {
            assert!(Sharding::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn uris_and_credentials() {
        assert_eq!(
            s3_uri("s3://my-bucket/a//b/").unwrap(),
            "s3://my-bucket/a/b"
        );
        assert_eq!(s3_uri("s3://my-bucket").unwrap(), "s3://my-bucket");
        assert!(s3_uri("s3://A/x").is_err());
        assert!(s3_uri("s3://bucket/../x").is_err());
        assert!(s3_uri("http://bucket").is_err());
        assert_eq!(filesystem_uri("/data/cold/").unwrap(), "file:///data/cold");
        assert_eq!(filesystem_uri("file:///data").unwrap(), "file:///data");
        assert!(filesystem_uri("relative").is_err());
        let err =
            Credentials::parse("{\"access_key_id\":\"a\",\"secret\":\"hunter2\"}").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let c = Credentials::parse("{\"access_key_id\":\"a\",\"secret_access_key\":\"hunter2\"}")
            .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}

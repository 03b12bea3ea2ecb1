//! What makes up a partition's cold tier, as recorded in RocksDB (CF `cold`):
//!
//! | key | value |
//! |---|---|
//! | `f` · partition prefix · file id (u64 BE) | [`FileMeta`] as JSON |
//! | `d` · partition prefix · file id · row position (u32 BE) | empty: a deletion-vector bit |
//! | `g` · object path (escaped text) | time (µs) it stopped being referenced; deleted by cleanup |
//!
//! and in CF `pk_index`: row key → [`Location`] of the live cold version.
//! The partition prefix is the hot tier's (`table_id | user segment`), so one
//! prefix scan lists a partition. RocksDB is authoritative; `manifest.json`
//! mirrors it for engines that read the files directly.

use serde::{Deserialize, Serialize};
use strata_catalog::TableDef;
use strata_common::{Result, StrataError, keys};
use strata_store::{Batch, CF_COLD, CF_PK_INDEX, Store, StoreSnapshot};

/// Min/max/null count of one column in one file, for pruning: `min <= v <= max`
/// (in the total order queries compare by) must hold for every non-null value
/// `v`, so a bound that cannot be given is left out rather than guessed.
/// Values are the column's text form ([`crate::writer::text_of`]), which parses
/// back exactly; `None` for types without an order (arrays, bytea), for
/// all-null columns, and for floating-point columns holding NaN.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnStats {
    pub column_id: u32,
    pub name: String,
    pub min: Option<String>,
    pub max: Option<String>,
    pub null_count: u64,
    /// NaN values of a floating-point column (`None` for other types and for
    /// files written before it was counted). Parquet statistics leave NaN out,
    /// so a file's row-group statistics of a float column prune only when this
    /// says `Some(0)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nan_count: Option<u64>,
}

/// One Parquet file of a partition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileMeta {
    pub file_id: u64,
    /// Owner of the partition ("" for SHARED tables).
    pub user: String,
    /// The storage the file lives on (entries written before storages existed
    /// lived on `local`).
    #[serde(default = "local_storage")]
    pub storage: String,
    /// Object path relative to the storage root, as escaped text
    /// ([`crate::layout::to_stored`]; read back with `layout::from_stored`).
    pub path: String,
    pub rows: u64,
    pub size_bytes: u64,
    pub row_groups: usize,
    pub seq_min: u64,
    pub seq_max: u64,
    pub created_at: i64,
    pub columns: Vec<ColumnStats>,
    /// While a flush commits the file piece by piece, the rows committed so
    /// far (a prefix of the file, which is in key order); rows at or past it
    /// are still hot and no reader sees them here. None: all `rows`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_rows: Option<u64>,
}

fn local_storage() -> String {
    strata_catalog::LOCAL_STORAGE.to_string()
}

/// A file with its deletion vector (sorted row positions no longer live).
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub meta: FileMeta,
    pub deleted: Vec<u32>,
}

impl LiveFile {
    /// Rows committed to the file (see `FileMeta::visible_rows`).
    pub fn visible_rows(&self) -> u64 {
        self.meta
            .visible_rows
            .map_or(self.meta.rows, |v| v.min(self.meta.rows))
    }

    /// Visible rows no deletion vector hides (deletion vectors only ever
    /// mark visible rows).
    pub fn live_rows(&self) -> u64 {
        self.visible_rows()
            .saturating_sub(self.deleted.len() as u64)
    }
}

/// Where the live cold version of a key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub file_id: u64,
    pub position: u32,
}

impl Location {
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&self.file_id.to_be_bytes());
        out[8..].copy_from_slice(&self.position.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Location> {
        if bytes.len() != 12 {
            return Err(StrataError::Storage(
                "corrupt primary-key index entry".into(),
            ));
        }
        let mut f = [0u8; 8];
        f.copy_from_slice(&bytes[..8]);
        let mut p = [0u8; 4];
        p.copy_from_slice(&bytes[8..]);
        Ok(Location {
            file_id: u64::from_be_bytes(f),
            position: u32::from_be_bytes(p),
        })
    }
}

fn tagged(tag: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(tag);
    k.extend_from_slice(rest);
    k
}

fn file_key(table_id: u32, user: &str, file_id: u64) -> Vec<u8> {
    let mut k = tagged(b'f', &keys::partition_prefix(table_id, user));
    k.extend_from_slice(&file_id.to_be_bytes());
    k
}

fn dv_file_prefix(table_id: u32, user: &str, file_id: u64) -> Vec<u8> {
    let mut k = tagged(b'd', &keys::partition_prefix(table_id, user));
    k.extend_from_slice(&file_id.to_be_bytes());
    k
}

/// An object on a storage, as recorded: the storage id and the escaped path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredObject {
    pub storage: String,
    pub path: String,
}

impl StoredObject {
    pub fn new(storage: &str, path: &str) -> StoredObject {
        StoredObject {
            storage: storage.into(),
            path: path.into(),
        }
    }

    pub fn of(meta: &FileMeta) -> StoredObject {
        StoredObject::new(&meta.storage, &meta.path)
    }
}

/// `storage \0 path`, or the bare path for `local` (records written before
/// storages existed). An escaped path never holds a NUL, so the two forms
/// cannot be confused.
fn object_key(tag: u8, object: &StoredObject) -> Vec<u8> {
    if object.storage == strata_catalog::LOCAL_STORAGE && tag == b'g' {
        return tagged(tag, object.path.as_bytes());
    }
    let mut k = tagged(tag, object.storage.as_bytes());
    k.push(0);
    k.extend_from_slice(object.path.as_bytes());
    k
}

fn object_of_key(key: &[u8]) -> StoredObject {
    let rest = String::from_utf8_lossy(key.get(1..).unwrap_or_default()).into_owned();
    match rest.split_once('\0') {
        Some((storage, path)) => StoredObject::new(storage, path),
        None => StoredObject::new(strata_catalog::LOCAL_STORAGE, &rest),
    }
}

fn garbage_key(object: &StoredObject) -> Vec<u8> {
    object_key(b'g', object)
}

/// Reads one partition's files and deletion vectors, in file-id (flush) order.
pub fn load_partition(
    snap: &StoreSnapshot<'_>,
    table_id: u32,
    user: &str,
) -> Result<Vec<LiveFile>> {
    let prefix = tagged(b'f', &keys::partition_prefix(table_id, user));
    with_deletion_vectors(snap, table_id, load_metas(snap, &prefix)?)
}

/// File entries under a key prefix of CF `cold`.
fn load_metas(snap: &StoreSnapshot<'_>, prefix: &[u8]) -> Result<Vec<FileMeta>> {
    let mut metas = vec![];
    snap.scan(CF_COLD, prefix, &keys::prefix_successor(prefix), |_, v| {
        metas.push(parse_meta(v)?);
        Ok(true)
    })?;
    Ok(metas)
}

fn with_deletion_vectors(
    snap: &StoreSnapshot<'_>,
    table_id: u32,
    metas: Vec<FileMeta>,
) -> Result<Vec<LiveFile>> {
    let mut files = Vec::with_capacity(metas.len());
    for meta in metas {
        let deleted = load_dv(snap, table_id, &meta.user, meta.file_id)?;
        files.push(LiveFile { meta, deleted });
    }
    Ok(files)
}

/// One file's entry, if the partition still has it.
pub fn load_file(
    snap: &StoreSnapshot<'_>,
    table_id: u32,
    user: &str,
    file_id: u64,
) -> Result<Option<FileMeta>> {
    snap.get(CF_COLD, &file_key(table_id, user, file_id))?
        .map(|v| parse_meta(&v))
        .transpose()
}

fn load_dv(snap: &StoreSnapshot<'_>, table_id: u32, user: &str, file_id: u64) -> Result<Vec<u32>> {
    let prefix = dv_file_prefix(table_id, user, file_id);
    let mut out = vec![];
    snap.scan(
        CF_COLD,
        &prefix,
        &keys::prefix_successor(&prefix),
        |k, _| {
            let pos = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .ok_or_else(|| StrataError::Storage("corrupt deletion-vector key".into()))?;
            out.push(u32::from_be_bytes(pos));
            Ok(true)
        },
    )?;
    Ok(out)
}

/// The partitions (users) of a table that have cold files.
pub fn partitions(snap: &StoreSnapshot<'_>, table_id: u32) -> Result<Vec<String>> {
    strata_store::partitions(snap, CF_COLD, &tagged(b'f', &keys::table_prefix(table_id)))
}

/// Every file of every partition of a table (for statistics and cleanup).
pub fn load_table(store: &Store, table_id: u32) -> Result<Vec<LiveFile>> {
    store.with_snapshot(|snap| {
        let prefix = tagged(b'f', &keys::table_prefix(table_id));
        with_deletion_vectors(snap, table_id, load_metas(snap, &prefix)?)
    })
}

fn parse_meta(v: &[u8]) -> Result<FileMeta> {
    serde_json::from_slice(v)
        .map_err(|e| StrataError::Storage(format!("corrupt manifest entry: {e}")))
}

/// Adds a file to its partition.
pub fn put_file(store: &Store, batch: &mut Batch, table_id: u32, meta: &FileMeta) -> Result<()> {
    let v = serde_json::to_vec(meta).map_err(|e| StrataError::internal(e.to_string()))?;
    batch.put_cf(
        store.cf(CF_COLD)?,
        file_key(table_id, &meta.user, meta.file_id),
        v,
    );
    Ok(())
}

/// Removes a file and its deletion vector from its partition and queues the
/// object for deletion (after running queries are done with it).
pub fn remove_file(
    store: &Store,
    batch: &mut Batch,
    table_id: u32,
    meta: &FileMeta,
    now_micros: i64,
) -> Result<()> {
    let cf = store.cf(CF_COLD)?;
    batch.delete_cf(cf, file_key(table_id, &meta.user, meta.file_id));
    let dv = dv_file_prefix(table_id, &meta.user, meta.file_id);
    batch.delete_range_cf(cf, &dv, &keys::prefix_successor(&dv));
    batch.put_cf(
        cf,
        garbage_key(&StoredObject::of(meta)),
        now_micros.to_be_bytes(),
    );
    Ok(())
}

/// Marks one row of a file as no longer live.
pub fn delete_row(
    store: &Store,
    batch: &mut Batch,
    table_id: u32,
    user: &str,
    loc: Location,
) -> Result<()> {
    let mut k = dv_file_prefix(table_id, user, loc.file_id);
    k.extend_from_slice(&loc.position.to_be_bytes());
    batch.put_cf(store.cf(CF_COLD)?, k, []);
    Ok(())
}

/// Ends a file a flush left partly committed (`visible_rows` short of its
/// rows: the flush was cancelled, its table altered, or the server stopped
/// between pieces). The rows past the committed prefix are still hot, so
/// here they are marked deleted and the file becomes an ordinary one that
/// compaction can merge.
pub fn seal_file(store: &Store, table_id: u32, meta: &FileMeta) -> Result<()> {
    let Some(visible) = meta.visible_rows else {
        return Ok(());
    };
    let mut batch = Batch::default();
    for position in visible.min(meta.rows)..meta.rows {
        let loc = Location {
            file_id: meta.file_id,
            position: u32::try_from(position)
                .map_err(|_| StrataError::Storage("file position out of range".into()))?,
        };
        delete_row(store, &mut batch, table_id, &meta.user, loc)?;
    }
    let sealed = FileMeta {
        visible_rows: None,
        ..meta.clone()
    };
    put_file(store, &mut batch, table_id, &sealed)?;
    // The deletion vector changed: the partition's manifest.json is rewritten
    // (at the latest by startup's repair of dirty mirrors).
    mark_mirror_dirty_in(store, &mut batch, table_id, &meta.user)?;
    store.write(batch)
}

/// Where the live cold version of `row_key` is, if any.
pub fn locate(store: &Store, row_key: &[u8]) -> Result<Option<Location>> {
    store
        .get(CF_PK_INDEX, row_key)?
        .map(|v| Location::decode(&v))
        .transpose()
}

/// Removes every cold record of a table (after DROP TABLE); objects are queued.
pub fn forget_table(store: &Store, table_id: u32, now_micros: i64) -> Result<()> {
    // Entries are read one by one so that a corrupt one costs only its own
    // object (left to the startup orphan sweep), not the whole drop.
    let prefix = tagged(b'f', &keys::table_prefix(table_id));
    let mut paths = vec![];
    store.with_snapshot(|snap| {
        snap.scan(CF_COLD, &prefix, &keys::prefix_successor(&prefix), |_, v| {
            match parse_meta(v) {
                Ok(meta) => paths.push(StoredObject::of(&meta)),
                Err(e) => tracing::warn!(table_id, error = %e, "skipping a corrupt manifest entry of a dropped table"),
            }
            Ok(true)
        })
    })?;
    let mut batch = Batch::default();
    let cold = store.cf(CF_COLD)?;
    for object in &paths {
        batch.put_cf(cold, garbage_key(object), now_micros.to_be_bytes());
    }
    for tag in [b'f', b'd', b'm', b'n'] {
        let p = tagged(tag, &keys::table_prefix(table_id));
        batch.delete_range_cf(cold, &p, &keys::prefix_successor(&p));
    }
    let p = keys::table_prefix(table_id);
    batch.delete_range_cf(store.cf(CF_PK_INDEX)?, &p, &keys::prefix_successor(&p));
    store.write(batch)
}

/// The users of a table's partitions that have cold files (the SHARED
/// partition is ""), read from the entries' keys so a corrupt entry still
/// counts.
pub fn table_partitions(store: &Store, table_id: u32) -> Result<Vec<String>> {
    let prefix = tagged(b'f', &keys::table_prefix(table_id));
    let mut users = std::collections::BTreeSet::new();
    store.with_snapshot(|snap| {
        snap.scan(
            CF_COLD,
            &prefix,
            &keys::prefix_successor(&prefix),
            |k, _| {
                if let Some((user, _)) = keys::split_partition(&k[1..]) {
                    users.insert(user);
                }
                Ok(true)
            },
        )
    })?;
    Ok(users.into_iter().collect())
}

/// Objects no longer referenced, with the time they were released. Paths are
/// recorded text: delete them with [`crate::ColdStore::delete_stored`] (or
/// rebuild them with [`crate::layout::from_stored`]), never `Path::from`.
pub fn garbage(store: &Store) -> Result<Vec<(StoredObject, i64)>> {
    timed_objects(store, b'g')
}

/// The objects recorded under a tag (`g` garbage, `p` uploads) with their times.
fn timed_objects(store: &Store, tag: u8) -> Result<Vec<(StoredObject, i64)>> {
    let mut out = vec![];
    store.scan(CF_COLD, &[tag], &[tag + 1], |k, v| {
        let at = <[u8; 8]>::try_from(v).map(i64::from_be_bytes).unwrap_or(0);
        out.push((object_of_key(k), at));
        Ok(true)
    })?;
    Ok(out)
}

pub fn forget_garbage(store: &Store, object: &StoredObject) -> Result<()> {
    let mut batch = Batch::default();
    batch.delete_cf(store.cf(CF_COLD)?, garbage_key(object));
    store.write(batch)
}

fn mirror_key(table_id: u32, user: &str) -> Vec<u8> {
    tagged(b'm', &keys::partition_prefix(table_id, user))
}

fn encode_object(object: &StoredObject) -> Vec<u8> {
    let mut v = object.storage.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(object.path.as_bytes());
    v
}

fn decode_object(v: &[u8]) -> StoredObject {
    let text = String::from_utf8_lossy(v);
    match text.split_once('\0') {
        Some((storage, path)) => StoredObject::new(storage, path),
        None => StoredObject::new(strata_catalog::LOCAL_STORAGE, &text),
    }
}

/// Where a partition's `manifest.json` was last written. A partition's
/// placement can move (ALTER TABLE … SET STORAGE_ID, ALTER USER … SET
/// STORAGE, a new template); the next mirror goes to the new place and the
/// old one is removed, so no stale listing stays behind.
pub fn mirror_location(store: &Store, table_id: u32, user: &str) -> Result<Option<StoredObject>> {
    Ok(store
        .get(CF_COLD, &mirror_key(table_id, user))?
        .map(|v| decode_object(&v)))
}

pub fn set_mirror_location(
    store: &Store,
    table_id: u32,
    user: &str,
    object: &StoredObject,
) -> Result<()> {
    store.put(CF_COLD, &mirror_key(table_id, user), &encode_object(object))
}

pub fn forget_mirror(store: &Store, table_id: u32, user: &str) -> Result<()> {
    let mut batch = Batch::default();
    batch.delete_cf(store.cf(CF_COLD)?, mirror_key(table_id, user));
    store.write(batch)
}

/// Every recorded mirror of a table, by partition user.
pub fn table_mirrors(store: &Store, table_id: u32) -> Result<Vec<(String, StoredObject)>> {
    let prefix = tagged(b'm', &keys::table_prefix(table_id));
    let mut out = vec![];
    store.scan(
        CF_COLD,
        &prefix,
        &keys::prefix_successor(&prefix),
        |k, v| {
            if let Some((user, _)) = keys::split_partition(&k[1..]) {
                out.push((user, decode_object(v)));
            }
            Ok(true)
        },
    )?;
    Ok(out)
}

fn dirty_key(table_id: u32, user: &str) -> Vec<u8> {
    tagged(b'n', &keys::partition_prefix(table_id, user))
}

/// Notes that a partition's `manifest.json` may be about to fall behind its
/// records (a job started on it, a write changed its deletion vectors), so
/// startup rewrites just these mirrors instead of reading every partition's.
pub fn mark_mirror_dirty(store: &Store, table_id: u32, user: &str) -> Result<()> {
    store.put(CF_COLD, &dirty_key(table_id, user), &[])
}

/// [`mark_mirror_dirty`] inside a commit's own batch (a write that changes
/// deletion vectors), so no crash can separate the change from the mark.
pub fn mark_mirror_dirty_in(
    store: &Store,
    batch: &mut Batch,
    table_id: u32,
    user: &str,
) -> Result<()> {
    batch.put_cf(store.cf(CF_COLD)?, dirty_key(table_id, user), []);
    Ok(())
}

pub fn clear_mirror_dirty(store: &Store, table_id: u32, user: &str) -> Result<()> {
    let mut batch = Batch::default();
    batch.delete_cf(store.cf(CF_COLD)?, dirty_key(table_id, user));
    store.write(batch)
}

/// Partitions whose mirror may be stale: (table id, user).
pub fn dirty_mirrors(store: &Store) -> Result<Vec<(u32, String)>> {
    let mut out = vec![];
    store.scan(CF_COLD, b"n", b"o", |k, _| {
        let table = k
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes);
        if let (Some(table), Some((user, _))) = (table, keys::split_partition(&k[1..])) {
            out.push((table, user));
        }
        Ok(true)
    })?;
    Ok(out)
}

/// Records, before its upload starts, an object a job is about to write: if
/// the job never commits it (a failure, a kill, a crash), the record names
/// the object to remove, so no listing of a storage is ever needed to find
/// orphans and nothing Strata did not write is ever deleted.
pub fn begin_upload(store: &Store, object: &StoredObject, now_micros: i64) -> Result<()> {
    store.put(
        CF_COLD,
        &object_key(b'p', object),
        &now_micros.to_be_bytes(),
    )
}

/// Forgets an upload record: its object was committed to a manifest, or removed.
pub fn end_upload(store: &Store, object: &StoredObject) -> Result<()> {
    let mut batch = Batch::default();
    batch.delete_cf(store.cf(CF_COLD)?, object_key(b'p', object));
    store.write(batch)
}

/// Uploads begun and not yet ended, with when they began.
pub fn pending_uploads(store: &Store) -> Result<Vec<(StoredObject, i64)>> {
    timed_objects(store, b'p')
}

/// How many objects the cold records place on a storage: live files, objects
/// waiting for deletion and uploads under way (DROP STORAGE refuses while any).
pub fn objects_on_storage(store: &Store, storage: &str) -> Result<u64> {
    Ok(ObjectCounts::read(store)?.on(storage))
}

/// Objects the cold records place on each storage, read in one pass.
#[derive(Debug, Default)]
pub struct ObjectCounts {
    by_storage: std::collections::HashMap<String, u64>,
    /// Entries that do not parse: they might be on any storage.
    corrupt: u64,
}

impl ObjectCounts {
    pub fn read(store: &Store) -> Result<ObjectCounts> {
        let mut out = ObjectCounts::default();
        store.scan(CF_COLD, b"f", b"g", |_, v| {
            match parse_meta(v) {
                Ok(m) => *out.by_storage.entry(m.storage).or_default() += 1,
                Err(_) => out.corrupt += 1,
            }
            Ok(true)
        })?;
        for (object, _) in garbage(store)?.into_iter().chain(pending_uploads(store)?) {
            *out.by_storage.entry(object.storage).or_default() += 1;
        }
        Ok(out)
    }

    /// The count for one storage; a corrupt entry counts for every storage.
    pub fn on(&self, storage: &str) -> u64 {
        self.by_storage.get(storage).copied().unwrap_or(0) + self.corrupt
    }
}

/// Every file referenced by any manifest (to tell orphans apart at startup), as
/// recorded text: equal to the `as_ref()` of the listed object's `Path`.
pub fn all_referenced_paths(store: &Store) -> Result<std::collections::HashSet<StoredObject>> {
    let mut out = std::collections::HashSet::new();
    store.scan(CF_COLD, b"f", b"g", |_, v| {
        out.insert(StoredObject::of(&parse_meta(v)?));
        Ok(true)
    })?;
    Ok(out)
}

/// The `manifest.json` document of one partition.
pub fn manifest_json(table: &TableDef, user: &str, files: &[LiveFile]) -> serde_json::Value {
    let columns: Vec<serde_json::Value> = table
        .columns
        .iter()
        .map(|c| {
            serde_json::json!({
                "column_id": c.id,
                "name": c.name,
                "type": c.ty.sql_name(),
                "nullable": c.nullable,
                "primary_key": c.primary_key,
            })
        })
        .collect();
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(&f.meta).unwrap_or(serde_json::Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("live_rows".into(), f.live_rows().into());
                // A file a flush is still committing piece by piece: the rows
                // past its committed prefix are still hot, so a reader of this
                // listing must skip them like deleted ones.
                let pending = f.visible_rows()..f.meta.rows;
                let deleted: Vec<u64> = f
                    .deleted
                    .iter()
                    .map(|&p| u64::from(p))
                    .chain(pending)
                    .collect();
                o.insert("deleted_positions".into(), deleted.into());
            }
            v
        })
        .collect();
    serde_json::json!({
        "format_version": 1,
        "namespace": table.namespace,
        "table": table.name,
        "table_id": table.id,
        "table_type": table.kind.as_str(),
        "user": user,
        "columns": columns,
        "files": files,
    })
}

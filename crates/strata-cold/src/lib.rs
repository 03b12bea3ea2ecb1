//! The cold tier: immutable Parquet files in an object store, plus the records
//! (kept in RocksDB, next to the hot rows) that say which files make up a table
//! partition and which of their rows are still live.
//!
//! - [`layout`]: where a partition's files live (path templates), and how a
//!   path is recorded as text and read back (escaped exactly once).
//! - [`manifest`]: file entries, deletion vectors, the primary-key index value format
//!   and the `manifest.json` mirror for external readers.
//! - [`writer`]: streams record batches into one sorted, ZSTD-compressed Parquet file
//!   and collects the statistics the manifest keeps.
//! - [`reader`]: streams one file back, pruned by statistics and minus its deletion
//!   vector, mapped onto the table's *current* columns by column id.
//! - [`prune`]: statistics adapters for DataFusion's `PruningPredicate`.
//! - [`ColdStore`] / [`Storages`]: one storage (a directory or an S3 bucket, its
//!   templates and footer cache) and the registry of open ones.
//!
//! This crate never decides *when* rows move between tiers; the flush and compact
//! jobs (strata-jobs) do, and they own the commit protocol.

mod instrumented;
pub mod layout;
pub mod manifest;
pub mod prune;
pub mod reader;
mod registry;
mod storage;
pub mod writer;

#[cfg(test)]
mod tests;

pub use manifest::{ColumnStats, FileMeta, LiveFile};
pub use registry::Storages;
pub use storage::ColdStore;

//! Query execution: DataFusion table providers over both tiers (with a
//! transaction block's staged rows laid over them), the DML executors (INSERT
//! with upserts, UPDATE, DELETE, RETURNING, COPY FROM), DDL, users, and the
//! role checks (`privileges`) every statement passes first. Each executor runs
//! with a [`QueryContext`]: the acting user, the DataFusion context and the
//! block, which the connection's session (the `strata-session` crate) hands it.
//!
//! Reads go through DataFusion. Writes do not: each DML statement computes its
//! rows (using DataFusion only to evaluate expressions and WHERE clauses) and
//! commits them in one RocksDB write batch under the table's write lock, which
//! is what makes a statement atomic and a duplicate key a clean 23505. Prepared
//! single-row INSERTs and primary-key SELECTs skip DataFusion entirely.

pub use strata_tiers::codec;
pub mod context;
pub mod copy;
pub mod ddl;
pub mod dml;
mod engine;
mod live;
mod merged;
pub mod notify;
pub mod output;
mod overlay;
pub mod panics;
pub mod plan_cache;
mod point_write;
pub mod prepared;
pub mod privileges;
mod provider;
mod rekey;
mod restore_ddl;
mod storages;
mod system_storages;
pub use strata_tiers::scan;
mod system;
mod system_stats;
pub use strata_tiers::tiers;
pub mod txn;
mod user_data;
pub mod users;
pub mod value_expr;
pub mod values;
pub mod write;

pub use context::{ActingUser, QueryContext};
pub use engine::{CATALOG, CATALOG_WITH_SYSTEM_COLUMNS, Engine, EngineOptions, QUERY_THREAD_STACK};
pub use output::QueryOutput;
pub use prepared::Prepared;
pub use privileges::require_role;
pub use strata_catalog::{Role, UserDef};
pub use strata_tiers::change_log::Retention;
pub use strata_tiers::{JobControl, Tiers, WriteCounter};
pub use txn::TxnStatus;

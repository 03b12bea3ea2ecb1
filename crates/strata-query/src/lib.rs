//! Query execution: DataFusion table providers over both tiers, the DML
//! executor (INSERT with upserts, UPDATE, DELETE, RETURNING), DDL, and the
//! per-connection `Session` that prepares and runs statements, and the role
//! checks (`privileges`) every statement passes first.
//!
//! Reads go through DataFusion. Writes do not: each DML statement computes its
//! rows (using DataFusion only to evaluate expressions and WHERE clauses) and
//! commits them in one RocksDB write batch under the table's write lock, which
//! is what makes a statement atomic and a duplicate key a clean 23505. Prepared
//! single-row INSERTs and primary-key SELECTs skip DataFusion entirely.

pub use strata_tiers::codec;
mod compat;
pub mod copy;
mod cursors;
mod ddl;
mod dml;
mod engine;
mod merged;
mod output;
mod overlay;
pub mod panics;
mod pg_catalog;
mod prepared;
pub mod privileges;
mod provider;
pub use strata_tiers::scan;
mod session;
mod settings;
mod sql_prepare;
mod system;
pub use strata_tiers::tiers;
pub mod txn;
mod user_data;
mod user_functions;
mod users;
mod values;
mod write;

pub use engine::{Engine, EngineOptions, QUERY_THREAD_STACK};
pub use output::QueryOutput;
pub use prepared::Prepared;
pub use privileges::require_role;
pub use session::CancelSignal;
pub use session::{ActingUser, Session};
pub use strata_catalog::{Role, UserDef};
pub use strata_tiers::{JobControl, Tiers, WriteCounter};
pub use txn::TxnStatus;

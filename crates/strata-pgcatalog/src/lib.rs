//! The Postgres catalog emulation tools and drivers talk to: `pg_catalog`
//! (built by `datafusion-pg-catalog` over Strata's catalog, with Strata's own
//! `pg_class`/`pg_attribute`/`pg_attrdef`/`pg_index` rows, `tableoid`, arrays
//! where Postgres has arrays), `information_schema` (Postgres' `columns`,
//! `table_constraints`, `key_column_usage` over DataFusion's), the rewrites of
//! catalog queries DataFusion cannot plan as sent (`compat`: psql's `\d`
//! family, JDBC metadata, SQLAlchemy, Django, DBeaver, Metabase, pg_dump,
//! drivers' type lookups), and the Postgres functions those queries call
//! (`functions`, `pg_catalog`).
//!
//! It sits below the query engine: it reads the catalog and the tiers, never
//! plans or runs a statement, and knows nothing of sessions beyond the
//! settings map (`Vars`) a session hands its per-session functions.

pub mod compat;
pub mod functions;
mod information_schema;
mod pg_catalog;

pub use functions::{Vars, first_in_search_path};
pub use pg_catalog::{RelationNamespaces, install, table_oid};

/// The one database a Strata server holds, as `current_database()` names it;
/// also the name of the DataFusion catalog holding the tables.
pub const DATABASE: &str = "strata";

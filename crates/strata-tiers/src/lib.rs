//! What the query engine and the jobs both work on, below either of them:
//! the tiers a table lives in (`Tiers`: the RocksDB hot store, the cold
//! object store, the catalog, write counters, the job control the server
//! installs), the row codec of hot rows (`codec`), and the hot-row scans and
//! rows→batch conversion (`scan`). `strata-query` plans and runs statements
//! over them; `strata-jobs` flushes, compacts and evicts through them without
//! depending on the planner's session or DML code.

pub mod change_log;
pub mod changes;
pub mod codec;
pub mod notify;
pub mod row_cache;
pub mod scan;
pub mod tiers;

pub use tiers::{JobControl, Tiers, WriteCounter};

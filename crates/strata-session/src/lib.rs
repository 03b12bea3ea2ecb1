//! A connection's session: per-connection state (settings and what RESET
//! returns them to, the transaction block and its savepoints, SQL cursors,
//! statements named by SQL PREPARE) and statement dispatch — parse (through
//! `strata-pgcatalog`'s catalog-query rewrites), plan, run with the
//! executors of `strata-query`, with statement_timeout, cancels and the
//! block's aborted state applied. The wire frontend holds one `Session` per
//! connection and talks to nothing below it.

mod copy;
mod cursor_list;
mod cursors;
mod session;
mod settings;
mod sql_prepare;

pub use session::{CancelSignal, Session};
/// The prefix of a result column renamed only to keep names unique
/// (`SELECT x.oid, x.*`); clients see the name after it.
pub use strata_pgcatalog::compat::ALIAS_PREFIX;
pub use strata_query::copy::{CopyFormat, CopyIn, CopyOptions};
pub use strata_query::notify::{Mailbox, MailboxReceiver, Notification, mailbox};
pub use strata_query::output::QueryOutput;
pub use strata_query::prepared::Prepared;
pub use strata_query::txn::TxnStatus;
pub use strata_query::{Engine, EngineOptions, QUERY_THREAD_STACK, Tiers};

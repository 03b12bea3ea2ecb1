//! The Postgres wire frontend: startup and login, the simple and extended query
//! protocols, cancellation, and the mapping of Strata's results and errors onto
//! protocol messages. Protocol framing is pgwire's; Arrow-to-Postgres value
//! encoding is arrow-pg's; SCRAM's server side is Strata's own (`scram.rs`), so
//! only password verifiers are ever stored. Per-connection state (the `Session`) lives in the
//! connection's own extension store, never in a handler shared by connections.

mod binary_array;
mod copy_in;
mod copy_out;
mod copy_reader;
mod counted;
mod encode;
mod errors;
mod execute;
mod float_text;
mod handler;
mod login;
mod named;
mod params;
mod scram;
mod simple_query;
mod vectors;

pub use handler::{ConnectionHandlers, DisconnectHook, Frontend};
pub use login::AuthSettings;

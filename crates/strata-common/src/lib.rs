//! Shared vocabulary of every Strata crate: the typed error enum and its SQLSTATE
//! mapping, the server configuration, and the order-preserving key encoding used by
//! the hot tier, the process-wide metrics (`stats`), and the check that a cast kept a value (`exact`). It depends on no other Strata crate so that every crate can use it.

pub mod config;
pub mod error;
pub mod exact;
pub mod keys;
pub mod stats;

pub use error::{Result, StrataError};

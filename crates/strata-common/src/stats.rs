//! Placeholder: replaced by the metrics module (prometheus-client).
pub fn object_store_request(_storage: &str, _op: &'static str) {}
pub fn object_store_error(_storage: &str, _op: &'static str) {}
pub fn footer_cache(_hit: bool) {}

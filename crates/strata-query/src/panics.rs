//! Panics become errors. A bug that panics inside a statement must reach the
//! client as an ErrorResponse (XX000), never as a connection dropped without a
//! word or, worse, as a result stream that just ends early and so looks like a
//! shorter, successful answer (an UPDATE acting on fewer rows).

use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use strata_common::{Result, StrataError};

/// The message of a caught panic, as an internal error.
pub fn panic_error(payload: Box<dyn Any + Send>) -> StrataError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %msg, "a statement panicked");
    StrataError::internal(format!("the statement failed unexpectedly: {msg}"))
}

/// Runs `fut`, turning a panic inside it into an internal error.
pub async fn catch<T>(fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => Err(panic_error(payload)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_is_an_internal_error() {
        let r: Result<()> = catch(async { panic!("boom {}", 1) }).await;
        let e = r.unwrap_err();
        assert_eq!(e.sqlstate(), "XX000");
        assert!(e.to_string().contains("boom 1"), "{e}");
    }
}

//! Where a job's heavy work runs, and what a panic in it becomes.
//!
//! Reading rows, building Arrow batches, merging files and encoding Parquet are
//! CPU-bound; they run on tokio's blocking pool, not on the job runtime's few
//! worker threads, and drive the async object-store writes they need through
//! the runtime's handle. A panic anywhere in a job becomes an error that says
//! so, and the job ends `failed` instead of staying `running` forever.

use std::any::Any;
use strata_common::{Result, StrataError};
use tokio::runtime::Handle;

/// Runs `work` on the blocking pool. `work` gets the runtime's handle to
/// `block_on` the async steps (object-store I/O) it needs.
pub(crate) async fn run<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Handle) -> Result<T> + Send + 'static,
{
    let rt = Handle::current();
    match tokio::task::spawn_blocking(move || work(&rt)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(panicked(e.into_panic())),
        Err(e) => Err(StrataError::internal(format!(
            "a job's blocking task did not finish: {e}"
        ))),
    }
}

/// The error a caught panic becomes; its text says the job panicked and why.
pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> StrataError {
    let msg = panic_message(payload.as_ref());
    tracing::error!(panic = %msg, "a job panicked");
    StrataError::internal(format!("the job panicked: {msg}"))
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_blocking_work_is_an_error() {
        let r: Result<()> = run(|_| panic!("boom {}", 7)).await;
        let text = r.unwrap_err().to_string();
        assert!(
            text.contains("panicked") && text.contains("boom 7"),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn blocking_work_can_drive_async_steps() {
        let r = run(|rt| {
            Ok(rt.block_on(async {
                tokio::task::yield_now().await;
                41 + 1
            }))
        })
        .await;
        assert_eq!(r.unwrap(), 42);
    }
}

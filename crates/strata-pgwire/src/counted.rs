//! Statement metrics (`strata_common::stats`), counted where the simple and
//! the extended protocol meet: every statement output passes through
//! [`Handler::respond`](crate::handler::Handler), every failure before an
//! output is reported by [`failed`].
//!
//! A statement counts once in `queries_total`, when its outcome is known: a
//! command when it returns, a statement with rows when its row stream is done
//! (sent to its end, failed, or dropped with its portal), a COPY FROM STDIN at
//! CopyDone. It counts in `query_errors_total` too when the client got an
//! error for it. Rows sent to the client add to `rows_read_total`; rows an
//! INSERT, UPDATE, DELETE or COPY FROM wrote add to `rows_written_total`.

use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_common::stats;
use strata_session::QueryOutput;

/// A statement that failed before it had an output to count.
pub(crate) fn failed() {
    stats::query(false);
}

/// Whether a command tag names a statement that writes rows.
fn writes(tag: &str) -> bool {
    let verb = tag.split_whitespace().next().unwrap_or("");
    matches!(verb, "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "COPY")
}

/// Rows a COPY FROM STDIN wrote; the statement succeeded.
pub(crate) fn copy_in_done(rows: Option<usize>) {
    stats::query(true);
    stats::rows_written(rows.unwrap_or(0) as u64);
}

/// One statement's outcome while its rows stream: counted when the stream and
/// the handler's hold on it are both gone, as failed if either saw an error.
#[derive(Clone)]
pub(crate) struct Outcome(Arc<State>);

struct State {
    failed: AtomicBool,
}

impl Drop for State {
    fn drop(&mut self) {
        stats::query(!self.failed.load(Ordering::Relaxed));
    }
}

impl Outcome {
    pub(crate) fn fail(&self) {
        self.0.failed.store(true, Ordering::Relaxed);
    }
}

/// Counts a statement's output: a command now, rows as they stream (the
/// outcome follows with the last holder). COPY FROM STDIN counts at its end
/// (see `copy_in.rs`).
pub(crate) fn output(out: QueryOutput) -> (QueryOutput, Option<Outcome>) {
    match out {
        QueryOutput::Command { tag, rows } => {
            stats::query(true);
            if writes(&tag) {
                stats::rows_written(rows.unwrap_or(0) as u64);
            }
            (QueryOutput::Command { tag, rows }, None)
        }
        QueryOutput::Transaction { .. } => {
            stats::query(true);
            (out, None)
        }
        QueryOutput::CopyIn(_) => (out, None),
        QueryOutput::Rows {
            schema,
            stream,
            tag,
        } => {
            let outcome = Outcome(Arc::new(State {
                failed: AtomicBool::new(false),
            }));
            // DML with RETURNING returns the rows it wrote.
            let stream = counting(schema.clone(), stream, outcome.clone(), writes(&tag));
            (
                QueryOutput::Rows {
                    schema,
                    stream,
                    tag,
                },
                Some(outcome),
            )
        }
        QueryOutput::CopyOut {
            schema,
            stream,
            options,
        } => {
            let outcome = Outcome(Arc::new(State {
                failed: AtomicBool::new(false),
            }));
            let stream = counting(schema.clone(), stream, outcome.clone(), false);
            (
                QueryOutput::CopyOut {
                    schema,
                    stream,
                    options,
                },
                Some(outcome),
            )
        }
    }
}

fn counting(
    schema: datafusion::arrow::datatypes::SchemaRef,
    stream: datafusion::execution::SendableRecordBatchStream,
    outcome: Outcome,
    written: bool,
) -> datafusion::execution::SendableRecordBatchStream {
    let rows = stream.inspect(move |item| match item {
        Ok(batch) => {
            let n = batch.num_rows() as u64;
            stats::rows_read(n);
            if written {
                stats::rows_written(n);
            }
        }
        Err(_) => outcome.fail(),
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_tags() {
        assert!(writes("INSERT 0"));
        assert!(writes("UPDATE"));
        assert!(writes("DELETE"));
        assert!(writes("COPY"));
        assert!(!writes("SELECT"));
        assert!(!writes("MOVE"));
        assert!(!writes("CREATE TABLE"));
        assert!(!writes(""));
    }
}

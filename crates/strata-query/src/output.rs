//! What executing a statement produces, independent of the wire protocol.

use crate::copy::{CopyIn, CopyOptions};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

pub enum QueryOutput {
    /// Rows, streamed. `tag` is the command tag without the row count
    /// (`SELECT`, or `INSERT 0` / `UPDATE` / `DELETE` for RETURNING).
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        tag: String,
    },
    /// A command without rows; `rows` is appended to the tag when present.
    Command { tag: String, rows: Option<usize> },
    /// BEGIN, COMMIT or ROLLBACK: `in_block` tells whether a transaction
    /// block is open after it (the wire frontend reports it to the client).
    Transaction { tag: String, in_block: bool },
    /// COPY FROM STDIN: the frontend feeds the client's rows to the load.
    CopyIn(Box<CopyIn>),
    /// COPY TO STDOUT: rows, to be written in the COPY format of `options`.
    CopyOut {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        options: CopyOptions,
    },
}

impl QueryOutput {
    pub fn command(tag: &str) -> Self {
        QueryOutput::Command {
            tag: tag.to_string(),
            rows: None,
        }
    }

    pub fn count(tag: &str, rows: usize) -> Self {
        QueryOutput::Command {
            tag: tag.to_string(),
            rows: Some(rows),
        }
    }
}

impl std::fmt::Debug for QueryOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryOutput::Rows { tag, schema, .. } => {
                write!(f, "Rows({tag}, {} columns)", schema.fields().len())
            }
            QueryOutput::Command { tag, rows } => write!(f, "Command({tag}, {rows:?})"),
            QueryOutput::Transaction { tag, .. } => write!(f, "Transaction({tag})"),
            QueryOutput::CopyIn(load) => write!(f, "{load:?}"),
            QueryOutput::CopyOut { options, .. } => write!(f, "CopyOut({:?})", options.format),
        }
    }
}

/// Wraps ready batches as a row output.
pub fn batch_output(schema: SchemaRef, batches: Vec<RecordBatch>, tag: &str) -> QueryOutput {
    QueryOutput::Rows {
        schema: schema.clone(),
        stream: batch_stream(schema, batches),
        tag: tag.to_string(),
    }
}

/// Ready batches as a stream.
pub fn batch_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableRecordBatchStream {
    let stream = futures::stream::iter(batches.into_iter().map(Ok));
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

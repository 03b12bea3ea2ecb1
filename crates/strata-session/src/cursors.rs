//! SQL cursors: `DECLARE name CURSOR [WITH HOLD] FOR query`, `FETCH`, `MOVE`,
//! `CLOSE`. A cursor keeps its query's running stream and hands out rows as
//! they are fetched; nothing is read ahead or materialized, except that a
//! WITH HOLD cursor is read to its end when the transaction that declared it
//! commits (it must outlive the transaction, as in Postgres), bounded by
//! `[limits] max_transaction_memory_mb`.
//!
//! Cursors scan forward only (Postgres' NO SCROLL): FETCH/MOVE backward,
//! or to a position already passed, answer 55000.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_query::output::QueryOutput;
use strata_sql::FetchDirection;
use strata_sql::sqlparser::ast;

/// The most cursors one session may hold open (each keeps a running query).
pub(crate) const MAX_CURSORS: usize = 256;

struct Cursor {
    schema: SchemaRef,
    /// Rows read from the stream but not fetched yet (a batch cut by a
    /// FETCH count, or everything, once held past its transaction).
    pending: VecDeque<RecordBatch>,
    /// The query's stream until it ends.
    stream: Option<SendableRecordBatchStream>,
    /// Rows fetched or moved over so far (the current position).
    position: u64,
    hold: bool,
    /// Declared in the transaction still open: gone at its ROLLBACK.
    in_transaction: bool,
}

impl Cursor {
    /// The next batch of at most `max` rows; None at the end.
    async fn next(&mut self, max: u64) -> Result<Option<RecordBatch>> {
        loop {
            let batch = match self.pending.pop_front() {
                Some(b) => b,
                None => match self.stream.as_mut() {
                    Some(s) => match s.next().await {
                        Some(b) => b?,
                        None => {
                            self.stream = None;
                            return Ok(None);
                        }
                    },
                    None => return Ok(None),
                },
            };
            if batch.num_rows() == 0 {
                continue;
            }
            let batch = match usize::try_from(max) {
                Ok(max) if batch.num_rows() > max => {
                    self.pending
                        .push_front(batch.slice(max, batch.num_rows() - max));
                    batch.slice(0, max)
                }
                _ => batch,
            };
            self.position += batch.num_rows() as u64;
            return Ok(Some(batch));
        }
    }

    /// Reads the rest of the stream into `pending`, up to `max_bytes`.
    async fn materialize(&mut self, name: &str, max_bytes: usize) -> Result<()> {
        let mut held: usize = self.pending.iter().map(|b| b.get_array_memory_size()).sum();
        while let Some(s) = self.stream.as_mut() {
            match s.next().await {
                Some(b) => {
                    let b = b?;
                    held = held.saturating_add(b.get_array_memory_size());
                    if held > max_bytes {
                        return Err(StrataError::ProgramLimitExceeded(format!(
                            "cursor \"{name}\" WITH HOLD must keep its rows past COMMIT and they exceed {max_bytes} bytes ([limits] max_transaction_memory_mb); fetch them before COMMIT or declare it without HOLD"
                        )));
                    }
                    self.pending.push_back(b);
                }
                None => self.stream = None,
            }
        }
        Ok(())
    }
}

/// How a cursor was declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// WITH HOLD: it outlives its transaction.
    pub hold: bool,
    /// BINARY: FETCH returns its rows in binary format (simple protocol).
    pub binary: bool,
}

/// What `pg_cursors` shows of an open cursor.
#[derive(Debug, Clone)]
pub(crate) struct CursorInfo {
    pub(crate) name: String,
    /// The query string that declared it, verbatim.
    pub(crate) statement: String,
    pub(crate) options: Options,
    /// When it was declared (µs since the epoch).
    pub(crate) created: i64,
}

/// The cursor a `DECLARE` statement declares: name, options, query.
pub(crate) fn declaration(stmts: Vec<ast::Declare>) -> Result<(String, Options, Box<ast::Query>)> {
    let [decl]: [ast::Declare; 1] = stmts
        .try_into()
        .map_err(|_| StrataError::unsupported("DECLARE declares one cursor at a time"))?;
    let (Some(ast::DeclareType::Cursor), Some(query)) = (&decl.declare_type, decl.for_query) else {
        return Err(StrataError::unsupported(
            "only DECLARE name CURSOR FOR query is supported",
        ));
    };
    if decl.scroll == Some(true) {
        return Err(StrataError::unsupported(
            "SCROLL cursors are not supported; Strata cursors scan forward only (NO SCROLL)",
        ));
    }
    let [name]: [ast::Ident; 1] = decl
        .names
        .try_into()
        .map_err(|_| StrataError::syntax("DECLARE names one cursor"))?;
    Ok((
        strata_sql::normalize_ident(&name),
        Options {
            hold: decl.hold == Some(true),
            binary: decl.binary == Some(true),
        },
        query,
    ))
}

type Shared = Arc<tokio::sync::Mutex<Cursor>>;

/// A session's open cursors by name, with their columns (readable while a
/// FETCH holds the cursor).
#[derive(Default)]
pub(crate) struct Cursors(Mutex<HashMap<String, Entry>>);

/// An open cursor: its columns and what pg_cursors shows, readable without
/// waiting for a FETCH that holds the cursor itself.
struct Entry {
    schema: SchemaRef,
    cursor: Shared,
    info: CursorInfo,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursors")
            .field("open", &self.0.lock().len())
            .finish()
    }
}

fn missing(name: &str) -> StrataError {
    StrataError::InvalidCursorName(format!("cursor \"{name}\" does not exist"))
}

fn forward_only() -> StrataError {
    StrataError::ObjectNotInPrerequisiteState(
        "cursor can only scan forward (Strata cursors are NO SCROLL)".into(),
    )
}

impl Cursors {
    pub(crate) fn declare(
        &self,
        name: &str,
        statement: &str,
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        options: Options,
    ) -> Result<()> {
        let mut open = self.0.lock();
        if open.contains_key(name) {
            return Err(StrataError::DuplicateCursor(format!(
                "cursor \"{name}\" already exists"
            )));
        }
        if open.len() >= MAX_CURSORS {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "a session can have at most {MAX_CURSORS} cursors open; close some"
            )));
        }
        // A BINARY cursor's rows say so in their schema: the wire frontend
        // sends them in binary where the client asked for no format.
        let schema = if options.binary {
            let mut meta = schema.metadata().clone();
            meta.insert(strata_catalog::BINARY_RESULT_KEY.into(), "1".into());
            Arc::new(schema.as_ref().clone().with_metadata(meta))
        } else {
            schema
        };
        let cursor = Cursor {
            schema,
            pending: VecDeque::new(),
            stream: Some(stream),
            position: 0,
            hold: options.hold,
            in_transaction: true,
        };
        let info = CursorInfo {
            name: name.to_string(),
            statement: statement.to_string(),
            options,
            created: strata_catalog::now_micros(),
        };
        let entry = Entry {
            schema: cursor.schema.clone(),
            cursor: Arc::new(tokio::sync::Mutex::new(cursor)),
            info,
        };
        open.insert(name.to_string(), entry);
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Shared> {
        self.0
            .lock()
            .get(name)
            .map(|e| e.cursor.clone())
            .ok_or_else(|| missing(name))
    }

    /// The columns a FETCH from the cursor returns (for Describe).
    pub(crate) fn schema(&self, name: &str) -> Option<SchemaRef> {
        self.0.lock().get(name).map(|e| e.schema.clone())
    }

    /// The open cursors, for `pg_cursors`.
    pub(crate) fn list(&self) -> Vec<CursorInfo> {
        self.0.lock().values().map(|e| e.info.clone()).collect()
    }

    /// FETCH (rows streamed from the cursor as the client reads them) or
    /// MOVE (rows skipped, counted).
    pub(crate) async fn fetch(
        &self,
        name: &str,
        direction: FetchDirection,
        move_only: bool,
    ) -> Result<QueryOutput> {
        let shared = self.get(name)?;
        let mut cursor = shared.lock_owned().await;
        // How many rows to skip, then how many to return.
        let (skip, take) = match direction {
            FetchDirection::Forward(n) => (0, n),
            FetchDirection::All => (0, u64::MAX),
            FetchDirection::Relative(n) if n > 0 => (n as u64 - 1, 1),
            FetchDirection::Absolute(n) if n > 0 && n as u64 > cursor.position => {
                (n as u64 - cursor.position - 1, 1)
            }
            FetchDirection::Last => (u64::MAX, 0),
            _ => return Err(forward_only()),
        };
        let mut skipped = 0u64;
        while skipped < skip {
            match cursor.next(skip - skipped).await? {
                Some(b) => skipped += b.num_rows() as u64,
                None => break,
            }
        }
        if move_only {
            let mut moved = 0u64;
            while moved < take {
                match cursor.next(take - moved).await? {
                    Some(b) => moved += b.num_rows() as u64,
                    None => break,
                }
            }
            let n = if take == 0 { skipped } else { moved };
            return Ok(QueryOutput::count("MOVE", n as usize));
        }
        let schema = cursor.schema.clone();
        // The cursor stays locked while its rows stream out; a FETCH that is
        // not read to its end leaves the rest for the next one.
        let rows = futures::stream::unfold((cursor, take), |(mut cursor, left)| async move {
            if left == 0 {
                return None;
            }
            match cursor.next(left).await {
                Ok(Some(b)) => {
                    let left = left - b.num_rows() as u64;
                    Some((Ok(b), (cursor, left)))
                }
                Ok(None) => None,
                Err(e) => Some((
                    Err(datafusion::error::DataFusionError::External(Box::new(e))),
                    (cursor, 0),
                )),
            }
        });
        Ok(QueryOutput::Rows {
            schema: schema.clone(),
            stream: Box::pin(RecordBatchStreamAdapter::new(schema, rows)),
            tag: "FETCH".into(),
        })
    }

    pub(crate) fn close(&self, name: Option<&str>) -> Result<()> {
        let mut open = self.0.lock();
        match name {
            None => open.clear(),
            Some(name) => {
                open.remove(name).ok_or_else(|| missing(name))?;
            }
        }
        Ok(())
    }

    /// Before a transaction's COMMIT: its WITH HOLD cursors read their rows,
    /// since they outlive it. An error here fails the COMMIT, and every
    /// cursor the transaction declared closes (it rolls back).
    pub(crate) async fn hold_for_commit(&self, max_bytes: usize) -> Result<()> {
        let result = self.materialize_held(max_bytes).await;
        if result.is_err() {
            self.end_transaction(false);
        }
        result
    }

    async fn materialize_held(&self, max_bytes: usize) -> Result<()> {
        let held: Vec<(String, Shared)> = self
            .0
            .lock()
            .iter()
            .map(|(n, e)| (n.clone(), e.cursor.clone()))
            .collect();
        for (name, shared) in held {
            let mut cursor = shared.lock().await;
            if cursor.in_transaction && cursor.hold {
                cursor.materialize(&name, max_bytes).await?;
            }
        }
        Ok(())
    }

    /// The transaction ended: at COMMIT its WITH HOLD cursors stay (already
    /// materialized) and the others close; at ROLLBACK every cursor it
    /// declared closes.
    pub(crate) fn end_transaction(&self, committed: bool) {
        self.0.lock().retain(|_, e| match e.cursor.try_lock() {
            Ok(mut c) => {
                if !c.in_transaction {
                    return true;
                }
                let keep = committed && c.hold;
                c.in_transaction = false;
                keep
            }
            // A FETCH still streaming: it ends with its statement, keep it.
            Err(_) => true,
        });
    }
}

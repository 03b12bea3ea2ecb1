//! COPY: a statement's options, and where its rows come from or go.
//!
//! The formats themselves (text, CSV, binary) are the wire frontend's: it
//! splits the client's CopyData into rows and decodes each field. This module
//! turns `COPY t FROM STDIN` into a [`CopyIn`], which takes those rows one at a
//! time, checks each as INSERT would, and writes them all when the copy ends,
//! as one statement: nothing is visible before, and a failure anywhere writes
//! nothing. `COPY t | (query) TO STDOUT` becomes a row stream like a SELECT's.

use crate::context::QueryContext;
use crate::dml::{column_named, complete_row, default_src, partition, writable_table};
use crate::output::QueryOutput;
use crate::prepared::DefaultSrc;
use crate::values::coerce;
use crate::write::{Put, duplicate_key, visible_row_exists, write_rows};
use datafusion::scalar::ScalarValue;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{ColumnDef, TableDef};
use strata_common::{Result, StrataError, keys};
use strata_sql::normalize_ident;
use strata_sql::sqlparser::ast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// COPY's options with Postgres' defaults for the format.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: char,
    /// The string that stands for NULL (`\N` in text, empty in CSV).
    pub null: String,
    /// CSV and text: the first line holds column names (skipped on input).
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyOptions {
    pub(crate) fn parse(
        options: &[ast::CopyOption],
        legacy: &[ast::CopyLegacyOption],
    ) -> Result<Self> {
        let mut format = CopyFormat::Text;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) =
            (None, None, false, None, None);
        for o in options {
            match o {
                ast::CopyOption::Format(f) => {
                    format = match f.value.to_lowercase().as_str() {
                        "text" => CopyFormat::Text,
                        "csv" => CopyFormat::Csv,
                        "binary" => CopyFormat::Binary,
                        other => {
                            return Err(StrataError::InvalidParameterValue(format!(
                                "COPY format \"{other}\" not recognized"
                            )));
                        }
                    }
                }
                ast::CopyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyOption::Null(s) => null = Some(s.clone()),
                ast::CopyOption::Header(h) => header = *h,
                ast::CopyOption::Quote(c) => quote = Some(*c),
                ast::CopyOption::Escape(c) => escape = Some(*c),
                ast::CopyOption::Freeze(_) => {}
                ast::CopyOption::Encoding(e) => check_encoding(e)?,
                other => {
                    return Err(StrataError::unsupported(format!(
                        "COPY option {other} is not supported"
                    )));
                }
            }
        }
        for o in legacy {
            match o {
                ast::CopyLegacyOption::Binary => format = CopyFormat::Binary,
                ast::CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyLegacyOption::Null(s) => null = Some(s.clone()),
                ast::CopyLegacyOption::Header => header = true,
                ast::CopyLegacyOption::Csv(csv) => {
                    format = CopyFormat::Csv;
                    for c in csv {
                        match c {
                            ast::CopyLegacyCsvOption::Header => header = true,
                            ast::CopyLegacyCsvOption::Quote(q) => quote = Some(*q),
                            ast::CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            other => {
                                return Err(StrataError::unsupported(format!(
                                    "COPY option {other} is not supported"
                                )));
                            }
                        }
                    }
                }
                other => {
                    return Err(StrataError::unsupported(format!(
                        "COPY option {other} is not supported"
                    )));
                }
            }
        }
        let csv = format == CopyFormat::Csv;
        if format == CopyFormat::Binary
            && (delimiter.is_some() || null.is_some() || header || quote.is_some())
        {
            return Err(StrataError::syntax(
                "cannot specify DELIMITER, NULL, HEADER or QUOTE in BINARY mode",
            ));
        }
        if !csv && (quote.is_some() || escape.is_some()) {
            return Err(StrataError::unsupported(
                "COPY quote and escape are available only in CSV mode",
            ));
        }
        let delimiter = delimiter.unwrap_or(if csv { ',' } else { '\t' });
        if !delimiter.is_ascii() || matches!(delimiter, '\r' | '\n' | '\\') {
            return Err(StrataError::InvalidParameterValue(
                "COPY delimiter must be a single one-byte character other than newline, carriage return or backslash".into(),
            ));
        }
        let quote = quote.unwrap_or('"');
        let escape = escape.unwrap_or(quote);
        if csv && (!quote.is_ascii() || !escape.is_ascii() || quote == delimiter) {
            return Err(StrataError::InvalidParameterValue(
                "COPY quote and escape must be one-byte characters, and the quote differ from the delimiter".into(),
            ));
        }
        Ok(CopyOptions {
            format,
            delimiter,
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
            escape,
        })
    }
}

fn check_encoding(e: &str) -> Result<()> {
    match e.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
        "UTF8" | "UNICODE" | "SQLASCII" => Ok(()),
        _ => Err(StrataError::unsupported(format!(
            "COPY encoding \"{e}\" is not supported; Strata's data is UTF8"
        ))),
    }
}

/// What a COPY statement asks for.
pub enum CopyRequest {
    /// `COPY t [(cols)] FROM STDIN`: a load (see [`CopyIn::new`]).
    In {
        table: ast::ObjectName,
        columns: Vec<ast::Ident>,
        options: CopyOptions,
    },
    /// `COPY t | (query) TO STDOUT`: the query whose rows are written.
    Out { query: String, options: CopyOptions },
}

/// Reads a COPY statement: its options, and where its rows come from or go.
pub fn request(stmt: &ast::Statement) -> Result<CopyRequest> {
    let ast::Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        ..
    } = stmt
    else {
        return Err(StrataError::internal("not a COPY statement"));
    };
    let options = CopyOptions::parse(options, legacy_options)?;
    match (to, target) {
        (false, ast::CopyTarget::Stdin) => {
            let ast::CopySource::Table {
                table_name,
                columns,
            } = source
            else {
                return Err(StrataError::syntax("COPY FROM needs a table, not a query"));
            };
            Ok(CopyRequest::In {
                table: table_name.clone(),
                columns: columns.clone(),
                options,
            })
        }
        (true, ast::CopyTarget::Stdout) => Ok(CopyRequest::Out {
            query: copy_out_query(source),
            options,
        }),
        _ => Err(StrataError::unsupported(
            "COPY to or from a file or program on the server is not supported; use COPY ... FROM STDIN or TO STDOUT (psql's \\copy)",
        )),
    }
}

/// `COPY t [(cols)] TO STDOUT` reads like `SELECT cols FROM t`, and
/// `COPY (query) TO STDOUT` like the query, with the reader's scoping and
/// privileges.
fn copy_out_query(source: &ast::CopySource) -> String {
    match source {
        ast::CopySource::Table {
            table_name,
            columns,
        } => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| format!("\"{}\"", normalize_ident(c).replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("SELECT {cols} FROM {table_name}")
        }
        ast::CopySource::Query(q) => q.to_string(),
    }
}

/// A `COPY ... FROM STDIN` in progress: the rows read so far, checked and
/// waiting for the end of the copy to be written together.
pub struct CopyIn {
    table: Arc<TableDef>,
    partition: String,
    targets: Vec<usize>,
    defaults: Vec<DefaultSrc>,
    options: CopyOptions,
    rows: Vec<Put>,
    /// The input line of each key copied so far, for duplicates and errors.
    lines: HashMap<Vec<u8>, u64>,
    /// About how much memory `rows` and `lines` take, against `limit`.
    held: usize,
    limit: usize,
}

impl std::fmt::Debug for CopyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyIn")
            .field("table", &self.table.qualified_name())
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl CopyIn {
    /// A load into `table_name` whose rows may take `limit` bytes in all.
    pub fn new(
        session: &QueryContext,
        table_name: &ast::ObjectName,
        columns: &[ast::Ident],
        options: CopyOptions,
        limit: usize,
    ) -> Result<Self> {
        let table = writable_table(session, table_name)?;
        let targets = if columns.is_empty() {
            // Without a column list, a table's generated `_rowid` key is not
            // among the columns a row brings (as in INSERT).
            (0..table.columns.len())
                .filter(|i| !(table.has_generated_key() && *i == table.pk_index()))
                .collect()
        } else {
            columns
                .iter()
                .map(|c| column_named(&table, &normalize_ident(c)))
                .collect::<Result<Vec<_>>>()?
        };
        let defaults = table
            .columns
            .iter()
            .map(default_src)
            .collect::<Result<_>>()?;
        Ok(CopyIn {
            partition: partition(session, &table),
            table,
            targets,
            defaults,
            options,
            rows: vec![],
            lines: HashMap::new(),
            held: 0,
            limit,
        })
    }

    pub fn options(&self) -> &CopyOptions {
        &self.options
    }

    /// The columns each input row holds, in order.
    pub fn columns(&self) -> Vec<&ColumnDef> {
        self.targets
            .iter()
            .map(|i| &self.table.columns[*i])
            .collect()
    }

    /// Where an error happened, as Postgres words its CONTEXT line.
    pub fn context(&self, line: u64, column: Option<usize>) -> String {
        match column.and_then(|j| self.targets.get(j)) {
            Some(i) => format!(
                "COPY {}, line {line}, column {}",
                self.table.name, self.table.columns[*i].name
            ),
            None => format!("COPY {}, line {line}", self.table.name),
        }
    }

    /// Takes one input row: a value (a string to parse, or an already typed
    /// value) or NULL for each of [`columns`](Self::columns).
    pub async fn push(
        &mut self,
        session: &QueryContext,
        line: u64,
        values: Vec<Option<ScalarValue>>,
    ) -> Result<()> {
        let mut src = Vec::with_capacity(values.len());
        for (j, v) in values.into_iter().enumerate() {
            let col = &self.table.columns[self.targets[j]];
            let v = v.unwrap_or(ScalarValue::Null);
            src.push(Some(
                coerce(col, v).map_err(|e| e.with_context(self.context(line, Some(j))))?,
            ));
        }
        let row = complete_row(session, &self.table, &self.targets, &self.defaults, src)
            .await
            .map_err(|e| e.with_context(self.context(line, None)))?;
        let pk = &row[self.table.pk_index()];
        let key = keys::row_key(self.table.id, &self.partition, pk)?;
        if self.lines.insert(key.clone(), line).is_some() {
            return Err(duplicate_key(&self.table, pk).with_context(self.context(line, None)));
        }
        // The key twice (row and line map), the values, and the containers.
        self.held += 2 * key.len()
            + row.iter().map(ScalarValue::size).sum::<usize>()
            + std::mem::size_of::<Put>()
            + 48;
        if self.held > self.limit {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "COPY holds its rows until it ends and they have reached copy_memory_limit ({} bytes); split the data into smaller COPYs or raise copy_memory_limit",
                self.limit
            ))
            .with_context(self.context(line, None)));
        }
        self.rows.push((key, row));
        Ok(())
    }

    /// Ends the copy: checks no key exists already and writes every row in
    /// one batch (or stages them in the open transaction block).
    pub async fn finish(self, session: &QueryContext) -> Result<QueryOutput> {
        let table = &self.table;
        // A table dropped (or re-created) while the rows were coming in.
        match session.engine.catalog.table(&table.namespace, &table.name) {
            Some(t) if t.id == table.id => {}
            _ => return Err(StrataError::UndefinedTable(table.qualified_name())),
        }
        let lock = session.engine.write_lock(table.id);
        let _guard = lock.lock().await;
        // Altered while the rows came in: they were parsed by columns the
        // table may no longer have, and the data cannot be read again.
        crate::dml::check_still_current(session, table).map_err(|_| {
            StrataError::SerializationFailure(format!(
                "table {} was altered during COPY; run the COPY again",
                table.qualified_name()
            ))
        })?;
        for (key, row) in &self.rows {
            if visible_row_exists(session, table, &self.partition, key)? {
                let line = self.lines.get(key).copied().unwrap_or_default();
                return Err(duplicate_key(table, &row[table.pk_index()])
                    .with_context(self.context(line, None)));
            }
        }
        write_rows(session, table, &self.partition, &self.rows, &[]).await?;
        Ok(QueryOutput::count("COPY", self.rows.len()))
    }
}

//! sqllogictest suite: runs every `tests/slt/*.slt` file (at the workspace
//! root) against a real `strata` server over the Postgres wire protocol.
//!
//! Every file runs twice, once per protocol, each time on a fresh server:
//!
//! * `simple`: each record is sent with the simple query protocol
//!   (`Client::simple_query`); values arrive as text exactly as the server
//!   formats them.
//! * `extended`: each record is prepared (Parse/Describe) and executed
//!   (Bind/Execute); tokio-postgres asks for binary results, which
//!   [`render_binary`] turns back into Postgres text format, so one expected
//!   output serves both protocols.
//!
//! Conventions for the .slt files:
//! * NULL is rendered as `NULL`, an empty string as `(empty)`, booleans as
//!   `t`/`f` (Postgres text format).
//! * Errors render as `SQLSTATE: SEVERITY: message`, so `statement error 23505`
//!   (a regex on the message) and `statement error (23505)` (sqllogictest's
//!   SQLSTATE form) both work.
//! * The labels `simple` / `extended` are set, so a record may use
//!   `onlyif simple` / `skipif extended` when a protocol difference is
//!   intended.
//!
//! Set `STRATA_SLT=<substring>` to run only matching files.
//!
//! A failing record does not stop its file: every record runs and every
//! failure is reported (up to a cap per file), and every file runs even if an
//! earlier one failed. The test fails at the end with the full list.

mod common;

use std::error::Error as StdError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Record, Runner};
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{Client, SimpleQueryMessage};

use common::TestServer;

/// Upper bound for one SQL record; a hung statement fails instead of hanging
/// the suite.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for a whole file.
const FILE_TIMEOUT: Duration = Duration::from_secs(600);
/// Stop listing failures of one file after this many (later ones are usually
/// consequences of the first).
const MAX_FAILURES_PER_FILE: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_simple_protocol() {
    run_all(Protocol::Simple).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_extended_protocol() {
    run_all(Protocol::Extended).await;
}

/// Which wire protocol flavour the engine uses for every record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Simple,
    Extended,
}

impl Protocol {
    fn label(self) -> &'static str {
        match self {
            Protocol::Simple => "simple",
            Protocol::Extended => "extended",
        }
    }
}

/// `tests/slt` at the workspace root.
fn slt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/slt")
}

/// All `.slt` files, sorted, so runs are reproducible. Setting `STRATA_SLT`
/// to a substring runs only the files whose name contains it (e.g.
/// `STRATA_SLT=ddl cargo test --test slt`).
fn slt_files() -> Vec<PathBuf> {
    let dir = slt_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read slt directory {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .collect();
    if let Ok(filter) = std::env::var("STRATA_SLT") {
        files.retain(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(filter.as_str()))
        });
    }
    files.sort();
    files
}

/// Runs every file with `protocol`, each on a fresh server, and panics at the
/// end listing every failure.
async fn run_all(protocol: Protocol) {
    let files = slt_files();
    assert!(
        !files.is_empty(),
        "no .slt files found in {}",
        slt_dir().display()
    );

    let mut failed_files = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        eprintln!("slt [{}] {name} ...", protocol.label());
        let failures = run_file(file, protocol).await;
        if failures.is_empty() {
            eprintln!("slt [{}] {name}: ok", protocol.label());
        } else {
            eprintln!(
                "slt [{}] {name}: {} failure(s)",
                protocol.label(),
                failures.len()
            );
            failed_files.push((name, failures));
        }
    }

    if !failed_files.is_empty() {
        let mut report = format!(
            "{} of {} slt files failed with the {} protocol:\n",
            failed_files.len(),
            files.len(),
            protocol.label()
        );
        for (name, failures) in &failed_files {
            report.push_str(&format!(
                "\n=== {name} ({} failure(s)) ===\n",
                failures.len()
            ));
            for failure in failures {
                report.push_str(failure);
                report.push('\n');
            }
        }
        panic!("{report}");
    }
}

/// Runs one file on a fresh server; returns the failures (empty = pass).
async fn run_file(file: &Path, protocol: Protocol) -> Vec<String> {
    let mut server = match TestServer::try_start().await {
        Ok(server) => server,
        Err(e) => return vec![format!("server failed to start: {e}")],
    };

    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(records) => records,
        Err(e) => return vec![format!("cannot parse {}: {e}", file.display())],
    };

    let port = server.port();
    let mut runner = Runner::new(move || StrataDb::connect(port, protocol));
    runner.add_label(protocol.label());

    let mut failures = Vec::new();
    let run = async {
        for record in records {
            if let Record::Halt { .. } = record {
                break;
            }
            if let Err(e) = runner.run_async(record).await {
                failures.push(e.display(false).to_string());
                if failures.len() >= MAX_FAILURES_PER_FILE {
                    failures.push(format!(
                        "(stopped after {MAX_FAILURES_PER_FILE} failures in this file)"
                    ));
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(FILE_TIMEOUT, run).await.is_err() {
        failures.push(format!("file did not finish within {FILE_TIMEOUT:?}"));
    }
    runner.shutdown_async().await;

    // A file must never take the server down.
    if !server.is_running() {
        failures.push(format!("the server process died\n{}", server.log_tail()));
    } else if let Some(last) = failures.last_mut() {
        // Keep the tail of the log next to the failures for diagnosis.
        last.push_str(&server.log_tail());
    }
    failures
}

/// Error returned by the engine: the SQLSTATE (when the server sent one)
/// leads the message so that `statement error 23505` matches it.
#[derive(Debug)]
struct SltError {
    sqlstate: Option<String>,
    message: String,
}

impl fmt::Display for SltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sqlstate {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for SltError {}

impl From<tokio_postgres::Error> for SltError {
    fn from(err: tokio_postgres::Error) -> Self {
        let sqlstate = err.code().map(|c| c.code().to_string());
        let message = match err.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => err.to_string(),
        };
        SltError { sqlstate, message }
    }
}

impl SltError {
    fn other(message: impl Into<String>) -> Self {
        SltError {
            sqlstate: None,
            message: message.into(),
        }
    }
}

/// One connection to the server under test.
struct StrataDb {
    client: Client,
    protocol: Protocol,
}

impl StrataDb {
    async fn connect(port: u16, protocol: Protocol) -> Result<StrataDb, SltError> {
        let client = common::connect(port).await.map_err(SltError::other)?;
        Ok(StrataDb { client, protocol })
    }

    async fn run_simple(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let messages = self.client.simple_query(sql).await?;
        let mut columns: Option<usize> = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    columns.get_or_insert(row.len());
                    let mut out = Vec::with_capacity(row.len());
                    for i in 0..row.len() {
                        out.push(cell(row.try_get(i)?));
                    }
                    rows.push(out);
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn run_extended(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let statement = self.client.prepare(sql).await?;
        if statement.columns().is_empty() {
            let count = self.client.execute(&statement, &[]).await?;
            return Ok(DBOutput::StatementComplete(count));
        }
        let types = statement
            .columns()
            .iter()
            .map(|c| column_type(c.type_()))
            .collect();
        let mut rows = Vec::new();
        for row in self.client.query(&statement, &[]).await? {
            let mut out = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let value: PgText = row.try_get(i)?;
                out.push(cell(value.0.as_deref()));
            }
            rows.push(out);
        }
        Ok(DBOutput::Rows { types, rows })
    }
}

#[async_trait]
impl AsyncDB for StrataDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let result = match self.protocol {
            Protocol::Simple => tokio::time::timeout(STATEMENT_TIMEOUT, self.run_simple(sql)).await,
            Protocol::Extended => {
                tokio::time::timeout(STATEMENT_TIMEOUT, self.run_extended(sql)).await
            }
        };
        result.unwrap_or_else(|_| {
            Err(SltError::other(format!(
                "statement timed out after {STATEMENT_TIMEOUT:?}"
            )))
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "strata"
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }

    fn error_sql_state(err: &Self::Error) -> Option<String> {
        err.sqlstate.clone()
    }
}

/// sqllogictest rendering of one value.
fn cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_string(),
        Some("") => "(empty)".to_string(),
        Some(text) => text.to_string(),
    }
}

/// sqllogictest column letter for a result type (informational only: the
/// runner's default column validator does not compare types).
fn column_type(ty: &Type) -> DefaultColumnType {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => DefaultColumnType::Integer,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DefaultColumnType::FloatingPoint,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

// ---------------------------------------------------------------------------
// Binary result values -> Postgres text format
// ---------------------------------------------------------------------------

/// A result value of any type, decoded from the binary format and rendered the
/// way the server renders it in the text format (`None` = SQL NULL).
///
/// Integers, booleans, strings, numerics, bytea, UUIDs, arrays and floats
/// (shortest round-trip digits, `34`, `1.5`, `1e+20`) follow Postgres' text
/// output, through the same formatter the server uses, so both protocols are
/// checked against one expectation.
struct PgText(Option<String>);

impl<'a> FromSql<'a> for PgText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        render_binary(ty, raw).map(|s| PgText(Some(s)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(PgText(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

fn render_binary(ty: &Type, raw: &[u8]) -> Result<String, BoxError> {
    Ok(match *ty {
        Type::BOOL => if bool::from_sql(ty, raw)? { "t" } else { "f" }.to_string(),
        Type::CHAR => (i8::from_sql(ty, raw)? as u8 as char).to_string(),
        Type::INT2 => i16::from_sql(ty, raw)?.to_string(),
        Type::INT4 => i32::from_sql(ty, raw)?.to_string(),
        Type::INT8 => i64::from_sql(ty, raw)?.to_string(),
        Type::OID => u32::from_sql(ty, raw)?.to_string(),
        Type::FLOAT4 => format_f32(f32::from_sql(ty, raw)?),
        Type::FLOAT8 => format_f64(f64::from_sql(ty, raw)?),
        Type::NUMERIC => decode_numeric(raw)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::JSON => {
            std::str::from_utf8(raw)?.to_string()
        }
        // jsonb binary format: a version byte (1) then the JSON text.
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => std::str::from_utf8(text)?.to_string(),
            _ => return Err("unsupported jsonb binary version".into()),
        },
        Type::BYTEA => format_bytea(raw),
        Type::UUID => uuid::Uuid::from_sql(ty, raw)?.to_string(),
        Type::DATE => chrono::NaiveDate::from_sql(ty, raw)?
            .format("%Y-%m-%d")
            .to_string(),
        Type::TIME => format_time(chrono::NaiveTime::from_sql(ty, raw)?),
        Type::TIMESTAMP => {
            let t = chrono::NaiveDateTime::from_sql(ty, raw)?;
            format!("{} {}", t.format("%Y-%m-%d"), format_time(t.time()))
        }
        Type::TIMESTAMPTZ => {
            let t = chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?.naive_utc();
            format!("{} {}+00", t.format("%Y-%m-%d"), format_time(t.time()))
        }
        Type::INTERVAL => decode_interval(raw)?,
        _ => match ty.kind() {
            Kind::Array(_) => {
                let items = Vec::<PgText>::from_sql(ty, raw)?;
                format_array(&items)
            }
            // Unknown type: show it readably rather than failing the record.
            _ => match std::str::from_utf8(raw) {
                Ok(text) => format!("<{}:{text}>", ty.name()),
                Err(_) => format!("<{}:{}>", ty.name(), format_bytea(raw)),
            },
        },
    })
}

/// A time of day as Postgres prints it: the fraction of a second only when it
/// is not zero, without trailing zeros.
fn format_time(t: chrono::NaiveTime) -> String {
    let text = t.format("%H:%M:%S%.6f").to_string();
    match text.split_once('.') {
        Some((hms, frac)) if frac.trim_end_matches('0').is_empty() => hms.to_string(),
        Some(_) => text.trim_end_matches('0').to_string(),
        None => text,
    }
}

/// Float8 text as Postgres prints it (extra_float_digits = 1).
fn format_f64(v: f64) -> String {
    strata_sql::pgtext::float8_text(v)
}

/// Float4 text as Postgres prints it.
fn format_f32(v: f32) -> String {
    strata_sql::pgtext::float4_text(v)
}

/// bytea in Postgres' default `hex` output format.
fn format_bytea(raw: &[u8]) -> String {
    let mut out = String::with_capacity(2 + raw.len() * 2);
    out.push_str("\\x");
    for b in raw {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A one-dimensional array in Postgres text format: `{1,2,NULL}`, with
/// elements quoted when Postgres would quote them.
fn format_array(items: &[PgText]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match &item.0 {
            None => out.push_str("NULL"),
            Some(text) => {
                let needs_quotes = text.is_empty()
                    || text.eq_ignore_ascii_case("null")
                    || text
                        .chars()
                        .any(|c| matches!(c, '"' | '{' | '}' | ',' | '\\') || c.is_whitespace());
                if needs_quotes {
                    out.push('"');
                    for c in text.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(text);
                }
            }
        }
    }
    out.push('}');
    out
}

/// Decodes Postgres' binary NUMERIC (base-10000 digits) into its text form,
/// keeping the display scale (`1.50` stays `1.50`).
fn decode_numeric(raw: &[u8]) -> Result<String, BoxError> {
    fn read_u16(raw: &[u8], at: usize) -> Result<u16, BoxError> {
        raw.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".into())
    }
    let ndigits = read_u16(raw, 0)? as usize;
    let weight = read_u16(raw, 2)? as i16 as i64;
    let sign = read_u16(raw, 4)?;
    let dscale = read_u16(raw, 6)? as usize;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".to_string()),
        0xD000 => return Ok("Infinity".to_string()),
        0xF000 => return Ok("-Infinity".to_string()),
        other => return Err(format!("bad numeric sign {other:#x}").into()),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        digits.push(read_u16(raw, 8 + 2 * i)?);
    }
    // Digit at base-10000 position `i` (0 = most significant, may be out of
    // range, which means zero).
    let digit = |i: i64| -> u16 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            0
        }
    };

    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                out.push_str(&digit(i).to_string());
            } else {
                out.push_str(&format!("{:04}", digit(i)));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    // "-0" is not a Postgres rendering.
    if out
        .trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
        && out.starts_with('-')
    {
        out.remove(0);
    }
    Ok(out)
}

/// Decodes a binary INTERVAL into Postgres' default (`postgres` style) text,
/// e.g. `1 year 2 mons 3 days 04:05:06`.
fn decode_interval(raw: &[u8]) -> Result<String, BoxError> {
    if raw.len() != 16 {
        return Err("bad interval length".into());
    }
    let micros = i64::from_be_bytes(raw[0..8].try_into()?);
    let days = i32::from_be_bytes(raw[8..12].try_into()?);
    let months = i32::from_be_bytes(raw[12..16].try_into()?);

    let mut parts = Vec::new();
    let (years, mons) = (months / 12, months % 12);
    let plural = |n: i64, unit: &str, units: &str| {
        format!("{n} {}", if n == 1 || n == -1 { unit } else { units })
    };
    if years != 0 {
        parts.push(plural(years as i64, "year", "years"));
    }
    if mons != 0 {
        parts.push(plural(mons as i64, "mon", "mons"));
    }
    if days != 0 {
        parts.push(plural(days as i64, "day", "days"));
    }
    if micros != 0 || parts.is_empty() {
        let sign = if micros < 0 { "-" } else { "" };
        let abs = micros.unsigned_abs();
        let (secs, frac) = (abs / 1_000_000, abs % 1_000_000);
        let mut time = format!(
            "{sign}{:02}:{:02}:{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        if frac != 0 {
            let f = format!("{frac:06}");
            time.push('.');
            time.push_str(f.trim_end_matches('0'));
        }
        parts.push(time);
    }
    Ok(parts.join(" "))
}

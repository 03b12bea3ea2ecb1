//! The one error type Strata's crates return. Each variant knows its Postgres
//! SQLSTATE, so the wire frontend never has to guess from message text.

use thiserror::Error;

pub type Result<T, E = StrataError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Error)]
pub enum StrataError {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    FeatureNotSupported(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("relation \"{0}\" does not exist")]
    UndefinedTable(String),
    #[error("{0}")]
    UndefinedColumn(String),
    #[error("namespace \"{0}\" does not exist")]
    UndefinedNamespace(String),
    #[error("relation \"{0}\" already exists")]
    DuplicateTable(String),
    #[error("namespace \"{0}\" already exists")]
    DuplicateNamespace(String),
    #[error("{0}")]
    DuplicateColumn(String),
    #[error("{0}")]
    InvalidTableDefinition(String),
    #[error("{0}")]
    ReservedName(String),
    #[error("{0}")]
    DependentObjects(String),
    #[error("{0}")]
    UniqueViolation(String),
    #[error("{0}")]
    NotNullViolation(String),
    #[error("{0}")]
    InvalidText(String),
    #[error("{0}")]
    NumericOutOfRange(String),
    #[error("{0}")]
    StringTooLong(String),
    #[error("{0}")]
    DivisionByZero(String),
    #[error("{0}")]
    DatatypeMismatch(String),
    #[error("{0}")]
    UndefinedFunction(String),
    #[error("{0}")]
    AmbiguousColumn(String),
    #[error("{0}")]
    InsufficientPrivilege(String),
    #[error("{0}")]
    InvalidAuthorization(String),
    #[error("{0}")]
    TooManyConnections(String),
    #[error("canceling statement due to user request")]
    QueryCanceled,
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,
    #[error("{0}")]
    BadCopyFormat(String),
    #[error("{0}")]
    CantChangeRuntimeParam(String),
    #[error("{0}")]
    ProgramLimitExceeded(String),
    #[error("{0}")]
    ActiveSqlTransaction(String),
    #[error("{0}")]
    DuplicatePreparedStatement(String),
    #[error("{0}")]
    InvalidSqlStatementName(String),
    /// The client ended a COPY FROM STDIN with CopyFail.
    #[error("{0}")]
    CopyFailed(String),
    /// An error with where it happened, sent as the ErrorResponse's CONTEXT
    /// field (`COPY notes, line 3, column body`).
    #[error("{source}")]
    WithContext {
        source: Box<StrataError>,
        context: String,
    },
    #[error("{0}")]
    ProtocolViolation(String),
    #[error("{0}")]
    UndefinedObject(String),
    #[error("{0}")]
    DuplicateObject(String),
    #[error("{0}")]
    InvalidPassword(String),
    #[error("{0}")]
    ObjectInUse(String),
    #[error("{0}")]
    ObjectNotInPrerequisiteState(String),
    #[error("current transaction is aborted, commands ignored until end of transaction block")]
    InFailedTransaction,
    /// A concurrent change won (another ALTER of the same table, a job's
    /// definition changed under it); retrying the statement is safe.
    #[error("{0}")]
    SerializationFailure(String),
    /// The table a statement was planned against was altered or dropped
    /// before the statement took its write lock. The session plans the
    /// statement again and retries it; a client sees 40001 only when the
    /// table keeps changing.
    #[error("{0}")]
    DefinitionChanged(String),
    /// A savepoint command outside a transaction block.
    #[error("{0}")]
    NoActiveTransaction(String),
    /// ROLLBACK TO / RELEASE of a savepoint the block does not have.
    #[error("{0}")]
    InvalidSavepoint(String),
    /// FETCH / MOVE / CLOSE of a cursor the session does not have.
    #[error("{0}")]
    InvalidCursorName(String),
    /// DECLARE of a cursor name the session has already.
    #[error("{0}")]
    DuplicateCursor(String),
    /// Too deep or too long to plan and run safely (Postgres' "stack depth
    /// limit exceeded" class).
    #[error("{0}")]
    StatementTooComplex(String),
    /// A parameter number no statement can have.
    #[error("{0}")]
    UndefinedParameter(String),
    /// The query memory pool could not grant what an operator needed.
    #[error("{0}")]
    OutOfMemory(String),
    /// A bounded queue overflowed (a live query that fell behind).
    #[error("{0}")]
    LimitExceeded(String),
    /// A file or record on disk is damaged; only what depends on it fails.
    #[error("{0}")]
    DataCorrupted(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl StrataError {
    /// The Postgres SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        use StrataError::*;
        match self {
            Syntax(_) => "42601",
            FeatureNotSupported(_) => "0A000",
            InvalidParameterValue(_) => "22023",
            UndefinedTable(_) => "42P01",
            UndefinedColumn(_) => "42703",
            UndefinedNamespace(_) => "3F000",
            DuplicateTable(_) => "42P07",
            DuplicateNamespace(_) => "42P06",
            DuplicateColumn(_) => "42701",
            InvalidTableDefinition(_) => "42P16",
            ReservedName(_) => "42939",
            DependentObjects(_) => "2BP01",
            UniqueViolation(_) => "23505",
            NotNullViolation(_) => "23502",
            InvalidText(_) => "22P02",
            NumericOutOfRange(_) => "22003",
            StringTooLong(_) => "22001",
            DivisionByZero(_) => "22012",
            DatatypeMismatch(_) => "42804",
            UndefinedFunction(_) => "42883",
            AmbiguousColumn(_) => "42702",
            InsufficientPrivilege(_) => "42501",
            InvalidAuthorization(_) => "28000",
            TooManyConnections(_) => "53300",
            QueryCanceled | StatementTimeout | CopyFailed(_) => "57014",
            BadCopyFormat(_) => "22P04",
            CantChangeRuntimeParam(_) => "55P02",
            ProgramLimitExceeded(_) => "54000",
            ActiveSqlTransaction(_) => "25001",
            DuplicatePreparedStatement(_) => "42P05",
            InvalidSqlStatementName(_) => "26000",
            WithContext { source, .. } => source.sqlstate(),
            ProtocolViolation(_) => "08P01",
            UndefinedObject(_) => "42704",
            DuplicateObject(_) => "42710",
            InvalidPassword(_) => "28P01",
            ObjectInUse(_) => "55006",
            ObjectNotInPrerequisiteState(_) => "55000",
            InFailedTransaction => "25P02",
            SerializationFailure(_) | DefinitionChanged(_) => "40001",
            NoActiveTransaction(_) => "25P01",
            InvalidSavepoint(_) => "3B001",
            InvalidCursorName(_) => "34000",
            DuplicateCursor(_) => "42P03",
            StatementTooComplex(_) => "54001",
            UndefinedParameter(_) => "42P02",
            OutOfMemory(_) => "53200",
            LimitExceeded(_) => "53400",
            DataCorrupted(_) => "XX001",
            Storage(_) => "58030",
            Internal(_) => "XX000",
        }
    }

    pub fn syntax(msg: impl Into<String>) -> Self {
        StrataError::Syntax(msg.into())
    }

    pub fn unsupported(msg: impl Into<String>) -> Self {
        StrataError::FeatureNotSupported(msg.into())
    }

    /// A failure of the object store or a Parquet file, with what was being done.
    pub fn storage(context: &str, e: impl std::fmt::Display) -> Self {
        StrataError::Storage(format!("{context}: {e}"))
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        StrataError::Internal(msg.into())
    }

    /// This error, told where it happened.
    pub fn with_context(self, context: impl Into<String>) -> Self {
        match self {
            StrataError::WithContext { .. } => self,
            source => StrataError::WithContext {
                source: Box::new(source),
                context: context.into(),
            },
        }
    }
}

impl From<rocksdb::Error> for StrataError {
    fn from(e: rocksdb::Error) -> Self {
        StrataError::Storage(e.into_string())
    }
}

impl From<serde_json::Error> for StrataError {
    fn from(e: serde_json::Error) -> Self {
        StrataError::Storage(format!("corrupt record: {e}"))
    }
}

impl From<datafusion::sql::sqlparser::parser::ParserError> for StrataError {
    fn from(e: datafusion::sql::sqlparser::parser::ParserError) -> Self {
        use datafusion::sql::sqlparser::parser::ParserError;
        match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => StrataError::Syntax(m),
            ParserError::RecursionLimitExceeded => {
                StrataError::Syntax("statement is nested too deeply".into())
            }
        }
    }
}

impl From<datafusion::error::DataFusionError> for StrataError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        from_datafusion(e)
    }
}

/// DataFusion reports most errors as strings inside a few broad variants, so the
/// SQLSTATE is recovered from the variant first and the message second.
fn from_datafusion(e: datafusion::error::DataFusionError) -> StrataError {
    use datafusion::common::SchemaError;
    use datafusion::error::DataFusionError as D;
    match e {
        D::External(inner) => match inner.downcast::<StrataError>() {
            Ok(se) => *se,
            Err(other) => StrataError::Internal(other.to_string()),
        },
        D::Context(_, inner) => from_datafusion(*inner),
        // A RepartitionExec hands one error to every output partition: the
        // first holder cannot take it, so read the cause where it lies.
        D::Shared(inner) => match std::sync::Arc::try_unwrap(inner) {
            Ok(inner) => from_datafusion(inner),
            Err(shared) => match strata_cause(&shared) {
                Some(se) => se.clone(),
                None => classify_message(shared.to_string()),
            },
        },
        D::SQL(err, _) => StrataError::from(*err),
        D::SchemaError(err, _) => match *err {
            SchemaError::FieldNotFound { .. } => StrataError::UndefinedColumn(
                err_text(err.to_string()).replace("Schema error: ", ""),
            ),
            SchemaError::AmbiguousReference { .. } => StrataError::AmbiguousColumn(err.to_string()),
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => {
                StrataError::DuplicateColumn(err.to_string())
            }
        },
        D::NotImplemented(m) => StrataError::FeatureNotSupported(err_text(m)),
        D::ResourcesExhausted(m) => StrataError::OutOfMemory(format!(
            "out of memory: {} (the server's query memory limit, [query] memory_limit)",
            err_text(m)
        )),
        D::ArrowError(ae, _) => classify_arrow(&ae.to_string()),
        other => classify_message(other.to_string()),
    }
}

/// The Strata error a DataFusion error wraps, looked up by reference.
fn strata_cause(e: &datafusion::error::DataFusionError) -> Option<&StrataError> {
    use datafusion::error::DataFusionError as D;
    match e {
        D::External(inner) => inner.downcast_ref::<StrataError>(),
        D::Context(_, inner) => strata_cause(inner),
        D::Shared(inner) => strata_cause(inner),
        _ => None,
    }
}

fn err_text(s: String) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn classify_arrow(msg: &str) -> StrataError {
    let m = err_text(msg.to_string());
    if m.contains("Divide by zero") || m.contains("divide by zero") {
        StrataError::DivisionByZero("division by zero".into())
    } else if m.contains("Cast error") || m.contains("Parser error") || m.contains("Cannot cast") {
        StrataError::InvalidText(m)
    } else if m.contains("overflow") {
        StrataError::NumericOutOfRange(m)
    } else {
        StrataError::Internal(m)
    }
}

fn classify_message(msg: String) -> StrataError {
    let m = err_text(msg);
    let lower = m.to_ascii_lowercase();
    if lower.contains("table") && lower.contains("not found") {
        let name = extract_quoted(&m).unwrap_or(m);
        // DataFusion names the internal catalog; users never see it.
        let name = name
            .strip_prefix("strata_sys.")
            .or_else(|| name.strip_prefix("strata."))
            .unwrap_or(&name);
        StrataError::UndefinedTable(name.to_string())
    } else if lower.contains("divide by zero") || lower.contains("division by zero") {
        StrataError::DivisionByZero("division by zero".into())
    } else if lower.contains("cast error")
        || lower.contains("cannot cast")
        || lower.contains("parser error")
        || lower.contains("invalid input syntax")
    {
        StrataError::InvalidText(m)
    } else if lower.contains("overflow") || lower.contains("out of range") {
        StrataError::NumericOutOfRange(m)
    } else if lower.contains("invalid function") || lower.contains("no function matches") {
        StrataError::UndefinedFunction(m)
    } else if lower.contains("no field named")
        || lower.contains("column") && lower.contains("not found")
    {
        StrataError::UndefinedColumn(m)
    } else if lower.contains("sql error") || lower.contains("parsererror") {
        StrataError::Syntax(m)
    } else if lower.contains("resources exhausted") {
        StrataError::OutOfMemory(format!("out of memory: {m}"))
    } else if lower.contains("canceled") || lower.contains("cancelled") {
        StrataError::QueryCanceled
    } else if lower.contains("does not support")
        || lower.contains("not supported")
        || lower.contains("unsupported")
    {
        StrataError::FeatureNotSupported(m)
    } else if lower.contains("error during planning")
        || lower.contains("type coercion")
        || lower.contains("cannot infer")
    {
        StrataError::DatatypeMismatch(m)
    } else {
        StrataError::Internal(m)
    }
}

fn extract_quoted(m: &str) -> Option<String> {
    let start = m.find('\'')?;
    let rest = &m[start + 1..];
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_not_found_maps_to_42p01() {
        let e = StrataError::from(datafusion::error::DataFusionError::Plan(
            "table 'strata.app.nope' not found".into(),
        ));
        assert_eq!(e.sqlstate(), "42P01");
    }

    #[test]
    fn external_strata_error_keeps_its_state() {
        let inner = StrataError::UniqueViolation("dup".into());
        let e = StrataError::from(datafusion::error::DataFusionError::External(Box::new(
            inner,
        )));
        assert_eq!(e.sqlstate(), "23505");
    }
}

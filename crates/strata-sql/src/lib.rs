//! Strata's SQL dialect. It splits a query string into statements, recognises
//! Strata's own statements (namespaces, the table kinds and their options, SHOW,
//! the flush/job statements, users and EXECUTE AS; storage and live-query
//! statements of later milestones) and hands every
//! other statement to DataFusion's SQL parser untouched, as a `sqlparser` AST.

mod cursor;
mod cursors;
pub mod like_escape;
pub mod limits;
mod live;
mod options;
mod parse;
pub mod pgtext;
mod storages;
mod users;

pub use datafusion::sql::sqlparser;
pub use options::{AccessLevel, FlushPolicy, TableKind, TableOptions};
pub use parse::{parse_one, parse_sql, primary_key_column};
pub use storages::StorageOptions;

use sqlparser::ast;

/// One parsed statement.
#[derive(Debug, Clone)]
pub enum Statement {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
        /// Said as `CREATE SCHEMA`, which is also the command tag.
        schema: bool,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
        /// Said as `DROP SCHEMA`, which is also the command tag.
        schema: bool,
    },
    CreateTable(Box<CreateTable>),
    /// `ALTER TABLE t SET (KEY = value, ...)`
    AlterTableSet {
        table: ObjectRef,
        options: TableOptions,
    },
    ShowNamespaces,
    ShowTables {
        namespace: Option<String>,
    },
    /// `FLUSH TABLE t` / `STORAGE FLUSH TABLE t`: start (or join) a flush job.
    FlushTable {
        table: ObjectRef,
    },
    /// `FLUSH ALL [IN ns]` / `STORAGE FLUSH ALL [IN [NAMESPACE] ns]`.
    FlushAll {
        namespace: Option<String>,
    },
    /// `COMPACT TABLE t`.
    CompactTable {
        table: ObjectRef,
    },
    /// `KILL JOB 'id'`.
    KillJob {
        job_id: String,
    },
    /// `CREATE USER name [WITH] [PASSWORD 'p'] [ROLE r]`.
    CreateUser {
        name: String,
        password: Option<Secret>,
        role: Option<String>,
    },
    /// `ALTER USER name [WITH] [PASSWORD 'p'] [[SET] ROLE r]`.
    AlterUser {
        name: String,
        password: Option<Secret>,
        role: Option<String>,
    },
    /// `ALTER USER name SET STORAGE 'id'` (`None`: `RESET STORAGE`).
    AlterUserStorage {
        name: String,
        storage: Option<String>,
    },
    /// `CREATE STORAGE [IF NOT EXISTS] id TYPE … PATH … [clauses]`.
    CreateStorage {
        id: String,
        if_not_exists: bool,
        options: Box<StorageOptions>,
    },
    /// `ALTER STORAGE id SET clauses`.
    AlterStorage {
        id: String,
        options: Box<StorageOptions>,
    },
    /// `DROP STORAGE [IF EXISTS] id`.
    DropStorage {
        id: String,
        if_exists: bool,
    },
    ShowStorages,
    /// `KILL LIVE QUERY 'LQ-…'`.
    KillLiveQuery {
        live_id: String,
    },
    /// `SUBSCRIBE TO [SELECT cols FROM] t [WHERE …] [OPTIONS (last_rows = N | from_seq = S)]`,
    /// or inside `COPY (…) TO STDOUT [options]`: the filter is the
    /// condition's SQL text, `copy_options` the text after `TO STDOUT`.
    Subscribe {
        table: ObjectRef,
        columns: Option<Vec<String>>,
        filter: Option<String>,
        last_rows: u64,
        from_seq: Option<u64>,
        copy_options: Option<String>,
    },
    /// `DROP USER [IF EXISTS] name [, name ...]`.
    DropUser {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `EXECUTE AS USER 'name' ( statement )`: one statement run as another user.
    ExecuteAs {
        user: String,
        statement: Box<Statement>,
        /// The inner statement's text, for planning and re-planning it alone.
        sql: String,
    },
    /// `FETCH [direction] [FROM | IN] cursor`, or `MOVE …` (rows skipped,
    /// not returned).
    Fetch {
        cursor: String,
        direction: FetchDirection,
        move_only: bool,
    },
    /// `CLOSE cursor`; `CLOSE ALL` has no name.
    CloseCursor {
        name: Option<String>,
    },
    /// A Strata statement that belongs to a later milestone; it parses so the
    /// client gets "not supported yet" rather than a syntax error.
    NotYetSupported(&'static str),
    /// Any other statement, for DataFusion or the DML executor.
    Sql(Box<ast::Statement>),
}

/// Where a FETCH or MOVE goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDirection {
    /// The next n rows (NEXT, FORWARD, a count).
    Forward(u64),
    /// Every remaining row.
    All,
    /// The row at this position (FIRST is 1).
    Absolute(i64),
    /// The row this far from the current one.
    Relative(i64),
    /// LAST.
    Last,
    /// PRIOR, BACKWARD, a negative count.
    Backward,
}

/// A password from a statement; its Debug form is redacted so a logged
/// statement never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A possibly namespace-qualified object name, already case-normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{ns}.{}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CreateTable {
    pub table: ObjectRef,
    pub if_not_exists: bool,
    pub columns: Vec<ColumnSpec>,
    pub primary_key: Option<String>,
    pub options: TableOptions,
}

#[derive(Debug, Clone)]
pub struct ColumnSpec {
    pub name: String,
    pub data_type: ast::DataType,
    pub not_null: bool,
    pub default: Option<ast::Expr>,
    pub primary_key: bool,
}

/// Normalises an identifier the way Postgres does: unquoted folds to lower case.
pub fn normalize_ident(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

/// Turns a parsed object name into an `ObjectRef` (at most `namespace.name`).
pub fn object_ref(name: &ast::ObjectName) -> strata_common::Result<ObjectRef> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p.as_ident() {
            Some(id) => Ok(normalize_ident(id)),
            None => Err(strata_common::StrataError::syntax(format!(
                "invalid name {name}"
            ))),
        })
        .collect::<Result<_, _>>()?;
    match parts.as_slice() {
        [n] => Ok(ObjectRef {
            namespace: None,
            name: n.clone(),
        }),
        [ns, n] => Ok(ObjectRef {
            namespace: Some(ns.clone()),
            name: n.clone(),
        }),
        [_db, ns, n] => Ok(ObjectRef {
            namespace: Some(ns.clone()),
            name: n.clone(),
        }),
        _ => Err(strata_common::StrataError::syntax(format!(
            "improper qualified name: {name}"
        ))),
    }
}

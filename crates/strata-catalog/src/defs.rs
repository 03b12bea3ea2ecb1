//! Catalog records as persisted (JSON) and their validation from CREATE TABLE.

use crate::types::ColumnType;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_sql::{AccessLevel, CreateTable, FlushPolicy, TableKind};

/// Schema metadata of rows a BINARY cursor returns: the wire frontend sends
/// them in binary where the client asked for no format (a simple-protocol
/// FETCH).
pub const BINARY_RESULT_KEY: &str = "strata.binary_result";
/// Field metadata key naming the Postgres type of a column stored as text.
pub const WIRE_TYPE_KEY: &str = "strata.pg_type";

/// Field metadata keys of a result column that is a table's column as is: the
/// table's pg_catalog OID and the column's number, which RowDescription
/// carries (JDBC's getTableName, libpq's PQftable). Set on a statement's
/// described schema only, never on a table's.
pub const SOURCE_TABLE_KEY: &str = "strata.source_table_oid";
pub const SOURCE_COLUMN_KEY: &str = "strata.source_attnum";

/// Commit sequence of a row version; hidden from `SELECT *`.
pub const SEQ_COLUMN: &str = "_seq";
/// Tombstone flag of a row version; hidden from `SELECT *`.
pub const DELETED_COLUMN: &str = "_deleted";
/// The key Strata gives a table created without a PRIMARY KEY: a snowflake
/// id, until `ALTER TABLE ... ADD PRIMARY KEY (col)` re-keys the table by
/// `col` and drops it (the order pg_dump's scripts create a table in).
pub const ROWID_COLUMN: &str = "_rowid";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceDef {
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id used in the row encoding, so columns can be added and dropped
    /// without rewriting rows.
    pub id: u32,
    pub name: String,
    pub ty: ColumnType,
    pub nullable: bool,
    /// The DEFAULT expression as SQL text.
    pub default: Option<String>,
    pub primary_key: bool,
    /// Encoded value that rows written before this column was added read as
    /// (the DEFAULT evaluated once at ALTER TABLE time), or NULL when absent.
    #[serde(default)]
    pub fill: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableDef {
    pub id: u32,
    pub namespace: String,
    pub name: String,
    pub kind: TableKind,
    pub columns: Vec<ColumnDef>,
    pub flush_policy: FlushPolicy,
    pub storage_id: String,
    pub use_user_storage: bool,
    pub ttl_seconds: Option<u64>,
    pub access_level: AccessLevel,
    pub next_column_id: u32,
    pub created_at: i64,
    /// Bumped by every change of the definition (ALTER TABLE, SET options).
    /// A change is a compare-and-swap on it (see `Catalog::update_table`), and
    /// a job compares it at commit with the definition it read its rows by.
    #[serde(default)]
    pub version: u64,
}

impl TableDef {
    /// Validates a CREATE TABLE and fills in defaults; the id is assigned by the catalog.
    pub fn from_create(
        ct: &CreateTable,
        namespace: &str,
        default_policy: FlushPolicy,
    ) -> Result<TableDef> {
        let kind = ct.options.kind.unwrap_or(TableKind::Shared);
        let pk = ct.primary_key.clone();
        if ct.columns.is_empty() {
            return Err(StrataError::InvalidTableDefinition(
                "a table needs at least one column".into(),
            ));
        }
        let mut columns: Vec<ColumnDef> = Vec::with_capacity(ct.columns.len());
        for (i, spec) in ct.columns.iter().enumerate() {
            check_column_name(&spec.name)?;
            if columns.iter().any(|c| c.name == spec.name) {
                return Err(StrataError::DuplicateColumn(format!(
                    "column \"{}\" specified more than once",
                    spec.name
                )));
            }
            let ty = ColumnType::from_sql(&spec.data_type)?;
            if spec.primary_key && !ty.can_be_primary_key() {
                return Err(StrataError::InvalidTableDefinition(format!(
                    "type {} cannot be a primary key",
                    ty.sql_name()
                )));
            }
            columns.push(ColumnDef {
                id: i as u32 + 1,
                name: spec.name.clone(),
                ty,
                nullable: !spec.not_null,
                default: spec.default.as_ref().map(|e| e.to_string()),
                primary_key: pk.as_deref() == Some(spec.name.as_str()),
                fill: None,
            });
        }
        if pk.is_none() {
            columns.push(ColumnDef {
                id: columns.len() as u32 + 1,
                name: ROWID_COLUMN.into(),
                ty: ColumnType::BigInt,
                nullable: false,
                default: Some("snowflake_id()".into()),
                primary_key: true,
                fill: None,
            });
        }
        if kind == TableKind::Stream && ct.options.ttl_seconds.is_none() {
            return Err(StrataError::InvalidParameterValue(
                "a STREAM table needs TTL_SECONDS".into(),
            ));
        }
        if kind != TableKind::Stream && ct.options.ttl_seconds.is_some() {
            return Err(StrataError::InvalidParameterValue(
                "TTL_SECONDS applies to STREAM tables only".into(),
            ));
        }
        Ok(TableDef {
            id: 0,
            namespace: namespace.to_string(),
            name: ct.table.name.clone(),
            kind,
            next_column_id: columns.len() as u32 + 1,
            columns,
            flush_policy: ct.options.flush_policy.unwrap_or(default_policy),
            storage_id: ct
                .options
                .storage_id
                .clone()
                .unwrap_or_else(|| "local".into()),
            use_user_storage: ct.options.use_user_storage.unwrap_or(false),
            ttl_seconds: ct.options.ttl_seconds,
            access_level: ct.options.access_level.unwrap_or(AccessLevel::Private),
            created_at: 0,
            version: 0,
        })
    }

    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    pub fn pk_index(&self) -> usize {
        self.columns.iter().position(|c| c.primary_key).unwrap_or(0)
    }

    /// Whether the table was created without a PRIMARY KEY and is keyed by
    /// a generated `_rowid` (see [`ROWID_COLUMN`]).
    pub fn has_generated_key(&self) -> bool {
        self.pk().name == ROWID_COLUMN
    }

    pub fn pk(&self) -> &ColumnDef {
        &self.columns[self.pk_index()]
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Arrow schema of the user columns, optionally followed by `_seq, _deleted`.
    pub fn arrow_schema(&self, with_system_columns: bool) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| {
                let f = Field::new(&c.name, c.ty.arrow_type(), c.nullable);
                match c.ty.wire_type_name() {
                    // Text in Arrow, but reported to clients as their own type.
                    Some(name) => {
                        f.with_metadata([(WIRE_TYPE_KEY.to_string(), name.to_string())].into())
                    }
                    None => f,
                }
            })
            .collect();
        if with_system_columns {
            fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
            fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        }
        Arc::new(Schema::new(fields))
    }

    /// Adds a column (ALTER TABLE ADD COLUMN).
    pub fn add_column(
        &mut self,
        name: String,
        ty: ColumnType,
        nullable: bool,
        default: Option<String>,
        fill: Option<Vec<u8>>,
    ) -> Result<()> {
        check_column_name(&name)?;
        if self.column_index(&name).is_some() {
            return Err(StrataError::DuplicateColumn(format!(
                "column \"{name}\" of relation \"{}\" already exists",
                self.name
            )));
        }
        if !nullable && fill.is_none() {
            // Existing rows would violate the constraint at once.
            return Err(StrataError::NotNullViolation(format!(
                "column \"{name}\" is NOT NULL and has no DEFAULT for existing rows"
            )));
        }
        self.columns.push(ColumnDef {
            id: self.next_column_id,
            name,
            ty,
            nullable,
            default,
            primary_key: false,
            fill,
        });
        self.next_column_id += 1;
        Ok(())
    }

    pub fn drop_column(&mut self, name: &str) -> Result<()> {
        let idx = self.column_index(name).ok_or_else(|| {
            StrataError::UndefinedColumn(format!(
                "column \"{name}\" of relation \"{}\" does not exist",
                self.name
            ))
        })?;
        if self.columns[idx].primary_key {
            return Err(StrataError::DependentObjects(format!(
                "cannot drop primary key column \"{name}\""
            )));
        }
        if self.columns.len() == 1 {
            return Err(StrataError::InvalidTableDefinition(
                "cannot drop the last column".into(),
            ));
        }
        self.columns.remove(idx);
        Ok(())
    }
}

fn check_column_name(name: &str) -> Result<()> {
    if name == SEQ_COLUMN || name == DELETED_COLUMN || name == ROWID_COLUMN {
        return Err(StrataError::ReservedName(format!(
            "column name \"{name}\" is reserved for a system column"
        )));
    }
    Ok(())
}

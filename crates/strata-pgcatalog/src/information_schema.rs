//! `information_schema` as Postgres has it for the tables tools read:
//! `columns` (with `udt_name`, `is_identity`, `is_generated`, Postgres type
//! names), `table_constraints` and `key_column_usage` (each table's primary
//! key) from Strata's catalog; every other table (tables, views, schemata, …)
//! is DataFusion's. Metabase's field sync and SQLAlchemy-style tools join
//! these three.
//!
//! DataFusion answers for `information_schema` itself when its
//! `information_schema` option is on, so the engine turns that off and
//! registers this schema in each catalog instead.

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::{CatalogProviderList, MemTable, SchemaProvider, TableProvider};
use datafusion::error::Result as DfResult;
use std::sync::Arc;
use strata_catalog::{ColumnType, TableDef};
use strata_tiers::Tiers;

const OWN: [&str; 3] = ["columns", "table_constraints", "key_column_usage"];

#[derive(Debug)]
pub(crate) struct StrataInformationSchema {
    inner: InformationSchemaProvider,
    tiers: Arc<Tiers>,
    /// The system tables (`system.jobs`, …), whose columns are listed too.
    system: Arc<dyn SchemaProvider>,
}

/// One row of `information_schema.columns`.
struct Column<'a> {
    schema: &'a str,
    table: &'a str,
    name: &'a str,
    position: usize,
    nullable: bool,
    ty: ColumnType,
    default: Option<String>,
}

impl StrataInformationSchema {
    pub(crate) fn new(
        catalogs: Arc<dyn CatalogProviderList>,
        tiers: Arc<Tiers>,
        system: Arc<dyn SchemaProvider>,
    ) -> Self {
        StrataInformationSchema {
            inner: InformationSchemaProvider::new(catalogs),
            tiers,
            system,
        }
    }

    /// The system tables' names and Arrow schemas, in name order.
    async fn system_tables(&self) -> DfResult<Vec<(String, SchemaRef)>> {
        let mut names = self.system.table_names();
        names.sort();
        let mut out = vec![];
        for name in names {
            if let Some(t) = self.system.table(&name).await? {
                out.push((name, t.schema()));
            }
        }
        Ok(out)
    }

    /// The tables of Strata's namespaces, in name order.
    fn tables(&self) -> Vec<Arc<TableDef>> {
        let mut tables = self.tiers.catalog.tables();
        tables.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        tables
    }

    async fn own_table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let tables = self.tables();
        let batch = match name {
            "columns" => {
                let system = self.system_tables().await?;
                let mut rows: Vec<Column> = tables
                    .iter()
                    .flat_map(|t| {
                        t.columns.iter().enumerate().map(|(i, c)| Column {
                            schema: &t.namespace,
                            table: &t.name,
                            name: &c.name,
                            position: i + 1,
                            nullable: c.nullable,
                            ty: c.ty.clone(),
                            default: c
                                .default
                                .as_deref()
                                .map(|d| crate::functions::definitions::default_expr(d, &c.ty)),
                        })
                    })
                    .collect();
                for (table, schema) in &system {
                    for (i, f) in schema.fields().iter().enumerate() {
                        rows.push(Column {
                            schema: strata_catalog::SYSTEM_SCHEMA,
                            table,
                            name: f.name(),
                            position: i + 1,
                            nullable: f.is_nullable(),
                            ty: column_type(f.data_type()),
                            default: None,
                        });
                    }
                }
                columns(&rows)?
            }
            "table_constraints" => table_constraints(&tables)?,
            "key_column_usage" => key_column_usage(&tables)?,
            _ => return Ok(None),
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }
}

#[async_trait]
impl SchemaProvider for StrataInformationSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        for own in OWN {
            if !names.iter().any(|n| n == own) {
                names.push(own.to_string());
            }
        }
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let name = name.to_ascii_lowercase();
        match self.own_table(&name).await? {
            Some(t) => Ok(Some(t)),
            None => self.inner.table(&name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        OWN.contains(&name) || self.inner.table_exist(name)
    }
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int32, true)
}

fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

fn ints(values: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int32Array>())
}

/// A column's type as information_schema names it: `data_type`, `udt_name`,
/// `character_maximum_length`, `numeric_precision`, `numeric_precision_radix`,
/// `numeric_scale`, `datetime_precision`.
struct TypeInfo {
    data_type: &'static str,
    udt_name: String,
    char_length: Option<i32>,
    precision: Option<i32>,
    radix: Option<i32>,
    scale: Option<i32>,
    datetime_precision: Option<i32>,
}

fn type_info(ty: &ColumnType) -> TypeInfo {
    let base = |data_type, udt: &str| TypeInfo {
        data_type,
        udt_name: udt.to_string(),
        char_length: None,
        precision: None,
        radix: None,
        scale: None,
        datetime_precision: None,
    };
    let binary = |data_type, udt, bits| TypeInfo {
        precision: Some(bits),
        radix: Some(2),
        scale: Some(0),
        ..base(data_type, udt)
    };
    let temporal = |data_type, udt, p| TypeInfo {
        datetime_precision: Some(p),
        ..base(data_type, udt)
    };
    match ty {
        ColumnType::Boolean => base("boolean", "bool"),
        ColumnType::SmallInt => binary("smallint", "int2", 16),
        ColumnType::Int => binary("integer", "int4", 32),
        ColumnType::BigInt => binary("bigint", "int8", 64),
        ColumnType::Real => TypeInfo {
            scale: None,
            ..binary("real", "float4", 24)
        },
        ColumnType::Double => TypeInfo {
            scale: None,
            ..binary("double precision", "float8", 53)
        },
        ColumnType::Numeric { precision, scale } => TypeInfo {
            precision: Some(i32::from(*precision)),
            radix: Some(10),
            scale: Some(i32::from(*scale)),
            ..base("numeric", "numeric")
        },
        ColumnType::Text => base("text", "text"),
        ColumnType::Varchar(n) => TypeInfo {
            char_length: n.and_then(|n| i32::try_from(n).ok()),
            ..base("character varying", "varchar")
        },
        ColumnType::Bytea => base("bytea", "bytea"),
        ColumnType::Date => temporal("date", "date", 0),
        ColumnType::Time => temporal("time without time zone", "time", 6),
        ColumnType::Timestamp => temporal("timestamp without time zone", "timestamp", 6),
        ColumnType::TimestampTz => temporal("timestamp with time zone", "timestamptz", 6),
        ColumnType::Uuid => base("uuid", "uuid"),
        ColumnType::Json => base("json", "json"),
        ColumnType::Jsonb => base("jsonb", "jsonb"),
        ColumnType::Array(inner) => base("ARRAY", &format!("_{}", type_info(inner).udt_name)),
    }
}

/// The column type a system table's Arrow column is shown as.
fn column_type(dt: &DataType) -> ColumnType {
    match dt {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ColumnType::SmallInt,
        DataType::Int32 | DataType::UInt16 => ColumnType::Int,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ColumnType::BigInt,
        DataType::Float16 | DataType::Float32 => ColumnType::Real,
        DataType::Float64 => ColumnType::Double,
        DataType::Decimal128(p, s) => ColumnType::Numeric {
            precision: *p,
            scale: *s,
        },
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Timestamp(_, Some(_)) => ColumnType::TimestampTz,
        DataType::Timestamp(_, None) => ColumnType::Timestamp,
        DataType::Binary | DataType::LargeBinary => ColumnType::Bytea,
        DataType::List(f) => ColumnType::Array(Box::new(column_type(f.data_type()))),
        _ => ColumnType::Text,
    }
}

fn columns(rows: &[Column]) -> DfResult<RecordBatch> {
    let infos: Vec<TypeInfo> = rows.iter().map(|c| type_info(&c.ty)).collect();
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
        text("column_name"),
        int("ordinal_position"),
        text("column_default"),
        text("is_nullable"),
        text("data_type"),
        int("character_maximum_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
        text("udt_catalog"),
        text("udt_schema"),
        text("udt_name"),
        text("is_identity"),
        text("identity_generation"),
        text("is_generated"),
        text("generation_expression"),
        text("is_updatable"),
    ]));
    let n = rows.len();
    let same = |v: &'static str| strings(std::iter::repeat_n(Some(v), n));
    let columns: Vec<ArrayRef> = vec![
        same(crate::DATABASE),
        strings(rows.iter().map(|c| Some(c.schema))),
        strings(rows.iter().map(|c| Some(c.table))),
        strings(rows.iter().map(|c| Some(c.name))),
        ints(rows.iter().map(|c| i32::try_from(c.position).ok())),
        strings(rows.iter().map(|c| c.default.as_deref())),
        strings(
            rows.iter()
                .map(|c| Some(if c.nullable { "YES" } else { "NO" })),
        ),
        strings(infos.iter().map(|t| Some(t.data_type))),
        ints(infos.iter().map(|t| t.char_length)),
        ints(infos.iter().map(|t| t.precision)),
        ints(infos.iter().map(|t| t.radix)),
        ints(infos.iter().map(|t| t.scale)),
        ints(infos.iter().map(|t| t.datetime_precision)),
        same(crate::DATABASE),
        same("pg_catalog"),
        strings(infos.iter().map(|t| Some(t.udt_name.as_str()))),
        same("NO"),
        strings(std::iter::repeat_n(None, n)),
        same("NEVER"),
        strings(std::iter::repeat_n(None, n)),
        same("YES"),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The primary key constraint's name, as `pg_constraint` has it.
fn pkey_name(t: &TableDef) -> String {
    format!("{}_pkey", t.name)
}

/// A batch of one row per table's primary key: the columns naming the
/// constraint and its table, then `more` (each a column and its values).
fn pkey_rows(tables: &[Arc<TableDef>], more: Vec<(Field, ArrayRef)>) -> DfResult<RecordBatch> {
    let names: Vec<String> = tables.iter().map(|t| pkey_name(t)).collect();
    let database = || strings(std::iter::repeat_n(Some(crate::DATABASE), tables.len()));
    let namespaces = || strings(tables.iter().map(|t| Some(t.namespace.as_str())));
    let mut fields = vec![
        text("constraint_catalog"),
        text("constraint_schema"),
        text("constraint_name"),
        text("table_catalog"),
        text("table_schema"),
        text("table_name"),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        database(),
        namespaces(),
        strings(names.iter().map(|s| Some(s.as_str()))),
        database(),
        namespaces(),
        strings(tables.iter().map(|t| Some(t.name.as_str()))),
    ];
    for (f, c) in more {
        fields.push(f);
        columns.push(c);
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn table_constraints(tables: &[Arc<TableDef>]) -> DfResult<RecordBatch> {
    let n = tables.len();
    let same = |v: &'static str| strings(std::iter::repeat_n(Some(v), n));
    pkey_rows(
        tables,
        vec![
            (text("constraint_type"), same("PRIMARY KEY")),
            (text("is_deferrable"), same("NO")),
            (text("initially_deferred"), same("NO")),
            (text("enforced"), same("YES")),
            (
                text("nulls_distinct"),
                strings(std::iter::repeat_n(None, n)),
            ),
        ],
    )
}

fn key_column_usage(tables: &[Arc<TableDef>]) -> DfResult<RecordBatch> {
    let n = tables.len();
    pkey_rows(
        tables,
        vec![
            (
                text("column_name"),
                strings(tables.iter().map(|t| Some(t.pk().name.as_str()))),
            ),
            (
                int("ordinal_position"),
                ints(std::iter::repeat_n(Some(1), n)),
            ),
            (
                int("position_in_unique_constraint"),
                ints(std::iter::repeat_n(None, n)),
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_named_as_postgres_names_them() {
        let t = type_info(&ColumnType::Array(Box::new(ColumnType::Text)));
        assert_eq!((t.data_type, t.udt_name.as_str()), ("ARRAY", "_text"));
        let t = type_info(&ColumnType::Varchar(Some(20)));
        assert_eq!(
            (t.data_type, t.char_length),
            ("character varying", Some(20))
        );
        let t = type_info(&ColumnType::Numeric {
            precision: 20,
            scale: 6,
        });
        assert_eq!(
            (t.precision, t.radix, t.scale),
            (Some(20), Some(10), Some(6))
        );
        assert_eq!(type_info(&ColumnType::Int).udt_name, "int4");
    }
}

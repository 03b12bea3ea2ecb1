//! What every `pg_catalog` table gets on top of the crate's (and Strata's
//! patched) rows, applied generically at scan time:
//!
//! - `tableoid`, the catalog's own OID, on every system catalog table
//!   (pg_dump reads it with each object), in the catalog that shows system
//!   columns;
//! - array and vector columns as Arrow lists ([`arrays`]);
//! - `regproc` columns the shipped rows hold as function names
//!   (`oprcode`, `amhandler`, `prsstart`, …) as the function's OID, so that
//!   `oprcode::oid` is the OID pg_dump expects;
//! - columns PostgreSQL 15 has and the crate lacks (`pg_class.relacl`,
//!   `reloptions`, `pg_database.datcollversion`, `pg_collation.colliculocale`),
//!   NULL;
//! - the row fixes of [`fixes`] (owners, roles, namespaces, …).

use super::arrays::{element_type, list_of, to_list, vector_type};
use super::catalog_oids::catalog_oid;
use super::fixes;
use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use std::collections::HashMap;
use std::sync::Arc;
use strata_tiers::Tiers;

/// What the generic fixes need besides the table itself.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) tiers: Arc<Tiers>,
    /// `pg_proc` OIDs by function name (the lowest, for overloaded names).
    pub(crate) proc_oids: HashMap<String, i32>,
    /// The crate's `pg_catalog`, unpatched (for `pg_namespace`).
    pub(crate) inner: Arc<dyn SchemaProvider>,
}

/// `regproc` columns whose shipped values are function names.
fn is_regproc_name(table: &str, column: &str) -> bool {
    matches!(
        (table, column),
        ("pg_operator", "oprcode" | "oprrest" | "oprjoin")
            | ("pg_am", "amhandler")
            | (
                "pg_ts_parser",
                "prsstart" | "prstoken" | "prsend" | "prsheadline" | "prslextype"
            )
            | ("pg_ts_template", "tmplinit" | "tmpllexize")
    )
}

/// Columns PostgreSQL 15 has that the crate's table lacks (all NULL here).
fn missing_columns(table: &str) -> Vec<Field> {
    let text_list = || list_of(DataType::Utf8);
    match table {
        "pg_class" => vec![
            Field::new("relacl", text_list(), true),
            Field::new("reloptions", text_list(), true),
        ],
        "pg_database" => vec![Field::new("datcollversion", DataType::Utf8, true)],
        "pg_collation" => vec![Field::new("colliculocale", DataType::Utf8, true)],
        _ => vec![],
    }
}

/// A `pg_catalog` table with the fixes above.
#[derive(Debug)]
pub(crate) struct Augmented {
    name: String,
    table: Arc<dyn TableProvider>,
    schema: SchemaRef,
    context: Arc<Context>,
}

impl Augmented {
    pub(crate) fn new(
        name: &str,
        table: Arc<dyn TableProvider>,
        context: Arc<Context>,
        tableoid: bool,
    ) -> Self {
        let name = name.to_ascii_lowercase();
        let inner = table.schema();
        let mut fields: Vec<Field> = inner
            .fields()
            .iter()
            .map(|f| {
                if let Some(element) = element_type(&name, f.name()) {
                    let field = Field::new(f.name(), list_of(element), true);
                    match vector_type(&name, f.name()) {
                        Some(v) => field.with_metadata(
                            [(strata_catalog::WIRE_TYPE_KEY.to_string(), v.to_string())].into(),
                        ),
                        None => field,
                    }
                } else if is_regproc_name(&name, f.name()) {
                    Field::new(f.name(), DataType::Int32, f.is_nullable())
                } else {
                    f.as_ref().clone()
                }
            })
            .collect();
        for f in missing_columns(&name) {
            if inner.field_with_name(f.name()).is_err() {
                fields.push(f);
            }
        }
        if tableoid && catalog_oid(&name).is_some() && inner.field_with_name("tableoid").is_err() {
            fields.push(Field::new("tableoid", DataType::Int32, false));
        }
        Augmented {
            schema: Arc::new(Schema::new_with_metadata(fields, inner.metadata().clone())),
            name,
            table,
            context,
        }
    }

    /// `b` (a batch of the wrapped table) in this table's schema.
    fn convert(&self, b: &RecordBatch) -> DfResult<RecordBatch> {
        let rows = b.num_rows();
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|f| -> DfResult<ArrayRef> {
                let Some(source) = b.column_by_name(f.name()) else {
                    if f.name() == "tableoid" {
                        let oid = catalog_oid(&self.name).unwrap_or(0);
                        return Ok(Arc::new(Int32Array::from(vec![oid; rows])));
                    }
                    return Ok(new_null_array(f.data_type(), rows));
                };
                if let Some(element) = element_type(&self.name, f.name()) {
                    return to_list(source, &element);
                }
                if is_regproc_name(&self.name, f.name()) {
                    return self.function_oids(source);
                }
                if source.data_type() != f.data_type() {
                    return Ok(cast(source, f.data_type())?);
                }
                Ok(source.clone())
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Function names (`int48eq`, `-` for none, or an OID's digits) as OIDs.
    fn function_oids(&self, names: &ArrayRef) -> DfResult<ArrayRef> {
        if !matches!(names.data_type(), DataType::Utf8 | DataType::Utf8View) {
            return Ok(cast(names, &DataType::Int32)?);
        }
        let names = cast(names, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let oids: Int32Array = (0..names.len())
            .map(|i| {
                if names.is_null(i) {
                    return None;
                }
                let name = names.value(i);
                let bare = name.strip_prefix("pg_catalog.").unwrap_or(name);
                Some(
                    bare.parse()
                        .ok()
                        .or_else(|| self.context.proc_oids.get(bare).copied())
                        .unwrap_or(0),
                )
            })
            .collect();
        Ok(Arc::new(oids))
    }
}

#[async_trait]
impl TableProvider for Augmented {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let plan = self.table.scan(state, None, &[], None).await?;
        let batches = collect(plan, state.task_ctx()).await?;
        let batches = batches
            .iter()
            .map(|b| self.convert(b))
            .collect::<DfResult<Vec<_>>>()?;
        let batches = fixes::apply(&self.name, &self.schema, batches, &self.context, state).await?;
        MemTable::try_new(self.schema.clone(), vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}

//! The `system` schema: read-only tables describing the server, built from the
//! catalog and the server's state at every scan (not when a query is planned: a
//! prepared statement, which drivers make of any query they run often, must see
//! `system.jobs` as it is now).

use crate::tiers::Tiers;
use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use strata_catalog::Catalog;

const TABLES: &[&str] = &[
    "namespaces",
    "tables",
    "columns",
    "jobs",
    "users",
    "storages",
    "stats",
    "live_queries",
];

#[derive(Debug, Clone)]
pub struct SystemSchema {
    tiers: Arc<Tiers>,
    catalog: Arc<Catalog>,
}

impl SystemSchema {
    pub fn new(tiers: Arc<Tiers>) -> Self {
        let catalog = tiers.catalog.clone();
        SystemSchema { tiers, catalog }
    }
}

/// (live cold rows, cold files) of a table, from its manifests.
fn cold_counts(tiers: &Tiers, table_id: u32) -> (i64, i64) {
    match strata_cold::manifest::load_table(&tiers.store, table_id) {
        Ok(files) => (
            files.iter().map(|f| f.live_rows() as i64).sum(),
            files.len() as i64,
        ),
        Err(e) => {
            tracing::warn!(table_id, error = %e, "reading manifests failed");
            (0, 0)
        }
    }
}

fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(strata_catalog::UTC))),
        false,
    )
}

fn ts_array(v: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(v).with_timezone(strata_catalog::UTC))
}

fn strings(v: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn opt_strings(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// Live hot rows of a table, or 0 (logged) when the scan fails: a system view
/// should still answer.
fn hot_rows(catalog: &Catalog, table: &strata_catalog::TableDef) -> u64 {
    crate::scan::count_hot_rows(catalog.store().as_ref(), table).unwrap_or_else(|e| {
        tracing::warn!(table_id = table.id, error = %e, "counting hot rows failed");
        0
    })
}

impl SystemSchema {
    fn batch(&self, name: &str) -> DfResult<Option<RecordBatch>> {
        Ok(Some(match name {
            "namespaces" => {
                let tables = self.catalog.tables();
                let ns = self.catalog.namespaces();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("namespace_id", DataType::Utf8, false),
                    Field::new("table_count", DataType::Int64, false),
                    ts_field("created_at"),
                ]));
                RecordBatch::try_new(
                    schema,
                    vec![
                        strings(ns.iter().map(|n| n.name.clone()).collect()),
                        Arc::new(Int64Array::from(
                            ns.iter()
                                .map(|n| {
                                    tables.iter().filter(|t| t.namespace == n.name).count() as i64
                                })
                                .collect::<Vec<_>>(),
                        )),
                        ts_array(ns.iter().map(|n| n.created_at).collect()),
                    ],
                )?
            }
            "tables" => {
                let t = self.catalog.tables();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("namespace_id", DataType::Utf8, false),
                    Field::new("table_name", DataType::Utf8, false),
                    Field::new("table_type", DataType::Utf8, false),
                    Field::new("storage_id", DataType::Utf8, false),
                    Field::new("flush_policy", DataType::Utf8, true),
                    Field::new("access_level", DataType::Utf8, true),
                    Field::new("ttl_seconds", DataType::Int64, true),
                    Field::new("hot_rows", DataType::Int64, false),
                    Field::new("cold_rows", DataType::Int64, false),
                    Field::new("cold_files", DataType::Int64, false),
                    ts_field("created_at"),
                ]));
                let cold: Vec<(i64, i64)> =
                    t.iter().map(|d| cold_counts(&self.tiers, d.id)).collect();
                let stream = |d: &strata_catalog::TableDef| d.kind == strata_sql::TableKind::Stream;
                let shared = |d: &strata_catalog::TableDef| d.kind == strata_sql::TableKind::Shared;
                RecordBatch::try_new(
                    schema,
                    vec![
                        strings(t.iter().map(|d| d.namespace.clone()).collect()),
                        strings(t.iter().map(|d| d.name.clone()).collect()),
                        strings(t.iter().map(|d| d.kind.as_str().to_string()).collect()),
                        strings(t.iter().map(|d| d.storage_id.clone()).collect()),
                        opt_strings(
                            t.iter()
                                .map(|d| (!stream(d)).then(|| d.flush_policy.to_string()))
                                .collect(),
                        ),
                        opt_strings(
                            t.iter()
                                .map(|d| shared(d).then(|| d.access_level.as_str().to_string()))
                                .collect(),
                        ),
                        Arc::new(Int64Array::from(
                            t.iter()
                                .map(|d| d.ttl_seconds.map(|s| s as i64))
                                .collect::<Vec<_>>(),
                        )),
                        Arc::new(Int64Array::from(
                            t.iter()
                                .map(|d| hot_rows(&self.catalog, d) as i64)
                                .collect::<Vec<_>>(),
                        )),
                        Arc::new(Int64Array::from(
                            cold.iter().map(|c| c.0).collect::<Vec<_>>(),
                        )),
                        Arc::new(Int64Array::from(
                            cold.iter().map(|c| c.1).collect::<Vec<_>>(),
                        )),
                        ts_array(t.iter().map(|d| d.created_at).collect()),
                    ],
                )?
            }
            "columns" => {
                let mut rows = vec![];
                for t in self.catalog.tables() {
                    for (i, c) in t.columns.iter().enumerate() {
                        rows.push((
                            t.namespace.clone(),
                            t.name.clone(),
                            c.name.clone(),
                            i as u64 + 1,
                            c.ty.sql_name(),
                            c.nullable,
                            c.primary_key,
                            c.default.clone(),
                        ));
                    }
                }
                let schema = Arc::new(Schema::new(vec![
                    Field::new("namespace_id", DataType::Utf8, false),
                    Field::new("table_name", DataType::Utf8, false),
                    Field::new("column_name", DataType::Utf8, false),
                    Field::new("ordinal", DataType::UInt64, false),
                    Field::new("data_type", DataType::Utf8, false),
                    Field::new("is_nullable", DataType::Boolean, false),
                    Field::new("is_primary_key", DataType::Boolean, false),
                    Field::new("column_default", DataType::Utf8, true),
                ]));
                RecordBatch::try_new(
                    schema,
                    vec![
                        strings(rows.iter().map(|r| r.0.clone()).collect()),
                        strings(rows.iter().map(|r| r.1.clone()).collect()),
                        strings(rows.iter().map(|r| r.2.clone()).collect()),
                        Arc::new(UInt64Array::from(
                            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                        )),
                        strings(rows.iter().map(|r| r.4.clone()).collect()),
                        Arc::new(BooleanArray::from(
                            rows.iter().map(|r| r.5).collect::<Vec<_>>(),
                        )),
                        Arc::new(BooleanArray::from(
                            rows.iter().map(|r| r.6).collect::<Vec<_>>(),
                        )),
                        opt_strings(rows.iter().map(|r| r.7.clone()).collect()),
                    ],
                )?
            }
            // Never the verifier: only what a client may know about a user.
            "users" => {
                let users = self.catalog.users();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("user_id", DataType::Utf8, false),
                    Field::new("role", DataType::Utf8, false),
                    Field::new("storage_id", DataType::Utf8, true),
                    ts_field("created_at"),
                    ts_field("updated_at"),
                ]));
                RecordBatch::try_new(
                    schema,
                    vec![
                        strings(users.iter().map(|u| u.name.clone()).collect()),
                        strings(users.iter().map(|u| u.role.to_string()).collect()),
                        opt_strings(users.iter().map(|u| u.storage_id.clone()).collect()),
                        ts_array(users.iter().map(|u| u.created_at).collect()),
                        ts_array(users.iter().map(|u| u.updated_at).collect()),
                    ],
                )?
            }
            "live_queries" => {
                use std::sync::atomic::Ordering;
                let open = self.tiers.live.list();
                let schema = Arc::new(Schema::new(vec![
                    Field::new("live_id", DataType::Utf8, false),
                    Field::new("user_id", DataType::Utf8, false),
                    Field::new("namespace_id", DataType::Utf8, false),
                    Field::new("table_name", DataType::Utf8, false),
                    Field::new("query", DataType::Utf8, false),
                    ts_field("created_at"),
                    Field::new("changes_sent", DataType::Int64, false),
                    Field::new(
                        "last_change_at",
                        DataType::Timestamp(
                            TimeUnit::Microsecond,
                            Some(Arc::from(strata_catalog::UTC)),
                        ),
                        true,
                    ),
                    Field::new("lag", DataType::Int64, false),
                ]));
                RecordBatch::try_new(
                    schema,
                    vec![
                        strings(open.iter().map(|q| q.live_id.clone()).collect()),
                        strings(open.iter().map(|q| q.user.clone()).collect()),
                        strings(open.iter().map(|q| q.namespace.clone()).collect()),
                        strings(open.iter().map(|q| q.table.clone()).collect()),
                        strings(open.iter().map(|q| q.query.clone()).collect()),
                        ts_array(open.iter().map(|q| q.created_at).collect()),
                        Arc::new(Int64Array::from(
                            open.iter()
                                .map(|q| q.changes_sent.load(Ordering::Relaxed) as i64)
                                .collect::<Vec<_>>(),
                        )),
                        Arc::new(
                            TimestampMicrosecondArray::from(
                                open.iter()
                                    .map(|q| {
                                        let at = q.last_change_at.load(Ordering::Relaxed);
                                        (at > 0).then_some(at)
                                    })
                                    .collect::<Vec<_>>(),
                            )
                            .with_timezone(strata_catalog::UTC),
                        ),
                        Arc::new(Int64Array::from(
                            open.iter().map(|q| q.lag() as i64).collect::<Vec<_>>(),
                        )),
                    ],
                )?
            }
            "storages" => crate::system_storages::batch(&self.tiers)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
            "jobs" => self
                .tiers
                .jobs()
                .and_then(|j| j.jobs_batch())
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
            "stats" => crate::system_stats::batch()?,
            _ => return Ok(None),
        }))
    }
}

/// One system table: its schema from a first build, its rows built again at
/// every scan.
#[derive(Debug)]
struct SystemTable {
    source: SystemSchema,
    name: &'static str,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let batch = self.source.batch(self.name)?.ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(format!("system.{} vanished", self.name))
        })?;
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Some(name) = TABLES.iter().copied().find(|t| *t == name) else {
            return Ok(None);
        };
        let Some(first) = self.batch(name)? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(SystemTable {
            source: self.clone(),
            name,
            schema: first.schema(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name)
    }
}

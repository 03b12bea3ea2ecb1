//! DataFusion's view of Strata: a catalog whose schemas are namespaces (looked up
//! live in the Strata catalog, so DDL is visible at once), the `system` schema,
//! and one `TableProvider` per table that plans a hot-tier scan.

use crate::scan::{HotScanExec, KeySelection};
use crate::system::SystemSchema;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use strata_catalog::{Catalog, TableDef};
use strata_sql::TableKind;
use strata_store::Store;

/// The catalog DataFusion sees. Two instances exist: one whose tables show the
/// hidden `_seq`/`_deleted` columns and one whose tables do not; a query that
/// names a system column is planned against the first (see `session.rs`).
#[derive(Debug)]
pub struct StrataCatalogProvider {
    catalog: Arc<Catalog>,
    with_system_columns: bool,
}

impl StrataCatalogProvider {
    pub fn new(catalog: Arc<Catalog>, with_system_columns: bool) -> Self {
        StrataCatalogProvider {
            catalog,
            with_system_columns,
        }
    }
}

impl CatalogProvider for StrataCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .catalog
            .namespaces()
            .into_iter()
            .map(|n| n.name)
            .collect();
        names.push("system".into());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == "system" {
            return Some(Arc::new(SystemSchema::new(self.catalog.clone())));
        }
        if !self.catalog.namespace_exists(name) {
            return None;
        }
        Some(Arc::new(NamespaceSchema {
            catalog: self.catalog.clone(),
            namespace: name.to_string(),
            with_system_columns: self.with_system_columns,
        }))
    }
}

#[derive(Debug)]
struct NamespaceSchema {
    catalog: Arc<Catalog>,
    namespace: String,
    with_system_columns: bool,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .tables()
            .into_iter()
            .filter(|t| t.namespace == self.namespace)
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.catalog.table(&self.namespace, name).map(|def| {
            Arc::new(StrataTable::new(
                self.catalog.store().clone(),
                def,
                self.with_system_columns,
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog.table(&self.namespace, name).is_some()
    }
}

/// One Strata table as DataFusion sees it.
#[derive(Debug)]
pub struct StrataTable {
    store: Arc<Store>,
    def: Arc<TableDef>,
    schema: SchemaRef,
}

impl StrataTable {
    pub fn new(store: Arc<Store>, def: Arc<TableDef>, with_system_columns: bool) -> Self {
        let schema = def.arrow_schema(with_system_columns);
        StrataTable { store, def, schema }
    }

    /// The partition a scan reads: SHARED tables have exactly one, "".
    fn partition(&self) -> DfResult<String> {
        match self.def.kind {
            TableKind::Shared => Ok(String::new()),
            other => Err(datafusion::error::DataFusionError::External(Box::new(
                strata_common::StrataError::unsupported(format!(
                    "{} tables are not supported yet",
                    other.as_str()
                )),
            ))),
        }
    }
}

#[async_trait]
impl TableProvider for StrataTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        // Primary-key conditions narrow the key range; DataFusion still applies
        // every filter to the rows the scan returns.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let selection = KeySelection::from_filters(&self.def, filters);
        // A LIMIT is only pushed down when every filter was applied exactly,
        // which DataFusion guarantees by not passing one otherwise.
        Ok(Arc::new(HotScanExec::new(
            self.store.clone(),
            self.def.clone(),
            self.partition()?,
            selection,
            projection,
            schema,
            limit,
        )))
    }
}

//! DataFusion's view of Strata: a catalog whose schemas are namespaces (looked up
//! live in the Strata catalog, so DDL is visible at once), the `system` schema,
//! and one `TableProvider` per table that plans a scan across both tiers.

use crate::context::ActingUser;
use crate::merged::MergedScanExec;
use crate::overlay::OverlayExec;
use crate::scan::KeySelection;
use crate::system::SystemSchema;
use crate::tiers::Tiers;
use crate::txn::TxnHandle;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::datasource::TableType;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_sql::TableKind;

/// The catalog DataFusion sees. Two instances exist: one whose tables show the
/// hidden `_seq`/`_deleted` columns and one whose tables do not; a query that
/// names a system column is planned against the first (see `session.rs`).
#[derive(Debug)]
pub struct StrataCatalogProvider {
    tiers: Arc<Tiers>,
    with_system_columns: bool,
    /// Schemas that are not namespaces (`pg_catalog`), added at startup.
    extra: parking_lot::RwLock<Vec<(String, Arc<dyn SchemaProvider>)>>,
}

impl StrataCatalogProvider {
    pub fn new(tiers: Arc<Tiers>, with_system_columns: bool) -> Self {
        StrataCatalogProvider {
            tiers,
            with_system_columns,
            extra: Default::default(),
        }
    }

    pub(crate) fn add_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) {
        self.extra.write().push((name.to_string(), schema));
    }
}

impl CatalogProvider for StrataCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names = self.tiers.catalog.schema_names();
        names.extend(self.extra.read().iter().map(|(n, _)| n.clone()));
        names
    }

    /// Schemas served beside the namespaces (pg_catalog).
    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        self.add_schema(name, schema);
        Ok(None)
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some((_, s)) = self.extra.read().iter().find(|(n, _)| n == name) {
            return Some(s.clone());
        }
        if name == "system" {
            return Some(Arc::new(SystemSchema::new(self.tiers.clone())));
        }
        if !self.tiers.catalog.namespace_exists(name) {
            return None;
        }
        Some(Arc::new(NamespaceSchema {
            tiers: self.tiers.clone(),
            namespace: name.to_string(),
            with_system_columns: self.with_system_columns,
        }))
    }
}

#[derive(Debug)]
struct NamespaceSchema {
    tiers: Arc<Tiers>,
    namespace: String,
    with_system_columns: bool,
}

#[async_trait]
impl SchemaProvider for NamespaceSchema {
    fn table_names(&self) -> Vec<String> {
        self.tiers.catalog.table_names_in(&self.namespace)
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Ok(self.tiers.catalog.table(&self.namespace, name).map(|def| {
            Arc::new(StrataTable::new(
                self.tiers.clone(),
                def,
                self.with_system_columns,
            )) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tiers.catalog.table(&self.namespace, name).is_some()
    }
}

/// One Strata table as DataFusion sees it.
#[derive(Debug)]
pub struct StrataTable {
    tiers: Arc<Tiers>,
    def: Arc<TableDef>,
    schema: SchemaRef,
}

impl StrataTable {
    pub fn new(tiers: Arc<Tiers>, def: Arc<TableDef>, with_system_columns: bool) -> Self {
        let schema = def.arrow_schema(with_system_columns);
        StrataTable { tiers, def, schema }
    }

    /// Filters as a predicate over file and row-group statistics; None when no
    /// filter can prune (or one cannot be planned, which only costs pruning).
    fn pruning_predicate(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Option<Arc<PruningPredicate>> {
        let expr = conjunction(filters.iter().cloned())?;
        let df_schema = DFSchema::try_from(self.schema.as_ref().clone()).ok()?;
        let physical = state.create_physical_expr(expr, &df_schema).ok()?;
        let predicate = PruningPredicateBuilder::new()
            .with_file_schema(self.schema.clone())
            .try_build(physical)
            .ok()?;
        (!predicate.always_true()).then(|| Arc::new(predicate))
    }

    /// The user the scan acts for; every session sets one.
    fn acting_user(state: &dyn Session) -> DfResult<String> {
        state
            .config()
            .get_extension::<ActingUser>()
            .map(|u| u.0.clone())
            .ok_or_else(|| {
                datafusion::error::DataFusionError::External(Box::new(
                    strata_common::StrataError::internal("a table was read with no acting user"),
                ))
            })
    }
}

/// The partition holding `user`'s rows of `table`: the user's own for a USER
/// table, the single "" partition of a SHARED or STREAM table.
pub(crate) fn partition_of(table: &TableDef, user: &str) -> String {
    match table.kind {
        TableKind::User => user.to_string(),
        _ => String::new(),
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
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&projection)?);
        let user = Self::acting_user(state)?;
        crate::privileges::check_table_access(&self.tiers.catalog, &user, &self.def, false)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        let selection = KeySelection::from_filters(&self.def, filters);
        // A LIMIT is only pushed down when every filter was applied exactly,
        // which DataFusion guarantees by not passing one otherwise.
        let predicate = self.pruning_predicate(state, filters);
        let partition = partition_of(&self.def, &user);
        let staged = match state.config().get_extension::<TxnHandle>() {
            Some(t) => t
                .overlay(&self.def, &partition)
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
            None => None,
        };
        let Some(staged) = staged else {
            return Ok(Arc::new(MergedScanExec::new(
                self.tiers.clone(),
                self.def.clone(),
                partition,
                selection,
                projection,
                schema,
                limit,
                predicate,
            )));
        };
        // Inside a transaction block that wrote this partition: read whole
        // committed rows (the key decides what the block replaced) and no
        // LIMIT, since masked rows would make a limited read come up short.
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let committed = Arc::new(MergedScanExec::new(
            self.tiers.clone(),
            self.def.clone(),
            partition.clone(),
            selection,
            all,
            self.schema.clone(),
            None,
            predicate,
        ));
        Ok(Arc::new(OverlayExec::new(
            committed,
            self.def.clone(),
            partition,
            staged,
            projection,
            schema,
        )))
    }
}

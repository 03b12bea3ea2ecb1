//! The engine: the shared state every session plans against.

use crate::provider::StrataCatalogProvider;
use crate::system::SystemSchema;
use crate::tiers::Tiers;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, MemoryCatalogProviderList};
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionConfig;
use futures::{FutureExt, StreamExt};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use strata_catalog::{Catalog, DEFAULT_NAMESPACE};
use strata_store::Store;

/// DataFusion catalog holding the tables as users see them (named as the
/// database is).
pub const CATALOG: &str = strata_pgcatalog::DATABASE;
/// The same tables with `_seq` and `_deleted` visible.
pub const CATALOG_WITH_SYSTEM_COLUMNS: &str = "strata_sys";

pub struct Engine {
    pub(crate) store: Arc<Store>,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) tiers: Arc<Tiers>,
    base_state: SessionState,
    /// Query execution runs here, apart from the runtime that serves sockets, so
    /// a CPU-heavy query never keeps the server from accepting and answering
    /// other connections (the layout InfluxDB 3 and GreptimeDB use too).
    query_runtime: QueryRuntime,
    pub(crate) options: EngineOptions,
    /// Each pg_class relation's namespace (see `pg_catalog::RelationNamespaces`).
    pub(crate) rel_namespaces: strata_pgcatalog::RelationNamespaces,
}

struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; let its threads wind down.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Aborts a query's task (or a cold file's decode task) when the consumer of
/// its stream goes away (cancellation, a closed connection, a satisfied LIMIT).
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end (a panic comes back as the JoinError).
    pub(crate) async fn finish(mut self) -> std::result::Result<(), tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The engine's share of the server configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Bytes all queries' operators share (DataFusion's memory pool).
    pub memory_limit: usize,
    /// Where operators spill when the pool is full.
    pub spill_dir: std::path::PathBuf,
    /// The most a session may set `copy_memory_limit` to.
    pub max_copy_memory: usize,
    /// The most bytes of rows a transaction block may stage.
    pub max_transaction_memory: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memory_limit: 2 << 30,
            spill_dir: std::env::temp_dir(),
            max_copy_memory: 1 << 30,
            max_transaction_memory: 256 << 20,
        }
    }
}

/// Stack of the threads that plan and run queries. Planning, optimizing,
/// evaluating and dropping an expression recurse on its depth, which
/// `strata_sql::limits::MAX_EXPRESSION_DEPTH` bounds; this is sized so that
/// bound is safe. Untouched stack pages cost no memory.
pub const QUERY_THREAD_STACK: usize = 64 << 20;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The catalogs, of which only `strata` is listed: `strata_sys` (the same
/// tables with their system columns) is found by name when a statement names
/// a system column, but `information_schema` would list every table twice.
#[derive(Debug)]
struct ListedCatalogs {
    inner: MemoryCatalogProviderList,
    listed: Vec<String>,
}

impl CatalogProviderList for ListedCatalogs {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn datafusion::catalog::CatalogProvider>,
    ) -> Option<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }

    fn catalog_names(&self) -> Vec<String> {
        self.listed.clone()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn datafusion::catalog::CatalogProvider>> {
        self.inner.catalog(name)
    }
}

impl Engine {
    pub fn new(tiers: Arc<Tiers>, options: EngineOptions) -> std::io::Result<Arc<Engine>> {
        let store = tiers.store.clone();
        let catalog = tiers.catalog.clone();
        let list = MemoryCatalogProviderList::new();
        let strata = Arc::new(StrataCatalogProvider::new(tiers.clone(), false));
        list.register_catalog(CATALOG.into(), strata.clone());
        let strata_sys = Arc::new(StrataCatalogProvider::new(tiers.clone(), true));
        list.register_catalog(CATALOG_WITH_SYSTEM_COLUMNS.into(), strata_sys.clone());
        let list = ListedCatalogs {
            inner: list,
            listed: vec![CATALOG.to_string()],
        };
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, DEFAULT_NAMESPACE)
            .with_create_default_catalog_and_schema(false)
            // information_schema is strata-pgcatalog's (DataFusion's, with
            // Postgres' columns, table_constraints and key_column_usage).
            .with_information_schema(false)
            .with_target_partitions(2);
        // One pool for every query: a sort or aggregate past its fair share
        // spills (or fails with 53200) instead of taking the machine.
        std::fs::create_dir_all(&options.spill_dir)?;
        let runtime_env = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(options.memory_limit)))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(
                DiskManagerMode::Directories(vec![options.spill_dir.clone()]),
            ))
            .build_arc()
            .map_err(std::io::Error::other)?;
        let base_state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime_env)
            .with_catalog_list(Arc::new(list))
            .with_default_features()
            .build();
        let rel_namespaces = strata_pgcatalog::RelationNamespaces::default();
        let base_state = strata_pgcatalog::install(
            base_state,
            tiers.clone(),
            &[strata as Arc<dyn CatalogProvider>, strata_sys],
            Arc::new(SystemSchema::new(tiers.clone())),
            &rel_namespaces,
        )
        .map_err(std::io::Error::other)?;
        // More threads than cores: the OS time-slices a short query in beside a
        // long one instead of queueing it behind it.
        let threads = 2 * std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .max(2);
        let query_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("strata-query")
            .thread_stack_size(QUERY_THREAD_STACK)
            .enable_all()
            .build()?;
        Ok(Arc::new(Engine {
            store,
            catalog,
            tiers,
            base_state,
            query_runtime: QueryRuntime(Some(query_runtime)),
            options,
            rel_namespaces,
        }))
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn tiers(&self) -> &Arc<Tiers> {
        &self.tiers
    }

    /// The state every session's DataFusion context starts from (the
    /// catalogs, pg_catalog, the Postgres functions).
    pub fn base_state(&self) -> SessionState {
        self.base_state.clone()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Runs a DataFrame on the query runtime and streams its batches back.
    pub fn execute(&self, df: DataFrame) -> SendableRecordBatchStream {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        self.spawn_stream(schema, df.execute_stream())
    }

    /// Runs a logical plan that is already analyzed and optimized (see
    /// `plan_cache`): physical planning and execution only.
    pub fn execute_optimized(
        &self,
        state: SessionState,
        plan: LogicalPlan,
    ) -> SendableRecordBatchStream {
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        self.spawn_stream(schema, async move {
            let physical = state
                .query_planner()
                .create_physical_plan(&plan, &state)
                .await?;
            datafusion::physical_plan::execute_stream(physical, state.task_ctx())
        })
    }

    /// Starts `start` (which plans and starts a query) on the query runtime
    /// and streams the query's batches back.
    fn spawn_stream<F>(&self, schema: SchemaRef, start: F) -> SendableRecordBatchStream
    where
        F: std::future::Future<Output = datafusion::error::Result<SendableRecordBatchStream>>
            + Send
            + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        let task = async move {
            // A panic while computing rows must reach the client as an error:
            // were the task just to die, the stream would end as if complete.
            let run = async {
                let mut stream = match start.await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                while let Some(item) = stream.next().await {
                    if tx.send(item).await.is_err() {
                        break;
                    }
                }
            };
            if let Err(payload) = AssertUnwindSafe(run).catch_unwind().await {
                let e = crate::panics::panic_error(payload);
                let _ = tx.send(Err(DataFusionError::External(Box::new(e)))).await;
            }
        };
        let handle = match &self.query_runtime.0 {
            Some(rt) => rt.spawn(task),
            None => tokio::spawn(task),
        };
        let guard = AbortOnDrop(handle);
        let stream = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            rx.recv().await.map(|b| (b, (rx, guard)))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }

    /// The lock writers of a table hold from reading to committing; flush and
    /// compaction commits take it too, so they never interleave with a write.
    pub fn write_lock(&self, table_id: u32) -> Arc<tokio::sync::Mutex<()>> {
        self.tiers.write_lock(table_id)
    }
}

//! `pg_catalog` for tools (psql's `\d` family, JDBC metadata, drivers' type
//! lookups), built by `datafusion-pg-catalog` over Strata's own catalog:
//! namespaces are schemas (with `system` for the system tables), tables carry
//! their columns, and Strata's users are the roles. Also the Postgres
//! functions such tools call that the crate does not provide.
//!
//! The catalog DataFusion sees holds a second copy of every table (the one
//! showing `_seq`/`_deleted`); pg_catalog lists only the plain one.

mod arrays;
mod augment;
mod catalog_oids;
mod extra_tables;
mod fixes;
mod roles;
mod tables;
mod types;

pub(crate) use catalog_oids::catalog_oid;
pub(crate) use extra_tables::is_extra_table;
pub(crate) use tables::{CONSTRAINT_OID_OFFSET, INDEX_OID_OFFSET};
pub use tables::{RelationNamespaces, table_oid};

use crate::DATABASE as CATALOG;
use crate::functions::Constant;
use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Int32Type};
use datafusion::catalog::CatalogProvider;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};
use datafusion_pg_catalog::pg_catalog::{self as pgc, PgCatalogSchemaProvider};
use std::sync::Arc;
use strata_catalog::{Role as StrataRole, SYSTEM_SCHEMA};
use strata_tiers::Tiers;

/// Strata's catalog as `datafusion-pg-catalog` reads it.
#[derive(Clone)]
pub(crate) struct StrataCatalogInfo {
    tiers: Arc<Tiers>,
    /// The `system` schema's tables (system.jobs, …), listed as tables.
    system: Arc<dyn SchemaProvider>,
}

impl std::fmt::Debug for StrataCatalogInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrataCatalogInfo")
    }
}

#[async_trait]
impl CatalogInfo for StrataCatalogInfo {
    async fn catalog_names(&self) -> DfResult<Vec<String>> {
        Ok(vec![CATALOG.to_string()])
    }

    async fn schema_names(&self, catalog: &str) -> DfResult<Option<Vec<String>>> {
        if catalog != CATALOG {
            return Ok(None);
        }
        let mut names = self.tiers.catalog.schema_names();
        names.extend(["pg_catalog", "information_schema"].map(String::from));
        Ok(Some(names))
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> DfResult<Option<Vec<String>>> {
        if catalog != CATALOG {
            return Ok(None);
        }
        Ok(Some(match schema {
            SYSTEM_SCHEMA => self.system.table_names(),
            "pg_catalog" | "information_schema" => vec![],
            ns => self.tiers.catalog.table_names_in(ns),
        }))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> DfResult<Option<SchemaRef>> {
        if catalog != CATALOG {
            return Ok(None);
        }
        if schema == SYSTEM_SCHEMA {
            let t = self.system.table(table).await?;
            return Ok(t.map(|t| t.schema()));
        }
        Ok(self
            .tiers
            .catalog
            .table(schema, table)
            .map(|def| def.arrow_schema(false)))
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> DfResult<Option<TableType>> {
        Ok(self
            .table_schema(catalog, schema, table)
            .await?
            .map(|_| TableType::Base))
    }
}

/// Strata's users as Postgres roles (`pg_roles`, `\du`).
#[derive(Clone)]
pub(crate) struct StrataRoles {
    tiers: Arc<Tiers>,
}

impl std::fmt::Debug for StrataRoles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrataRoles")
    }
}

#[async_trait]
impl PgCatalogContextProvider for StrataRoles {
    async fn roles(&self) -> Vec<String> {
        self.tiers
            .catalog
            .users()
            .iter()
            .map(|u| u.name.clone())
            .collect()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        let u = self.tiers.catalog.user(name)?;
        let admin = matches!(u.role, StrataRole::Dba | StrataRole::System);
        Some(Role {
            name: u.name.clone(),
            is_superuser: u.role == StrataRole::System,
            can_login: true,
            can_create_db: false,
            can_create_role: admin,
            can_create_user: admin,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![],
        })
    }
}

fn df_err(e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Execution(e.to_string())
}

/// Adds `pg_catalog` (as a schema of each of `catalogs`) and the Postgres
/// functions tools call to the engine's base state (every session starts
/// from it). `system` is the schema of the system tables. The first of
/// `catalogs` is the default one; the others show system columns
/// (`tableoid`).
pub fn install(
    state: SessionState,
    tiers: Arc<Tiers>,
    catalogs: &[Arc<dyn CatalogProvider>],
    system: Arc<dyn SchemaProvider>,
    rel_namespaces: &RelationNamespaces,
) -> DfResult<SessionState> {
    let ctx = SessionContext::new_with_state(state);
    let system_tables = system.clone();
    let statics = Arc::new(pgc::PgCatalogStaticTables::try_new().map_err(df_err)?);
    let provider = PgCatalogSchemaProvider::try_new(
        StrataCatalogInfo {
            tiers: tiers.clone(),
            system: system.clone(),
        },
        statics.clone(),
        StrataRoles {
            tiers: tiers.clone(),
        },
    )
    .map_err(df_err)?;
    let index_defs = tables::IndexDefs::default();
    let provider = tables::StrataPgCatalog::new(
        Arc::new(provider),
        tiers.clone(),
        index_defs.clone(),
        rel_namespaces.clone(),
        function_oids(&statics.pg_proc)?,
    );
    // The first catalog is the one without system columns; the others (the
    // one a statement naming a system column is planned against) show
    // `tableoid`.
    let with_tableoid: Arc<dyn SchemaProvider> = Arc::new(provider.with_tableoid());
    let provider: Arc<dyn SchemaProvider> = Arc::new(provider);
    let information_schema: Arc<dyn SchemaProvider> =
        Arc::new(crate::information_schema::StrataInformationSchema::new(
            ctx.state().catalog_list().clone(),
            tiers.clone(),
            system_tables,
        ));
    for (i, c) in catalogs.iter().enumerate() {
        let p = if i == 0 { &provider } else { &with_tableoid };
        c.register_schema("pg_catalog", p.clone())?;
        c.register_schema("information_schema", information_schema.clone())?;
    }

    ctx.register_udf(pgc::create_current_database_udf(CATALOG));
    ctx.register_udf(pgc::create_current_schema_udf());
    ctx.register_udf(pgc::create_current_schemas_udf());
    ctx.register_udf(ScalarUDF::from(Owner {
        tiers: tiers.clone(),
        signature: Signature::any(1, Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::from(IndexDef {
        defs: index_defs,
        tiers: tiers.clone(),
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(3)],
            Volatility::Stable,
        ),
    }));
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_any_column_privilege",
    ] {
        ctx.register_udf(pgc::has_privilege_udf::create_has_privilege_udf(name));
    }
    ctx.register_udf(pgc::create_pg_table_is_visible());
    ctx.register_udf(ScalarUDF::from(types::ToRegtype::new(&statics.pg_type)?));
    ctx.register_udf(ScalarUDF::from(types::TypeIsVisible::new()));
    ctx.register_udf(crate::functions::like_escape_udf());
    ctx.register_udf(ScalarUDF::from(types::ColumnDefault {
        tiers: tiers.clone(),
        signature: Signature::any(2, Volatility::Stable),
    }));
    ctx.register_udf(pgc::format_type::create_format_type_udf());
    ctx.register_udtf("pg_get_keywords", statics.pg_get_keywords.clone());
    ctx.register_udf(pgc::create_pg_relation_is_publishable_udf());
    ctx.register_udf(pgc::create_pg_get_statisticsobjdef_columns_udf());
    ctx.register_udf(pgc::create_pg_backend_pid_udf());
    ctx.register_udf(pgc::create_pg_stat_get_numscans());
    ctx.register_udf(pgc::create_pg_get_partition_ancestors_udf());
    ctx.register_udf(pgc::quote_ident_udf::create_quote_ident_udf());
    ctx.register_udf(pgc::quote_ident_udf::create_parse_ident_udf());
    ctx.register_udf(pgc::array_bounds_udf::create_array_upper_udf());
    ctx.register_udf(pgc::array_bounds_udf::create_array_lower_udf());
    ctx.register_udf(ScalarUDF::from(Constant::text(
        "version",
        Some(format!(
            "PostgreSQL 15.0 (Strata {}) on x86_64-pc-linux-gnu",
            env!("CARGO_PKG_VERSION")
        )),
        Signature::nullary(Volatility::Immutable),
    )));
    // pg_dump asks first; a Strata server is never a standby.
    ctx.register_udf(ScalarUDF::from(Constant::new(
        "pg_is_in_recovery",
        ScalarValue::Boolean(Some(false)),
        Signature::nullary(Volatility::Stable),
    )));
    // psql's \df lists functions outside pg_catalog: Strata has none, but the
    // query must plan.
    ctx.register_udf(ScalarUDF::from(Constant::new(
        "pg_function_is_visible",
        ScalarValue::Boolean(Some(true)),
        Signature::any(1, Volatility::Stable),
    )));
    for (name, arities) in [
        ("pg_get_function_result", vec![1]),
        ("pg_get_function_arguments", vec![1]),
        ("obj_description", vec![1, 2]),
        ("col_description", vec![2]),
        ("shobj_description", vec![2]),
        ("pg_get_viewdef", vec![1, 2]),
    ] {
        let signature = Signature::one_of(
            arities.into_iter().map(TypeSignature::Any).collect(),
            Volatility::Stable,
        );
        ctx.register_udf(ScalarUDF::from(Constant::text(name, None, signature)));
    }
    register_tool_functions(&ctx, &tiers);
    pgc::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(&ctx);
    let state = ctx.state();
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_type_planner(Arc::new(pgc::oid_type_planner::PgOidTypePlanner))
        .build())
}

/// `pg_proc` OIDs by function name: the lowest for an overloaded name (a
/// `regproc` column names a function by name only when it is unambiguous).
fn function_oids(
    pg_proc: &datafusion_pg_catalog::pg_catalog::ArrowTable,
) -> DfResult<std::collections::HashMap<String, i32>> {
    let mut out = std::collections::HashMap::new();
    for b in pg_proc.data() {
        let (Some(names), Some(oids)) = (b.column_by_name("proname"), b.column_by_name("oid"))
        else {
            return Err(DataFusionError::Internal(
                "pg_proc lacks proname/oid".into(),
            ));
        };
        let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
        let oids = datafusion::arrow::compute::cast(oids, &DataType::Int32)?;
        let oids = oids.as_primitive::<Int32Type>();
        for (i, name) in names.as_string::<i32>().iter().enumerate() {
            if let Some(name) = name
                && oids.is_valid(i)
            {
                let oid = oids.value(i);
                out.entry(name.to_string())
                    .and_modify(|o: &mut i32| *o = (*o).min(oid))
                    .or_insert(oid);
            }
        }
    }
    Ok(out)
}

/// The functions of `crate::functions::{definitions, misc}` (pg_dump's,
/// DBeaver's and Metabase's catalog queries), some replacing
/// `datafusion-pg-catalog`'s narrower ones.
fn register_tool_functions(ctx: &SessionContext, tiers: &Arc<Tiers>) {
    use crate::functions::{definitions, misc};
    ctx.register_udf(ScalarUDF::from(definitions::PgGetExpr::new()));
    ctx.register_udf(ScalarUDF::from(definitions::ConstraintDef {
        tiers: tiers.clone(),
        offset: CONSTRAINT_OID_OFFSET,
        signature: Signature::one_of(
            vec![TypeSignature::Any(1), TypeSignature::Any(2)],
            Volatility::Stable,
        ),
    }));
    ctx.register_udf(ScalarUDF::from(misc::Format::new()));
    ctx.register_udf(ScalarUDF::from(misc::QuoteLiteral::new()));
    ctx.register_udf(ScalarUDF::from(crate::functions::regclass::Regclass {
        tiers: tiers.clone(),
        signature: Signature::any(1, Volatility::Stable),
    }));
    ctx.register_udf(ScalarUDF::from(misc::EncodingToChar::new()));
    ctx.register_udf(ScalarUDF::from(misc::FirstKey::new()));
    for name in [
        "pg_relation_size",
        "pg_total_relation_size",
        "pg_table_size",
        "pg_indexes_size",
    ] {
        ctx.register_udf(ScalarUDF::from(misc::ZeroSize::new(name)));
    }
    ctx.register_udtf("pg_options_to_table", Arc::new(misc::OptionsToTable));
    // Strata has no partitions, rules, triggers or ACLs: their definitions
    // and default ACLs are NULL (pg_dump prints no GRANT then).
    for (name, arities) in [
        ("pg_get_partkeydef", vec![1]),
        ("pg_get_ruledef", vec![1, 2]),
        ("pg_get_triggerdef", vec![1, 2]),
        ("acldefault", vec![2]),
    ] {
        let signature = Signature::one_of(
            arities.into_iter().map(TypeSignature::Any).collect(),
            Volatility::Stable,
        );
        ctx.register_udf(ScalarUDF::from(Constant::text(name, None, signature)));
    }
    // pg_dump -j exports its snapshot for its workers, which import it with
    // SET TRANSACTION SNAPSHOT (accepted and ignored): any id does.
    ctx.register_udf(ScalarUDF::from(Constant::text(
        "pg_export_snapshot",
        Some("00000003-00000001-1".into()),
        Signature::nullary(Volatility::Volatile),
    )));
}

/// `pg_get_userbyid`: Strata keeps no owners, and pg_catalog's owner columns
/// all name the bootstrap superuser (OID 10 in Postgres), which is Strata's
/// system user.
#[derive(Debug)]
struct Owner {
    tiers: Arc<Tiers>,
    signature: Signature,
}

crate::functions::identity_by_arc!(Owner, tiers);

impl ScalarUDFImpl for Owner {
    fn name(&self) -> &str {
        "pg_get_userbyid"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let users = self.tiers.catalog.users();
        let name = users
            .iter()
            .find(|u| u.role == StrataRole::System)
            .map_or("postgres", |u| u.name.as_str());
        Ok(match args.args.first() {
            Some(ColumnarValue::Array(a)) => {
                ColumnarValue::Array(Arc::new(StringArray::from(vec![name; a.len()])))
            }
            _ => ColumnarValue::Scalar(ScalarValue::Utf8(Some(name.to_string()))),
        })
    }
}

/// `pg_get_indexdef(oid [, column, pretty])` for primary-key indexes (the only
/// indexes Strata has): the CREATE INDEX text, or with a column number > 0
/// that key column's name (column 1, the key's one column; NULL past it);
/// NULL for any other OID.
#[derive(Debug)]
struct IndexDef {
    defs: tables::IndexDefs,
    tiers: Arc<Tiers>,
    signature: Signature,
}

crate::functions::identity_by_arc!(IndexDef, defs, tiers);

impl ScalarUDFImpl for IndexDef {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(arg) = args.args.first() else {
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)));
        };
        let oids = arg.to_array(args.number_rows)?;
        let oids = datafusion::arrow::compute::cast(&oids, &DataType::Int32)?;
        let oids = oids.as_primitive::<Int32Type>();
        if let Some(column) = args.args.get(1) {
            let columns = column.to_array(args.number_rows)?;
            let columns = datafusion::arrow::compute::cast(&columns, &DataType::Int64)?;
            let columns = columns.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let tables =
                crate::functions::definitions::table_by_derived_oid(&self.tiers, INDEX_OID_OFFSET);
            let defs = self.defs.lock();
            let out: StringArray = oids
                .iter()
                .zip(columns.iter())
                .map(|(o, c)| match (o, c) {
                    (Some(o), Some(0)) => defs.get(&o).cloned(),
                    (Some(o), Some(1)) => {
                        crate::functions::definitions::pk_column(tables.get(&i64::from(o))?)
                    }
                    _ => None,
                })
                .collect();
            return Ok(ColumnarValue::Array(Arc::new(out)));
        }
        let defs = self.defs.lock();
        let out: StringArray = oids
            .iter()
            .map(|o| o.and_then(|o| defs.get(&o).cloned()))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

//! The `pg_catalog` tables that describe Strata's own tables more closely than
//! `datafusion-pg-catalog` can from Arrow schemas alone: `pg_attribute` with
//! each column's Postgres type (UUID, JSON and VARCHAR are text in Arrow; most
//! arrays have no Arrow-derived type), and every table's primary key as the
//! index and constraint Postgres would keep for it (`pg_class`, `pg_index`,
//! `pg_constraint`), which psql's `\d` and JDBC's `getPrimaryKeys` read, and
//! each column DEFAULT in `pg_attrdef` (psql's `\d`, SQLAlchemy's reflection).
//!
//! Each is the crate's table with rows corrected or added at scan time. A
//! Strata table's OID is derived from its id ([`table_oid`]) in every table
//! here, in place of the crate's counter; a primary key's index and
//! constraint get OIDs derived from its table's.

use super::augment::{self, Augmented};
use super::extra_tables::{EXTRA_TABLES, extra_table};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, take};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, SchemaRef};
use datafusion::catalog::{MemTable, SchemaProvider, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_tiers::Tiers;

/// A Strata table's OID in pg_catalog: this plus its table id, stable across
/// sessions and restarts, so the table OID a RowDescription carries (what
/// JDBC's getTableName looks up) names the same table in `pg_class`. The
/// crate's own OIDs (other relations) count up from 16384, far below.
pub(crate) const TABLE_OID_BASE: i32 = 1_000_000;

/// The pg_catalog OID of a Strata table.
pub fn table_oid(def: &TableDef) -> i32 {
    TABLE_OID_BASE.saturating_add(i32::try_from(def.id).unwrap_or(i32::MAX - TABLE_OID_BASE))
}

/// Offsets of a primary key's index and constraint OIDs from its table's.
pub(crate) const INDEX_OID_OFFSET: i32 = 1_000_000_000;
pub(crate) const CONSTRAINT_OID_OFFSET: i32 = 1_500_000_000;
/// `pg_attrdef` OIDs: the table's OID times this plus the column number.
const ATTRDEF_OID_BASE: i32 = 1_600_000_000;

/// `CREATE UNIQUE INDEX …` text of each primary-key index by OID, filled when
/// `pg_index` or `pg_class` is scanned, for `pg_get_indexdef`.
pub(crate) type IndexDefs = Arc<Mutex<HashMap<i32, String>>>;

/// The namespace of every relation by OID, filled when `pg_class` is scanned,
/// for `pg_table_is_visible` (the catalogs' own relations have OIDs only the
/// crate knows).
pub type RelationNamespaces = Arc<Mutex<HashMap<i32, String>>>;

/// `pg_catalog` with the tables above replaced.
#[derive(Debug)]
pub(crate) struct StrataPgCatalog {
    inner: Arc<dyn SchemaProvider>,
    tiers: Arc<Tiers>,
    index_defs: IndexDefs,
    rel_namespaces: RelationNamespaces,
    /// For the fixes every table gets ([`Augmented`]).
    context: Arc<augment::Context>,
    /// Whether tables show `tableoid`: a system column, absent from `*` in
    /// Postgres, so only the catalog a statement naming it is planned
    /// against (the one showing `_seq`/`_deleted`) shows it.
    tableoid: bool,
}

impl StrataPgCatalog {
    pub(crate) fn new(
        inner: Arc<dyn SchemaProvider>,
        tiers: Arc<Tiers>,
        index_defs: IndexDefs,
        rel_namespaces: RelationNamespaces,
        proc_oids: HashMap<String, i32>,
    ) -> Self {
        let context = Arc::new(augment::Context {
            tiers: tiers.clone(),
            proc_oids,
            inner: inner.clone(),
        });
        StrataPgCatalog {
            inner,
            tiers,
            index_defs,
            rel_namespaces,
            context,
            tableoid: false,
        }
    }

    /// The same catalog with `tableoid` on every system catalog table.
    pub(crate) fn with_tableoid(&self) -> Self {
        StrataPgCatalog {
            inner: self.inner.clone(),
            tiers: self.tiers.clone(),
            index_defs: self.index_defs.clone(),
            rel_namespaces: self.rel_namespaces.clone(),
            context: self.context.clone(),
            tableoid: true,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Attribute,
    Class,
    Index,
    Constraint,
    AttrDef,
}

#[async_trait]
impl SchemaProvider for StrataPgCatalog {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(EXTRA_TABLES.map(String::from));
        names
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let lower = name.to_ascii_lowercase();
        let table = match self.patched(&lower).await? {
            Some(t) => t,
            None => match extra_table(&lower)? {
                Some(t) => t,
                None => return Ok(None),
            },
        };
        Ok(Some(Arc::new(Augmented::new(
            &lower,
            table,
            self.context.clone(),
            self.tableoid,
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name) || EXTRA_TABLES.contains(&name.to_ascii_lowercase().as_str())
    }
}

impl StrataPgCatalog {
    /// The crate's table `name`, with Strata's rows where [`Patched`] has them.
    async fn patched(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let which = match name {
            "pg_attribute" => Which::Attribute,
            "pg_class" => Which::Class,
            "pg_index" => Which::Index,
            "pg_constraint" => Which::Constraint,
            "pg_attrdef" => Which::AttrDef,
            _ => return self.inner.table(name).await,
        };
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(Patched {
            which,
            table,
            inner: self.inner.clone(),
            tiers: self.tiers.clone(),
            index_defs: self.index_defs.clone(),
            rel_namespaces: self.rel_namespaces.clone(),
        })))
    }
}

#[derive(Debug)]
struct Patched {
    which: Which,
    table: Arc<dyn TableProvider>,
    inner: Arc<dyn SchemaProvider>,
    tiers: Arc<Tiers>,
    index_defs: IndexDefs,
    rel_namespaces: RelationNamespaces,
}

/// A Strata table as pg_catalog numbers it (`oid` is [`table_oid`]; the map
/// of relations is keyed by the crate's OID for it).
struct Relation {
    oid: i32,
    namespace_oid: i32,
    def: Arc<TableDef>,
}

#[async_trait]
impl TableProvider for Patched {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
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
        let schema = self.schema();
        let batches = rows_of(&self.table, state).await?;
        let relations = self.relations(state).await?;
        self.remember_index_defs(&relations);
        let batches = match self.which {
            Which::Attribute => batches
                .iter()
                .map(|b| {
                    let typed = typed_attributes(b, &relations)?;
                    stable_oids(&typed, "attrelid", &relations)
                })
                .collect::<DfResult<Vec<_>>>()?,
            Which::Class => {
                let mut out = batches
                    .iter()
                    .map(|b| {
                        let flagged = classes_with_index_flag(b, &relations)?;
                        stable_oids(&flagged, "oid", &relations)
                    })
                    .collect::<DfResult<Vec<_>>>()?;
                if let Some(b) = index_classes(&schema, &batches, &relations)? {
                    out.push(b);
                }
                self.remember_namespaces(&out, state).await?;
                out
            }
            Which::Index => {
                let mut out = batches;
                out.push(new_rows(&schema, &relations, index_row)?);
                out
            }
            Which::Constraint => {
                let mut out = batches;
                out.push(new_rows(&schema, &relations, constraint_row)?);
                out
            }
            Which::AttrDef => {
                let mut out = batches;
                out.push(attrdef_rows(&schema, &relations)?);
                out
            }
        };
        MemTable::try_new(schema, vec![batches])?
            .scan(state, projection, filters, limit)
            .await
    }
}

impl Patched {
    /// Namespace names by OID, from the crate's `pg_namespace`.
    async fn namespace_names(&self, state: &dyn Session) -> DfResult<HashMap<i32, String>> {
        let namespaces = match self.inner.table("pg_namespace").await? {
            Some(t) => rows_of(&t, state).await?,
            None => vec![],
        };
        let mut namespace_names = HashMap::new();
        for b in &namespaces {
            let oids = int32_column(b, "oid")?;
            let names = text_column(b, "nspname")?;
            let names = names.as_string::<i32>();
            for i in 0..b.num_rows() {
                if oids.is_valid(i) && names.is_valid(i) {
                    namespace_names.insert(oids.value(i), names.value(i).to_string());
                }
            }
        }
        Ok(namespace_names)
    }

    /// Records each `pg_class` row's namespace for `pg_table_is_visible`.
    async fn remember_namespaces(
        &self,
        classes: &[RecordBatch],
        state: &dyn Session,
    ) -> DfResult<()> {
        let names = self.namespace_names(state).await?;
        let mut map = HashMap::new();
        for b in classes {
            let oids = int32_column(b, "oid")?;
            let namespaces = int32_column(b, "relnamespace")?;
            for i in 0..b.num_rows() {
                if oids.is_valid(i)
                    && namespaces.is_valid(i)
                    && let Some(n) = names.get(&namespaces.value(i))
                {
                    map.insert(oids.value(i), n.clone());
                }
            }
        }
        *self.rel_namespaces.lock() = map;
        Ok(())
    }

    /// Strata's tables by OID, from the crate's `pg_class` and `pg_namespace`.
    async fn relations(&self, state: &dyn Session) -> DfResult<HashMap<i32, Relation>> {
        let namespace_names = self.namespace_names(state).await?;
        let classes = match self.inner.table("pg_class").await? {
            Some(t) => rows_of(&t, state).await?,
            None => vec![],
        };
        let mut out = HashMap::new();
        for b in &classes {
            let oids = int32_column(b, "oid")?;
            let namespaces = int32_column(b, "relnamespace")?;
            let names = text_column(b, "relname")?;
            let names = names.as_string::<i32>();
            for i in 0..b.num_rows() {
                if !(oids.is_valid(i) && names.is_valid(i) && namespaces.is_valid(i)) {
                    continue;
                }
                let Some(ns) = namespace_names.get(&namespaces.value(i)) else {
                    continue;
                };
                if let Some(def) = self.tiers.catalog.table(ns, names.value(i)) {
                    out.insert(
                        oids.value(i),
                        Relation {
                            oid: table_oid(&def),
                            namespace_oid: namespaces.value(i),
                            def,
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    fn remember_index_defs(&self, relations: &HashMap<i32, Relation>) {
        if matches!(self.which, Which::Attribute) {
            return;
        }
        let mut defs = HashMap::new();
        for r in relations.values() {
            defs.insert(
                r.oid.saturating_add(INDEX_OID_OFFSET),
                format!(
                    "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                    index_name(&r.def),
                    r.def.namespace,
                    r.def.name,
                    r.def.pk().name
                ),
            );
        }
        *self.index_defs.lock() = defs;
    }
}

async fn rows_of(
    table: &Arc<dyn TableProvider>,
    state: &dyn Session,
) -> DfResult<Vec<RecordBatch>> {
    let plan = table.scan(state, None, &[], None).await?;
    collect(plan, state.task_ctx()).await
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> DfResult<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| DataFusionError::Internal(format!("pg_catalog table lacks column {name}")))
}

fn int32_column(
    b: &RecordBatch,
    name: &str,
) -> DfResult<datafusion::arrow::array::PrimitiveArray<Int32Type>> {
    let c = cast(column(b, name)?, &DataType::Int32)?;
    Ok(c.as_primitive::<Int32Type>().clone())
}

fn text_column(b: &RecordBatch, name: &str) -> DfResult<ArrayRef> {
    Ok(cast(column(b, name)?, &DataType::Utf8)?)
}

/// `batch` with the named columns' values replaced (cast to their types).
fn replace(b: &RecordBatch, values: Vec<(&str, Vec<ScalarValue>)>) -> DfResult<RecordBatch> {
    let schema = b.schema();
    let mut columns = b.columns().to_vec();
    for (name, vals) in values {
        let Ok(i) = schema.index_of(name) else {
            continue;
        };
        let array = ScalarValue::iter_to_array(vals)?;
        columns[i] = cast(&array, schema.field(i).data_type())?;
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn index_name(def: &TableDef) -> String {
    format!("{}_pkey", def.name)
}

/// `pg_attribute` rows of Strata's tables get the column's Postgres type.
fn typed_attributes(b: &RecordBatch, relations: &HashMap<i32, Relation>) -> DfResult<RecordBatch> {
    let relids = int32_column(b, "attrelid")?;
    let names = text_column(b, "attname")?;
    let names = names.as_string::<i32>();
    let typids = int32_column(b, "atttypid")?;
    let typmods = int32_column(b, "atttypmod")?;
    let ndims = int32_column(b, "attndims")?;
    let (mut ty_out, mut mod_out, mut dims_out) = (vec![], vec![], vec![]);
    let mut hasdef_out = vec![];
    let hasdef = column(b, "atthasdef")?.clone();
    let mut storage_out = vec![];
    let storage = column(b, "attstorage")?.clone();
    let mut collation_out = vec![];
    let collation = column(b, "attcollation")?.clone();
    for i in 0..b.num_rows() {
        let column = relations
            .get(&relids.value(i))
            .and_then(|r| r.def.columns.iter().find(|c| c.name == names.value(i)));
        match column {
            Some(c) => {
                ty_out.push(ScalarValue::Int32(Some(c.ty.pg_type_oid() as i32)));
                mod_out.push(ScalarValue::Int32(Some(c.ty.pg_typmod())));
                let dims = i32::from(matches!(c.ty, strata_catalog::ColumnType::Array(_)));
                dims_out.push(ScalarValue::Int32(Some(dims)));
                hasdef_out.push(ScalarValue::Boolean(Some(c.default.is_some())));
                storage_out.push(ScalarValue::Utf8(Some(storage_of(&c.ty).into())));
                collation_out.push(ScalarValue::Int32(Some(collation_of(&c.ty))));
            }
            None => {
                ty_out.push(ScalarValue::Int32(Some(typids.value(i))));
                mod_out.push(ScalarValue::Int32(Some(typmods.value(i))));
                dims_out.push(ScalarValue::Int32(Some(ndims.value(i))));
                hasdef_out.push(ScalarValue::try_from_array(&hasdef, i)?);
                storage_out.push(ScalarValue::try_from_array(&storage, i)?);
                collation_out.push(ScalarValue::try_from_array(&collation, i)?);
            }
        }
    }
    replace(
        b,
        vec![
            ("atttypid", ty_out),
            ("atttypmod", mod_out),
            ("attndims", dims_out),
            ("atthasdef", hasdef_out),
            ("attstorage", storage_out),
            ("attcollation", collation_out),
        ],
    )
}

/// The storage strategy Postgres gives a column of this type (psql's
/// `\d+` shows it): fixed-size types are plain, NUMERIC main, the rest
/// (text, bytea, JSON, arrays) extended.
fn storage_of(ty: &strata_catalog::ColumnType) -> &'static str {
    use strata_catalog::ColumnType as T;
    match ty {
        T::Numeric { .. } => "m",
        T::Text | T::Varchar(_) | T::Bytea | T::Json | T::Jsonb | T::Array(_) => "x",
        _ => "p",
    }
}

/// `pg_collation.oid` of `default`, which Postgres gives text columns (and
/// arrays of them); other types have none (0).
const DEFAULT_COLLATION_OID: i32 = 100;

fn collation_of(ty: &strata_catalog::ColumnType) -> i32 {
    use strata_catalog::ColumnType as T;
    match ty {
        T::Text | T::Varchar(_) => DEFAULT_COLLATION_OID,
        T::Array(inner) => collation_of(inner),
        _ => 0,
    }
}

/// The default btree operator class of a primary-key column's type
/// (PostgreSQL 15's `pg_opclass` OIDs), as `pg_index.indclass` names it.
fn btree_opclass(ty: &strata_catalog::ColumnType) -> i32 {
    use strata_catalog::ColumnType as T;
    match ty {
        T::Boolean => 10003,
        T::SmallInt => 1979,
        T::Int => 1978,
        T::BigInt => 3124,
        T::Real => 10012,
        T::Double => 3123,
        T::Numeric { .. } => 3125,
        T::Text | T::Varchar(_) => 3126,
        T::Bytea => 10006,
        T::Date => 3122,
        T::Time => 10038,
        T::Timestamp => 3128,
        T::TimestampTz => 3127,
        T::Uuid => 10065,
        T::Jsonb => 10088,
        T::Array(_) => 10000,
        T::Json => 0,
    }
}

/// One `pg_attrdef` row per column DEFAULT of Strata's tables; `adbin` holds
/// the expression's text as Postgres prints it (`'new'::text`), which
/// `pg_get_expr` returns as is.
fn attrdef_rows(schema: &SchemaRef, relations: &HashMap<i32, Relation>) -> DfResult<RecordBatch> {
    let mut rels: Vec<&Relation> = relations.values().collect();
    rels.sort_by_key(|r| r.oid);
    let mut rows: Vec<(i32, i32, i16, String)> = vec![];
    for r in rels {
        for (i, c) in r.def.columns.iter().enumerate() {
            let (Some(default), Ok(attnum)) = (&c.default, i16::try_from(i + 1)) else {
                continue;
            };
            let oid = ATTRDEF_OID_BASE
                .saturating_add((r.oid - TABLE_OID_BASE).saturating_mul(1024))
                .saturating_add(i32::from(attnum));
            rows.push((
                oid,
                r.oid,
                attnum,
                crate::functions::definitions::default_expr(default, &c.ty),
            ));
        }
    }
    batch_of(schema, &rows, |(oid, relid, attnum, text), f| {
        match f.name().as_str() {
            "oid" => Ok(ScalarValue::Int32(Some(*oid))),
            "adrelid" => Ok(ScalarValue::Int32(Some(*relid))),
            "adnum" => Ok(ScalarValue::Int16(Some(*attnum))),
            "adbin" => Ok(ScalarValue::Utf8(Some(text.clone()))),
            _ => default_value(f),
        }
    })
}

/// `column` (a table OID) with the crate's OIDs of Strata's tables replaced by
/// their stable ones.
fn stable_oids(
    b: &RecordBatch,
    column: &str,
    relations: &HashMap<i32, Relation>,
) -> DfResult<RecordBatch> {
    let oids = int32_column(b, column)?;
    let values = (0..b.num_rows())
        .map(|i| {
            if oids.is_null(i) {
                return ScalarValue::Int32(None);
            }
            let oid = oids.value(i);
            ScalarValue::Int32(Some(relations.get(&oid).map_or(oid, |r| r.oid)))
        })
        .collect();
    replace(b, vec![(column, values)])
}

/// Strata's tables all have a primary key, hence an index.
fn classes_with_index_flag(
    b: &RecordBatch,
    relations: &HashMap<i32, Relation>,
) -> DfResult<RecordBatch> {
    let oids = int32_column(b, "oid")?;
    let has_index = column(b, "relhasindex")?.as_boolean_opt().cloned();
    let access_methods = int32_column(b, "relam")?;
    let is_strata = |i: usize| oids.is_valid(i) && relations.contains_key(&oids.value(i));
    let flags = (0..b.num_rows())
        .map(|i| {
            let before = has_index
                .as_ref()
                .is_some_and(|h| h.is_valid(i) && h.value(i));
            ScalarValue::Boolean(Some(is_strata(i) || before))
        })
        .collect();
    // A table's access method, as psql's `\d+` shows it: Postgres' heap (OID 2).
    let relam = (0..b.num_rows())
        .map(|i| {
            ScalarValue::Int32(if is_strata(i) {
                Some(HEAP_AM_OID)
            } else {
                access_methods.is_valid(i).then(|| access_methods.value(i))
            })
        })
        .collect();
    replace(b, vec![("relhasindex", flags), ("relam", relam)])
}

/// `pg_am.oid` of the heap access method.
const HEAP_AM_OID: i32 = 2;

/// A `pg_class` row (relkind `i`) for each primary-key index: its table's row
/// with the index's identity.
fn index_classes(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    relations: &HashMap<i32, Relation>,
) -> DfResult<Option<RecordBatch>> {
    let mut out = vec![];
    for b in batches {
        let oids = int32_column(b, "oid")?;
        let rows: Vec<u32> = (0..b.num_rows())
            .filter(|&i| oids.is_valid(i) && relations.contains_key(&oids.value(i)))
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let picked = UInt32Array::from(rows.clone());
        let columns = b
            .columns()
            .iter()
            .map(|c| take(c, &picked, None))
            .collect::<Result<Vec<_>, _>>()?;
        let table_rows = RecordBatch::try_new(b.schema(), columns)?;
        let rels: Vec<&Relation> = rows
            .iter()
            .filter_map(|&i| relations.get(&oids.value(i as usize)))
            .collect();
        let each = |v: ScalarValue| vec![v; rels.len()];
        out.push(replace(
            &table_rows,
            vec![
                (
                    "oid",
                    rels.iter()
                        .map(|r| ScalarValue::Int32(Some(r.oid.saturating_add(INDEX_OID_OFFSET))))
                        .collect(),
                ),
                (
                    "relname",
                    rels.iter()
                        .map(|r| ScalarValue::Utf8(Some(index_name(&r.def))))
                        .collect(),
                ),
                ("relkind", each(ScalarValue::Utf8(Some("i".into())))),
                // btree
                ("relam", each(ScalarValue::Int32(Some(403)))),
                ("reltype", each(ScalarValue::Int32(Some(0)))),
                ("relnatts", each(ScalarValue::Int16(Some(1)))),
                ("relhasindex", each(ScalarValue::Boolean(Some(false)))),
            ],
        )?);
    }
    if out.is_empty() {
        return Ok(None);
    }
    Ok(Some(concat_batches(schema, &out)?))
}

/// One row per Strata table, built by `row` from column names; columns it
/// leaves out are NULL, or false/0/'' where the column is not nullable.
fn new_rows(
    schema: &SchemaRef,
    relations: &HashMap<i32, Relation>,
    row: fn(&Relation, &str) -> Option<ScalarValue>,
) -> DfResult<RecordBatch> {
    let mut rels: Vec<&Relation> = relations.values().collect();
    rels.sort_by_key(|r| r.oid);
    batch_of(schema, &rels, |r, f| {
        row(r, f.name()).map_or_else(|| default_value(f), Ok)
    })
}

/// A batch of `schema` with one row per item of `rows`, each column's value
/// given by `value(item, column)`.
pub(crate) fn batch_of<R>(
    schema: &SchemaRef,
    rows: &[R],
    value: impl Fn(&R, &Field) -> DfResult<ScalarValue>,
) -> DfResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            if rows.is_empty() {
                return Ok(datafusion::arrow::array::new_empty_array(f.data_type()));
            }
            let vals = rows
                .iter()
                .map(|r| value(r, f))
                .collect::<DfResult<Vec<_>>>()?;
            Ok(cast(&ScalarValue::iter_to_array(vals)?, f.data_type())?)
        })
        .collect::<DfResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

pub(crate) fn default_value(f: &Field) -> DfResult<ScalarValue> {
    if f.is_nullable() {
        return ScalarValue::try_from(f.data_type());
    }
    Ok(match f.data_type() {
        DataType::Boolean => ScalarValue::Boolean(Some(false)),
        DataType::Int16 => ScalarValue::Int16(Some(0)),
        DataType::Int32 => ScalarValue::Int32(Some(0)),
        DataType::Int64 => ScalarValue::Int64(Some(0)),
        DataType::Float32 => ScalarValue::Float32(Some(0.0)),
        DataType::Float64 => ScalarValue::Float64(Some(0.0)),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => {
            ScalarValue::Utf8(Some(String::new()))
        }
        other => ScalarValue::try_from(other)?,
    })
}

fn pk_attnum(r: &Relation) -> i16 {
    i16::try_from(r.def.pk_index() + 1).unwrap_or(i16::MAX)
}

fn index_row(r: &Relation, column: &str) -> Option<ScalarValue> {
    let int2 = |v: i16| Some(ScalarValue::Int16(Some(v)));
    let yes = Some(ScalarValue::Boolean(Some(true)));
    let text = |v: String| Some(ScalarValue::Utf8(Some(v)));
    match column {
        "indexrelid" => Some(ScalarValue::Int32(Some(
            r.oid.saturating_add(INDEX_OID_OFFSET),
        ))),
        "indrelid" => Some(ScalarValue::Int32(Some(r.oid))),
        "indnatts" | "indnkeyatts" => int2(1),
        "indisunique" | "indisprimary" | "indimmediate" | "indisvalid" | "indisready"
        | "indislive" => yes,
        "indkey" => text(pk_attnum(r).to_string()),
        "indcollation" => text(collation_of(&r.def.pk().ty).to_string()),
        "indoption" => text("0".into()),
        "indclass" => text(btree_opclass(&r.def.pk().ty).to_string()),
        _ => None,
    }
}

fn constraint_row(r: &Relation, column: &str) -> Option<ScalarValue> {
    let oid = |v: i32| Some(ScalarValue::Int32(Some(v)));
    let yes = Some(ScalarValue::Boolean(Some(true)));
    let text = |v: String| Some(ScalarValue::Utf8(Some(v)));
    match column {
        "oid" => oid(r.oid.saturating_add(CONSTRAINT_OID_OFFSET)),
        "conname" => text(index_name(&r.def)),
        "connamespace" => oid(r.namespace_oid),
        "contype" => text("p".into()),
        "convalidated" | "conislocal" | "connoinherit" => yes,
        "conrelid" => oid(r.oid),
        "conindid" => oid(r.oid.saturating_add(INDEX_OID_OFFSET)),
        "confupdtype" | "confdeltype" | "confmatchtype" => text(" ".into()),
        "conkey" => text(format!("{{{}}}", pk_attnum(r))),
        _ => None,
    }
}

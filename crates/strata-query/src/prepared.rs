//! Prepared statements: what `Session::prepare` decides once so that every
//! execution can skip parsing and planning. A single-row INSERT and a primary-key
//! SELECT become direct RocksDB operations; other queries keep DataFusion's
//! logical plan with its placeholders.

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::{ColumnType, TableDef};
use strata_sql::Statement;
use strata_sql::sqlparser::ast;

/// Where a value of a fast-path statement comes from.
#[derive(Debug, Clone)]
pub enum ValueSrc {
    Const(ScalarValue),
    /// Zero-based parameter index.
    Param(usize),
    Default,
    /// Anything else, evaluated at execution (see `value_expr`).
    Expr(Box<crate::value_expr::ValueExpr>),
}

#[derive(Debug, Clone)]
pub enum ConflictAction {
    /// No ON CONFLICT: a duplicate key is 23505.
    Error,
    DoNothing,
    DoUpdate {
        assignments: Vec<(usize, ast::Expr)>,
        selection: Option<Box<ast::Expr>>,
    },
}

#[derive(Debug, Clone)]
pub enum InsertSource {
    Values(Vec<Vec<ValueSrc>>),
    Query(Box<LogicalPlan>),
}

/// How a column's DEFAULT is produced, decided once per prepared statement.
#[derive(Debug, Clone)]
pub enum DefaultSrc {
    Null,
    Const(ScalarValue),
    Now,
    RandomUuid,
    Snowflake,
    Expr(Box<ast::Expr>),
}

#[derive(Debug, Clone)]
pub struct InsertPlan {
    pub table: Arc<TableDef>,
    /// Each column's DEFAULT, parsed at prepare time rather than per execution.
    pub defaults: Vec<DefaultSrc>,
    /// Table column index of each source column.
    pub targets: Vec<usize>,
    pub source: InsertSource,
    pub conflict: ConflictAction,
    pub returning: Option<Vec<ast::SelectItem>>,
}

#[derive(Debug, Clone)]
pub struct UpdatePlan {
    pub table: Arc<TableDef>,
    /// `SELECT <all columns>, <new values...> FROM t WHERE ...`
    pub select: Box<LogicalPlan>,
    /// Table column index of each new value, in select order after the columns.
    pub assigned: Vec<usize>,
    pub returning: Option<Vec<ast::SelectItem>>,
    /// `WHERE pk = <literal | $n>`: the row is read by key (see `point_write`).
    pub point: Option<ValueSrc>,
}

#[derive(Debug, Clone)]
pub struct DeletePlan {
    pub table: Arc<TableDef>,
    /// `SELECT <all columns> FROM t WHERE ...`
    pub select: Box<LogicalPlan>,
    pub returning: Option<Vec<ast::SelectItem>>,
    /// `WHERE pk = <literal | $n>`: the row is read by key (see `point_write`).
    pub point: Option<ValueSrc>,
}

#[derive(Debug, Clone)]
pub struct PointSelect {
    pub table: Arc<TableDef>,
    pub projection: Vec<usize>,
    pub key: ValueSrc,
}

#[derive(Debug, Clone)]
pub enum PlanKind {
    Query(Box<LogicalPlan>),
    PointSelect(PointSelect),
    Insert(Box<InsertPlan>),
    Update(UpdatePlan),
    Delete(DeletePlan),
    /// `DECLARE name CURSOR FOR query`: the query, planned (its parameters
    /// are the statement's).
    Declare {
        name: String,
        /// WITH HOLD.
        hold: bool,
        /// BINARY: FETCH returns binary rows.
        binary: bool,
        plan: Box<LogicalPlan>,
    },
    /// Planned afresh at every execution (DDL, SET, SHOW ...).
    Command(Box<Statement>),
}

#[derive(Debug)]
pub struct Prepared {
    pub sql: String,
    pub kind: PlanKind,
    /// Parameter types the server inferred (None where it could not).
    pub param_types: Vec<Option<DataType>>,
    /// The SQL type behind a parameter where it is known (an INSERT value, a
    /// cast), so UUID and JSON parameters are described as such, not as text.
    pub param_sql_types: Vec<Option<ColumnType>>,
    /// Result columns, for statements that return rows.
    pub schema: Option<SchemaRef>,
    /// Catalog version the plan was made against; a newer catalog means re-plan.
    pub catalog_version: u64,
    /// The statement this was planned from, to plan it again (`sql` may hold
    /// a whole simple-query string of several statements).
    pub source: Option<Statement>,
    /// A query's plan optimized once, for every execution (see `plan_cache`).
    pub optimized: crate::plan_cache::OptimizedPlan,
}

/// A plan with its `$n` placeholders bound to `params` (as is when there are none).
pub fn bind_params(
    plan: LogicalPlan,
    params: &[ScalarValue],
) -> strata_common::Result<LogicalPlan> {
    if params.is_empty() {
        return Ok(plan);
    }
    Ok(plan.with_param_values(datafusion::common::ParamValues::from(params.to_vec()))?)
}

impl Prepared {
    /// COMMIT or ROLLBACK: what may still run in an aborted transaction block.
    pub fn ends_block(&self) -> bool {
        matches!(&self.kind, PlanKind::Command(s) if ends_block(s))
    }
}

/// Records that parameter `i` (zero-based) takes values of `ty`.
pub fn note_param(prepared: &mut Prepared, i: usize, ty: &ColumnType) {
    if prepared.param_types.len() <= i {
        prepared.param_types.resize(i + 1, None);
    }
    if prepared.param_types[i].is_none() {
        prepared.param_types[i] = Some(ty.arrow_type());
    }
    if prepared.param_sql_types.len() <= i {
        prepared.param_sql_types.resize(i + 1, None);
    }
    if prepared.param_sql_types[i].is_none() {
        prepared.param_sql_types[i] = Some(ty.clone());
    }
}

/// The DataFusion plan a prepared statement binds its parameters into, if any.
fn plan_of(kind: &PlanKind) -> Option<&LogicalPlan> {
    match kind {
        PlanKind::Query(p) => Some(p),
        PlanKind::Update(u) => Some(&u.select),
        PlanKind::Delete(d) => Some(&d.select),
        PlanKind::Insert(ins) => match &ins.source {
            InsertSource::Query(p) => Some(p),
            InsertSource::Values(_) => None,
        },
        _ => None,
    }
}

/// Parameters DataFusion typed from a UUID or JSON column are described as such.
pub fn note_wire_types(prepared: &mut Prepared) {
    note_any_params(prepared);
    let Some(fields) = plan_of(&prepared.kind).and_then(|p| p.get_parameter_fields().ok()) else {
        return;
    };
    for (name, field) in fields {
        let (Ok(i), Some(field)) = (name.trim_start_matches('$').parse::<usize>(), field) else {
            continue;
        };
        let ty = match field
            .metadata()
            .get(strata_catalog::WIRE_TYPE_KEY)
            .map(String::as_str)
        {
            Some("uuid") => ColumnType::Uuid,
            Some("json") => ColumnType::Json,
            Some("jsonb") => ColumnType::Jsonb,
            _ => continue,
        };
        if i >= 1 {
            note_param(prepared, i - 1, &ty);
        }
    }
}

/// `x = ANY($n)` plans as `array_has($n, x)`, for which DataFusion infers no
/// type: `$n` would be described and read as text (a client's `{1,2}` a
/// string). It is an array of `x`'s type, keeping `x`'s field metadata so an
/// `oid` column makes it `oid[]` (what asyncpg needs to send its type lookup).
fn note_any_params(prepared: &mut Prepared) {
    let Some(plan) = plan_of(&prepared.kind) else {
        return;
    };
    let mut found: Vec<(usize, DataType)> = vec![];
    let _ = plan.apply_with_subqueries(|node| {
        let inputs = node.inputs();
        let schemas: Vec<&DFSchema> = inputs
            .iter()
            .map(|i| i.schema().as_ref())
            .chain(std::iter::once(node.schema().as_ref()))
            .collect();
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.name() == "array_has"
                    && let [haystack, needle] = f.args.as_slice()
                    && let Some(i) = placeholder_index(haystack)
                    && let Some(field) = schemas.iter().find_map(|s| needle.to_field(*s).ok())
                {
                    let item = field
                        .1
                        .as_ref()
                        .clone()
                        .with_name("item")
                        .with_nullable(true);
                    found.push((i, DataType::List(Arc::new(item))));
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    for (i, ty) in found {
        if prepared.param_types.len() <= i {
            prepared.param_types.resize(i + 1, None);
        }
        if prepared.param_types[i].is_none() {
            prepared.param_types[i] = Some(ty);
        }
    }
}

/// The zero-based index of `$n`, bare or cast.
fn placeholder_index(e: &Expr) -> Option<usize> {
    match e {
        Expr::Placeholder(p) => {
            p.id.trim_start_matches('$')
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
        }
        Expr::Cast(c) => placeholder_index(&c.expr),
        Expr::TryCast(c) => placeholder_index(&c.expr),
        _ => None,
    }
}

/// COMMIT and ROLLBACK (and their spellings END and ABORT).
pub fn ends_block(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Sql(s) if matches!(
            s.as_ref(),
            ast::Statement::Commit { .. } | ast::Statement::Rollback { .. }
        )
    )
}

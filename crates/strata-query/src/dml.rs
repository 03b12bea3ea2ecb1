//! INSERT, UPDATE, DELETE and the primary-key SELECT fast path.
//!
//! Each statement runs under its table's write lock: it reads what it needs
//! (existing keys, the rows an UPDATE or DELETE matches), builds every new row
//! version, and commits them all in one RocksDB write batch. Nothing is written
//! until every row has been checked, so a failing statement changes nothing.
//!
//! A key has at most one live version across the tiers. Writing a key whose live
//! version is cold (found through the primary-key index, never by reading
//! Parquet) sets that cold row's deletion-vector bit and drops its index entry in
//! the same batch, so readers never need to reconcile hot against cold.

use crate::context::QueryContext;
use crate::output::QueryOutput;
use crate::output::batch_output;
use crate::prepared::*;
use crate::value_expr::ValueExpr;
use crate::values::{coerce, snowflake_id};
use crate::write::{duplicate_key, visible_row, visible_row_exists, write_rows};
use datafusion::arrow::array::{ArrayRef, RecordBatch, new_empty_array};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{ColumnDef, TableDef, UTC};
use strata_common::{Result, StrataError, keys};
use strata_sql::sqlparser::ast;
use strata_sql::sqlparser::dialect::PostgreSqlDialect;
use strata_sql::sqlparser::parser::Parser;
use strata_sql::{Statement, normalize_ident, object_ref};

/// The partition a statement of `session` reads and writes in `table`: the
/// acting user's for a USER table, the single "" partition otherwise.
pub(crate) fn partition(session: &QueryContext, table: &TableDef) -> String {
    crate::provider::partition_of(table, session.user())
}

/// An identifier quoted for SQL text.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Called with the table's write lock held, before a statement reads rows
/// to change or writes any: the definition it was planned against must still
/// be the table's, or its rows would be encoded (and matched) by columns the
/// table no longer has.
pub(crate) fn check_still_current(session: &QueryContext, table: &TableDef) -> Result<()> {
    match session.engine.catalog.table_by_id(table.id) {
        Some(now) if now.version == table.version => Ok(()),
        _ => Err(StrataError::DefinitionChanged(format!(
            "table {} was altered or dropped while the statement was planned",
            table.qualified_name()
        ))),
    }
}

pub(crate) fn writable_table(
    session: &QueryContext,
    name: &ast::ObjectName,
) -> Result<Arc<TableDef>> {
    let r = object_ref(name)?;
    let (ns, t) = session.resolve(&r);
    if ns == "system" {
        return Err(StrataError::InsufficientPrivilege(format!(
            "system table \"{ns}.{t}\" is read-only"
        )));
    }
    let def = session.engine.catalog.require_table(&ns, &t)?;
    crate::privileges::check_table_access(&session.engine.catalog, session.user(), &def, true)?;
    Ok(def)
}

/// A literal, placeholder or DEFAULT that needs no planning; else `Expr`.
pub(crate) fn value_src(e: &ast::Expr) -> ValueSrc {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => ValueSrc::Const(ScalarValue::Int64(Some(i))),
                Err(_) => ValueSrc::Const(ScalarValue::Utf8(Some(n.clone()))),
            },
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            | ast::Value::DoubleQuotedString(s) => {
                ValueSrc::Const(ScalarValue::Utf8(Some(s.clone())))
            }
            ast::Value::DollarQuotedString(s) => {
                ValueSrc::Const(ScalarValue::Utf8(Some(s.value.clone())))
            }
            ast::Value::Boolean(b) => ValueSrc::Const(ScalarValue::Boolean(Some(*b))),
            ast::Value::Null => ValueSrc::Const(ScalarValue::Null),
            ast::Value::Placeholder(p) => match p.trim_start_matches('$').parse::<usize>() {
                Ok(i) if i >= 1 => ValueSrc::Param(i - 1),
                _ => ValueSrc::Expr(Box::new(ValueExpr::new(e.clone()))),
            },
            _ => ValueSrc::Expr(Box::new(ValueExpr::new(e.clone()))),
        },
        ast::Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match value_src(expr) {
            ValueSrc::Const(ScalarValue::Int64(Some(i))) => {
                ValueSrc::Const(ScalarValue::Int64(Some(-i)))
            }
            ValueSrc::Const(ScalarValue::Utf8(Some(s))) if s.parse::<f64>().is_ok() => {
                ValueSrc::Const(ScalarValue::Utf8(Some(format!("-{s}"))))
            }
            _ => ValueSrc::Expr(Box::new(ValueExpr::new(e.clone()))),
        },
        ast::Expr::Identifier(id)
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default") =>
        {
            ValueSrc::Default
        }
        _ => ValueSrc::Expr(Box::new(ValueExpr::new(e.clone()))),
    }
}

pub(crate) fn param(params: &[ScalarValue], i: usize) -> Result<ScalarValue> {
    params
        .get(i)
        .cloned()
        .ok_or_else(|| StrataError::ProtocolViolation(format!("there is no parameter ${}", i + 1)))
}

/// Evaluates one SQL expression (no columns) with DataFusion.
pub async fn eval_expr(
    session: &QueryContext,
    expr: &ast::Expr,
    params: &[ScalarValue],
) -> Result<ScalarValue> {
    let sql = format!("SELECT {expr}");
    let Some(Statement::Sql(stmt)) = strata_sql::parse_one(&sql)? else {
        return Err(StrataError::syntax(format!("invalid expression {expr}")));
    };
    let plan = bind_params(session.plan(*stmt, &sql).await?, params)?;
    let batches: Vec<RecordBatch> = session
        .ctx
        .execute_logical_plan(plan)
        .await?
        .collect()
        .await?;
    let batch = batches
        .first()
        .filter(|b| b.num_rows() > 0 && b.num_columns() > 0);
    match batch {
        Some(b) => Ok(ScalarValue::try_from_array(b.column(0), 0)?),
        None => Ok(ScalarValue::Null),
    }
}

pub(crate) fn default_src(col: &ColumnDef) -> Result<DefaultSrc> {
    let Some(text) = &col.default else {
        return Ok(DefaultSrc::Null);
    };
    let expr = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)?
        .parse_expr()?;
    Ok(match &expr {
        ast::Expr::Function(f) => match f.name.to_string().to_lowercase().as_str() {
            "now" | "current_timestamp" => DefaultSrc::Now,
            "gen_random_uuid" | "uuid" => DefaultSrc::RandomUuid,
            "snowflake_id" => DefaultSrc::Snowflake,
            _ => DefaultSrc::Expr(Box::new(expr.clone())),
        },
        ast::Expr::Identifier(id) if id.value.eq_ignore_ascii_case("current_timestamp") => {
            DefaultSrc::Now
        }
        _ => match value_src(&expr) {
            ValueSrc::Const(v) => DefaultSrc::Const(coerce(col, v)?),
            _ => DefaultSrc::Expr(Box::new(expr)),
        },
    })
}

async fn default_value(
    session: &QueryContext,
    col: &ColumnDef,
    src: &DefaultSrc,
) -> Result<ScalarValue> {
    let v = match src {
        DefaultSrc::Null => ScalarValue::Null,
        DefaultSrc::Const(v) => return Ok(v.clone()),
        DefaultSrc::Now => ScalarValue::TimestampMicrosecond(
            Some(chrono::Utc::now().timestamp_micros()),
            Some(Arc::from(UTC)),
        ),
        DefaultSrc::RandomUuid => ScalarValue::Utf8(Some(uuid::Uuid::new_v4().to_string())),
        DefaultSrc::Snowflake => ScalarValue::Int64(Some(snowflake_id())),
        DefaultSrc::Expr(e) => eval_expr(session, e, &[]).await?,
    };
    coerce(col, v)
}

/// Evaluates a column's DEFAULT once (ALTER TABLE ADD COLUMN fills).
pub(crate) async fn eval_default(
    session: &QueryContext,
    col: &ColumnDef,
    text: &str,
) -> Result<ScalarValue> {
    let mut c = col.clone();
    c.default = Some(text.to_string());
    default_value(session, &c, &default_src(&c)?).await
}

/// Checks at CREATE TABLE that a DEFAULT parses and yields the column's type.
pub(crate) async fn check_default(
    session: &QueryContext,
    col: &ColumnDef,
    text: &str,
) -> Result<()> {
    eval_default(session, col, text).await.map(|_| ())
}

fn check_not_null(table: &TableDef, row: &[ScalarValue]) -> Result<()> {
    for (c, v) in table.columns.iter().zip(row) {
        if !c.nullable && v.is_null() {
            return Err(StrataError::NotNullViolation(format!(
                "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                c.name, table.name
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- SELECT fast path

/// Recognises `SELECT cols FROM t WHERE pk = <literal or $n>` on a shared table.
#[allow(clippy::type_complexity)]
pub fn point_select(
    session: &QueryContext,
    q: &ast::Query,
) -> Result<Option<(PlanKind, SchemaRef, Vec<Option<DataType>>)>> {
    if q.with.is_some()
        || q.order_by.is_some()
        || q.limit_clause.is_some()
        || q.fetch.is_some()
        || !q.locks.is_empty()
    {
        return Ok(None);
    }
    let ast::SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(None);
    };
    let simple = sel.distinct.is_none()
        && sel.top.is_none()
        && sel.into.is_none()
        && sel.having.is_none()
        && sel.from.len() == 1
        && sel.from[0].joins.is_empty()
        && matches!(&sel.group_by, ast::GroupByExpr::Expressions(v, m) if v.is_empty() && m.is_empty());
    if !simple {
        return Ok(None);
    }
    let ast::TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &sel.from[0].relation
    else {
        return Ok(None);
    };
    let Ok(r) = object_ref(name) else {
        return Ok(None);
    };
    let (ns, tname) = session.resolve(&r);
    let Some(table) = session.engine.catalog.table(&ns, &tname) else {
        return Ok(None);
    };
    let alias = alias.as_ref();
    let column_of = |e: &ast::Expr| crate::point_write::column_of(&table, alias, e);
    let mut projection = vec![];
    let mut names = vec![];
    for item in &sel.projection {
        match item {
            ast::SelectItem::Wildcard(opts) if opts.to_string().is_empty() => {
                for (i, c) in table.columns.iter().enumerate() {
                    projection.push(i);
                    names.push(c.name.clone());
                }
            }
            ast::SelectItem::UnnamedExpr(e) => match column_of(e) {
                Some(i) => {
                    projection.push(i);
                    names.push(table.columns[i].name.clone());
                }
                None => return Ok(None),
            },
            ast::SelectItem::ExprWithAlias { expr, alias } => match column_of(expr) {
                Some(i) => {
                    projection.push(i);
                    names.push(normalize_ident(alias));
                }
                None => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    let Some(key) = crate::point_write::point_key(&table, alias, &sel.selection)? else {
        return Ok(None);
    };
    let pk = table.pk_index();
    let mut param_types = vec![];
    if let ValueSrc::Param(i) = key {
        param_types.resize(i + 1, None);
        param_types[i] = Some(table.columns[pk].ty.arrow_type());
    }
    let full = table.arrow_schema(false);
    let fields: Vec<_> = projection
        .iter()
        .zip(&names)
        .map(|(i, n)| full.field(*i).clone().with_name(n))
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    Ok(Some((
        PlanKind::PointSelect(PointSelect {
            table,
            projection,
            key,
        }),
        schema,
        param_types,
    )))
}

pub async fn execute_point_select(
    session: &QueryContext,
    p: &PointSelect,
    params: &[ScalarValue],
    schema: Option<SchemaRef>,
) -> Result<QueryOutput> {
    let schema = schema.ok_or_else(|| StrataError::internal("point select without schema"))?;
    crate::privileges::check_table_access(
        &session.engine.catalog,
        session.user(),
        &p.table,
        false,
    )?;
    let pk_col = p.table.pk();
    let key = match &p.key {
        ValueSrc::Const(v) => Some(v.clone()),
        // A parameter no key equals (1.9 for an INT key) matches no row.
        ValueSrc::Param(i) => crate::values::exact_key(pk_col, param(params, *i)?)?,
        _ => return Err(StrataError::internal("point select key")),
    };
    let mut rows = vec![];
    if let Some(key) = key.filter(|k| !k.is_null()) {
        let user = partition(session, &p.table);
        let k = keys::row_key(p.table.id, &user, &key)?;
        if let Some(values) = visible_row(session, &p.table, &user, &k).await? {
            rows.push(crate::codec::StoredRow {
                seq: 0,
                flags: 0,
                written_at: None,
                values,
            });
        }
    }
    let batch = crate::scan::rows_to_batch(&p.table, &schema, &p.projection, &rows)?;
    Ok(batch_output(schema, vec![batch], "SELECT"))
}

// ---------------------------------------------------------------- RETURNING

fn scratch_context() -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
    SessionContext::new_with_config(config)
}

pub(crate) fn rows_to_columns(table: &TableDef, rows: &[Vec<ScalarValue>]) -> Result<RecordBatch> {
    let schema = table.arrow_schema(false);
    let arrays: Vec<ArrayRef> = (0..table.columns.len())
        .map(|i| {
            if rows.is_empty() {
                Ok(new_empty_array(schema.field(i).data_type()))
            } else {
                ScalarValue::iter_to_array(rows.iter().map(|r| r[i].clone()))
            }
        })
        .collect::<datafusion::error::Result<_>>()?;
    let opts = datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema, arrays, &opts)
        .map_err(|e| StrataError::internal(e.to_string()))
}

/// Evaluates RETURNING items over the affected rows.
async fn returning(
    table: &TableDef,
    items: &[ast::SelectItem],
    rows: &[Vec<ScalarValue>],
    tag: &str,
) -> Result<QueryOutput> {
    let ctx = scratch_context();
    ctx.register_batch("__returning", rows_to_columns(table, rows)?)?;
    let list = items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let df = ctx
        .sql(&format!(
            "SELECT {list} FROM __returning AS {}",
            quote(&table.name)
        ))
        .await?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(batch_output(schema, batches, tag))
}

async fn returning_schema(
    table: &TableDef,
    items: &Option<Vec<ast::SelectItem>>,
) -> Result<Option<SchemaRef>> {
    let Some(items) = items else { return Ok(None) };
    match returning(table, items, &[], "").await? {
        QueryOutput::Rows { schema, .. } => Ok(Some(schema)),
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------- INSERT

pub async fn prepare_insert(
    session: &QueryContext,
    sql: &str,
    ins: ast::Insert,
    catalog_version: u64,
) -> Result<Prepared> {
    let ast::TableObject::TableName(name) = &ins.table else {
        return Err(StrataError::unsupported(
            "INSERT INTO a table function is not supported",
        ));
    };
    let table = writable_table(session, name)?;
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        ins.columns
            .iter()
            .map(|c| {
                let n =
                    c.0.last()
                        .and_then(|p| p.as_ident())
                        .map(normalize_ident)
                        .unwrap_or_default();
                column_named(&table, &n)
            })
            .collect::<Result<_>>()?
    };
    let mut param_types: Vec<Option<DataType>> = vec![];
    let source_query = ins
        .source
        .ok_or_else(|| StrataError::unsupported("INSERT without VALUES or SELECT"))?;
    let source = match source_query.body.as_ref() {
        ast::SetExpr::Values(values)
            if source_query.order_by.is_none() && source_query.limit_clause.is_none() =>
        {
            let mut rows = vec![];
            for row in &values.rows {
                if row.len() > targets.len() {
                    return Err(StrataError::syntax(
                        "INSERT has more expressions than target columns",
                    ));
                }
                if row.len() < targets.len() && !ins.columns.is_empty() {
                    return Err(StrataError::syntax(
                        "INSERT has more target columns than expressions",
                    ));
                }
                let mut out = vec![];
                for (j, e) in row.iter().enumerate() {
                    let col = &table.columns[targets[j]];
                    let src = match value_src(e) {
                        ValueSrc::Const(v) => ValueSrc::Const(coerce(col, v)?),
                        ValueSrc::Param(i) => {
                            if param_types.len() <= i {
                                param_types.resize(i + 1, None);
                            }
                            param_types[i] = Some(col.ty.arrow_type());
                            ValueSrc::Param(i)
                        }
                        ValueSrc::Expr(v) => {
                            // Its parameters count too (`'v-' || $2`): Describe
                            // must announce them, with the type planning gives.
                            let text = format!("SELECT {}", v.ast);
                            if let Ok(Some(Statement::Sql(stmt))) = strata_sql::parse_one(&text)
                                && let Ok(plan) = session.plan(*stmt, &text).await
                            {
                                merge_param_types(&mut param_types, &plan)?;
                            }
                            ValueSrc::Expr(v)
                        }
                        other => other,
                    };
                    out.push(src);
                }
                rows.push(out);
            }
            InsertSource::Values(rows)
        }
        _ => {
            let mut source_query = source_query.clone();
            // Postgres lets an INSERT's SELECT repeat an expression (`SELECT i, i`);
            // DataFusion wants unique names, and the names do not matter here.
            if let ast::SetExpr::Select(sel) = source_query.body.as_mut() {
                for (k, item) in sel.projection.iter_mut().enumerate() {
                    if let ast::SelectItem::UnnamedExpr(e) = item {
                        *item = ast::SelectItem::ExprWithAlias {
                            expr: e.clone(),
                            alias: ast::Ident::new(format!("__c{k}")),
                        };
                    }
                }
            }
            let plan = session
                .plan(ast::Statement::Query(source_query), sql)
                .await?;
            let width = plan.schema().fields().len();
            if width != targets.len() && !(ins.columns.is_empty() && width < targets.len()) {
                return Err(StrataError::syntax(format!(
                    "INSERT has {} target columns but the query returns {width}",
                    targets.len()
                )));
            }
            for (name, ty) in plan.get_parameter_types()? {
                if let Ok(i) = name.trim_start_matches('$').parse::<usize>()
                    && i >= 1
                {
                    if param_types.len() < i {
                        param_types.resize(i, None);
                    }
                    param_types[i - 1] = ty;
                }
            }
            InsertSource::Query(Box::new(plan))
        }
    };
    let conflict = match &ins.on {
        None => ConflictAction::Error,
        Some(ast::OnInsert::OnConflict(oc)) => {
            if let Some(ast::ConflictTarget::Columns(cols)) = &oc.conflict_target {
                let pk = &table.pk().name;
                if cols.len() != 1 || &normalize_ident(&cols[0]) != pk {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "there is no unique constraint matching the ON CONFLICT specification (only the primary key \"{pk}\")"
                    )));
                }
            }
            match &oc.action {
                ast::OnConflictAction::DoNothing => ConflictAction::DoNothing,
                ast::OnConflictAction::DoUpdate(du) => {
                    if oc.conflict_target.is_none() {
                        return Err(StrataError::syntax(
                            "ON CONFLICT DO UPDATE requires a conflict target",
                        ));
                    }
                    let assignments = du
                        .assignments
                        .iter()
                        .map(|a| Ok((assignment_column(&table, &a.target)?, a.value.clone())))
                        .collect::<Result<Vec<_>>>()?;
                    ConflictAction::DoUpdate {
                        assignments,
                        selection: du.selection.clone().map(Box::new),
                    }
                }
            }
        }
        Some(_) => {
            return Err(StrataError::unsupported(
                "ON DUPLICATE KEY UPDATE is not supported; use ON CONFLICT",
            ));
        }
    };
    let schema = returning_schema(&table, &ins.returning).await?;
    let defaults = table
        .columns
        .iter()
        .map(default_src)
        .collect::<Result<_>>()?;
    let plan = InsertPlan {
        defaults,
        table,
        targets,
        source,
        conflict,
        returning: ins.returning,
    };
    let mut notes = vec![];
    if let InsertSource::Values(rows) = &plan.source {
        for row in rows {
            for (j, src) in row.iter().enumerate() {
                if let ValueSrc::Param(i) = src {
                    notes.push((*i, plan.table.columns[plan.targets[j]].ty.clone()));
                }
            }
        }
    }
    let mut prepared = Prepared {
        sql: sql.into(),
        kind: PlanKind::Insert(Box::new(plan)),
        param_types,
        param_sql_types: vec![],
        schema,
        catalog_version,
        source: None,
        optimized: Default::default(),
    };
    for (i, ty) in notes {
        note_param(&mut prepared, i, &ty);
    }
    Ok(prepared)
}

fn assignment_column(table: &TableDef, target: &ast::AssignmentTarget) -> Result<usize> {
    let ast::AssignmentTarget::ColumnName(name) = target else {
        return Err(StrataError::unsupported(
            "assigning to a tuple of columns is not supported",
        ));
    };
    let n = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .unwrap_or_default();
    column_named(table, &n)
}

/// The index of the column a statement names as a target.
pub(crate) fn column_named(table: &TableDef, name: &str) -> Result<usize> {
    table.column_index(name).ok_or_else(|| {
        StrataError::UndefinedColumn(format!(
            "column \"{name}\" of relation \"{}\" does not exist",
            table.name
        ))
    })
}

/// Source rows of an INSERT, as full table rows with defaults applied.
async fn insert_rows(
    session: &QueryContext,
    p: &InsertPlan,
    params: &[ScalarValue],
) -> Result<Vec<Vec<ScalarValue>>> {
    let table = &p.table;
    let source_rows: Vec<Vec<Option<ScalarValue>>> = match &p.source {
        InsertSource::Values(rows) => {
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut vals = Vec::with_capacity(row.len());
                for (j, src) in row.iter().enumerate() {
                    let col = &table.columns[p.targets[j]];
                    vals.push(match src {
                        ValueSrc::Const(v) => Some(v.clone()),
                        ValueSrc::Param(i) => Some(coerce(col, param(params, *i)?)?),
                        ValueSrc::Default => None,
                        ValueSrc::Expr(e) => Some(coerce(col, e.eval(session, params).await?)?),
                    });
                }
                out.push(vals);
            }
            out
        }
        InsertSource::Query(plan) => {
            let plan = bind_params((**plan).clone(), params)?;
            let df = session.ctx.execute_logical_plan(plan).await?;
            let batches: Vec<RecordBatch> = session.engine.execute(df).try_collect().await?;
            let mut out = vec![];
            for b in &batches {
                for r in 0..b.num_rows() {
                    let mut vals = Vec::with_capacity(b.num_columns());
                    for c in 0..b.num_columns() {
                        let col = &table.columns[p.targets[c]];
                        vals.push(Some(coerce(
                            col,
                            ScalarValue::try_from_array(b.column(c), r)?,
                        )?));
                    }
                    out.push(vals);
                }
            }
            out
        }
    };
    let mut rows = Vec::with_capacity(source_rows.len());
    for src in source_rows {
        rows.push(complete_row(session, table, &p.targets, &p.defaults, src).await?);
    }
    Ok(rows)
}

/// A full table row from the values given for `targets` (None: not given),
/// with every other column's DEFAULT, checked against NOT NULL.
pub(crate) async fn complete_row(
    session: &QueryContext,
    table: &TableDef,
    targets: &[usize],
    defaults: &[DefaultSrc],
    src: Vec<Option<ScalarValue>>,
) -> Result<Vec<ScalarValue>> {
    let mut full: Vec<Option<ScalarValue>> = vec![None; table.columns.len()];
    for (j, v) in src.into_iter().enumerate() {
        full[targets[j]] = v;
    }
    let mut row = Vec::with_capacity(full.len());
    for (i, v) in full.into_iter().enumerate() {
        row.push(match v {
            Some(v) => v,
            None => default_value(session, &table.columns[i], &defaults[i]).await?,
        });
    }
    check_not_null(table, &row)?;
    Ok(row)
}

/// Applies ON CONFLICT DO UPDATE to one existing row; None when its WHERE fails.
async fn upsert_row(
    table: &TableDef,
    assignments: &[(usize, ast::Expr)],
    selection: &Option<Box<ast::Expr>>,
    existing: &[ScalarValue],
    excluded: &[ScalarValue],
    params: &[ScalarValue],
) -> Result<Option<Vec<ScalarValue>>> {
    let mut new = existing.to_vec();
    let mut general = vec![];
    for (i, e) in assignments {
        // The common case, `col = EXCLUDED.col`, needs no planning.
        if let ast::Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && normalize_ident(&parts[0]) == "excluded"
            && let Some(src) = table.column_index(&normalize_ident(&parts[1]))
        {
            new[*i] = coerce(&table.columns[*i], excluded[src].clone())?;
            continue;
        }
        match value_src(e) {
            ValueSrc::Const(v) => new[*i] = coerce(&table.columns[*i], v)?,
            ValueSrc::Param(p) => new[*i] = coerce(&table.columns[*i], param(params, p)?)?,
            _ => general.push((*i, e.clone())),
        }
    }
    if general.is_empty() && selection.is_none() {
        return Ok(Some(new));
    }
    // General expressions see the existing row as the table and the proposed one as EXCLUDED.
    let ctx = scratch_context();
    ctx.register_batch("__existing", rows_to_columns(table, &[existing.to_vec()])?)?;
    ctx.register_batch("excluded", rows_to_columns(table, &[excluded.to_vec()])?)?;
    let mut items: Vec<String> = general.iter().map(|(_, e)| e.to_string()).collect();
    items.push(
        selection
            .as_ref()
            .map(|s| format!("({s})"))
            .unwrap_or_else(|| "TRUE".into()),
    );
    let sql = format!(
        "SELECT {} FROM __existing AS {}, excluded",
        items.join(", "),
        quote(&table.name)
    );
    let plan = bind_params(ctx.state().create_logical_plan(&sql).await?, params)?;
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let b = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| StrataError::internal("upsert evaluation"))?;
    for (k, (i, _)) in general.iter().enumerate() {
        new[*i] = coerce(
            &table.columns[*i],
            ScalarValue::try_from_array(b.column(k), 0)?,
        )?;
    }
    let pass = ScalarValue::try_from_array(b.column(general.len()), 0)?;
    Ok((pass == ScalarValue::Boolean(Some(true))).then_some(new))
}

pub async fn execute_insert(
    session: &QueryContext,
    p: &InsertPlan,
    params: &[ScalarValue],
) -> Result<QueryOutput> {
    let table = &p.table;
    // Checked again at every execution: a role lowered since PREPARE counts.
    crate::privileges::check_table_access(&session.engine.catalog, session.user(), table, true)?;
    let rows = insert_rows(session, p, params).await?;
    let pk = table.pk_index();
    let user = partition(session, table);
    let lock = session.engine.write_lock(table.id);
    let _guard = lock.lock().await;
    check_still_current(session, table)?;
    // Final row per key, in statement order.
    let mut pending: Vec<(Vec<u8>, Vec<ScalarValue>)> = Vec::with_capacity(rows.len());
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut affected = 0usize;
    for row in rows {
        let key = keys::row_key(table.id, &user, &row[pk])?;
        let existing: Option<Vec<ScalarValue>> = match (index.get(&key), &p.conflict) {
            (Some(&i), _) => Some(pending[i].1.clone()),
            // Only DO UPDATE needs the old row; the others only whether it
            // exists (no cold file read).
            (None, ConflictAction::DoUpdate { .. }) => {
                visible_row(session, table, &user, &key).await?
            }
            (None, _) => visible_row_exists(session, table, &user, &key)?.then(Vec::new),
        };
        let new_row = match (existing, &p.conflict) {
            (None, _) => row,
            (Some(_), ConflictAction::Error) => return Err(duplicate_key(table, &row[pk])),
            (Some(_), ConflictAction::DoNothing) => continue,
            (
                Some(old),
                ConflictAction::DoUpdate {
                    assignments,
                    selection,
                },
            ) => match upsert_row(table, assignments, selection, &old, &row, params).await? {
                Some(new) => {
                    if new[pk] != old[pk] {
                        return Err(StrataError::unsupported(
                            "ON CONFLICT DO UPDATE cannot change the primary key",
                        ));
                    }
                    check_not_null(table, &new)?;
                    new
                }
                None => continue,
            },
        };
        affected += 1;
        match index.get(&key) {
            Some(&i) => pending[i].1 = new_row,
            None => {
                index.insert(key.clone(), pending.len());
                pending.push((key, new_row));
            }
        }
    }
    write_rows(session, table, &user, &pending, &[]).await?;
    drop(_guard);
    match &p.returning {
        Some(items) => {
            let rows: Vec<Vec<ScalarValue>> = pending.into_iter().map(|(_, r)| r).collect();
            returning(table, items, &rows, "INSERT 0").await
        }
        None => Ok(QueryOutput::count("INSERT 0", affected)),
    }
}

// ---------------------------------------------------------------- UPDATE / DELETE

/// Plans `SELECT <all columns>[, extra] FROM t WHERE ...` for UPDATE and DELETE.
async fn plan_matching_rows(
    session: &QueryContext,
    table: &TableDef,
    alias: Option<&ast::TableAlias>,
    extra: &[String],
    selection: &Option<ast::Expr>,
) -> Result<datafusion::logical_expr::LogicalPlan> {
    let mut items: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
    items.extend(extra.iter().cloned());
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        items.join(", "),
        quote(&table.namespace),
        quote(&table.name)
    );
    if let Some(a) = alias {
        sql.push_str(&format!(" AS {a}"));
    }
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    let Some(Statement::Sql(stmt)) = strata_sql::parse_one(&sql)? else {
        return Err(StrataError::internal("matching-rows query"));
    };
    session.plan(*stmt, &sql).await
}

fn merge_param_types(
    into: &mut Vec<Option<DataType>>,
    plan: &datafusion::logical_expr::LogicalPlan,
) -> Result<()> {
    for (name, ty) in plan.get_parameter_types()? {
        if let Ok(i) = name.trim_start_matches('$').parse::<usize>()
            && i >= 1
        {
            if into.len() < i {
                into.resize(i, None);
            }
            if into[i - 1].is_none() {
                into[i - 1] = ty;
            }
        }
    }
    Ok(())
}

fn single_table(t: &ast::TableWithJoins) -> Result<(&ast::ObjectName, Option<&ast::TableAlias>)> {
    match &t.relation {
        ast::TableFactor::Table { name, alias, .. } if t.joins.is_empty() => {
            Ok((name, alias.as_ref()))
        }
        _ => Err(StrataError::unsupported(
            "UPDATE/DELETE of a join is not supported",
        )),
    }
}

pub async fn prepare_update(
    session: &QueryContext,
    sql: &str,
    upd: ast::Update,
    catalog_version: u64,
) -> Result<Prepared> {
    if upd.from.is_some() {
        return Err(StrataError::unsupported("UPDATE ... FROM is not supported"));
    }
    let (name, alias) = single_table(&upd.table)?;
    let table = writable_table(session, name)?;
    let mut assigned = vec![];
    let mut notes = vec![];
    let mut extra = vec![];
    let mut param_types: Vec<Option<DataType>> = vec![];
    for (k, a) in upd.assignments.iter().enumerate() {
        let i = assignment_column(&table, &a.target)?;
        if let ValueSrc::Param(p) = value_src(&a.value) {
            if param_types.len() <= p {
                param_types.resize(p + 1, None);
            }
            param_types[p] = Some(table.columns[i].ty.arrow_type());
            notes.push((p, table.columns[i].ty.clone()));
            // Typing the placeholder lets DataFusion plan it.
            extra.push(format!(
                "CAST({} AS {}) AS __v{k}",
                a.value,
                cast_name(&table.columns[i])
            ));
        } else {
            extra.push(format!("{} AS __v{k}", a.value));
        }
        assigned.push(i);
    }
    let select = plan_matching_rows(session, &table, alias, &extra, &upd.selection).await?;
    merge_param_types(&mut param_types, &select)?;
    let schema = returning_schema(&table, &upd.returning).await?;
    let point = crate::point_write::point_key(&table, alias, &upd.selection)?;
    let plan = UpdatePlan {
        table,
        select: Box::new(select),
        assigned,
        returning: upd.returning,
        point,
    };
    let mut prepared = Prepared {
        sql: sql.into(),
        kind: PlanKind::Update(plan),
        param_types,
        param_sql_types: vec![],
        schema,
        catalog_version,
        source: None,
        optimized: Default::default(),
    };
    for (i, ty) in notes {
        note_param(&mut prepared, i, &ty);
    }
    Ok(prepared)
}

/// A type name DataFusion's CAST accepts for a column's type.
fn cast_name(col: &ColumnDef) -> String {
    use strata_catalog::ColumnType as T;
    match &col.ty {
        T::Uuid | T::Json | T::Jsonb | T::Varchar(_) => "TEXT".into(),
        T::TimestampTz => "TIMESTAMPTZ".into(),
        other => other.sql_name(),
    }
}

/// The first `n` values of row `r` of a batch.
fn row_values(b: &RecordBatch, r: usize, n: usize) -> Result<Vec<ScalarValue>> {
    (0..n)
        .map(|c| Ok(ScalarValue::try_from_array(b.column(c), r)?))
        .collect()
}

/// The rows an UPDATE or DELETE acts on (its columns, then any new values):
/// read by key for `WHERE pk = …`, else by running `plan`.
async fn matching_rows(
    session: &QueryContext,
    table: &Arc<TableDef>,
    partition: &str,
    point: Option<&ValueSrc>,
    plan: &datafusion::logical_expr::LogicalPlan,
    params: Vec<ScalarValue>,
) -> Result<Vec<RecordBatch>> {
    if let Some(key) = point
        && let Some(rows) =
            crate::point_write::point_rows(session, table, partition, key, plan, &params).await?
    {
        return Ok(rows);
    }
    let plan = bind_params(plan.clone(), &params)?;
    let df = session.ctx.execute_logical_plan(plan).await?;
    Ok(session.engine.execute(df).try_collect().await?)
}

pub async fn execute_update(
    session: &QueryContext,
    p: &UpdatePlan,
    params: Vec<ScalarValue>,
) -> Result<QueryOutput> {
    let table = &p.table;
    // Checked again at every execution: a role lowered since PREPARE counts.
    crate::privileges::check_table_access(&session.engine.catalog, session.user(), table, true)?;
    let n = table.columns.len();
    let pk = table.pk_index();
    let user = partition(session, table);
    let lock = session.engine.write_lock(table.id);
    let _guard = lock.lock().await;
    check_still_current(session, table)?;
    let batches = matching_rows(session, table, &user, p.point.as_ref(), &p.select, params).await?;
    let mut puts: Vec<(Vec<u8>, Vec<ScalarValue>)> = vec![];
    let mut deletes: Vec<Vec<u8>> = vec![];
    let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut old_keys: std::collections::HashSet<Vec<u8>> = Default::default();
    for b in &batches {
        for r in 0..b.num_rows() {
            let mut row = row_values(b, r, n)?;
            let old_key = keys::row_key(table.id, &user, &row[pk])?;
            for (k, &i) in p.assigned.iter().enumerate() {
                row[i] = coerce(
                    &table.columns[i],
                    ScalarValue::try_from_array(b.column(n + k), r)?,
                )?;
            }
            check_not_null(table, &row)?;
            let new_key = keys::row_key(table.id, &user, &row[pk])?;
            old_keys.insert(old_key.clone());
            if new_key != old_key {
                deletes.push(old_key);
            }
            if index.insert(new_key.clone(), puts.len()).is_some() {
                return Err(duplicate_key(table, &row[pk]));
            }
            puts.push((new_key, row));
        }
    }
    // A changed primary key must not land on a row this statement did not move.
    for (k, row) in &puts {
        if !old_keys.contains(k) && visible_row_exists(session, table, &user, k)? {
            return Err(duplicate_key(table, &row[pk]));
        }
    }
    deletes.retain(|k| !index.contains_key(k));
    write_rows(session, table, &user, &puts, &deletes).await?;
    drop(_guard);
    let count = puts.len();
    match &p.returning {
        Some(items) => {
            let rows: Vec<Vec<ScalarValue>> = puts.into_iter().map(|(_, r)| r).collect();
            returning(table, items, &rows, "UPDATE").await
        }
        None => Ok(QueryOutput::count("UPDATE", count)),
    }
}

pub async fn prepare_delete(
    session: &QueryContext,
    sql: &str,
    del: ast::Delete,
    catalog_version: u64,
) -> Result<Prepared> {
    if del.using.is_some() {
        return Err(StrataError::unsupported(
            "DELETE ... USING is not supported",
        ));
    }
    let from = match &del.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if from.len() != 1 {
        return Err(StrataError::unsupported(
            "DELETE from several tables is not supported",
        ));
    }
    let (name, alias) = single_table(&from[0])?;
    let table = writable_table(session, name)?;
    let select = plan_matching_rows(session, &table, alias, &[], &del.selection).await?;
    let mut param_types = vec![];
    merge_param_types(&mut param_types, &select)?;
    let schema = returning_schema(&table, &del.returning).await?;
    let point = crate::point_write::point_key(&table, alias, &del.selection)?;
    let plan = DeletePlan {
        table,
        select: Box::new(select),
        returning: del.returning,
        point,
    };
    Ok(Prepared {
        sql: sql.into(),
        kind: PlanKind::Delete(plan),
        param_types,
        param_sql_types: vec![],
        schema,
        catalog_version,
        source: None,
        optimized: Default::default(),
    })
}

pub async fn execute_delete(
    session: &QueryContext,
    p: &DeletePlan,
    params: Vec<ScalarValue>,
) -> Result<QueryOutput> {
    let table = &p.table;
    // Checked again at every execution: a role lowered since PREPARE counts.
    crate::privileges::check_table_access(&session.engine.catalog, session.user(), table, true)?;
    let n = table.columns.len();
    let pk = table.pk_index();
    let user = partition(session, table);
    let lock = session.engine.write_lock(table.id);
    let _guard = lock.lock().await;
    check_still_current(session, table)?;
    let batches = matching_rows(session, table, &user, p.point.as_ref(), &p.select, params).await?;
    let mut deletes = vec![];
    let mut rows = vec![];
    for b in &batches {
        for r in 0..b.num_rows() {
            let row = row_values(b, r, n)?;
            deletes.push(keys::row_key(table.id, &user, &row[pk])?);
            rows.push(row);
        }
    }
    write_rows(session, table, &user, &[], &deletes).await?;
    drop(_guard);
    match &p.returning {
        Some(items) => returning(table, items, &rows, "DELETE").await,
        None => Ok(QueryOutput::count("DELETE", rows.len())),
    }
}

//! UPDATE and DELETE of one row by its primary key without a DataFusion query.
//!
//! `UPDATE t SET … WHERE pk = <literal | $n>` (and DELETE alike) is what ORMs
//! send for every saved object. Planned the general way, each execution
//! builds and runs a physical plan (`SELECT <columns>, <new values> FROM t
//! WHERE …`) on the query runtime. Here the row is read by its key, as a point
//! SELECT does (the block's staged version first, then hot, then cold), and the
//! new values are evaluated on that one row by physical expressions, giving
//! the very batch the planned query would have: the executors do the rest
//! unchanged. When an expression cannot be evaluated this way (a subquery),
//! the statement falls back to the planned query.

use crate::context::QueryContext;
use crate::prepared::{ValueSrc, bind_params};
use crate::values::exact_key;
use crate::write::visible_row;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema};
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::{Result, StrataError, keys};
use strata_sql::sqlparser::ast;

/// The key of a WHERE clause that is exactly `pk = <literal | $n>` (either
/// way round, the column bare or qualified by the table or its alias).
pub(crate) fn point_key(
    table: &TableDef,
    alias: Option<&ast::TableAlias>,
    selection: &Option<ast::Expr>,
) -> Result<Option<ValueSrc>> {
    let Some(ast::Expr::BinaryOp {
        left,
        op: ast::BinaryOperator::Eq,
        right,
    }) = selection
    else {
        return Ok(None);
    };
    let pk = Some(table.pk_index());
    let value = if column_of(table, alias, left) == pk {
        right
    } else if column_of(table, alias, right) == pk {
        left
    } else {
        return Ok(None);
    };
    Ok(match crate::dml::value_src(value) {
        // A literal that names no key exactly (1.5 for an INT key) or does
        // not convert is left to the planned query, which compares as
        // Postgres does: a lookup by a rounded key would change another row.
        ValueSrc::Const(v) => exact_key(table.pk(), v).ok().flatten().map(ValueSrc::Const),
        ValueSrc::Param(i) => Some(ValueSrc::Param(i)),
        _ => None,
    })
}

/// The table column an expression names: bare, or qualified by the table's
/// name or by its alias when it has one.
pub(crate) fn column_of(
    table: &TableDef,
    alias: Option<&ast::TableAlias>,
    e: &ast::Expr,
) -> Option<usize> {
    let name = match e {
        ast::Expr::Identifier(id) => strata_sql::normalize_ident(id),
        ast::Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [c] => strata_sql::normalize_ident(c),
            [q, c] => {
                let qualifier = alias
                    .map(|a| strata_sql::normalize_ident(&a.name))
                    .unwrap_or_else(|| table.name.clone());
                if strata_sql::normalize_ident(q) != qualifier {
                    return None;
                }
                strata_sql::normalize_ident(c)
            }
            _ => return None,
        },
        _ => return None,
    };
    table.column_index(&name)
}

/// The rows `select` (`SELECT <columns>, <extra values> FROM t WHERE pk = …`)
/// would return, read by key: none or one. None when the extra values cannot
/// be evaluated here; the caller then runs `select`.
pub(crate) async fn point_rows(
    session: &QueryContext,
    table: &Arc<TableDef>,
    partition: &str,
    key: &ValueSrc,
    select: &LogicalPlan,
    params: &[ScalarValue],
) -> Result<Option<Vec<RecordBatch>>> {
    let key = match key {
        ValueSrc::Const(v) => v.clone(),
        ValueSrc::Param(i) => match exact_key(table.pk(), crate::dml::param(params, *i)?) {
            Ok(Some(k)) => k,
            // A value no key equals ('abcd' for a VARCHAR(3) key).
            Ok(None) => return Ok(Some(vec![])),
            // The planned query reports it as it would.
            Err(_) => return Ok(None),
        },
        _ => return Ok(None),
    };
    if key.is_null() {
        return Ok(Some(vec![]));
    }
    let bound = bind_params(select.clone(), params)?;
    let LogicalPlan::Projection(projection) = &bound else {
        return Ok(None);
    };
    let n = table.columns.len();
    let Some(extra) = projection.expr.get(n..) else {
        return Ok(None);
    };
    let k = keys::row_key(table.id, partition, &key)?;
    let Some(row) = visible_row(session, table, partition, &k).await? else {
        return Ok(Some(vec![]));
    };
    let base = crate::dml::rows_to_columns(table, &[row])?;
    let schema = DFSchema::try_from(base.schema().as_ref().clone())?;
    // Borrowed, not `ctx.state()`: that clones the whole session state (its
    // function registries) on every execution.
    let state = session.ctx.state_ref();
    let state = state.read();
    let mut fields: Vec<Field> = base
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = base.columns().to_vec();
    // The planned query's optimizer would simplify the expressions first, and
    // some functions run only simplified (`now()` becomes the statement's
    // start time, `coalesce` a CASE): so here too, with one start time for
    // the statement. Anything that still will not plan or evaluate here is
    // left to the planned query, which reports its own errors.
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(Arc::new(schema.clone()))
            .with_config_options(state.config_options().clone())
            .with_current_time()
            .build(),
    );
    for (i, e) in extra.iter().enumerate() {
        let e = unqualified(e.clone().unalias())?;
        let Ok(e) = simplifier
            .coerce(e, &schema)
            .and_then(|e| simplifier.simplify(e))
        else {
            return Ok(None);
        };
        let Ok(physical) = state.create_physical_expr(e, &schema) else {
            return Ok(None);
        };
        let Ok(value) = physical.evaluate(&base).and_then(|v| v.into_array(1)) else {
            return Ok(None);
        };
        fields.push(Field::new(
            format!("__v{i}"),
            value.data_type().clone(),
            true,
        ));
        columns.push(value);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| StrataError::internal(e.to_string()))?;
    Ok(Some(vec![batch]))
}

/// The expression with its columns named without the table (the row batch
/// has bare column names).
fn unqualified(e: Expr) -> Result<Expr> {
    Ok(e.transform(|e| {
        Ok(match e {
            Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
            other => Transformed::no(other),
        })
    })?
    .data)
}

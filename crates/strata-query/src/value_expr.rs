//! Value expressions of a prepared INSERT (`VALUES ($1, 'v-' || $2)`),
//! planned once and evaluated per execution without a DataFusion query.
//!
//! Planning `SELECT <expr>` and running it costs a full query (parse, logical
//! and physical plan, a task) per value per execution. A prepared statement
//! plans its expression at its first execution instead and keeps the logical
//! expression; each execution binds the parameters, folds constants and
//! evaluates the result on a one-row batch. Only expressions DataFusion folds
//! to the same value wherever they run qualify: literals, parameters, casts,
//! operators and DataFusion's own immutable functions. Anything else — a
//! subquery, `now()`, `random()`, a session's functions (`current_user`) — is
//! planned and run at every execution as before.

use crate::context::QueryContext;
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{ColumnarValue, Expr, LogicalPlan};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::create_physical_expr;
use datafusion::scalar::ScalarValue;
use std::sync::{Arc, OnceLock};
use strata_common::Result;
use strata_sql::sqlparser::ast;

/// One value expression with its plan, made at the first execution.
#[derive(Debug, Clone)]
pub struct ValueExpr {
    pub ast: ast::Expr,
    /// None until planned; then Some(None) when it does not qualify, else
    /// the plan of `SELECT <expr>` (a projection of nothing).
    planned: OnceLock<Option<LogicalPlan>>,
}

impl ValueExpr {
    pub fn new(ast: ast::Expr) -> Self {
        ValueExpr {
            ast,
            planned: OnceLock::new(),
        }
    }

    /// The expression's value with `params` bound.
    pub async fn eval(
        &self,
        session: &QueryContext,
        params: &[ScalarValue],
    ) -> Result<ScalarValue> {
        if self.planned.get().is_none() {
            let planned = plan(session, &self.ast).await;
            let _ = self.planned.set(planned);
        }
        match self.planned.get() {
            Some(Some(plan)) => eval_planned(plan, params),
            _ => crate::dml::eval_expr(session, &self.ast, params).await,
        }
    }
}

/// The plan of `SELECT <expr>`, if the expression qualifies.
async fn plan(session: &QueryContext, expr: &ast::Expr) -> Option<LogicalPlan> {
    let sql = format!("SELECT {expr}");
    let Ok(Some(strata_sql::Statement::Sql(stmt))) = strata_sql::parse_one(&sql) else {
        return None;
    };
    let plan = session.plan(*stmt, &sql).await.ok()?;
    let expr = projected(&plan)?;
    deterministic(expr).then_some(plan)
}

/// The one expression a plan of `SELECT <expr>` projects.
fn projected(plan: &LogicalPlan) -> Option<&Expr> {
    match plan {
        LogicalPlan::Projection(p)
            if matches!(p.input.as_ref(), LogicalPlan::EmptyRelation(_)) && p.expr.len() == 1 =>
        {
            p.expr.first()
        }
        _ => None,
    }
}

/// Whether an expression is made only of literals, parameters, casts,
/// operators and DataFusion's built-in immutable functions.
fn deterministic(e: &Expr) -> bool {
    crate::plan_cache::every(e, |e| match e {
        Expr::Literal(..)
        | Expr::Placeholder(_)
        | Expr::BinaryExpr(_)
        | Expr::Cast(_)
        | Expr::TryCast(_)
        | Expr::Not(_)
        | Expr::Negative(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::Case(_)
        | Expr::Like(_)
        | Expr::Between(_)
        | Expr::Alias(_) => true,
        Expr::ScalarFunction(f) => crate::plan_cache::builtin_immutable(f.func.as_ref()),
        _ => false,
    })
}

/// Binds the parameters, folds constants and evaluates what is left.
fn eval_planned(plan: &LogicalPlan, params: &[ScalarValue]) -> Result<ScalarValue> {
    let bound = plan
        .clone()
        .replace_params_with_values(&ParamValues::from(params.to_vec()))?;
    let expr = projected(&bound)
        .ok_or_else(|| strata_common::StrataError::internal("value expression plan"))?
        .clone()
        .unalias();
    let schema = DFSchema::empty();
    let props = ExecutionProps::new();
    let simplifier = ExprSimplifier::new(SimplifyContext::default());
    // The plan is not analyzed: coerce the types (`Int64 + Int32`) first.
    let coerced = simplifier.coerce(expr, &schema)?;
    let folded = simplifier.simplify(coerced)?;
    if let Expr::Literal(v, _) = &folded {
        return Ok(v.clone());
    }
    let physical = create_physical_expr(
        &folded,
        &schema,
        &props,
        &PhysicalPlanningContext::default(),
    )?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| strata_common::StrataError::internal(e.to_string()))?;
    Ok(match physical.evaluate(&one_row)? {
        ColumnarValue::Scalar(v) => v,
        ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0)?,
    })
}

//! The optimized logical plan of a prepared query, kept across executions.
//!
//! A prepared query keeps DataFusion's logical plan with its `$n`
//! placeholders; planned the general way, every execution binds the values
//! and then runs the analyzer and some thirty optimizer rules again — a
//! quarter of the CPU of a short query (the profile of the 100-key range
//! aggregate in docs/benchmarks.md). Here the plan is analyzed and optimized
//! once, placeholders and all, at its first execution; each execution binds
//! the values into the optimized plan and goes straight to physical
//! planning, where the table providers see the bound filters (key ranges,
//! pruning) as before.
//!
//! Only plans whose result cannot depend on when they were optimized
//! qualify: every scalar function one of DataFusion's own immutable ones
//! (`now()`, `current_date` and `random()` fold or vary at optimization; the
//! session's and the catalogs' functions read state), every parameter's type known
//! (the optimizer coerces around them), and no statement, DML or EXPLAIN
//! node. Anything else, and any plan the optimizer refuses with
//! placeholders in it, is optimized at every execution as before.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, Volatility};
use std::collections::HashSet;
use std::sync::OnceLock;

/// A prepared query's optimized plan, made at its first execution (None
/// inside when the query does not qualify).
#[derive(Debug, Default)]
pub struct OptimizedPlan(OnceLock<Option<LogicalPlan>>);

impl OptimizedPlan {
    /// The optimized form of `plan` (the prepared query's, with its
    /// placeholders), if it qualifies; `typed` says every parameter's type
    /// is known.
    pub fn get(
        &self,
        plan: &LogicalPlan,
        state: &SessionState,
        typed: bool,
    ) -> Option<&LogicalPlan> {
        self.0
            .get_or_init(|| {
                if !typed || !qualifies(plan) {
                    return None;
                }
                state.optimize(plan).ok()
            })
            .as_ref()
    }
}

/// Whether a plan gives the same rows optimized once as optimized per
/// execution.
fn qualifies(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        ok &= !matches!(
            node,
            LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Extension(_)
        );
        if ok {
            let _ = node.apply_expressions(|e| {
                ok &= every(e, immutable);
                Ok(go_on(ok))
            });
        }
        Ok(go_on(ok))
    });
    ok
}

/// Whether `pred` holds for `e` and every expression inside it.
pub(crate) fn every(e: &Expr, mut pred: impl FnMut(&Expr) -> bool) -> bool {
    let mut ok = true;
    let _ = e.apply(|e| {
        ok = pred(e);
        Ok(go_on(ok))
    });
    ok
}

/// A walk goes on while its test holds.
fn go_on(ok: bool) -> TreeNodeRecursion {
    if ok {
        TreeNodeRecursion::Continue
    } else {
        TreeNodeRecursion::Stop
    }
}

fn immutable(e: &Expr) -> bool {
    match e {
        Expr::ScalarFunction(f) => builtin_immutable(f.func.as_ref()),
        Expr::AggregateFunction(f) => f.func.signature().volatility == Volatility::Immutable,
        Expr::WindowFunction(f) => f.fun.signature().volatility == Volatility::Immutable,
        Expr::ScalarVariable(..) => false,
        _ => true,
    }
}

/// Whether a scalar function is one of DataFusion's own and immutable. The
/// session's and the Postgres catalog's functions (current_user,
/// current_schema, has_table_privilege, ...) read state that can change
/// under a prepared statement, whatever volatility they declare.
pub(crate) fn builtin_immutable(f: &ScalarUDF) -> bool {
    static BUILT_IN: OnceLock<HashSet<String>> = OnceLock::new();
    let built_in = BUILT_IN.get_or_init(|| {
        datafusion::functions::all_default_functions()
            .iter()
            .map(|f| f.name().to_string())
            .collect()
    });
    built_in.contains(f.name()) && f.signature().volatility == Volatility::Immutable
}

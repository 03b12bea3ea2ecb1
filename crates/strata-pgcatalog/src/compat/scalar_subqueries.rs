//! Correlated scalar subqueries in a SELECT list of catalog queries
//! (SQLAlchemy's column reflection: a column's DEFAULT, its type's collation).
//!
//! `datafusion-pg-catalog`'s parser replaces every correlated scalar subquery
//! in a projection with NULL (DataFusion only decorrelates scalar subqueries
//! that aggregate), which silently answers "no default" for every column.
//! Before that parser sees the statement, each such subquery is made one
//! DataFusion plans: its one selected value is aggregated with `max` (the
//! subquery returns at most one row, so the value is the same), and it is
//! wrapped in parentheses so the parser's rule leaves it alone. A subquery
//! over `pg_sequence` (identity columns) or about collations (`pg_collation`,
//! `pg_type.typcollation`) is NULL: Strata has no sequences, and every column
//! uses the default collation (`attcollation` 0), so Postgres' answer is NULL
//! too. DataFusion cannot run those where SQLAlchemy puts them (in a CASE).

use std::ops::ControlFlow;
use strata_sql::sqlparser::ast::{
    self, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Query, SelectItem, SetExpr, TableFactor, Value, VisitMut, VisitorMut,
};
use strata_sql::sqlparser::dialect::PostgreSqlDialect;
use strata_sql::sqlparser::parser::Parser;

/// The statement text with its projection subqueries made plannable; None
/// when it has none (the text is then used as it came).
pub(super) fn protect(sql: &str) -> Option<String> {
    if !sql.to_ascii_lowercase().contains("(select") {
        return None;
    }
    let mut stmts = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut v = Protect { changed: false };
    for s in &mut stmts {
        let _ = s.visit(&mut v);
    }
    v.changed.then(|| {
        stmts
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

struct Protect {
    changed: bool,
}

impl VisitorMut for Protect {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                let expr = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                if let Expr::Subquery(sub) = expr {
                    *expr = Expr::Nested(Box::new(Expr::Subquery(sub.clone())));
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Every scalar subquery, wherever it is (a CASE arm too), aggregates.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Subquery(sub) = expr {
            if let Some(call) = column_default_lookup(sub) {
                *expr = call;
                self.changed = true;
            } else if reads_sequences_or_collations(sub) {
                *expr = Expr::Value(Value::Null.into());
                self.changed = true;
            } else if aggregate_single_value(sub) {
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

/// The function that reads a column's DEFAULT text: `(table oid, attnum)`.
pub(crate) const COLUMN_DEFAULT: &str = "strata_column_default";

/// `(SELECT pg_get_expr(d.adbin, d.adrelid[, pretty]) FROM pg_attrdef d
/// WHERE d.adrelid = R AND d.adnum = N …)` — how psql's `\d` and SQLAlchemy
/// read a column's DEFAULT — becomes `strata_column_default(R, N)`, which
/// DataFusion runs without decorrelating anything. (Other conditions only
/// say whether the column has a default, which the function knows.)
fn column_default_lookup(q: &Query) -> Option<Expr> {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return None;
    };
    let [from] = select.from.as_slice() else {
        return None;
    };
    let TableFactor::Table { name, alias, .. } = &from.relation else {
        return None;
    };
    if !from.joins.is_empty()
        || !name
            .to_string()
            .to_ascii_lowercase()
            .ends_with("pg_attrdef")
        || select.projection.len() != 1
    {
        return None;
    }
    let item = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    if !matches!(item, Expr::Function(f) if f.name.to_string().to_ascii_lowercase().ends_with("pg_get_expr"))
    {
        return None;
    }
    let qualifier = alias
        .as_ref()
        .map(|a| a.name.value.to_ascii_lowercase())
        .unwrap_or_else(|| "pg_attrdef".into());
    let mut conjuncts = vec![];
    split_and(select.selection.as_ref()?, &mut conjuncts);
    let side = |column: &str| {
        conjuncts.iter().find_map(|c| match c {
            Expr::BinaryOp {
                left,
                op: ast::BinaryOperator::Eq,
                right,
            } => {
                if names_column(left, &qualifier, column) {
                    Some((**right).clone())
                } else if names_column(right, &qualifier, column) {
                    Some((**left).clone())
                } else {
                    None
                }
            }
            _ => None,
        })
    };
    let (relid, attnum) = (side("adrelid")?, side("adnum")?);
    Some(Expr::Function(Function {
        name: ast::ObjectName::from(vec![ast::Ident::new(COLUMN_DEFAULT)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![
                FunctionArg::Unnamed(FunctionArgExpr::Expr(relid)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(attnum)),
            ],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

fn split_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryOp {
            left,
            op: ast::BinaryOperator::And,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        Expr::Nested(inner) => split_and(inner, out),
        other => out.push(other),
    }
}

/// `q.column`, `pg_catalog.q.column` or a bare `column`.
fn names_column(e: &Expr, qualifier: &str, column: &str) -> bool {
    match e {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(column),
        Expr::CompoundIdentifier(parts) => {
            let n = parts.len();
            n >= 2
                && parts[n - 1].value.eq_ignore_ascii_case(column)
                && parts[n - 2].value.eq_ignore_ascii_case(qualifier)
        }
        _ => false,
    }
}

fn reads_sequences_or_collations(q: &Query) -> bool {
    let SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    let from = select.from.iter().any(|t| {
        matches!(&t.relation, TableFactor::Table { name, .. } if {
            let name = name.to_string().to_ascii_lowercase();
            name.ends_with("pg_sequence") || name.ends_with("pg_collation")
        })
    });
    let selects_collation = select.projection.iter().any(|item| {
        matches!(item, SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }
            if e.to_string().to_ascii_lowercase().ends_with("typcollation"))
    });
    from || selects_collation
}

/// `SELECT x FROM … WHERE …` → `SELECT max(x) FROM … WHERE …`, when it
/// selects one plain value (no aggregate, grouping or limit of its own);
/// returns whether it did.
fn aggregate_single_value(q: &mut Query) -> bool {
    if q.limit_clause.is_some() || q.fetch.is_some() {
        return false;
    }
    let SetExpr::Select(select) = q.body.as_mut() else {
        return false;
    };
    let no_grouping = match &select.group_by {
        ast::GroupByExpr::Expressions(e, _) => e.is_empty(),
        ast::GroupByExpr::All(_) => false,
    };
    if select.projection.len() != 1 || !no_grouping || select.having.is_some() {
        return false;
    }
    let expr = match &mut select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return false,
    };
    if has_aggregate(expr) {
        return false;
    }
    let inner = std::mem::replace(expr, Expr::Value(Value::Null.into()));
    *expr = Expr::Function(Function {
        name: ast::ObjectName::from(vec![ast::Ident::new("max")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(inner))],
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    });
    true
}

/// Whether the expression already calls an aggregate (then it yields one row).
fn has_aggregate(e: &Expr) -> bool {
    const AGGREGATES: [&str; 10] = [
        "max",
        "min",
        "count",
        "sum",
        "avg",
        "array_agg",
        "string_agg",
        "bool_and",
        "bool_or",
        "json_agg",
    ];
    let mut found = false;
    let _ = ast::visit_expressions(e, |x| {
        // `pg_catalog.array_agg` (pg_dump) is the same aggregate.
        if let Expr::Function(f) = x
            && let Some(name) = f.name.0.last().and_then(|p| p.as_ident())
            && AGGREGATES
                .iter()
                .any(|a| name.value.eq_ignore_ascii_case(a))
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

#[cfg(test)]
mod tests {
    use super::protect;

    #[test]
    fn projection_subqueries_aggregate_and_hide_from_the_null_rule() {
        let out = protect(
            "SELECT a.attname, (SELECT t.typname FROM pg_catalog.pg_type t WHERE t.oid = a.atttypid) AS tn \
             FROM pg_catalog.pg_attribute a",
        )
        .unwrap();
        assert!(out.contains("((SELECT max(t.typname) FROM"), "{out}");
    }

    #[test]
    fn column_defaults_become_a_function_call() {
        let out = protect(
            "SELECT a.attname, (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) \
             FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum \
             AND a.atthasdef) FROM pg_catalog.pg_attribute a",
        )
        .unwrap();
        assert!(
            out.contains("strata_column_default(a.attrelid, a.attnum)"),
            "{out}"
        );
        assert!(!out.contains("pg_attrdef"), "{out}");
    }

    #[test]
    fn sequences_and_collations_are_null_and_aggregates_stay() {
        let out = protect(
            "SELECT (SELECT s.seqstart FROM pg_catalog.pg_sequence s WHERE s.seqrelid = c.oid), \
             CASE WHEN c.relkind = 'r' THEN (SELECT co.collname FROM pg_catalog.pg_collation co \
             WHERE co.oid = c.oid) END, (SELECT count(*) FROM pg_catalog.pg_type t WHERE t.oid = c.reltype) \
             FROM pg_catalog.pg_class c",
        )
        .unwrap();
        assert!(
            !out.contains("pg_sequence") && !out.contains("pg_collation"),
            "{out}"
        );
        assert!(out.contains("(SELECT count(*) FROM"), "{out}");
        assert!(!out.contains("max(count"), "{out}");
        let out = protect(
            "SELECT (SELECT pg_catalog.array_agg(attnum ORDER BY attnum) FROM pg_catalog.pg_attribute \
             WHERE attrelid = i.indexrelid AND attstattarget >= 0) AS indstatcols FROM pg_catalog.pg_index i",
        )
        .unwrap();
        assert!(
            out.contains("((SELECT pg_catalog.array_agg(attnum ORDER BY attnum)"),
            "{out}"
        );
        assert_eq!(protect("SELECT 1"), None);
    }
}

//! Parsing of the catalog queries tools send (psql's `\d` family, JDBC
//! metadata, drivers' type lookups). They go through `datafusion-pg-catalog`'s
//! parser, which swaps known-unplannable queries for equivalents and rewrites
//! Postgres-only syntax (`OPERATOR(pg_catalog.~)`, `'t'::regclass`, …) into
//! what DataFusion plans. Every other statement takes Strata's own parser.

use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use std::sync::LazyLock;
use strata_common::Result;
use strata_sql::Statement;
use strata_sql::sqlparser::ast;

static PARSER: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// Whether `sql` reads the Postgres catalogs or uses their idioms.
fn is_catalog_query(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    [
        "pg_",
        "information_schema",
        "::reg",
        "operator(",
        "current_schema",
    ]
    .iter()
    .any(|m| lower.contains(m))
}

pub(crate) fn parse_sql(sql: &str) -> Result<Vec<Statement>> {
    if is_catalog_query(sql)
        && let Ok(stmts) = PARSER.parse(sql)
        && stmts.iter().all(|s| matches!(s, ast::Statement::Query(_)))
    {
        return Ok(stmts
            .into_iter()
            .map(|mut s| {
                array_subqueries_to_array_agg(&mut s);
                Statement::Sql(Box::new(s))
            })
            .collect());
    }
    strata_sql::parse_sql(sql)
}

pub(crate) fn parse_one(sql: &str) -> Result<Option<Statement>> {
    let mut stmts = parse_sql(sql)?;
    if stmts.len() > 1 {
        return Err(strata_common::StrataError::syntax(
            "cannot insert multiple commands into a prepared statement",
        ));
    }
    Ok(stmts.pop())
}

/// `ARRAY(SELECT x FROM …)` (psql's `\du` lists role memberships so) becomes
/// the scalar subquery `(SELECT array_agg(x) FROM …)`, which DataFusion plans.
fn array_subqueries_to_array_agg(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e| {
        if let ast::Expr::Function(f) = e
            && f.name.to_string().eq_ignore_ascii_case("array")
            && let ast::FunctionArguments::Subquery(q) = &f.args
        {
            let mut q = q.clone();
            if let ast::SetExpr::Select(sel) = q.body.as_mut()
                && sel.projection.len() == 1
            {
                let item = sel.projection.remove(0);
                let (inner, alias) = match item {
                    ast::SelectItem::UnnamedExpr(x) => (x, None),
                    ast::SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias)),
                    other => {
                        sel.projection.push(other);
                        return std::ops::ControlFlow::<()>::Continue(());
                    }
                };
                let agg = ast::Expr::Function(ast::Function {
                    name: ast::ObjectName::from(vec![ast::Ident::new("array_agg")]),
                    uses_odbc_syntax: false,
                    parameters: ast::FunctionArguments::None,
                    args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(inner))],
                        clauses: vec![],
                    }),
                    filter: None,
                    null_treatment: None,
                    over: None,
                    within_group: vec![],
                });
                sel.projection.push(match alias {
                    Some(alias) => ast::SelectItem::ExprWithAlias { expr: agg, alias },
                    None => ast::SelectItem::UnnamedExpr(agg),
                });
                *e = ast::Expr::Subquery(q);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

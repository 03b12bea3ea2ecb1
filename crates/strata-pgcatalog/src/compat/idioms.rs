//! Postgres idioms of catalog queries (pg_dump, DBeaver, Metabase, pgjdbc)
//! rewritten into what DataFusion plans, on the parsed statement:
//!
//! - `current_catalog` (a keyword, like `current_user`) → `current_database()`;
//! - casts to `"char"`, `char`, `bpchar` and `name` → `text` (DataFusion has
//!   no such types; the catalogs hold those columns as text);
//! - `name[0]`: a `name` is a character array in Postgres, subscripted from
//!   0 (pg_dump's `typname[0] = '_'`) → `substr(name, 1, 1)`;
//! - `OPERATOR(pg_catalog.=)` and the other comparison / pattern operators
//!   (`datafusion-pg-catalog` maps only the regex ones);
//! - `information_schema._pg_expandarray(vector)`: a set-returning function
//!   of (x, n) records. Strata's index keys have one column, so its one row
//!   is (first element, 1): `(…).n` → 1, `(…).x` → `strata_first_key(vector)`,
//!   and a selected `_pg_expandarray(v) AS k` becomes the x, its `(q.k).x`
//!   the column itself;
//! - `CAST(expr AS regclass)` of a non-literal (literals are
//!   `datafusion-pg-catalog`'s) → `strata_regclass(expr)`;
//! - `pg_options_to_table(column)` in FROM: Strata keeps no FDW or relation
//!   options, so it is an empty table of (option_name, option_value) (a
//!   correlated table function call DataFusion cannot plan);
//! - `SELECT x.oid, x.* …` in a subquery: DataFusion refuses two output
//!   columns of one name, so the named column is aliased `__alias_oid`, as
//!   `datafusion-pg-catalog` does at the top level (the wire layer names it
//!   `oid` again, see [`ALIAS_PREFIX`]).

use crate::functions::misc::FIRST_KEY;
use std::collections::HashSet;
use std::ops::ControlFlow;
use strata_sql::sqlparser::ast::{
    self, AccessExpr, BinaryOperator, DataType, Expr, ObjectName, Query, SelectItem, SetExpr,
    Subscript, TableFactor, Value, VisitMut, VisitorMut,
};
use strata_sql::sqlparser::dialect::PostgreSqlDialect;
use strata_sql::sqlparser::parser::Parser;

pub(super) fn rewrite(stmt: &mut ast::Statement) {
    let mut v = Idioms {
        expanded: HashSet::new(),
    };
    // Aliases of selected `_pg_expandarray(…)` first: their `(q.alias).x`
    // may sit in an outer query visited before the inner one.
    let _ = stmt.visit(&mut CollectExpanded(&mut v.expanded));
    let _ = stmt.visit(&mut v);
}

fn parse_expr(sql: &str) -> Option<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .ok()
}

fn last_name(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// The argument of `[information_schema.]_pg_expandarray(arg)`.
fn expandarray_arg(e: &Expr) -> Option<&Expr> {
    let e = match e {
        Expr::Nested(inner) => inner.as_ref(),
        other => other,
    };
    let Expr::Function(f) = e else {
        return None;
    };
    if last_name(&f.name) != "_pg_expandarray" {
        return None;
    }
    let ast::FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg))] => Some(arg),
        _ => None,
    }
}

struct CollectExpanded<'a>(&'a mut HashSet<String>);

impl VisitorMut for CollectExpanded<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = q.body.as_ref() {
            for item in &select.projection {
                if let SelectItem::ExprWithAlias { expr, alias } = item
                    && expandarray_arg(expr).is_some()
                {
                    self.0.insert(alias.value.to_ascii_lowercase());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

struct Idioms {
    expanded: HashSet<String>,
}

/// Whether a cast target is one of the types read as text here.
fn is_text_like(ty: &DataType) -> bool {
    match ty {
        DataType::Char(None) | DataType::Character(None) => true,
        DataType::Custom(name, mods) if mods.is_empty() => {
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| p.as_ident().map(|i| i.value.to_ascii_lowercase()))
                .collect();
            matches!(
                parts
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["char" | "name" | "bpchar"] | ["pg_catalog", "char" | "name" | "bpchar"]
            )
        }
        _ => false,
    }
}

fn is_regclass(ty: &DataType) -> bool {
    match ty {
        DataType::Regclass => true,
        DataType::Custom(name, mods) => mods.is_empty() && last_name(name) == "regclass",
        _ => false,
    }
}

/// `OPERATOR(pg_catalog.op)` → the built-in operator.
fn catalog_operator(ops: &[String]) -> Option<BinaryOperator> {
    let [schema, op] = ops else {
        return None;
    };
    if !schema.eq_ignore_ascii_case("pg_catalog") {
        return None;
    }
    Some(match op.as_str() {
        "=" => BinaryOperator::Eq,
        "<>" | "!=" => BinaryOperator::NotEq,
        "<" => BinaryOperator::Lt,
        ">" => BinaryOperator::Gt,
        "<=" => BinaryOperator::LtEq,
        ">=" => BinaryOperator::GtEq,
        "~~" => BinaryOperator::PGLikeMatch,
        "!~~" => BinaryOperator::PGNotLikeMatch,
        "~~*" => BinaryOperator::PGILikeMatch,
        "!~~*" => BinaryOperator::PGNotILikeMatch,
        "~" => BinaryOperator::PGRegexMatch,
        "~*" => BinaryOperator::PGRegexIMatch,
        "!~" => BinaryOperator::PGRegexNotMatch,
        "!~*" => BinaryOperator::PGRegexNotIMatch,
        "||" => BinaryOperator::StringConcat,
        _ => return None,
    })
}

/// A column of a catalog's `name` type (`typname`, `relname`, …).
fn is_name_column(e: &Expr) -> bool {
    let last = match e {
        Expr::Identifier(i) => &i.value,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(i) => &i.value,
            None => return false,
        },
        _ => return false,
    };
    let last = last.to_ascii_lowercase();
    last.ends_with("name") && last.len() > 4
}

fn is_zero(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n == "0"))
}

/// The `current_catalog` keyword (parsed as a name or an argument-less call).
fn is_current_catalog(e: &Expr) -> bool {
    match e {
        Expr::Identifier(i) => {
            i.quote_style.is_none() && i.value.eq_ignore_ascii_case("current_catalog")
        }
        Expr::Function(f) => {
            matches!(f.args, ast::FunctionArguments::None)
                && last_name(&f.name) == "current_catalog"
        }
        _ => false,
    }
}

impl Idioms {
    fn rewrite_expr(&self, expr: &mut Expr) -> Option<Expr> {
        match expr {
            e if is_current_catalog(e) => parse_expr("current_database()"),
            Expr::Cast { data_type, .. } if is_text_like(data_type) => {
                *data_type = DataType::Text;
                None
            }
            Expr::Cast {
                data_type,
                expr: inner,
                ..
            } if is_regclass(data_type)
                && !matches!(inner.as_ref(), Expr::Value(v) if matches!(v.value, Value::Number(..))) =>
            {
                parse_expr(&format!(
                    "{}({inner})",
                    crate::functions::regclass::REGCLASS
                ))
            }
            Expr::BinaryOp { op, .. }
            | Expr::AnyOp { compare_op: op, .. }
            | Expr::AllOp { compare_op: op, .. } => {
                if let BinaryOperator::PGCustomBinaryOperator(ops) = op
                    && let Some(builtin) = catalog_operator(ops)
                {
                    *op = builtin;
                }
                None
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                if let [AccessExpr::Subscript(Subscript::Index { index })] = access_chain.as_slice()
                    && is_zero(index)
                    && is_name_column(root)
                {
                    return parse_expr(&format!("substr({root}, 1, 1)"));
                }
                let [AccessExpr::Dot(Expr::Identifier(field))] = access_chain.as_slice() else {
                    return None;
                };
                let field = field.value.to_ascii_lowercase();
                if let Some(arg) = expandarray_arg(root) {
                    return match field.as_str() {
                        "n" => parse_expr("CAST(1 AS INT)"),
                        "x" => parse_expr(&format!("{FIRST_KEY}({arg})")),
                        _ => None,
                    };
                }
                let column = match root.as_ref() {
                    Expr::Nested(inner) => inner.as_ref(),
                    other => other,
                };
                let last = match column {
                    Expr::Identifier(i) => i.value.to_ascii_lowercase(),
                    Expr::CompoundIdentifier(parts) => parts
                        .last()
                        .map(|i| i.value.to_ascii_lowercase())
                        .unwrap_or_default(),
                    _ => return None,
                };
                if !self.expanded.contains(&last) {
                    return None;
                }
                match field.as_str() {
                    "x" => Some(column.clone()),
                    "n" => parse_expr("CAST(1 AS INT)"),
                    _ => None,
                }
            }
            Expr::Function(_) => {
                let arg = expandarray_arg(expr)?;
                parse_expr(&format!("{FIRST_KEY}({arg})"))
            }
            _ => None,
        }
    }
}

/// The prefix of a column renamed because a wildcard repeats it; a result
/// column so named is sent under the name after it.
pub const ALIAS_PREFIX: &str = "__alias_";

/// `SELECT x.c, x.* …` → `SELECT x.c AS __alias_c, x.* …`.
fn alias_wildcard_duplicates(select: &mut ast::Select) {
    let mut tables: Vec<String> = vec![];
    let mut bare_wildcard = false;
    for p in &select.projection {
        match p {
            SelectItem::QualifiedWildcard(
                ast::SelectItemQualifiedWildcardKind::ObjectName(n),
                _,
            ) => tables.push(n.to_string().to_ascii_lowercase()),
            SelectItem::Wildcard(_) => bare_wildcard = true,
            _ => {}
        }
    }
    if tables.is_empty() && !bare_wildcard {
        return;
    }
    for p in &mut select.projection {
        let SelectItem::UnnamedExpr(e) = p else {
            continue;
        };
        let column = match e {
            Expr::Identifier(i) if bare_wildcard => i.clone(),
            Expr::CompoundIdentifier(parts) => {
                let Some((last, qualifier)) = parts.split_last() else {
                    continue;
                };
                if qualifier.is_empty() {
                    continue;
                }
                let qualifier = qualifier
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(".");
                if !bare_wildcard && !tables.contains(&qualifier) {
                    continue;
                }
                last.clone()
            }
            _ => continue,
        };
        *p = SelectItem::ExprWithAlias {
            expr: e.clone(),
            alias: ast::Ident::new(format!("{ALIAS_PREFIX}{}", column.value)),
        };
    }
}

impl VisitorMut for Idioms {
    type Break = ();

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = q.body.as_mut() {
            alias_wildcard_duplicates(select);
            // Selected bare, `current_catalog` names its column so.
            for p in &mut select.projection {
                if let SelectItem::UnnamedExpr(e) = p
                    && is_current_catalog(e)
                {
                    *p = SelectItem::ExprWithAlias {
                        expr: e.clone(),
                        alias: ast::Ident::new("current_catalog"),
                    };
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Field accesses first, before their `_pg_expandarray(…)` root is
    /// itself rewritten.
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if matches!(expr, Expr::CompoundFieldAccess { .. })
            && let Some(new) = self.rewrite_expr(expr)
        {
            *expr = new;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if !matches!(expr, Expr::CompoundFieldAccess { .. })
            && let Some(new) = self.rewrite_expr(expr)
        {
            *expr = new;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, t: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            alias,
            ..
        } = t
            && last_name(name) == "pg_options_to_table"
            && args.args.iter().all(|a| {
                matches!(
                    a,
                    ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(
                        Expr::Identifier(_) | Expr::CompoundIdentifier(_)
                    ))
                )
            })
            && let Ok(subquery) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(
                    "SELECT CAST(NULL AS TEXT) AS option_name, CAST(NULL AS TEXT) AS option_value WHERE false",
                )
                .and_then(|mut p| p.parse_query())
        {
            *t = TableFactor::Derived {
                lateral: false,
                subquery,
                alias: alias.take(),
                sample: None,
            };
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;
    use strata_sql::sqlparser::dialect::PostgreSqlDialect;
    use strata_sql::sqlparser::parser::Parser;

    fn rw(sql: &str) -> String {
        let mut s = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut s);
        s.to_string()
    }

    #[test]
    fn idioms_become_plannable() {
        assert_eq!(
            rw("SELECT current_catalog"),
            "SELECT current_database() AS current_catalog"
        );
        assert_eq!(
            rw("SELECT CAST(format('%I.%I', a, b) AS REGCLASS)"),
            "SELECT strata_regclass(format('%I.%I', a, b))"
        );
        assert_eq!(
            rw("SELECT ' '::\"char\", 'f'::char, '_RETURN'::name, 'x'::pg_catalog.name"),
            "SELECT ' '::TEXT, 'f'::TEXT, '_RETURN'::TEXT, 'x'::TEXT"
        );
        assert_eq!(
            rw("SELECT 1 FROM pg_type WHERE typname[0] = '_'"),
            "SELECT 1 FROM pg_type WHERE SUBSTR(typname, 1, 1) = '_'"
        );
        assert_eq!(
            rw("SELECT 1 WHERE a OPERATOR(pg_catalog.=) b AND c OPERATOR(pg_catalog.<>) d"),
            "SELECT 1 WHERE a = b AND c <> d"
        );
    }

    #[test]
    fn expandarray_is_the_first_key() {
        let out = rw(
            "SELECT (information_schema._pg_expandarray(i.indkey)).n AS pos, \
             (INFORMATION_SCHEMA._PG_EXPANDARRAY(i.indkey)).x FROM pg_index i",
        );
        assert_eq!(
            out,
            "SELECT CAST(1 AS INT) AS pos, strata_first_key(i.indkey) FROM pg_index i"
        );
        let out = rw(
            "SELECT 1 FROM (SELECT information_schema._pg_expandarray(i.indkey) AS KEYS, \
             a.attnum AS A FROM pg_index i) result WHERE result.A = (result.KEYS).x",
        );
        assert!(out.contains("strata_first_key(i.indkey) AS KEYS"), "{out}");
        assert!(out.ends_with("result.A = result.KEYS"), "{out}");
    }

    #[test]
    fn wildcard_duplicates_are_aliased_in_subqueries() {
        let out = rw("SELECT q.nspname FROM (SELECT x.oid, x.* FROM pg_namespace x) q");
        assert!(out.contains("x.oid AS __alias_oid, x.*"), "{out}");
        let out = rw("SELECT y.oid, x.* FROM a x, b y");
        assert!(out.contains("SELECT y.oid, x.*"), "{out}");
    }

    #[test]
    fn options_of_a_column_are_an_empty_table() {
        let out = rw(
            "SELECT ARRAY(SELECT option_name FROM pg_catalog.pg_options_to_table(attfdwoptions) ORDER BY option_name) FROM pg_attribute",
        );
        assert!(!out.contains("pg_options_to_table"), "{out}");
        let out = rw("SELECT * FROM pg_options_to_table('{a=1}')");
        assert!(out.contains("pg_options_to_table"), "{out}");
    }
}

//! Parsing of the catalog queries tools send (psql's `\d` family, JDBC
//! metadata, drivers' type lookups). They go through `datafusion-pg-catalog`'s
//! parser, which swaps known-unplannable queries for equivalents and rewrites
//! Postgres-only syntax (`OPERATOR(pg_catalog.~)`, `'t'::regclass`, …) into
//! what DataFusion plans. Every other statement takes Strata's own parser.

mod idioms;
mod pg_dump;
mod scalar_subqueries;

pub use idioms::ALIAS_PREFIX;

use crate::pg_catalog;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use std::borrow::Cow;
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

pub fn parse_sql(sql: &str) -> Result<Vec<Statement>> {
    let sql = substitute(sql);
    let protected = if is_catalog_query(&sql) && strata_sql::limits::check_sql(&sql).is_ok() {
        scalar_subqueries::protect(&sql)
    } else {
        None
    };
    let sql = protected.as_deref().unwrap_or(sql.as_ref());
    if is_catalog_query(sql)
        && strata_sql::limits::check_sql(sql).is_ok()
        && let Ok(stmts) = PARSER.parse(sql)
        && stmts.iter().all(|s| matches!(s, ast::Statement::Query(_)))
    {
        return Ok(stmts
            .into_iter()
            .map(|mut s| {
                qualify_extra_tables(&mut s);
                array_subqueries_to_array_agg(&mut s);
                regtype_text_to_format_type(&mut s);
                idioms::rewrite(&mut s);
                strata_sql::like_escape::rewrite(&mut s);
                Statement::Sql(Box::new(s))
            })
            .collect());
    }
    let mut stmts = strata_sql::parse_sql(sql)?;
    for s in &mut stmts {
        if let Statement::Sql(ast) = s {
            if matches!(ast.as_ref(), ast::Statement::Query(_)) {
                idioms::rewrite(ast);
            }
            strata_sql::like_escape::rewrite(ast);
        }
    }
    Ok(stmts)
}

/// Unqualified names of the `pg_catalog` relations Strata adds to the
/// crate's (`pg_transform`, …) get `pg_catalog.`, as the crate's rewrite does
/// for its own: Postgres searches `pg_catalog` first whatever the search path.
fn qualify_extra_tables(stmt: &mut ast::Statement) {
    let _ = ast::visit_relations_mut(stmt, |name| {
        if let [ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice()
            && pg_catalog::is_extra_table(&ident.value)
        {
            name.0.insert(
                0,
                ast::ObjectNamePart::Identifier(ast::Ident::new("pg_catalog")),
            );
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// `oid::regtype::text` is the type's name in Postgres (`integer`,
/// `character varying`); planned as is it would be the number. psycopg's
/// type lookup selects it.
fn regtype_text_to_format_type(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e| {
        if let ast::Expr::Cast {
            expr: inner,
            data_type: outer,
            ..
        } = e
            && is_type(outer, "text")
            && let ast::Expr::Cast {
                expr: oid,
                data_type: reg,
                ..
            } = inner.as_ref()
            && is_type(reg, "regtype")
        {
            let call = format!("format_type({oid}, NULL)");
            if let Ok(parsed) = strata_sql::sqlparser::parser::Parser::new(
                &strata_sql::sqlparser::dialect::PostgreSqlDialect {},
            )
            .try_with_sql(&call)
            .and_then(|mut p| p.parse_expr())
            {
                *e = parsed;
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
}

/// Whether a data type is `name` or `pg_catalog.name`.
fn is_type(ty: &ast::DataType, name: &str) -> bool {
    let text = ty.to_string().to_ascii_lowercase();
    text == name || text == format!("pg_catalog.{name}")
}

/// asyncpg's type introspection (`asyncpg/introspection.py`, sent whenever a
/// statement has a parameter or column of a type it has no codec for, such as
/// any array): a recursive CTE with correlated scalar subqueries in CASE arms,
/// which DataFusion plans but cannot execute. Strata has no domains, composite
/// or range types, so those branches are always NULL and only arrays recurse
/// (one level, to their element); this is the same answer in a shape DataFusion
/// runs. `attrtypoids` is `text[]` rather than `oid[]` because Strata cannot
/// describe a NULL `oid[]` column and asyncpg decodes both without introspecting
/// further; `$1` is typed `oid[]` from `ti.oid` (see `prepared::note_any_params`).
const ASYNCPG_TYPE_INTROSPECTION: &str = "
WITH ti AS (
    SELECT t.oid AS oid, ns.nspname AS ns, t.typname AS name, t.typtype AS kind,
           t.typelem AS elemtype, elem_t.typdelim AS elemdelim
    FROM pg_catalog.pg_type t
    JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace
    LEFT JOIN pg_catalog.pg_type elem_t
        ON t.typlen = -1 AND t.typelem <> 0 AND t.typelem = elem_t.oid
), tree AS (
    SELECT ti.*, 0 AS depth FROM ti WHERE ti.oid = ANY($1)
    UNION ALL
    SELECT ti.*, 1 AS depth FROM ti
    WHERE ti.oid IN (SELECT t.typelem FROM pg_catalog.pg_type t
                     WHERE t.oid = ANY($1) AND t.typelem <> 0)
)
SELECT oid, ns, name, kind, CAST(NULL AS oid) AS basetype, elemtype, elemdelim,
       CAST(NULL AS oid) AS range_subtype, CAST(NULL AS text[]) AS attrtypoids,
       CAST(NULL AS text[]) AS attrnames, depth,
       CAST(NULL AS text) AS basetype_name,
       CASE WHEN elemtype <> 0 THEN format_type(elemtype, NULL) ELSE '-' END AS elemtype_name,
       CAST(NULL AS text) AS range_subtype_name
FROM tree ORDER BY depth DESC";

/// pgjdbc's type lookup (`TypeInfoCache`) tells arrays by their input
/// function. `pg_type.typinput` holds function names here, while a `::regproc`
/// literal becomes `pg_proc`'s OID, and comparing the two fails.
const TYPINPUT: [(&str, &str); 2] = [
    (
        "typinput='pg_catalog.array_in'::regproc",
        "typinput='array_in'",
    ),
    ("typinput='array_in'::regproc", "typinput='array_in'"),
];

/// SQLAlchemy's constraint and index reflection expands `pg_index.indkey`
/// and `indclass` (int2vector/oidvector) with `unnest` and numbers them with
/// `generate_subscripts(indkey, 1)`. Strata's only index is a one-column
/// primary key, so the expansion is the vector's one element at subscript 1.
const INDEX_VECTORS: [(&str, &str); 2] = [
    (
        "unnest(pg_catalog.pg_index.indkey)",
        "CAST(pg_catalog.pg_index.indkey[1] AS SMALLINT)",
    ),
    (
        "unnest(pg_catalog.pg_index.indclass)",
        "CAST(pg_catalog.pg_index.indclass[1] AS INT)",
    ),
];
const SUBSCRIPTS: &str = "generate_subscripts(pg_catalog.pg_index.indkey, ";

/// `generate_subscripts(pg_catalog.pg_index.indkey, d)` → `CAST(d AS INT)`:
/// the dimension argument (1, or a parameter holding 1) is the subscript.
fn replace_subscripts(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(i) = rest.find(SUBSCRIPTS) {
        let after = &rest[i + SUBSCRIPTS.len()..];
        let Some(close) = after.find(')') else {
            break;
        };
        out.push_str(&rest[..i]);
        out.push_str(&format!("CAST({} AS INT)", after[..close].trim()));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// psql's `\d+` formats relation options with a correlated `array(…)` over
/// the TOAST table's, which DataFusion cannot plan; Strata's relations have
/// none.
const PSQL_ARRAYS: [(&str, &str); 1] = [(
    "pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', ')",
    "''",
)];

/// Queries drivers send verbatim that DataFusion cannot run, swapped for
/// equivalents it can, and system catalogs' names cast to `regclass`.
fn substitute(sql: &str) -> Cow<'_, str> {
    let sql = match pg_dump::rewrite(sql) {
        Cow::Borrowed(_) => catalog_regclass(sql),
        Cow::Owned(s) => Cow::Owned(catalog_regclass(&s).into_owned()),
    };
    // A whole query swapped for a constant is borrowed too: only the input
    // itself, handed back, means nothing was swapped.
    let known = substitute_known(&sql);
    let unchanged = matches!(&known, Cow::Borrowed(s) if std::ptr::eq(*s, sql.as_ref()));
    if unchanged {
        drop(known);
        return sql;
    }
    Cow::Owned(known.into_owned())
}

/// `'pg_proc'::regclass` (or `'pg_catalog.pg_proc'::pg_catalog.regclass`):
/// the system catalog's OID. The generic rewrite resolves the name through
/// `pg_class` in the current schema, where the catalogs are not; pg_dump
/// compares `pg_init_privs.classoid` and `pg_depend.classid` with these.
fn catalog_regclass(sql: &str) -> Cow<'_, str> {
    const CASTS: [&str; 2] = ["'::regclass", "'::pg_catalog.regclass"];
    let lower = sql.to_ascii_lowercase();
    if !CASTS.iter().any(|c| lower.contains(c)) {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some((pos, cast)) = CASTS
        .iter()
        .filter_map(|c| lower[at..].find(c).map(|p| (at + p, *c)))
        .min_by_key(|(p, _)| *p)
    {
        at = pos + cast.len();
        // The quoted name ends at `pos`; catalog names hold no quotes.
        let Some(open) = lower[..pos].rfind('\'') else {
            continue;
        };
        let name = &lower[open + 1..pos];
        let bare = name.strip_prefix("pg_catalog.").unwrap_or(name);
        let Some(oid) = pg_catalog::catalog_oid(bare) else {
            continue;
        };
        out.push_str(&sql[copied..open]);
        out.push_str(&oid.to_string());
        copied = at;
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// Known driver queries swapped whole or in part.
fn substitute_known(sql: &str) -> Cow<'_, str> {
    if sql.contains("typeinfo_tree") && sql.contains("range_subtype") && sql.contains("$1") {
        return Cow::Borrowed(ASYNCPG_TYPE_INTROSPECTION);
    }
    if sql.contains("pg_catalog.pg_index.ind")
        && (sql.contains("unnest(") || sql.contains(SUBSCRIPTS))
    {
        let mut out = replace_subscripts(sql);
        for (from, to) in INDEX_VECTORS {
            out = out.replace(from, to);
        }
        return Cow::Owned(out);
    }
    if PSQL_ARRAYS.iter().any(|(from, _)| sql.contains(from)) {
        let mut out = sql.to_string();
        for (from, to) in PSQL_ARRAYS {
            out = out.replace(from, to);
        }
        return Cow::Owned(out);
    }
    if sql.contains("typinput='") {
        let mut out = sql.to_string();
        for (from, to) in TYPINPUT {
            out = out.replace(from, to);
        }
        return Cow::Owned(out);
    }
    Cow::Borrowed(sql)
}

pub fn parse_one(sql: &str) -> Result<Option<Statement>> {
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
                // `ARRAY(SELECT x … ORDER BY k)` orders the array: the order
                // moves into the aggregate (pg_dump's option lists).
                let clauses = match q.order_by.take() {
                    Some(ast::OrderBy {
                        kind: ast::OrderByKind::Expressions(exprs),
                        ..
                    }) => vec![ast::FunctionArgumentClause::OrderBy(exprs)],
                    _ => vec![],
                };
                let agg = ast::Expr::Function(ast::Function {
                    name: ast::ObjectName::from(vec![ast::Ident::new("array_agg")]),
                    uses_odbc_syntax: false,
                    parameters: ast::FunctionArguments::None,
                    args: ast::FunctionArguments::List(ast::FunctionArgumentList {
                        duplicate_treatment: None,
                        args: vec![ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(inner))],
                        clauses,
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

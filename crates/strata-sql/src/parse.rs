//! Splitting a query string into statements and deciding, per statement, whether
//! it is Strata's own or plain SQL for sqlparser.

use crate::cursor::Cursor;
use crate::options::TableOptions;
use crate::sqlparser::ast;
use crate::sqlparser::dialect::PostgreSqlDialect;
use crate::sqlparser::parser::Parser;
use crate::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use crate::{ColumnSpec, CreateTable, Statement, normalize_ident};
use strata_common::{Result, StrataError};

/// Deeply nested input must fail cleanly, never overflow the stack.
const RECURSION_LIMIT: usize = 200;

/// Parses every statement of a simple-query string.
pub fn parse_sql(sql: &str) -> Result<Vec<Statement>> {
    split(sql)?.into_iter().map(parse_statement).collect()
}

/// Parses a prepared statement's text: at most one statement is allowed.
pub fn parse_one(sql: &str) -> Result<Option<Statement>> {
    let mut parts = split(sql)?;
    match parts.len() {
        0 => Ok(None),
        1 => parse_statement(parts.remove(0)).map(Some),
        _ => Err(StrataError::syntax(
            "cannot insert multiple commands into a prepared statement",
        )),
    }
}

fn split(sql: &str) -> Result<Vec<Vec<TokenWithSpan>>> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| StrataError::syntax(e.to_string()))?;
    crate::limits::check_tokens(&tokens)?;
    let mut out = vec![];
    let mut cur: Vec<TokenWithSpan> = vec![];
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth <= 0 => {
                if has_content(&cur) {
                    out.push(std::mem::take(&mut cur));
                } else {
                    cur.clear();
                }
                continue;
            }
            _ => {}
        }
        cur.push(t);
    }
    if has_content(&cur) {
        out.push(cur);
    }
    Ok(out)
}

fn has_content(toks: &[TokenWithSpan]) -> bool {
    toks.iter()
        .any(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
}

pub(crate) fn plain(toks: &[TokenWithSpan]) -> Vec<Token> {
    toks.iter().map(|t| t.token.clone()).collect()
}

pub(crate) fn parse_statement(toks: Vec<TokenWithSpan>) -> Result<Statement> {
    let mut c = Cursor::new(&plain(&toks));
    let create_schema = c.peek_words(&["CREATE", "SCHEMA"]);
    if c.eat_words(&["CREATE", "NAMESPACE"]) || c.eat_words(&["CREATE", "SCHEMA"]) {
        let if_not_exists = c.eat_words(&["IF", "NOT", "EXISTS"]);
        let name = c.ident()?;
        c.expect_end()?;
        return Ok(Statement::CreateNamespace {
            name,
            if_not_exists,
            schema: create_schema,
        });
    }
    let drop_schema = c.peek_words(&["DROP", "SCHEMA"]);
    if c.eat_words(&["DROP", "NAMESPACE"]) || c.eat_words(&["DROP", "SCHEMA"]) {
        let if_exists = c.eat_words(&["IF", "EXISTS"]);
        let name = c.ident()?;
        let cascade = c.eat_words(&["CASCADE"]);
        if !cascade {
            c.eat_words(&["RESTRICT"]);
        }
        c.expect_end()?;
        return Ok(Statement::DropNamespace {
            name,
            if_exists,
            cascade,
            schema: drop_schema,
        });
    }
    if c.eat_words(&["SHOW", "NAMESPACES"]) || c.eat_words(&["SHOW", "SCHEMAS"]) {
        c.expect_end()?;
        return Ok(Statement::ShowNamespaces);
    }
    if c.eat_words(&["SHOW", "TABLES"]) {
        let namespace = if c.eat_words(&["IN"]) || c.eat_words(&["FROM"]) {
            c.eat_words(&["NAMESPACE"]);
            Some(c.ident()?)
        } else {
            None
        };
        c.expect_end()?;
        return Ok(Statement::ShowTables { namespace });
    }
    if c.peek_words(&["CREATE", "TABLE"])
        || c.peek_words(&["CREATE", "USER", "TABLE"])
        || c.peek_words(&["CREATE", "SHARED", "TABLE"])
        || c.peek_words(&["CREATE", "STREAM", "TABLE"])
    {
        return parse_create_table(toks);
    }
    if c.peek_words(&["ALTER", "TABLE"]) {
        let mut probe = Cursor::new(&plain(&toks));
        probe.expect_words(&["ALTER", "TABLE"])?;
        probe.eat_words(&["IF", "EXISTS"]);
        let table = probe.object_ref()?;
        if probe.eat_words(&["SET"]) && probe.peek() == Some(&Token::LParen) {
            let mut options = TableOptions::default();
            options.parse_list(&mut probe)?;
            probe.expect_end()?;
            return Ok(Statement::AlterTableSet { table, options });
        }
    }
    if c.eat_words(&["STORAGE", "FLUSH"]) || c.eat_words(&["FLUSH"]) {
        if c.eat_words(&["ALL"]) {
            let namespace = if c.eat_words(&["IN"]) {
                c.eat_words(&["NAMESPACE"]);
                Some(c.ident()?)
            } else {
                None
            };
            c.expect_end()?;
            return Ok(Statement::FlushAll { namespace });
        }
        c.expect_words(&["TABLE"])?;
        let table = c.object_ref()?;
        c.expect_end()?;
        return Ok(Statement::FlushTable { table });
    }
    if c.eat_words(&["COMPACT"]) {
        c.expect_words(&["TABLE"])?;
        let table = c.object_ref()?;
        c.expect_end()?;
        return Ok(Statement::CompactTable { table });
    }
    if c.peek_words(&["KILL", "JOB"]) {
        c.expect_words(&["KILL", "JOB"])?;
        let job_id = c.literal()?;
        c.expect_end()?;
        return Ok(Statement::KillJob { job_id });
    }
    if c.peek_words(&["CREATE", "USER"])
        || c.peek_words(&["ALTER", "USER"])
        || c.peek_words(&["DROP", "USER"])
        || c.peek_words(&["EXECUTE", "AS"])
    {
        return crate::users::parse(toks);
    }
    if let Some(stmt) = crate::cursors::parse(&mut c) {
        return stmt;
    }
    if let Some(stmt) = crate::storages::parse(&mut c) {
        return stmt;
    }
    if let Some(stmt) = crate::live::parse(&mut c) {
        return stmt;
    }
    if let Some(name) = later_milestone(&c) {
        return Ok(Statement::NotYetSupported(name));
    }
    parse_with_sqlparser(toks).map(|s| Statement::Sql(Box::new(s)))
}

/// Strata statements whose parsers arrive with their features.
fn later_milestone(c: &Cursor) -> Option<&'static str> {
    const LATER: &[(&[&str], &str)] = &[];
    LATER
        .iter()
        .find(|(words, _)| c.peek_words(words))
        .map(|(_, name)| *name)
}

/// Drops `ONLY` before a table name (`FROM ONLY t`, `JOIN ONLY t`,
/// `UPDATE ONLY t`, pg_dump's `DECLARE … FOR SELECT … FROM ONLY t`): it
/// excludes inheriting tables, which Strata has none of, so it changes
/// nothing — and sqlparser does not read it there.
fn drop_only(toks: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    use crate::sqlparser::keywords::Keyword;
    let mut out = Vec::with_capacity(toks.len());
    let mut previous: Option<Keyword> = None;
    for t in toks {
        let word = match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        };
        if word == Some(Keyword::ONLY)
            && matches!(
                previous,
                Some(Keyword::FROM | Keyword::JOIN | Keyword::UPDATE)
            )
        {
            continue;
        }
        if !matches!(t.token, Token::Whitespace(_)) {
            previous = word;
        }
        out.push(t);
    }
    out
}

/// The column of a `PRIMARY KEY (col)` constraint: Strata's keys are one
/// column.
pub fn primary_key_column(pk: &ast::PrimaryKeyConstraint) -> Result<String> {
    if pk.columns.len() != 1 {
        return Err(StrataError::unsupported(
            "a primary key must be a single column",
        ));
    }
    match &pk.columns[0].column.expr {
        ast::Expr::Identifier(id) => Ok(normalize_ident(id)),
        other => Err(StrataError::syntax(format!(
            "invalid primary key column {other}"
        ))),
    }
}

fn parse_with_sqlparser(toks: Vec<TokenWithSpan>) -> Result<ast::Statement> {
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .with_tokens_with_locations(drop_only(toks));
    let mut stmt = parser.parse_statement()?;
    match parser.peek_token().token {
        Token::EOF | Token::SemiColon => {
            crate::pgtext::rewrite_statement(&mut stmt)?;
            Ok(stmt)
        }
        other => Err(StrataError::syntax(format!(
            "syntax error at or near \"{other}\""
        ))),
    }
}

/// `CREATE [USER|SHARED|STREAM] TABLE ... ( columns ) [options]`: the head up to
/// the column list's closing parenthesis goes to sqlparser, the tail is ours.
fn parse_create_table(toks: Vec<TokenWithSpan>) -> Result<Statement> {
    let mut kind = None;
    let mut head: Vec<TokenWithSpan> = Vec::with_capacity(toks.len());
    let mut tail: Vec<Token> = vec![];
    let mut depth = 0i32;
    let mut seen_list = false;
    let mut words = 0usize;
    for t in toks {
        if seen_list {
            tail.push(t.token);
            continue;
        }
        if let Token::Word(w) = &t.token
            && words < 2
        {
            words += 1;
            // The second word is the optional kind.
            if words == 2 && w.quote_style.is_none() && !w.value.eq_ignore_ascii_case("TABLE") {
                kind = Some(w.value.to_ascii_uppercase());
                continue;
            }
        }
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    seen_list = true;
                }
            }
            _ => {}
        }
        head.push(t);
    }
    let ct = match parse_with_sqlparser(head)? {
        ast::Statement::CreateTable(ct) => ct,
        _ => return Err(StrataError::syntax("expected CREATE TABLE")),
    };
    if ct.query.is_some() {
        return Err(StrataError::unsupported("CREATE TABLE AS is not supported"));
    }
    let mut options = TableOptions::default();
    if let Some(k) = kind {
        options.set("TYPE", &k)?;
    }
    let mut c = Cursor::new(&tail);
    options.parse_trailing(&mut c)?;

    let table = crate::object_ref(&ct.name)?;
    let mut columns = vec![];
    let mut primary_key: Option<String> = None;
    let mut set_pk = |name: String| -> Result<()> {
        if primary_key.replace(name).is_some() {
            return Err(StrataError::InvalidTableDefinition(format!(
                "multiple primary keys for table \"{table}\" are not allowed"
            )));
        }
        Ok(())
    };
    for col in &ct.columns {
        let mut spec = ColumnSpec {
            name: normalize_ident(&col.name),
            data_type: col.data_type.clone(),
            not_null: false,
            default: None,
            primary_key: false,
        };
        for opt in &col.options {
            match &opt.option {
                ast::ColumnOption::Null => {}
                ast::ColumnOption::NotNull => spec.not_null = true,
                ast::ColumnOption::Default(e) => spec.default = Some(e.clone()),
                ast::ColumnOption::PrimaryKey(_) => {
                    spec.primary_key = true;
                    spec.not_null = true;
                    set_pk(spec.name.clone())?;
                }
                other => {
                    return Err(StrataError::unsupported(format!(
                        "column constraint \"{other}\" is not supported"
                    )));
                }
            }
        }
        columns.push(spec);
    }
    for cons in &ct.constraints {
        match cons {
            ast::TableConstraint::PrimaryKey(pk) => {
                let name = primary_key_column(pk)?;
                let col = columns.iter_mut().find(|c| c.name == name).ok_or_else(|| {
                    StrataError::UndefinedColumn(format!(
                        "column \"{name}\" named in key does not exist"
                    ))
                })?;
                col.primary_key = true;
                col.not_null = true;
                set_pk(name)?;
            }
            other => {
                return Err(StrataError::unsupported(format!(
                    "table constraint \"{other}\" is not supported"
                )));
            }
        }
    }
    Ok(Statement::CreateTable(Box::new(CreateTable {
        table,
        if_not_exists: ct.if_not_exists,
        columns,
        primary_key,
        options,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessLevel, TableKind};

    fn one(sql: &str) -> Statement {
        parse_one(sql).unwrap().unwrap()
    }

    #[test]
    fn splits_statements_outside_strings() {
        let s = parse_sql("SELECT 'a;b'; ; SELECT 2;").unwrap();
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn create_table_with_short_clauses() {
        let Statement::CreateTable(ct) = one(
            "CREATE SHARED TABLE App.Items (id BIGINT, name TEXT NOT NULL, PRIMARY KEY (id)) FLUSH ROWS 50 INTERVAL 30s ACCESS LEVEL public",
        ) else {
            panic!("not a create table")
        };
        assert_eq!(ct.table.namespace.as_deref(), Some("app"));
        assert_eq!(ct.table.name, "items");
        assert_eq!(ct.primary_key.as_deref(), Some("id"));
        assert_eq!(ct.options.kind, Some(TableKind::Shared));
        assert_eq!(ct.options.flush_policy.unwrap().rows, Some(50));
        assert_eq!(ct.options.flush_policy.unwrap().interval_secs, Some(30));
        assert_eq!(ct.options.access_level, Some(AccessLevel::Public));
        assert!(ct.columns[1].not_null);
    }

    #[test]
    fn create_table_with_options() {
        let Statement::CreateTable(ct) = one(
            "CREATE TABLE t (id INT PRIMARY KEY) WITH (TYPE='USER', FLUSH_POLICY='rows:1000,interval:300', STORAGE_ID='s3main', USE_USER_STORAGE=TRUE)",
        ) else {
            panic!("not a create table")
        };
        assert_eq!(ct.options.kind, Some(TableKind::User));
        assert_eq!(ct.options.storage_id.as_deref(), Some("s3main"));
        assert_eq!(ct.options.use_user_storage, Some(true));
    }

    #[test]
    fn bad_options_are_22023() {
        let e = parse_one("CREATE TABLE t (id INT PRIMARY KEY) WITH (COLOUR='red')").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        let e = parse_one("CREATE TABLE t (id INT PRIMARY KEY) FLUSH ROWS 0").unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
    }

    #[test]
    fn namespaces_and_show() {
        assert!(matches!(
            one("create schema if not exists x"),
            Statement::CreateNamespace {
                if_not_exists: true,
                schema: true,
                ..
            }
        ));
        assert!(matches!(
            one("DROP NAMESPACE x CASCADE"),
            Statement::DropNamespace {
                cascade: true,
                schema: false,
                ..
            }
        ));
        assert!(matches!(
            one("SHOW TABLES IN app"),
            Statement::ShowTables { namespace: Some(_) }
        ));
    }

    #[test]
    fn later_statements_are_recognised() {
        assert!(matches!(
            one("FLUSH TABLE app.t"),
            Statement::FlushTable { .. }
        ));
        assert!(matches!(
            one("storage flush all in namespace app"),
            Statement::FlushAll { namespace: Some(n) } if n == "app"
        ));
        assert!(matches!(
            one("FLUSH ALL"),
            Statement::FlushAll { namespace: None }
        ));
        assert!(matches!(
            one("COMPACT TABLE t"),
            Statement::CompactTable { .. }
        ));
        assert!(
            matches!(one("KILL JOB 'FL-1'"), Statement::KillJob { job_id } if job_id == "FL-1")
        );
        assert_eq!(parse_one("FLUSH t").unwrap_err().sqlstate(), "42601");
        assert!(matches!(
            one("SUBSCRIBE TO app.t"),
            Statement::Subscribe { .. }
        ));
    }

    #[test]
    fn syntax_errors_are_42601() {
        assert_eq!(parse_sql("SELEC 1").unwrap_err().sqlstate(), "42601");
        assert_eq!(parse_sql("SELECT 1 1 1").unwrap_err().sqlstate(), "42601");
        assert_eq!(
            parse_one("SELECT 1; SELECT 2").unwrap_err().sqlstate(),
            "42601"
        );
    }

    #[test]
    fn deep_nesting_fails_cleanly() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse_sql(&sql).is_err());
    }
}

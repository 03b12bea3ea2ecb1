//! `LIKE` / `ILIKE` with an `ESCAPE` character other than backslash.
//! DataFusion only knows the backslash; a pattern literal written for another
//! escape character (SQLAlchemy's reflection uses `ESCAPE '/'`) is rewritten
//! into the same pattern escaped with backslashes. `ESCAPE ''` (no escape
//! character at all) escapes the pattern's own backslashes. A pattern that
//! is not a literal (`$1 || '%'`, a column) is wrapped in [`FUNCTION`], which
//! does the same when the statement runs.

use crate::sqlparser::ast::{self, Expr, Value, ValueWithSpan};
use crate::sqlparser::dialect::PostgreSqlDialect;
use crate::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The function that rewrites a pattern when it runs: `(pattern, escape)`.
pub const FUNCTION: &str = "strata_like_escape";

/// Rewrites every LIKE/ILIKE of the statement whose escape character is not a
/// backslash. An escape string of two or more characters is left for the
/// planner (which refuses it with a clear error).
pub fn rewrite(stmt: &mut ast::Statement) {
    let _ = ast::visit_expressions_mut(stmt, |e| {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = e
        {
            rewrite_one(pattern, escape_char);
        }
        ControlFlow::<()>::Continue(())
    });
}

fn literal(v: &Option<ValueWithSpan>) -> Option<&str> {
    match v.as_ref().map(|v| &v.value) {
        Some(Value::SingleQuotedString(s)) | Some(Value::EscapedStringLiteral(s)) => Some(s),
        _ => None,
    }
}

fn rewrite_one(pattern: &mut Expr, escape_char: &mut Option<ValueWithSpan>) {
    let Some(escape) = literal(escape_char) else {
        return;
    };
    let mut chars = escape.chars();
    let escape = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some('\\'), None) => {
            *escape_char = None;
            return;
        }
        (Some(c), None) => Some(c),
        // Postgres: "invalid escape string"; leave it to the planner's error.
        _ => return,
    };
    match pattern {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(text) | Value::EscapedStringLiteral(text),
            ..
        }) => *text = to_backslash_escapes(text, escape),
        other => {
            let escape = escape.map(String::from).unwrap_or_default();
            let call = format!("{FUNCTION}(({other}), '{}')", escape.replace('\'', "''"));
            let Ok(parsed) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&call)
                .and_then(|mut p| p.parse_expr())
            else {
                return;
            };
            *other = parsed;
        }
    }
    *escape_char = None;
}

/// The pattern `text`, written with `escape` as its escape character (or
/// none), written again with backslash as its escape character.
pub fn to_backslash_escapes(text: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(n) if matches!(n, '%' | '_' | '\\') => {
                    out.push('\\');
                    out.push(n);
                }
                Some(n) => out.push(n),
                // A trailing escape character: Postgres refuses the pattern;
                // keep it literal.
                None => out.push_str(&escape_literal(c)),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

fn escape_literal(c: char) -> String {
    if matches!(c, '%' | '_' | '\\') {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::to_backslash_escapes as t;

    #[test]
    fn escapes_become_backslashes() {
        assert_eq!(t("a/_b", Some('/')), "a\\_b");
        assert_eq!(t("a/%b%", Some('/')), "a\\%b%");
        assert_eq!(t("a//b", Some('/')), "a/b");
        assert_eq!(t("a\\b", Some('/')), "a\\\\b");
        assert_eq!(t("x#_y", Some('#')), "x\\_y");
        assert_eq!(t("a\\_", None), "a\\\\_");
        assert_eq!(t("100%", Some('%')), "100\\%");
    }
}

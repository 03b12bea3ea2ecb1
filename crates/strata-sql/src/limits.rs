//! Bounds on what a statement's text can make the server do, checked on its
//! tokens before anything is parsed, planned or sized from it.
//!
//! Two numbers in SQL text size work: a placeholder's number (`$N` sizes the
//! vectors of parameter types) and the depth of an expression (parsing,
//! planning, optimizing, evaluating and even dropping an expression tree all
//! recurse on it). sqlparser's recursion limit bounds nesting through
//! parentheses and prefix operators but not left-deep chains such as
//! `1+1+…+1` or `a OR b OR …`, which it builds in a loop. Both are checked here
//! with a single pass over the tokens that does not itself recurse.

use crate::sqlparser::tokenizer::{Token, TokenWithSpan};
use strata_common::{Result, StrataError};

/// The highest parameter number: the protocol counts parameters in an Int16,
/// and Postgres caps them at 65535 too.
pub const MAX_PARAMS: usize = 65535;

/// The most tokens an expression may nest through (see [`depth_bound`]): a
/// chain of ~2,000 `+` terms, or an OR of ~1,000 comparisons. The server's
/// threads have stacks that take several times this depth; the bound is set
/// by time instead, since DataFusion's planning of a deep chain grows faster
/// than quadratically (a 4,000-term chain took over a minute of CPU in a
/// debug build) and one short query must not be able to pin a core.
pub const MAX_EXPRESSION_DEPTH: usize = 4_000;

/// The 0-based index of a `$N` placeholder, or 42P02 when N is 0 or more than
/// [`MAX_PARAMS`]. Other placeholder spellings (`?`, `:name`) are None.
pub fn param_index(placeholder: &str) -> Result<Option<usize>> {
    let Some(digits) = placeholder.strip_prefix('$') else {
        return Ok(None);
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    // Parse at most a few digits' worth: longer numbers are out of range anyway.
    let n = if digits.len() > 6 {
        usize::MAX
    } else {
        digits.parse::<usize>().unwrap_or(usize::MAX)
    };
    if n == 0 || n > MAX_PARAMS {
        return Err(StrataError::UndefinedParameter(format!(
            "there is no parameter ${digits}"
        )));
    }
    Ok(Some(n - 1))
}

/// Checks a statement's tokens: every placeholder in range and the
/// expression depth within [`MAX_EXPRESSION_DEPTH`].
pub fn check_tokens(tokens: &[TokenWithSpan]) -> Result<()> {
    for t in tokens {
        if let Token::Placeholder(p) = &t.token {
            param_index(p)?;
        }
    }
    let depth = depth_bound(tokens.iter().map(|t| &t.token));
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(StrataError::StatementTooComplex(format!(
            "statement too complex: its expressions nest {depth} levels deep (the limit is {MAX_EXPRESSION_DEPTH})"
        )));
    }
    Ok(())
}

/// Tokenizes `sql` and checks it with [`check_tokens`] (for text that takes
/// another parser than Strata's own).
pub fn check_sql(sql: &str) -> Result<()> {
    let dialect = crate::sqlparser::dialect::PostgreSqlDialect {};
    let tokens = crate::sqlparser::tokenizer::Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| StrataError::syntax(e.to_string()))?;
    check_tokens(&tokens)
}

/// An upper bound on the depth of any expression tree the tokens can parse
/// into. Commas separate sibling expressions, so a run of tokens between
/// commas at one nesting level is the most one expression can chain; an
/// opening bracket nests a new level on top of the runs that enclose it. The
/// bound is the largest sum, over the enclosing levels, of their runs so far
/// plus the nesting itself. It over-counts (keywords and operands count as
/// operators) but never under-counts, and it is linear in the tokens.
pub fn depth_bound<'a>(tokens: impl Iterator<Item = &'a Token>) -> usize {
    let mut runs: Vec<usize> = vec![0];
    let mut sum = 0usize;
    let mut max = 0usize;
    for t in tokens {
        match t {
            Token::Whitespace(_) | Token::EOF => continue,
            Token::LParen | Token::LBracket | Token::LBrace => runs.push(0),
            Token::RParen | Token::RBracket | Token::RBrace => {
                if runs.len() > 1 {
                    sum -= runs.pop().unwrap_or(0);
                }
            }
            Token::Comma | Token::SemiColon => {
                if let Some(run) = runs.last_mut() {
                    sum -= *run;
                    *run = 0;
                }
            }
            _ => {
                if let Some(run) = runs.last_mut() {
                    *run += 1;
                    sum += 1;
                }
            }
        }
        max = max.max(sum + runs.len());
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlparser::dialect::PostgreSqlDialect;
    use crate::sqlparser::tokenizer::Tokenizer;

    fn bound(sql: &str) -> usize {
        let toks = Tokenizer::new(&PostgreSqlDialect {}, sql)
            .tokenize()
            .expect("tokenizes");
        depth_bound(toks.iter())
    }

    #[test]
    fn placeholders_are_bounded_before_they_size_anything() {
        assert_eq!(param_index("$1").unwrap(), Some(0));
        assert_eq!(param_index("$65535").unwrap(), Some(65534));
        for bad in [
            "$0",
            "$65536",
            "$100000000000",
            "$99999999999999999999999999",
        ] {
            let e = param_index(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "42P02", "{bad}");
        }
        assert_eq!(param_index("?").unwrap(), None);
        assert!(check_sql("SELECT $100000000000").is_err());
        assert!(check_sql("SELECT $3, $65535").is_ok());
    }

    #[test]
    fn long_chains_are_deep_and_wide_lists_are_not() {
        let chain = format!("SELECT 1{}", "+1".repeat(2_500));
        assert!(bound(&chain) > 5_000);
        let e = check_sql(&chain).unwrap_err();
        assert_eq!(e.sqlstate(), "54001");
        let list = format!(
            "INSERT INTO t VALUES {}",
            vec!["(1, 'a', 2.5)"; 20_000].join(", ")
        );
        assert!(bound(&list) < 20);
        let in_list = format!(
            "SELECT * FROM t WHERE id IN ({})",
            (0..50_000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(check_sql(&in_list).is_ok());
        let nested = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
        assert!(bound(&nested) >= 300);
    }

    #[test]
    fn unbalanced_brackets_do_not_underflow() {
        assert!(bound(")))) a , ]]] b") < 10);
    }
}

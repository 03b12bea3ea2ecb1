//! `SUBSCRIBE TO ns.t [WHERE …] [OPTIONS (last_rows = N)]` and
//! `SUBSCRIBE TO SELECT cols FROM ns.t [WHERE …] [OPTIONS (…)]`.

use crate::Statement;
use crate::cursor::Cursor;
use crate::sqlparser::tokenizer::Token;
use crate::users::sql_text;
use strata_common::{Result, StrataError};

/// Most snapshot rows a subscription may ask for.
pub const MAX_LAST_ROWS: u64 = 100_000;

pub(crate) fn parse(c: &mut Cursor) -> Option<Result<Statement>> {
    if c.peek_words(&["SUBSCRIBE"]) {
        return Some(body(c).and_then(|s| c.expect_end().map(|()| s)));
    }
    if c.peek_words(&["COPY"])
        && c.peek_nth(1) == Some(&Token::LParen)
        && matches!(c.peek_nth(2), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("SUBSCRIBE"))
    {
        return Some(copy_form(c));
    }
    if c.eat_words(&["KILL", "LIVE", "QUERY"]) {
        return Some((|| {
            let live_id = c.literal()?;
            c.expect_end()?;
            Ok(Statement::KillLiveQuery { live_id })
        })());
    }
    None
}

/// `COPY (SUBSCRIBE …) TO STDOUT [[WITH] (FORMAT text)]`, the form COPY APIs send.
fn copy_form(c: &mut Cursor) -> Result<Statement> {
    c.expect_words(&["COPY"])?;
    c.expect(&Token::LParen)?;
    let inner = body(c)?;
    c.expect(&Token::RParen)?;
    c.expect_words(&["TO", "STDOUT"])?;
    c.eat_words(&["WITH"]);
    if c.eat(&Token::LParen) {
        loop {
            let key = c.ident()?;
            let value = c.literal()?;
            if !(key == "format" && value.eq_ignore_ascii_case("text")) {
                return Err(StrataError::unsupported(format!(
                    "COPY (SUBSCRIBE …) supports FORMAT text only (got {key} {value})"
                )));
            }
            if !c.eat(&Token::Comma) {
                break;
            }
        }
        c.expect(&Token::RParen)?;
    }
    c.expect_end()?;
    Ok(inner)
}

fn body(c: &mut Cursor) -> Result<Statement> {
    c.expect_words(&["SUBSCRIBE"])?;
    c.eat_words(&["TO"]);
    let mut columns = None;
    if c.eat_words(&["SELECT"]) {
        let mut cols = vec![];
        if c.eat(&Token::Mul) {
            // every column
        } else {
            loop {
                cols.push(c.ident()?);
                if !c.eat(&Token::Comma) {
                    break;
                }
            }
        }
        c.expect_words(&["FROM"])?;
        if !cols.is_empty() {
            columns = Some(cols);
        }
    }
    let table = c.object_ref()?;
    let mut filter = None;
    if c.eat_words(&["WHERE"]) {
        let mut text = vec![];
        let mut depth = 0i32;
        while let Some(t) = c.peek() {
            if depth == 0 && (c.peek_words(&["OPTIONS"]) || t == &Token::RParen) {
                break;
            }
            match t {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            if let Some(t) = c.next_token() {
                text.push(sql_text(&t));
            }
        }
        if text.is_empty() {
            return Err(c.unexpected("a condition after WHERE"));
        }
        filter = Some(text.join(" "));
    }
    let mut last_rows = 0;
    if c.eat_words(&["OPTIONS"]) {
        c.expect(&Token::LParen)?;
        loop {
            let key = c.ident()?;
            c.expect(&Token::Eq)?;
            let value = c.number()?;
            match key.as_str() {
                "last_rows" if value <= MAX_LAST_ROWS => last_rows = value,
                "last_rows" => {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "last_rows must be at most {MAX_LAST_ROWS}"
                    )));
                }
                "from_seq" => {
                    return Err(StrataError::unsupported(
                        "from_seq (resuming a subscription) is not supported yet; resubscribe with last_rows",
                    ));
                }
                other => {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "unknown subscription option \"{other}\" (expected last_rows)"
                    )));
                }
            }
            if !c.eat(&Token::Comma) {
                break;
            }
        }
        c.expect(&Token::RParen)?;
    }
    Ok(Statement::Subscribe {
        table,
        columns,
        filter,
        last_rows,
    })
}

#[cfg(test)]
mod tests {
    use crate::{Statement, parse_one};

    #[test]
    fn subscribe_forms() {
        let Statement::Subscribe {
            table,
            columns,
            filter,
            last_rows,
        } = parse_one(
            "SUBSCRIBE TO app.msgs WHERE conv = 'a''b' AND (n > 1) OPTIONS (last_rows = 5)",
        )
        .unwrap()
        .unwrap()
        else {
            panic!("not subscribe")
        };
        assert_eq!(table.name, "msgs");
        assert!(columns.is_none());
        assert_eq!(filter.as_deref(), Some("conv = 'a''b' AND ( n > 1 )"));
        assert_eq!(last_rows, 5);
        assert!(matches!(
            parse_one("SUBSCRIBE TO SELECT id, body FROM msgs").unwrap().unwrap(),
            Statement::Subscribe { columns: Some(c), .. } if c == ["id", "body"]
        ));
        assert!(matches!(
            parse_one("COPY (SUBSCRIBE TO t WHERE (a = 1) OPTIONS (last_rows = 2)) TO STDOUT")
                .unwrap()
                .unwrap(),
            Statement::Subscribe { filter: Some(f), last_rows: 2, .. } if f == "( a = 1 )"
        ));
        assert!(matches!(
            parse_one("KILL LIVE QUERY 'LQ-1'").unwrap().unwrap(),
            Statement::KillLiveQuery { live_id } if live_id == "LQ-1"
        ));
        for bad in [
            "COPY (SUBSCRIBE TO t) TO STDOUT (FORMAT csv)",
            "COPY (SUBSCRIBE TO t) TO 'file'",
            "SUBSCRIBE TO",
            "SUBSCRIBE TO t WHERE",
            "SUBSCRIBE TO t OPTIONS (last_rows = 1000001)",
            "SUBSCRIBE TO t OPTIONS (color = 1)",
            "SUBSCRIBE TO t extra",
        ] {
            assert!(parse_one(bad).is_err(), "{bad}");
        }
    }
}

//! `SUBSCRIBE TO ns.t [WHERE …] [OPTIONS (last_rows = N | from_seq = S)]` and
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

/// `COPY (SUBSCRIBE …) TO STDOUT [[WITH] (options)]`, the form COPY APIs send.
/// The options are kept as text for the COPY option parser.
fn copy_form(c: &mut Cursor) -> Result<Statement> {
    c.expect_words(&["COPY"])?;
    c.expect(&Token::LParen)?;
    let mut inner = body(c)?;
    c.expect(&Token::RParen)?;
    c.expect_words(&["TO", "STDOUT"])?;
    let mut text = vec![];
    while let Some(t) = c.peek() {
        if t == &Token::SemiColon {
            break;
        }
        if let Some(t) = c.next_token() {
            text.push(sql_text(&t));
        }
    }
    c.expect_end()?;
    if let Statement::Subscribe { copy_options, .. } = &mut inner
        && !text.is_empty()
    {
        *copy_options = Some(text.join(" "));
    }
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
    let mut from_seq = None;
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
                "from_seq" => from_seq = Some(value),
                other => {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "unknown subscription option \"{other}\" (expected last_rows or from_seq)"
                    )));
                }
            }
            if !c.eat(&Token::Comma) {
                break;
            }
        }
        c.expect(&Token::RParen)?;
    }
    if from_seq.is_some() && last_rows > 0 {
        return Err(StrataError::InvalidParameterValue(
            "last_rows and from_seq cannot be combined: from_seq resumes after rows the client already has".into(),
        ));
    }
    Ok(Statement::Subscribe {
        table,
        columns,
        filter,
        last_rows,
        from_seq,
        copy_options: None,
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
            ..
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
        assert!(matches!(
            parse_one("COPY (SUBSCRIBE TO t OPTIONS (from_seq = 7)) TO STDOUT WITH (FORMAT csv, HEADER)")
                .unwrap()
                .unwrap(),
            Statement::Subscribe { from_seq: Some(7), copy_options: Some(o), .. }
                if o == "WITH ( FORMAT csv , HEADER )"
        ));
        for bad in [
            "SUBSCRIBE TO t OPTIONS (from_seq = 1, last_rows = 2)",
            "SUBSCRIBE TO t OPTIONS (from_seq = -1)",
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

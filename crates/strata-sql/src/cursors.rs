//! `FETCH`, `MOVE` and `CLOSE` of SQL cursors, in every form Postgres takes
//! (sqlparser knows no MOVE and needs a count and FROM/IN on FETCH).
//! `DECLARE … CURSOR FOR query` is sqlparser's, since it holds a query.

use crate::cursor::Cursor;
use crate::sqlparser::tokenizer::Token;
use crate::{FetchDirection, Statement};
use strata_common::{Result, StrataError};

/// Parses `FETCH …` / `MOVE …` / `CLOSE …`; None if the tokens are none of them.
pub(crate) fn parse(c: &mut Cursor) -> Option<Result<Statement>> {
    if c.peek_words(&["CLOSE"]) {
        c.eat_words(&["CLOSE"]);
        return Some(close(c));
    }
    let move_only = if c.peek_words(&["FETCH"]) {
        false
    } else if c.peek_words(&["MOVE"]) {
        true
    } else {
        return None;
    };
    c.eat_words(&[if move_only { "MOVE" } else { "FETCH" }]);
    Some(fetch(c, move_only))
}

fn close(c: &mut Cursor) -> Result<Statement> {
    let name = if c.eat_words(&["ALL"]) {
        None
    } else {
        Some(c.ident()?)
    };
    c.expect_end()?;
    Ok(Statement::CloseCursor { name })
}

/// A signed count: `5`, `-5`, `+5`.
fn count(c: &mut Cursor) -> Result<i64> {
    let negative = if c.eat(&Token::Minus) {
        true
    } else {
        c.eat(&Token::Plus);
        false
    };
    let n = c.number()?;
    let n = i64::try_from(n).map_err(|_| {
        StrataError::InvalidParameterValue(format!("cursor count {n} is out of range"))
    })?;
    Ok(if negative { -n } else { n })
}

fn at_count(c: &Cursor) -> bool {
    matches!(
        c.peek(),
        Some(Token::Number(..)) | Some(Token::Minus) | Some(Token::Plus)
    )
}

fn forward(n: i64) -> FetchDirection {
    if n >= 0 {
        FetchDirection::Forward(n as u64)
    } else {
        FetchDirection::Backward
    }
}

fn fetch(c: &mut Cursor, move_only: bool) -> Result<Statement> {
    let direction = if c.eat_words(&["NEXT"]) {
        FetchDirection::Forward(1)
    } else if c.eat_words(&["PRIOR"]) {
        FetchDirection::Backward
    } else if c.eat_words(&["FIRST"]) {
        FetchDirection::Absolute(1)
    } else if c.eat_words(&["LAST"]) {
        FetchDirection::Last
    } else if c.eat_words(&["ABSOLUTE"]) {
        FetchDirection::Absolute(count(c)?)
    } else if c.eat_words(&["RELATIVE"]) {
        FetchDirection::Relative(count(c)?)
    } else if c.eat_words(&["ALL"]) {
        FetchDirection::All
    } else if c.eat_words(&["FORWARD"]) {
        if c.eat_words(&["ALL"]) {
            FetchDirection::All
        } else if at_count(c) {
            forward(count(c)?)
        } else {
            FetchDirection::Forward(1)
        }
    } else if c.eat_words(&["BACKWARD"]) {
        if !c.eat_words(&["ALL"]) && at_count(c) {
            count(c)?;
        }
        FetchDirection::Backward
    } else if at_count(c) {
        forward(count(c)?)
    } else {
        FetchDirection::Forward(1)
    };
    if !c.eat_words(&["FROM"]) {
        c.eat_words(&["IN"]);
    }
    let cursor = c.ident()?;
    c.expect_end()?;
    Ok(Statement::Fetch {
        cursor,
        direction,
        move_only,
    })
}

#[cfg(test)]
mod tests {
    use crate::{FetchDirection as D, Statement, parse_one};

    fn fetch(sql: &str) -> (String, D, bool) {
        match parse_one(sql).unwrap().unwrap() {
            Statement::Fetch {
                cursor,
                direction,
                move_only,
            } => (cursor, direction, move_only),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn every_fetch_form() {
        assert_eq!(fetch("FETCH c"), ("c".into(), D::Forward(1), false));
        assert_eq!(
            fetch("fetch next from C"),
            ("c".into(), D::Forward(1), false)
        );
        assert_eq!(fetch("FETCH 10 IN c"), ("c".into(), D::Forward(10), false));
        assert_eq!(
            fetch("FETCH FORWARD 2000 FROM \"Cur 1\""),
            ("Cur 1".into(), D::Forward(2000), false)
        );
        assert_eq!(
            fetch("FETCH FORWARD ALL FROM c"),
            ("c".into(), D::All, false)
        );
        assert_eq!(fetch("FETCH ALL c"), ("c".into(), D::All, false));
        assert_eq!(fetch("FETCH -1 FROM c").1, D::Backward);
        assert_eq!(fetch("FETCH BACKWARD 3 FROM c").1, D::Backward);
        assert_eq!(fetch("FETCH PRIOR FROM c").1, D::Backward);
        assert_eq!(fetch("FETCH ABSOLUTE 5 FROM c").1, D::Absolute(5));
        assert_eq!(fetch("FETCH RELATIVE -2 FROM c").1, D::Relative(-2));
        assert_eq!(fetch("MOVE 5 FROM c"), ("c".into(), D::Forward(5), true));
        assert_eq!(
            fetch("MOVE ABSOLUTE 7 FROM c"),
            ("c".into(), D::Absolute(7), true)
        );
        assert!(parse_one("FETCH 99999999999999999999 FROM c").is_err());
    }

    #[test]
    fn close_forms() {
        assert!(matches!(
            parse_one("CLOSE c").unwrap().unwrap(),
            Statement::CloseCursor { name: Some(n) } if n == "c"
        ));
        assert!(matches!(
            parse_one("CLOSE ALL").unwrap().unwrap(),
            Statement::CloseCursor { name: None }
        ));
    }
}

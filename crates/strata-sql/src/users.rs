//! User statements and `EXECUTE AS USER`.

use crate::cursor::Cursor;
use crate::parse::{parse_statement, plain};
use crate::sqlparser::tokenizer::{Token, TokenWithSpan};
use crate::{Secret, Statement};
use strata_common::{Result, StrataError};

pub(crate) fn parse(toks: Vec<TokenWithSpan>) -> Result<Statement> {
    let mut c = Cursor::new(&plain(&toks));
    if c.eat_words(&["CREATE", "USER"]) {
        let name = c.ident()?;
        let (password, role) = options(&mut c, false)?;
        return Ok(Statement::CreateUser {
            name,
            password,
            role,
        });
    }
    if c.eat_words(&["ALTER", "USER"]) {
        let name = c.ident()?;
        if c.eat_words(&["SET", "STORAGE"]) {
            let storage = match c.peek() {
                Some(Token::SingleQuotedString(_)) => c.string()?,
                _ => c.ident()?,
            };
            c.expect_end()?;
            return Ok(Statement::AlterUserStorage {
                name,
                storage: Some(storage),
            });
        }
        if c.eat_words(&["RESET", "STORAGE"]) {
            c.expect_end()?;
            return Ok(Statement::AlterUserStorage {
                name,
                storage: None,
            });
        }
        let (password, role) = options(&mut c, true)?;
        if password.is_none() && role.is_none() {
            return Err(c.unexpected("PASSWORD or ROLE"));
        }
        return Ok(Statement::AlterUser {
            name,
            password,
            role,
        });
    }
    if c.eat_words(&["DROP", "USER"]) {
        let if_exists = c.eat_words(&["IF", "EXISTS"]);
        let mut names = vec![c.ident()?];
        while c.eat(&Token::Comma) {
            names.push(c.ident()?);
        }
        c.expect_end()?;
        return Ok(Statement::DropUser { names, if_exists });
    }
    c.expect_words(&["EXECUTE", "AS", "USER"])?;
    let user = match c.peek() {
        Some(Token::SingleQuotedString(_)) => c.string()?,
        _ => c.ident()?,
    };
    if c.peek() != Some(&Token::LParen) {
        return Err(c.unexpected("( statement )"));
    }
    let inner = inner_statement(toks)?;
    let sql: String = inner.iter().map(|t| sql_text(&t.token)).collect();
    let statement = parse_statement(inner)?;
    if matches!(statement, Statement::ExecuteAs { .. }) {
        return Err(StrataError::unsupported("EXECUTE AS cannot be nested"));
    }
    Ok(Statement::ExecuteAs {
        user,
        statement: Box::new(statement),
        sql: sql.trim().to_string(),
    })
}

/// `[WITH] PASSWORD 'p' | ROLE r | SET ROLE r`, in any order, each at most once.
fn options(c: &mut Cursor, alter: bool) -> Result<(Option<Secret>, Option<String>)> {
    let mut password = None;
    let mut role = None;
    while !c.at_end() {
        if c.eat_words(&["WITH"]) {
            continue;
        }
        if c.eat_words(&["PASSWORD"]) {
            if password.replace(Secret(c.string()?)).is_some() {
                return Err(StrataError::syntax("conflicting or redundant options"));
            }
        } else if c.eat_words(&["ROLE"]) || (alter && c.eat_words(&["SET", "ROLE"])) {
            let r = match c.peek() {
                Some(Token::SingleQuotedString(_)) => c.string()?.to_lowercase(),
                _ => c.ident()?,
            };
            if role.replace(r).is_some() {
                return Err(StrataError::syntax("conflicting or redundant options"));
            }
        } else {
            return Err(c.unexpected("PASSWORD or ROLE"));
        }
    }
    Ok((password, role))
}

/// A token as SQL text. sqlparser prints string literals without escaping
/// their quotes, which would change the statement re-planned from this text.
pub(crate) fn sql_text(t: &Token) -> String {
    match t {
        Token::SingleQuotedString(s) => format!("'{}'", s.replace('\'', "''")),
        Token::EscapedStringLiteral(s) => {
            format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
        }
        other => other.to_string(),
    }
}

/// The tokens between the parenthesis after the user name and the closing
/// one, which must end the statement.
fn inner_statement(toks: Vec<TokenWithSpan>) -> Result<Vec<TokenWithSpan>> {
    let significant = |t: &TokenWithSpan| !matches!(t.token, Token::Whitespace(_) | Token::EOF);
    let open = toks
        .iter()
        .position(|t| t.token == Token::LParen)
        .ok_or_else(|| StrataError::syntax("EXECUTE AS USER needs ( statement )"))?;
    let close = toks
        .iter()
        .rposition(significant)
        .filter(|&i| i > open && toks[i].token == Token::RParen)
        .ok_or_else(|| {
            StrataError::syntax("EXECUTE AS USER must end with the statement's closing parenthesis")
        })?;
    let inner: Vec<TokenWithSpan> = toks[open + 1..close].to_vec();
    if !inner.iter().any(significant) {
        return Err(StrataError::syntax("EXECUTE AS USER needs a statement"));
    }
    Ok(inner)
}

#[cfg(test)]
mod tests {
    use crate::{Statement, parse_one};

    fn one(sql: &str) -> Statement {
        parse_one(sql).unwrap().unwrap()
    }

    #[test]
    fn create_user_forms() {
        let Statement::CreateUser {
            name,
            password,
            role,
        } = one("CREATE USER Alice WITH PASSWORD 'p w' ROLE dba")
        else {
            panic!("not create user")
        };
        assert_eq!(name, "alice");
        assert_eq!(password.unwrap().0, "p w");
        assert_eq!(role.as_deref(), Some("dba"));
        assert!(matches!(
            one("create user \"Bob\" password 'x'"),
            Statement::CreateUser { name, role: None, .. } if name == "Bob"
        ));
        assert!(matches!(
            one("CREATE USER svc ROLE 'Service' WITH PASSWORD 'x'"),
            Statement::CreateUser { .. }
        ));
        assert!(matches!(
            one("CREATE USER lonely"),
            Statement::CreateUser { password: None, .. }
        ));
        assert!(format!("{:?}", one("CREATE USER a PASSWORD 'hunter2'")).contains("Secret(..)"));
        assert_eq!(
            parse_one("CREATE USER a PASSWORD secret")
                .unwrap_err()
                .sqlstate(),
            "42601"
        );
        assert_eq!(
            parse_one("CREATE USER a PASSWORD 'x' PASSWORD 'y'")
                .unwrap_err()
                .sqlstate(),
            "42601"
        );
    }

    #[test]
    fn alter_and_drop_user() {
        assert!(matches!(
            one("ALTER USER a WITH PASSWORD 'n'"),
            Statement::AlterUser {
                password: Some(_),
                role: None,
                ..
            }
        ));
        assert!(matches!(
            one("ALTER USER a SET ROLE service"),
            Statement::AlterUser { password: None, role: Some(r), .. } if r == "service"
        ));
        assert!(matches!(
            one("ALTER USER a ROLE dba"),
            Statement::AlterUser { role: Some(_), .. }
        ));
        assert!(parse_one("ALTER USER a").is_err());
        assert!(matches!(
            one("DROP USER IF EXISTS a, \"B\""),
            Statement::DropUser { names, if_exists: true } if names == ["a", "B"]
        ));
    }

    #[test]
    fn execute_as() {
        let Statement::ExecuteAs {
            user,
            statement,
            sql,
        } = one("EXECUTE AS USER 'Alice' ( SELECT (1 + 2) AS x, 'a''b', E'c\\'d' )")
        else {
            panic!("not execute as")
        };
        assert_eq!(user, "Alice");
        assert_eq!(sql, "SELECT (1 + 2) AS x, 'a''b', E'c\\'d'");
        assert!(matches!(*statement, Statement::Sql(_)));
        assert!(matches!(
            one("execute as user bob (CREATE NAMESPACE n)"),
            Statement::ExecuteAs { user, .. } if user == "bob"
        ));
        assert!(parse_one("EXECUTE AS USER 'a' SELECT 1").is_err());
        assert!(parse_one("EXECUTE AS USER 'a' ()").is_err());
        assert!(parse_one("EXECUTE AS USER 'a' (SELECT 1) x").is_err());
        assert_eq!(
            parse_one("EXECUTE AS USER 'a' (EXECUTE AS USER 'b' (SELECT 1))")
                .unwrap_err()
                .sqlstate(),
            "0A000"
        );
    }
}

//! Storage statements: `CREATE STORAGE`, `ALTER STORAGE … SET`, `DROP
//! STORAGE`, `SHOW STORAGES`, and `ALTER USER name SET STORAGE 'id'`.
//! What the values mean (templates, sharding, URIs) is checked by the
//! catalog; this only reads them.

use crate::cursor::Cursor;
use crate::sqlparser::tokenizer::Token;
use crate::{Secret, Statement};
use strata_common::{Result, StrataError};

/// The clauses of `CREATE STORAGE` / `ALTER STORAGE … SET`, each at most once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageOptions {
    pub storage_type: Option<String>,
    pub path: Option<String>,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// JSON text; redacted in Debug so a logged statement never shows it.
    pub credentials: Option<Secret>,
    pub shared_tables_template: Option<String>,
    pub user_tables_template: Option<String>,
    pub sharding: Option<String>,
    pub description: Option<String>,
    /// `WITH (VERIFY = FALSE)` skips the write probe at CREATE/ALTER.
    pub verify: Option<bool>,
    /// `WITH (VIRTUAL_HOSTED_STYLE = TRUE)`: bucket in the host name.
    pub virtual_hosted_style: Option<bool>,
}

/// Clauses taking a quoted string, and where each goes.
const CLAUSES: &[&str] = &[
    "TYPE",
    "PATH",
    "REGION",
    "ENDPOINT",
    "CREDENTIALS",
    "SHARED_TABLES_TEMPLATE",
    "USER_TABLES_TEMPLATE",
    "SHARDING",
    "DESCRIPTION",
];

fn redundant(what: &str) -> StrataError {
    StrataError::syntax(format!(
        "conflicting or redundant options: {what} given twice"
    ))
}

impl StorageOptions {
    fn slot(&mut self, clause: &str) -> Option<&mut Option<String>> {
        Some(match clause {
            "TYPE" => &mut self.storage_type,
            "PATH" => &mut self.path,
            "REGION" => &mut self.region,
            "ENDPOINT" => &mut self.endpoint,
            "SHARED_TABLES_TEMPLATE" => &mut self.shared_tables_template,
            "USER_TABLES_TEMPLATE" => &mut self.user_tables_template,
            "SHARDING" => &mut self.sharding,
            "DESCRIPTION" => &mut self.description,
            _ => return None,
        })
    }

    /// True when no clause was given.
    pub fn is_empty(&self) -> bool {
        *self == StorageOptions::default()
    }

    /// Reads clauses until the end of the statement.
    fn parse(&mut self, c: &mut Cursor) -> Result<()> {
        while !c.at_end() {
            if c.eat_words(&["WITH"]) {
                self.parse_with(c)?;
                continue;
            }
            let Some(clause) = CLAUSES.iter().find(|w| c.peek_words(&[**w])) else {
                return Err(c.unexpected(&format!("{} or WITH (…)", CLAUSES.join(", "))));
            };
            c.expect_words(&[*clause])?;
            c.eat(&Token::Eq);
            if *clause == "CREDENTIALS" {
                // Never echo the token: it may be a secret typed unquoted.
                let Some(Token::SingleQuotedString(_)) = c.peek() else {
                    return Err(StrataError::syntax(
                        "CREDENTIALS takes a quoted JSON object: CREDENTIALS '{\"access_key_id\":\"…\",\"secret_access_key\":\"…\"}'",
                    ));
                };
                let value = Secret(c.string()?);
                if self.credentials.replace(value).is_some() {
                    return Err(redundant(clause));
                }
                continue;
            }
            let value = c.string()?;
            let slot = self.slot(clause).ok_or_else(|| redundant(clause))?;
            if slot.replace(value).is_some() {
                return Err(redundant(clause));
            }
        }
        Ok(())
    }

    /// `( VERIFY = FALSE, VIRTUAL_HOSTED_STYLE = TRUE )`.
    fn parse_with(&mut self, c: &mut Cursor) -> Result<()> {
        c.expect(&Token::LParen)?;
        loop {
            let key = c.ident()?.to_uppercase();
            c.expect(&Token::Eq)?;
            let value = c.literal()?;
            let flag = match value.to_lowercase().as_str() {
                "true" | "on" | "1" => true,
                "false" | "off" | "0" => false,
                _ => {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "{key} takes TRUE or FALSE, not \"{value}\""
                    )));
                }
            };
            let slot = match key.as_str() {
                "VERIFY" => &mut self.verify,
                "VIRTUAL_HOSTED_STYLE" => &mut self.virtual_hosted_style,
                _ => {
                    return Err(StrataError::InvalidParameterValue(format!(
                        "unknown storage option \"{key}\" (expected VERIFY or VIRTUAL_HOSTED_STYLE)"
                    )));
                }
            };
            if slot.replace(flag).is_some() {
                return Err(redundant(&key));
            }
            if !c.eat(&Token::Comma) {
                break;
            }
        }
        c.expect(&Token::RParen)
    }
}

/// Parses a storage statement if `c` starts one.
pub(crate) fn parse(c: &mut Cursor) -> Option<Result<Statement>> {
    if c.peek_words(&["CREATE", "STORAGE"]) {
        return Some(create(c));
    }
    if c.peek_words(&["ALTER", "STORAGE"]) {
        return Some(alter(c));
    }
    if c.eat_words(&["DROP", "STORAGE"]) {
        return Some((|| {
            let if_exists = c.eat_words(&["IF", "EXISTS"]);
            let id = c.ident()?;
            c.expect_end()?;
            Ok(Statement::DropStorage { id, if_exists })
        })());
    }
    if c.eat_words(&["SHOW", "STORAGES"]) {
        return Some(c.expect_end().map(|()| Statement::ShowStorages));
    }
    None
}

fn create(c: &mut Cursor) -> Result<Statement> {
    c.expect_words(&["CREATE", "STORAGE"])?;
    let if_not_exists = c.eat_words(&["IF", "NOT", "EXISTS"]);
    let id = c.ident()?;
    let mut options = StorageOptions::default();
    options.parse(c)?;
    Ok(Statement::CreateStorage {
        id,
        if_not_exists,
        options: Box::new(options),
    })
}

fn alter(c: &mut Cursor) -> Result<Statement> {
    c.expect_words(&["ALTER", "STORAGE"])?;
    let id = c.ident()?;
    c.expect_words(&["SET"])?;
    let mut options = StorageOptions::default();
    options.parse(c)?;
    if options.is_empty() {
        return Err(c.unexpected("a clause to set"));
    }
    Ok(Statement::AlterStorage {
        id,
        options: Box::new(options),
    })
}

#[cfg(test)]
mod tests {
    use crate::{Statement, parse_one};

    fn one(sql: &str) -> Statement {
        parse_one(sql).unwrap().unwrap()
    }

    #[test]
    fn create_storage_reads_every_clause() {
        let Statement::CreateStorage {
            id,
            if_not_exists,
            options,
        } = one(
            "CREATE STORAGE IF NOT EXISTS S3Main TYPE 's3' PATH 's3://b/p' REGION 'eu-west-1' \
             ENDPOINT 'http://127.0.0.1:9000' CREDENTIALS '{\"access_key_id\":\"a\",\"secret_access_key\":\"s\"}' \
             SHARED_TABLES_TEMPLATE '{namespace}/{tableName}' USER_TABLES_TEMPLATE '{shard}/{namespace}/{tableName}/{userId}' \
             SHARDING 'hash:32' DESCRIPTION 'main' WITH (VERIFY = FALSE)",
        )
        else {
            panic!("not create storage")
        };
        assert_eq!(id, "s3main");
        assert!(if_not_exists);
        assert_eq!(options.storage_type.as_deref(), Some("s3"));
        assert_eq!(options.sharding.as_deref(), Some("hash:32"));
        assert_eq!(options.verify, Some(false));
        assert!(
            options
                .credentials
                .as_ref()
                .is_some_and(|s| s.0.contains("secret"))
        );
        assert!(!format!("{options:?}").contains("secret_access_key"));
    }

    #[test]
    fn other_storage_statements() {
        assert!(matches!(
            one("DROP STORAGE IF EXISTS x"),
            Statement::DropStorage {
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(one("SHOW STORAGES"), Statement::ShowStorages));
        assert!(matches!(
            one("ALTER STORAGE x SET DESCRIPTION 'd' ENDPOINT 'http://h'"),
            Statement::AlterStorage { .. }
        ));
        for bad in [
            "ALTER STORAGE x SET",
            "CREATE STORAGE x TYPE 's3' TYPE 's3'",
            "CREATE STORAGE x PATH",
            "CREATE STORAGE x WITH (COLOR = TRUE)",
        ] {
            assert!(parse_one(bad).is_err(), "{bad}");
        }
        let err = parse_one("CREATE STORAGE x CREDENTIALS hunter2").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn user_storage() {
        assert!(matches!(
            one("ALTER USER alice SET STORAGE 's3eu'"),
            Statement::AlterUserStorage { storage: Some(s), .. } if s == "s3eu"
        ));
        assert!(matches!(
            one("ALTER USER alice RESET STORAGE"),
            Statement::AlterUserStorage { storage: None, .. }
        ));
    }
}

//! Table options: the canonical `WITH (KEY = value, ...)` form and the short
//! trailing clauses (`FLUSH ROWS n INTERVAL s`, `STORAGE id`, `TTL s`,
//! `ACCESS LEVEL x`), parsed into one validated structure.

use crate::cursor::Cursor;
use crate::sqlparser::tokenizer::Token;
use serde::{Deserialize, Serialize};
use strata_common::{Result, StrataError};

pub const MAX_FLUSH_ROWS: u64 = 1_000_000;
pub const MAX_FLUSH_INTERVAL_SECS: u64 = 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableKind {
    User,
    Shared,
    Stream,
}

impl TableKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TableKind::User => "USER",
            TableKind::Shared => "SHARED",
            TableKind::Stream => "STREAM",
        }
    }

    fn parse(v: &str) -> Result<TableKind> {
        match v.to_ascii_uppercase().as_str() {
            "USER" => Ok(TableKind::User),
            "SHARED" => Ok(TableKind::Shared),
            "STREAM" => Ok(TableKind::Stream),
            _ => Err(invalid(format!(
                "invalid value for TYPE: \"{v}\" (expected USER, SHARED or STREAM)"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessLevel {
    Public,
    Private,
    Restricted,
}

impl AccessLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            AccessLevel::Public => "PUBLIC",
            AccessLevel::Private => "PRIVATE",
            AccessLevel::Restricted => "RESTRICTED",
        }
    }

    fn parse(v: &str) -> Result<AccessLevel> {
        match v.to_ascii_uppercase().as_str() {
            "PUBLIC" => Ok(AccessLevel::Public),
            "PRIVATE" => Ok(AccessLevel::Private),
            "RESTRICTED" => Ok(AccessLevel::Restricted),
            _ => Err(invalid(format!(
                "invalid value for ACCESS_LEVEL: \"{v}\" (expected PUBLIC, PRIVATE or RESTRICTED)"
            ))),
        }
    }
}

/// When a table's hot rows move to the cold tier: whichever bound is hit first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_secs: Option<u64>,
}

impl FlushPolicy {
    /// Parses `rows:1000,interval:300` (either part may be left out).
    pub fn parse(text: &str) -> Result<FlushPolicy> {
        let mut p = FlushPolicy::default();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = part.split_once(':').ok_or_else(|| {
                invalid(format!(
                    "invalid FLUSH_POLICY \"{text}\": expected rows:N,interval:S"
                ))
            })?;
            let n: u64 = v
                .trim()
                .trim_end_matches('s')
                .parse()
                .map_err(|_| invalid(format!("invalid FLUSH_POLICY value \"{v}\"")))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "rows" => p.rows = Some(n),
                "interval" => p.interval_secs = Some(n),
                other => return Err(invalid(format!("unknown FLUSH_POLICY part \"{other}\""))),
            }
        }
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<()> {
        if self.rows.is_none() && self.interval_secs.is_none() {
            return Err(invalid("FLUSH_POLICY needs rows or interval".into()));
        }
        if let Some(r) = self.rows
            && !(1..=MAX_FLUSH_ROWS).contains(&r)
        {
            return Err(invalid(format!(
                "flush rows {r} out of range (1..={MAX_FLUSH_ROWS})"
            )));
        }
        if let Some(s) = self.interval_secs
            && !(1..=MAX_FLUSH_INTERVAL_SECS).contains(&s)
        {
            return Err(invalid(format!(
                "flush interval {s} out of range (1..={MAX_FLUSH_INTERVAL_SECS} seconds)"
            )));
        }
        Ok(())
    }
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = vec![];
        if let Some(r) = self.rows {
            parts.push(format!("rows:{r}"));
        }
        if let Some(s) = self.interval_secs {
            parts.push(format!("interval:{s}"));
        }
        write!(f, "{}", parts.join(","))
    }
}

/// Options as written; unset ones take the server's defaults in the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    pub kind: Option<TableKind>,
    pub flush_policy: Option<FlushPolicy>,
    pub storage_id: Option<String>,
    pub use_user_storage: Option<bool>,
    pub ttl_seconds: Option<u64>,
    pub access_level: Option<AccessLevel>,
}

fn invalid(msg: String) -> StrataError {
    StrataError::InvalidParameterValue(msg)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "on" | "1" | "yes" => Ok(true),
        "false" | "off" | "0" | "no" => Ok(false),
        _ => Err(invalid(format!(
            "invalid value for {key}: \"{v}\" (expected a boolean)"
        ))),
    }
}

fn parse_u64(key: &str, v: &str) -> Result<u64> {
    v.parse().map_err(|_| {
        invalid(format!(
            "invalid value for {key}: \"{v}\" (expected a whole number)"
        ))
    })
}

impl TableOptions {
    /// Sets one `KEY = value` option, refusing unknown keys and repeats.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let upper = key.to_ascii_uppercase();
        let dup = || invalid(format!("option {upper} given twice"));
        match upper.as_str() {
            "TYPE" => {
                if self.kind.replace(TableKind::parse(value)?).is_some() {
                    return Err(dup());
                }
            }
            "FLUSH_POLICY" => {
                if self
                    .flush_policy
                    .replace(FlushPolicy::parse(value)?)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            "STORAGE_ID" => {
                if self.storage_id.replace(value.to_string()).is_some() {
                    return Err(dup());
                }
            }
            "USE_USER_STORAGE" => {
                if self
                    .use_user_storage
                    .replace(parse_bool(&upper, value)?)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            "TTL_SECONDS" => {
                let ttl = parse_u64(&upper, value)?;
                if ttl == 0 {
                    return Err(invalid("TTL_SECONDS must be at least 1".into()));
                }
                if self.ttl_seconds.replace(ttl).is_some() {
                    return Err(dup());
                }
            }
            "ACCESS_LEVEL" => {
                if self
                    .access_level
                    .replace(AccessLevel::parse(value)?)
                    .is_some()
                {
                    return Err(dup());
                }
            }
            _ => {
                return Err(invalid(format!(
                    "unknown table option \"{key}\" (expected TYPE, FLUSH_POLICY, STORAGE_ID, USE_USER_STORAGE, TTL_SECONDS or ACCESS_LEVEL)"
                )));
            }
        }
        Ok(())
    }

    /// Parses `( KEY = value [, ...] )` after WITH or SET.
    pub(crate) fn parse_list(&mut self, c: &mut Cursor) -> Result<()> {
        c.expect(&Token::LParen)?;
        loop {
            let key = c.ident()?;
            c.expect(&Token::Eq)?;
            let value = c.literal()?;
            self.set(&key, &value)?;
            if !c.eat(&Token::Comma) {
                break;
            }
        }
        c.expect(&Token::RParen)
    }

    /// Parses everything after a CREATE TABLE's column list.
    pub(crate) fn parse_trailing(&mut self, c: &mut Cursor) -> Result<()> {
        while !c.at_end() {
            if c.eat_words(&["WITH"]) {
                self.parse_list(c)?;
            } else if c.eat_words(&["FLUSH"]) {
                let mut p = FlushPolicy::default();
                let mut any = false;
                loop {
                    if c.eat_words(&["ROWS"]) {
                        p.rows = Some(c.number()?);
                    } else if c.eat_words(&["INTERVAL"]) {
                        p.interval_secs = Some(c.number()?);
                        // `300s` tokenizes as a number followed by the word `s`.
                        c.eat_words(&["S"]);
                    } else {
                        break;
                    }
                    any = true;
                }
                if !any {
                    return Err(c.unexpected("ROWS or INTERVAL"));
                }
                p.validate()?;
                if self.flush_policy.replace(p).is_some() {
                    return Err(invalid("flush policy given twice".into()));
                }
            } else if c.eat_words(&["STORAGE"]) {
                let id = c.ident()?;
                self.set("STORAGE_ID", &id)?;
            } else if c.eat_words(&["TTL"]) {
                let n = c.number()?;
                c.eat_words(&["S"]);
                self.set("TTL_SECONDS", &n.to_string())?;
            } else if c.eat_words(&["ACCESS", "LEVEL"]) {
                let v = c.literal()?;
                self.set("ACCESS_LEVEL", &v)?;
            } else {
                return Err(c.unexpected("WITH, FLUSH, STORAGE, TTL or ACCESS LEVEL"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_round_trips() {
        let p = FlushPolicy::parse("rows:1000,interval:300").unwrap();
        assert_eq!(p.to_string(), "rows:1000,interval:300");
        assert!(FlushPolicy::parse("rows:0").is_err());
        assert!(FlushPolicy::parse("interval:86401").is_err());
        assert!(FlushPolicy::parse("bytes:1").is_err());
    }

    #[test]
    fn unknown_option_is_named() {
        let err = TableOptions::default().set("COLOR", "red").unwrap_err();
        assert_eq!(err.sqlstate(), "22023");
        assert!(err.to_string().contains("COLOR"));
    }
}

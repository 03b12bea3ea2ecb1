//! Postgres' text forms that DataFusion does not read: array literals
//! (`{1,2,NULL}`, `{"a b",""}`), UUIDs, and BYTEA's hex and escape formats.
//! Clients that interpolate values into SQL (psycopg2) send them as casts of
//! string literals, `'{1,2}'::int[]` or `'\x00ff'::bytea`; [`rewrite_statement`]
//! turns those into expressions DataFusion plans with the right type.

use crate::sqlparser::ast::{
    self, ArrayElemTypeDef, CastKind, DataType, Expr, Value, ValueWithSpan,
};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::scalar::ScalarValue;
use std::ops::ControlFlow;
use strata_common::{Result, StrataError};

/// Splits a one-dimensional array literal into its elements (None for an
/// unquoted NULL), following Postgres' array input rules: elements are separated
/// by commas, may be double-quoted, a backslash escapes the next character, and
/// whitespace around unquoted elements is dropped. None for a malformed literal
/// and for what is not supported here: nested arrays and explicit bounds.
pub fn parse_array_literal(s: &str) -> Option<Vec<Option<String>>> {
    let body = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = vec![];
    if body.trim().is_empty() {
        return Some(items);
    }
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        let mut escaped = false;
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            // Trailing whitespace is dropped, unless it was escaped.
            let mut keep = 0;
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '{' | '}' | '"' => return None,
                    '\\' => {
                        chars.next();
                        item.push(chars.next()?);
                        escaped = true;
                        keep = item.len();
                    }
                    c => {
                        chars.next();
                        item.push(c);
                        if !c.is_whitespace() {
                            keep = item.len();
                        }
                    }
                }
            }
            item.truncate(keep);
            if item.is_empty() && !escaped {
                return None; // `{a,,b}`
            }
        }
        items.push(
            if !quoted && !escaped && item.eq_ignore_ascii_case("null") {
                None
            } else {
                Some(item)
            },
        );
        match chars.next() {
            Some(',') => continue,
            None => return Some(items),
            _ => return None,
        }
    }
}

/// A text-format array (`{1,2,NULL}`, `{"a b",""}`) as a list of `item` values,
/// for array parameters sent as text.
pub fn parse_text_array(s: &str, item: &ArrowType) -> Result<ScalarValue> {
    let items = parse_array_literal(s)
        .ok_or_else(|| StrataError::InvalidText(format!("malformed array literal: \"{s}\"")))?;
    let values = items
        .into_iter()
        .map(|i| match i {
            None => Ok(ScalarValue::try_from(item)?),
            Some(t) => text_value(&t, item),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScalarValue::List(ScalarValue::new_list(
        &values, item, true,
    )))
}

/// One value's text form read as `ty`, with Postgres' spellings of booleans and
/// BYTEA.
fn text_value(s: &str, ty: &ArrowType) -> Result<ScalarValue> {
    match ty {
        ArrowType::Boolean => pg_bool(s),
        ArrowType::Binary => Ok(ScalarValue::Binary(Some(parse_bytea(s)?))),
        ArrowType::Utf8 => Ok(ScalarValue::Utf8(Some(s.to_string()))),
        _ => ScalarValue::Utf8(Some(s.to_string()))
            .cast_to(ty)
            .map_err(|_| {
                let name = match ty {
                    ArrowType::Int16 => "smallint".to_string(),
                    ArrowType::Int32 => "integer".to_string(),
                    ArrowType::Int64 => "bigint".to_string(),
                    ArrowType::Float32 => "real".to_string(),
                    ArrowType::Float64 => "double precision".to_string(),
                    ArrowType::Decimal128(..) => "numeric".to_string(),
                    ArrowType::Date32 => "date".to_string(),
                    ArrowType::Time64(_) => "time without time zone".to_string(),
                    ArrowType::Timestamp(_, None) => "timestamp without time zone".to_string(),
                    ArrowType::Timestamp(_, Some(_)) => "timestamp with time zone".to_string(),
                    other => other.to_string(),
                };
                StrataError::InvalidText(format!("invalid input syntax for type {name}: \"{s}\""))
            }),
    }
}

/// A boolean in any of Postgres' spellings.
pub fn pg_bool(s: &str) -> Result<ScalarValue> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "y" | "on" | "1" => Ok(ScalarValue::Boolean(Some(true))),
        "f" | "false" | "no" | "n" | "off" | "0" => Ok(ScalarValue::Boolean(Some(false))),
        _ => Err(StrataError::InvalidText(format!(
            "invalid input syntax for type boolean: \"{s}\""
        ))),
    }
}

/// BYTEA's text input: `\x` then hex digits (whitespace between pairs allowed),
/// or the escape format, where `\\` is a backslash and `\nnn` an octal byte.
pub fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    let invalid =
        || StrataError::InvalidText(format!("invalid input syntax for type bytea: \"{s}\""));
    if let Some(hex) = s.strip_prefix("\\x").or_else(|| s.strip_prefix("\\X")) {
        let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(2) {
            return Err(StrataError::InvalidText(format!(
                "invalid hexadecimal data: odd number of digits: \"{s}\""
            )));
        }
        return digits
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
                    .ok_or_else(|| {
                        StrataError::InvalidText(format!("invalid hexadecimal digit: \"{s}\""))
                    })
            })
            .collect();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            let octal = bytes.get(i + 1..i + 4).ok_or_else(invalid)?;
            if !(b'0'..=b'3').contains(&octal[0])
                || !octal[1..].iter().all(|d| (b'0'..=b'7').contains(d))
            {
                return Err(invalid());
            }
            out.push(octal.iter().fold(0u8, |acc, d| (acc << 3) | (d - b'0')));
            i += 4;
        }
    }
    Ok(out)
}

/// A UUID's canonical text (lower-case, hyphenated) from any of Postgres' input
/// spellings: upper or lower case, with or without hyphens, optionally in braces.
pub fn parse_uuid(s: &str) -> Result<String> {
    let invalid =
        || StrataError::InvalidText(format!("invalid input syntax for type uuid: \"{s}\""));
    let t = s.trim();
    let t = match t.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(invalid)?,
        None => t,
    };
    if t.starts_with('-') || t.ends_with('-') || t.contains("--") {
        return Err(invalid());
    }
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    Ok(hyphenated_uuid(&hex.to_ascii_lowercase()))
}

/// A UUID's canonical text from its 32 lower-case hex digits.
pub fn hyphenated_uuid(h: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Rewrites what DataFusion would plan wrongly or not at all:
/// - casts of string literals to arrays, BYTEA and UUID become the value they
///   denote (`'{1,NULL}'::int[]` is `CAST(ARRAY[CAST('1' AS INT), CAST(NULL AS
///   INT)] AS INT[])`, `'\x00ff'::bytea` is `X'00FF'`);
/// - UUID, JSON and JSONB as cast targets become TEXT, which is how Strata holds them;
/// - a bare integer literal in the select list of a top-level SELECT that fits
///   in 32 bits is typed INT, as Postgres types it (`SELECT 1` is int4). Only
///   there: inside expressions DataFusion's 64-bit integers avoid overflow.
pub(crate) fn rewrite_statement(stmt: &mut ast::Statement) -> Result<()> {
    if let ControlFlow::Break(e) = ast::visit_expressions_mut(stmt, |e| match rewrite_cast(e) {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err),
    }) {
        return Err(e);
    }
    if let ast::Statement::Query(q) = stmt
        && let ast::SetExpr::Select(sel) = q.body.as_mut()
    {
        for item in &mut sel.projection {
            if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
                item
                && int4_literal(e)
            {
                let inner = std::mem::replace(e, Expr::value(Value::Null));
                *e = cast(inner, DataType::Int(None));
            }
        }
    }
    Ok(())
}

fn int4_literal(e: &Expr) -> bool {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::Number(n, _),
            ..
        }) => n.parse::<i32>().is_ok(),
        Expr::UnaryOp {
            op: ast::UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(ValueWithSpan {
                value: Value::Number(n, _),
                ..
            }) => format!("-{n}").parse::<i32>().is_ok(),
            _ => false,
        },
        _ => false,
    }
}

fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::Cast,
        expr: Box::new(expr),
        data_type,
        array: false,
        format: None,
    }
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::EscapedStringLiteral(s),
            ..
        }) => Some(s),
        Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

/// The type Strata holds values of `ty` as, where DataFusion lacks it.
fn storage_type(ty: &DataType) -> Option<DataType> {
    match ty {
        DataType::Uuid | DataType::JSON | DataType::JSONB => Some(DataType::Text),
        DataType::Array(elem) => {
            let (inner, rebuild): (&DataType, fn(Box<DataType>) -> ArrayElemTypeDef) = match elem {
                ArrayElemTypeDef::SquareBracket(t, _) => {
                    (t, |t| ArrayElemTypeDef::SquareBracket(t, None))
                }
                ArrayElemTypeDef::AngleBracket(t) => (t, ArrayElemTypeDef::AngleBracket),
                ArrayElemTypeDef::Parenthesis(t) => (t, ArrayElemTypeDef::Parenthesis),
                ArrayElemTypeDef::None => return None,
            };
            storage_type(inner).map(|t| DataType::Array(rebuild(Box::new(t))))
        }
        _ => None,
    }
}

fn array_element_type(ty: &DataType) -> Option<&DataType> {
    match ty {
        DataType::Array(
            ArrayElemTypeDef::SquareBracket(t, _)
            | ArrayElemTypeDef::AngleBracket(t)
            | ArrayElemTypeDef::Parenthesis(t),
        ) => Some(t),
        _ => None,
    }
}

fn rewrite_cast(e: &mut Expr) -> Result<()> {
    let Expr::Cast {
        kind: CastKind::Cast | CastKind::DoubleColon,
        expr,
        data_type,
        format: None,
        ..
    } = e
    else {
        return Ok(());
    };
    if let Some(s) = string_literal(expr)
        && let Some(value) = literal_of(s, data_type)?
    {
        *e = value;
        return Ok(());
    }
    if let Some(t) = storage_type(data_type) {
        *data_type = t;
    }
    Ok(())
}

/// The expression a string literal cast to `ty` stands for, where DataFusion's
/// own cast would read it differently from Postgres.
fn literal_of(s: &str, ty: &DataType) -> Result<Option<Expr>> {
    match ty {
        DataType::Uuid => Ok(Some(Expr::value(Value::SingleQuotedString(parse_uuid(s)?)))),
        DataType::Bytea => {
            let bytes = parse_bytea(s)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
            Ok(Some(Expr::value(Value::HexStringLiteral(hex))))
        }
        DataType::Array(_) => {
            let Some(elem_ty) = array_element_type(ty) else {
                return Ok(None);
            };
            let items = parse_array_literal(s).ok_or_else(|| {
                StrataError::InvalidText(format!("malformed array literal: \"{s}\""))
            })?;
            let elem_target = storage_type(elem_ty).unwrap_or_else(|| elem_ty.clone());
            let elem = items
                .into_iter()
                .map(|item| match item {
                    None => Ok(cast(Expr::value(Value::Null), elem_target.clone())),
                    Some(text) => Ok(match literal_of(&text, elem_ty)? {
                        Some(v) => v,
                        None => cast(
                            Expr::value(Value::SingleQuotedString(text)),
                            elem_target.clone(),
                        ),
                    }),
                })
                .collect::<Result<Vec<_>>>()?;
            let array_ty = storage_type(ty).unwrap_or_else(|| ty.clone());
            Ok(Some(cast(
                Expr::Array(ast::Array { elem, named: true }),
                array_ty,
            )))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(s: &str) -> Option<Vec<Option<String>>> {
        parse_array_literal(s)
    }

    fn some(items: &[Option<&str>]) -> Option<Vec<Option<String>>> {
        Some(items.iter().map(|i| i.map(String::from)).collect())
    }

    #[test]
    fn array_literals() {
        assert_eq!(arr("{}"), some(&[]));
        assert_eq!(arr(" { } "), some(&[]));
        assert_eq!(arr("{NULL}"), some(&[None]));
        assert_eq!(arr("{1,2,NULL}"), some(&[Some("1"), Some("2"), None]));
        assert_eq!(
            arr(r#"{"1","2",NULL}"#),
            some(&[Some("1"), Some("2"), None])
        );
        assert_eq!(
            arr(r#"{a,"b c",""}"#),
            some(&[Some("a"), Some("b c"), Some("")])
        );
        assert_eq!(
            arr(r#"{"x\"y","back\\slash","NULL"," sp ",NULL,"{}","a,b"}"#),
            some(&[
                Some("x\"y"),
                Some("back\\slash"),
                Some("NULL"),
                Some(" sp "),
                None,
                Some("{}"),
                Some("a,b")
            ])
        );
        assert_eq!(
            arr(r"{ a b , c\,d, \NULL }"),
            some(&[Some("a b"), Some("c,d"), Some("NULL")])
        );
        assert_eq!(arr("{a,,b}"), None);
        assert_eq!(arr("{{1},{2}}"), None);
        assert_eq!(arr("1,2"), None);
        assert_eq!(arr(r#"{"a"b}"#), None);
        assert_eq!(arr(r#"{"open}"#), None);
    }

    #[test]
    fn bytea_and_uuid() {
        assert_eq!(parse_bytea(r"\x00ffA0").unwrap(), vec![0, 255, 160]);
        assert_eq!(parse_bytea(r"\x").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_bytea(r"a\\b\001").unwrap(), b"a\\b\x01".to_vec());
        assert!(parse_bytea(r"\x0").is_err());
        assert!(parse_bytea(r"\xzz").is_err());
        assert!(parse_bytea(r"a\9").is_err());
        assert_eq!(
            parse_uuid("{A0EEBC999C0B4EF8BB6D6BB9BD380A11}").unwrap(),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
        assert!(parse_uuid("a0eebc99-9c0b").is_err());
    }

    fn rewritten(sql: &str) -> String {
        match crate::parse_one(sql).unwrap() {
            Some(crate::Statement::Sql(s)) => s.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literal_casts() {
        assert_eq!(
            rewritten("SELECT '{1,NULL}'::int[]"),
            "SELECT CAST(ARRAY[CAST('1' AS INT), CAST(NULL AS INT)] AS INT[])"
        );
        assert_eq!(
            rewritten(
                r"INSERT INTO t VALUES ('\x00ff'::bytea, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid)"
            ),
            "INSERT INTO t VALUES (X'00FF', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')"
        );
        assert_eq!(rewritten("SELECT x::uuid FROM t"), "SELECT x::TEXT FROM t");
        assert_eq!(
            rewritten("SELECT 1, -2 AS n, 3 + 4"),
            "SELECT CAST(1 AS INT), CAST(-2 AS INT) AS n, 3 + 4"
        );
        assert_eq!(rewritten("SELECT 4294967296"), "SELECT 4294967296");
        assert!(crate::parse_one("SELECT 'nope'::uuid").is_err());
        assert!(crate::parse_one("SELECT '{1'::int[]").is_err());
    }
}

/// A DOUBLE PRECISION value as Postgres writes it (extra_float_digits >= 1):
/// the shortest digits that read back as the same value, in fixed notation
/// when the decimal exponent is in [-4, 15) and as `1.5e+20` otherwise;
/// `Infinity`, `-Infinity`, `NaN`.
pub fn float8_text(v: f64) -> String {
    float_text(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        format!("{:e}", v.abs()),
        15,
    )
}

/// A REAL value as Postgres writes it: as [`float8_text`], with fixed notation
/// for exponents in [-4, 6).
pub fn float4_text(v: f32) -> String {
    float_text(
        v.is_nan(),
        v.is_infinite(),
        v.is_sign_negative(),
        format!("{:e}", v.abs()),
        6,
    )
}

/// `sci` is Rust's shortest round-trip scientific form of the magnitude
/// (`3.4e1`, `1e20`, `2.5e-5`).
fn float_text(nan: bool, infinite: bool, negative: bool, sci: String, fixed_below: i32) -> String {
    if nan {
        return "NaN".into();
    }
    let sign = if negative { "-" } else { "" };
    if infinite {
        return format!("{sign}Infinity");
    }
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if digits == "0" {
        return format!("{sign}0");
    }
    if exp < -4 || exp >= fixed_below {
        let sign_e = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{mantissa}e{sign_e}{:02}", exp.abs());
    }
    let n = digits.len() as i32;
    let body = if exp < 0 {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    } else if exp >= n - 1 {
        format!("{digits}{}", "0".repeat((exp - (n - 1)) as usize))
    } else {
        let (int, frac) = digits.split_at((exp + 1) as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod float_tests {
    use super::*;

    #[test]
    fn floats_print_as_postgres_prints_them() {
        assert_eq!(float8_text(34.0), "34");
        assert_eq!(float8_text(0.3333333333333333), "0.3333333333333333");
        assert_eq!(float8_text(-2.5), "-2.5");
        assert_eq!(float8_text(1e20), "1e+20");
        assert_eq!(float8_text(1e-5), "1e-05");
        assert_eq!(float8_text(0.0001), "0.0001");
        assert_eq!(float8_text(123456789012345.0), "123456789012345");
        assert_eq!(float8_text(1e15), "1e+15");
        assert_eq!(float8_text(1.5e300), "1.5e+300");
        assert_eq!(float8_text(0.0), "0");
        assert_eq!(float8_text(-0.0), "-0");
        assert_eq!(float8_text(f64::INFINITY), "Infinity");
        assert_eq!(float8_text(f64::NAN), "NaN");
        assert_eq!(float4_text(1.5), "1.5");
        assert_eq!(float4_text(123456.0), "123456");
        assert_eq!(float4_text(1234567.0), "1.234567e+06");
        assert_eq!(float4_text(3.3), "3.3");
    }
}

//! Coercing values to column types, with Postgres' errors: a string that does not
//! parse is 22P02, an integer that does not fit is 22003, a VARCHAR(n) overflow is
//! 22001. Also the generators behind DEFAULT now(), gen_random_uuid() and
//! snowflake_id().

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_catalog::{ColumnDef, ColumnType};
use strata_common::{Result, StrataError};
use strata_sql::pgtext::{parse_array_literal, parse_bytea, pg_bool};

/// Casts a value to a column's type and checks the type's own rules.
pub fn coerce(col: &ColumnDef, v: ScalarValue) -> Result<ScalarValue> {
    let target = col.ty.arrow_type();
    let v = if v.is_null() {
        ScalarValue::try_from(&target)?
    } else if v.data_type() == target {
        v
    } else {
        cast(v, &target, col)?
    };
    if v.is_null() {
        return Ok(v);
    }
    match (&col.ty, &v) {
        (ColumnType::Uuid, ScalarValue::Utf8(Some(s))) => {
            let u = uuid::Uuid::parse_str(s.trim()).map_err(|_| {
                StrataError::InvalidText(format!("invalid input syntax for type uuid: \"{s}\""))
            })?;
            Ok(ScalarValue::Utf8(Some(u.hyphenated().to_string())))
        }
        (ColumnType::Json | ColumnType::Jsonb, ScalarValue::Utf8(Some(s))) => {
            serde_json::from_str::<serde_json::Value>(s).map_err(|e| {
                StrataError::InvalidText(format!("invalid input syntax for type json: {e}"))
            })?;
            Ok(v)
        }
        (ColumnType::Varchar(Some(n)), ScalarValue::Utf8(Some(s)))
            if s.chars().count() as u64 > *n =>
        {
            Err(StrataError::StringTooLong(format!(
                "value too long for type character varying({n})"
            )))
        }
        _ => Ok(v),
    }
}

/// The key a value names in a key column, for a lookup by key (`WHERE pk =
/// v`): the value compared, not stored, so it must convert exactly. None
/// when no key can equal it — 1.5 or 3e9 for an INT key, 'abcd' for a
/// VARCHAR(3) one — where a conversion would round, wrap or fail (what is an
/// error on INSERT is no match here, as in Postgres). A string that does not
/// parse as the key's type is still 22P02.
pub fn exact_key(col: &ColumnDef, v: ScalarValue) -> Result<Option<ScalarValue>> {
    let source = v.data_type();
    let from_string = matches!(
        source,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    );
    // Text converts to a decimal key by rounding ('1.555' to 1.56).
    if let (ScalarValue::Utf8(Some(text)), DataType::Decimal128(_, scale)) =
        (&v, col.ty.arrow_type())
        && fraction_digits(text).is_some_and(|d| d > i64::from(scale))
    {
        return Ok(None);
    }
    match coerce(col, v.clone()) {
        Err(StrataError::StringTooLong(_)) => Ok(None),
        Err(e) if from_string => Err(e),
        Err(_) => Ok(None),
        Ok(k) if from_string || k.is_null() || k.data_type() == source => Ok(Some(k)),
        // The key must be the value itself (1.0 names key 1; 1.9 names none,
        // where a cast would truncate it to 1).
        Ok(k) => Ok(strata_common::exact::keeps_value(&k, &v).then_some(k)),
    }
}

/// The digits a number's text needs after the point (`1.50` one, `15e-3`
/// three, `1e2` none); None when the text is not a plain number.
fn fraction_digits(text: &str) -> Option<i64> {
    let t = text.trim();
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().ok()?),
        None => (t, 0),
    };
    let frac = mantissa.split_once('.').map_or("", |(_, f)| f);
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = i64::try_from(frac.trim_end_matches('0').len()).ok()?;
    Some(digits.saturating_sub(exp).max(0))
}

fn cast(v: ScalarValue, target: &DataType, col: &ColumnDef) -> Result<ScalarValue> {
    let shown = v.to_string();
    // BYTEA text input is Postgres' hex format (`\x0a1b`) or its escape format
    // (plain text, with `\\` and `\nnn` octal escapes).
    if let (DataType::Binary, ScalarValue::Utf8(Some(s))) = (target, &v) {
        return Ok(ScalarValue::Binary(Some(parse_bytea(s)?)));
    }
    // Postgres' text form of an array: {1,2,NULL} or {"a b","c"}.
    if let (DataType::List(_), ColumnType::Array(inner), ScalarValue::Utf8(Some(s))) =
        (target, &col.ty, &v)
    {
        let items = parse_array_literal(s)
            .ok_or_else(|| StrataError::InvalidText(format!("malformed array literal: \"{s}\"")))?;
        let item_col = ColumnDef {
            ty: (**inner).clone(),
            ..col.clone()
        };
        let values = items
            .into_iter()
            .map(|i| {
                coerce(
                    &item_col,
                    i.map_or(ScalarValue::Null, |t| ScalarValue::Utf8(Some(t))),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(ScalarValue::List(ScalarValue::new_list(
            &values,
            &inner.arrow_type(),
            true,
        )));
    }
    // Strings for BOOLEAN follow Postgres' spellings, which Arrow's cast lacks.
    if let (DataType::Boolean, ScalarValue::Utf8(Some(s))) = (target, &v) {
        return pg_bool(s);
    }
    let from_string = matches!(
        v.data_type(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    );
    let v = match (&v, target) {
        // Text params and literals for TIMESTAMPTZ may carry an offset; Arrow parses those.
        (ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)), _) => {
            ScalarValue::Utf8(Some(s.clone()))
        }
        _ => v,
    };
    v.cast_to(target).map_err(|e| {
        let msg = e.to_string();
        if from_string {
            StrataError::InvalidText(format!(
                "invalid input syntax for type {}: \"{shown}\"",
                col.ty.sql_name().to_lowercase()
            ))
        } else if (v.data_type().is_numeric() && target.is_numeric())
            || msg.contains("overflow")
            || msg.contains("out of range")
            || msg.contains("Overflow")
        {
            StrataError::NumericOutOfRange(format!(
                "{} out of range for column \"{}\"",
                shown, col.name
            ))
        } else {
            StrataError::DatatypeMismatch(format!(
                "column \"{}\" is of type {} but expression is of type {}",
                col.name,
                col.ty.sql_name().to_lowercase(),
                v.data_type()
            ))
        }
    })
}

/// A 64-bit id: milliseconds since 2020-01-01 in the high bits, then a counter.
/// Increasing within one server and unique without a uniqueness check.
pub fn snowflake_id() -> i64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    const EPOCH_MS: u64 = 1_577_836_800_000;
    let now_ms = (chrono::Utc::now().timestamp_millis() as u64).saturating_sub(EPOCH_MS);
    let candidate = now_ms << 22;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = if candidate > prev {
            candidate
        } else {
            prev + 1
        };
        match LAST.compare_exchange_weak(prev, next, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return (next & (i64::MAX as u64)) as i64,
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: ColumnType) -> ColumnDef {
        ColumnDef {
            id: 1,
            name: "c".into(),
            ty,
            nullable: true,
            default: None,
            primary_key: false,
            fill: None,
        }
    }

    #[test]
    fn postgres_errors() {
        let e = coerce(&col(ColumnType::Int), ScalarValue::Utf8(Some("abc".into()))).unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
        let e = coerce(&col(ColumnType::Int), ScalarValue::Int64(Some(1 << 40))).unwrap_err();
        assert_eq!(e.sqlstate(), "22003");
        let e = coerce(
            &col(ColumnType::Varchar(Some(2))),
            ScalarValue::Utf8(Some("abc".into())),
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22001");
        let e = coerce(
            &col(ColumnType::Uuid),
            ScalarValue::Utf8(Some("nope".into())),
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
    }

    #[test]
    fn casts_strings_and_widens() {
        assert_eq!(
            coerce(&col(ColumnType::BigInt), ScalarValue::Int32(Some(5))).unwrap(),
            ScalarValue::Int64(Some(5))
        );
        assert_eq!(
            coerce(
                &col(ColumnType::Boolean),
                ScalarValue::Utf8(Some("yes".into()))
            )
            .unwrap(),
            ScalarValue::Boolean(Some(true))
        );
        assert!(
            coerce(
                &col(ColumnType::Date),
                ScalarValue::Utf8(Some("2024-02-29".into()))
            )
            .is_ok()
        );
    }

    #[test]
    fn array_literals() {
        let col = col(ColumnType::Array(Box::new(ColumnType::Int)));
        let v = coerce(&col, ScalarValue::Utf8(Some("{1, 2,NULL}".into()))).unwrap();
        let expected = ScalarValue::List(ScalarValue::new_list(
            &[
                ScalarValue::Int32(Some(1)),
                ScalarValue::Int32(Some(2)),
                ScalarValue::Int32(None),
            ],
            &DataType::Int32,
            true,
        ));
        assert_eq!(v, expected);
        assert_eq!(
            parse_array_literal(r#"{"a,b","c\"d"}"#).unwrap(),
            vec![Some("a,b".into()), Some("c\"d".into())]
        );
        assert!(coerce(&col, ScalarValue::Utf8(Some("{1,2".into()))).is_err());
    }

    #[test]
    fn bytea_hex_input() {
        let v = coerce(
            &col(ColumnType::Bytea),
            ScalarValue::Utf8(Some("\\xDEADbeef".into())),
        )
        .unwrap();
        assert_eq!(v, ScalarValue::Binary(Some(vec![0xde, 0xad, 0xbe, 0xef])));
        let e = coerce(
            &col(ColumnType::Bytea),
            ScalarValue::Utf8(Some("\\xzz".into())),
        )
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22P02");
    }

    #[test]
    fn snowflakes_increase() {
        let a = snowflake_id();
        let b = snowflake_id();
        assert!(b > a);
    }
    #[test]
    fn a_key_is_named_only_exactly() {
        let int = col(ColumnType::Int);
        let key = |c: &ColumnDef, v: ScalarValue| exact_key(c, v).unwrap();
        assert_eq!(
            key(&int, ScalarValue::Float64(Some(7.0))),
            Some(ScalarValue::Int32(Some(7)))
        );
        for v in [7.9, 3e9, f64::NAN, f64::INFINITY] {
            assert_eq!(key(&int, ScalarValue::Float64(Some(v))), None, "{v}");
        }
        assert_eq!(key(&int, ScalarValue::Int64(Some(1 << 40))), None);
        assert_eq!(
            key(&int, ScalarValue::Utf8(Some("007".into()))),
            Some(ScalarValue::Int32(Some(7)))
        );
        assert!(exact_key(&int, ScalarValue::Utf8(Some("x".into()))).is_err());
        let money = col(ColumnType::Numeric {
            precision: 10,
            scale: 2,
        });
        for text in ["1.555", "1.5551", "155.5e-2", "1.001"] {
            assert_eq!(
                key(&money, ScalarValue::Utf8(Some(text.into()))),
                None,
                "{text}"
            );
        }
        for text in ["1.56", "1.5600", "2"] {
            assert!(
                key(&money, ScalarValue::Utf8(Some(text.into()))).is_some(),
                "{text}"
            );
        }
        let code = col(ColumnType::Varchar(Some(3)));
        assert_eq!(key(&code, ScalarValue::Utf8(Some("abcd".into()))), None);
        assert!(key(&code, ScalarValue::Utf8(Some("abc".into()))).is_some());
        assert_eq!(fraction_digits("1.2.3"), None);
        assert_eq!(fraction_digits("1e99999999999999999999"), None);
    }
}

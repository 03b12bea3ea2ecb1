//! Order-preserving key encoding for the hot tier.
//!
//! A row key is `table_id (u32 BE) | user segment | primary key`. The user segment
//! is the user id with 0x00 escaped as 0x00 0xFF and a 0x00 0x01 terminator, so
//! one user's rows are one contiguous prefix and no user id is a prefix of another
//! user's segment. The primary key comes last and is encoded so that byte order is
//! value order: a primary-key range becomes a RocksDB range.

use crate::error::{Result, StrataError};
use datafusion::scalar::ScalarValue;

/// Prefix of every key of one table.
pub fn table_prefix(table_id: u32) -> Vec<u8> {
    table_id.to_be_bytes().to_vec()
}

/// Prefix of every key of one (table, user) partition. SHARED tables use "".
pub fn partition_prefix(table_id: u32, user: &str) -> Vec<u8> {
    let mut out = table_prefix(table_id);
    for &b in user.as_bytes() {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
    out
}

/// The user segment of a key that starts with a table prefix: the user id and
/// the length of `table_id | user segment`. None for a malformed key.
pub fn split_partition(key: &[u8]) -> Option<(String, usize)> {
    let mut user = Vec::new();
    let mut i = 4;
    loop {
        match (key.get(i)?, key.get(i + 1)) {
            (0x00, Some(0x01)) => break,
            (0x00, Some(0xFF)) => {
                user.push(0);
                i += 2;
            }
            (0x00, _) => return None,
            (&b, _) => {
                user.push(b);
                i += 1;
            }
        }
    }
    Some((String::from_utf8(user).ok()?, i + 2))
}

/// Full key of one row.
pub fn row_key(table_id: u32, user: &str, pk: &ScalarValue) -> Result<Vec<u8>> {
    let mut out = partition_prefix(table_id, user);
    encode_pk(pk, &mut out)?;
    Ok(out)
}

/// The smallest key strictly greater than every key starting with `prefix`.
pub fn prefix_successor(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xFF {
            out.push(last + 1);
            return out;
        }
    }
    // An all-0xFF prefix has no successor; an empty vector means "unbounded".
    out
}

/// Appends the order-preserving encoding of a primary-key value.
pub fn encode_pk(value: &ScalarValue, out: &mut Vec<u8>) -> Result<()> {
    fn int(v: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
    }
    match value {
        ScalarValue::Int8(Some(v)) => int(*v as i64, out),
        ScalarValue::Int16(Some(v)) => int(*v as i64, out),
        ScalarValue::Int32(Some(v)) => int(*v as i64, out),
        ScalarValue::Int64(Some(v)) => int(*v, out),
        ScalarValue::Date32(Some(v)) => int(*v as i64, out),
        ScalarValue::Time64Microsecond(Some(v)) => int(*v, out),
        ScalarValue::TimestampMicrosecond(Some(v), _) => int(*v, out),
        ScalarValue::Boolean(Some(b)) => out.push(*b as u8),
        ScalarValue::Float32(Some(f)) => encode_f64(*f as f64, out),
        ScalarValue::Float64(Some(f)) => encode_f64(*f, out),
        ScalarValue::Decimal128(Some(v), _, _) => {
            out.extend_from_slice(&((*v as u128) ^ (1 << 127)).to_be_bytes())
        }
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => out.extend_from_slice(s.as_bytes()),
        ScalarValue::Binary(Some(b))
        | ScalarValue::LargeBinary(Some(b))
        | ScalarValue::BinaryView(Some(b)) => out.extend_from_slice(b),
        v if v.is_null() => {
            return Err(StrataError::NotNullViolation(
                "null value in primary key column".into(),
            ));
        }
        other => {
            return Err(StrataError::unsupported(format!(
                "type {} cannot be a primary key",
                other.data_type()
            )));
        }
    }
    Ok(())
}

fn encode_f64(f: f64, out: &mut Vec<u8>) {
    let f = if f == 0.0 { 0.0 } else { f }; // -0.0 and 0.0 are one key
    let bits = f.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    out.extend_from_slice(&ordered.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_segment_round_trips() {
        for user in ["", "alice", "a\0b", "\0", "bob\u{ff}"] {
            let k = row_key(9, user, &ScalarValue::Int64(Some(5))).unwrap();
            let (u, len) = split_partition(&k).unwrap();
            assert_eq!(u, user);
            assert_eq!(len, partition_prefix(9, user).len());
        }
        assert!(split_partition(&[0, 0, 0, 9, b'a']).is_none());
    }

    fn key(v: ScalarValue) -> Vec<u8> {
        row_key(7, "", &v).unwrap()
    }

    #[test]
    fn integers_sort_by_value() {
        let vals = [-5_000_000_000i64, -1, 0, 1, 42, i64::MAX];
        let keys: Vec<_> = vals
            .iter()
            .map(|v| key(ScalarValue::Int64(Some(*v))))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn floats_sort_by_value() {
        let vals = [-1e10, -1.5, 0.0, 2.25, 1e300];
        let keys: Vec<_> = vals
            .iter()
            .map(|v| key(ScalarValue::Float64(Some(*v))))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn user_segments_do_not_prefix_each_other() {
        let a = partition_prefix(1, "ab");
        let b = partition_prefix(1, "abc");
        assert!(!b.starts_with(&a));
        assert!(!a.starts_with(&b));
    }

    #[test]
    fn null_pk_is_refused() {
        assert!(row_key(1, "", &ScalarValue::Int64(None)).is_err());
    }

    #[test]
    fn successor_bounds_prefix() {
        let p = partition_prefix(3, "u");
        let s = prefix_successor(&p);
        assert!(key(ScalarValue::Int64(Some(i64::MAX))) < prefix_successor(&table_prefix(7)));
        assert!(p < s);
    }
}

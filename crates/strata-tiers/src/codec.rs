//! Row encoding in the hot tier.
//!
//! Value layout: `seq u64 BE | flags u8 | column count u16 LE | (column id u32 LE,
//! value)*`. Flags: bit 0 = deleted (tombstone), bit 1 = shadows a cold row,
//! bit 2 = a write time (µs, i64 BE) follows the flags (STREAM tables, whose
//! rows expire a TTL after their last write).
//! Columns are stored by their stable id, so ADD/DROP COLUMN never rewrites rows:
//! a dropped column's bytes are skipped and an added column reads as its fill.

use datafusion::arrow::datatypes::DataType;
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::{ColumnType, TableDef, now_micros};
use strata_common::{Result, StrataError};
use strata_sql::TableKind;

pub const FLAG_DELETED: u8 = 1;
/// Set by flushes (cold tier) on hot versions that supersede a cold row.
#[allow(dead_code)]
pub const FLAG_SHADOWS_COLD: u8 = 2;

/// Set on rows of STREAM tables: the write time follows the flags.
pub const FLAG_WRITTEN_AT: u8 = 4;

/// A decoded row version.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub seq: u64,
    pub flags: u8,
    /// When the version was written (µs), kept for STREAM tables only.
    pub written_at: Option<i64>,
    /// One value per column of the table definition, in order.
    pub values: Vec<ScalarValue>,
}

impl StoredRow {
    pub fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }

    /// Neither deleted nor past its table's TTL at `now` (µs).
    pub fn is_live(&self, table: &TableDef, now: i64) -> bool {
        !self.is_deleted() && !expired(table, self.written_at, now)
    }
}

/// Whether a version written at `written_at` is past `table`'s TTL at `now`.
/// A row expires the moment its TTL elapses, whether or not the eviction job
/// has removed it yet.
fn expired(table: &TableDef, written_at: Option<i64>, now: i64) -> bool {
    match (table.ttl_seconds, written_at) {
        (Some(ttl), Some(at)) => now.saturating_sub(at) >= (ttl as i64).saturating_mul(1_000_000),
        _ => false,
    }
}

/// `StoredRow::is_live` from the header alone, without decoding the values.
pub fn is_live_value(table: &TableDef, bytes: &[u8], now: i64) -> Result<bool> {
    let (_, flags) = decode_header(bytes)?;
    if flags & FLAG_DELETED != 0 {
        return Ok(false);
    }
    Ok(!expired(table, written_at(flags, bytes)?, now))
}

fn written_at(flags: u8, bytes: &[u8]) -> Result<Option<i64>> {
    if flags & FLAG_WRITTEN_AT == 0 {
        return Ok(None);
    }
    let b: [u8; 8] = bytes
        .get(9..17)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    Ok(Some(i64::from_be_bytes(b)))
}

pub fn encode_row(
    table: &TableDef,
    seq: u64,
    flags: u8,
    values: &[ScalarValue],
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(24 + values.len() * 9);
    out.extend_from_slice(&seq.to_be_bytes());
    if table.kind == TableKind::Stream {
        out.push(flags | FLAG_WRITTEN_AT);
        out.extend_from_slice(&now_micros().to_be_bytes());
    } else {
        out.push(flags);
    }
    out.extend_from_slice(&(table.columns.len() as u16).to_le_bytes());
    for (col, v) in table.columns.iter().zip(values) {
        out.extend_from_slice(&col.id.to_le_bytes());
        encode_value(&col.ty, v, &mut out)?;
    }
    Ok(out)
}

/// Encodes one value (with its null tag); also used for column fills.
pub fn encode_value(ty: &ColumnType, v: &ScalarValue, out: &mut Vec<u8>) -> Result<()> {
    if v.is_null() {
        out.push(0);
        return Ok(());
    }
    // Non-null values are length-prefixed so a reader can skip a value whose
    // column has since been dropped without knowing its type.
    out.push(1);
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_payload(ty, v, out)?;
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

fn encode_payload(ty: &ColumnType, v: &ScalarValue, out: &mut Vec<u8>) -> Result<()> {
    match (ty, v) {
        (ColumnType::Boolean, ScalarValue::Boolean(Some(b))) => out.push(*b as u8),
        (ColumnType::SmallInt, ScalarValue::Int16(Some(x))) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (ColumnType::Int, ScalarValue::Int32(Some(x))) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::BigInt, ScalarValue::Int64(Some(x))) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (ColumnType::Real, ScalarValue::Float32(Some(x))) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (ColumnType::Double, ScalarValue::Float64(Some(x))) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (ColumnType::Numeric { .. }, ScalarValue::Decimal128(Some(x), _, _)) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (ColumnType::Date, ScalarValue::Date32(Some(x))) => out.extend_from_slice(&x.to_le_bytes()),
        (ColumnType::Time, ScalarValue::Time64Microsecond(Some(x))) => {
            out.extend_from_slice(&x.to_le_bytes())
        }
        (
            ColumnType::Timestamp | ColumnType::TimestampTz,
            ScalarValue::TimestampMicrosecond(Some(x), _),
        ) => out.extend_from_slice(&x.to_le_bytes()),
        (
            ColumnType::Text
            | ColumnType::Varchar(_)
            | ColumnType::Uuid
            | ColumnType::Json
            | ColumnType::Jsonb,
            ScalarValue::Utf8(Some(s)),
        ) => put_bytes(s.as_bytes(), out),
        (ColumnType::Bytea, ScalarValue::Binary(Some(b))) => put_bytes(b, out),
        (ColumnType::Array(inner), ScalarValue::List(arr)) => {
            let values = arr.value(0);
            out.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for i in 0..values.len() {
                let item = ScalarValue::try_from_array(&values, i)?;
                encode_value(inner, &item, out)?;
            }
        }
        (ty, v) => {
            return Err(StrataError::internal(format!(
                "value {v:?} does not match column type {}",
                ty.sql_name()
            )));
        }
    }
    Ok(())
}

fn put_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(corrupt)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| corrupt())
    }
}

fn corrupt() -> StrataError {
    StrataError::Storage("corrupt row record".into())
}

pub fn decode_row(table: &TableDef, bytes: &[u8]) -> Result<StoredRow> {
    let mut r = Reader { buf: bytes, pos: 0 };
    let seq = u64::from_be_bytes(r.arr()?);
    let flags = r.arr::<1>()?[0];
    let written_at = if flags & FLAG_WRITTEN_AT != 0 {
        Some(i64::from_be_bytes(r.arr()?))
    } else {
        None
    };
    let n = u16::from_le_bytes(r.arr()?) as usize;
    let mut values: Vec<Option<ScalarValue>> = vec![None; table.columns.len()];
    for _ in 0..n {
        let id = u32::from_le_bytes(r.arr()?);
        match table.columns.iter().position(|c| c.id == id) {
            Some(i) => values[i] = Some(decode_value(&table.columns[i].ty, &mut r)?),
            None => skip_stored_value(&mut r)?,
        }
    }
    let values = values
        .into_iter()
        .zip(&table.columns)
        .map(|(v, col)| match v {
            Some(v) => Ok(v),
            None => match &col.fill {
                Some(fill) => decode_value(&col.ty, &mut Reader { buf: fill, pos: 0 }),
                None => null_of(&col.ty),
            },
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(StoredRow {
        seq,
        flags,
        written_at,
        values,
    })
}

/// Reads only the sequence number and flags of a stored row.
pub fn decode_header(bytes: &[u8]) -> Result<(u64, u8)> {
    if bytes.len() < 9 {
        return Err(corrupt());
    }
    let seq = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| corrupt())?);
    Ok((seq, bytes[8]))
}

/// Skips the value of a column that has been dropped since the row was written.
fn skip_stored_value(r: &mut Reader) -> Result<()> {
    if r.arr::<1>()?[0] == 1 {
        let len = u32::from_le_bytes(r.arr()?) as usize;
        r.take(len)?;
    }
    Ok(())
}

/// What a row written before `col` existed reads as: its fill, else NULL.
pub fn fill_value(col: &strata_catalog::ColumnDef) -> Result<ScalarValue> {
    match &col.fill {
        Some(fill) => decode_value(&col.ty, &mut Reader { buf: fill, pos: 0 }),
        None => null_of(&col.ty),
    }
}

pub fn null_of(ty: &ColumnType) -> Result<ScalarValue> {
    Ok(ScalarValue::try_from(&ty.arrow_type())?)
}

fn decode_value(ty: &ColumnType, r: &mut Reader) -> Result<ScalarValue> {
    if r.arr::<1>()?[0] == 0 {
        return null_of(ty);
    }
    let len = u32::from_le_bytes(r.arr()?) as usize;
    let mut r = Reader {
        buf: r.take(len)?,
        pos: 0,
    };
    let r = &mut r;
    Ok(match ty {
        ColumnType::Boolean => ScalarValue::Boolean(Some(r.arr::<1>()?[0] != 0)),
        ColumnType::SmallInt => ScalarValue::Int16(Some(i16::from_le_bytes(r.arr()?))),
        ColumnType::Int => ScalarValue::Int32(Some(i32::from_le_bytes(r.arr()?))),
        ColumnType::BigInt => ScalarValue::Int64(Some(i64::from_le_bytes(r.arr()?))),
        ColumnType::Real => ScalarValue::Float32(Some(f32::from_le_bytes(r.arr()?))),
        ColumnType::Double => ScalarValue::Float64(Some(f64::from_le_bytes(r.arr()?))),
        ColumnType::Numeric { precision, scale } => {
            ScalarValue::Decimal128(Some(i128::from_le_bytes(r.arr()?)), *precision, *scale)
        }
        ColumnType::Date => ScalarValue::Date32(Some(i32::from_le_bytes(r.arr()?))),
        ColumnType::Time => ScalarValue::Time64Microsecond(Some(i64::from_le_bytes(r.arr()?))),
        ColumnType::Timestamp => {
            ScalarValue::TimestampMicrosecond(Some(i64::from_le_bytes(r.arr()?)), None)
        }
        ColumnType::TimestampTz => ScalarValue::TimestampMicrosecond(
            Some(i64::from_le_bytes(r.arr()?)),
            Some(Arc::from(strata_catalog::UTC)),
        ),
        ColumnType::Text
        | ColumnType::Varchar(_)
        | ColumnType::Uuid
        | ColumnType::Json
        | ColumnType::Jsonb => {
            let len = u32::from_le_bytes(r.arr()?) as usize;
            let s = std::str::from_utf8(r.take(len)?).map_err(|_| corrupt())?;
            ScalarValue::Utf8(Some(s.to_string()))
        }
        ColumnType::Bytea => {
            let len = u32::from_le_bytes(r.arr()?) as usize;
            ScalarValue::Binary(Some(r.take(len)?.to_vec()))
        }
        ColumnType::Array(inner) => {
            let n = u32::from_le_bytes(r.arr()?) as usize;
            let mut items = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                items.push(decode_value(inner, r)?);
            }
            let dt: DataType = inner.arrow_type();
            ScalarValue::List(ScalarValue::new_list(&items, &dt, true))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_catalog::ColumnDef;
    use strata_sql::{AccessLevel, FlushPolicy, TableKind};

    fn table(cols: Vec<(u32, ColumnType)>) -> TableDef {
        TableDef {
            id: 1,
            namespace: "n".into(),
            name: "t".into(),
            kind: TableKind::Shared,
            columns: cols
                .into_iter()
                .map(|(id, ty)| ColumnDef {
                    id,
                    name: format!("c{id}"),
                    ty,
                    nullable: true,
                    default: None,
                    primary_key: id == 1,
                    fill: None,
                })
                .collect(),
            flush_policy: FlushPolicy::default(),
            storage_id: "local".into(),
            use_user_storage: false,
            ttl_seconds: None,
            access_level: AccessLevel::Private,
            next_column_id: 10,
            created_at: 0,
            version: 0,
        }
    }

    #[test]
    fn round_trips_every_type() {
        let t = table(vec![
            (1, ColumnType::BigInt),
            (2, ColumnType::Text),
            (
                3,
                ColumnType::Numeric {
                    precision: 10,
                    scale: 2,
                },
            ),
            (4, ColumnType::TimestampTz),
            (5, ColumnType::Array(Box::new(ColumnType::Int))),
            (6, ColumnType::Bytea),
        ]);
        let vals = vec![
            ScalarValue::Int64(Some(7)),
            ScalarValue::Utf8(None),
            ScalarValue::Decimal128(Some(1234), 10, 2),
            ScalarValue::TimestampMicrosecond(Some(99), Some(Arc::from(strata_catalog::UTC))),
            ScalarValue::List(ScalarValue::new_list(
                &[ScalarValue::Int32(Some(1)), ScalarValue::Int32(None)],
                &DataType::Int32,
                true,
            )),
            ScalarValue::Binary(Some(vec![0, 1, 2])),
        ];
        let bytes = encode_row(&t, 42, FLAG_SHADOWS_COLD, &vals).unwrap();
        let row = decode_row(&t, &bytes).unwrap();
        assert_eq!(row.seq, 42);
        assert_eq!(row.flags, FLAG_SHADOWS_COLD);
        assert_eq!(row.values, vals);
        assert_eq!(decode_header(&bytes).unwrap(), (42, FLAG_SHADOWS_COLD));
    }

    #[test]
    fn added_column_reads_fill_or_null() {
        let t = table(vec![(1, ColumnType::Int)]);
        let bytes = encode_row(&t, 1, 0, &[ScalarValue::Int32(Some(5))]).unwrap();
        let mut t2 = t.clone();
        let mut fill = vec![];
        encode_value(
            &ColumnType::Text,
            &ScalarValue::Utf8(Some("x".into())),
            &mut fill,
        )
        .unwrap();
        t2.add_column(
            "c2".into(),
            ColumnType::Text,
            true,
            Some("'x'".into()),
            Some(fill),
        )
        .unwrap();
        t2.add_column("c3".into(), ColumnType::Int, true, None, None)
            .unwrap();
        let row = decode_row(&t2, &bytes).unwrap();
        assert_eq!(row.values[1], ScalarValue::Utf8(Some("x".into())));
        assert_eq!(row.values[2], ScalarValue::Int32(None));
    }

    #[test]
    fn dropped_column_is_skipped() {
        let t = table(vec![
            (1, ColumnType::Int),
            (2, ColumnType::Text),
            (3, ColumnType::Int),
        ]);
        let vals = [
            ScalarValue::Int32(Some(1)),
            ScalarValue::Utf8(Some("gone".into())),
            ScalarValue::Int32(Some(3)),
        ];
        let bytes = encode_row(&t, 1, 0, &vals).unwrap();
        let mut t2 = t.clone();
        t2.drop_column("c2").unwrap();
        let row = decode_row(&t2, &bytes).unwrap();
        assert_eq!(
            row.values,
            vec![ScalarValue::Int32(Some(1)), ScalarValue::Int32(Some(3))]
        );
    }

    #[test]
    fn truncated_record_is_an_error_not_a_panic() {
        let t = table(vec![(1, ColumnType::Text)]);
        let bytes = encode_row(&t, 1, 0, &[ScalarValue::Utf8(Some("hello".into()))]).unwrap();
        for cut in 0..bytes.len() {
            assert!(decode_row(&t, &bytes[..cut]).is_err());
        }
    }
}

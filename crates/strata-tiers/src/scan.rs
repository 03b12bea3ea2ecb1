//! Reading a table's hot rows: which keys a query needs (primary-key filters
//! become one key range, or point reads), visiting them, and turning rows into
//! Arrow batches. `merged.rs` runs this beside the cold files.

use crate::codec::{StoredRow, decode_row};
use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_empty_array};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::logical_expr::{Expr, Operator};
use datafusion::scalar::ScalarValue;
use std::ops::Bound;
use strata_catalog::{TableDef, now_micros};
use strata_common::{Result, StrataError, keys};
use strata_store::{CF_DATA, ReadView};

pub const BATCH_ROWS: usize = 4096;

/// Which primary keys a scan must visit.
#[derive(Debug, Clone)]
pub enum KeySelection {
    Range(Bound<ScalarValue>, Bound<ScalarValue>),
    Points(Vec<ScalarValue>),
}

impl KeySelection {
    /// Narrows the selection with the primary-key conditions among `filters`.
    /// Filters it cannot use are left to DataFusion, which re-applies all of them.
    pub fn from_filters(table: &TableDef, filters: &[Expr]) -> KeySelection {
        let pk = table.pk();
        let pk_type = pk.ty.arrow_type();
        let mut lo: Bound<ScalarValue> = Bound::Unbounded;
        let mut hi: Bound<ScalarValue> = Bound::Unbounded;
        let mut points: Option<Vec<ScalarValue>> = None;
        let is_pk = |e: &Expr| matches!(e, Expr::Column(c) if c.name == pk.name);
        // Only a literal that converts to the key's type exactly narrows the
        // keys: a rounded bound (`id < 1.5` as `id < 1`) would drop rows that
        // DataFusion's own filter, applied after, can no longer bring back.
        let lit = |e: &Expr| match e {
            Expr::Literal(v, _) if !v.is_null() => {
                let k = v.cast_to(&pk_type).ok()?;
                strata_common::exact::keeps_value(&k, v).then_some(k)
            }
            _ => None,
        };
        for f in filters.iter().flat_map(split_and) {
            match f {
                Expr::BinaryExpr(b) => {
                    let (op, v) = if is_pk(&b.left) {
                        match lit(&b.right) {
                            Some(v) => (b.op, v),
                            None => continue,
                        }
                    } else if is_pk(&b.right) {
                        match (lit(&b.left), b.op.swap()) {
                            (Some(v), Some(op)) => (op, v),
                            _ => continue,
                        }
                    } else {
                        continue;
                    };
                    match op {
                        Operator::Eq => points = Some(vec![v]),
                        Operator::Gt => lo = tighter_lo(lo, Bound::Excluded(v)),
                        Operator::GtEq => lo = tighter_lo(lo, Bound::Included(v)),
                        Operator::Lt => hi = tighter_hi(hi, Bound::Excluded(v)),
                        Operator::LtEq => hi = tighter_hi(hi, Bound::Included(v)),
                        _ => {}
                    }
                }
                Expr::Between(b) if !b.negated && is_pk(&b.expr) => {
                    if let (Some(l), Some(h)) = (lit(&b.low), lit(&b.high)) {
                        lo = tighter_lo(lo, Bound::Included(l));
                        hi = tighter_hi(hi, Bound::Included(h));
                    }
                }
                Expr::InList(l) if !l.negated && is_pk(&l.expr) => {
                    let vals: Option<Vec<_>> = l.list.iter().map(lit).collect();
                    if let Some(mut vals) = vals {
                        vals.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                        vals.dedup();
                        points = Some(vals);
                    }
                }
                _ => {}
            }
        }
        match points {
            Some(p) => KeySelection::Points(p),
            None => KeySelection::Range(lo, hi),
        }
    }
}

fn split_and(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(b) if b.op == Operator::And => {
            let mut v = split_and(&b.left);
            v.extend(split_and(&b.right));
            v
        }
        other => vec![other],
    }
}

fn bound_value(b: &Bound<ScalarValue>) -> Option<&ScalarValue> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

fn tighter_lo(a: Bound<ScalarValue>, b: Bound<ScalarValue>) -> Bound<ScalarValue> {
    match (bound_value(&a), bound_value(&b)) {
        (None, _) => b,
        (Some(x), Some(y)) if y > x || (y == x && matches!(b, Bound::Excluded(_))) => b,
        _ => a,
    }
}

fn tighter_hi(a: Bound<ScalarValue>, b: Bound<ScalarValue>) -> Bound<ScalarValue> {
    match (bound_value(&a), bound_value(&b)) {
        (None, _) => b,
        (Some(x), Some(y)) if y < x || (y == x && matches!(b, Bound::Excluded(_))) => b,
        _ => a,
    }
}

/// Byte range `[start, end)` of the keys a range selection covers.
fn key_range(
    table: &TableDef,
    user: &str,
    lo: &Bound<ScalarValue>,
    hi: &Bound<ScalarValue>,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let prefix = keys::partition_prefix(table.id, user);
    let start = match lo {
        Bound::Unbounded => prefix.clone(),
        Bound::Included(v) => keys::row_key(table.id, user, v)?,
        Bound::Excluded(v) => {
            let mut k = keys::row_key(table.id, user, v)?;
            k.push(0);
            k
        }
    };
    let end = match hi {
        Bound::Unbounded => keys::prefix_successor(&prefix),
        Bound::Excluded(v) => keys::row_key(table.id, user, v)?,
        Bound::Included(v) => {
            let mut k = keys::row_key(table.id, user, v)?;
            k.push(0);
            k
        }
    };
    Ok((start, end))
}

/// Visits the live rows of a selection in key order until `visit` says stop.
pub fn for_each_row<F>(
    store: &dyn ReadView,
    table: &TableDef,
    user: &str,
    sel: &KeySelection,
    mut visit: F,
) -> Result<()>
where
    F: FnMut(StoredRow) -> Result<bool>,
{
    let now = now_micros();
    match sel {
        KeySelection::Points(points) => {
            for p in points {
                let key = keys::row_key(table.id, user, p)?;
                if let Some(bytes) = store.get(CF_DATA, &key)? {
                    let row = decode_row(table, &bytes)?;
                    if row.is_live(table, now) && !visit(row)? {
                        break;
                    }
                }
            }
            Ok(())
        }
        KeySelection::Range(lo, hi) => {
            let (start, end) = key_range(table, user, lo, hi)?;
            if start >= end {
                return Ok(());
            }
            store.scan_range(CF_DATA, &start, &end, &mut |_, v| {
                let row = decode_row(table, v)?;
                if row.is_live(table, now) {
                    visit(row)
                } else {
                    Ok(true)
                }
            })
        }
    }
}

/// Live (non-deleted) hot rows of a table: an exact count by a scan of the
/// table's key range (the hot tier is bounded by the flush policy). Used by
/// `system.tables` and to seed the flush scheduler's counters at startup.
pub fn count_hot_rows(store: &dyn ReadView, table: &TableDef) -> Result<u64> {
    let prefix = keys::table_prefix(table.id);
    let end = keys::prefix_successor(&prefix);
    let now = now_micros();
    let mut n = 0u64;
    store.scan_range(CF_DATA, &prefix, &end, &mut |_, v| {
        if crate::codec::is_live_value(table, v, now)? {
            n += 1;
        }
        Ok(true)
    })?;
    Ok(n)
}

/// Builds a batch from rows; `projection` indexes into table columns, where
/// `columns.len()` means `_seq` and `columns.len() + 1` means `_deleted`.
pub fn rows_to_batch(
    table: &TableDef,
    schema: &SchemaRef,
    projection: &[usize],
    rows: &[StoredRow],
) -> Result<RecordBatch> {
    let ncols = table.columns.len();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(projection.len());
    for (out_idx, &i) in projection.iter().enumerate() {
        let dt = schema.field(out_idx).data_type();
        if rows.is_empty() {
            arrays.push(new_empty_array(dt));
            continue;
        }
        let array = if i < ncols {
            ScalarValue::iter_to_array(rows.iter().map(|r| r.values[i].clone()))?
        } else if i == ncols {
            ScalarValue::iter_to_array(rows.iter().map(|r| ScalarValue::Int64(Some(r.seq as i64))))?
        } else {
            ScalarValue::iter_to_array(
                rows.iter()
                    .map(|r| ScalarValue::Boolean(Some(r.is_deleted()))),
            )?
        };
        arrays.push(array);
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &opts)
        .map_err(|e| StrataError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use strata_catalog::{ColumnDef, ColumnType};
    use strata_sql::{AccessLevel, FlushPolicy, TableKind};

    fn table() -> TableDef {
        let c = |id: u32, name: &str, pk: bool| ColumnDef {
            id,
            name: name.into(),
            ty: ColumnType::BigInt,
            nullable: !pk,
            default: None,
            primary_key: pk,
            fill: None,
        };
        TableDef {
            id: 9,
            namespace: "n".into(),
            name: "t".into(),
            kind: TableKind::Shared,
            columns: vec![c(1, "id", true), c(2, "v", false)],
            flush_policy: FlushPolicy::default(),
            storage_id: "local".into(),
            use_user_storage: false,
            ttl_seconds: None,
            access_level: AccessLevel::Private,
            next_column_id: 3,
            created_at: 0,
            version: 0,
        }
    }

    #[test]
    fn equality_becomes_a_point_read() {
        let sel = KeySelection::from_filters(&table(), &[col("id").eq(lit(5i64))]);
        assert!(matches!(sel, KeySelection::Points(p) if p == vec![ScalarValue::Int64(Some(5))]));
    }

    #[test]
    fn bounds_combine_into_the_tightest_range() {
        let filters = [
            col("id").gt_eq(lit(10i64)).and(col("id").lt(lit(20i64))),
            col("id").gt(lit(12i64)),
        ];
        let KeySelection::Range(lo, hi) = KeySelection::from_filters(&table(), &filters) else {
            panic!("expected a range")
        };
        assert_eq!(lo, Bound::Excluded(ScalarValue::Int64(Some(12))));
        assert_eq!(hi, Bound::Excluded(ScalarValue::Int64(Some(20))));
    }

    #[test]
    fn other_columns_and_or_do_not_narrow() {
        let filters = [
            col("v").eq(lit(1i64)),
            col("id").eq(lit(1i64)).or(col("id").eq(lit(2i64))),
        ];
        assert!(matches!(
            KeySelection::from_filters(&table(), &filters),
            KeySelection::Range(Bound::Unbounded, Bound::Unbounded)
        ));
    }

    #[test]
    fn in_list_becomes_sorted_points() {
        let sel = KeySelection::from_filters(
            &table(),
            &[col("id").in_list(vec![lit(3i64), lit(1i64), lit(3i64)], false)],
        );
        assert!(
            matches!(sel, KeySelection::Points(p) if p == vec![ScalarValue::Int64(Some(1)), ScalarValue::Int64(Some(3))])
        );
    }
}

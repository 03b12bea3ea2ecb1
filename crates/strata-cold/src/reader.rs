//! Streams the live rows of one cold file, in the shape the query layer wants:
//! only the projected columns, mapped by column id onto the table's current
//! columns (a column added after the file was written reads as its fill value),
//! row groups pruned by footer statistics, and the deletion vector (or an
//! explicit set of positions from the primary-key index) applied as a Parquet
//! `RowSelection`, so skipped rows are never decoded.

use crate::ColdStore;
use crate::layout;
use crate::manifest::LiveFile;
use crate::prune::RowGroupStatistics;
use arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use datafusion::physical_optimizer::pruning::PruningPredicate;
use datafusion::scalar::ScalarValue;
use futures::stream::{BoxStream, StreamExt};
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
// parquet 59.3 deprecates ParquetObjectReader in favour of hand-written readers;
// it is still the reader DataFusion uses and does what Strata needs.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{PARQUET_FIELD_ID_META_KEY, ParquetRecordBatchStreamBuilder, ProjectionMask};
use std::sync::Arc;
use strata_catalog::{SEQ_COLUMN, TableDef};
use strata_common::{Result, StrataError};

/// Rows per batch a file scan produces.
pub const BATCH_ROWS: usize = 8192;

/// One output column of a file scan.
#[derive(Debug, Clone)]
pub enum OutColumn {
    /// A table column by id; `fill` is what rows read when the file predates it.
    Column { column_id: u32, fill: ScalarValue },
    /// The row's commit sequence (`_seq`).
    Seq,
    /// `_deleted`: always false, deletes never reach Parquet.
    Deleted,
    /// The file id (for compaction).
    FileId,
    /// The row's position in the file (for compaction).
    Position,
}

#[derive(Debug, Clone)]
pub struct ScanSpec {
    pub schema: SchemaRef,
    pub columns: Vec<OutColumn>,
    pub predicate: Option<Arc<PruningPredicate>>,
}

/// Half-open runs `[from, to)` of file positions.
type Runs = Vec<(u64, u64)>;

/// The live rows to read, as runs of positions grouped into row groups: a
/// whole row group with no deleted row is one run, so a plain scan costs the
/// Parquet reader nothing per row.
fn selected_runs(
    file: &LiveFile,
    rg_rows: &[(usize, u64, u64)],
    wanted: Option<&[u32]>,
) -> Vec<(usize, Runs)> {
    let deleted = &file.deleted;
    let visible = file.visible_rows();
    let mut out = vec![];
    for &(rg, start, len) in rg_rows {
        let end = (start + len).min(visible);
        let mut runs: Runs = vec![];
        match wanted {
            Some(w) => {
                for p in w.iter().map(|&p| p as u64) {
                    let live = p >= start
                        && p < end
                        && deleted.binary_search(&(p as u32)).is_err()
                        && runs.last().is_none_or(|r| r.1 <= p);
                    match runs.last_mut() {
                        _ if !live => {}
                        Some(r) if r.1 == p => r.1 = p + 1,
                        _ => runs.push((p, p + 1)),
                    }
                }
            }
            None => {
                // The deleted positions inside the group split it into runs.
                let first = deleted.partition_point(|&d| (d as u64) < start);
                let mut next = start;
                for d in deleted[first..].iter().map(|&d| d as u64) {
                    if d >= end {
                        break;
                    }
                    if d > next {
                        runs.push((next, d));
                    }
                    next = d + 1;
                }
                if next < end {
                    runs.push((next, end));
                }
            }
        }
        if !runs.is_empty() {
            out.push((rg, runs));
        }
    }
    out
}

/// A selection over the concatenated rows of the chosen row groups.
fn selection(groups: &[(usize, Runs)], rg_rows: &[(usize, u64, u64)]) -> RowSelection {
    let mut selectors = vec![];
    for (rg, runs) in groups {
        let Some(&(_, start, len)) = rg_rows.iter().find(|(i, _, _)| i == rg) else {
            continue;
        };
        let mut next = start;
        for &(from, to) in runs {
            if from > next {
                selectors.push(RowSelector::skip((from - next) as usize));
            }
            selectors.push(RowSelector::select((to - from) as usize));
            next = to;
        }
        if start + len > next {
            selectors.push(RowSelector::skip((start + len - next) as usize));
        }
    }
    RowSelection::from(selectors)
}

/// Opens a stream over one file. `positions`, when given, restricts the scan to
/// those rows (sorted ascending) before the deletion vector applies.
pub async fn scan_file(
    cold: &ColdStore,
    table: &TableDef,
    file: &LiveFile,
    positions: Option<&[u32]>,
    spec: &ScanSpec,
) -> Result<BoxStream<'static, Result<RecordBatch>>> {
    let footer = cold.footer(&file.meta).await?;
    let metadata = footer.metadata().clone();
    let file_schema = footer.schema().clone();
    let mut rg_rows = vec![];
    let mut start = 0u64;
    for (i, rg) in metadata.row_groups().iter().enumerate() {
        let n = rg.num_rows().max(0) as u64;
        rg_rows.push((i, start, n));
        start += n;
    }
    if let Some(pred) = &spec.predicate {
        let ids: Vec<usize> = rg_rows.iter().map(|r| r.0).collect();
        let stats = RowGroupStatistics {
            table,
            file: &file.meta,
            file_schema: &file_schema,
            metadata: &metadata,
            row_groups: &ids,
        };
        if let Ok(keep) = pred.prune(&stats) {
            let mut k = keep.into_iter();
            rg_rows.retain(|_| k.next().unwrap_or(true));
        }
    }
    let groups = selected_runs(file, &rg_rows, positions);
    if groups.is_empty() {
        return Ok(futures::stream::empty().boxed());
    }
    let row_groups: Vec<usize> = groups.iter().map(|g| g.0).collect();
    let rg_rows: Vec<(usize, u64, u64)> = rg_rows
        .into_iter()
        .filter(|r| row_groups.contains(&r.0))
        .collect();
    let sel = selection(&groups, &rg_rows);
    let need_positions = spec
        .columns
        .iter()
        .any(|c| matches!(c, OutColumn::Position));
    let all_positions: Vec<u32> = if need_positions {
        groups
            .iter()
            .flat_map(|g| g.1.iter().flat_map(|&(from, to)| from as u32..to as u32))
            .collect()
    } else {
        vec![]
    };

    // Which file columns to read; the first one is read even when nothing is
    // projected, so batches carry their row counts.
    let field_of = |id: u32| {
        let id = id.to_string();
        file_schema
            .fields()
            .iter()
            .position(|f| f.metadata().get(PARQUET_FIELD_ID_META_KEY) == Some(&id))
    };
    let seq_idx = file_schema
        .fields()
        .iter()
        .position(|f| f.name() == SEQ_COLUMN);
    let mut roots: Vec<usize> = vec![];
    let sources: Vec<Option<usize>> = spec
        .columns
        .iter()
        .map(|c| match c {
            OutColumn::Column { column_id, .. } => field_of(*column_id),
            OutColumn::Seq => seq_idx,
            _ => None,
        })
        .collect();
    roots.extend(sources.iter().flatten().copied());
    if roots.is_empty() {
        roots.push(0);
    }
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(metadata.file_metadata().schema_descr(), roots.clone());
    // The recorded path is escaped text: parsed, never escaped a second time.
    let object = layout::from_stored(&file.meta.path)?;
    #[allow(deprecated)]
    let reader = ParquetObjectReader::new(cold.object_store().clone(), object)
        .with_file_size(file.meta.size_bytes);
    let redactor = cold.redactor().clone();
    let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, footer)
        .with_projection(mask)
        .with_row_groups(row_groups)
        .with_row_selection(sel)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| redactor.error("cannot read", &file.meta.path, e))?;

    let schema = spec.schema.clone();
    let columns = spec.columns.clone();
    let file_id = file.meta.file_id;
    let path = file.meta.path.clone();
    let mut offset = 0usize;
    let out = stream.map(move |batch| {
        let batch = batch.map_err(|e| redactor.error("cannot read", &path, e))?;
        let n = batch.num_rows();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for (i, c) in columns.iter().enumerate() {
            let want = schema.field(i).data_type();
            let array: ArrayRef = match (c, sources[i]) {
                (OutColumn::Column { .. } | OutColumn::Seq, Some(root)) => {
                    let at = roots
                        .binary_search(&root)
                        .map_err(|_| StrataError::internal("projection"))?;
                    let a = batch.column(at).clone();
                    if a.data_type() == want {
                        a
                    } else {
                        cast(&a, want).map_err(|e| {
                            StrataError::storage("cannot convert a stored column", e)
                        })?
                    }
                }
                (OutColumn::Column { fill, .. }, None) => fill.to_array_of_size(n)?,
                (OutColumn::Seq, None) => Arc::new(arrow::array::Int64Array::from(vec![0i64; n])),
                (OutColumn::Deleted, _) => Arc::new(BooleanArray::from(vec![false; n])),
                (OutColumn::FileId, _) => Arc::new(UInt64Array::from(vec![file_id; n])),
                (OutColumn::Position, _) => Arc::new(UInt32Array::from(
                    all_positions
                        .get(offset..offset + n)
                        .map(|s| s.to_vec())
                        .unwrap_or_default(),
                )),
            };
            arrays.push(array);
        }
        offset += n;
        let opts = RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(schema.clone(), arrays, &opts)
            .map_err(|e| StrataError::internal(e.to_string()))
    });
    Ok(out.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rows: u64, deleted: Vec<u32>) -> LiveFile {
        LiveFile {
            meta: crate::FileMeta {
                file_id: 1,
                user: String::new(),
                storage: "local".into(),
                path: "x".into(),
                rows,
                size_bytes: 0,
                row_groups: 1,
                seq_min: 0,
                seq_max: 0,
                created_at: 0,
                columns: vec![],
                visible_rows: None,
            },
            deleted,
        }
    }

    #[test]
    fn deletion_vector_becomes_a_row_selection() {
        let f = file(10, vec![1, 2, 7]);
        let rgs = [(0usize, 0u64, 6u64), (1, 6, 4)];
        let groups = selected_runs(&f, &rgs, None);
        assert_eq!(
            groups,
            vec![(0, vec![(0, 1), (3, 6)]), (1, vec![(6, 7), (8, 10)])]
        );
        let sel = selection(&groups, &rgs);
        assert_eq!(sel.row_count(), 7);
        let wanted = selected_runs(&f, &rgs, Some(&[2, 8, 9]));
        assert_eq!(wanted, vec![(1, vec![(8, 10)])]);
        // Repeated positions are read once.
        let wanted = selected_runs(&f, &rgs, Some(&[3, 3, 4]));
        assert_eq!(wanted, vec![(0, vec![(3, 5)])]);
    }

    #[test]
    fn a_whole_row_group_is_one_run_and_the_uncommitted_tail_is_never_read() {
        let f = file(10, vec![]);
        let rgs = [(0usize, 0u64, 6u64), (1, 6, 4)];
        assert_eq!(
            selected_runs(&f, &rgs, None),
            vec![(0, vec![(0, 6)]), (1, vec![(6, 10)])]
        );
        let mut partial = file(10, vec![2]);
        partial.meta.visible_rows = Some(7);
        assert_eq!(
            selected_runs(&partial, &rgs, None),
            vec![(0, vec![(0, 2), (3, 6)]), (1, vec![(6, 7)])]
        );
        assert_eq!(partial.live_rows(), 6);
        assert_eq!(selected_runs(&partial, &rgs, Some(&[8])), vec![]);
    }
}

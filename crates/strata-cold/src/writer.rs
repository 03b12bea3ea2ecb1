//! Writes one Parquet file of a partition. Rows arrive in primary-key order (the
//! hot tier iterates keys in order), so the file is sorted without sorting. The
//! writer buffers at most one row group; everything else streams to the object
//! store as multipart upload parts.

use crate::ColdStore;
use crate::layout;
use crate::manifest::{ColumnStats, FileMeta};
use crate::storage::Redactor;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::functions_aggregate::min_max::{MaxAccumulator, MinAccumulator};
use datafusion::logical_expr::Accumulator;
use datafusion::scalar::ScalarValue;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::HashMap;
use std::sync::Arc;
use strata_catalog::{SEQ_COLUMN, TableDef};
use strata_common::Result;

/// Rows per row group: the unit of statistics pruning and of writer memory.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// Rows per data page at most: what a point read decodes of each column.
pub const PAGE_ROWS: usize = 4096;

/// The most a column's dictionary page may hold before the column is written plain.
pub const DICTIONARY_BYTES: usize = 32 * 1024;

/// The schema of a cold file: the table's columns (each tagged with its stable
/// column id as the Parquet field id) followed by `_seq`.
pub fn file_schema(table: &TableDef) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .arrow_schema(false)
        .fields()
        .iter()
        .zip(&table.columns)
        .map(|(f, c)| {
            let mut md: HashMap<String, String> = f.metadata().clone();
            md.insert(PARQUET_FIELD_ID_META_KEY.into(), c.id.to_string());
            f.as_ref().clone().with_metadata(md)
        })
        .collect();
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
}

fn has_order(dt: &DataType) -> bool {
    !matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Binary
            | DataType::LargeBinary
            // No Strata type is half precision; NaN counting does not cover it.
            | DataType::Float16
    )
}

/// Whether statistics of the type need NaN handled (see [`ColumnStats::nan_count`]).
pub(crate) fn is_float(dt: &DataType) -> bool {
    matches!(dt, DataType::Float32 | DataType::Float64)
}

/// NaN values (of either sign) in a float array; 0 for other types.
fn count_nan(col: &ArrayRef) -> u64 {
    let n = match col.data_type() {
        DataType::Float32 => col
            .as_primitive::<Float32Type>()
            .iter()
            .flatten()
            .filter(|v| v.is_nan())
            .count(),
        DataType::Float64 => col
            .as_primitive::<Float64Type>()
            .iter()
            .flatten()
            .filter(|v| v.is_nan())
            .count(),
        _ => 0,
    };
    n as u64
}

/// Queries compare floats by IEEE total order, where -0.0 < +0.0; a zero bound
/// is widened to cover both zeros so it holds whichever zero the accumulator
/// kept (the Parquet spec does the same for its statistics).
pub(crate) fn widen_zero(v: ScalarValue, upper: bool) -> ScalarValue {
    // `x == 0.0` holds for both zeros.
    let zero = if upper { 0.0 } else { -0.0 };
    match v {
        ScalarValue::Float64(Some(x)) => {
            ScalarValue::Float64(Some(if x == 0.0 { zero } else { x }))
        }
        ScalarValue::Float32(Some(x)) => {
            ScalarValue::Float32(Some(if x == 0.0 { zero as f32 } else { x }))
        }
        other => other,
    }
}

struct ColumnTracker {
    stats: ColumnStats,
    min: Option<MinAccumulator>,
    max: Option<MaxAccumulator>,
}

pub struct FileWriter {
    inner: AsyncArrowWriter<BufWriter>,
    path: Path,
    file_id: u64,
    user: String,
    storage: String,
    rows: u64,
    seq_min: u64,
    seq_max: u64,
    columns: Vec<ColumnTracker>,
    redactor: Redactor,
}

impl FileWriter {
    pub fn create(cold: &ColdStore, table: &TableDef, user: &str, file_id: u64) -> Result<Self> {
        Self::create_with_row_groups(cold, table, user, file_id, ROW_GROUP_ROWS)
    }

    /// [`FileWriter::create`] with another row-group size (tests use small ones
    /// to get many row groups out of few rows).
    pub(crate) fn create_with_row_groups(
        cold: &ColdStore,
        table: &TableDef,
        user: &str,
        file_id: u64,
        row_group_rows: usize,
    ) -> Result<Self> {
        let schema = file_schema(table);
        let pk = ColumnPath::from(table.pk().name.as_str());
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            // Small pages: a point read decodes one page per column, not a
            // megabyte of values (see `storage::footer`: the page index).
            .set_data_page_row_count_limit(PAGE_ROWS)
            // A point read decodes the column's dictionary page too: keep it
            // small, so columns of mostly distinct values (keys, text) fall
            // back to plain pages early while low-cardinality ones keep
            // their dictionary.
            .set_dictionary_page_size_limit(DICTIONARY_BYTES)
            .set_column_bloom_filter_enabled(pk.clone(), true)
            .set_column_bloom_filter_max_ndv(pk, row_group_rows as u64)
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: table.pk_index() as i32,
                descending: false,
                nulls_first: false,
            }]))
            .build();
        let path = cold.file_path(table, user, file_id);
        let sink = BufWriter::new(cold.object_store().clone(), path.clone());
        let redactor = cold.redactor().clone();
        let inner = AsyncArrowWriter::try_new(sink, schema.clone(), Some(props))
            .map_err(|e| redactor.error("cannot start", path.as_ref(), e))?;
        let mut columns = vec![];
        for (c, f) in table.columns.iter().zip(schema.fields()) {
            let dt = f.data_type();
            let ordered = has_order(dt);
            columns.push(ColumnTracker {
                stats: ColumnStats {
                    column_id: c.id,
                    name: c.name.clone(),
                    min: None,
                    max: None,
                    null_count: 0,
                    nan_count: is_float(dt).then_some(0),
                },
                min: if ordered {
                    MinAccumulator::try_new(dt).ok()
                } else {
                    None
                },
                max: if ordered {
                    MaxAccumulator::try_new(dt).ok()
                } else {
                    None
                },
            });
        }
        Ok(FileWriter {
            inner,
            path,
            file_id,
            user: user.into(),
            storage: cold.id().to_string(),
            rows: 0,
            seq_min: u64::MAX,
            seq_max: 0,
            columns,
            redactor,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The id of the storage the file is written to.
    pub fn storage(&self) -> &str {
        &self.storage
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends a batch in [`file_schema`] order.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        for (i, t) in self.columns.iter_mut().enumerate() {
            let col = batch.column(i);
            t.stats.null_count += col.null_count() as u64;
            if let Some(n) = t.stats.nan_count.as_mut() {
                *n += count_nan(col);
            }
            if let Some(m) = t.min.as_mut() {
                m.update_batch(std::slice::from_ref(col))?;
            }
            if let Some(m) = t.max.as_mut() {
                m.update_batch(std::slice::from_ref(col))?;
            }
        }
        if let Some(seq) = batch
            .columns()
            .last()
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
        {
            for v in seq.iter().flatten() {
                self.seq_min = self.seq_min.min(v as u64);
                self.seq_max = self.seq_max.max(v as u64);
            }
        }
        self.rows += batch.num_rows() as u64;
        self.inner
            .write(batch)
            .await
            .map_err(|e| self.redactor.error("cannot write", self.path.as_ref(), e))
    }

    /// Abandons a file whose writing failed: an upload under way (an S3
    /// multipart upload of a large file) is aborted, so its parts do not
    /// linger invisible in the bucket. Only for a writer never finished.
    pub async fn abort(self) {
        use futures::FutureExt;
        let path = self.path.clone();
        let mut sink = self.inner.into_inner();
        match std::panic::AssertUnwindSafe(sink.abort())
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(%path, error = %e, "could not abort an upload"),
            Err(_) => tracing::warn!(%path, "could not abort an upload (it was already closing)"),
        }
    }

    /// Completes the upload and returns the manifest entry of the file.
    pub async fn finish(mut self, created_at: i64) -> Result<FileMeta> {
        let meta = self
            .inner
            .finish()
            .await
            .map_err(|e| self.redactor.error("cannot finish", self.path.as_ref(), e))?;
        let size_bytes = self.inner.bytes_written() as u64;
        let columns = self
            .columns
            .into_iter()
            .map(|mut t| {
                // Min/max accumulators order NaN above +Inf, Parquet leaves it
                // out: neither bound is one queries can rely on, so a float
                // column holding NaN gets none.
                if t.stats.nan_count.unwrap_or(0) == 0 {
                    t.stats.min = t
                        .min
                        .as_mut()
                        .and_then(|m| m.evaluate().ok())
                        .and_then(|v| text_of(widen_zero(v, false)));
                    t.stats.max = t
                        .max
                        .as_mut()
                        .and_then(|m| m.evaluate().ok())
                        .and_then(|v| text_of(widen_zero(v, true)));
                }
                t.stats
            })
            .collect();
        Ok(FileMeta {
            file_id: self.file_id,
            user: self.user,
            storage: self.storage,
            path: layout::to_stored(&self.path),
            rows: self.rows,
            size_bytes,
            row_groups: meta.num_row_groups(),
            seq_min: if self.rows == 0 { 0 } else { self.seq_min },
            seq_max: self.seq_max,
            created_at,
            columns,
            visible_rows: None,
        })
    }
}

/// The text form of a statistic; it parses back to the column type exactly.
/// Floats use Rust's shortest round-trip form, which keeps the sign of zero
/// and spells infinities (`-0.0`, `inf`); other types Arrow's cast to text.
pub fn text_of(v: ScalarValue) -> Option<String> {
    match v {
        _ if v.is_null() => None,
        ScalarValue::Float64(Some(x)) => Some(format!("{x:?}")),
        ScalarValue::Float32(Some(x)) => Some(format!("{x:?}")),
        other => match other.cast_to(&DataType::Utf8).ok()? {
            ScalarValue::Utf8(s) => s,
            _ => None,
        },
    }
}

/// Parses a statistic written by [`text_of`] (or, for floats, by the Arrow
/// cast older files used).
pub fn value_of(text: &str, dt: &DataType) -> Option<ScalarValue> {
    let exact = match dt {
        DataType::Float64 => text
            .parse::<f64>()
            .ok()
            .map(|x| ScalarValue::Float64(Some(x))),
        DataType::Float32 => text
            .parse::<f32>()
            .ok()
            .map(|x| ScalarValue::Float32(Some(x))),
        _ => None,
    };
    exact.or_else(|| ScalarValue::Utf8(Some(text.to_string())).cast_to(dt).ok())
}

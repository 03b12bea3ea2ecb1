//! Statistics for DataFusion's `PruningPredicate`, at two levels: the files of
//! a partition (from the manifest, before any object is touched) and the row
//! groups of one file (from its Parquet footer). Filters name the table's
//! *current* columns; both adapters resolve them to the stored column by id,
//! so a dropped-and-re-added column never prunes with stale statistics.
//!
//! Pruning must never drop a row the filter would keep, so a statistic is
//! given only where it bounds every value in the order the filter compares by
//! (IEEE total order for floats: -NaN < -Inf < -0.0 < +0.0 < +Inf < +NaN).
//! Anything else is reported as unknown (null), which keeps the container:
//! float bounds from files that may hold NaN (Parquet statistics leave NaN
//! out), NaN bounds from older manifests, and bounds that do not parse. Zero
//! bounds are widened to cover both zeros.

use crate::manifest::{FileMeta, LiveFile};
use crate::writer::{is_float, value_of, widen_zero};
use arrow::array::{ArrayRef, AsArray, BooleanArray, UInt64Array};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Schema};
use datafusion::common::Column;
use datafusion::common::pruning::PruningStatistics;
use datafusion::scalar::ScalarValue;
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::file::metadata::ParquetMetaData;
use std::collections::HashSet;
use strata_catalog::{SEQ_COLUMN, TableDef};

/// Manifest-level statistics: one container per file.
pub struct FileStatistics<'a> {
    pub table: &'a TableDef,
    pub files: &'a [LiveFile],
}

impl FileStatistics<'_> {
    fn values(&self, column: &Column, max: bool) -> Option<ArrayRef> {
        let col = self.table.columns.iter().find(|c| c.name == column.name)?;
        let dt = col.ty.arrow_type();
        let mut out = Vec::with_capacity(self.files.len());
        let unknown = ScalarValue::try_from(&dt).ok()?;
        for f in self.files {
            let stats = f.meta.columns.iter().find(|s| s.column_id == col.id);
            let text = stats.and_then(|s| if max { s.max.as_ref() } else { s.min.as_ref() });
            out.push(
                text.and_then(|t| value_of(t, &dt))
                    .and_then(|v| usable_bound(v, max))
                    .unwrap_or_else(|| unknown.clone()),
            );
        }
        ScalarValue::iter_to_array(out).ok()
    }
}

/// A manifest bound as pruning may use it: NaN (written by older versions,
/// whose accumulators put NaN at the ends of the order) is no bound at all.
fn usable_bound(v: ScalarValue, max: bool) -> Option<ScalarValue> {
    let nan = match &v {
        ScalarValue::Float64(Some(x)) => x.is_nan(),
        ScalarValue::Float32(Some(x)) => x.is_nan(),
        _ => false,
    };
    (!nan).then(|| widen_zero(v, max))
}

impl PruningStatistics for FileStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, false)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.values(column, true)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let col = self.table.columns.iter().find(|c| c.name == column.name)?;
        let counts: Option<Vec<u64>> = self
            .files
            .iter()
            .map(|f| {
                f.meta
                    .columns
                    .iter()
                    .find(|s| s.column_id == col.id)
                    .map(|s| s.null_count)
            })
            .collect();
        Some(std::sync::Arc::new(UInt64Array::from(counts?)))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(std::sync::Arc::new(UInt64Array::from_iter_values(
            self.files.iter().map(|f| f.meta.rows),
        )))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// The name a current column has in a file's schema, matched by column id.
pub fn stored_name<'s>(table: &TableDef, file_schema: &'s Schema, name: &str) -> Option<&'s str> {
    if name == SEQ_COLUMN {
        return file_schema
            .fields()
            .iter()
            .find(|f| f.name() == SEQ_COLUMN)
            .map(|f| f.name().as_str());
    }
    let col = table.columns.iter().find(|c| c.name == name)?;
    let id = col.id.to_string();
    file_schema
        .fields()
        .iter()
        .find(|f| f.metadata().get(PARQUET_FIELD_ID_META_KEY) == Some(&id))
        .map(|f| f.name().as_str())
}

/// Footer-level statistics: one container per selected row group.
pub struct RowGroupStatistics<'a> {
    pub table: &'a TableDef,
    /// The file's manifest entry: says whether its float columns hold NaN.
    pub file: &'a FileMeta,
    pub file_schema: &'a Schema,
    pub metadata: &'a ParquetMetaData,
    pub row_groups: &'a [usize],
}

impl RowGroupStatistics<'_> {
    /// Whether the file's manifest entry says the column holds no NaN (files
    /// written before NaN was counted say nothing, so they do not qualify).
    fn nan_free(&self, column: &Column) -> bool {
        let Some(col) = self.table.columns.iter().find(|c| c.name == column.name) else {
            return false;
        };
        self.file
            .columns
            .iter()
            .any(|s| s.column_id == col.id && s.nan_count == Some(0))
    }

    /// Row-group minima or maxima, or None where they may not bound the values.
    fn bounds(&self, column: &Column, max: bool) -> Option<ArrayRef> {
        let conv = self.converter(column)?;
        let groups = self.row_groups.iter().map(|&i| self.metadata.row_group(i));
        let values = if max {
            conv.row_group_maxes(groups)
        } else {
            conv.row_group_mins(groups)
        }
        .ok()?;
        let dt = values.data_type().clone();
        if !is_float(&dt) {
            // Half floats have no NaN count; nothing else in Parquet drops values.
            return (dt != DataType::Float16).then_some(values);
        }
        if !self.nan_free(column) {
            return None;
        }
        Some(widen_zeros(&values, max))
    }
    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'_>> {
        let name = stored_name(self.table, self.file_schema, &column.name)?;
        let field = self.file_schema.field_with_name(name).ok()?;
        if matches!(
            field.data_type(),
            DataType::List(_) | DataType::LargeList(_)
        ) {
            return None;
        }
        StatisticsConverter::try_new(
            name,
            self.file_schema,
            self.metadata.file_metadata().schema_descr(),
        )
        .ok()
    }
}

impl PruningStatistics for RowGroupStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, false)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, true)
    }

    fn num_containers(&self) -> usize {
        self.row_groups.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        let conv = self.converter(column)?;
        conv.row_group_null_counts(self.row_groups.iter().map(|&i| self.metadata.row_group(i)))
            .ok()
            .map(|a| std::sync::Arc::new(a) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(std::sync::Arc::new(UInt64Array::from_iter_values(
            self.row_groups
                .iter()
                .map(|&i| self.metadata.row_group(i).num_rows() as u64),
        )))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

/// [`widen_zero`] over a whole array of float bounds (nulls stay null).
fn widen_zeros(values: &ArrayRef, upper: bool) -> ArrayRef {
    match values.data_type() {
        DataType::Float64 => {
            let zero = if upper { 0.0 } else { -0.0 };
            let a = values.as_primitive::<Float64Type>();
            std::sync::Arc::new(a.unary::<_, Float64Type>(|v| if v == 0.0 { zero } else { v }))
        }
        DataType::Float32 => {
            let zero = if upper { 0.0 } else { -0.0 };
            let a = values.as_primitive::<Float32Type>();
            std::sync::Arc::new(a.unary::<_, Float32Type>(|v| if v == 0.0 { zero } else { v }))
        }
        _ => values.clone(),
    }
}

//! Statistics for DataFusion's `PruningPredicate`, at two levels: the files of
//! a partition (from the manifest, before any object is touched) and the row
//! groups of one file (from its Parquet footer). Filters name the table's
//! *current* columns; both adapters resolve them to the stored column by id,
//! so a dropped-and-re-added column never prunes with stale statistics.

use crate::manifest::LiveFile;
use crate::writer::value_of;
use arrow::array::{ArrayRef, BooleanArray, UInt64Array};
use arrow::datatypes::{DataType, Schema};
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
        for f in self.files {
            let stats = f.meta.columns.iter().find(|s| s.column_id == col.id);
            let text = stats.and_then(|s| if max { s.max.as_ref() } else { s.min.as_ref() });
            out.push(match text {
                Some(t) => value_of(t, &dt)?,
                None => ScalarValue::try_from(&dt).ok()?,
            });
        }
        ScalarValue::iter_to_array(out).ok()
    }
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
    pub file_schema: &'a Schema,
    pub metadata: &'a ParquetMetaData,
    pub row_groups: &'a [usize],
}

impl RowGroupStatistics<'_> {
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
        let conv = self.converter(column)?;
        conv.row_group_mins(self.row_groups.iter().map(|&i| self.metadata.row_group(i)))
            .ok()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        let conv = self.converter(column)?;
        conv.row_group_maxes(self.row_groups.iter().map(|&i| self.metadata.row_group(i)))
            .ok()
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

//! `system.stats`: the server's metrics (see `strata_common::stats` and
//! docs/operations.md), one row per sample, the same names and values the
//! admin port's `/metrics` shows. Readable by every user, like every
//! `system.*` table: it holds counts, never data, names of users or secrets.

use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result as DfResult;
use std::sync::Arc;

/// The rows of `system.stats`: metric_name (with its labels, e.g.
/// `object_store_requests_total{storage="local",op="get"}`) and metric_value,
/// sorted by name.
pub(crate) fn batch() -> DfResult<RecordBatch> {
    let samples = strata_common::stats::snapshot();
    let schema = Arc::new(Schema::new(vec![
        Field::new("metric_name", DataType::Utf8, false),
        Field::new("metric_value", DataType::Float64, false),
    ]));
    let names: StringArray = samples.iter().map(|(n, _)| Some(n.as_str())).collect();
    let values: Float64Array = samples.iter().map(|(_, v)| Some(*v)).collect();
    Ok(RecordBatch::try_new(
        schema,
        vec![Arc::new(names), Arc::new(values)],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_sample() {
        strata_common::stats::footer_cache(true);
        let b = batch().unwrap();
        assert_eq!(b.num_columns(), 2);
        assert!(b.num_rows() >= 15, "{} rows", b.num_rows());
        let names = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(names.iter().any(|n| n == Some("footer_cache_hits_total")));
    }
}

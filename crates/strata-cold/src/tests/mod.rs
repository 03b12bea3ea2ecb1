//! Property tests of the crate's two invariants: every name round-trips
//! through every object path ([`names`]), and pruning never drops a row the
//! filter would keep ([`pruning`]).

mod names;
mod pruning;

use crate::ColdStore;
use crate::manifest::LiveFile;
use crate::reader::{OutColumn, ScanSpec, scan_file};
use arrow::array::RecordBatch;
use datafusion::physical_optimizer::pruning::PruningPredicate;
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use proptest::test_runner::TestCaseError;
use std::future::Future;
use std::sync::Arc;
use strata_catalog::TableDef;

/// A table definition, built from its JSON form so fields other crates add
/// later (with serde defaults) need no change here. `columns` are (name, type
/// as serialized, e.g. "BigInt"); the first is the primary key.
pub(crate) fn table(namespace: &str, name: &str, kind: &str, columns: &[(&str, &str)]) -> TableDef {
    let cols: Vec<serde_json::Value> = columns
        .iter()
        .enumerate()
        .map(|(i, (n, ty))| {
            serde_json::json!({
                "id": i + 1, "name": n, "ty": ty, "nullable": i > 0,
                "default": null, "primary_key": i == 0,
            })
        })
        .collect();
    let def = serde_json::json!({
        "id": 7, "namespace": namespace, "name": name, "kind": kind, "columns": cols,
        "flush_policy": {"rows": null, "interval_secs": null}, "storage_id": "local",
        "use_user_storage": false, "ttl_seconds": null, "access_level": "Private",
        "next_column_id": columns.len() + 1, "created_at": 0,
    });
    match serde_json::from_value(def) {
        Ok(t) => t,
        Err(e) => panic!("test table definition: {e}"),
    }
}

/// Runs one async test case on a fresh single-threaded runtime.
pub(crate) fn run<F>(case: F) -> Result<(), TestCaseError>
where
    F: Future<Output = Result<(), String>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(case).map_err(TestCaseError::fail)
}

/// Every live row of a file, in the table's current columns.
pub(crate) async fn read_all(
    cold: &ColdStore,
    table: &TableDef,
    file: &LiveFile,
    predicate: Option<Arc<PruningPredicate>>,
) -> Result<Vec<RecordBatch>, String> {
    let columns = table
        .columns
        .iter()
        .map(|c| {
            let fill = ScalarValue::try_from(&c.ty.arrow_type()).map_err(|e| e.to_string())?;
            Ok(OutColumn::Column {
                column_id: c.id,
                fill,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let spec = ScanSpec {
        schema: table.arrow_schema(false),
        columns,
        predicate,
    };
    let stream = scan_file(cold, table, file, None, &spec)
        .await
        .map_err(|e| e.to_string())?;
    stream.try_collect().await.map_err(|e| e.to_string())
}

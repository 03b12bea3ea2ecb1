//! The scan a statement inside a transaction block sees: the committed rows of
//! a partition with the block's own staged writes laid over them. A committed
//! row whose key the block staged is replaced by the staged version (or hidden,
//! for a staged delete); staged rows are appended after the committed ones.
//!
//! Only partitions the block wrote to pay for this; every other scan is the
//! plain `MergedScanExec`.

use crate::codec::StoredRow;
use crate::scan::rows_to_batch;
use crate::txn::{Staged, StagedRows};
use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
};
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::keys;

#[derive(Debug)]
pub struct OverlayExec {
    /// The committed rows, with every column (so the key can be computed).
    input: Arc<dyn ExecutionPlan>,
    table: Arc<TableDef>,
    partition: String,
    staged: StagedRows,
    projection: Vec<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl OverlayExec {
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        table: Arc<TableDef>,
        partition: String,
        staged: StagedRows,
        projection: Vec<usize>,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        OverlayExec {
            input,
            table,
            partition,
            staged,
            projection,
            schema,
            properties,
        }
    }
}

fn external(e: strata_common::StrataError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Drops the rows of a full-width batch whose key the block staged, then
/// projects what is left.
fn mask_committed(
    batch: &RecordBatch,
    table: &TableDef,
    partition: &str,
    staged: &BTreeMap<Vec<u8>, Staged>,
    projection: &[usize],
) -> DfResult<RecordBatch> {
    let pk = batch.column(table.pk_index());
    let mut keep = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let v = ScalarValue::try_from_array(pk, r)?;
        let key = keys::row_key(table.id, partition, &v).map_err(external)?;
        keep.push(!staged.contains_key(&key));
    }
    let kept = filter_record_batch(batch, &BooleanArray::from(keep))?;
    Ok(kept.project(projection)?)
}

impl DisplayAs for OverlayExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "OverlayExec: table={}, staged={}",
            self.table.qualified_name(),
            self.staged.len()
        )
    }
}

impl ExecutionPlan for OverlayExec {
    fn name(&self) -> &str {
        "OverlayExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// The overlay is one output partition that must see every committed
    /// row: the optimizer coalesces a multi-partition input below it and
    /// must not split it again (a round-robin input would hand `execute(0)`
    /// only half of the committed rows).
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("OverlayExec needs its input".into()))?;
        Ok(Arc::new(OverlayExec::new(
            input,
            self.table.clone(),
            self.partition.clone(),
            self.staged.clone(),
            self.projection.clone(),
            self.schema.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "OverlayExec has one partition, asked for {partition}"
            )));
        }
        // Whether or not the optimizer ran, read every committed partition.
        let input = if self.input.properties().partitioning.partition_count() > 1 {
            CoalescePartitionsExec::new(self.input.clone()).execute(0, context)?
        } else {
            self.input.execute(0, context)?
        };
        let (table, part, staged, projection) = (
            self.table.clone(),
            self.partition.clone(),
            self.staged.clone(),
            self.projection.clone(),
        );
        let committed = input
            .map(move |b| b.and_then(|b| mask_committed(&b, &table, &part, &staged, &projection)));
        let rows: Vec<StoredRow> = self
            .staged
            .values()
            .flatten()
            .map(|values| StoredRow {
                seq: 0,
                flags: 0,
                written_at: None,
                values: values.clone(),
            })
            .collect();
        let own =
            rows_to_batch(&self.table, &self.schema, &self.projection, &rows).map_err(external);
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            committed.chain(futures::stream::once(async move { own })),
        )))
    }
}

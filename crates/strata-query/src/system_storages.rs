//! `system.storages` and `SHOW STORAGES`: every storage with its layout and
//! what uses it. Never credentials: only whether the storage has its own.

use crate::tiers::Tiers;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::Arc;
use strata_common::{Result, StrataError};

pub fn schema() -> SchemaRef {
    let text = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        text("storage_id", false),
        text("storage_type", false),
        text("uri", false),
        text("region", true),
        text("endpoint", true),
        text("shared_tables_template", false),
        text("user_tables_template", false),
        text("sharding", false),
        text("description", false),
        Field::new("has_credentials", DataType::Boolean, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from(strata_catalog::UTC))),
            false,
        ),
        Field::new("table_count", DataType::Int64, false),
        Field::new("user_count", DataType::Int64, false),
        Field::new("file_count", DataType::Int64, false),
    ]))
}

pub fn batch(tiers: &Tiers) -> Result<RecordBatch> {
    let defs = tiers.catalog.storages();
    let text = |f: &dyn Fn(&strata_catalog::StorageDef) -> String| -> ArrayRef {
        Arc::new(StringArray::from(
            defs.iter().map(|d| f(d)).collect::<Vec<_>>(),
        ))
    };
    let opt = |f: &dyn Fn(&strata_catalog::StorageDef) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            defs.iter().map(|d| f(d)).collect::<Vec<_>>(),
        ))
    };
    let counts = strata_cold::manifest::ObjectCounts::read(&tiers.store)?;
    let mut tables = vec![];
    let mut users = vec![];
    let mut files = vec![];
    for d in &defs {
        let using = tiers.catalog.storage_users(&d.id);
        tables.push(using.tables.len() as i64);
        users.push(using.users.len() as i64);
        files.push(counts.on(&d.id) as i64);
    }
    let columns: Vec<ArrayRef> = vec![
        text(&|d| d.id.clone()),
        text(&|d| d.storage_type.as_str().to_string()),
        text(&|d| d.uri.clone()),
        opt(&|d| d.region.clone()),
        opt(&|d| d.endpoint.clone()),
        text(&|d| d.shared_tables_template.clone()),
        text(&|d| d.user_tables_template.clone()),
        text(&|d| d.sharding.to_string()),
        text(&|d| d.description.clone()),
        Arc::new(BooleanArray::from(
            defs.iter()
                .map(|d| d.credentials.is_some())
                .collect::<Vec<_>>(),
        )),
        Arc::new(
            datafusion::arrow::array::TimestampMicrosecondArray::from(
                defs.iter().map(|d| d.created_at).collect::<Vec<_>>(),
            )
            .with_timezone(strata_catalog::UTC),
        ),
        Arc::new(Int64Array::from(tables)),
        Arc::new(Int64Array::from(users)),
        Arc::new(Int64Array::from(files)),
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| StrataError::internal(e.to_string()))
}

//! `pg_catalog` relations PostgreSQL 15 has and the crate does not, each
//! empty in Strata (no transforms, security labels or row-level policies)
//! but read by pg_dump (`pg_transform`, `pg_seclabels`) and DBeaver
//! (`pg_policies`), whose queries must plan.

use super::arrays::list_of;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::error::Result as DfResult;
use std::sync::Arc;

pub(crate) const EXTRA_TABLES: [&str; 3] = ["pg_transform", "pg_seclabels", "pg_policies"];

/// Whether `name` is one of these (as an unqualified table name).
pub(crate) fn is_extra_table(name: &str) -> bool {
    EXTRA_TABLES.iter().any(|t| t.eq_ignore_ascii_case(name))
}

pub(crate) fn extra_table(name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
    use DataType::{Int32, Utf8};
    let fields = match name {
        "pg_transform" => ["oid", "trftype", "trflang", "trffromsql", "trftosql"]
            .map(|c| Field::new(c, Int32, false))
            .to_vec(),
        "pg_seclabels" => vec![
            Field::new("objoid", Int32, true),
            Field::new("classoid", Int32, true),
            Field::new("objsubid", Int32, true),
            Field::new("objtype", Utf8, true),
            Field::new("objnamespace", Int32, true),
            Field::new("objname", Utf8, true),
            Field::new("provider", Utf8, true),
            Field::new("label", Utf8, true),
        ],
        "pg_policies" => vec![
            Field::new("schemaname", Utf8, true),
            Field::new("tablename", Utf8, true),
            Field::new("policyname", Utf8, true),
            Field::new("permissive", Utf8, true),
            Field::new("roles", list_of(Utf8), true),
            Field::new("cmd", Utf8, true),
            Field::new("qual", Utf8, true),
            Field::new("with_check", Utf8, true),
        ],
        _ => return Ok(None),
    };
    let table = MemTable::try_new(Arc::new(Schema::new(fields)), vec![vec![]])?;
    Ok(Some(Arc::new(table)))
}

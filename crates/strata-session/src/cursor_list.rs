//! `pg_cursors`: the session's open cursors, as Postgres' view shows them.
//! Cursors are the session's own, so the view is a table function registered
//! on the session's DataFusion context, and a query naming `pg_cursors`
//! (or `pg_catalog.pg_cursors`) is rewritten to call it.

use crate::cursors::Cursors;
use datafusion::arrow::array::TimestampMicrosecondArray;
use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::Result as DfResult;
use std::ops::ControlFlow;
use std::sync::Arc;
use strata_sql::sqlparser::ast::{self, VisitMut, VisitorMut};

/// The name the view and its function go by.
const NAME: &str = "pg_cursors";

#[derive(Debug)]
pub(crate) struct CursorList(pub(crate) Arc<Cursors>);

impl TableFunctionImpl for CursorList {
    fn call_with_args(&self, _args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let mut cursors = self.0.list();
        cursors.sort_by(|a, b| a.name.cmp(&b.name));
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("statement", DataType::Utf8, false),
            Field::new("is_holdable", DataType::Boolean, false),
            Field::new("is_binary", DataType::Boolean, false),
            Field::new("is_scrollable", DataType::Boolean, false),
            Field::new(
                "creation_time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                cursors.iter().map(|c| c.name.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                cursors.iter().map(|c| c.statement.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                cursors.iter().map(|c| Some(c.options.hold)),
            )),
            Arc::new(BooleanArray::from_iter(
                cursors.iter().map(|c| Some(c.options.binary)),
            )),
            // Strata cursors scan forward only.
            Arc::new(BooleanArray::from(vec![false; cursors.len()])),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(cursors.iter().map(|c| c.created))
                    .with_timezone("UTC"),
            ),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

/// Makes every `pg_cursors` / `pg_catalog.pg_cursors` relation of a query a
/// call of the session's table function.
pub(crate) fn rewrite(stmt: &mut ast::Statement) {
    struct Calls;
    impl VisitorMut for Calls {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut ast::TableFactor) -> ControlFlow<()> {
            if let ast::TableFactor::Table { name, args, .. } = factor {
                let parts: Vec<String> = name
                    .0
                    .iter()
                    .filter_map(|p| p.as_ident())
                    .map(strata_sql::normalize_ident)
                    .collect();
                let named = match parts.as_slice() {
                    [n] => n == NAME,
                    [schema, n] => schema == "pg_catalog" && n == NAME,
                    _ => false,
                };
                if named && args.is_none() {
                    *name = ast::ObjectName::from(vec![ast::Ident::new(NAME)]);
                    *args = Some(ast::TableFunctionArgs {
                        args: vec![],
                        settings: None,
                    });
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Calls);
}

/// Registers `pg_cursors()` over `cursors` on a session's context.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext, cursors: &Arc<Cursors>) {
    ctx.register_udtf(NAME, Arc::new(CursorList(cursors.clone())));
}

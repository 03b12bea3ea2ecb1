//! COPY statements: a load for `COPY t FROM STDIN` (strata-query's
//! [`CopyIn`], fed by the wire frontend), the rows of a query for
//! `COPY ... TO STDOUT`.

use crate::session::Session;
use strata_common::{Result, StrataError};
use strata_query::copy::{CopyIn, CopyRequest, request};
use strata_query::output::QueryOutput;
use strata_sql::sqlparser::ast;

/// Runs a COPY statement: sets up a load for FROM STDIN, starts the rows of
/// TO STDOUT.
pub(crate) async fn execute(session: &Session, stmt: &ast::Statement) -> Result<QueryOutput> {
    match request(stmt)? {
        CopyRequest::In {
            table,
            columns,
            options,
        } => {
            let limit = session.copy_memory_limit();
            let load = CopyIn::new(session, &table, &columns, options, limit)?;
            Ok(QueryOutput::CopyIn(Box::new(load)))
        }
        CopyRequest::Out { query, options } => {
            let prepared = Box::pin(session.prepare(&query))
                .await?
                .ok_or_else(|| StrataError::syntax("COPY needs a query"))?;
            match Box::pin(session.execute(&prepared, vec![])).await? {
                QueryOutput::Rows { schema, stream, .. } => Ok(QueryOutput::CopyOut {
                    schema,
                    stream,
                    options,
                }),
                _ => Err(StrataError::syntax(
                    "COPY (query) TO needs a query that returns rows",
                )),
            }
        }
    }
}

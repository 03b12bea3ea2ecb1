//! SQL-level PREPARE, EXECUTE and DEALLOCATE: named statements kept on the
//! session, planned once like a protocol-level prepared statement.

use crate::session::Session;
use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use strata_catalog::ColumnType;
use strata_common::{Result, StrataError};
use strata_query::output::QueryOutput;
use strata_query::prepared::Prepared;
use strata_sql::sqlparser::ast;
use strata_sql::{Statement, normalize_ident};

/// The most statements one session may hold by SQL PREPARE (each keeps a
/// plan), as the wire protocol's named statements are bounded.
const MAX_SQL_PREPARED: usize = 10_000;

pub(crate) async fn prepare(
    session: &Session,
    name: &ast::Ident,
    data_types: &[ast::DataType],
    statement: &ast::Statement,
) -> Result<QueryOutput> {
    let name = normalize_ident(name);
    // As in Postgres, only a query or DML can be prepared: anything else (an
    // EXECUTE of itself, a PREPARE) could recurse without bound when run.
    if !matches!(
        statement,
        ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
    ) {
        return Err(StrataError::syntax(format!(
            "syntax error: PREPARE takes a SELECT, VALUES, INSERT, UPDATE or DELETE, not \"{}\"",
            statement.to_string().chars().take(40).collect::<String>()
        )));
    }
    if data_types.len() > strata_sql::limits::MAX_PARAMS {
        return Err(StrataError::ProgramLimitExceeded(format!(
            "a prepared statement can have at most {} parameters",
            strata_sql::limits::MAX_PARAMS
        )));
    }
    {
        let named = session.sql_prepared.lock();
        if named.contains_key(&name) {
            return Err(StrataError::DuplicatePreparedStatement(format!(
                "prepared statement \"{name}\" already exists"
            )));
        }
        if named.len() >= MAX_SQL_PREPARED {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "a session can hold at most {MAX_SQL_PREPARED} prepared statements; DEALLOCATE some"
            )));
        }
    }
    let sql = statement.to_string();
    let planned =
        Box::pin(session.prepare_statement(&sql, Statement::Sql(Box::new(statement.clone()))))
            .await?;
    let mut p: Prepared =
        Arc::try_unwrap(planned).map_err(|_| StrataError::internal("a new plan is shared"))?;
    // Declared types win over inferred ones, as they do for Parse.
    for (i, dt) in data_types.iter().enumerate() {
        let ty = ColumnType::from_sql(dt)?;
        if p.param_types.len() <= i {
            p.param_types.resize(i + 1, None);
        }
        p.param_types[i] = Some(ty.arrow_type());
    }
    session.sql_prepared.lock().insert(name, Arc::new(p));
    Ok(QueryOutput::command("PREPARE"))
}

pub(crate) async fn execute(
    session: &Session,
    name: &ast::ObjectName,
    parameters: &[ast::Expr],
) -> Result<QueryOutput> {
    let key = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(normalize_ident)
        .unwrap_or_default();
    let prepared = session
        .sql_prepared
        .lock()
        .get(&key)
        .cloned()
        .ok_or_else(|| unknown(&key))?;
    let mut params: Vec<ScalarValue> = Vec::with_capacity(parameters.len());
    for e in parameters {
        params.push(strata_query::dml::eval_expr(session, e, &[]).await?);
    }
    if params.len() != prepared.param_types.len() {
        return Err(StrataError::syntax(format!(
            "wrong number of parameters for prepared statement \"{key}\": expected {}, got {}",
            prepared.param_types.len(),
            params.len()
        )));
    }
    session.execute(&prepared, params).await
}

pub(crate) fn deallocate(session: &Session, name: &ast::Ident) -> Result<QueryOutput> {
    let key = normalize_ident(name);
    if key == "all" {
        session.sql_prepared.lock().clear();
        return Ok(QueryOutput::command("DEALLOCATE ALL"));
    }
    session
        .sql_prepared
        .lock()
        .remove(&key)
        .ok_or_else(|| unknown(&key))?;
    Ok(QueryOutput::command("DEALLOCATE"))
}

fn unknown(name: &str) -> StrataError {
    StrataError::InvalidSqlStatementName(format!("prepared statement \"{name}\" does not exist"))
}

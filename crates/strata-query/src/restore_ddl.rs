//! Statements pg_dump's scripts hold that Strata accepts without changing
//! anything: `LOCK TABLE` (a snapshot read needs no table lock, and Strata
//! has no table-level locks to take), `ALTER TABLE|SCHEMA … OWNER TO` (Strata
//! keeps no owners: access goes by role, see docs/security.md). Each checks
//! what Postgres checks — the table, the namespace and the role exist, LOCK
//! runs inside a transaction block — so a script that names something wrong
//! still fails.

use crate::context::QueryContext;
use crate::output::QueryOutput;
use datafusion::catalog::SchemaProvider;
use strata_common::{Result, StrataError};
use strata_sql::object_ref;
use strata_sql::sqlparser::ast;

/// `LOCK [TABLE] [ONLY] name [, …] [IN mode MODE] [NOWAIT]`.
pub(crate) fn lock(session: &QueryContext, lock: &ast::Lock) -> Result<QueryOutput> {
    if !session.txn().in_block() {
        return Err(StrataError::NoActiveTransaction(
            "LOCK TABLE can only be used in transaction blocks".into(),
        ));
    }
    let system = crate::system::SystemSchema::new(session.engine.tiers.clone());
    for t in &lock.tables {
        let (ns, name) = session.resolve(&object_ref(&t.name)?);
        let exists = if ns == strata_catalog::SYSTEM_SCHEMA {
            system.table_exist(&name)
        } else {
            session.engine.catalog.table(&ns, &name).is_some()
        };
        if !exists {
            return Err(StrataError::UndefinedTable(format!("{ns}.{name}")));
        }
        // Locking asks for as much as reading: a user may not learn of or
        // lock what it cannot read.
        if let Some(def) = session.engine.catalog.table(&ns, &name) {
            crate::privileges::check_table_access(
                &session.engine.catalog,
                session.user(),
                &def,
                false,
            )?;
        } else {
            crate::privileges::require_role(session, strata_catalog::Role::Dba)?;
        }
    }
    Ok(QueryOutput::command("LOCK TABLE"))
}

/// `OWNER TO role`: the role must exist.
pub(crate) fn check_owner(session: &QueryContext, owner: &ast::Owner) -> Result<()> {
    if let ast::Owner::Ident(id) = owner {
        let name = strata_sql::normalize_ident(id);
        if session.engine.catalog.user(&name).is_none() {
            return Err(StrataError::UndefinedObject(format!(
                "role \"{name}\" does not exist"
            )));
        }
    }
    Ok(())
}

/// `ALTER SCHEMA name OWNER TO role`; other schema changes are not supported.
pub(crate) fn alter_schema(
    session: &QueryContext,
    alter: &ast::AlterSchema,
) -> Result<QueryOutput> {
    let name = object_ref(&alter.name)?.name;
    if !session.engine.catalog.namespace_exists(&name) {
        if alter.if_exists {
            return Ok(QueryOutput::command("ALTER SCHEMA"));
        }
        return Err(StrataError::UndefinedNamespace(name));
    }
    for op in &alter.operations {
        match op {
            ast::AlterSchemaOperation::OwnerTo { owner } => check_owner(session, owner)?,
            other => {
                return Err(StrataError::unsupported(format!(
                    "ALTER SCHEMA {other} is not supported"
                )));
            }
        }
    }
    Ok(QueryOutput::command("ALTER SCHEMA"))
}

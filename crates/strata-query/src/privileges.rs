//! Who may run what. Every role check lives here so the rules can be read (and
//! extended, e.g. for table access levels) in one place. A role is read from
//! the catalog on each check, so ALTER USER takes effect at once.

use crate::context::QueryContext;
use strata_catalog::{Catalog, Role, TableDef, UserDef};
use strata_common::{Result, StrataError};
use strata_sql::sqlparser::ast;
use strata_sql::{AccessLevel, Statement, TableKind};

/// Fails with 42501 unless the session's acting user has at least `min`.
pub fn require_role(session: &QueryContext, min: Role) -> Result<()> {
    let role = session.role();
    if role >= min {
        return Ok(());
    }
    Err(denied(format!(
        "permission denied: this statement requires role {min} or higher (user \"{}\" has role {role})",
        session.user()
    )))
}

pub(crate) fn denied(msg: impl Into<String>) -> StrataError {
    StrataError::InsufficientPrivilege(msg.into())
}

/// The role a statement needs, before it runs. User statements and EXECUTE AS
/// have finer rules of their own (`users.rs`); queries and DML are open here
/// (table access levels are checked where tables are read and written).
pub fn check_statement(session: &QueryContext, stmt: &Statement) -> Result<()> {
    let needs_dba = match stmt {
        Statement::CreateNamespace { .. }
        | Statement::DropNamespace { .. }
        | Statement::CreateTable(_)
        | Statement::AlterTableSet { .. }
        | Statement::FlushTable { .. }
        | Statement::FlushAll { .. }
        | Statement::CompactTable { .. }
        | Statement::KillJob { .. }
        | Statement::CreateStorage { .. }
        | Statement::AlterStorage { .. }
        | Statement::DropStorage { .. }
        | Statement::AlterUserStorage { .. } => true,
        Statement::Sql(ast) => matches!(
            ast.as_ref(),
            ast::Statement::Drop { .. }
                | ast::Statement::AlterTable(_)
                | ast::Statement::CreateTable(_)
                | ast::Statement::CreateSchema { .. }
                | ast::Statement::CreateIndex(_)
                | ast::Statement::CreateView(_)
                | ast::Statement::Truncate(_)
                | ast::Statement::AlterSchema(_)
        ),
        _ => false,
    };
    if needs_dba {
        require_role(session, Role::Dba)?;
    }
    Ok(())
}

/// Whether a user of role `actor` may create, alter or drop a user of role
/// `target`: only a system user manages system users.
pub(crate) fn may_manage(actor: Role, target: Role) -> bool {
    target < Role::System || actor == Role::System
}

/// EXECUTE AS USER: a user may name only itself; service may act as
/// user-role users, dba as user and service, system as anyone.
pub fn check_delegation(session: &QueryContext, target: &str) -> Result<()> {
    let actor = session.role();
    if target != session.user() && actor == Role::User {
        return Err(denied(format!(
            "permission denied to act as user \"{target}\": role user may act only as itself"
        )));
    }
    let def: std::sync::Arc<UserDef> = session.engine.catalog.require_user(target)?;
    let allowed = target == session.user()
        || match actor {
            Role::User => false,
            Role::Service => def.role == Role::User,
            Role::Dba => def.role <= Role::Service,
            Role::System => true,
        };
    if !allowed {
        return Err(denied(format!(
            "permission denied to act as user \"{target}\" (role {}): role {actor} may not",
            def.role
        )));
    }
    Ok(())
}

/// Whether a user of role `role` may read (or, with `write`, change) a table.
/// USER tables are open to everyone because each user only ever reaches its
/// own partition. SHARED and STREAM tables (one partition for all) follow
/// their ACCESS_LEVEL:
///
/// | level      | read           | write          |
/// |------------|----------------|----------------|
/// | PUBLIC     | every role     | service and up |
/// | PRIVATE    | service and up | service and up |
/// | RESTRICTED | service and up | dba and up     |
pub(crate) fn may_access(role: Role, table: &TableDef, write: bool) -> bool {
    if table.kind == TableKind::User {
        return true;
    }
    let min = match (table.access_level, write) {
        (AccessLevel::Public, false) => Role::User,
        (AccessLevel::Public, true) | (AccessLevel::Private, _) => Role::Service,
        (AccessLevel::Restricted, false) => Role::Service,
        (AccessLevel::Restricted, true) => Role::Dba,
    };
    role >= min
}

/// `may_access` for a user by name, failing with 42501. A user the catalog no
/// longer knows has the lowest role.
pub(crate) fn check_table_access(
    catalog: &Catalog,
    user: &str,
    table: &TableDef,
    write: bool,
) -> Result<()> {
    let role = catalog.role_of(user).unwrap_or_default();
    if may_access(role, table, write) {
        return Ok(());
    }
    Err(denied(format!(
        "permission denied to {} {} table {}: its access level is {} and user \"{user}\" has role {role}",
        if write { "write to" } else { "read from" },
        table.kind.as_str(),
        table.qualified_name(),
        table.access_level.as_str(),
    )))
}

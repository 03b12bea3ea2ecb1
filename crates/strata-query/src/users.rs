//! CREATE / ALTER / DROP USER.

use crate::context::QueryContext;
use crate::output::QueryOutput;
use crate::privileges::{denied, may_manage, require_role};
use strata_catalog::{ROOT_USER, Role, UserDef, verifier_for};
use strata_common::{Result, StrataError};
use strata_sql::{Secret, Statement};

pub async fn execute(session: &QueryContext, stmt: &Statement) -> Result<QueryOutput> {
    match stmt {
        Statement::CreateUser {
            name,
            password,
            role,
        } => create(session, name, password.as_ref(), role.as_deref()),
        Statement::AlterUser {
            name,
            password,
            role,
        } => alter(session, name, password.as_ref(), role.as_deref()),
        Statement::DropUser { names, if_exists } => drop(session, names, *if_exists).await,
        _ => Err(StrataError::internal("not a user statement")),
    }
}

fn create(
    session: &QueryContext,
    name: &str,
    password: Option<&Secret>,
    role: Option<&str>,
) -> Result<QueryOutput> {
    require_role(session, Role::Dba)?;
    let role = role.map(Role::parse).transpose()?.unwrap_or_default();
    if !may_manage(session.role(), role) {
        return Err(denied(
            "permission denied: only a system user may create a system user",
        ));
    }
    let verifier = password.map(|p| verifier_for(&p.0)).transpose()?;
    session
        .engine
        .catalog
        .create_user(UserDef::new(name, role, verifier))?;
    tracing::info!(user = %name, %role, by = session.user(), "user created");
    Ok(QueryOutput::command("CREATE ROLE"))
}

fn alter(
    session: &QueryContext,
    name: &str,
    password: Option<&Secret>,
    role: Option<&str>,
) -> Result<QueryOutput> {
    let catalog = &session.engine.catalog;
    // Only the user that logged in changes its own password: a statement run
    // through EXECUTE AS USER acts as its target but must not take over the
    // target's credentials.
    let own_password_only =
        name == session.user() && name == session.session_user() && role.is_none();
    if !own_password_only {
        require_role(session, Role::Dba)?;
    }
    let current = catalog.require_user(name)?;
    let new_role = role.map(Role::parse).transpose()?;
    let actor = session.role();
    if !own_password_only
        && (!may_manage(actor, current.role) || new_role.is_some_and(|r| !may_manage(actor, r)))
    {
        return Err(denied(format!(
            "permission denied to alter user \"{name}\": only a system user may alter system users"
        )));
    }
    if name == ROOT_USER && new_role.is_some_and(|r| r != Role::System) {
        return Err(denied("the role of root cannot be changed"));
    }
    let mut def = (*current).clone();
    if let Some(p) = password {
        def.verifier = Some(verifier_for(&p.0)?);
    }
    if let Some(r) = new_role {
        def.role = r;
    }
    catalog.update_user(def)?;
    tracing::info!(
        user = %name,
        password_changed = password.is_some(),
        role = ?new_role,
        by = session.user(),
        "user altered"
    );
    Ok(QueryOutput::command("ALTER ROLE"))
}

async fn drop(session: &QueryContext, names: &[String], if_exists: bool) -> Result<QueryOutput> {
    require_role(session, Role::Dba)?;
    let catalog = &session.engine.catalog;
    let actor = session.role();
    // Check every name first, so a refused name drops none of them.
    for name in names {
        if name == session.user() || name == session.session_user() {
            return Err(StrataError::ObjectInUse(
                "current user cannot be dropped".into(),
            ));
        }
        if name == ROOT_USER {
            return Err(StrataError::DependentObjects(format!(
                "cannot drop role \"{ROOT_USER}\" because it is required by the database system"
            )));
        }
        match catalog.user(name) {
            Some(u) if !may_manage(actor, u.role) => {
                return Err(denied(format!(
                    "permission denied to drop user \"{name}\": only a system user may drop system users"
                )));
            }
            Some(_) => {}
            None if if_exists => {}
            None => {
                return Err(StrataError::UndefinedObject(format!(
                    "role \"{name}\" does not exist"
                )));
            }
        }
    }
    for name in names {
        if catalog.user(name).is_none() {
            continue;
        }
        // A USER table's rows are keyed by the user's name: a user created
        // later under the same name must not find them, so they go with it.
        let purged = crate::user_data::purge(session, name).await?;
        if catalog.drop_user(name, true)? {
            tracing::info!(user = %name, by = session.user(), rows_partitions = purged, "user dropped with its rows");
        }
    }
    Ok(QueryOutput::command("DROP ROLE"))
}

//! DDL and catalog statements: namespaces, CREATE/DROP/ALTER TABLE, SHOW.

use crate::codec::encode_value;
use crate::context::QueryContext;
use crate::output::QueryOutput;
use crate::output::batch_output;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;
use strata_catalog::{ColumnType, TableDef};
use strata_common::{Result, StrataError};
use strata_sql::sqlparser::ast;
use strata_sql::{Statement, TableKind, normalize_ident, object_ref};

/// Result columns of the catalog statements that return rows.
pub fn result_schema(stmt: &Statement) -> Option<SchemaRef> {
    let cols: &[&str] = match stmt {
        Statement::ShowNamespaces => &["namespace_id"],
        Statement::FlushTable { .. } | Statement::CompactTable { .. } => &["job_id"],
        Statement::FlushAll { .. } => &["job_id", "namespace_id", "table_name"],
        Statement::ShowTables { .. } => &["namespace_id", "table_name", "table_type"],
        Statement::ShowStorages => return Some(crate::system_storages::schema()),
        _ => return None,
    };
    Some(Arc::new(Schema::new(
        cols.iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    )))
}

fn string_rows(schema: SchemaRef, columns: Vec<Vec<String>>) -> Result<QueryOutput> {
    let arrays = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as _)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays)
        .map_err(|e| StrataError::internal(e.to_string()))?;
    Ok(batch_output(schema, vec![batch], "SHOW"))
}

/// Strata's own statements.
pub async fn execute_strata(session: &QueryContext, stmt: &Statement) -> Result<QueryOutput> {
    let catalog = &session.engine.catalog;
    match stmt {
        Statement::CreateNamespace {
            name,
            if_not_exists,
            schema,
        } => {
            catalog.create_namespace(name, *if_not_exists)?;
            Ok(QueryOutput::command(if *schema {
                "CREATE SCHEMA"
            } else {
                "CREATE NAMESPACE"
            }))
        }
        Statement::DropNamespace {
            name,
            if_exists,
            cascade,
            schema,
        } => {
            let mut tables: Vec<Arc<TableDef>> = catalog
                .tables()
                .into_iter()
                .filter(|t| &t.namespace == name)
                .collect();
            // Under every table's write lock (in id order, as COMMIT takes
            // them), so no write or flush commit of them interleaves.
            tables.sort_by_key(|t| t.id);
            let mut guards = Vec::with_capacity(tables.len());
            for t in &tables {
                guards.push(session.engine.write_lock(t.id).lock_owned().await);
            }
            if !*cascade || tables.is_empty() {
                catalog.drop_namespace(name, *if_exists, *cascade)?;
            } else {
                // The listings go first: once the name is free a new table
                // of the same name may publish its own there.
                for t in &tables {
                    remove_listings(session, t).await;
                }
                if catalog.drop_namespace(name, *if_exists, *cascade)? {
                    for t in &tables {
                        forget_cold(session, t.id);
                    }
                }
            }
            drop(guards);
            Ok(QueryOutput::command(if *schema {
                "DROP SCHEMA"
            } else {
                "DROP NAMESPACE"
            }))
        }
        Statement::CreateTable(ct) => {
            let (ns, _) = session.resolve(&ct.table);
            let def = TableDef::from_create(ct, &ns, catalog.default_flush_policy())?;
            for c in &def.columns {
                if let Some(d) = &c.default {
                    // Fail at CREATE time, not at the first INSERT.
                    crate::dml::check_default(session, c, d).await?;
                }
            }
            catalog.create_table(def, ct.if_not_exists)?;
            Ok(QueryOutput::command("CREATE TABLE"))
        }
        Statement::AlterTableSet { table, options } => {
            let (ns, name) = session.resolve(table);
            let Some((_guard, current)) = lock_table(session, &ns, &name).await? else {
                return Err(StrataError::UndefinedTable(format!("{ns}.{name}")));
            };
            let mut def = (*current).clone();
            catalog.apply_options(&mut def, options)?;
            catalog.update_table(def)?;
            Ok(QueryOutput::command("ALTER TABLE"))
        }
        Statement::ShowNamespaces => {
            let names = catalog.namespaces().into_iter().map(|n| n.name).collect();
            string_rows(
                result_schema(stmt).ok_or_else(|| StrataError::internal("schema"))?,
                vec![names],
            )
        }
        Statement::ShowTables { namespace } => {
            if let Some(ns) = namespace
                && !catalog.namespace_exists(ns)
            {
                return Err(StrataError::UndefinedNamespace(ns.clone()));
            }
            let tables: Vec<_> = catalog
                .tables()
                .into_iter()
                .filter(|t| namespace.as_ref().is_none_or(|ns| &t.namespace == ns))
                .collect();
            string_rows(
                result_schema(stmt).ok_or_else(|| StrataError::internal("schema"))?,
                vec![
                    tables.iter().map(|t| t.namespace.clone()).collect(),
                    tables.iter().map(|t| t.name.clone()).collect(),
                    tables.iter().map(|t| t.kind.as_str().to_string()).collect(),
                ],
            )
        }
        Statement::FlushTable { table } => {
            let (ns, name) = session.resolve(table);
            let def = catalog.require_table(&ns, &name)?;
            let id = session.engine.tiers.jobs()?.flush_table(def)?;
            string_rows(
                result_schema(stmt).ok_or_else(|| StrataError::internal("schema"))?,
                vec![vec![id]],
            )
        }
        Statement::FlushAll { namespace } => {
            if let Some(ns) = namespace
                && !catalog.namespace_exists(ns)
            {
                return Err(StrataError::UndefinedNamespace(ns.clone()));
            }
            let jobs = session.engine.tiers.jobs()?;
            let mut cols: Vec<Vec<String>> = vec![vec![], vec![], vec![]];
            for t in catalog.tables() {
                if namespace.as_ref().is_some_and(|ns| &t.namespace != ns)
                    || t.kind == TableKind::Stream
                {
                    continue;
                }
                cols[1].push(t.namespace.clone());
                cols[2].push(t.name.clone());
                cols[0].push(jobs.flush_table(t)?);
            }
            string_rows(
                result_schema(stmt).ok_or_else(|| StrataError::internal("schema"))?,
                cols,
            )
        }
        Statement::CompactTable { table } => {
            let (ns, name) = session.resolve(table);
            let def = catalog.require_table(&ns, &name)?;
            let id = session.engine.tiers.jobs()?.compact_table(def)?;
            string_rows(
                result_schema(stmt).ok_or_else(|| StrataError::internal("schema"))?,
                vec![vec![id]],
            )
        }
        Statement::KillJob { job_id } => {
            session.engine.tiers.jobs()?.kill(job_id)?;
            Ok(QueryOutput::command("KILL JOB"))
        }
        Statement::CreateStorage { .. }
        | Statement::AlterStorage { .. }
        | Statement::DropStorage { .. }
        | Statement::ShowStorages
        | Statement::AlterUserStorage { .. } => crate::storages::execute(session, stmt).await,
        Statement::Subscribe { .. } => crate::live::subscribe(session, stmt).await,
        Statement::KillLiveQuery { live_id } => crate::live::kill(session, live_id).await,
        Statement::CreateUser { .. }
        | Statement::AlterUser { .. }
        | Statement::DropUser { .. }
        | Statement::ExecuteAs { .. }
        | Statement::Fetch { .. }
        | Statement::CloseCursor { .. } => Err(StrataError::internal(
            "user and cursor statements are executed by the session",
        )),
        Statement::NotYetSupported(what) => Err(StrataError::unsupported(format!(
            "{what} is not supported yet"
        ))),
        Statement::Sql(ast) => execute(session, ast).await,
    }
}

/// Drops a dropped table's cold records; its objects are deleted by the next
/// cleanup. A failure here leaves only unreferenced records behind (table ids
/// are never reused), so it is logged rather than failing the DROP.
/// Takes a table's write lock and reads its definition under it, so DDL
/// serializes with the table's writers, its jobs' commits and other DDL and a
/// change is always made to the definition in force (never one read earlier).
/// None when the table does not exist.
async fn lock_table(
    session: &QueryContext,
    ns: &str,
    name: &str,
) -> Result<Option<(tokio::sync::OwnedMutexGuard<()>, Arc<TableDef>)>> {
    let catalog = &session.engine.catalog;
    // The name can be dropped and re-created while we wait: then lock the new id.
    for _ in 0..8 {
        let Some(seen) = catalog.table(ns, name) else {
            return Ok(None);
        };
        let guard = session.engine.write_lock(seen.id).lock_owned().await;
        match catalog.table(ns, name) {
            Some(def) if def.id == seen.id => return Ok(Some((guard, def))),
            Some(_) => continue,
            None => return Ok(None),
        }
    }
    Err(StrataError::SerializationFailure(format!(
        "table \"{ns}.{name}\" kept changing while waiting for its lock"
    )))
}

/// Removes the `manifest.json` listing of every partition of a table that is
/// being dropped (its Parquet files go through garbage records).
async fn remove_listings(session: &QueryContext, table: &TableDef) {
    let store = &session.engine.store;
    let mut users = match strata_cold::manifest::table_partitions(store, table.id) {
        Ok(users) => users,
        Err(e) => {
            tracing::warn!(table_id = table.id, error = %e, "could not list the partitions of a dropped table");
            return;
        }
    };
    match strata_cold::manifest::table_mirrors(store, table.id) {
        Ok(mirrors) => users.extend(mirrors.into_iter().map(|(user, _)| user)),
        Err(e) => {
            tracing::warn!(table_id = table.id, error = %e, "could not list the mirrors of a dropped table")
        }
    }
    users.sort();
    users.dedup();
    for user in users {
        session.engine.tiers.remove_mirror(table, &user).await;
    }
}

fn forget_cold(session: &QueryContext, table_id: u32) {
    let now = strata_catalog::now_micros();
    if let Err(e) = strata_cold::manifest::forget_table(&session.engine.store, table_id, now) {
        tracing::warn!(table_id, error = %e, "could not forget cold files of a dropped table");
    }
}

/// Plain-SQL statements that are not queries or DML.
pub async fn execute(session: &QueryContext, stmt: &ast::Statement) -> Result<QueryOutput> {
    let catalog = &session.engine.catalog;
    match stmt {
        ast::Statement::Drop {
            object_type: ast::ObjectType::Table,
            if_exists,
            names,
            ..
        } => {
            for n in names {
                let (ns, name) = session.resolve(&object_ref(n)?);
                let locked = lock_table(session, &ns, &name).await?;
                if let Some((_, table)) = &locked {
                    // The listings go first: once the name is free a new
                    // table of the same name may publish its own there.
                    remove_listings(session, table).await;
                }
                if catalog.drop_table(&ns, &name, *if_exists)?
                    && let Some((_, table)) = &locked
                {
                    forget_cold(session, table.id);
                }
            }
            Ok(QueryOutput::command("DROP TABLE"))
        }
        ast::Statement::AlterTable(alter) => {
            let (ns, name) = session.resolve(&object_ref(&alter.name)?);
            let Some((_guard, current)) = lock_table(session, &ns, &name).await? else {
                if alter.if_exists {
                    return Ok(QueryOutput::command("ALTER TABLE"));
                }
                return Err(StrataError::UndefinedTable(format!("{ns}.{name}")));
            };
            if let [
                ast::AlterTableOperation::AddConstraint {
                    constraint: ast::TableConstraint::PrimaryKey(pk),
                    ..
                },
            ] = alter.operations.as_slice()
            {
                let column = strata_sql::primary_key_column(pk)?;
                crate::rekey::add_primary_key(session, &current, &column)?;
                return Ok(QueryOutput::command("ALTER TABLE"));
            }
            let mut def = (*current).clone();
            for op in &alter.operations {
                alter_one(session, &mut def, op).await?;
            }
            // OWNER TO alone changes nothing (Strata keeps no owners).
            if alter
                .operations
                .iter()
                .any(|op| !matches!(op, ast::AlterTableOperation::OwnerTo { .. }))
            {
                catalog.update_table(def)?;
            }
            Ok(QueryOutput::command("ALTER TABLE"))
        }
        ast::Statement::Lock(lock) => crate::restore_ddl::lock(session, lock),
        ast::Statement::AlterSchema(alter) => crate::restore_ddl::alter_schema(session, alter),
        other => Err(StrataError::unsupported(format!(
            "statement not supported: {}",
            other.to_string().chars().take(60).collect::<String>()
        ))),
    }
}

async fn alter_one(
    session: &QueryContext,
    def: &mut TableDef,
    op: &ast::AlterTableOperation,
) -> Result<()> {
    match op {
        ast::AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            ..
        } => {
            let name = normalize_ident(&column_def.name);
            if *if_not_exists && def.column_index(&name).is_some() {
                return Ok(());
            }
            let ty = ColumnType::from_sql(&column_def.data_type)?;
            let mut nullable = true;
            let mut default = None;
            for opt in &column_def.options {
                match &opt.option {
                    ast::ColumnOption::Null => {}
                    ast::ColumnOption::NotNull => nullable = false,
                    ast::ColumnOption::Default(e) => default = Some(e.to_string()),
                    other => {
                        return Err(StrataError::unsupported(format!(
                            "column option \"{other}\" is not supported in ADD COLUMN"
                        )));
                    }
                }
            }
            let col = strata_catalog::ColumnDef {
                id: 0,
                name: name.clone(),
                ty: ty.clone(),
                nullable,
                default: default.clone(),
                primary_key: false,
                fill: None,
            };
            // Existing rows take the default as it is now, evaluated once.
            let fill = match &default {
                Some(d) => {
                    let v = crate::dml::eval_default(session, &col, d).await?;
                    let mut bytes = vec![];
                    encode_value(&ty, &v, &mut bytes)?;
                    Some(bytes)
                }
                None => None,
            };
            def.add_column(name, ty, nullable, default, fill)
        }
        ast::AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } => {
            for c in column_names {
                let name = normalize_ident(c);
                if *if_exists && def.column_index(&name).is_none() {
                    continue;
                }
                def.drop_column(&name)?;
            }
            Ok(())
        }
        ast::AlterTableOperation::OwnerTo { new_owner } => {
            crate::restore_ddl::check_owner(session, new_owner)
        }
        ast::AlterTableOperation::AddConstraint {
            constraint: ast::TableConstraint::PrimaryKey(_),
            ..
        } => Err(StrataError::unsupported(
            "ADD PRIMARY KEY must be the only change of its ALTER TABLE",
        )),
        other => Err(StrataError::unsupported(format!(
            "ALTER TABLE {other} is not supported"
        ))),
    }
}

//! CREATE / ALTER / DROP STORAGE, SHOW STORAGES and ALTER USER … SET STORAGE.
//! Only dba and system users manage storages (checked in `privileges`).

use crate::context::QueryContext;
use crate::output::{QueryOutput, batch_output};
use strata_catalog::{LOCAL_STORAGE, StorageDef, now_micros};
use strata_cold::ColdStore;
use strata_common::{Result, StrataError};
use strata_sql::{Statement, StorageOptions};

pub async fn execute(session: &QueryContext, stmt: &Statement) -> Result<QueryOutput> {
    let catalog = &session.engine.catalog;
    let tiers = &session.engine.tiers;
    match stmt {
        Statement::CreateStorage {
            id,
            if_not_exists,
            options,
        } => {
            if *if_not_exists && catalog.storage(id).is_some() {
                return Ok(QueryOutput::command("CREATE STORAGE"));
            }
            let def = StorageDef::from_options(id, options, now_micros())?;
            if options.verify != Some(false) {
                probe(&def).await?;
            }
            catalog.create_storage(def, *if_not_exists)?;
            tracing::info!(storage = %id, by = session.user(), "storage created");
            Ok(QueryOutput::command("CREATE STORAGE"))
        }
        Statement::AlterStorage { id, options } => {
            if options.storage_type.is_some() || options.path.is_some() {
                return Err(StrataError::unsupported(
                    "a storage's TYPE and PATH cannot change: its files live there \
                     (create another storage and move tables with ALTER TABLE … SET (STORAGE_ID=…))",
                ));
            }
            if id == LOCAL_STORAGE {
                return Err(StrataError::InsufficientPrivilege(
                    "the built-in storage \"local\" cannot be altered".into(),
                ));
            }
            let mut def = (*catalog.require_storage(id)?).clone();
            def.apply(options)?;
            if options.verify != Some(false) && reaches_differently(options) {
                probe(&def).await?;
            }
            catalog.update_storage(def)?;
            tiers.storages.forget(id);
            tracing::info!(storage = %id, by = session.user(), "storage altered");
            Ok(QueryOutput::command("ALTER STORAGE"))
        }
        Statement::DropStorage { id, if_exists } => {
            let store = session.engine.store.clone();
            let dropped = catalog.drop_storage(id, *if_exists, || {
                strata_cold::manifest::objects_on_storage(&store, id)
            })?;
            if dropped {
                tiers.storages.forget(id);
                tracing::info!(storage = %id, by = session.user(), "storage dropped");
            }
            Ok(QueryOutput::command("DROP STORAGE"))
        }
        Statement::ShowStorages => {
            let batch = crate::system_storages::batch(tiers)?;
            Ok(batch_output(batch.schema(), vec![batch], "SHOW"))
        }
        Statement::AlterUserStorage { name, storage } => {
            catalog.set_user_storage(name, storage.as_deref())?;
            Ok(QueryOutput::command("ALTER ROLE"))
        }
        _ => Err(StrataError::internal("not a storage statement")),
    }
}

/// Whether an ALTER changes how the storage is reached (then it is probed).
fn reaches_differently(o: &StorageOptions) -> bool {
    o.endpoint.is_some()
        || o.credentials.is_some()
        || o.region.is_some()
        || o.virtual_hosted_style.is_some()
}

/// Writes and deletes a small object, so a storage that cannot be reached or
/// written (a missing bucket, wrong credentials, a closed port) is refused at
/// CREATE/ALTER rather than at the first flush.
async fn probe(def: &StorageDef) -> Result<()> {
    let store = ColdStore::open(std::sync::Arc::new(def.clone()), std::path::Path::new("/"))?;
    let path =
        object_store::path::Path::from(format!(".strata-probe-{}", uuid::Uuid::new_v4().simple()));
    let checked = async {
        store.put(&path, b"strata".to_vec()).await?;
        store.delete(&path).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(60), checked).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let why = match e {
                StrataError::Storage(m) => m,
                other => other.to_string(),
            };
            Err(StrataError::Storage(format!(
                "storage \"{}\" cannot be written: {why}; check PATH, ENDPOINT, REGION and \
                 CREDENTIALS, or create it WITH (VERIFY = FALSE)",
                def.id
            )))
        }
        Err(_) => Err(StrataError::Storage(format!(
            "storage \"{}\" did not answer within 60 s; check ENDPOINT, or create it WITH (VERIFY = FALSE)",
            def.id
        ))),
    }
}

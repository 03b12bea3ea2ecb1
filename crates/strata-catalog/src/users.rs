//! Users and their roles, persisted next to the namespaces and tables. A user
//! record holds a SCRAM verifier, never a password.

use crate::password::{ScramVerifier, random_bytes};
use crate::{Catalog, now_micros};
use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use strata_common::{Result, StrataError};
use strata_store::CF_CATALOG;

/// The system user created at first start.
pub const ROOT_USER: &str = "root";

/// Names Postgres reserves for roles; a user called `public` or `current_user`
/// would make SQL that names them ambiguous.
const RESERVED_USER_NAMES: &[&str] = &["public", "none", "current_user", "session_user"];

/// Key of the secret that makes the mock salt of an unknown user stable, so a
/// client cannot tell unknown users from known ones by their salts.
pub(crate) const MOCK_SECRET_KEY: &[u8] = b"auth_mock_secret";

pub(crate) fn user_key(name: &str) -> Vec<u8> {
    format!("user\0{name}").into_bytes()
}

/// What a user may do; later roles may do everything earlier ones may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    User,
    Service,
    Dba,
    System,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "dba" => Ok(Role::Dba),
            "system" => Ok(Role::System),
            other => Err(StrataError::InvalidParameterValue(format!(
                "invalid role \"{other}\": expected user, service, dba or system"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct UserDef {
    pub name: String,
    pub role: Role,
    /// SCRAM-SHA-256 verifier text; None: no password login (root before one
    /// is set, or a user that exists only to be acted as).
    pub verifier: Option<String>,
    pub storage_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for UserDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserDef")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_password", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

impl UserDef {
    pub fn new(name: &str, role: Role, verifier: Option<String>) -> UserDef {
        let now = now_micros();
        UserDef {
            name: name.to_string(),
            role,
            verifier,
            storage_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    pub fn scram_verifier(&self) -> Option<ScramVerifier> {
        self.verifier.as_deref().and_then(ScramVerifier::parse)
    }
}

/// Turns what `PASSWORD '...'` gave into the verifier to store. A verifier
/// given as is (pg_dump output) is kept, as Postgres does.
pub fn verifier_for(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(StrataError::InvalidParameterValue(
            "empty password is not allowed".into(),
        ));
    }
    if let Some(v) = ScramVerifier::parse(password) {
        return Ok(v.to_text());
    }
    if ScramVerifier::looks_like_verifier(password) {
        return Err(StrataError::InvalidParameterValue(format!(
            "invalid SCRAM-SHA-256 verifier: it must be SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> with 1 to {} iterations",
            crate::password::MAX_ITERATIONS
        )));
    }
    Ok(ScramVerifier::new(password)?.to_text())
}

pub(crate) fn undefined_user(name: &str) -> StrataError {
    StrataError::UndefinedObject(format!("role \"{name}\" does not exist"))
}

impl Catalog {
    pub fn user(&self, name: &str) -> Option<Arc<UserDef>> {
        self.state.read().users.get(name).cloned()
    }

    /// Like `user`, but an unknown user is 42704.
    pub fn require_user(&self, name: &str) -> Result<Arc<UserDef>> {
        self.user(name).ok_or_else(|| undefined_user(name))
    }

    /// A user's role; None when the user does not exist (any more).
    pub fn role_of(&self, name: &str) -> Option<Role> {
        self.state.read().users.get(name).map(|u| u.role)
    }

    pub fn users(&self) -> Vec<Arc<UserDef>> {
        self.state.read().users.values().cloned().collect()
    }

    pub fn create_user(&self, def: UserDef) -> Result<Arc<UserDef>> {
        if def.name.is_empty() || RESERVED_USER_NAMES.contains(&def.name.as_str()) {
            return Err(StrataError::ReservedName(format!(
                "role name \"{}\" is reserved",
                def.name
            )));
        }
        let mut st = self.state.write();
        if st.users.contains_key(&def.name) {
            return Err(StrataError::DuplicateObject(format!(
                "role \"{}\" already exists",
                def.name
            )));
        }
        self.store
            .put(CF_CATALOG, &user_key(&def.name), &serde_json::to_vec(&def)?)?;
        let def = Arc::new(def);
        st.users.insert(def.name.clone(), def.clone());
        Ok(def)
    }

    /// Replaces an existing user's record; stamps `updated_at`.
    pub fn update_user(&self, mut def: UserDef) -> Result<Arc<UserDef>> {
        let mut st = self.state.write();
        let Some(old) = st.users.get(&def.name) else {
            return Err(undefined_user(&def.name));
        };
        def.created_at = old.created_at;
        def.updated_at = now_micros().max(old.updated_at);
        self.store
            .put(CF_CATALOG, &user_key(&def.name), &serde_json::to_vec(&def)?)?;
        let def = Arc::new(def);
        st.users.insert(def.name.clone(), def.clone());
        Ok(def)
    }

    /// Removes a user. Who may drop whom is the caller's business; root is
    /// refused here so no path can lock the server out.
    pub fn drop_user(&self, name: &str, if_exists: bool) -> Result<bool> {
        if name == ROOT_USER {
            return Err(StrataError::DependentObjects(format!(
                "cannot drop role \"{ROOT_USER}\" because it is required by the database system"
            )));
        }
        let mut st = self.state.write();
        if !st.users.contains_key(name) {
            return if if_exists {
                Ok(false)
            } else {
                Err(undefined_user(name))
            };
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.store.cf(CF_CATALOG)?, user_key(name));
        self.store.write(batch)?;
        st.users.remove(name);
        Ok(true)
    }

    /// Creates `root` (role system) at first start, with the configured
    /// password if there is one. An existing root is left alone: after the
    /// first start its password is changed with ALTER USER.
    pub fn bootstrap_root(&self, password: Option<&str>) -> Result<()> {
        if let Some(existing) = self.user(ROOT_USER) {
            if password.is_some() && existing.verifier.is_none() {
                tracing::warn!(
                    "a root password is configured but root already exists without one; \
                     set it with ALTER USER root WITH PASSWORD"
                );
            }
            return Ok(());
        }
        let verifier = password.map(verifier_for).transpose()?;
        tracing::info!(has_password = verifier.is_some(), "creating the root user");
        self.create_user(UserDef::new(ROOT_USER, Role::System, verifier))?;
        Ok(())
    }

    /// The server-wide secret behind mock SCRAM salts, created once.
    pub fn mock_auth_secret(&self) -> Result<Vec<u8>> {
        if let Some(s) = self.store.get(CF_CATALOG, MOCK_SECRET_KEY)? {
            return Ok(s);
        }
        let secret = random_bytes(32)?;
        self.store.put(CF_CATALOG, MOCK_SECRET_KEY, &secret)?;
        Ok(secret)
    }
}

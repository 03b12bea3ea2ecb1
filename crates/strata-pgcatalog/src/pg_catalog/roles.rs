//! One OID per Strata user, the same in `pg_roles`, `pg_authid` and every
//! owner column: pg_dump looks each owner OID up in `pg_roles` and stops when
//! one is missing. The bootstrap superuser (Strata's System user) is OID 10,
//! as in every Postgres cluster, which is also what the shipped catalog rows
//! (`typowner`, `proowner`, `nspowner`, `datdba`, …) name; other users get
//! OIDs derived from their names, stable across restarts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use strata_catalog::{ROOT_USER, Role, UserDef};

/// The bootstrap superuser's OID.
pub(crate) const BOOTSTRAP_ROLE_OID: i32 = 10;

/// Other users' OIDs lie in [FIRST, FIRST + SPAN): above the shipped catalog
/// rows' OIDs and the crate's counter's first values, below Strata's table
/// OIDs (`tables::TABLE_OID_BASE`).
const FIRST: u32 = 100_000;
const SPAN: u32 = 800_000;

/// The user whose OID is 10: root, or else the first System user.
pub(crate) fn bootstrap_user(users: &[Arc<UserDef>]) -> Option<&Arc<UserDef>> {
    users
        .iter()
        .filter(|u| u.role == Role::System)
        .min_by_key(|u| (u.name != ROOT_USER, u.created_at, u.name.clone()))
}

/// Each user's OID by name.
pub(crate) fn role_oids(users: &[Arc<UserDef>]) -> HashMap<String, i32> {
    let boot = bootstrap_user(users).map(|u| u.name.clone());
    let mut names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    // Sorted, so that a collision of two names' hashes resolves the same way
    // every time.
    names.sort_unstable();
    let mut taken = BTreeSet::new();
    let mut out = HashMap::new();
    for name in names {
        if boot.as_deref() == Some(name) {
            out.insert(name.to_string(), BOOTSTRAP_ROLE_OID);
            continue;
        }
        let mut slot = fnv1a(name) % SPAN;
        while !taken.insert(slot) {
            slot = (slot + 1) % SPAN;
        }
        out.insert(
            name.to_string(),
            i32::try_from(FIRST + slot).unwrap_or(i32::MAX),
        );
    }
    out
}

fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role, created_at: i64) -> Arc<UserDef> {
        Arc::new(UserDef {
            name: name.into(),
            role,
            verifier: None,
            storage_id: None,
            created_at,
            updated_at: created_at,
        })
    }

    #[test]
    fn root_is_ten_and_others_distinct_and_stable() {
        let users = vec![
            user("alice", Role::User, 5),
            user("root", Role::System, 1),
            user("bob", Role::Dba, 7),
        ];
        let oids = role_oids(&users);
        assert_eq!(oids["root"], 10);
        assert_ne!(oids["alice"], oids["bob"]);
        assert!(oids["alice"] >= 100_000 && oids["alice"] < 1_000_000);
        let again = role_oids(&users[..2]);
        assert_eq!(again["alice"], oids["alice"]);
    }
}

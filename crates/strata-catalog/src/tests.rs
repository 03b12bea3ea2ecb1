use super::*;
use strata_sql::{Statement, parse_one};

fn open(dir: &std::path::Path) -> Catalog {
    let store = Arc::new(Store::open(dir, false).unwrap());
    Catalog::open(store, FlushPolicy::parse("rows:100").unwrap()).unwrap()
}

fn create(cat: &Catalog, sql: &str) -> Result<Option<Arc<TableDef>>> {
    let Some(Statement::CreateTable(ct)) = parse_one(sql)? else {
        panic!("not create table")
    };
    let ns = ct
        .table
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let def = TableDef::from_create(&ct, &ns, cat.default_flush_policy())?;
    cat.create_table(def, ct.if_not_exists)
}

#[test]
fn tables_survive_reopen_and_ids_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path());
        cat.create_namespace("app", false).unwrap();
        let t = create(&cat, "CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
            .unwrap()
            .unwrap();
        assert_eq!(t.id, 1);
        cat.drop_table("app", "t", false).unwrap();
        create(&cat, "CREATE TABLE app.u (id INT PRIMARY KEY)").unwrap();
    }
    let cat = open(dir.path());
    assert!(cat.namespace_exists("public"));
    assert!(cat.table("app", "t").is_none());
    assert_eq!(cat.require_table("app", "u").unwrap().id, 2);
}

#[test]
fn errors_carry_sqlstates() {
    let dir = tempfile::tempdir().unwrap();
    let cat = open(dir.path());
    assert_eq!(
        cat.create_namespace("system", false)
            .unwrap_err()
            .sqlstate(),
        "42939"
    );
    cat.create_namespace("app", false).unwrap();
    assert_eq!(
        cat.create_namespace("app", false).unwrap_err().sqlstate(),
        "42P06"
    );
    assert_eq!(
        create(
            &cat,
            "CREATE TABLE app.t (id INT PRIMARY KEY, b INT PRIMARY KEY)"
        )
        .unwrap_err()
        .sqlstate(),
        "42P16"
    );
    // Without a key, the table is keyed by a generated _rowid (last column).
    let keyless = create(&cat, "CREATE TABLE app.k (id INT)")
        .unwrap()
        .unwrap();
    assert!(keyless.has_generated_key());
    assert_eq!(keyless.columns.last().unwrap().name, "_rowid");
    assert_eq!(
        create(&cat, "CREATE TABLE app.r (_rowid BIGINT PRIMARY KEY)")
            .unwrap_err()
            .sqlstate(),
        "42939"
    );
    assert_eq!(
        create(&cat, "CREATE TABLE nope.t (id INT PRIMARY KEY)")
            .unwrap_err()
            .sqlstate(),
        "3F000"
    );
    create(&cat, "CREATE TABLE app.t (id INT PRIMARY KEY)").unwrap();
    assert_eq!(
        create(&cat, "CREATE TABLE app.t (id INT PRIMARY KEY)")
            .unwrap_err()
            .sqlstate(),
        "42P07"
    );
    assert!(
        create(
            &cat,
            "CREATE TABLE IF NOT EXISTS app.t (id INT PRIMARY KEY)"
        )
        .unwrap()
        .is_none()
    );
    assert_eq!(
        cat.drop_namespace("app", false, false)
            .unwrap_err()
            .sqlstate(),
        "2BP01"
    );
    assert!(cat.drop_namespace("app", false, true).unwrap());
    assert!(cat.table("app", "t").is_none());
}

#[test]
fn users_survive_reopen_and_keep_only_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    {
        let cat = open(dir.path());
        cat.bootstrap_root(Some("rootpw")).unwrap();
        let v = verifier_for("secret").unwrap();
        cat.create_user(UserDef::new("alice", Role::Service, Some(v)))
            .unwrap();
        let dup = cat
            .create_user(UserDef::new("alice", Role::User, None))
            .unwrap_err();
        assert_eq!(dup.sqlstate(), "42710");
        assert_eq!(
            cat.drop_user("root", false).unwrap_err().sqlstate(),
            "2BP01"
        );
        assert_eq!(
            cat.drop_user("nobody", false).unwrap_err().sqlstate(),
            "42704"
        );
        assert!(!cat.drop_user("nobody", true).unwrap());
    }
    let cat = open(dir.path());
    // A second bootstrap keeps the first root.
    cat.bootstrap_root(Some("other")).unwrap();
    let root = cat.user("root").unwrap();
    assert_eq!(root.role, Role::System);
    assert!(root.scram_verifier().unwrap().matches_password("rootpw"));
    let alice = cat.user("alice").unwrap();
    assert_eq!(cat.role_of("alice"), Some(Role::Service));
    let text = alice.verifier.clone().unwrap();
    assert!(text.starts_with("SCRAM-SHA-256$4096:"));
    assert!(!text.contains("secret"));
    assert!(Role::User < Role::Service && Role::Service < Role::Dba && Role::Dba < Role::System);
    let a = cat.mock_auth_secret().unwrap();
    assert_eq!(a, cat.mock_auth_secret().unwrap());
}

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
        create(&cat, "CREATE TABLE app.t (id INT)")
            .unwrap_err()
            .sqlstate(),
        "42P16"
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

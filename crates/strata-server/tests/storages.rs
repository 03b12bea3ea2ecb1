//! Storages on local directories: the built-in `local`, `CREATE / ALTER /
//! DROP STORAGE`, `SHOW STORAGES` and `system.storages`, placing tables on a
//! storage, the per-user lookup chain (`USE_USER_STORAGE`), path templates and
//! their validation, `{shard}` layouts, refusals to drop a storage in use, and
//! who may manage storages. S3 storages are in `storage_s3.rs`.
//!
//! Files are looked for in the storages' directories; every table's content
//! is compared with a model the test keeps.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;
use tokio_postgres::Client;

use common::{TestServer, exec, named_rows, one, sqlstate, text_rows, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

const INVALID: &str = "22023";
const UNDEFINED: &str = "42704";
const DUPLICATE: &str = "42710";
const DEPENDENT: &str = "2BP01";
const DENIED: &str = "42501";

/// The columns `system.storages` has at least.
const STORAGE_COLUMNS: [&str; 12] = [
    "storage_id",
    "storage_type",
    "uri",
    "region",
    "endpoint",
    "shared_tables_template",
    "user_tables_template",
    "sharding",
    "description",
    "created_at",
    "table_count",
    "user_count",
];

/// The SQLSTATE and message a statement fails with.
async fn error(client: &Client, sql: &str) -> (String, String) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql} succeeded"),
        Err(e) => {
            let code = sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e:?}"));
            let message = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            (code, message)
        }
    }
}

/// Asserts `sql` fails with `code`; returns the message.
async fn fails(client: &Client, sql: &str, code: &str) -> String {
    let (got, message) = error(client, sql).await;
    assert_eq!(got, code, "{sql}: {message}");
    message
}

/// The row of storage `id` in system.storages.
async fn storage_row(client: &Client, id: &str) -> BTreeMap<String, String> {
    let rows = named_rows(
        client,
        &format!("SELECT * FROM system.storages WHERE storage_id = '{id}'"),
    )
    .await;
    assert_eq!(rows.len(), 1, "system.storages rows of {id}: {rows:?}");
    rows.into_iter().next().unwrap()
}

/// Storage ids in system.storages, sorted.
async fn storage_ids(client: &Client) -> Vec<String> {
    let mut ids: Vec<String> = text_rows(client, "SELECT storage_id FROM system.storages")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    ids.sort();
    ids
}

/// Runs FLUSH TABLE / COMPACT TABLE and waits for its job.
async fn job(client: &Client, sql: &str) {
    let id = one(client, sql).await;
    wait_job(client, &id).await;
}

async fn flush(client: &Client, table: &str) {
    job(client, &format!("FLUSH TABLE {table}")).await;
}

type Model = BTreeMap<i64, String>;

async fn check(client: &Client, table: &str, model: &Model, when: &str) {
    let got: Model = text_rows(client, &format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .into_iter()
        .map(|r| (r[0].parse().expect("id"), r[1].clone()))
        .collect();
    assert_eq!(&got, model, "{table} {when}");
}

/// Inserts ids `from..=to` with v = `{tag}-{id}` and records them.
async fn insert(client: &Client, table: &str, model: &mut Model, from: i64, to: i64, tag: &str) {
    let values: Vec<String> = (from..=to).map(|i| format!("({i}, '{tag}-{i}')")).collect();
    exec(
        client,
        &format!("INSERT INTO {table} (id, v) VALUES {}", values.join(", ")),
    )
    .await;
    for i in from..=to {
        model.insert(i, format!("{tag}-{i}"));
    }
}

/// A fresh directory for a filesystem storage, and its PATH.
fn storage_dir() -> (TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("strata-storage-")
        .tempdir()
        .expect("a storage directory");
    let uri = format!("file://{}", dir.path().display());
    (dir, uri)
}

/// Every file under `dir`, as paths relative to it with `/`, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The `batch-*.parquet` files directly in `dir/rel`.
fn parquet_in(dir: &Path, rel: &str) -> Vec<String> {
    let prefix = format!("{}/", rel.trim_matches('/'));
    files(dir)
        .into_iter()
        .filter(|f| {
            f.strip_prefix(&prefix)
                .is_some_and(|name| !name.contains('/') && is_batch(name))
        })
        .collect()
}

fn is_batch(name: &str) -> bool {
    name.starts_with("batch-") && name.ends_with(".parquet")
}

/// Asserts `dir/rel` holds at least one batch file and its manifest.json.
fn assert_partition(dir: &Path, rel: &str, what: &str) {
    let parquet = parquet_in(dir, rel);
    assert!(
        !parquet.is_empty(),
        "{what}: no batch-*.parquet in {}/{rel}; files there: {:?}",
        dir.display(),
        files(dir)
    );
    assert!(
        dir.join(rel).join("manifest.json").is_file(),
        "{what}: no manifest.json in {}/{rel}; files there: {:?}",
        dir.display(),
        files(dir)
    );
}

/// Parquet files anywhere under `dir`.
fn all_parquet(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect()
}

fn local_dir(server: &TestServer) -> PathBuf {
    server.data_dir().join("storage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_storage_exists_on_startup_and_cannot_be_dropped() {
    timed("local storage", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;

        let rows = named_rows(&c, "SELECT * FROM system.storages").await;
        assert_eq!(rows.len(), 1, "a fresh server has one storage: {rows:?}");
        let local = &rows[0];
        // At least these columns (more are welcome).
        for column in STORAGE_COLUMNS {
            assert!(
                local.contains_key(column),
                "system.storages has no {column}: {local:?}"
            );
        }
        assert_eq!(local["storage_id"], "local");
        assert_eq!(local["storage_type"], "filesystem");
        let uri = &local["uri"];
        let data_dir_name = server
            .data_dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            uri.starts_with("file:///") && uri.ends_with("/storage") && uri.contains(&data_dir_name),
            "local's uri is the data directory's storage/: {uri}"
        );
        assert_eq!(local["shared_tables_template"], "{namespace}/{tableName}");
        assert_eq!(
            local["user_tables_template"],
            "{namespace}/{tableName}/{userId}"
        );
        assert_eq!(local["table_count"], "0");
        assert_eq!(local["user_count"], "0");

        // SHOW STORAGES is SELECT * FROM system.storages, in the same order.
        assert_eq!(
            text_rows(&c, "SHOW STORAGES").await,
            text_rows(&c, "SELECT * FROM system.storages").await
        );

        // Never altered, dropped or re-created.
        let (code, message) = error(&c, "ALTER STORAGE local SET DESCRIPTION 'mine'").await;
        assert!(message.contains("local"), "{code}: {message}");
        assert_eq!(storage_row(&c, "local").await["description"], local["description"]);
        let message = fails(&c, "DROP STORAGE local", DEPENDENT).await;
        assert!(message.contains("local"), "{message}");
        let (code, _) = error(&c, "DROP STORAGE IF EXISTS local").await;
        assert_eq!(code, DEPENDENT, "DROP STORAGE IF EXISTS local");
        fails(
            &c,
            "CREATE STORAGE local TYPE 'filesystem' PATH 'file:///tmp/elsewhere'",
            DUPLICATE,
        )
        .await;
        exec(
            &c,
            "CREATE STORAGE IF NOT EXISTS local TYPE 'filesystem' PATH 'file:///tmp/elsewhere'",
        )
        .await;
        assert_eq!(storage_row(&c, "local").await["uri"], *uri);

        // Tables without a storage are on local, in the data directory.
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT)",
        )
        .await;
        assert_eq!(
            one(
                &c,
                "SELECT storage_id FROM system.tables WHERE namespace_id = 'app' AND table_name = 't'"
            )
            .await,
            "local"
        );
        assert_eq!(storage_row(&c, "local").await["table_count"], "1");
        let mut model = Model::new();
        insert(&c, "app.t", &mut model, 1, 30, "a").await;
        flush(&c, "app.t").await;
        assert_partition(&local_dir(&server), "app/t", "a table on local");

        server.restart().await;
        let c = server.client().await;
        assert_eq!(storage_ids(&c).await, ["local"]);
        assert_eq!(storage_row(&c, "local").await["uri"], *uri);
        check(&c, "app.t", &model, "after a restart").await;
        fails(&c, "DROP STORAGE local", DEPENDENT).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_storages_hold_the_files_of_their_tables() {
    timed("filesystem storages", TEST_TIMEOUT, async {
        let (dir1, uri1) = storage_dir();
        let (dir2, uri2) = storage_dir();
        let mut server = TestServer::start().await;
        let c = server.client().await;

        exec(
            &c,
            &format!(
                "CREATE STORAGE fs1 TYPE 'filesystem' PATH '{uri1}' DESCRIPTION 'first disk'"
            ),
        )
        .await;
        fails(
            &c,
            &format!("CREATE STORAGE fs1 TYPE 'filesystem' PATH '{uri2}'"),
            DUPLICATE,
        )
        .await;
        exec(
            &c,
            &format!("CREATE STORAGE IF NOT EXISTS fs1 TYPE 'filesystem' PATH '{uri2}'"),
        )
        .await;
        exec(
            &c,
            &format!("CREATE STORAGE fs2 TYPE 'filesystem' PATH '{uri2}'"),
        )
        .await;
        let fs1 = storage_row(&c, "fs1").await;
        assert_eq!(fs1["storage_type"], "filesystem");
        assert_eq!(fs1["uri"], uri1, "IF NOT EXISTS changed nothing");
        assert_eq!(fs1["region"], "NULL");
        assert_eq!(fs1["endpoint"], "NULL");
        assert_eq!(fs1["shared_tables_template"], "{namespace}/{tableName}");
        assert_eq!(
            fs1["user_tables_template"],
            "{namespace}/{tableName}/{userId}"
        );
        assert_eq!(fs1["description"], "first disk");
        assert_eq!(fs1["table_count"], "0");
        assert_ne!(fs1["created_at"], "NULL");
        assert_eq!(storage_ids(&c).await, ["fs1", "fs2", "local"]);
        assert_eq!(
            text_rows(&c, "SHOW STORAGES").await,
            text_rows(&c, "SELECT * FROM system.storages").await
        );

        // Placement: the option form and the short form; unknown ids refused.
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.a (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE_ID = 'fs1');
             CREATE TABLE app.b (id BIGINT PRIMARY KEY, v TEXT) STORAGE fs1",
        )
        .await;
        fails(
            &c,
            "CREATE TABLE app.c (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE_ID = 'nope')",
            UNDEFINED,
        )
        .await;
        fails(
            &c,
            "CREATE TABLE app.c (id BIGINT PRIMARY KEY, v TEXT) STORAGE nope",
            UNDEFINED,
        )
        .await;
        let placed = text_rows(
            &c,
            "SELECT table_name, storage_id FROM system.tables WHERE namespace_id = 'app' ORDER BY table_name",
        )
        .await;
        assert_eq!(placed, [["a", "fs1"], ["b", "fs1"]]);
        assert_eq!(storage_row(&c, "fs1").await["table_count"], "2");

        let mut a = Model::new();
        let mut b = Model::new();
        insert(&c, "app.a", &mut a, 1, 40, "a").await;
        insert(&c, "app.b", &mut b, 1, 40, "b").await;
        flush(&c, "app.a").await;
        flush(&c, "app.b").await;
        assert_partition(dir1.path(), "app/a", "app.a on fs1");
        assert_partition(dir1.path(), "app/b", "app.b on fs1");
        assert!(all_parquet(dir2.path()).is_empty());
        assert!(
            all_parquet(&local_dir(&server)).is_empty(),
            "files of tables on fs1 on local: {:?}",
            files(&local_dir(&server))
        );
        check(&c, "app.a", &a, "after a flush to fs1").await;

        // ALTER STORAGE changes what it says; several clauses at once.
        exec(
            &c,
            "ALTER STORAGE fs1 SET DESCRIPTION 'renamed' SHARED_TABLES_TEMPLATE 'v2/{namespace}/{tableName}'",
        )
        .await;
        let fs1 = storage_row(&c, "fs1").await;
        assert_eq!(fs1["description"], "renamed");
        assert_eq!(fs1["shared_tables_template"], "v2/{namespace}/{tableName}");
        fails(&c, "ALTER STORAGE nope SET DESCRIPTION 'x'", UNDEFINED).await;

        // A template change never strands files: app.b's next flush goes to
        // the new directory, the old file stays readable where it is.
        exec(&c, "UPDATE app.b SET v = 'b-new' WHERE id = 5").await;
        b.insert(5, "b-new".into());
        insert(&c, "app.b", &mut b, 41, 50, "b").await;
        flush(&c, "app.b").await;
        assert_partition(dir1.path(), "v2/app/b", "app.b after the template change");
        assert!(!parquet_in(dir1.path(), "app/b").is_empty());
        check(&c, "app.b", &b, "across two templates").await;

        // ALTER TABLE … SET (STORAGE_ID) moves future flushes only.
        let before = parquet_in(dir1.path(), "app/a");
        exec(&c, "ALTER TABLE app.a SET (STORAGE_ID = 'fs2')").await;
        fails(&c, "ALTER TABLE app.a SET (STORAGE_ID = 'nope')", UNDEFINED).await;
        assert_eq!(
            one(
                &c,
                "SELECT storage_id FROM system.tables WHERE namespace_id = 'app' AND table_name = 'a'"
            )
            .await,
            "fs2"
        );
        insert(&c, "app.a", &mut a, 41, 60, "a").await;
        exec(&c, "UPDATE app.a SET v = 'a-new' WHERE id = 7").await;
        a.insert(7, "a-new".into());
        exec(&c, "DELETE FROM app.a WHERE id = 8").await;
        a.remove(&8);
        flush(&c, "app.a").await;
        assert_partition(dir2.path(), "app/a", "app.a after moving to fs2");
        assert_eq!(
            parquet_in(dir1.path(), "app/a"),
            before,
            "the old files stay on fs1"
        );
        check(&c, "app.a", &a, "across two storages").await;

        server.restart().await;
        let c = server.client().await;
        assert_eq!(storage_ids(&c).await, ["fs1", "fs2", "local"]);
        assert_eq!(storage_row(&c, "fs1").await["description"], "renamed");
        check(&c, "app.a", &a, "after a restart").await;
        check(&c, "app.b", &b, "after a restart").await;
        job(&c, "COMPACT TABLE app.a").await;
        check(&c, "app.a", &a, "after compaction").await;
    })
    .await;
}

/// USE_USER_STORAGE: alice's and bob's files go to their own storages, carol
/// (who has none) falls back to the table's; a USER table without the flag
/// keeps everyone on the table's storage. Each user reads only their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_storages_follow_the_lookup_chain() {
    timed("lookup chain", TEST_TIMEOUT, async {
        let (da, ua) = storage_dir();
        let (db, ub) = storage_dir();
        let (dt, ut) = storage_dir();
        let mut server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            &format!(
                "CREATE STORAGE sa TYPE 'filesystem' PATH '{ua}';
                 CREATE STORAGE sb TYPE 'filesystem' PATH '{ub}';
                 CREATE STORAGE st TYPE 'filesystem' PATH '{ut}';
                 CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
                 CREATE USER bob WITH PASSWORD 'bob-pw' ROLE user;
                 CREATE USER carol WITH PASSWORD 'carol-pw' ROLE user;
                 ALTER USER alice SET STORAGE 'sa';
                 ALTER USER bob SET STORAGE 'sb';"
            ),
        )
        .await;
        fails(&root, "ALTER USER carol SET STORAGE 'nope'", UNDEFINED).await;
        let users = text_rows(
            &root,
            "SELECT user_id, coalesce(storage_id, 'NULL') FROM system.users \
             WHERE user_id IN ('alice', 'bob', 'carol') ORDER BY user_id",
        )
        .await;
        assert_eq!(users, [["alice", "sa"], ["bob", "sb"], ["carol", "NULL"]]);
        assert_eq!(storage_row(&root, "sa").await["user_count"], "1");
        assert_eq!(storage_row(&root, "st").await["user_count"], "0");

        exec(
            &root,
            "CREATE NAMESPACE app;
             CREATE TABLE app.notes (id BIGINT PRIMARY KEY, v TEXT)
               WITH (TYPE = 'USER', STORAGE_ID = 'st', USE_USER_STORAGE = TRUE);
             CREATE TABLE app.plain (id BIGINT PRIMARY KEY, v TEXT)
               WITH (TYPE = 'USER', STORAGE_ID = 'st')",
        )
        .await;
        let names = ["alice", "bob", "carol"];
        let mut notes: BTreeMap<&str, Model> = BTreeMap::new();
        let mut plain: BTreeMap<&str, Model> = BTreeMap::new();
        for u in names {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            // The same keys for everyone, different values.
            insert(&c, "app.notes", notes.entry(u).or_default(), 1, 20, u).await;
            insert(&c, "app.plain", plain.entry(u).or_default(), 1, 10, u).await;
        }
        flush(&root, "app.notes").await;
        flush(&root, "app.plain").await;

        // Where the files went.
        assert_partition(da.path(), "app/notes/alice", "alice's notes on sa");
        assert_partition(db.path(), "app/notes/bob", "bob's notes on sb");
        assert_partition(dt.path(), "app/notes/carol", "carol's notes on st");
        for u in names {
            assert_partition(dt.path(), &format!("app/plain/{u}"), "app.plain on st");
        }
        let on = |dir: &Path| {
            let mut users: Vec<String> = all_parquet(dir)
                .iter()
                .filter_map(|f| f.strip_prefix("app/notes/"))
                .filter_map(|f| f.split('/').next().map(str::to_string))
                .collect();
            users.dedup();
            users
        };
        assert_eq!(on(da.path()), ["alice"], "{:?}", files(da.path()));
        assert_eq!(on(db.path()), ["bob"], "{:?}", files(db.path()));
        assert_eq!(on(dt.path()), ["carol"], "{:?}", files(dt.path()));
        assert!(
            all_parquet(da.path())
                .iter()
                .all(|f| f.starts_with("app/notes/")),
            "only app.notes (USE_USER_STORAGE) uses alice's storage: {:?}",
            files(da.path())
        );
        assert!(all_parquet(&local_dir(&server)).is_empty());

        // Each user reads exactly their rows (cold now), before and after a restart.
        for round in ["after the flush", "after a restart"] {
            if round == "after a restart" {
                server.restart().await;
            }
            for u in names {
                let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
                check(&c, "app.notes", &notes[u], &format!("of {u} {round}")).await;
                check(&c, "app.plain", &plain[u], &format!("of {u} {round}")).await;
            }
        }
        let root = server.client().await;
        assert_eq!(
            one(
                &root,
                "SELECT storage_id FROM system.users WHERE user_id = 'alice'"
            )
            .await,
            "sa"
        );

        // Refusals name what uses a storage.
        let message = fails(&root, "DROP STORAGE sb", DEPENDENT).await;
        assert!(message.contains("bob"), "{message}");
        let message = fails(&root, "DROP STORAGE st", DEPENDENT).await;
        assert!(
            message.contains("app.notes") && message.contains("app.plain"),
            "{message}"
        );

        // RESET: alice's next flush falls back to the table's storage; her
        // old files stay readable on sa, which therefore cannot be dropped.
        exec(&root, "ALTER USER alice RESET STORAGE").await;
        assert_eq!(
            one(
                &root,
                "SELECT coalesce(storage_id, 'NULL') FROM system.users WHERE user_id = 'alice'"
            )
            .await,
            "NULL"
        );
        assert_eq!(storage_row(&root, "sa").await["user_count"], "0");
        let alice = server.client_as("alice", Some("alice-pw")).await;
        insert(
            &alice,
            "app.notes",
            notes.get_mut("alice").unwrap(),
            21,
            25,
            "alice",
        )
        .await;
        exec(&alice, "UPDATE app.notes SET v = 'changed' WHERE id = 3").await;
        notes.get_mut("alice").unwrap().insert(3, "changed".into());
        flush(&root, "app.notes").await;
        assert_partition(dt.path(), "app/notes/alice", "alice's notes after RESET");
        check(&alice, "app.notes", &notes["alice"], "across sa and st").await;
        let message = fails(&root, "DROP STORAGE sa", DEPENDENT).await;
        assert!(message.contains("sa"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_validated_and_followed() {
    timed("templates", TEST_TIMEOUT, async {
        let (dir, uri) = storage_dir();
        let server = TestServer::start().await;
        let c = server.client().await;
        let create = |clauses: &str| format!("CREATE STORAGE bad TYPE 'filesystem' PATH '{uri}' {clauses}");

        // {namespace} must come before {tableName}; the message shows a valid one.
        let message = fails(
            &c,
            &create("SHARED_TABLES_TEMPLATE '{tableName}/{namespace}'"),
            INVALID,
        )
        .await;
        assert!(message.contains("{namespace}/{tableName}"), "{message}");
        let message = fails(
            &c,
            &create("USER_TABLES_TEMPLATE '{tableName}/{namespace}/{userId}'"),
            INVALID,
        )
        .await;
        assert!(
            message.contains("{namespace}/{tableName}/{userId}"),
            "{message}"
        );
        // A user template must contain {userId}.
        let message = fails(
            &c,
            &create("USER_TABLES_TEMPLATE '{namespace}/{tableName}'"),
            INVALID,
        )
        .await;
        assert!(message.contains("{userId}"), "{message}");
        assert!(
            message.contains("{namespace}/{tableName}/{userId}"),
            "{message}"
        );
        for clauses in [
            "SHARED_TABLES_TEMPLATE '{namespace}/{table}'",
            "SHARED_TABLES_TEMPLATE '{namespace}'",
            "USER_TABLES_TEMPLATE '{userId}'",
            "SHARDING 'zebra'",
            "SHARDING 'hash:0'",
        ] {
            let (code, message) = error(&c, &create(clauses)).await;
            assert_eq!(code, INVALID, "{clauses}: {message}");
        }
        assert_eq!(storage_ids(&c).await, ["local"]);

        exec(
            &c,
            &format!(
                "CREATE STORAGE tpl TYPE 'filesystem' PATH '{uri}'
                   SHARED_TABLES_TEMPLATE 'shared/{{namespace}}/{{tableName}}'
                   USER_TABLES_TEMPLATE 'users/{{namespace}}/{{tableName}}/{{userId}}'"
            ),
        )
        .await;
        let message = fails(
            &c,
            "ALTER STORAGE tpl SET USER_TABLES_TEMPLATE '{namespace}/{tableName}'",
            INVALID,
        )
        .await;
        assert!(message.contains("{userId}"), "{message}");
        fails(
            &c,
            "ALTER STORAGE tpl SET SHARED_TABLES_TEMPLATE '{tableName}-{namespace}'",
            INVALID,
        )
        .await;
        let row = storage_row(&c, "tpl").await;
        assert_eq!(row["shared_tables_template"], "shared/{namespace}/{tableName}");
        assert_eq!(
            row["user_tables_template"],
            "users/{namespace}/{tableName}/{userId}"
        );

        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.s (id BIGINT PRIMARY KEY, v TEXT) STORAGE tpl;
             CREATE TABLE app.u (id BIGINT PRIMARY KEY, v TEXT) WITH (TYPE = 'USER', STORAGE_ID = 'tpl')",
        )
        .await;
        let mut s = Model::new();
        let mut u = Model::new();
        insert(&c, "app.s", &mut s, 1, 20, "s").await;
        insert(&c, "app.u", &mut u, 1, 20, "u").await;
        flush(&c, "app.s").await;
        flush(&c, "app.u").await;
        assert_partition(dir.path(), "shared/app/s", "a SHARED table's template");
        assert_partition(dir.path(), "users/app/u/root", "a USER table's template");
        check(&c, "app.s", &s, "after a flush").await;
        check(&c, "app.u", &u, "after a flush").await;
    })
    .await;
}

/// FNV-1a 64 of the key, the stable hash of `hash:N` (docs/storage.md).
fn fnv1a(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `{shard}` of `hash:n`: the hash modulo n, zero-padded to the width of n - 1.
fn hash_shard(key: &str, n: u64) -> String {
    let width = (n - 1).max(1).to_string().len();
    format!("{:0width$}", fnv1a(key) % n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_layouts_of_the_three_strategies() {
    timed("shards", TEST_TIMEOUT, async {
        let (dir_a, uri_a) = storage_dir();
        let (dir_n, uri_n) = storage_dir();
        let (dir_h, uri_h) = storage_dir();
        let server = TestServer::start().await;
        let c = server.client().await;
        exec(
            &c,
            &format!(
                "CREATE STORAGE sh_alpha TYPE 'filesystem' PATH '{uri_a}' SHARDING 'alphabetic'
                   SHARED_TABLES_TEMPLATE '{{shard}}/{{namespace}}/{{tableName}}'
                   USER_TABLES_TEMPLATE '{{shard}}/{{namespace}}/{{tableName}}/{{userId}}';
                 CREATE STORAGE sh_num TYPE 'filesystem' PATH '{uri_n}' SHARDING 'numeric:1000'
                   USER_TABLES_TEMPLATE '{{namespace}}/{{tableName}}/{{shard}}/{{userId}}';
                 CREATE STORAGE sh_hash TYPE 'filesystem' PATH '{uri_h}' SHARDING 'hash:32'
                   SHARED_TABLES_TEMPLATE '{{namespace}}/{{shard}}/{{tableName}}'
                   USER_TABLES_TEMPLATE '{{namespace}}/{{tableName}}/{{shard}}/{{userId}}'"
            ),
        )
        .await;
        let shardings = text_rows(
            &c,
            "SELECT storage_id, sharding FROM system.storages WHERE storage_id LIKE 'sh_%' ORDER BY storage_id",
        )
        .await;
        assert_eq!(
            shardings,
            [
                ["sh_alpha", "alphabetic"],
                ["sh_hash", "hash:32"],
                ["sh_num", "numeric:1000"]
            ]
        );

        let users = ["Alice", "bob", "12345", "7", "_x"];
        for u in users {
            exec(
                &c,
                &format!("CREATE USER \"{u}\" WITH PASSWORD 'pw' ROLE user"),
            )
            .await;
        }
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.ua (id BIGINT PRIMARY KEY, v TEXT) WITH (TYPE = 'USER', STORAGE_ID = 'sh_alpha');
             CREATE TABLE app.un (id BIGINT PRIMARY KEY, v TEXT) WITH (TYPE = 'USER', STORAGE_ID = 'sh_num');
             CREATE TABLE app.uh (id BIGINT PRIMARY KEY, v TEXT) WITH (TYPE = 'USER', STORAGE_ID = 'sh_hash');
             CREATE TABLE app.orders (id BIGINT PRIMARY KEY, v TEXT) STORAGE sh_alpha;
             CREATE TABLE app.items (id BIGINT PRIMARY KEY, v TEXT) STORAGE sh_hash",
        )
        .await;
        let tables = ["app.ua", "app.un", "app.uh"];
        for u in users {
            for t in tables {
                exec(
                    &c,
                    &format!("EXECUTE AS USER '{u}' (INSERT INTO {t} (id, v) VALUES (1, '{u}'), (2, '{u}'))"),
                )
                .await;
            }
        }
        let mut orders = Model::new();
        let mut items = Model::new();
        insert(&c, "app.orders", &mut orders, 1, 10, "o").await;
        insert(&c, "app.items", &mut items, 1, 10, "i").await;
        for t in tables.iter().chain(&["app.orders", "app.items"]) {
            flush(&c, t).await;
        }

        // alphabetic: the first character, lower-cased; '_' unless a letter or digit.
        for (u, shard) in [("Alice", "a"), ("bob", "b"), ("12345", "1"), ("7", "7"), ("_x", "_")] {
            assert_partition(dir_a.path(), &format!("{shard}/app/ua/{u}"), "alphabetic");
        }
        // SHARED tables shard by table name.
        assert_partition(dir_a.path(), "o/app/orders", "alphabetic, a SHARED table");
        // numeric:1000: floor(id / 1000) for numeric ids.
        assert_partition(dir_n.path(), "app/un/12/12345", "numeric 12345");
        assert_partition(dir_n.path(), "app/un/0/7", "numeric 7");
        // hash:32: a stable hash modulo 32.
        for u in users {
            let shard = hash_shard(u, 32);
            assert_partition(dir_h.path(), &format!("app/uh/{shard}/{u}"), "hash:32");
        }
        assert_partition(
            dir_h.path(),
            &format!("app/{}/items", hash_shard("items", 32)),
            "hash:32, a SHARED table",
        );
        // Non-numeric ids under numeric:N still get a partition of their own,
        // in one directory level below the table.
        for u in ["Alice", "bob", "_x"] {
            let found: Vec<String> = all_parquet(dir_n.path())
                .into_iter()
                .filter(|f| f.contains(&format!("/{u}/")))
                .collect();
            assert!(!found.is_empty(), "numeric:1000 lost {u}: {:?}", files(dir_n.path()));
            assert!(
                found.iter().all(|f| f.starts_with("app/un/") && f.split('/').count() == 5),
                "numeric:1000 layout of {u}: {found:?}"
            );
        }

        // Everyone reads their own rows back from the sharded directories.
        for u in users {
            for t in tables {
                let rows = text_rows(
                    &c,
                    &format!("EXECUTE AS USER '{u}' (SELECT id, v FROM {t} ORDER BY id)"),
                )
                .await;
                assert_eq!(rows, [["1", u], ["2", u]], "{u} reading {t}");
            }
        }
        check(&c, "app.orders", &orders, "sharded").await;
        check(&c, "app.items", &items, "sharded").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_storage_refuses_while_anything_uses_it() {
    timed("drop storage", TEST_TIMEOUT, async {
        let (_d1, u1) = storage_dir();
        let (_d2, u2) = storage_dir();
        let (_d3, u3) = storage_dir();
        let (d4, u4) = storage_dir();
        let mut server = TestServer::start().await;
        let c = server.client().await;
        exec(
            &c,
            &format!(
                "CREATE STORAGE by_table TYPE 'filesystem' PATH '{u1}';
                 CREATE STORAGE by_user TYPE 'filesystem' PATH '{u2}';
                 CREATE STORAGE unused TYPE 'filesystem' PATH '{u3}';
                 CREATE STORAGE with_files TYPE 'filesystem' PATH '{u4}';
                 CREATE NAMESPACE app;
                 CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) STORAGE by_table;
                 CREATE TABLE app.f (id BIGINT PRIMARY KEY, v TEXT) STORAGE with_files;
                 CREATE USER dora WITH PASSWORD 'pw' ROLE user;
                 ALTER USER dora SET STORAGE 'by_user';"
            ),
        )
        .await;
        assert_eq!(storage_row(&c, "by_table").await["table_count"], "1");
        assert_eq!(storage_row(&c, "by_user").await["user_count"], "1");

        let message = fails(&c, "DROP STORAGE by_table", DEPENDENT).await;
        assert!(message.contains("app.t"), "names the table: {message}");
        let message = fails(&c, "DROP STORAGE by_user", DEPENDENT).await;
        assert!(message.contains("dora"), "names the user: {message}");

        exec(&c, "DROP STORAGE unused").await;
        fails(&c, "DROP STORAGE unused", UNDEFINED).await;
        exec(&c, "DROP STORAGE IF EXISTS unused").await;
        fails(
            &c,
            "CREATE TABLE app.x (id BIGINT PRIMARY KEY, v TEXT) STORAGE unused",
            UNDEFINED,
        )
        .await;
        fails(&c, "ALTER USER dora SET STORAGE 'unused'", UNDEFINED).await;

        // Files left on a storage keep it, even when no table points at it.
        let mut f = Model::new();
        insert(&c, "app.f", &mut f, 1, 10, "f").await;
        flush(&c, "app.f").await;
        assert_partition(d4.path(), "app/f", "app.f on with_files");
        exec(&c, "ALTER TABLE app.f SET (STORAGE_ID = 'local')").await;
        assert_eq!(storage_row(&c, "with_files").await["table_count"], "0");
        let message = fails(&c, "DROP STORAGE with_files", DEPENDENT).await;
        assert!(message.contains("with_files"), "{message}");
        check(&c, "app.f", &f, "after the refused drop").await;

        // Once nothing uses them they go.
        exec(&c, "DROP TABLE app.t").await;
        exec(&c, "DROP STORAGE by_table").await;
        exec(&c, "ALTER USER dora RESET STORAGE").await;
        exec(&c, "DROP STORAGE by_user").await;
        assert_eq!(storage_ids(&c).await, ["local", "with_files"]);

        server.restart().await;
        let c = server.client().await;
        assert_eq!(storage_ids(&c).await, ["local", "with_files"]);
        fails(&c, "DROP STORAGE with_files", DEPENDENT).await;
        check(&c, "app.f", &f, "after a restart").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_dba_and_system_roles_manage_storages() {
    timed("storage privileges", TEST_TIMEOUT, async {
        let (_d, uri) = storage_dir();
        let (_e, other) = storage_dir();
        let server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            &format!(
                "CREATE STORAGE shared_disk TYPE 'filesystem' PATH '{uri}' DESCRIPTION 'kept';
                 CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
                 CREATE USER svc WITH PASSWORD 'svc-pw' ROLE service;
                 CREATE USER ops WITH PASSWORD 'ops-pw' ROLE dba;
                 CREATE USER sys WITH PASSWORD 'sys-pw' ROLE system;"
            ),
        )
        .await;
        for u in ["alice", "svc"] {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            for sql in [
                format!("CREATE STORAGE mine TYPE 'filesystem' PATH '{other}'"),
                "ALTER STORAGE shared_disk SET DESCRIPTION 'taken'".to_string(),
                "DROP STORAGE shared_disk".to_string(),
                "DROP STORAGE IF EXISTS shared_disk".to_string(),
            ] {
                let (code, message) = error(&c, &sql).await;
                assert_eq!(code, DENIED, "{u}: {sql}: {message}");
            }
        }
        let alice = server.client_as("alice", Some("alice-pw")).await;
        let (code, _) = error(&alice, "ALTER USER svc SET STORAGE 'shared_disk'").await;
        assert_eq!(code, DENIED, "a plain user sets another user's storage");
        assert_eq!(storage_ids(&root).await, ["local", "shared_disk"]);
        assert_eq!(
            storage_row(&root, "shared_disk").await["description"],
            "kept"
        );

        for u in ["ops", "sys"] {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            exec(
                &c,
                &format!(
                    "CREATE STORAGE by_{u} TYPE 'filesystem' PATH '{other}' DESCRIPTION '{u}'"
                ),
            )
            .await;
            exec(&c, &format!("ALTER STORAGE by_{u} SET DESCRIPTION '{u} 2'")).await;
            assert_eq!(
                storage_row(&c, &format!("by_{u}")).await["description"],
                format!("{u} 2")
            );
            exec(&c, &format!("ALTER USER alice SET STORAGE 'by_{u}'")).await;
            exec(&c, "ALTER USER alice RESET STORAGE").await;
            exec(&c, &format!("DROP STORAGE by_{u}")).await;
        }
        assert_eq!(storage_ids(&root).await, ["local", "shared_disk"]);
    })
    .await;
}

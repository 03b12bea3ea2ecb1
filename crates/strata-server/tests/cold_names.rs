//! The cold tier under names object_store escapes (`#`, `~`, `%`, `{}`, space,
//! `/`, `..`, non-ASCII) and with float values Parquet statistics treat
//! specially (NaN, ±Inf, ±0): whatever is flushed reads back the same, stays
//! writable, survives compaction and restarts, lands in its own directory, and
//! filters return the same rows before and after a flush.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_cold::layout;
use tokio_postgres::Client;

use common::{TestServer, sqlstate, text_rows, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A quoted identifier.
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(ns: &str, table: &str) -> String {
    format!("{}.{}", q(ns), q(table))
}

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}

/// Creates namespace `ns` (if needed) and SHARED table `ns.t (id, v)`.
async fn create_table(client: &Client, ns: &str, t: &str) {
    exec(client, &format!("CREATE NAMESPACE IF NOT EXISTS {}", q(ns))).await;
    exec(
        client,
        &format!(
            "CREATE TABLE {} (id BIGINT PRIMARY KEY, v TEXT)",
            qualified(ns, t)
        ),
    )
    .await;
}

/// Runs FLUSH TABLE / COMPACT TABLE and waits for its job.
async fn job(client: &Client, sql: &str) {
    let id = text_rows(client, sql).await[0][0].clone();
    wait_job(client, &id).await;
}

type Model = BTreeMap<i64, String>;

async fn check_model(client: &Client, table: &str, model: &Model, when: &str) {
    let got: Model = text_rows(client, &format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .into_iter()
        .map(|r| (r[0].parse().expect("id"), r[1].clone()))
        .collect();
    assert_eq!(&got, model, "{table} {when}");
}

/// Inserts ids `from..=to` with value `{tag}{id}`, updates one flushed row and
/// deletes another, checking the table after each step.
async fn write_more(
    client: &Client,
    table: &str,
    model: &mut Model,
    from: i64,
    to: i64,
    tag: &str,
) {
    let values: Vec<String> = (from..=to).map(|i| format!("({i}, '{tag}{i}')")).collect();
    exec(
        client,
        &format!("INSERT INTO {table} (id, v) VALUES {}", values.join(",")),
    )
    .await;
    model.extend((from..=to).map(|i| (i, format!("{tag}{i}"))));
    check_model(client, table, model, "after INSERT").await;
    let (upd, del) = (from / 2 + 1, from / 2 + 2);
    exec(
        client,
        &format!("UPDATE {table} SET v = 'u{upd}' WHERE id = {upd}"),
    )
    .await;
    model.insert(upd, format!("u{upd}"));
    exec(client, &format!("DELETE FROM {table} WHERE id = {del}")).await;
    model.remove(&del);
    check_model(client, table, model, "after UPDATE/DELETE").await;
}

/// Files (recursively) under `dir` whose name ends with `ext`.
fn files_under(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p, ext));
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p);
            }
        }
    }
    out
}

/// Where the storage keeps a partition: one escaped segment per name.
fn partition_dir(server: &TestServer, names: &[&str]) -> PathBuf {
    let mut dir = server.data_dir().join("storage");
    for n in names {
        dir.push(layout::segment(n));
    }
    dir
}

const SHARED: [(&str, &str); 5] = [
    ("app", "t#1"),
    ("app", "a%2Fb ~{x}"),
    ("app", "../up/.."),
    ("app", "{userId}"),
    ("sp ace#%", "é/.."),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_tables_with_escaped_names_keep_their_rows() {
    timed("shared names", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let mut c = server.client().await;
        let mut models = vec![];
        for (ns, t) in SHARED {
            let table = qualified(ns, t);
            create_table(&c, ns, t).await;
            let mut model = Model::new();
            write_more(&c, &table, &mut model, 1, 20, "v").await;
            job(&c, &format!("FLUSH TABLE {table}")).await;
            check_model(&c, &table, &model, "after the first flush").await;
            let dir = partition_dir(&server, &[ns, t]);
            assert!(
                !files_under(&dir, ".parquet").is_empty() && dir.join("manifest.json").exists(),
                "no cold files of {table} in {}",
                dir.display()
            );
            write_more(&c, &table, &mut model, 21, 30, "w").await;
            job(&c, &format!("FLUSH TABLE {table}")).await;
            check_model(&c, &table, &model, "after the second flush").await;
            job(&c, &format!("COMPACT TABLE {table}")).await;
            check_model(&c, &table, &model, "after COMPACT").await;
            write_more(&c, &table, &mut model, 31, 35, "x").await;
            models.push((table, model));
        }
        // Every namespace directory is one a table above lives in: nothing was
        // written under a twice-escaped or unescaped name.
        let mut top: Vec<String> = std::fs::read_dir(server.data_dir().join("storage"))
            .expect("storage dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        top.sort();
        let mut expected: Vec<String> = SHARED.iter().map(|(ns, _)| layout::segment(ns)).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(top, expected);

        // Startup removes objects no manifest references: every file of these
        // tables must still be found referenced (recorded text = listed path).
        server.restart().await;
        c = server.client().await;
        for (table, model) in &models {
            check_model(&c, table, model, "after a restart").await;
        }

        // A dropped table's files go (at the latest at the next startup).
        let (ns, t) = SHARED[0];
        exec(&c, &format!("DROP TABLE {}", qualified(ns, t))).await;
        server.restart().await;
        c = server.client().await;
        let left = files_under(&partition_dir(&server, &[ns, t]), ".parquet");
        assert!(left.is_empty(), "files of a dropped table left: {left:?}");
        for (table, model) in &models[1..] {
            check_model(&c, table, model, "after dropping another table").await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tables_of_users_with_escaped_names_keep_their_rows() {
    timed("user names", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE NAMESPACE app;
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, v TEXT)",
        )
        .await;
        // "bob~1" must be accepted; the others are tried if the catalog allows them.
        let mut users = vec![];
        for (i, u) in ["bob~1", "a/../b", "..", "日本 #%{userId}"]
            .into_iter()
            .enumerate()
        {
            let created = root
                .batch_execute(&format!(
                    "CREATE USER {} WITH PASSWORD 'pw' ROLE user",
                    q(u)
                ))
                .await;
            match created {
                Ok(()) => users.push(u),
                Err(e) if i > 0 => eprintln!("user {u:?} not accepted: {e:?}"),
                Err(e) => panic!("CREATE USER {u}: {e:?}"),
            }
        }
        let mut models: Vec<Model> = vec![Model::new(); users.len()];
        for (u, model) in users.iter().zip(models.iter_mut()) {
            let c = server.client_as(u, Some("pw")).await;
            write_more(&c, "app.notes", model, 1, 20, "v").await;
        }
        job(&root, "FLUSH TABLE app.notes").await;
        for (u, model) in users.iter().zip(models.iter_mut()) {
            let c = server.client_as(u, Some("pw")).await;
            check_model(&c, "app.notes", model, &format!("of {u} after the flush")).await;
            let dir = partition_dir(&server, &["app", "notes", u]);
            assert!(
                !files_under(&dir, ".parquet").is_empty(),
                "no cold files of {u} in {}",
                dir.display()
            );
            write_more(&c, "app.notes", model, 21, 30, "w").await;
        }
        job(&root, "FLUSH TABLE app.notes").await;
        job(&root, "COMPACT TABLE app.notes").await;
        for (u, model) in users.iter().zip(models.iter_mut()) {
            let c = server.client_as(u, Some("pw")).await;
            check_model(&c, "app.notes", model, &format!("of {u} after COMPACT")).await;
            write_more(&c, "app.notes", model, 31, 35, "x").await;
        }
        let notes = server.data_dir().join("storage/app/notes");
        let mut dirs: Vec<String> = std::fs::read_dir(&notes)
            .expect("table dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        dirs.sort();
        let mut expected: Vec<String> = users.iter().map(|u| layout::segment(u)).collect();
        expected.sort();
        assert_eq!(
            dirs,
            expected,
            "one directory per user under {}",
            notes.display()
        );

        server.restart().await;
        for (u, model) in users.iter().zip(&models) {
            let c = server.client_as(u, Some("pw")).await;
            check_model(&c, "app.notes", model, &format!("of {u} after a restart")).await;
        }
    })
    .await;
}

/// Values Parquet statistics and float comparisons treat specially.
const SPECIAL: &str = "(1, 'NaN'), (2, 'Infinity'), (3, '-Infinity'), (4, -0.0), (5, 0), \
                       (6, NULL), (7, 1.5), (8, 150), (9, -2.5), (10, '-0'), (11, '1e308')";
const MORE: &str = "(21, 'NaN'), (22, 99.5), (23, NULL), (24, -1e308), (25, 0.0)";

const FILTERS: &[&str] = &[
    "x > 100",
    "x >= 100",
    "x < 0",
    "x <= 0",
    "x >= 0",
    "x > 0",
    "x = 0",
    "x = -0.0",
    "x = '-0'",
    "x <> 0",
    "x = 'NaN'",
    "x <> 'NaN'",
    "x < 'NaN'",
    "x >= 'NaN'",
    "x > 'Infinity'",
    "x >= 'Infinity'",
    "x = 'Infinity'",
    "x < '-Infinity'",
    "x <= '-Infinity'",
    "x IS NULL",
    "x IS NOT NULL",
    "x BETWEEN -1 AND 1",
    "x > 1e308",
    "x > 100 OR x IS NULL",
    "NOT (x <= 100)",
];

async fn filtered(client: &Client, table: &str) -> Vec<(String, Vec<String>)> {
    let mut out = vec![];
    for f in FILTERS {
        let ids = text_rows(
            client,
            &format!("SELECT id FROM {table} WHERE {f} ORDER BY id"),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
        out.push((f.to_string(), ids));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn float_filters_return_the_same_rows_before_and_after_a_flush() {
    timed("float filters", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let table = qualified("app", "f#1");
        exec(
            &c,
            &format!(
                "CREATE NAMESPACE app; CREATE TABLE {table} (id BIGINT PRIMARY KEY, x DOUBLE)"
            ),
        )
        .await;
        exec(&c, &format!("INSERT INTO {table} (id, x) VALUES {SPECIAL}")).await;
        let hot = filtered(&c, &table).await;
        let nan_over_100 = &hot[0].1;
        assert!(
            nan_over_100.contains(&"1".to_string()),
            "NaN sorts above every number, as in Postgres: {hot:?}"
        );
        job(&c, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(filtered(&c, &table).await, hot, "after a flush");

        // A second file (one holding NaN, one not), then both compacted.
        exec(&c, &format!("INSERT INTO {table} (id, x) VALUES {MORE}")).await;
        let mixed = filtered(&c, &table).await;
        job(&c, &format!("FLUSH TABLE {table}")).await;
        assert_eq!(filtered(&c, &table).await, mixed, "after a second flush");
        job(&c, &format!("COMPACT TABLE {table}")).await;
        assert_eq!(filtered(&c, &table).await, mixed, "after COMPACT");

        // A file without NaN prunes: filters still agree.
        let plain = qualified("app", "plain");
        exec(
            &c,
            &format!("CREATE TABLE {plain} (id BIGINT PRIMARY KEY, x DOUBLE)"),
        )
        .await;
        exec(
            &c,
            &format!("INSERT INTO {plain} (id, x) VALUES (1, -0.0), (2, 0), (3, 5), (4, NULL)"),
        )
        .await;
        let hot = filtered(&c, &plain).await;
        job(&c, &format!("FLUSH TABLE {plain}")).await;
        assert_eq!(
            filtered(&c, &plain).await,
            hot,
            "NaN-free file after a flush"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_name_objects_relative_to_the_storage() {
    timed("storage errors", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let table = qualified("app", "gone#1");
        exec(
            &c,
            &format!(
                "CREATE NAMESPACE app; CREATE TABLE {table} (id BIGINT PRIMARY KEY, v TEXT);
                 INSERT INTO {table} (id, v) VALUES (1, 'a'), (2, 'b')"
            ),
        )
        .await;
        job(&c, &format!("FLUSH TABLE {table}")).await;
        let files = files_under(&partition_dir(&server, &["app", "gone#1"]), ".parquet");
        assert!(!files.is_empty());
        for f in &files {
            std::fs::remove_file(f).expect("remove a cold file");
        }
        let err = c
            .simple_query(&format!("SELECT * FROM {table}"))
            .await
            .expect_err("reading a missing object fails");
        let db = err.as_db_error().expect("a server error");
        assert_eq!(sqlstate(&err).as_deref(), Some("58030"), "{db:?}");
        let data_dir = server.data_dir().display().to_string();
        let canonical = std::fs::canonicalize(server.data_dir())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| data_dir.clone());
        let text = format!("{} {:?} {:?}", db.message(), db.detail(), db.hint());
        assert!(
            !text.contains(&data_dir) && !text.contains(&canonical),
            "error shows the server's path: {text}"
        );
        assert!(
            text.contains("app/gone%231/batch-"),
            "error names the object: {text}"
        );
    })
    .await;
}

/// Objects released by COMPACT TABLE and DROP TABLE are deleted through their
/// garbage records (whose paths garbage collection must parse, not escape
/// again), not left to startup's orphan sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_deletes_objects_of_escaped_names() {
    timed("garbage names", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;
        for (i, (ns, t)) in SHARED.into_iter().enumerate() {
            let table = qualified(ns, t);
            create_table(&c, ns, t).await;
            for id in [1, 2] {
                exec(
                    &c,
                    &format!("INSERT INTO {table} (id, v) VALUES ({id}, 'a')"),
                )
                .await;
                job(&c, &format!("FLUSH TABLE {table}")).await;
            }
            if i % 2 == 0 {
                exec(&c, &format!("DROP TABLE {table}")).await;
            } else {
                job(&c, &format!("COMPACT TABLE {table}")).await;
            }
        }
        server.restart().await;
        let orphans = server
            .log_lines()
            .iter()
            .any(|l| l.contains("removed objects no manifest references"));
        assert!(
            !orphans,
            "released objects were left to the orphan sweep\n{}",
            server.log_tail()
        );
        // What is left is exactly the compacted file of each kept table.
        let left = files_under(&server.data_dir().join("storage"), ".parquet");
        assert_eq!(left.len(), SHARED.len() / 2, "objects left: {left:?}");
        for (ns, t) in SHARED.into_iter().skip(1).step_by(2) {
            let mirror = partition_dir(&server, &[ns, t]).join("manifest.json");
            assert!(mirror.exists(), "{}", mirror.display());
        }
    })
    .await;
}

/// DROP TABLE releases the Parquet files through garbage records and removes
/// the partitions' `manifest.json` listings: after a restart (which collects
/// the garbage) nothing of the dropped tables is left in storage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tables_leave_no_objects() {
    timed("dropped mirrors", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;
        for (ns, t) in SHARED {
            let table = qualified(ns, t);
            create_table(&c, ns, t).await;
            exec(&c, &format!("INSERT INTO {table} (id, v) VALUES (1, 'a')")).await;
            job(&c, &format!("FLUSH TABLE {table}")).await;
            exec(&c, &format!("DROP TABLE {table}")).await;
        }
        server.restart().await;
        let left: Vec<PathBuf> = files_under(&server.data_dir().join("storage"), "");
        assert!(left.is_empty(), "objects of dropped tables left: {left:?}");
    })
    .await;
}

/// The live rows a partition's `manifest.json` lists, once it says `want`
/// (the listing is rewritten off the writer's path, so it is polled).
async fn listed_live_rows(listing: &Path, want: u64) -> u64 {
    let mut seen = u64::MAX;
    for _ in 0..100 {
        if let Ok(bytes) = std::fs::read(listing) {
            let doc: serde_json::Value = serde_json::from_slice(&bytes).expect("manifest.json");
            seen = doc["files"]
                .as_array()
                .expect("files")
                .iter()
                .map(|f| f["live_rows"].as_u64().expect("live_rows"))
                .sum();
            if seen == want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// UPDATE and DELETE of cold rows (alone and in a block) change the file's
/// deletion vector, and the partition's `manifest.json` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_cold_rows_republish_the_listing() {
    timed("listing after writes", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let (ns, t) = SHARED[0];
        let table = qualified(ns, t);
        create_table(&c, ns, t).await;
        exec(
            &c,
            &format!("INSERT INTO {table} (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')"),
        )
        .await;
        job(&c, &format!("FLUSH TABLE {table}")).await;
        let listing = partition_dir(&server, &[ns, t]).join("manifest.json");
        assert_eq!(listed_live_rows(&listing, 4).await, 4);
        exec(&c, &format!("UPDATE {table} SET v = 'A' WHERE id = 1")).await;
        assert_eq!(listed_live_rows(&listing, 3).await, 3, "after UPDATE");
        exec(&c, &format!("DELETE FROM {table} WHERE id = 2")).await;
        assert_eq!(listed_live_rows(&listing, 2).await, 2, "after DELETE");
        exec(
            &c,
            &format!("BEGIN; DELETE FROM {table} WHERE id = 3; COMMIT"),
        )
        .await;
        assert_eq!(listed_live_rows(&listing, 1).await, 1, "after a block");
        let rows = text_rows(&c, &format!("SELECT id, v FROM {table} ORDER BY id")).await;
        assert_eq!(rows, vec![vec!["1", "A"], vec!["4", "d"]]);
    })
    .await;
}

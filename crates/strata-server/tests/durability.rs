//! Durability: data and catalog survive a clean restart (SIGTERM) and a crash
//! (SIGKILL) of the server.
//!
//! The contract: once a statement is acknowledged to the client, its effect
//! is present after any restart, exactly once; statements that were never
//! acknowledged leave either no trace or their full effect (statements are
//! atomic); the catalog (namespaces, tables, columns, options) comes back
//! intact; `_seq` keeps increasing across restarts.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use common::{TestServer, simple_rows, sqlstate, timed};

/// Upper bound for a whole test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

async fn exec(client: &Client, sql: &str) -> Vec<SimpleQueryMessage> {
    match client.simple_query(sql).await {
        Ok(messages) => messages,
        Err(e) => panic!("{sql}\n  failed: {e} (sqlstate {:?})", sqlstate(&e)),
    }
}

async fn rows(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    simple_rows(&exec(client, sql).await)
}

/// The user-visible state of the `dur` namespace: table contents (with
/// `_seq`) and the catalog, as text.
#[derive(Debug, PartialEq)]
struct Snapshot {
    items: Vec<Vec<Option<String>>>,
    events: Vec<Vec<Option<String>>>,
    show_tables: Vec<Vec<Option<String>>>,
    show_namespaces: Vec<Vec<Option<String>>>,
    system_tables: Vec<Vec<Option<String>>>,
    system_columns: Vec<Vec<Option<String>>>,
}

async fn snapshot(client: &Client) -> Snapshot {
    Snapshot {
        items: rows(client, "SELECT id, name, score, _seq FROM dur.items ORDER BY id").await,
        events: rows(client, "SELECT id, kind, extra FROM dur.events ORDER BY id").await,
        show_tables: rows(client, "SHOW TABLES IN dur").await,
        show_namespaces: rows(client, "SHOW NAMESPACES").await,
        // Only the definition columns: row/file counters may legitimately
        // change when a restart flushes the hot tier.
        system_tables: rows(
            client,
            "SELECT namespace_id, table_name, table_type, storage_id, flush_policy, access_level, ttl_seconds, created_at
             FROM system.tables WHERE namespace_id = 'dur' ORDER BY table_name",
        )
        .await,
        system_columns: rows(
            client,
            "SELECT table_name, column_name, ordinal, data_type, is_nullable, is_primary_key
             FROM system.columns WHERE namespace_id = 'dur' ORDER BY table_name, ordinal",
        )
        .await,
    }
}

/// Expected content of `dur.items` after [`populate`], by id.
fn expected_items(n: i64) -> BTreeMap<i64, (String, String)> {
    let mut rows = BTreeMap::new();
    for id in 1..=n {
        if id % 11 == 0 {
            continue; // deleted
        }
        let name = if id % 7 == 0 {
            format!("updated-{id}")
        } else {
            format!("item-{id}")
        };
        rows.insert(id, (name, format!("{}", id as f64 / 2.0)));
    }
    rows
}

/// Creates the schema and `n` rows, updates every 7th row and deletes every
/// 11th, through a mix of statement forms.
async fn populate(client: &Client, n: i64) {
    exec(client, "CREATE NAMESPACE dur").await;
    exec(
        client,
        "CREATE TABLE dur.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, score DOUBLE PRECISION DEFAULT 0)
         FLUSH ROWS 100",
    )
    .await;
    exec(
        client,
        "CREATE SHARED TABLE dur.events (id BIGINT PRIMARY KEY, kind TEXT, extra INT)
         WITH (FLUSH_POLICY = 'rows:1000,interval:300', ACCESS_LEVEL = 'PUBLIC')",
    )
    .await;
    // Multi-row inserts in batches of 50 ...
    let mut id = 1;
    while id <= n {
        let end = (id + 49).min(n);
        let values: Vec<String> = (id..=end)
            .map(|i| format!("({i}, 'item-{i}', {})", i as f64 / 2.0))
            .collect();
        exec(
            client,
            &format!(
                "INSERT INTO dur.items (id, name, score) VALUES {}",
                values.join(", ")
            ),
        )
        .await;
        id = end + 1;
    }
    // ... single-row updates and a set-based delete.
    let update = client
        .prepare("UPDATE dur.items SET name = $2 WHERE id = $1")
        .await
        .expect("prepare update");
    for id in (7..=n).step_by(7) {
        let affected = client
            .execute(&update, &[&id, &format!("updated-{id}")])
            .await
            .expect("update");
        assert_eq!(affected, 1, "update of id {id}");
    }
    exec(client, "DELETE FROM dur.items WHERE id % 11 = 0").await;

    // Schema change plus a second table with data.
    exec(client, "ALTER TABLE dur.events ADD COLUMN note TEXT").await;
    exec(client, "INSERT INTO dur.events (id, kind, extra, note) VALUES (1, 'a', 10, 'n1'), (2, 'b', NULL, NULL)").await;
    exec(client, "ALTER TABLE dur.events DROP COLUMN note").await;
    // A table that is created and dropped again must stay dropped.
    exec(client, "CREATE TABLE dur.scratch (id BIGINT PRIMARY KEY)").await;
    exec(client, "INSERT INTO dur.scratch VALUES (1)").await;
    exec(client, "DROP TABLE dur.scratch").await;
}

/// Checks `dur.items` against `expected` (name and score per id) and that no
/// id appears twice.
async fn check_items(client: &Client, expected: &BTreeMap<i64, (String, String)>, when: &str) {
    let got = rows(client, "SELECT id, name, score FROM dur.items ORDER BY id").await;
    let mut actual = BTreeMap::new();
    for row in &got {
        let id: i64 = row[0]
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{when}: bad id in {row:?}"));
        let name = row[1].clone().unwrap_or_default();
        let score = row[2].clone().unwrap_or_default();
        let previous = actual.insert(id, (name, score));
        assert!(previous.is_none(), "{when}: id {id} returned twice");
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|id| !actual.contains_key(id))
        .collect();
    let unexpected: Vec<_> = actual
        .keys()
        .filter(|id| !expected.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{when}: {} acknowledged rows missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        unexpected.is_empty(),
        "{when}: {} unexpected rows, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(10)]
    );
    for (id, (name, score)) in expected {
        let (got_name, got_score) = &actual[id];
        assert_eq!(got_name, name, "{when}: name of id {id}");
        // Scores are compared numerically (text formatting of floats is not
        // what this test is about).
        let parse = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        assert_eq!(
            parse(got_score),
            parse(score),
            "{when}: score of id {id} ({got_score} vs {score})"
        );
    }
    let counts = rows(client, "SELECT count(*), count(DISTINCT id) FROM dur.items").await;
    let n = expected.len().to_string();
    assert_eq!(
        counts,
        vec![vec![Some(n.clone()), Some(n)]],
        "{when}: count(*) and count(DISTINCT id)"
    );
}

async fn max_seq(client: &Client) -> i64 {
    let r = rows(client, "SELECT max(_seq) FROM dur.items").await;
    r[0][0]
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("max(_seq) is a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_then_crash_keep_every_acknowledged_row() {
    const N: i64 = 500;
    let mut server = TestServer::start().await;
    timed("durability scenario", TEST_TIMEOUT, async {
        // ---- populate and snapshot ----
        let client = server.client().await;
        populate(&client, N).await;
        let mut expected = expected_items(N);
        check_items(&client, &expected, "before restart").await;
        let before = snapshot(&client).await;
        assert_eq!(before.events.len(), 2, "events rows before restart: {:?}", before.events);
        assert_eq!(before.show_tables.len(), 2, "tables before restart: {:?}", before.show_tables);
        let seq_before = max_seq(&client).await;
        drop(client);

        // ---- clean restart: everything identical, including _seq ----
        let status = server.restart().await;
        eprintln!("server exited with {status:?} on SIGTERM");
        let client = server.client().await;
        let after = snapshot(&client).await;
        assert_eq!(after, before, "state after a clean restart differs from before");
        check_items(&client, &expected, "after clean restart").await;

        // New writes get larger sequence numbers than anything before.
        exec(&client, "INSERT INTO dur.items (id, name, score) VALUES (100001, 'post-restart', 1.5)").await;
        expected.insert(100_001, ("post-restart".into(), "1.5".into()));
        let seq_new = rows(&client, "SELECT _seq FROM dur.items WHERE id = 100001").await;
        let seq_new: i64 = seq_new[0][0].as_deref().and_then(|s| s.parse().ok()).expect("_seq of the new row");
        assert!(seq_new > seq_before, "_seq after restart ({seq_new}) must exceed the max before ({seq_before})");

        // ---- more acknowledged writes, then SIGKILL ----
        let insert = client
            .prepare("INSERT INTO dur.items (id, name, score) VALUES ($1, $2, $3)")
            .await
            .expect("prepare insert");
        for id in 200_000..200_300i64 {
            client.execute(&insert, &[&id, &format!("late-{id}"), &0.25f64]).await.expect("late insert");
            expected.insert(id, (format!("late-{id}"), "0.25".into()));
        }
        exec(&client, "UPDATE dur.items SET name = 'renamed', score = 9.5 WHERE id BETWEEN 200000 AND 200009").await;
        for id in 200_000..200_010i64 {
            expected.insert(id, ("renamed".into(), "9.5".into()));
        }
        exec(&client, "DELETE FROM dur.items WHERE id >= 200290").await;
        for id in 200_290..200_300i64 {
            expected.remove(&id);
        }
        exec(&client, "INSERT INTO dur.items (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name").await;
        expected.insert(1, ("x".into(), "0.5".into()));
        exec(&client, "CREATE TABLE dur.after_restart (id BIGINT PRIMARY KEY, v TEXT) FLUSH INTERVAL 60s").await;
        exec(&client, "INSERT INTO dur.after_restart VALUES (1, 'one')").await;
        drop(insert);
        drop(client);

        server.kill9().await;
        server.restart().await;

        // ---- after the crash: every acknowledged effect, exactly once ----
        let client = server.client().await;
        check_items(&client, &expected, "after kill -9").await;
        assert_eq!(
            rows(&client, "SELECT id, v FROM dur.after_restart").await,
            vec![vec![Some("1".into()), Some("one".into())]],
            "table created after the first restart"
        );
        let show = rows(&client, "SHOW TABLES IN dur").await;
        let names: Vec<_> = show.iter().map(|r| r[1].clone().unwrap_or_default()).collect();
        assert_eq!(names, vec!["after_restart", "events", "items"], "SHOW TABLES IN dur after kill -9: {show:?}");
        let crashed = snapshot(&client).await;
        assert_eq!(crashed.events, before.events, "events after kill -9");
        assert_eq!(crashed.show_namespaces, before.show_namespaces, "namespaces after kill -9");
        let items_def = |s: &Snapshot| s.system_tables.iter().filter(|r| r[1].as_deref() != Some("after_restart")).cloned().collect::<Vec<_>>();
        assert_eq!(items_def(&crashed), items_def(&before), "system.tables after kill -9");
        let cols_of = |s: &Snapshot| s.system_columns.iter().filter(|r| r[0].as_deref() != Some("after_restart")).cloned().collect::<Vec<_>>();
        assert_eq!(cols_of(&crashed), cols_of(&before), "system.columns after kill -9");
        assert_eq!(
            rows(&client, "SELECT flush_policy FROM system.tables WHERE namespace_id = 'dur' AND table_name = 'after_restart'").await.len(),
            1,
            "system.tables lists the table created before the crash"
        );
        // The dropped table stays dropped.
        let err = client.simple_query("SELECT * FROM dur.scratch").await.expect_err("dur.scratch was dropped");
        assert_eq!(sqlstate(&err).as_deref(), Some("42P01"), "{err}");

        // Writes still work and sequences keep increasing after recovery.
        let seq_crash = max_seq(&client).await;
        exec(&client, "INSERT INTO dur.items (id, name, score) VALUES (300001, 'after-crash', 2)").await;
        let r = rows(&client, "SELECT _seq FROM dur.items WHERE id = 300001").await;
        let seq_after: i64 = r[0][0].as_deref().and_then(|s| s.parse().ok()).expect("_seq");
        assert!(seq_after > seq_crash, "_seq after recovery ({seq_after}) must exceed the max before ({seq_crash})");
        // Primary keys are still enforced on recovered data.
        let err = client
            .simple_query("INSERT INTO dur.items (id, name) VALUES (2, 'dup')")
            .await
            .expect_err("recovered key 2 must still be unique");
        assert_eq!(sqlstate(&err).as_deref(), Some("23505"), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_concurrent_writes_keeps_acknowledged_rows() {
    const WRITERS: i64 = 4;
    let mut server = TestServer::start().await;
    timed("kill -9 under load", TEST_TIMEOUT, async {
        let client = server.client().await;
        exec(&client, "CREATE NAMESPACE load").await;
        exec(&client, "CREATE TABLE load.t (id BIGINT PRIMARY KEY, writer INT NOT NULL, v TEXT) FLUSH ROWS 50").await;
        drop(client);

        // Writers insert rows one at a time and record which were
        // acknowledged; the one in flight at the crash is "unknown".
        let acked: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
        let in_flight: Arc<Mutex<Vec<i64>>> = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let port = server.port();
            let acked = Arc::clone(&acked);
            let in_flight = Arc::clone(&in_flight);
            tasks.push(tokio::spawn(async move {
                let Ok(client) = common::connect(port).await else { return };
                let Ok(insert) = client.prepare("INSERT INTO load.t (id, writer, v) VALUES ($1, $2, $3)").await else {
                    return;
                };
                // Bounded: stops at the crash, or after 100k rows at most.
                for i in 0..100_000i64 {
                    let id = writer * 1_000_000 + i;
                    if let Ok(mut f) = in_flight.lock() {
                        f.push(id);
                    }
                    let ok = client.execute(&insert, &[&id, &(writer as i32), &format!("v{id}")]).await.is_ok();
                    if !ok {
                        break;
                    }
                    if let Ok(mut a) = acked.lock() {
                        a.push(id);
                    }
                }
            }));
        }

        // Let the writers run, then crash the server under them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.kill9().await;
        for task in tasks {
            let _ = timed("writer to notice the crash", Duration::from_secs(30), task).await;
        }
        let acked: Vec<i64> = acked.lock().map(|a| a.clone()).unwrap_or_default();
        let attempted: Vec<i64> = in_flight.lock().map(|a| a.clone()).unwrap_or_default();
        assert!(!acked.is_empty(), "no insert was acknowledged before the crash");
        eprintln!("{} rows acknowledged before kill -9", acked.len());

        server.restart().await;
        let client = server.client().await;
        let got = rows(&client, "SELECT id FROM load.t ORDER BY id").await;
        let got: Vec<i64> = got.iter().map(|r| r[0].as_deref().and_then(|s| s.parse().ok()).expect("id")).collect();
        let mut dedup = got.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), got.len(), "duplicate ids after recovery");
        let present: std::collections::HashSet<i64> = got.iter().copied().collect();
        let missing: Vec<i64> = acked.iter().copied().filter(|id| !present.contains(id)).collect();
        assert!(missing.is_empty(), "{} acknowledged rows lost by kill -9, e.g. {:?}", missing.len(), &missing[..missing.len().min(10)]);
        // Anything present was at least attempted (at most one unacknowledged
        // row per writer: the one in flight at the crash).
        let attempted: std::collections::HashSet<i64> = attempted.into_iter().collect();
        let phantom: Vec<i64> = got.iter().copied().filter(|id| !attempted.contains(id)).collect();
        assert!(phantom.is_empty(), "rows that were never inserted appeared: {phantom:?}");
        assert!(
            got.len() <= acked.len() + WRITERS as usize,
            "{} rows present but only {} acknowledged (+{WRITERS} in flight)",
            got.len(),
            acked.len()
        );

        // Values are intact and the table keeps working.
        let bad = rows(&client, "SELECT count(*) FROM load.t WHERE v <> 'v' || CAST(id AS TEXT)").await;
        assert_eq!(bad, vec![vec![Some("0".into())]], "rows with corrupted values");
        exec(&client, "INSERT INTO load.t (id, writer, v) VALUES (-1, -1, 'v-1')").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_crashes_during_recovery_lose_nothing() {
    let mut server = TestServer::start().await;
    timed("repeated crashes", TEST_TIMEOUT, async {
        let client = server.client().await;
        exec(&client, "CREATE NAMESPACE rc").await;
        exec(&client, "CREATE TABLE rc.t (id BIGINT PRIMARY KEY, v TEXT)").await;
        let values: Vec<String> = (1..=300).map(|i| format!("({i}, 'v{i}')")).collect();
        exec(&client, &format!("INSERT INTO rc.t VALUES {}", values.join(", "))).await;
        exec(&client, "UPDATE rc.t SET v = 'u' WHERE id <= 100").await;
        exec(&client, "DELETE FROM rc.t WHERE id > 250").await;
        drop(client);

        // Crash, then crash again right after recovery finished, twice.
        for round in 1..=3 {
            server.kill9().await;
            server.restart().await;
            let client = server.client().await;
            let r = rows(&client, "SELECT count(*), count(DISTINCT id), sum(id), sum(CASE WHEN v = 'u' THEN 1 ELSE 0 END) FROM rc.t").await;
            assert_eq!(
                r,
                vec![vec![Some("250".into()), Some("250".into()), Some((250 * 251 / 2).to_string()), Some("100".into())]],
                "state after crash #{round}"
            );
            let ns = rows(&client, "SHOW NAMESPACES").await;
            assert!(ns.iter().any(|r| r[0].as_deref() == Some("rc")), "namespace rc after crash #{round}: {ns:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_survives_kill9() {
    let mut server = TestServer::start().await;
    timed("ddl durability", TEST_TIMEOUT, async {
        let client = server.client().await;
        exec(&client, "CREATE NAMESPACE keep").await;
        exec(&client, "CREATE NAMESPACE gone").await;
        exec(&client, "CREATE TABLE gone.t (id BIGINT PRIMARY KEY)").await;
        exec(&client, "DROP NAMESPACE gone CASCADE").await;
        exec(
            &client,
            "CREATE SHARED TABLE keep.opts (id BIGINT PRIMARY KEY, a INT) FLUSH ROWS 1000 INTERVAL 300s ACCESS LEVEL public",
        )
        .await;
        exec(&client, "ALTER TABLE keep.opts ADD COLUMN b TEXT").await;
        exec(&client, "ALTER TABLE keep.opts DROP COLUMN a").await;
        exec(&client, "INSERT INTO keep.opts (id, b) VALUES (1, 'bee')").await;
        let tables_before = rows(
            &client,
            "SELECT namespace_id, table_name, table_type, flush_policy, access_level FROM system.tables
             WHERE namespace_id = 'keep'",
        )
        .await;
        let columns_before = rows(
            &client,
            "SELECT column_name, ordinal, data_type, is_nullable, is_primary_key FROM system.columns
             WHERE namespace_id = 'keep' AND table_name = 'opts' ORDER BY ordinal",
        )
        .await;
        let namespaces_before = rows(&client, "SHOW NAMESPACES").await;
        drop(client);

        server.kill9().await;
        server.restart().await;

        let client = server.client().await;
        assert_eq!(rows(&client, "SHOW NAMESPACES").await, namespaces_before, "SHOW NAMESPACES after kill -9");
        assert!(
            !namespaces_before.iter().any(|r| r[0].as_deref() == Some("gone")),
            "dropped namespace listed: {namespaces_before:?}"
        );
        assert_eq!(
            rows(
                &client,
                "SELECT namespace_id, table_name, table_type, flush_policy, access_level FROM system.tables
                 WHERE namespace_id = 'keep'",
            )
            .await,
            tables_before,
            "system.tables after kill -9"
        );
        assert_eq!(
            rows(
                &client,
                "SELECT column_name, ordinal, data_type, is_nullable, is_primary_key FROM system.columns
                 WHERE namespace_id = 'keep' AND table_name = 'opts' ORDER BY ordinal",
            )
            .await,
            columns_before,
            "system.columns after kill -9"
        );
        assert_eq!(
            rows(&client, "SELECT * FROM keep.opts").await,
            vec![vec![Some("1".into()), Some("bee".into())]],
            "SELECT * after kill -9 (column a dropped, b added)"
        );
        let err = client.simple_query("SELECT * FROM gone.t").await.expect_err("namespace gone was dropped");
        let code = sqlstate(&err);
        assert!(
            matches!(code.as_deref(), Some("42P01") | Some("3F000")),
            "querying a table of a dropped namespace: {err}"
        );
        // The dropped namespace can be created again.
        exec(&client, "CREATE NAMESPACE gone").await;
    })
    .await;
}

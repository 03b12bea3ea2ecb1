//! Per-user isolation of USER tables, and ACCESS_LEVEL of SHARED tables.
//!
//! The randomized test drives several users (each logged in with SCRAM) over
//! the same USER table with inserts, updates, deletes, upserts and reads, with
//! flushes, compactions and restarts in between. The users deliberately use
//! the same primary keys. After every read the result must equal that user's
//! model exactly: never a row of another user, never a lost or stale row.
//! `STRATA_ISOLATION_STEPS` sets the number of steps (default 400).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio_postgres::Client;

use common::live::Rng;
use common::{TestServer, sqlstate, text_rows, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(900);
const USERS: [&str; 4] = ["ann", "bob", "cyd", "dee"];
const KEYS: i64 = 30;

type Model = BTreeMap<i64, (String, i64)>;

fn expected(model: &Model) -> Vec<Vec<String>> {
    model
        .iter()
        .map(|(id, (body, n))| vec![id.to_string(), body.clone(), n.to_string()])
        .collect()
}

async fn check(client: &Client, user: &str, model: &Model, step: usize) {
    let got = text_rows(client, "SELECT id, body, n FROM app.notes ORDER BY id").await;
    assert_eq!(got, expected(model), "user {user} at step {step}");
}

/// Runs `FLUSH TABLE` or `COMPACT TABLE` as root and waits for the job.
async fn run_job(root: &Client, sql: &str) -> serde_json::Value {
    let id = text_rows(root, sql).await[0][0].clone();
    wait_job(root, &id).await
}

async fn login_all(server: &TestServer) -> HashMap<&'static str, Client> {
    let mut clients = HashMap::new();
    for u in USERS {
        clients.insert(u, server.client_as(u, Some(&format!("pw-{u}"))).await);
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_exactly_their_own_rows() {
    timed("isolation", TEST_TIMEOUT, async {
        let steps: usize = std::env::var("STRATA_ISOLATION_STEPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(400);
        let mut server = TestServer::start().await;
        let mut root = server.client().await;
        root.batch_execute(
            "CREATE NAMESPACE app;
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, n BIGINT)
               WITH (FLUSH_POLICY = 'rows:1000000');",
        )
        .await
        .expect("setup");
        for u in USERS {
            root.batch_execute(&format!("CREATE USER {u} WITH PASSWORD 'pw-{u}' ROLE user"))
                .await
                .expect("create user");
        }
        let mut clients = login_all(&server).await;
        let mut models: HashMap<&str, Model> = USERS.iter().map(|u| (*u, Model::new())).collect();
        let mut rng = Rng(0x5eed_1234_abcd_9876);
        let mut flushes = 0;
        for step in 0..steps {
            let user = USERS[rng.below(USERS.len() as u64) as usize];
            let client = &clients[user];
            let model = models.get_mut(user).expect("model");
            let id = rng.below(KEYS as u64) as i64;
            match rng.below(10) {
                0..=2 => {
                    let body = format!("{user}-{step}");
                    let r = client
                        .execute(
                            "INSERT INTO app.notes (id, body, n) VALUES ($1, $2, $3)",
                            &[&id, &body, &(step as i64)],
                        )
                        .await;
                    match model.entry(id) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            let e = r.expect_err("duplicate insert");
                            assert_eq!(sqlstate(&e).as_deref(), Some("23505"), "step {step}");
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            assert_eq!(r.expect("insert"), 1, "step {step}");
                            slot.insert((body, step as i64));
                        }
                    }
                }
                3 => {
                    let n = client
                        .execute("UPDATE app.notes SET n = n + 1 WHERE id = $1", &[&id])
                        .await
                        .expect("update");
                    assert_eq!(n, u64::from(model.contains_key(&id)), "step {step}");
                    if let Some(v) = model.get_mut(&id) {
                        v.1 += 1;
                    }
                }
                4 => {
                    // A range update touches only this user's rows.
                    let n = client
                        .execute("UPDATE app.notes SET n = n + 10 WHERE id < $1", &[&id])
                        .await
                        .expect("range update");
                    let mut expect = 0;
                    for (_, v) in model.range_mut(..id) {
                        v.1 += 10;
                        expect += 1;
                    }
                    assert_eq!(n, expect, "step {step}");
                }
                5 => {
                    let n = client
                        .execute("DELETE FROM app.notes WHERE id = $1", &[&id])
                        .await
                        .expect("delete");
                    assert_eq!(n, u64::from(model.remove(&id).is_some()), "step {step}");
                }
                6 => {
                    let body = format!("up-{user}-{step}");
                    client
                        .execute(
                            "INSERT INTO app.notes (id, body, n) VALUES ($1, $2, 0) \
                             ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                            &[&id, &body],
                        )
                        .await
                        .expect("upsert");
                    model
                        .entry(id)
                        .and_modify(|v| v.0 = body.clone())
                        .or_insert((body, 0));
                }
                7 => {
                    // Primary-key fast path.
                    let got = client
                        .query("SELECT body, n FROM app.notes WHERE id = $1", &[&id])
                        .await
                        .expect("point select");
                    let got: Vec<(String, i64)> =
                        got.iter().map(|r| (r.get(0), r.get(1))).collect();
                    let want: Vec<(String, i64)> = model.get(&id).cloned().into_iter().collect();
                    assert_eq!(got, want, "point read of {id} by {user} at step {step}");
                }
                _ => check(client, user, model, step).await,
            }

            if step % 60 == 59 {
                let result = run_job(&root, "FLUSH TABLE app.notes").await;
                flushes += 1;
                let users_with_rows = result["users_count"].as_u64().unwrap_or(0);
                assert!(users_with_rows <= USERS.len() as u64, "{result}");
                if flushes % 3 == 0 {
                    run_job(&root, "COMPACT TABLE app.notes").await;
                }
            }
            if step % 150 == 149 {
                drop(clients);
                drop(root);
                server.restart().await;
                root = server.client().await;
                clients = login_all(&server).await;
            }
        }

        // Final state, per user, on both tiers, after one more flush and a restart.
        run_job(&root, "FLUSH TABLE app.notes").await;
        drop(clients);
        drop(root);
        server.restart().await;
        let root = server.client().await;
        let clients = login_all(&server).await;
        for u in USERS {
            check(&clients[u], u, &models[u], steps).await;
            // Delegation reads the named user's partition, and only it.
            let n = text_rows(
                &root,
                &format!("EXECUTE AS USER '{u}' (SELECT count(*) FROM app.notes)"),
            )
            .await;
            assert_eq!(n[0][0], models[u].len().to_string(), "EXECUTE AS {u}");
        }
        // root is a user too: it has written nothing to this table.
        assert!(
            text_rows(&root, "SELECT id FROM app.notes")
                .await
                .is_empty()
        );
        // Each user with rows has its own directory of Parquet files.
        let table_dir = server.data_dir().join("storage/app/notes");
        for u in USERS {
            if !models[u].is_empty() {
                let dir = table_dir.join(u);
                let parquet = std::fs::read_dir(&dir)
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
                    .count();
                assert!(parquet >= 1, "no cold file for {u}");
                assert!(dir.join("manifest.json").exists());
            }
        }
        let total: usize = models.values().map(|m| m.len()).sum();
        let stats = text_rows(
            &root,
            "SELECT hot_rows + cold_rows FROM system.tables WHERE table_name = 'notes'",
        )
        .await;
        assert_eq!(
            stats[0][0],
            total.to_string(),
            "system.tables counts all users"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_tables_follow_their_access_level() {
    timed("access levels", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let root = server.client().await;
        root.batch_execute(
            "CREATE NAMESPACE s;
             CREATE TABLE s.pub (id BIGINT PRIMARY KEY) WITH (ACCESS_LEVEL = 'PUBLIC');
             CREATE TABLE s.priv (id BIGINT PRIMARY KEY);
             CREATE SHARED TABLE s.res (id BIGINT PRIMARY KEY) ACCESS LEVEL restricted;
             INSERT INTO s.pub VALUES (1); INSERT INTO s.priv VALUES (1); INSERT INTO s.res VALUES (1);
             CREATE USER plain WITH PASSWORD 'p1';
             CREATE USER svc WITH PASSWORD 'p2' ROLE service;
             CREATE USER admin WITH PASSWORD 'p3' ROLE dba;",
        )
        .await
        .expect("setup");
        let plain = server.client_as("plain", Some("p1")).await;
        let svc = server.client_as("svc", Some("p2")).await;
        let admin = server.client_as("admin", Some("p3")).await;
        // (client, table, may read, may write)
        let cases: [(&Client, &str, bool, bool); 9] = [
            (&plain, "pub", true, false),
            (&plain, "priv", false, false),
            (&plain, "res", false, false),
            (&svc, "pub", true, true),
            (&svc, "priv", true, true),
            (&svc, "res", true, false),
            (&admin, "pub", true, true),
            (&admin, "priv", true, true),
            (&admin, "res", true, true),
        ];
        for (i, (client, table, read, write)) in cases.into_iter().enumerate() {
            let scan = client
                .simple_query(&format!("SELECT count(*) FROM s.{table}"))
                .await;
            let point = client
                .query(&format!("SELECT id FROM s.{table} WHERE id = $1"), &[&1i64])
                .await;
            for (what, r) in [("scan", scan.map(|_| ())), ("point", point.map(|_| ()))] {
                match (read, r) {
                    (true, Ok(())) => {}
                    (false, Err(e)) => {
                        assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "case {i} {what}")
                    }
                    (want, got) => panic!("case {i} {table} {what}: read {want}, got {got:?}"),
                }
            }
            let insert = client
                .execute(&format!("INSERT INTO s.{table} VALUES ($1)"), &[&(100 + i as i64)])
                .await;
            match (write, insert) {
                (true, Ok(1)) => {}
                (false, Err(e)) => assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "case {i}"),
                (want, got) => panic!("case {i} {table} insert: write {want}, got {got:?}"),
            }
        }
        // A refused write changed nothing.
        let n: i64 = root
            .query_one("SELECT count(*) FROM s.res", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(n, 2, "the seed row and the dba's");
        // ALTER TABLE SET (ACCESS_LEVEL) takes effect at once.
        root.batch_execute("ALTER TABLE s.priv SET (ACCESS_LEVEL = 'PUBLIC')")
            .await
            .expect("alter");
        plain
            .simple_query("SELECT count(*) FROM s.priv")
            .await
            .expect("public now");
    })
    .await;
}

//! The cold tier over the wire: FLUSH / COMPACT / KILL JOB, flush policies,
//! merged reads across tiers, writes to flushed rows, restarts and crashes.
//!
//! Every test compares what the server returns with a model the test keeps
//! (ids, or id → value), so a lost, duplicated or stale row fails the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use common::{TestServer, sqlstate, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// First column of every row of a simple query, as text.
async fn column(client: &Client, sql: &str) -> Vec<String> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .collect()
}

async fn one(client: &Client, sql: &str) -> String {
    let v = column(client, sql).await;
    assert_eq!(v.len(), 1, "{sql} returned {v:?}");
    v[0].clone()
}

async fn ids(client: &Client, table: &str) -> Vec<i64> {
    column(client, &format!("SELECT id FROM {table} ORDER BY id"))
        .await
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

async fn model_of(client: &Client, table: &str) -> BTreeMap<i64, String> {
    let msgs = client
        .simple_query(&format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for m in msgs {
        if let SimpleQueryMessage::Row(r) = m {
            let id: i64 = r.get(0).unwrap().parse().unwrap();
            assert!(
                out.insert(id, r.get(1).unwrap_or("NULL").to_string())
                    .is_none(),
                "id {id} returned twice"
            );
        }
    }
    out
}

/// Runs `FLUSH TABLE`, checks it answers fast with one job id, and waits for
/// the job to complete. Returns the job id.
async fn flush(client: &Client, table: &str) -> String {
    let started = Instant::now();
    let job = one(client, &format!("FLUSH TABLE {table}")).await;
    let took = started.elapsed();
    assert!(job.starts_with("FL-") && job.len() == 15, "job id {job}");
    assert!(took < Duration::from_secs(2), "FLUSH TABLE took {took:?}");
    wait_job(client, &job).await;
    job
}

fn files_under(dir: &Path, ext: &str) -> Vec<String> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p, ext));
            } else if p.to_string_lossy().ends_with(ext) {
                out.push(p.to_string_lossy().into_owned());
            }
        }
    }
    out
}

async fn insert_range(client: &Client, table: &str, from: i64, to: i64, batch: i64) {
    let mut i = from;
    while i <= to {
        let end = (i + batch - 1).min(to);
        let values: Vec<String> = (i..=end).map(|n| format!("({n}, 'v{n}')")).collect();
        client
            .simple_query(&format!(
                "INSERT INTO {table} (id, v) VALUES {}",
                values.join(",")
            ))
            .await
            .unwrap();
        i = end + 1;
    }
}

async fn smoke(kind: &str) {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.simple_query("CREATE NAMESPACE app").await.unwrap();
    c.simple_query(&format!(
        "CREATE {kind} TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 50"
    ))
    .await
    .unwrap();
    insert_range(&c, "app.t", 1, 200, 20).await;
    flush(&c, "app.t").await;
    assert_eq!(ids(&c, "app.t").await, (1..=200).collect::<Vec<_>>());
    let dir = server.data_dir().join("storage").join("app").join("t");
    assert!(
        !files_under(&dir, ".parquet").is_empty(),
        "no parquet under {dir:?}"
    );
    assert!(
        dir.join("manifest.json").exists(),
        "no manifest.json in {dir:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let rows: u64 = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["live_rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 200, "manifest.json: {manifest}");
    assert_eq!(
        one(
            &c,
            "SELECT hot_rows || '/' || cold_rows FROM system.tables WHERE table_name = 't'"
        )
        .await,
        "0/200"
    );
}

#[tokio::test]
async fn flush_table_moves_every_row_exactly_once() {
    timed("smoke", TEST_TIMEOUT, smoke("")).await;
}

#[tokio::test]
async fn flush_of_an_explicit_shared_table() {
    timed("smoke shared", TEST_TIMEOUT, smoke("SHARED")).await;
}

#[tokio::test]
async fn reads_merge_hot_and_cold() {
    timed("mixed", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.simple_query("CREATE TABLE public.m (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 30")
            .await
            .unwrap();
        insert_range(&c, "m", 1, 50, 50).await;
        flush(&c, "m").await;
        insert_range(&c, "m", 51, 70, 20).await;
        assert_eq!(one(&c, "SELECT COUNT(*) FROM m").await, "70");
        assert_eq!(
            column(
                &c,
                "SELECT id FROM m WHERE id BETWEEN 45 AND 55 ORDER BY id"
            )
            .await
            .len(),
            11
        );
        // Point reads of a cold and a hot row, through both protocols.
        assert_eq!(one(&c, "SELECT v FROM m WHERE id = 7").await, "v7");
        let stmt = c.prepare("SELECT v FROM m WHERE id = $1").await.unwrap();
        for id in [3i64, 50, 51, 70] {
            let row = c.query_one(&stmt, &[&id]).await.unwrap();
            assert_eq!(row.get::<_, String>(0), format!("v{id}"));
        }
        assert!(c.query_opt(&stmt, &[&71i64]).await.unwrap().is_none());
        // LIMIT stops early and still returns rows from the cold tier.
        assert_eq!(column(&c, "SELECT id FROM m LIMIT 5").await.len(), 5);
        // A key that lives only in the cold tier is still a duplicate.
        let err = c
            .simple_query("INSERT INTO m VALUES (10, 'again')")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("23505"));
        // Flushing an empty table completes with nothing flushed.
        c.simple_query("CREATE TABLE e (id INT PRIMARY KEY)")
            .await
            .unwrap();
        let job = flush(&c, "e").await;
        let result = one(
            &c,
            &format!("SELECT result FROM system.jobs WHERE job_id = '{job}'"),
        )
        .await;
        let result: serde_json::Value = serde_json::from_str(&result).unwrap();
        assert_eq!(result["rows_flushed"], 0, "{result}");
        // Unknown table.
        let err = c.simple_query("FLUSH TABLE nope").await.unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
    })
    .await;
}

#[tokio::test]
async fn policies_flush_without_a_command() {
    timed("policies", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.simple_query("CREATE TABLE r (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 10")
            .await
            .unwrap();
        c.simple_query("CREATE TABLE i (id BIGINT PRIMARY KEY, v TEXT) FLUSH INTERVAL 2s")
            .await
            .unwrap();
        insert_range(&c, "r", 1, 25, 5).await;
        insert_range(&c, "i", 1, 5, 5).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = one(
                &c,
                "SELECT cold_rows FROM system.tables WHERE table_name = 'r'",
            )
            .await;
            let i = one(
                &c,
                "SELECT cold_rows FROM system.tables WHERE table_name = 'i'",
            )
            .await;
            if r.parse::<i64>().unwrap() >= 10 && i == "5" {
                break;
            }
            assert!(Instant::now() < deadline, "no policy flush: r={r} i={i}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(ids(&c, "r").await, (1..=25).collect::<Vec<_>>());
        assert_eq!(ids(&c, "i").await, (1..=5).collect::<Vec<_>>());
        // Policies change and are validated.
        c.simple_query("ALTER TABLE r SET (FLUSH_POLICY = 'rows:50')")
            .await
            .unwrap();
        assert_eq!(
            one(
                &c,
                "SELECT flush_policy FROM system.tables WHERE table_name = 'r'"
            )
            .await,
            "rows:50"
        );
        let err = c
            .simple_query("ALTER TABLE r SET (FLUSH_POLICY = 'rows:0')")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("22023"));
    })
    .await;
}

#[tokio::test]
async fn writes_to_flushed_rows_survive_flush_compact_and_restart() {
    timed("model", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;
        c.simple_query("CREATE TABLE k (id BIGINT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        let mut model: BTreeMap<i64, String> = BTreeMap::new();
        insert_range(&c, "k", 1, 100, 25).await;
        for n in 1..=100 {
            model.insert(n, format!("v{n}"));
        }
        flush(&c, "k").await;
        assert_eq!(model_of(&c, "k").await, model);

        // UPDATE and DELETE rows that now live in Parquet.
        c.simple_query("UPDATE k SET v = 'u' || id WHERE id % 10 = 0")
            .await
            .unwrap();
        for n in (10..=100).step_by(10) {
            model.insert(n, format!("u{n}"));
        }
        c.simple_query("DELETE FROM k WHERE id BETWEEN 20 AND 29")
            .await
            .unwrap();
        for n in 20..=29 {
            model.remove(&n);
        }
        // Re-insert a deleted cold key, and upsert over a cold key.
        c.simple_query("INSERT INTO k VALUES (25, 'back')")
            .await
            .unwrap();
        model.insert(25, "back".into());
        c.simple_query(
            "INSERT INTO k VALUES (33, 'x') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v || k.v",
        )
        .await
        .unwrap();
        model.insert(33, "xv33".into());
        assert_eq!(model_of(&c, "k").await, model);

        flush(&c, "k").await;
        assert_eq!(model_of(&c, "k").await, model);
        c.simple_query("UPDATE k SET v = 'w' WHERE id = 1")
            .await
            .unwrap();
        model.insert(1, "w".into());
        flush(&c, "k").await;
        assert_eq!(model_of(&c, "k").await, model);

        let files = one(
            &c,
            "SELECT cold_files FROM system.tables WHERE table_name = 'k'",
        )
        .await;
        assert_eq!(files, "3");
        let job = one(&c, "COMPACT TABLE k").await;
        assert!(job.starts_with("CO-"), "{job}");
        wait_job(&c, &job).await;
        assert_eq!(
            one(
                &c,
                "SELECT cold_files FROM system.tables WHERE table_name = 'k'"
            )
            .await,
            "1"
        );
        assert_eq!(model_of(&c, "k").await, model);
        c.simple_query("DELETE FROM k WHERE id = 2").await.unwrap();
        model.remove(&2);
        assert_eq!(model_of(&c, "k").await, model);

        drop(c);
        server.restart().await;
        let c = server.client().await;
        assert_eq!(model_of(&c, "k").await, model);
        assert_eq!(
            one(&c, "SELECT COUNT(*) FROM k WHERE id > 50").await,
            model.range(51..).count().to_string()
        );
        // After a restart the old files are gone from disk.
        let dir = server.data_dir().join("storage").join("public").join("k");
        assert_eq!(
            files_under(&dir, ".parquet").len(),
            1,
            "{:?}",
            files_under(&dir, ".parquet")
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_writers_during_flushes_lose_nothing() {
    timed("concurrent", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.simple_query("CREATE TABLE w (id BIGINT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        let mut writers = vec![];
        for w in 0..4i64 {
            let client = server.client().await;
            writers.push(tokio::spawn(async move {
                for b in 0..15i64 {
                    let from = w * 10_000 + b * 20 + 1;
                    insert_range(&client, "w", from, from + 19, 20).await;
                    // Rewrite a row, which may be hot or cold by now.
                    client
                        .simple_query(&format!("UPDATE w SET v = 'up' WHERE id = {from}"))
                        .await
                        .unwrap();
                }
            }));
        }
        let flusher = {
            let client = server.client().await;
            tokio::spawn(async move {
                for _ in 0..6 {
                    flush(&client, "w").await;
                }
            })
        };
        for w in writers {
            w.await.unwrap();
        }
        flusher.await.unwrap();
        flush(&c, "w").await;
        let mut expected = BTreeMap::new();
        for w in 0..4i64 {
            for b in 0..15i64 {
                let from = w * 10_000 + b * 20 + 1;
                for n in from..from + 20 {
                    expected.insert(
                        n,
                        if n == from {
                            "up".to_string()
                        } else {
                            format!("v{n}")
                        },
                    );
                }
            }
        }
        assert_eq!(model_of(&c, "w").await, expected);
        assert_eq!(
            one(
                &c,
                "SELECT hot_rows FROM system.tables WHERE table_name = 'w'"
            )
            .await,
            "0"
        );
    })
    .await;
}

#[tokio::test]
async fn kill_job_cancels_a_large_flush_without_a_trace() {
    timed("kill", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.simple_query("CREATE TABLE big (id BIGINT PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        c.simple_query(
            "INSERT INTO big SELECT value, 'row ' || value FROM generate_series(1, 200000)",
        )
        .await
        .unwrap();
        let job = one(&c, "FLUSH TABLE big").await;
        // A second request while the first is queued or running joins it.
        assert_eq!(one(&c, "FLUSH TABLE big").await, job);
        c.simple_query(&format!("KILL JOB '{job}'")).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = one(
                &c,
                &format!("SELECT status FROM system.jobs WHERE job_id = '{job}'"),
            )
            .await;
            if s == "cancelled" {
                break;
            }
            assert!(s == "queued" || s == "running", "job ended {s}");
            assert!(Instant::now() < deadline, "job not cancelled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(one(&c, "SELECT COUNT(*) FROM big").await, "200000");
        assert_eq!(
            one(
                &c,
                "SELECT cold_files FROM system.tables WHERE table_name = 'big'"
            )
            .await,
            "0"
        );
        let dir = server.data_dir().join("storage").join("public").join("big");
        assert!(files_under(&dir, ".parquet").is_empty());
        let err = c
            .simple_query(&format!("KILL JOB '{job}'"))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("55000"));
        let err = c
            .simple_query("KILL JOB 'FL-000000000000'")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42704"));
    })
    .await;
}

/// kill -9 at random moments while rows are inserted and flushed; after each
/// restart the table holds every acknowledged row once, and at most the one
/// unacknowledged statement in flight. `STRATA_CRASH_CYCLES` sets the number of
/// cycles (5 by default; the long run uses 25).
#[tokio::test]
async fn crash_loop_during_inserts_and_flushes() {
    timed("crash loop", Duration::from_secs(1800), async {
        let cycles: u64 = std::env::var("STRATA_CRASH_CYCLES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let mut server = TestServer::start().await;
        {
            let c = server.client().await;
            c.simple_query("CREATE TABLE cl (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 40")
                .await
                .unwrap();
        }
        let mut acked: BTreeSet<i64> = BTreeSet::new();
        let mut maybe: BTreeSet<i64> = BTreeSet::new();
        let mut next = 1i64;
        for cycle in 0..cycles {
            let c = server.client().await;
            let got: BTreeSet<i64> = ids(&c, "cl").await.into_iter().collect();
            assert!(
                acked.is_subset(&got),
                "cycle {cycle}: lost {:?}",
                acked.difference(&got).collect::<Vec<_>>()
            );
            let extra: Vec<_> = got
                .difference(&acked)
                .filter(|i| !maybe.contains(i))
                .collect();
            assert!(
                extra.is_empty(),
                "cycle {cycle}: rows never inserted: {extra:?}"
            );
            acked = got;
            maybe.clear();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i64, i64, bool)>();
            let writer = {
                let client = server.client().await;
                let start = next;
                tokio::spawn(async move {
                    let mut i = start;
                    loop {
                        let end = i + 9;
                        let _ = tx.send((i, end, false));
                        let values: Vec<String> =
                            (i..=end).map(|n| format!("({n}, 'c')")).collect();
                        match client
                            .simple_query(&format!("INSERT INTO cl VALUES {}", values.join(",")))
                            .await
                        {
                            Ok(_) => {
                                let _ = tx.send((i, end, true));
                            }
                            Err(_) => break,
                        }
                        if i % 50 == 1 {
                            let _ = client.simple_query("FLUSH TABLE cl").await;
                        }
                        i = end + 1;
                    }
                })
            };
            let wait = 200 + (cycle * 7919 % 900);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            server.kill9().await;
            let _ = writer.await;
            while let Ok((from, to, done)) = rx.try_recv() {
                for n in from..=to {
                    if done {
                        maybe.remove(&n);
                        acked.insert(n);
                    } else {
                        maybe.insert(n);
                    }
                }
                next = next.max(to + 1);
            }
            server.restart().await;
        }
        let c = server.client().await;
        let got: BTreeSet<i64> = ids(&c, "cl").await.into_iter().collect();
        assert!(acked.is_subset(&got));
        assert!(got.difference(&acked).all(|i| maybe.contains(i)));
        let dups = one(&c, "SELECT COUNT(*) - COUNT(DISTINCT id) FROM cl").await;
        assert_eq!(dups, "0");
    })
    .await;
}

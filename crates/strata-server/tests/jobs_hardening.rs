//! Background jobs under stress, against the real binary (issue #13):
//!
//! - a flush or compaction works by the table definition in force when it
//!   runs and commits only if that is still in force (queued behind another
//!   job, or mid-flush of a USER table, an ADD COLUMN's values survive);
//! - an eviction deletes by the TTL in force under the table's lock;
//! - a panicking job ends `failed` and frees its slot and its permit;
//! - the scheduler keeps ticking while a job hogs the job runtime;
//! - finished job records are pruned by `[jobs] max_records` and
//!   `retention_days`, queued and running ones never;
//! - a corrupt job record or manifest entry costs a warning (and, for the
//!   entry, its table), not the server; a stale `manifest.json` is rewritten;
//! - writers, jobs and DDL at once never lose or invent an acknowledged write.
//!
//! Races are made deterministic with the debug-build failpoints of strata-jobs
//! (`STRATA_FAILPOINT`, see crates/strata-jobs/src/failpoint.rs).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use common::{ServerOptions, TestServer, sqlstate, text_rows, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

// --- helpers -----------------------------------------------------------------

async fn exec(c: &Client, sql: &str) {
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn one(c: &Client, sql: &str) -> String {
    let r = text_rows(c, sql).await;
    assert_eq!(r.len(), 1, "{sql} returned {r:?}");
    r[0][0].clone()
}

async fn count(c: &Client, sql: &str) -> i64 {
    one(c, sql).await.parse().unwrap()
}

/// (status, result, error_message) of a job, or None once it is pruned.
async fn job(c: &Client, id: &str) -> Option<(String, serde_json::Value, String)> {
    let r = text_rows(
        c,
        &format!(
            "SELECT status, coalesce(result, '{{}}'), coalesce(error_message, '') \
             FROM system.jobs WHERE job_id = '{id}'"
        ),
    )
    .await;
    r.first().map(|r| {
        (
            r[0].clone(),
            serde_json::from_str(&r[1]).unwrap_or(serde_json::Value::Null),
            r[2].clone(),
        )
    })
}

/// Waits (up to 30 s) for a job to finish, however it ends.
async fn finished(c: &Client, id: &str) -> (String, serde_json::Value, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = job(c, id)
            .await
            .unwrap_or_else(|| panic!("job {id} vanished"));
        if !matches!(state.0.as_str(), "queued" | "running") {
            return state;
        }
        assert!(Instant::now() < deadline, "job {id} still {}", state.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 10 s) for a job to be running.
async fn running(c: &Client, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = job(c, id).await.map(|j| j.0).unwrap_or_default();
        if status == "running" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {status}, not running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (up to 30 s) until no job is queued or running.
async fn idle(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(
        c,
        "SELECT count(*) FROM system.jobs WHERE status IN ('queued', 'running')",
    )
    .await
        > 0
    {
        assert!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn retries(result: &serde_json::Value) -> u64 {
    result["definition_retries"].as_u64().unwrap_or(0)
}

fn with_failpoints(failpoints: &str, config: &str) -> ServerOptions {
    ServerOptions {
        env: vec![("STRATA_FAILPOINT".into(), failpoints.into())],
        config: config.into(),
    }
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

// --- (a) jobs work by the definition in force ----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_works_by_the_definition_in_force_when_it_runs_and_commits() {
    timed("flush definition", TEST_TIMEOUT, async {
        // One job at a time: a flush of `slow` (paused 6 s after it starts)
        // holds the only permit, so the flush of `t` waits queued behind it.
        let server = TestServer::start_with(with_failpoints(
            "pause_flush=slow:6000,pause_flush=ut:6000",
            "[jobs]\nmax_concurrent = 1\n",
        ))
        .await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.slow (id BIGINT PRIMARY KEY, v TEXT);
             CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO app.slow VALUES (1, 'a');
             INSERT INTO app.t VALUES (1, 'one'), (2, 'two');",
        )
        .await;
        let slow = one(&c, "FLUSH TABLE app.slow").await;
        running(&c, &slow).await;
        let queued = one(&c, "FLUSH TABLE app.t").await;
        assert_eq!(job(&c, &queued).await.unwrap().0, "queued");
        exec(
            &c,
            "ALTER TABLE app.t ADD COLUMN c TEXT;
             INSERT INTO app.t (id, v, c) VALUES (3, 'three', 'kept');",
        )
        .await;
        wait_job(&c, &slow).await;
        let result = wait_job(&c, &queued).await;
        assert_eq!(result["rows_flushed"], 3, "{result}");
        assert_eq!(
            text_rows(&c, "SELECT id, c FROM app.t ORDER BY id").await,
            vec![
                vec!["1".to_string(), "NULL".into()],
                vec!["2".into(), "NULL".into()],
                vec!["3".into(), "kept".into()],
            ]
        );
        assert_eq!(
            count(&c, "SELECT count(*) FROM app.t WHERE c = 'kept'").await,
            1
        );

        // A USER table mid-flush: the job read its definition, then (paused)
        // the table gains a column and bob writes a value into it. Each
        // partition's commit finds the definition changed and redoes its file.
        exec(
            &c,
            "CREATE USER alice; CREATE USER bob;
             CREATE USER TABLE app.ut (id BIGINT PRIMARY KEY, v TEXT);
             EXECUTE AS USER 'alice' (INSERT INTO app.ut VALUES (1, 'a1'));",
        )
        .await;
        let flush = one(&c, "FLUSH TABLE app.ut").await;
        running(&c, &flush).await;
        exec(
            &c,
            "ALTER TABLE app.ut ADD COLUMN c TEXT;
             EXECUTE AS USER 'bob' (INSERT INTO app.ut (id, v, c) VALUES (2, 'b2', 'bob-c'));",
        )
        .await;
        let result = wait_job(&c, &flush).await;
        assert_eq!(result["rows_flushed"], 2, "{result}");
        assert!(
            retries(&result) >= 1,
            "the commit must have seen the ALTER: {result}"
        );
        assert_eq!(
            one(
                &c,
                "EXECUTE AS USER 'bob' (SELECT c FROM app.ut WHERE id = 2)"
            )
            .await,
            "bob-c"
        );
        assert_eq!(
            one(
                &c,
                "EXECUTE AS USER 'alice' (SELECT v FROM app.ut WHERE id = 1)"
            )
            .await,
            "a1"
        );
        assert_eq!(
            count(
                &c,
                "SELECT hot_rows FROM system.tables WHERE table_name = 'ut'"
            )
            .await,
            0,
            "both rows were flushed"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_merges_files_flushed_after_an_alter_by_the_new_definition() {
    timed("compaction definition", TEST_TIMEOUT, async {
        let server = TestServer::start_with(with_failpoints(
            "pause_compact=ct:6000",
            "[jobs]\nmax_concurrent = 2\n",
        ))
        .await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE TABLE ct (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO ct VALUES (1, 'v1'), (2, 'v2');",
        )
        .await;
        let f = one(&c, "FLUSH TABLE ct").await;
        wait_job(&c, &f).await;
        exec(&c, "INSERT INTO ct VALUES (3, 'v3')").await;
        let f = one(&c, "FLUSH TABLE ct").await;
        wait_job(&c, &f).await;
        // The compaction reads the definition, pauses; meanwhile the table
        // gains a column and a third file carrying values of it.
        let compact = one(&c, "COMPACT TABLE ct").await;
        running(&c, &compact).await;
        exec(
            &c,
            "ALTER TABLE ct ADD COLUMN c TEXT;
             INSERT INTO ct (id, v, c) VALUES (4, 'v4', 'four');
             UPDATE ct SET c = 'one' WHERE id = 1;",
        )
        .await;
        let f = one(&c, "FLUSH TABLE ct").await;
        wait_job(&c, &f).await;
        let result = wait_job(&c, &compact).await;
        assert!(retries(&result) >= 1, "{result}");
        assert_eq!(result["files_after"], 1, "{result}");
        assert_eq!(
            count(
                &c,
                "SELECT cold_files FROM system.tables WHERE table_name = 'ct'"
            )
            .await,
            1
        );
        assert_eq!(
            text_rows(&c, "SELECT id, v, c FROM ct ORDER BY id").await,
            vec![
                vec!["1".to_string(), "v1".into(), "one".into()],
                vec!["2".into(), "v2".into(), "NULL".into()],
                vec!["3".into(), "v3".into(), "NULL".into()],
                vec!["4".into(), "v4".into(), "four".into()],
            ]
        );
    })
    .await;
}

// --- (b) eviction by the TTL in force -------------------------------------------

/// Waits (up to 15 s) for a running eviction of `table` other than `not`.
async fn running_eviction(c: &Client, table: &str, not: Option<&str>) -> String {
    match seen_running_eviction(c, table, not, Duration::from_secs(15)).await {
        Some(id) => id,
        None => panic!("no eviction of {table} started"),
    }
}

/// A running eviction of `table` other than `not`, if one is seen within `wait`.
async fn seen_running_eviction(
    c: &Client,
    table: &str,
    not: Option<&str>,
    wait: Duration,
) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        let found = text_rows(
            c,
            &format!(
                "SELECT job_id FROM system.jobs WHERE table_name = '{table}' \
                 AND job_type = 'evict' AND status = 'running'"
            ),
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .find(|id| Some(id.as_str()) != not);
        if found.is_some() {
            return found;
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_deletes_by_the_ttl_in_force_under_the_lock() {
    timed("eviction ttl", TEST_TIMEOUT, async {
        // Every eviction of `ev` pauses 6 s between finding expired rows and
        // taking the lock to delete them (a window wide enough to see it
        // running while a loaded machine answers slowly).
        let server = TestServer::start_with(with_failpoints("pause_evict=ev:6000", "")).await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE STREAM TABLE ev (id BIGINT PRIMARY KEY, v TEXT) WITH (TTL_SECONDS = 1);
             INSERT INTO ev VALUES (0, 'seed');",
        )
        .await;
        // While a first eviction pauses (its walk done), write the rows: the
        // next eviction can only start once it ends, more than 1 s later, so
        // it finds all three expired.
        // On a loaded machine a first eviction can start and end between two
        // polls: seed again (a row below the ids checked) until one is seen.
        let mut first = None;
        for seed in 1..=5 {
            first = seen_running_eviction(&c, "ev", None, Duration::from_secs(10)).await;
            if first.is_some() {
                break;
            }
            exec(&c, &format!("INSERT INTO ev VALUES (-{seed}, 'seed')")).await;
        }
        let first = first.expect("no eviction of ev seen running");
        tokio::time::sleep(Duration::from_millis(300)).await;
        exec(&c, "INSERT INTO ev VALUES (1, 'a'), (2, 'b'), (3, 'c')").await;
        let second = running_eviction(&c, "ev", Some(&first)).await;
        assert_eq!(
            count(&c, "SELECT count(*) FROM ev WHERE id >= 1").await,
            0,
            "expired at TTL 1 s"
        );
        // Let its walk finish, then raise the TTL while it pauses: the rows
        // are live again by the TTL in force when it takes the lock.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(job(&c, &second).await.unwrap().0, "running");
        exec(&c, "ALTER TABLE ev SET (TTL_SECONDS = 3600)").await;
        let result = wait_job(&c, &second).await;
        assert_eq!(result["rows_evicted"], 0, "{result}");
        assert!(result["rows_left"].as_u64() >= Some(3), "{result}");
        assert_eq!(
            text_rows(&c, "SELECT id, v FROM ev WHERE id >= 1 ORDER BY id").await,
            vec![
                vec!["1".to_string(), "a".into()],
                vec!["2".into(), "b".into()],
                vec!["3".into(), "c".into()],
            ]
        );
    })
    .await;
}

// --- (e) panics, and (3) a scheduler that keeps ticking --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_fails_and_frees_its_slot_and_the_scheduler_keeps_ticking() {
    timed("panics", TEST_TIMEOUT, async {
        let server = TestServer::start_with(with_failpoints(
            "panic_flush=pa,panic_flush_blocking=pb,busy_flush=hog:4000",
            "[jobs]\nmax_concurrent = 1\n",
        ))
        .await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE TABLE pa (id BIGINT PRIMARY KEY, v TEXT);
             CREATE TABLE pb (id BIGINT PRIMARY KEY, v TEXT);
             CREATE TABLE ok (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO pa VALUES (1, 'a'); INSERT INTO pb VALUES (1, 'b');
             INSERT INTO ok VALUES (1, 'k');",
        )
        .await;
        for table in ["pa", "pb"] {
            let first = one(&c, &format!("FLUSH TABLE {table}")).await;
            let (status, _, error) = finished(&c, &first).await;
            assert_eq!(status, "failed", "{table}: {error}");
            assert!(error.contains("panicked"), "{table}: {error}");
            // The (kind, table) slot is free again: a new job, not the dead one.
            let second = one(&c, &format!("FLUSH TABLE {table}")).await;
            assert_ne!(first, second);
            assert_eq!(finished(&c, &second).await.0, "failed");
            assert_eq!(
                one(&c, &format!("SELECT v FROM {table} WHERE id = 1")).await,
                if table == "pa" { "a" } else { "b" }
            );
        }
        // And the only permit is free: another table's flush completes.
        let ok = one(&c, "FLUSH TABLE ok").await;
        assert_eq!(wait_job(&c, &ok).await["rows_flushed"], 1);

        // A flush that blocks the job runtime's only thread for 4 s: the
        // scheduler, on its own thread, still starts a policy flush (queued).
        exec(
            &c,
            "CREATE TABLE hog (id BIGINT PRIMARY KEY);
             CREATE TABLE pol (id BIGINT PRIMARY KEY) FLUSH ROWS 5;
             INSERT INTO hog VALUES (1);",
        )
        .await;
        let hog = one(&c, "FLUSH TABLE hog").await;
        running(&c, &hog).await;
        let started = Instant::now();
        exec(&c, "INSERT INTO pol VALUES (1), (2), (3), (4), (5), (6)").await;
        loop {
            let n = count(
                &c,
                "SELECT count(*) FROM system.jobs WHERE table_name = 'pol'",
            )
            .await;
            if n > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_millis(3500),
                "the scheduler did not tick while a job held the job runtime"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(job(&c, &hog).await.unwrap().0, "running");
        wait_job(&c, &hog).await;
        idle(&c).await;
        assert_eq!(
            count(
                &c,
                "SELECT hot_rows FROM system.tables WHERE table_name = 'pol'"
            )
            .await,
            0
        );
    })
    .await;
}

// --- (d) job record pruning --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_job_records_are_pruned_unfinished_ones_never() {
    timed("pruning", TEST_TIMEOUT, async {
        let mut server = TestServer::start_with(with_failpoints(
            "pause_flush=slowp:15000",
            "[jobs]\nmax_records = 3\n",
        ))
        .await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE TABLE p (id BIGINT PRIMARY KEY);
             CREATE TABLE slowp (id BIGINT PRIMARY KEY);",
        )
        .await;
        let mut ids = vec![];
        for i in 0..5 {
            exec(&c, &format!("INSERT INTO p VALUES ({i})")).await;
            let id = one(&c, "FLUSH TABLE p").await;
            wait_job(&c, &id).await;
            ids.push(id);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let kept: Vec<String> =
                text_rows(&c, "SELECT job_id FROM system.jobs ORDER BY created_at")
                    .await
                    .into_iter()
                    .map(|r| r[0].clone())
                    .collect();
            if kept == ids[2..] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kept {kept:?} of {ids:?}: is [jobs] reaching the job manager \
                 (server.rs: JobManager::new(tiers, &config.jobs))?"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Retention 0 days: at startup every finished record goes.
        drop(c);
        server.stop().await;
        std::fs::write(
            server.data_dir().join("strata-test.toml"),
            "[flush]\ncheck_interval_seconds = 1\n[jobs]\nretention_days = 0\n",
        )
        .unwrap();
        server.restart().await;
        let c = server.client().await;
        assert_eq!(count(&c, "SELECT count(*) FROM system.jobs").await, 0);
        // A running job's record stays while finished ones around it go.
        let slow = one(&c, "FLUSH TABLE slowp").await;
        running(&c, &slow).await;
        exec(&c, "INSERT INTO p VALUES (100)").await;
        let quick = one(&c, "FLUSH TABLE p").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while job(&c, &quick).await.is_some() {
            assert!(Instant::now() < deadline, "finished job {quick} not pruned");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            job(&c, &slow).await.map(|j| j.0).as_deref(),
            Some("running")
        );
        assert_eq!(count(&c, "SELECT count(*) FROM p").await, 6);
    })
    .await;
}

// --- (c) damaged records at startup -------------------------------------------------

/// The id of a table, from its catalog record in RocksDB.
fn table_id(store: &strata_store::Store, name: &str) -> u32 {
    let mut id = None;
    store
        .scan(strata_store::CF_CATALOG, b"", b"", |_, v| {
            if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(v)
                && doc["name"] == name
                && doc.get("columns").is_some()
            {
                id = doc["id"].as_u64();
            }
            Ok(true)
        })
        .unwrap();
    u32::try_from(id.unwrap_or_else(|| panic!("no table {name}"))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_survives_corrupt_records_and_rewrites_stale_manifests() {
    timed("corrupt records", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.good (id BIGINT PRIMARY KEY, v TEXT);
             CREATE TABLE app.bad (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO app.good VALUES (1, 'g1'), (2, 'g2');
             INSERT INTO app.bad VALUES (1, 'b1');",
        )
        .await;
        for t in ["app.good", "app.bad"] {
            let id = one(&c, &format!("FLUSH TABLE {t}")).await;
            wait_job(&c, &id).await;
        }
        // The mirror as it was with one file, then a second file and a
        // compaction: the saved mirror is what a crash between the
        // compaction's commit and its publish leaves behind.
        let mirror = server.data_dir().join("storage/app/good/manifest.json");
        let stale = std::fs::read(&mirror).unwrap();
        exec(&c, "INSERT INTO app.good VALUES (3, 'g3')").await;
        let id = one(&c, "FLUSH TABLE app.good").await;
        wait_job(&c, &id).await;
        let id = one(&c, "COMPACT TABLE app.good").await;
        wait_job(&c, &id).await;
        exec(&c, "INSERT INTO app.good VALUES (4, 'hot')").await;
        drop(c);
        server.stop().await;

        std::fs::write(&mirror, &stale).unwrap();
        {
            let store = strata_store::Store::open(&server.data_dir().join("hot"), false).unwrap();
            // What the compaction noted before its commit and a crash before
            // its publish leaves: the mirror is marked for checking.
            let good = table_id(&store, "good");
            let mut dirty = vec![b'n'];
            dirty.extend_from_slice(&strata_common::keys::partition_prefix(good, ""));
            store.put(strata_store::CF_COLD, &dirty, b"").unwrap();
            store
                .put(
                    strata_store::CF_JOBS,
                    b"FL-0badc0ffee00",
                    b"\x00{not a record",
                )
                .unwrap();
            let bad = table_id(&store, "bad");
            let mut prefix = vec![b'f'];
            prefix.extend_from_slice(&bad.to_be_bytes());
            let mut end = vec![b'f'];
            end.extend_from_slice(&(bad + 1).to_be_bytes());
            let mut entries = vec![];
            store
                .scan(strata_store::CF_COLD, &prefix, &end, |k, _| {
                    entries.push(k.to_vec());
                    Ok(true)
                })
                .unwrap();
            assert_eq!(entries.len(), 1, "bad has one file");
            store
                .put(strata_store::CF_COLD, &entries[0], b"garbage{")
                .unwrap();
        }

        server.restart().await;
        let c = server.client().await;
        // Everything else is served.
        assert_eq!(
            text_rows(&c, "SELECT id, v FROM app.good ORDER BY id").await,
            vec![
                vec!["1".to_string(), "g1".into()],
                vec!["2".into(), "g2".into()],
                vec!["3".into(), "g3".into()],
                vec!["4".into(), "hot".into()],
            ]
        );
        let jobs = count(&c, "SELECT count(*) FROM system.jobs").await;
        assert!(jobs >= 4, "system.jobs lists the real jobs: {jobs}");
        assert_eq!(
            count(
                &c,
                "SELECT count(*) FROM system.jobs WHERE job_id = 'FL-0badc0ffee00'"
            )
            .await,
            0
        );
        // The damaged table fails clearly, on reads and on jobs.
        let e = c.simple_query("SELECT * FROM app.bad").await.unwrap_err();
        let code = sqlstate(&e);
        eprintln!(
            "reading the damaged table: {code:?} {:?}",
            e.as_db_error().map(|d| d.message())
        );
        assert!(
            matches!(code.as_deref(), Some("58030" | "XX001")),
            "{code:?}: {e}"
        );
        let e = c.simple_query("FLUSH TABLE app.bad").await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("XX001"), "{e}");
        // Its file is kept for repair (the entry naming it cannot be read).
        assert_eq!(
            files_under(&server.data_dir().join("storage/app/bad"), ".parquet").len(),
            1
        );
        // The stale mirror was rewritten from the records: one file, 3 rows.
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mirror).unwrap()).unwrap();
        let files = doc["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{doc}");
        assert_eq!(files[0]["live_rows"], 3, "{doc}");
        let log = server.log_lines().join("\n");
        assert!(
            log.contains("corrupt job record"),
            "no warning for the job record"
        );
        assert!(
            log.contains("corrupt manifest entry"),
            "no warning for the entry"
        );
        // A write and a flush of the good table still work.
        exec(&c, "INSERT INTO app.good VALUES (5, 'g5')").await;
        let id = one(&c, "FLUSH TABLE app.good").await;
        wait_job(&c, &id).await;
        assert_eq!(count(&c, "SELECT count(*) FROM app.good").await, 5);
    })
    .await;
}

// --- everything at once ----------------------------------------------------------------

/// An error with the server's SQLSTATE and message (tokio-postgres' own
/// Display says only "db error").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} {}", d.code().code(), d.message()),
        None => e.to_string(),
    }
}

/// Whether an error means "a concurrent change won: retry".
fn is_retry(e: &tokio_postgres::Error) -> bool {
    sqlstate(e).as_deref() == Some("40001")
}

/// Runs `sql` until it is not refused with 40001; other errors are returned.
async fn retrying(c: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    loop {
        match c.batch_execute(sql).await {
            Err(e) if is_retry(&e) => tokio::time::sleep(Duration::from_millis(5)).await,
            other => return other,
        }
    }
}

/// One write of the workload, with what it does to the model.
enum Op {
    Upsert(i64, String),
    Delete(i64),
}

impl Op {
    fn sql(&self, table: &str, model: &BTreeMap<i64, String>) -> String {
        match self {
            Op::Upsert(id, v) if model.contains_key(id) => {
                format!("UPDATE {table} SET v = '{v}' WHERE id = {id}")
            }
            Op::Upsert(id, v) => format!("INSERT INTO {table} (id, v) VALUES ({id}, '{v}')"),
            Op::Delete(id) => format!("DELETE FROM {table} WHERE id = {id}"),
        }
    }

    fn apply(&self, model: &mut BTreeMap<i64, String>) {
        match self {
            Op::Upsert(id, v) => {
                model.insert(*id, v.clone());
            }
            Op::Delete(id) => {
                model.remove(id);
            }
        }
    }
}

/// A small deterministic generator (no extra dependency).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What a writer did: the model of what the server acknowledged, how many
/// writes it acknowledged and how many it refused with 40001.
struct Written {
    model: BTreeMap<i64, String>,
    acked: u64,
    retried: u64,
    /// Single statements refused with 40001: the server plans a statement
    /// again when DDL changed its table before it took the write lock, so
    /// these should not happen (blocks, which cannot be replayed, may).
    single_retried: u64,
}

/// Writes to `table` (only keys `base..base+40`) until `until`, single
/// statements and transaction blocks.
async fn writer(c: Client, table: &str, base: i64, seed: u64, until: Instant) -> Written {
    let (mut acked, mut retried, mut single_retried) = (0u64, 0u64, 0u64);
    let mut model = BTreeMap::new();
    let mut rng = Rng(seed);
    let mut n = 0u64;
    let mut op = |rng: &mut Rng, model: &BTreeMap<i64, String>| {
        n += 1;
        let id = base + rng.below(40) as i64;
        if model.contains_key(&id) && rng.below(4) == 0 {
            Op::Delete(id)
        } else {
            Op::Upsert(id, format!("s{seed}n{n}"))
        }
    };
    while Instant::now() < until {
        if rng.below(4) == 0 {
            // A transaction block of three writes: all of it lands or none.
            let mut staged = model.clone();
            let ops: Vec<Op> = (0..3).map(|_| op(&mut rng, &staged)).collect();
            let mut ok = c.batch_execute("BEGIN").await.is_ok();
            for o in &ops {
                if !ok {
                    break;
                }
                match c.batch_execute(&o.sql(table, &staged)).await {
                    Ok(()) => o.apply(&mut staged),
                    Err(e) if is_retry(&e) => ok = false,
                    Err(e) => panic!("{table}: {}: {}", o.sql(table, &staged), describe(&e)),
                }
            }
            if !ok {
                retried += 1;
                c.batch_execute("ROLLBACK").await.expect("rollback");
                continue;
            }
            match c.batch_execute("COMMIT").await {
                Ok(()) => {
                    model = staged;
                    acked += 1;
                }
                Err(e) if is_retry(&e) => retried += 1,
                Err(e) => panic!("{table}: COMMIT: {}", describe(&e)),
            }
        } else {
            let o = op(&mut rng, &model);
            match c.batch_execute(&o.sql(table, &model)).await {
                Ok(()) => {
                    o.apply(&mut model);
                    acked += 1;
                }
                Err(e) if is_retry(&e) => {
                    eprintln!("{table}: {}: {}", o.sql(table, &model), describe(&e));
                    single_retried += 1
                }
                Err(e) => panic!("{table}: {}: {}", o.sql(table, &model), describe(&e)),
            }
        }
    }
    Written {
        model,
        acked,
        retried,
        single_retried,
    }
}

async fn contents(c: &Client, table: &str) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    for r in text_rows(c, &format!("SELECT id, v FROM {table} ORDER BY id")).await {
        let id: i64 = r[0].parse().unwrap();
        assert!(
            out.insert(id, r[1].clone()).is_none(),
            "{table}: id {id} twice"
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_jobs_and_ddl_at_once_keep_every_acknowledged_write() {
    timed("concurrency", TEST_TIMEOUT, async {
        let mut server = TestServer::start_with(ServerOptions {
            config: "[jobs]\nmax_concurrent = 2\n".into(),
            ..ServerOptions::default()
        })
        .await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE NAMESPACE app;
             CREATE TABLE app.s (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 40;
             CREATE USER TABLE app.u (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 40;
             CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
             CREATE USER bob WITH PASSWORD 'bob-pw' ROLE user;",
        )
        .await;
        let until = Instant::now() + Duration::from_secs(8);
        let mut writers = vec![];
        for (i, (user, table, base)) in [
            ("root", "app.s", 0i64),
            ("root", "app.s", 1000),
            ("alice", "app.u", 0),
            ("bob", "app.u", 0),
        ]
        .into_iter()
        .enumerate()
        {
            let c = if user == "root" {
                server.client().await
            } else {
                server.client_as(user, Some(&format!("{user}-pw"))).await
            };
            writers.push((
                user,
                table,
                tokio::spawn(writer(c, table, base, 0x9E37_79B9 + i as u64 * 7919, until)),
            ));
        }
        // Jobs, over and over.
        let jobs = {
            let c = server.client().await;
            tokio::spawn(async move {
                let mut ids = vec![];
                while Instant::now() < until {
                    for sql in [
                        "FLUSH TABLE app.s",
                        "FLUSH TABLE app.u",
                        "COMPACT TABLE app.s",
                        "COMPACT TABLE app.u",
                    ] {
                        ids.push(one(&c, sql).await);
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                ids
            })
        };
        // DDL on the same tables: columns come and go, options change.
        let ddl = {
            let c = server.client().await;
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < until {
                    n += 1;
                    for sql in [
                        format!("ALTER TABLE app.s ADD COLUMN x{n} TEXT DEFAULT 'd{n}'"),
                        format!("ALTER TABLE app.u ADD COLUMN x{n} BIGINT"),
                        format!(
                            "ALTER TABLE app.s SET (FLUSH_POLICY = 'rows:{}')",
                            20 + n % 30
                        ),
                        format!("ALTER TABLE app.s DROP COLUMN x{n}"),
                        format!(
                            "ALTER TABLE app.u SET (FLUSH_POLICY = 'rows:{}')",
                            20 + n % 30
                        ),
                        format!("ALTER TABLE app.u DROP COLUMN x{n}"),
                    ] {
                        retrying(&c, &sql)
                            .await
                            .unwrap_or_else(|e| panic!("{sql}: {e}"));
                        tokio::time::sleep(Duration::from_millis(60)).await;
                    }
                }
                n
            })
        };
        let mut shared = BTreeMap::new();
        let mut per_user: BTreeMap<&str, BTreeMap<i64, String>> = BTreeMap::new();
        let (mut acked, mut retried, mut single_retried) = (0, 0, 0);
        for (user, table, w) in writers {
            let written = w.await.expect("writer");
            acked += written.acked;
            retried += written.retried;
            single_retried += written.single_retried;
            if table == "app.s" {
                shared.extend(written.model);
            } else {
                per_user.insert(user, written.model);
            }
        }
        let job_ids = jobs.await.expect("jobs");
        let alters = ddl.await.expect("ddl");
        assert!(alters >= 2, "the DDL task ran {alters} rounds");
        idle(&root).await;
        // Jobs may give up on a definition that kept changing (40001); any
        // other failure (a panic, a lost file) is a bug.
        let mut failures = vec![];
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut redone = 0;
        for id in job_ids.iter().collect::<std::collections::BTreeSet<_>>() {
            let Some((status, result, error)) = job(&root, id).await else {
                continue;
            };
            redone += retries(&result);
            if status == "failed" && !error.contains("changed") {
                failures.push(format!("{id}: {error}"));
            }
            *by_status.entry(status).or_default() += 1;
        }
        eprintln!(
            "{acked} writes acknowledged, {retried} blocks and {single_retried} statements refused \
             with 40001; {alters} DDL rounds; \
             jobs {by_status:?}, {redone} redone for a changed definition"
        );
        assert!(failures.is_empty(), "jobs failed: {failures:?}");
        assert_eq!(
            single_retried, 0,
            "single statements are planned again after DDL, never refused"
        );
        assert!(acked > 100, "only {acked} writes acknowledged");

        let alice = Arc::new(server.client_as("alice", Some("alice-pw")).await);
        let bob = Arc::new(server.client_as("bob", Some("bob-pw")).await);
        let check = |root: Arc<Client>, alice: Arc<Client>, bob: Arc<Client>| {
            let shared = shared.clone();
            let per_user = per_user.clone();
            async move {
                assert_eq!(contents(&root, "app.s").await, shared, "shared table");
                assert_eq!(contents(&alice, "app.u").await, per_user["alice"], "alice");
                assert_eq!(contents(&bob, "app.u").await, per_user["bob"], "bob");
            }
        };
        let root = Arc::new(root);
        check(root.clone(), alice.clone(), bob.clone()).await;
        // Once more with everything in the cold tier, and after a restart.
        for sql in ["FLUSH TABLE app.s", "FLUSH TABLE app.u"] {
            let id = one(&root, sql).await;
            wait_job(&root, &id).await;
        }
        for sql in ["COMPACT TABLE app.s", "COMPACT TABLE app.u"] {
            let id = one(&root, sql).await;
            wait_job(&root, &id).await;
        }
        check(root.clone(), alice.clone(), bob.clone()).await;
        drop((root, alice, bob));
        server.restart().await;
        let root = Arc::new(server.client().await);
        let alice = Arc::new(server.client_as("alice", Some("alice-pw")).await);
        let bob = Arc::new(server.client_as("bob", Some("bob-pw")).await);
        check(root, alice, bob).await;
    })
    .await;
}

/// Drivers prepare the queries they run often (psycopg and pgjdbc after five
/// executions): a prepared poll of `system.jobs` must see a job finish, and
/// `system.stats` count statements after it was prepared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_queries_of_system_tables_see_the_current_state() {
    timed("prepared system tables", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE TABLE pj (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO pj VALUES (1, 'a')",
        )
        .await;
        let status = c
            .prepare("SELECT status FROM system.jobs WHERE job_id = $1")
            .await
            .unwrap();
        let jobs = c.prepare("SELECT count(*) FROM system.jobs").await.unwrap();
        let before: i64 = c.query_one(&jobs, &[]).await.unwrap().get(0);
        let id = one(&c, "FLUSH TABLE pj").await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = c.query(&status, &[&id]).await.unwrap();
            if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some("completed") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the prepared poll never saw {id} complete: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after: i64 = c.query_one(&jobs, &[]).await.unwrap().get(0);
        assert_eq!(after, before + 1);
        let stats = c
            .prepare("SELECT metric_value FROM system.stats WHERE metric_name = 'queries_total'")
            .await
            .unwrap();
        let first: f64 = c.query_one(&stats, &[]).await.unwrap().get(0);
        let second: f64 = c.query_one(&stats, &[]).await.unwrap().get(0);
        assert!(
            second > first,
            "queries_total did not move: {first} then {second}"
        );
    })
    .await;
}

/// DROP USER between the pieces of a flush of the user's partition: the
/// purge removes the partly committed file with the rest of the user's data,
/// and the flush must not bring it back (its next piece, its manifest.json).
/// A user created again under the name starts empty, can write the old keys,
/// and the partition reads after a restart (whose garbage collection deletes
/// the purged file's object).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_user_between_flush_pieces_leaves_nothing_behind() {
    timed("drop user mid-flush", TEST_TIMEOUT, async {
        let mut server =
            TestServer::start_with(with_failpoints("pause_flush_piece=pu:700", "")).await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE USER alice;
             CREATE USER TABLE pu (id BIGINT PRIMARY KEY, v BIGINT) FLUSH ROWS 1000000 INTERVAL 86400;
             EXECUTE AS USER 'alice' (INSERT INTO pu SELECT i, i FROM generate_series(1, 10000) AS g(i));",
        )
        .await;
        let job = one(&c, "FLUSH TABLE pu").await;
        first_piece_committed(&c, "pu").await;
        exec(&c, "DROP USER alice").await;
        // The job ends (completed: the rows it had committed went with the user).
        wait_job(&c, &job).await;
        assert_eq!(tiers_of(&c, "pu").await, (0, 0));
        let listings: Vec<_> = walk(server.data_dir())
            .into_iter()
            .filter(|p| p.ends_with("manifest.json") && p.to_string_lossy().contains("alice"))
            .collect();
        assert!(listings.is_empty(), "a purged partition is listed: {listings:?}");
        exec(&c, "CREATE USER alice").await;
        let count = "EXECUTE AS USER 'alice' (SELECT count(*) FROM pu)";
        assert_eq!(one(&c, count).await, "0");
        exec(&c, "EXECUTE AS USER 'alice' (INSERT INTO pu VALUES (1, -1))").await;
        drop(c);
        server.restart().await;
        let c = server.client().await;
        assert_eq!(one(&c, count).await, "1");
        let f = one(&c, "FLUSH TABLE pu").await;
        wait_job(&c, &f).await;
        assert_eq!(
            one(&c, "EXECUTE AS USER 'alice' (SELECT sum(v) FROM pu)").await,
            "-1"
        );
    })
    .await;
}

/// Every file under a directory.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// (hot_rows, cold_rows) of a table, from system.tables.
async fn tiers_of(c: &Client, table: &str) -> (i64, i64) {
    let r = text_rows(
        c,
        &format!("SELECT hot_rows, cold_rows FROM system.tables WHERE table_name = '{table}'"),
    )
    .await;
    let num = |s: &String| s.parse::<i64>().unwrap_or(-1);
    (num(&r[0][0]), num(&r[0][1]))
}

/// Waits until a flush of `table` has committed its first piece (and not
/// yet its last).
async fn first_piece_committed(c: &Client, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (hot, cold) = tiers_of(c, table).await;
        if cold > 0 && hot > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no piece of the flush of {table} committed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A flush commits a large file in pieces, releasing the table's write lock
/// between them: readers see every row exactly once throughout (hot before its
/// piece, cold after), writes to rows on both sides of the committed prefix
/// survive, and a crash between pieces loses and duplicates nothing (startup
/// seals the partly committed file, which compaction then merges).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_commits_in_pieces_and_every_row_is_seen_once() {
    timed("flush pieces", TEST_TIMEOUT, async {
        let mut server =
            TestServer::start_with(with_failpoints("pause_flush_piece=pc:700", "")).await;
        let c = server.client().await;
        // 10,000 rows: three pieces of at most 4,096.
        exec(
            &c,
            "CREATE TABLE pc (id BIGINT PRIMARY KEY, v BIGINT) FLUSH ROWS 1000000 INTERVAL 86400;
             INSERT INTO pc SELECT i, i FROM generate_series(1, 10000) AS g(i);",
        )
        .await;
        let mut sum: i64 = 10000 * 10001 / 2;
        let totals = "SELECT count(*), sum(v), count(DISTINCT id) FROM pc";
        let job = one(&c, "FLUSH TABLE pc").await;
        first_piece_committed(&c, "pc").await;
        assert_eq!(
            text_rows(&c, totals).await[0],
            ["10000".to_string(), sum.to_string(), "10000".to_string()]
        );
        // Row 1 is cold by now, 9999 and 5000 still hot in the flush's file.
        exec(
            &c,
            "UPDATE pc SET v = -1 WHERE id IN (1, 9999); DELETE FROM pc WHERE id = 5000;
             INSERT INTO pc VALUES (20001, 7);",
        )
        .await;
        sum += -2 - 10000 - 5000 + 7;
        let expect = ["10000".to_string(), sum.to_string(), "10000".to_string()];
        assert_eq!(text_rows(&c, totals).await[0], expect);
        let result = wait_job(&c, &job).await;
        assert_eq!(result["rows_flushed"], 9998, "{result}");
        assert_eq!(text_rows(&c, totals).await[0], expect);
        for (id, v) in [
            (1, Some("-1")),
            (9999, Some("-1")),
            (5000, None),
            (20001, Some("7")),
        ] {
            let r = text_rows(&c, &format!("SELECT v FROM pc WHERE id = {id}")).await;
            assert_eq!(r.first().map(|r| r[0].as_str()), v, "id {id}");
        }

        // A crash between pieces.
        exec(
            &c,
            "INSERT INTO pc SELECT i, i FROM generate_series(30001, 40000) AS g(i)",
        )
        .await;
        sum += (30001..=40000).sum::<i64>();
        let expect = ["20000".to_string(), sum.to_string(), "20000".to_string()];
        one(&c, "FLUSH TABLE pc").await;
        first_piece_committed(&c, "pc").await;
        drop(c);
        server.kill9().await;
        server.restart().await;
        let c = server.client().await;
        assert_eq!(text_rows(&c, totals).await[0], expect);
        let (hot, cold) = tiers_of(&c, "pc").await;
        assert_eq!(hot + cold, 20000, "hot {hot} + cold {cold}");
        let f = one(&c, "FLUSH TABLE pc").await;
        wait_job(&c, &f).await;
        let f = one(&c, "COMPACT TABLE pc").await;
        wait_job(&c, &f).await;
        assert_eq!(text_rows(&c, totals).await[0], expect);
        assert_eq!(tiers_of(&c, "pc").await, (0, 20000));
        let r = text_rows(
            &c,
            "SELECT cold_files FROM system.tables WHERE table_name = 'pc'",
        )
        .await;
        assert_eq!(r[0][0], "1");
    })
    .await;
}

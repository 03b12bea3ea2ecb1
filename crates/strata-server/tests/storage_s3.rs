//! S3 storages end to end, against an S3-protocol server the tests start
//! in-process (`common::s3`: s3s + s3s-fs on loopback, SigV4 on, so
//! object_store inside Strata signs real requests).
//!
//! - the harness alone (put/list/get/delete, a wrong secret refused, request
//!   counts, stop and restart);
//! - SHARED and USER tables on an S3 storage: insert, flush, update and delete
//!   cold rows, compact, restart; every result equals a model the test keeps,
//!   and the objects and `manifest.json` are in the bucket (listed through the
//!   S3 API, never the directory behind it);
//! - how many requests a primary-key point read of a cold row costs;
//! - the S3 server stopped: the flush job fails with a clear error, hot rows
//!   stay readable, cold reads fail with 58030 naming the storage, the server
//!   serves other tables; S3 back: the next flush succeeds, nothing lost;
//! - credentials: refused when wrong, and shown nowhere (system tables, SHOW,
//!   errors, jobs, the server log).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio_postgres::Client;

use common::s3::{ACCESS_KEY, S3Call, S3Server, SECRET_KEY, credentials_json};
use common::{
    ServerOptions, TestServer, exec, named_rows, one, sqlstate, text_rows, timed, wait_job,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

const BUCKET: &str = "strata-cold";
const PREFIX: &str = "tenant-a";

/// The SQLSTATE and message (with detail and hint) a statement fails with.
async fn error(client: &Client, sql: &str) -> (String, String) {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql} succeeded"),
        Err(e) => {
            let code = sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e:?}"));
            let text = match e.as_db_error() {
                Some(d) => format!(
                    "{} {} {}",
                    d.message(),
                    d.detail().unwrap_or(""),
                    d.hint().unwrap_or("")
                ),
                None => e.to_string(),
            };
            (code, text)
        }
    }
}

/// Runs FLUSH TABLE / COMPACT TABLE and waits for its job to complete.
async fn job(client: &Client, sql: &str) -> String {
    let id = one(client, sql).await;
    wait_job(client, &id).await;
    id
}

async fn flush(client: &Client, table: &str) -> String {
    job(client, &format!("FLUSH TABLE {table}")).await
}

/// Waits (up to 90 s) until job `id` has ended; returns its status and error.
async fn job_end(client: &Client, id: &str) -> (String, String) {
    let sql = format!(
        "SELECT status, coalesce(error_message, '') FROM system.jobs WHERE job_id = '{id}'"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = text_rows(client, &sql).await;
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        let (status, message) = (rows[0][0].clone(), rows[0][1].clone());
        if ["completed", "failed", "cancelled", "skipped"].contains(&status.as_str()) {
            return (status, message);
        }
        assert!(
            Instant::now() < deadline,
            "job {id} still {status} after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Model = BTreeMap<i64, String>;

async fn check(client: &Client, table: &str, model: &Model, when: &str) {
    let got: Model = text_rows(client, &format!("SELECT id, v FROM {table} ORDER BY id"))
        .await
        .into_iter()
        .map(|r| (r[0].parse().expect("id"), r[1].clone()))
        .collect();
    assert_eq!(got.len(), model.len(), "{table} {when}: row count");
    assert_eq!(&got, model, "{table} {when}");
}

/// Inserts ids `from..=to` with v = `{tag}-{id}` (100 rows a statement).
async fn insert(client: &Client, table: &str, model: &mut Model, from: i64, to: i64, tag: &str) {
    let mut i = from;
    while i <= to {
        let end = (i + 99).min(to);
        let values: Vec<String> = (i..=end).map(|n| format!("({n}, '{tag}-{n}')")).collect();
        exec(
            client,
            &format!("INSERT INTO {table} (id, v) VALUES {}", values.join(", ")),
        )
        .await;
        for n in i..=end {
            model.insert(n, format!("{tag}-{n}"));
        }
        i = end + 1;
    }
}

/// `CREATE STORAGE {id} TYPE 's3'` on the test server, with its keys.
fn create_s3_storage(s3: &S3Server, id: &str, prefix: &str, extra: &str) -> String {
    format!(
        "CREATE STORAGE {id} TYPE 's3' PATH 's3://{BUCKET}/{prefix}' REGION 'us-east-1' \
         ENDPOINT '{}' CREDENTIALS '{}' {extra}",
        s3.endpoint(),
        s3.credentials_json()
    )
}

/// An S3 server with the test bucket, and a Strata server.
async fn servers(options: ServerOptions) -> (S3Server, TestServer) {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET).await;
    let server = TestServer::start_with(options).await;
    (s3, server)
}

/// Objects under `{PREFIX}/{dir}/` directly: (batch files, has manifest.json).
fn partition(listing: &[String], dir: &str) -> (Vec<String>, bool) {
    let prefix = format!("{PREFIX}/{dir}/");
    let names: Vec<&str> = listing
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter(|n| !n.contains('/'))
        .collect();
    let batches = names
        .iter()
        .filter(|n| n.starts_with("batch-") && n.ends_with(".parquet"))
        .map(|n| n.to_string())
        .collect();
    (batches, names.contains(&"manifest.json"))
}

/// Asserts the bucket holds batch files and a manifest.json for `dir`, and
/// that every file the manifest lists exists.
async fn assert_partition(s3: &S3Server, dir: &str, what: &str) {
    let listing = s3.list(BUCKET, PREFIX).await;
    let (batches, manifest) = partition(&listing, dir);
    assert!(
        !batches.is_empty() && manifest,
        "{what}: {PREFIX}/{dir}/ should hold batch-*.parquet and manifest.json; bucket: {listing:?}"
    );
    let text = s3
        .get(BUCKET, &format!("{PREFIX}/{dir}/manifest.json"))
        .await;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .unwrap_or_else(|e| panic!("{what}: manifest.json is not JSON: {e}"));
    let files = json["files"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: manifest.json without files: {json}"));
    assert!(!files.is_empty(), "{what}: manifest lists no files");
    for f in files {
        let path = f["path"].as_str().expect("a file's path");
        let key = format!("{PREFIX}/{path}");
        assert!(
            listing.contains(&key),
            "{what}: the manifest lists {key}, which is not in the bucket: {listing:?}"
        );
    }
}

/// The harness alone: put/list/get/delete through the S3 API, a wrong secret
/// refused, requests counted, stop → connection refused, restart → same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_harness_serves_signed_requests_and_stops() {
    timed("s3 harness", TEST_TIMEOUT, async {
        let mut s3 = S3Server::start().await;
        s3.create_bucket("harness").await;
        let store = s3.store("harness");
        for key in ["a/one.txt", "a/b/two.txt", "c/three.txt"] {
            store
                .put(
                    &ObjectPath::from(key),
                    PutPayload::from(key.as_bytes().to_vec()),
                )
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
        }
        assert_eq!(
            s3.list("harness", "").await,
            ["a/b/two.txt", "a/one.txt", "c/three.txt"]
        );
        assert_eq!(s3.list("harness", "a").await, ["a/b/two.txt", "a/one.txt"]);
        assert_eq!(s3.get("harness", "c/three.txt").await, b"c/three.txt");

        // Counting: one full GET and one ranged GET.
        s3.reset_requests();
        s3.get("harness", "a/one.txt").await;
        let part = store
            .get_range(&ObjectPath::from("a/one.txt"), 2..5)
            .await
            .unwrap();
        assert_eq!(&part[..], b"one");
        let counts = s3.request_counts();
        assert_eq!(counts.get("GetObject"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("GetObject+range"), Some(&1), "{counts:?}");
        let calls = s3.requests();
        assert!(calls.iter().all(|c| c.signed), "{calls:?}");
        assert_eq!(calls[1].key.as_deref(), Some("a/one.txt"));

        store.delete(&ObjectPath::from("a/one.txt")).await.unwrap();
        assert_eq!(s3.list("harness", "a").await, ["a/b/two.txt"]);

        // A wrong secret is refused with an authentication error.
        let wrong = s3.store_with("harness", ACCESS_KEY, "not-the-secret");
        let err = wrong
            .get(&ObjectPath::from("c/three.txt"))
            .await
            .expect_err("a request signed with a wrong secret succeeded");
        let text = err.to_string();
        assert!(
            text.contains("SignatureDoesNotMatch") || text.contains("403"),
            "unexpected error for a wrong secret: {text}"
        );
        let wrong_key = s3.store_with("harness", "nobody", "x");
        let err = wrong_key
            .list_with_delimiter(None)
            .await
            .expect_err("an unknown access key was accepted");
        assert!(
            err.to_string().contains("403") || err.to_string().contains("InvalidAccessKeyId"),
            "{err}"
        );

        // Stopped: connection refused, quickly. Restarted: same port, same data.
        s3.stop().await;
        assert!(!s3.is_running());
        let refused = std::net::TcpStream::connect(("127.0.0.1", s3.port()));
        assert!(
            refused.is_err(),
            "the stopped server still accepts connections"
        );
        let started = std::time::Instant::now();
        assert!(s3.try_get("harness", "c/three.txt").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
        s3.restart().await;
        assert_eq!(s3.get("harness", "c/three.txt").await, b"c/three.txt");
        assert_eq!(s3.list("harness", "").await, ["a/b/two.txt", "c/three.txt"]);
    })
    .await;
}

/// SHARED and USER tables on an S3 storage through flushes, writes to cold
/// rows, compaction and a restart; the bucket holds the files and manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_on_s3_keep_their_rows_through_flush_compact_and_restart() {
    timed("s3 end to end", TEST_TIMEOUT, async {
        let (s3, mut server) = servers(ServerOptions::default()).await;
        let root = server.client().await;
        exec(
            &root,
            &create_s3_storage(&s3, "s3main", PREFIX, "DESCRIPTION 'main bucket'"),
        )
        .await;
        let row = &named_rows(&root, "SELECT * FROM system.storages WHERE storage_id = 's3main'").await[0];
        assert_eq!(row["storage_type"], "s3");
        assert_eq!(row["uri"], format!("s3://{BUCKET}/{PREFIX}"));
        assert_eq!(row["region"], "us-east-1");
        assert_eq!(row["endpoint"], s3.endpoint());
        assert_eq!(row["description"], "main bucket");

        exec(
            &root,
            "CREATE USER alice WITH PASSWORD 'alice-pw' ROLE user;
             CREATE USER bob WITH PASSWORD 'bob-pw' ROLE user;
             CREATE NAMESPACE app;
             CREATE TABLE app.events (id BIGINT PRIMARY KEY, v TEXT) WITH (STORAGE_ID = 's3main');
             CREATE TABLE app.notes (id BIGINT PRIMARY KEY, v TEXT) WITH (TYPE = 'USER', STORAGE_ID = 's3main')",
        )
        .await;
        assert_eq!(
            one(&root, "SELECT table_count FROM system.storages WHERE storage_id = 's3main'").await,
            "2"
        );
        let mut events = Model::new();
        insert(&root, "app.events", &mut events, 1, 300, "e").await;
        let users = ["alice", "bob"];
        let mut notes: BTreeMap<&str, Model> = BTreeMap::new();
        for u in users {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            insert(&c, "app.notes", notes.entry(u).or_default(), 1, 60, u).await;
        }
        flush(&root, "app.events").await;
        flush(&root, "app.notes").await;
        assert_partition(&s3, "app/events", "SHARED table after a flush").await;
        for u in users {
            assert_partition(&s3, &format!("app/notes/{u}"), "USER table after a flush").await;
        }
        let listing = s3.list(BUCKET, "").await;
        assert!(
            listing.iter().all(|k| k.starts_with(&format!("{PREFIX}/"))),
            "objects outside the storage's prefix: {listing:?}"
        );
        check(&root, "app.events", &events, "after a flush to S3").await;

        // Writes to cold rows: updates and deletes, then more rows.
        exec(&root, "UPDATE app.events SET v = 'updated' WHERE id % 10 = 0").await;
        exec(&root, "DELETE FROM app.events WHERE id % 7 = 0").await;
        for (id, v) in events.iter_mut() {
            if id % 10 == 0 {
                *v = "updated".into();
            }
        }
        events.retain(|id, _| id % 7 != 0);
        insert(&root, "app.events", &mut events, 301, 350, "e").await;
        for u in users {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            let model = notes.get_mut(u).unwrap();
            exec(&c, "UPDATE app.notes SET v = 'changed' WHERE id <= 5").await;
            exec(&c, "DELETE FROM app.notes WHERE id > 5 AND id <= 10").await;
            for id in 1..=5 {
                model.insert(id, "changed".into());
            }
            model.retain(|id, _| !(6..=10).contains(id));
            check(&c, "app.notes", model, &format!("of {u} with cold rows changed")).await;
        }
        check(&root, "app.events", &events, "with cold rows changed").await;
        flush(&root, "app.events").await;
        flush(&root, "app.notes").await;
        check(&root, "app.events", &events, "after the second flush").await;
        job(&root, "COMPACT TABLE app.events").await;
        job(&root, "COMPACT TABLE app.notes").await;
        check(&root, "app.events", &events, "after compaction").await;
        assert_partition(&s3, "app/events", "SHARED table after compaction").await;
        for u in users {
            assert_partition(&s3, &format!("app/notes/{u}"), "USER table after compaction").await;
        }

        server.restart().await;
        let root = server.client().await;
        check(&root, "app.events", &events, "after a restart").await;
        for u in users {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            check(&c, "app.notes", &notes[u], &format!("of {u} after a restart")).await;
            let model = notes.get_mut(u).unwrap();
            exec(&c, "UPDATE app.notes SET v = 'again' WHERE id = 20").await;
            model.insert(20, "again".into());
            insert(&c, "app.notes", model, 61, 70, u).await;
        }
        exec(&root, "DELETE FROM app.events WHERE id = 1").await;
        events.remove(&1);
        flush(&root, "app.events").await;
        flush(&root, "app.notes").await;
        check(&root, "app.events", &events, "after a flush following the restart").await;
        for u in users {
            let c = server.client_as(u, Some(&format!("{u}-pw"))).await;
            check(&c, "app.notes", &notes[u], &format!("of {u} at the end")).await;
        }
        assert_partition(&s3, "app/events", "SHARED table at the end").await;
    })
    .await;
}

/// The requests a list of calls made to batch files, for reports.
fn describe(calls: &[S3Call]) -> String {
    calls
        .iter()
        .map(S3Call::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A primary-key point read of a cold row costs at most one footer GET and
/// one ranged data GET on a cold cache, one data GET once the footer is
/// cached, and nothing for a key that is not cold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_point_read_issues_a_bounded_number_of_requests() {
    timed("s3 request counts", TEST_TIMEOUT, async {
        let (s3, mut server) = servers(ServerOptions::default()).await;
        let root = server.client().await;
        exec(&root, &create_s3_storage(&s3, "s3main", PREFIX, "")).await;
        exec(
            &root,
            "CREATE NAMESPACE app;
             CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) STORAGE s3main",
        )
        .await;
        // Values that do not compress, so the file (about 150 KB) is larger
        // than a footer read and its rows span several pages.
        let mut model = Model::new();
        for chunk in (1..=ROWS).collect::<Vec<i64>>().chunks(200) {
            let values: Vec<String> = chunk
                .iter()
                .map(|id| {
                    model.insert(*id, noise(*id));
                    format!("({id}, '{}')", noise(*id))
                })
                .collect();
            exec(
                &root,
                &format!("INSERT INTO app.t (id, v) VALUES {}", values.join(", ")),
            )
            .await;
        }
        flush(&root, "app.t").await;
        let listing = s3.list(BUCKET, PREFIX).await;
        let files = partition(&listing, "app/t").0;
        assert_eq!(files.len(), 1, "{listing:?}");
        let size = s3
            .get(BUCKET, &format!("{PREFIX}/app/t/{}", files[0]))
            .await
            .len();
        eprintln!("the cold file: {} bytes, {ROWS} rows", size);

        // A fresh server: no footer cached.
        server.restart().await;
        let c = server.client().await;
        let mut report = vec![];
        let read = |what: &'static str, sql: String, want: Option<String>| {
            let s3 = &s3;
            let c = &c;
            async move {
                s3.reset_requests();
                let rows = text_rows(c, &sql).await;
                let calls = s3.requests();
                let got = rows.first().map(|r| r[0].clone());
                assert_eq!(got, want, "{sql}");
                (what, calls)
            }
        };
        let (what, first) = read(
            "first point read",
            "SELECT v FROM app.t WHERE id = 1234".into(),
            Some(noise(1234)),
        )
        .await;
        report.push((what, first.clone()));
        let (what, second) = read(
            "second point read, same file",
            "SELECT v FROM app.t WHERE id = 77".into(),
            Some(noise(77)),
        )
        .await;
        report.push((what, second.clone()));
        let (what, missing) = read(
            "point read of a missing key",
            "SELECT v FROM app.t WHERE id = 999999".into(),
            None,
        )
        .await;
        report.push((what, missing.clone()));
        exec(&c, "INSERT INTO app.t (id, v) VALUES (5000, 'hot')").await;
        let (what, hot) = read(
            "point read of a hot row",
            "SELECT v FROM app.t WHERE id = 5000".into(),
            Some("hot".into()),
        )
        .await;
        report.push((what, hot.clone()));
        for (what, calls) in &report {
            let bytes: u64 = calls.iter().filter_map(range_bytes).sum();
            eprintln!(
                "S3 requests, {what}: {} ({bytes} bytes in ranges of a {size}-byte file) [{}]",
                calls.len(),
                describe(calls)
            );
        }

        let gets = |calls: &[S3Call]| calls.iter().filter(|c| c.op == "GetObject").count();
        assert!(
            first.len() <= 2 && gets(&first) <= 2,
            "a cold point read on a cold cache: at most a footer GET and a data GET, got {}",
            describe(&first)
        );
        assert!(
            second.len() <= 1,
            "with the footer cached, one data GET at most, got {}",
            describe(&second)
        );
        assert!(
            missing.is_empty(),
            "a key that is not cold needs no request, got {}",
            describe(&missing)
        );
        assert!(
            hot.is_empty(),
            "a hot row needs no request, got {}",
            describe(&hot)
        );
        check(&c, "app.t", &model_with(&model, 5000, "hot"), "at the end").await;
    })
    .await;
}

/// The length of a `bytes=a-b` range (`bytes=-n`: n).
fn range_bytes(call: &S3Call) -> Option<u64> {
    let range = call.range.as_deref()?.strip_prefix("bytes=")?;
    match range.split_once('-')? {
        ("", n) => n.parse().ok(),
        (a, b) => Some(b.parse::<u64>().ok()? + 1 - a.parse::<u64>().ok()?),
    }
}

/// Rows in the point-read test's file.
const ROWS: i64 = 4000;

/// 48 pseudo-random hex digits, a function of `id`.
fn noise(id: i64) -> String {
    let mut x = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed;
    let mut out = String::new();
    for _ in 0..3 {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.push_str(&format!("{:016x}", x.wrapping_mul(0x2545_f491_4f6c_dd1d)));
    }
    out
}

fn model_with(model: &Model, id: i64, v: &str) -> Model {
    let mut m = model.clone();
    m.insert(id, v.to_string());
    m
}

/// The S3 server goes away: the flush fails cleanly, hot rows and other
/// tables are served, cold reads fail with 58030; it comes back: the next
/// flush succeeds and every row is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_s3_server_fails_flushes_and_cold_reads_without_losing_rows() {
    timed("s3 failures", TEST_TIMEOUT, async {
        let (mut s3, server) = servers(ServerOptions::default()).await;
        let c = server.client().await;
        exec(&c, &create_s3_storage(&s3, "s3main", PREFIX, "")).await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) STORAGE s3main;
             CREATE TABLE app.hot (id BIGINT PRIMARY KEY, v TEXT)",
        )
        .await;
        let mut model = Model::new();
        let mut hot = Model::new();
        insert(&c, "app.t", &mut model, 1, 100, "cold").await;
        flush(&c, "app.t").await;
        insert(&c, "app.t", &mut model, 101, 150, "hot").await;
        insert(&c, "app.hot", &mut hot, 1, 10, "h").await;
        let before = s3.list(BUCKET, PREFIX).await;

        s3.stop().await;
        let started = Instant::now();
        let id = one(&c, "FLUSH TABLE app.t").await;
        let (status, message) = job_end(&c, &id).await;
        let took = started.elapsed();
        eprintln!("flush with S3 stopped: {status} after {took:?}: {message}");
        assert_eq!(
            status, "failed",
            "flush with the S3 server stopped: {message}"
        );
        assert!(!message.trim().is_empty(), "a failed flush says why");
        assert!(
            message.contains("s3main"),
            "the error names the storage: {message}"
        );
        assert!(
            !message.contains(SECRET_KEY),
            "the error shows the secret: {message}"
        );

        // Hot rows are still there and readable; the cold files are pruned
        // by the manifest (ids 1..=100) before any request.
        let hot_rows: Model = text_rows(&c, "SELECT id, v FROM app.t WHERE id > 100 ORDER BY id")
            .await
            .into_iter()
            .map(|r| (r[0].parse().unwrap(), r[1].clone()))
            .collect();
        assert_eq!(
            hot_rows,
            model
                .range(101..)
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Model>()
        );
        // Cold reads fail, never with a partial result.
        for sql in [
            "SELECT count(*) FROM app.t",
            "SELECT id, v FROM app.t ORDER BY id",
            "SELECT v FROM app.t WHERE id = 42",
        ] {
            let (code, text) = error(&c, sql).await;
            eprintln!("{sql} with S3 stopped: {code} {text}");
            assert_eq!(code, "58030", "{sql}: {text}");
            assert!(
                text.contains("s3main"),
                "{sql}: the error names the storage: {text}"
            );
            assert!(!text.contains(SECRET_KEY), "{sql}: {text}");
        }
        // The server stays up and serves tables that need no S3.
        let c2 = server.client().await;
        check(&c2, "app.hot", &hot, "with S3 stopped").await;
        insert(&c2, "app.hot", &mut hot, 11, 20, "h").await;
        insert(&c2, "app.t", &mut model, 151, 160, "hot").await;

        s3.restart().await;
        flush(&c, "app.t").await;
        check(&c, "app.t", &model, "after S3 came back").await;
        let after = s3.list(BUCKET, PREFIX).await;
        assert!(
            partition(&after, "app/t").0.len() > partition(&before, "app/t").0.len(),
            "the retried flush wrote a file: before {before:?}, after {after:?}"
        );
        assert_partition(&s3, "app/t", "after the retried flush").await;
        check(&c, "app.hot", &hot, "at the end").await;
        let failed = one(
            &c,
            &format!("SELECT coalesce(error_message, '') FROM system.jobs WHERE job_id = '{id}'"),
        )
        .await;
        assert_eq!(failed, message, "the failed job's record stays");
    })
    .await;
}

/// Flushes the scheduler starts for a table whose storage is down fail, and
/// are retried with backoff (5 s, doubling), not at every 1 s tick; once the
/// storage is back a retry succeeds without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_retries_a_failed_flush_with_backoff() {
    timed("s3 retries", TEST_TIMEOUT, async {
        let (mut s3, server) = servers(ServerOptions::default()).await;
        let c = server.client().await;
        exec(&c, &create_s3_storage(&s3, "s3main", PREFIX, "")).await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.p (id BIGINT PRIMARY KEY, v TEXT) STORAGE s3main FLUSH ROWS 20",
        )
        .await;
        s3.stop().await;
        let mut model = Model::new();
        insert(&c, "app.p", &mut model, 1, 30, "p").await;
        let jobs = "SELECT status, coalesce(error_message, '') FROM system.jobs \
                    WHERE job_type = 'flush' AND namespace_id = 'app' AND table_name = 'p' \
                    ORDER BY created_at";
        // The policy is due at once; watch 8 s of 1 s ticks with S3 down.
        let watch = Duration::from_secs(8);
        let started = Instant::now();
        let mut failed = vec![];
        while started.elapsed() < watch {
            tokio::time::sleep(Duration::from_millis(250)).await;
            failed = text_rows(&c, jobs)
                .await
                .into_iter()
                .filter(|r| r[0] == "failed")
                .collect::<Vec<_>>();
        }
        eprintln!("flushes failed in {watch:?} with S3 down: {}", failed.len());
        assert!(
            (1..=3).contains(&failed.len()),
            "expected 1 to 3 failed flushes in {watch:?} (backoff 5 s, doubling), got {failed:?}"
        );
        for r in &failed {
            assert!(r[1].contains("s3main"), "{r:?}");
        }
        check(&c, "app.p", &model, "while S3 is down").await;

        s3.restart().await;
        let deadline = Instant::now() + Duration::from_secs(45);
        loop {
            let rows = text_rows(&c, jobs).await;
            if rows.iter().any(|r| r[0] == "completed") {
                eprintln!(
                    "a scheduled flush completed {:?} after S3 came back; jobs: {:?}",
                    Instant::now() + Duration::from_secs(45) - deadline,
                    rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no scheduled flush completed 45 s after S3 came back: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        check(&c, "app.p", &model, "after the retried flush").await;
        assert_eq!(
            one(
                &c,
                "SELECT hot_rows FROM system.tables WHERE namespace_id = 'app' AND table_name = 'p'"
            )
            .await,
            "0",
            "every row was flushed"
        );
        assert_partition(&s3, "app/p", "after the scheduled retry").await;
    })
    .await;
}

/// Every environment variable a test server gets here: debug logs of
/// Strata's own crates, so a secret logged at any level shows.
fn debug_logs() -> ServerOptions {
    let crates = [
        "strata",
        "strata_server",
        "strata_sql",
        "strata_catalog",
        "strata_cold",
        "strata_jobs",
        "strata_pgwire",
        "strata_session",
        "strata_query",
        "strata_tiers",
        "strata_store",
        "strata_common",
        "strata_pgcatalog",
    ];
    let filter = std::iter::once("info".to_string())
        .chain(crates.iter().map(|c| format!("{c}=debug")))
        .collect::<Vec<_>>()
        .join(",");
    ServerOptions {
        env: vec![("RUST_LOG".into(), filter)],
        ..ServerOptions::default()
    }
}

/// Wrong credentials are refused (at CREATE, and by a flush when not
/// verified); the secret never appears in system tables, SHOW output, error
/// messages, jobs or the server log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_and_never_shown() {
    timed("s3 credentials", TEST_TIMEOUT, async {
        const WRONG_SECRET: &str = "wr0ng-Secret-Qv93Jx71Nb";
        const BAD_JSON_SECRET: &str = "bad-json-Secret-Tz55Kw20";
        const UNQUOTED_SECRET: &str = "unquoted-Secret-Hh12Lp88";
        let secrets = [SECRET_KEY, WRONG_SECRET, BAD_JSON_SECRET, UNQUOTED_SECRET];
        let shows = |text: &str| secrets.iter().find(|s| text.contains(**s)).copied();

        let (s3, server) = servers(debug_logs()).await;
        let c = server.client().await;

        // CREATE verifies the location with a small probe object, deleted again.
        s3.reset_requests();
        exec(&c, &create_s3_storage(&s3, "s3main", PREFIX, "")).await;
        let probe = s3.requests();
        eprintln!("CREATE STORAGE's probe: {}", describe(&probe));
        assert!(
            probe
                .iter()
                .any(|r| r.method == "PUT" || r.method == "POST"),
            "CREATE STORAGE wrote no probe: {}",
            describe(&probe)
        );
        assert!(
            s3.list(BUCKET, PREFIX)
                .await
                .iter()
                .all(|k| !k.contains("probe")),
            "the probe object was left behind"
        );

        // Wrong secret: refused at CREATE (with VERIFY on), without the secret.
        let wrong = credentials_json(ACCESS_KEY, WRONG_SECRET);
        let create_wrong = |id: &str, with: &str| {
            format!(
                "CREATE STORAGE {id} TYPE 's3' PATH 's3://{BUCKET}/other' ENDPOINT '{}' \
                 CREDENTIALS '{wrong}' {with}",
                s3.endpoint()
            )
        };
        let (code, text) = error(&c, &create_wrong("s3wrong", "")).await;
        eprintln!("CREATE STORAGE with a wrong secret: {code} {text}");
        assert_eq!(shows(&text), None, "{text}");
        // Other errors that carry credentials in the statement.
        let (code2, text) = error(&c, &create_s3_storage(&s3, "s3main", PREFIX, "")).await;
        assert_eq!(code2, "42710", "{text}");
        assert_eq!(shows(&text), None, "{text}");
        let bad_json = format!(
            "CREATE STORAGE s3bad TYPE 's3' PATH 's3://{BUCKET}/x' \
             CREDENTIALS '{{\"access_key_id\":\"k\",\"secret\":\"{BAD_JSON_SECRET}\"}}'"
        );
        let (_, text) = error(&c, &bad_json).await;
        assert_eq!(shows(&text), None, "{text}");
        let unquoted = format!(
            "CREATE STORAGE s3bad TYPE 's3' PATH 's3://{BUCKET}/x' CREDENTIALS {UNQUOTED_SECRET}"
        );
        let (_, text) = error(&c, &unquoted).await;
        assert_eq!(shows(&text), None, "{text}");

        // Not verified: created; then a flush fails with a clear error.
        exec(&c, &create_wrong("s3wrong", "WITH (VERIFY = FALSE)")).await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) STORAGE s3wrong",
        )
        .await;
        let mut model = Model::new();
        insert(&c, "app.t", &mut model, 1, 50, "v").await;
        let id = one(&c, "FLUSH TABLE app.t").await;
        let (status, message) = job_end(&c, &id).await;
        eprintln!("flush with a wrong secret: {status}: {message}");
        assert_eq!(status, "failed", "{message}");
        assert!(
            message.contains("s3wrong"),
            "the error names the storage: {message}"
        );
        assert_eq!(shows(&message), None, "{message}");
        check(&c, "app.t", &model, "after the failed flush").await;

        // The right credentials: the next flush succeeds.
        exec(
            &c,
            &format!(
                "ALTER STORAGE s3wrong SET CREDENTIALS '{}' DESCRIPTION 'fixed'",
                s3.credentials_json()
            ),
        )
        .await;
        flush(&c, "app.t").await;
        check(&c, "app.t", &model, "after a flush with the right secret").await;
        let listing = s3.list(BUCKET, "other").await;
        assert!(
            listing.iter().any(|k| k.starts_with("other/app/t/batch-")),
            "{listing:?}"
        );

        // Nowhere to be seen: every system table, SHOW STORAGES, the log.
        let mut outputs = vec![(
            "SHOW STORAGES".to_string(),
            text_rows(&c, "SHOW STORAGES").await,
        )];
        // The system tables information_schema lists, and those documented.
        let mut tables: Vec<String> = text_rows(
            &c,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'system'",
        )
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .chain(
            [
                "namespaces",
                "tables",
                "columns",
                "users",
                "jobs",
                "storages",
                "stats",
            ]
            .map(String::from),
        )
        .collect();
        tables.sort();
        tables.dedup();
        for t in tables {
            let sql = format!("SELECT * FROM system.{t}");
            match c.simple_query(&sql).await {
                Ok(messages) => outputs.push((
                    sql,
                    common::simple_rows(&messages)
                        .into_iter()
                        .map(|r| r.into_iter().map(Option::unwrap_or_default).collect())
                        .collect(),
                )),
                Err(e) => eprintln!("{sql}: {e}"),
            }
        }
        for must in ["storages", "jobs", "users", "tables"] {
            let sql = format!("SELECT * FROM system.{must}");
            assert!(
                outputs
                    .iter()
                    .any(|(s, rows)| *s == sql && !rows.is_empty()),
                "{sql} was not read"
            );
        }
        for (sql, rows) in &outputs {
            for row in rows {
                for value in row {
                    assert_eq!(shows(value), None, "{sql} shows a secret: {row:?}");
                }
            }
        }
        let row = &named_rows(
            &c,
            "SELECT * FROM system.storages WHERE storage_id = 's3wrong'",
        )
        .await[0];
        assert_eq!(row["description"], "fixed");
        let log = server.log_lines();
        assert!(!log.is_empty());
        for line in &log {
            assert_eq!(shows(line), None, "the server log shows a secret: {line}");
        }
    })
    .await;
}

/// Waits (up to 20 s) until job `id` is running.
async fn until_running(client: &Client, id: &str) {
    let sql = format!("SELECT status FROM system.jobs WHERE job_id = '{id}'");
    let deadline = Instant::now() + Duration::from_secs(20);
    while one(client, &sql).await != "running" {
        assert!(Instant::now() < deadline, "job {id} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// KILL JOB of a flush to S3 leaves no object in the bucket and every row
/// hot; a USER table with USE_USER_STORAGE sends each user's files to that
/// user's storage (two prefixes of the bucket here), and each user reads
/// only their own rows, after a restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_flush_leaves_nothing_and_each_user_gets_their_own_storage() {
    timed("kill and per-user storages", TEST_TIMEOUT, async {
        let options = ServerOptions {
            env: vec![("STRATA_FAILPOINT".into(), "pause_flush=slow:3000".into())],
            ..ServerOptions::default()
        };
        let (s3, mut server) = servers(options).await;
        let c = server.client().await;
        exec(&c, &create_s3_storage(&s3, "s3eu", "eu", "")).await;
        exec(&c, &create_s3_storage(&s3, "s3us", "us", "")).await;
        exec(
            &c,
            "CREATE NAMESPACE app;
             CREATE TABLE app.slow (id BIGINT PRIMARY KEY, v TEXT) STORAGE s3eu;
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, v TEXT) WITH (USE_USER_STORAGE = TRUE);
             CREATE USER alice WITH PASSWORD 'a' ROLE user;
             CREATE USER bob WITH PASSWORD 'b' ROLE user;
             ALTER USER alice SET STORAGE 's3eu';
             ALTER USER bob SET STORAGE 's3us';",
        )
        .await;

        let mut model = Model::new();
        insert(&c, "app.slow", &mut model, 1, 50, "s").await;
        let id = one(&c, "FLUSH TABLE app.slow").await;
        until_running(&c, &id).await;
        exec(&c, &format!("KILL JOB '{id}'")).await;
        let (status, message) = job_end(&c, &id).await;
        assert_eq!(status, "cancelled", "{message}");
        check(&c, "app.slow", &model, "after the killed flush").await;
        let eu = s3.list(BUCKET, "eu").await;
        assert!(!eu.iter().any(|k| k.contains("batch-")), "{eu:?}");

        for (user, n) in [("alice", 3), ("bob", 2)] {
            for i in 1..=n {
                exec(
                    &c,
                    &format!(
                        "EXECUTE AS USER '{user}' (INSERT INTO app.notes VALUES ({i}, '{user}-{i}'))"
                    ),
                )
                .await;
            }
        }
        flush(&c, "app.notes").await;
        let eu = s3.list(BUCKET, "eu/app/notes").await;
        let us = s3.list(BUCKET, "us/app/notes").await;
        assert!(
            eu.iter().any(|k| k.starts_with("eu/app/notes/alice/batch-"))
                && !eu.iter().any(|k| k.contains("/bob/")),
            "{eu:?}"
        );
        assert!(
            us.iter().any(|k| k.starts_with("us/app/notes/bob/batch-"))
                && !us.iter().any(|k| k.contains("/alice/")),
            "{us:?}"
        );
        assert!(eu.iter().any(|k| k == "eu/app/notes/alice/manifest.json"), "{eu:?}");
        assert!(us.iter().any(|k| k == "us/app/notes/bob/manifest.json"), "{us:?}");

        server.restart().await;
        let c = server.client().await;
        for (user, want) in [
            ("alice", vec!["alice-1", "alice-2", "alice-3"]),
            ("bob", vec!["bob-1", "bob-2"]),
        ] {
            let got: Vec<String> = text_rows(
                &c,
                &format!("EXECUTE AS USER '{user}' (SELECT v FROM app.notes ORDER BY id)"),
            )
            .await
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
            assert_eq!(got, want, "{user} reads only their own rows");
        }
        assert_eq!(
            one(&c, "SELECT storage_id FROM system.users WHERE user_id = 'bob'").await,
            "s3us"
        );
    })
    .await;
}

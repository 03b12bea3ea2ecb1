//! Live queries that end and resume: `OPTIONS (from_seq = S)` after a
//! disconnect, a restart or a cut-off continues with no gap and no duplicate
//! (against a model of the committed changes); a `from_seq` the log no longer
//! reaches is 55000; a slow subscriber is cut off with 53400 while writers go
//! on; CancelRequest and a vanished client end a subscription; CSV and binary
//! COPY formats.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use tokio_postgres::{Client, NoTls};

use common::live::{Rng, Rows, next_line, subscribe};
use common::raw::RawConn;
use common::{ServerOptions, TestServer, exec, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// One change as the subscriber reads it: op, _seq, id, body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    op: String,
    seq: u64,
    id: String,
    body: String,
}

fn parse_row(line: &[u8]) -> Row {
    let line = String::from_utf8(line.to_vec()).unwrap();
    let f: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
    Row {
        op: f[0].into(),
        seq: f[1].parse().unwrap(),
        id: f[2].into(),
        body: f[3].into(),
    }
}

async fn next(rows: &mut Rows) -> Row {
    parse_row(next_line(rows).await.as_bytes())
}

/// A connection that can be dropped abruptly (the subscriber vanishing).
async fn connect_as(server: &TestServer, user: &str) -> (Client, tokio::task::JoinHandle<()>) {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} password=pw dbname=strata",
        server.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, handle)
}

/// One user's writer and the model of what it committed.
struct Writer {
    client: Client,
    live: BTreeMap<u64, String>,
    model: Vec<(String, String, String)>,
}

impl Writer {
    /// One random statement or block; the model records what commits.
    async fn step(&mut self, rng: &mut Rng, next_id: &mut u64, tag: &str) {
        let mut sql = vec![];
        let mut changes = vec![];
        let mut live = self.live.clone();
        let mut touched = std::collections::BTreeSet::new();
        let ops = 1 + rng.next() % 3;
        for _ in 0..ops {
            let pick = rng.next() % 10;
            let existing = live
                .keys()
                .nth((rng.next() % live.len().max(1) as u64) as usize);
            match (pick, existing.copied()) {
                (0..=1, Some(id)) => {
                    touched.insert(id);
                    let old = live.remove(&id).unwrap();
                    sql.push(format!("DELETE FROM notes WHERE id = {id}"));
                    changes.push(("delete".to_string(), id.to_string(), old));
                }
                (2..=4, Some(id)) => {
                    let body = format!("{tag}-u{}", rng.next() % 1000);
                    sql.push(format!("UPDATE notes SET body = '{body}' WHERE id = {id}"));
                    touched.insert(id);
                    live.insert(id, body.clone());
                    changes.push(("update".into(), id.to_string(), body));
                }
                _ => {
                    *next_id += 1;
                    let body = format!("{tag}-i{next_id}");
                    sql.push(format!("INSERT INTO notes VALUES ({next_id}, '{body}')"));
                    touched.insert(*next_id);
                    live.insert(*next_id, body.clone());
                    changes.push(("insert".into(), next_id.to_string(), body));
                }
            }
        }
        match rng.next() % 4 {
            // A rolled-back block: nothing of it is sent.
            0 => {
                exec(
                    &self.client,
                    &format!("BEGIN; {}; ROLLBACK", sql.join("; ")),
                )
                .await;
                return;
            }
            1 => {
                exec(&self.client, &format!("BEGIN; {}; COMMIT", sql.join("; "))).await;
                changes = net_effect(&self.live, &live, &touched);
            }
            _ => {
                for s in &sql {
                    exec(&self.client, s).await;
                }
            }
        }
        self.live = live;
        self.model.extend(changes);
    }
}

/// What a committed block sends: one change per key it changed (its net
/// effect), the rows written in key order, then the rows deleted.
fn net_effect(
    before: &BTreeMap<u64, String>,
    after: &BTreeMap<u64, String>,
    touched: &std::collections::BTreeSet<u64>,
) -> Vec<(String, String, String)> {
    let mut out = vec![];
    for id in touched {
        match (before.get(id), after.get(id)) {
            (None, Some(body)) => out.push(("insert".into(), id.to_string(), body.clone())),
            (Some(_), Some(body)) => out.push(("update".into(), id.to_string(), body.clone())),
            _ => {}
        }
    }
    for id in touched {
        if let (Some(body), None) = (before.get(id), after.get(id)) {
            out.push(("delete".into(), id.to_string(), body.clone()));
        }
    }
    out
}

/// What a subscriber has read so far, and the `_seq` to resume after.
#[derive(Default)]
struct Received {
    rows: Vec<(String, String, String)>,
    last_seq: u64,
}

impl Received {
    async fn read(&mut self, rows: &mut Rows, n: usize) {
        for _ in 0..n {
            let r = next(rows).await;
            assert!(
                r.seq > self.last_seq,
                "_seq goes up: {r:?} after {}",
                self.last_seq
            );
            self.last_seq = r.seq;
            self.rows.push((r.op, r.id, r.body));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_after_disconnects_loses_nothing_and_repeats_nothing() {
    timed("resume", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE USER TABLE notes (id BIGINT PRIMARY KEY, body TEXT);
             CREATE USER alice WITH PASSWORD 'pw' ROLE user;
             CREATE USER bob WITH PASSWORD 'pw' ROLE user;",
        )
        .await;
        let users = ["alice", "bob"];
        let mut writers = vec![];
        let mut subs = vec![];
        for u in users {
            writers.push(Writer {
                client: connect_as(&server, u).await.0,
                live: BTreeMap::new(),
                model: vec![],
            });
            let (client, handle) = connect_as(&server, u).await;
            let rows = subscribe(&client, "SUBSCRIBE TO SELECT id, body FROM notes").await;
            subs.push((client, handle, rows, Received::default()));
        }
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut next_id = 0u64;
        for round in 0..3 {
            for _ in 0..30 {
                let w = (rng.next() % 2) as usize;
                writers[w].step(&mut rng, &mut next_id, users[w]).await;
            }
            // Each subscriber reads part of what is due, then vanishes (the
            // rest may sit in its socket) and resumes after its last `_seq`.
            for (i, u) in users.iter().enumerate() {
                let (client, handle, mut rows, mut got) = subs.remove(0);
                let due = writers[i].model.len() - got.rows.len();
                got.read(&mut rows, due / 2).await;
                drop(rows);
                drop(client);
                handle.abort();
                let (client, handle) = connect_as(&server, u).await;
                let sql = format!(
                    "COPY (SUBSCRIBE TO SELECT id, body FROM notes OPTIONS (from_seq = {})) TO STDOUT",
                    got.last_seq
                );
                let rows = subscribe(&client, &sql).await;
                subs.push((client, handle, rows, got));
            }
            let _ = round;
        }
        for (i, (_, _, rows, got)) in subs.iter_mut().enumerate() {
            let due = writers[i].model.len() - got.rows.len();
            got.read(rows, due).await;
            assert_eq!(got.rows, writers[i].model, "{}'s changes", users[i]);
            // Nothing more, in particular nothing of the other user.
            if let Ok(extra) = tokio::time::timeout(Duration::from_millis(300), rows.next()).await {
                panic!("unexpected row: {extra:?}");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_survives_a_restart_and_is_trimmed_to_its_retention() {
    timed("log retention", TEST_TIMEOUT, async {
        let mut server = TestServer::start_with(ServerOptions {
            config: "[live]\nmax_entries = 5\n".into(),
            ..Default::default()
        })
        .await;
        let c = server.client().await;
        exec(&c, "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT)").await;
        let mut rows = subscribe(&c, "SUBSCRIBE TO t").await;
        let w = server.client().await;
        exec(
            &w,
            "INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b')",
        )
        .await;
        let first = next(&mut rows).await;
        assert_eq!((first.op.as_str(), first.id.as_str()), ("insert", "1"));
        drop(rows);
        drop(c);
        drop(w);

        // After a restart the rest is still there to resume from.
        server.restart().await;
        let c = server.client().await;
        let mut rows = subscribe(
            &c,
            &format!("SUBSCRIBE TO t OPTIONS (from_seq = {})", first.seq),
        )
        .await;
        let second = next(&mut rows).await;
        assert_eq!(
            (second.op.as_str(), second.id.as_str(), second.body.as_str()),
            ("insert", "2", "b")
        );

        // Past `max_entries` the oldest changes go: resuming before them is 55000.
        let w = server.client().await;
        for i in 3..=20 {
            exec(&w, &format!("INSERT INTO t VALUES ({i}, 'x')")).await;
        }
        let mut last = second.clone();
        for _ in 3..=20 {
            last = next(&mut rows).await;
        }
        assert_eq!(last.id, "20");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let e = loop {
            // A fresh connection each time: an accepted COPY keeps its own busy.
            let probe = server.client().await;
            let sql = format!("SUBSCRIBE TO t OPTIONS (from_seq = {})", first.seq);
            match probe.copy_out(sql.as_str()).await {
                Err(e) => break e,
                Ok(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Ok(_) => panic!("the log was never trimmed"),
            }
        };
        assert_eq!(sqlstate(&e).as_deref(), Some("55000"), "{e:?}");
        let db = e.as_db_error().unwrap();
        assert!(db.message().contains("last_rows"), "{}", db.message());
        // The retained tail still resumes.
        let c2 = server.client().await;
        let mut tail = subscribe(
            &c2,
            &format!("SUBSCRIBE TO t OPTIONS (from_seq = {})", last.seq - 2),
        )
        .await;
        assert_eq!(next(&mut tail).await.id, "19");
        assert_eq!(next(&mut tail).await.id, "20");
    })
    .await;
}

/// The sqlstate and message of an ErrorResponse body.
fn error_of(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        match field.first() {
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into(),
            Some(b'M') => message = String::from_utf8_lossy(&field[1..]).into(),
            _ => {}
        }
    }
    (code, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_is_cut_off_without_slowing_writers_and_resumes() {
    timed("slow subscriber", TEST_TIMEOUT, async {
        let server = TestServer::start_with(ServerOptions {
            config: "[live]\nqueue_size = 64\n".into(),
            ..Default::default()
        })
        .await;
        let w = server.client().await;
        exec(&w, "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT)").await;
        // A subscriber that stops reading: its socket fills, then its queue.
        let mut raw = RawConn::login(server.port(), "root").await.unwrap();
        raw.send(&common::raw::query("SUBSCRIBE TO t"))
            .await
            .unwrap();
        let copy = raw.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(copy.0, b'H', "CopyOutResponse");
        // More than the socket buffers hold, then more than the queue.
        let body = "x".repeat(10_000);
        let total = 1500;
        for chunk in (1..=total).collect::<Vec<_>>().chunks(100) {
            let sql: Vec<String> = chunk
                .iter()
                .map(|i| format!("INSERT INTO t VALUES ({i}, '{body}')"))
                .collect();
            // Each statement commits on its own; none waits for the subscriber.
            exec(&w, &sql.join(";")).await;
        }
        // Now read: rows, then the cut-off.
        let mut ids = vec![];
        let mut last_seq = 0u64;
        let (code, message) = loop {
            let (tag, body) = raw.next(Duration::from_secs(20)).await.unwrap();
            match tag {
                b'd' => {
                    let r = parse_row(&body);
                    last_seq = r.seq;
                    ids.push(r.id.parse::<u64>().unwrap());
                }
                b'E' => break error_of(&body),
                other => panic!("unexpected message {}", other as char),
            }
        };
        assert_eq!(code, "53400", "{message}");
        assert!(ids.len() < total, "cut off before the end");
        let resume_from: u64 = message
            .rsplit("from_seq = ")
            .next()
            .and_then(|s| s.trim_end_matches(')').parse().ok())
            .unwrap_or_else(|| panic!("no from_seq in {message}"));
        assert_eq!(resume_from, last_seq, "{message}");
        // The connection is usable again.
        assert_eq!(
            raw.until_ready(Duration::from_secs(10))
                .await
                .unwrap()
                .last()
                .unwrap()
                .0,
            b'Z'
        );
        // Resuming delivers the rest, once each.
        let c = server.client().await;
        let mut rows = subscribe(
            &c,
            &format!("SUBSCRIBE TO t OPTIONS (from_seq = {resume_from})"),
        )
        .await;
        while ids.len() < total {
            ids.push(next(&mut rows).await.id.parse().unwrap());
        }
        assert_eq!(ids, (1..=total as u64).collect::<Vec<_>>());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_disconnect_end_a_subscription() {
    timed("cancel", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        exec(&c, "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT)").await;
        let mut rows = subscribe(&c, "SUBSCRIBE TO t").await;
        let token = c.cancel_token();
        token.cancel_query(NoTls).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), rows.next())
            .await
            .expect("the stream ends");
        let e = match end {
            Some(Err(e)) => e,
            other => panic!("expected 57014, got {other:?}"),
        };
        assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e:?}");
        drop(rows);
        assert_eq!(common::text_rows(&c, "SELECT 1").await[0][0], "1");

        // A subscriber that vanishes is removed without waiting for a change.
        let (client, handle) = common::connect_with_handle(server.port()).await.unwrap();
        let rows = subscribe(&client, "SUBSCRIBE TO t").await;
        let listed = || async {
            common::text_rows(&c, "SELECT live_id, lag FROM system.live_queries").await
        };
        let open = listed().await;
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(open[0][1], "0");
        drop(rows);
        drop(client);
        handle.abort();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !listed().await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "still listed: {}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_binary_formats() {
    timed("formats", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        exec(
            &c,
            "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT);
             INSERT INTO t VALUES (1, 'a,b'), (2, NULL)",
        )
        .await;
        let mut rows = subscribe(
            &c,
            "COPY (SUBSCRIBE TO t OPTIONS (last_rows = 2)) TO STDOUT WITH (FORMAT csv, HEADER)",
        )
        .await;
        // The header goes out with the first row.
        let first = next_line(&mut rows).await;
        let lines: Vec<&str> = first.lines().collect();
        assert_eq!(lines[0], "_op,_seq,id,body");
        assert!(
            lines[1].starts_with("snapshot,") && lines[1].ends_with(",1,\"a,b\""),
            "{first}"
        );
        let line = next_line(&mut rows).await;
        assert!(
            line.starts_with("snapshot,") && line.ends_with(",2,\n"),
            "{line:?}"
        );
        drop(rows);

        let c2 = server.client().await;
        let mut rows = subscribe(
            &c2,
            "COPY (SUBSCRIBE TO t OPTIONS (last_rows = 1)) TO STDOUT (FORMAT binary)",
        )
        .await;
        let d = tokio::time::timeout(Duration::from_secs(10), rows.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(d.starts_with(b"PGCOPY\n\xff\r\n\0"), "{d:?}");
        // Header (19 bytes), then a 4-field tuple.
        assert_eq!(&d[19..21], &4i16.to_be_bytes());
        let c3 = server.client().await;
        let e = c3
            .copy_out("COPY (SUBSCRIBE TO t) TO STDOUT (FORMAT xml)")
            .await
            .err()
            .expect("an unknown format is refused");
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_tables_and_concurrent_subscriptions() {
    timed("stream tables", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let w = server.client().await;
        exec(
            &w,
            "CREATE STREAM TABLE events (id BIGINT PRIMARY KEY, body TEXT) WITH (TTL_SECONDS = 1)",
        )
        .await;
        let mut subs = vec![];
        for _ in 0..4 {
            let c = server.client().await;
            let rows = subscribe(&c, "SUBSCRIBE TO events").await;
            subs.push((c, rows));
        }
        exec(&w, "INSERT INTO events VALUES (1, 'e1')").await;
        for (_, rows) in subs.iter_mut() {
            let r = next(rows).await;
            assert_eq!((r.op.as_str(), r.id.as_str()), ("insert", "1"));
        }
        // Expiry by TTL sends nothing, not even after eviction runs.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            common::text_rows(&w, "SELECT count(*) FROM events").await[0][0],
            "0"
        );
        let (_, rows) = &mut subs[0];
        if let Ok(extra) = tokio::time::timeout(Duration::from_millis(500), rows.next()).await {
            panic!("TTL expiry was sent: {extra:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_subscribers_and_a_write_burst_keep_memory_bounded() {
    timed("1000 subscribers", TEST_TIMEOUT, async {
        let server = TestServer::start_with(ServerOptions {
            config: "max_connections = 1100\n[limits]\nmax_pending_logins = 1100\n".into(),
            ..Default::default()
        })
        .await;
        let w = server.client().await;
        exec(&w, "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT)").await;
        // One subscriber that reads everything, and 1,000 that never read.
        let c = server.client().await;
        let mut reader = subscribe(&c, "SUBSCRIBE TO t").await;
        let mut stalled = vec![];
        for _ in 0..1000 {
            let mut raw = RawConn::login(server.port(), "root").await.unwrap();
            raw.send(&common::raw::query("SUBSCRIBE TO t")).await.unwrap();
            stalled.push(raw);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let listed = common::one(&w, "SELECT count(*) FROM system.live_queries").await;
            if listed == "1001" {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{listed} subscriptions open");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let before = server.rss_kib().unwrap();
        // The burst: 400 commits of 10 rows of ~200 bytes.
        let body = "b".repeat(200);
        let started = std::time::Instant::now();
        for batch in 0..40 {
            let sql: Vec<String> = (0..10)
                .map(|s| {
                    let first = (batch * 10 + s) * 10;
                    let rows: Vec<String> =
                        (first..first + 10).map(|i| format!("({i}, '{body}')")).collect();
                    format!("INSERT INTO t VALUES {}", rows.join(", "))
                })
                .collect();
            exec(&w, &sql.join(";")).await;
        }
        let burst = started.elapsed();
        let mut got = 0;
        while got < 4000 {
            next(&mut reader).await;
            got += 1;
        }
        let after = server.rss_kib().unwrap();
        println!("1,000 stalled subscribers: burst of 400 commits in {burst:?}; server RSS {before} KiB -> {after} KiB");
        assert!(
            after.saturating_sub(before) < 256 * 1024,
            "server memory grew from {before} KiB to {after} KiB"
        );
        drop(stalled);
        assert_eq!(common::one(&w, "SELECT count(*) FROM t").await, "4000");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altering_or_dropping_the_table_ends_its_subscriptions() {
    timed("ddl", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let w = server.client().await;
        exec(&w, "CREATE TABLE t (id BIGINT PRIMARY KEY, body TEXT)").await;
        let c = server.client().await;
        let mut rows = subscribe(&c, "SUBSCRIBE TO t").await;
        exec(&w, "INSERT INTO t VALUES (1, 'a')").await;
        let first = next(&mut rows).await;
        exec(
            &w,
            "ALTER TABLE t ADD COLUMN n INT; INSERT INTO t VALUES (2, 'b', 2)",
        )
        .await;
        let end = tokio::time::timeout(Duration::from_secs(10), rows.next())
            .await
            .expect("the stream ends");
        match end {
            Some(Err(e)) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{e:?}");
                let msg = e.as_db_error().unwrap().message().to_string();
                assert!(msg.contains(&format!("from_seq = {}", first.seq)), "{msg}");
            }
            other => panic!("expected 40001, got {other:?}"),
        }
        // Resuming after the ALTER reads the logged change with the new columns.
        let c2 = server.client().await;
        let mut rows = subscribe(
            &c2,
            &format!("SUBSCRIBE TO t OPTIONS (from_seq = {})", first.seq),
        )
        .await;
        let line = next_line(&mut rows).await;
        assert!(
            line.starts_with("insert\t") && line.ends_with("\t2\tb\t2\n"),
            "{line:?}"
        );
        // A dropped table ends it with 42P01, even with no change to send.
        exec(&w, "DROP TABLE t").await;
        let end = tokio::time::timeout(Duration::from_secs(10), rows.next())
            .await
            .expect("the stream ends");
        match end {
            Some(Err(e)) => assert_eq!(sqlstate(&e).as_deref(), Some("42P01"), "{e:?}"),
            other => panic!("expected 42P01, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_names_and_values_survive_the_stream_and_the_log() {
    timed("odd names", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let w = server.client().await;
        exec(
            &w,
            "CREATE NAMESPACE \"n s#%\";
             CREATE TABLE \"n s#%\".\"tâble/..\" (id BIGINT PRIMARY KEY, x DOUBLE PRECISION, t TEXT);
             INSERT INTO \"n s#%\".\"tâble/..\" VALUES (1, 'NaN', '')",
        )
        .await;
        let c = server.client().await;
        let mut rows = subscribe(
            &c,
            "SUBSCRIBE TO \"n s#%\".\"tâble/..\" OPTIONS (last_rows = 1)",
        )
        .await;
        let snap = next_line(&mut rows).await;
        assert!(snap.starts_with("snapshot\t") && snap.ends_with("\t1\tNaN\t\n"), "{snap:?}");
        exec(
            &w,
            "INSERT INTO \"n s#%\".\"tâble/..\" VALUES (2, '-Infinity', NULL), (3, 'Infinity', 'ü#%/..')",
        )
        .await;
        let live: Vec<String> = vec![next_line(&mut rows).await, next_line(&mut rows).await];
        drop(rows);
        drop(c);
        // The same rows read back from the change log.
        let from = snap.split('\t').nth(1).unwrap().to_string();
        let c = server.client().await;
        let mut rows = subscribe(
            &c,
            &format!("SUBSCRIBE TO \"n s#%\".\"tâble/..\" OPTIONS (from_seq = {from})"),
        )
        .await;
        let logged: Vec<String> = vec![next_line(&mut rows).await, next_line(&mut rows).await];
        assert_eq!(live, logged);
        assert!(logged[0].ends_with("\t2\t-Infinity\t\\N\n"), "{logged:?}");
        assert!(logged[1].ends_with("\t3\tInfinity\tü#%/..\n"), "{logged:?}");
    })
    .await;
}

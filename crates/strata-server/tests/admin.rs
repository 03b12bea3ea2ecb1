//! The admin HTTP port end to end: the real binary with `[admin] listen` on a
//! port of its choosing (read back from its log line), `/health`, `/metrics`
//! in the Prometheus text format with counters that move as clients work,
//! `system.stats` agreeing with it, 404s, and hostile clients (garbage,
//! oversized headers, idle sockets past the connection bound) that neither
//! kill the server nor keep the port from answering.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::SimpleQueryMessage;

use common::{ServerOptions, TestServer, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

async fn start_with_admin() -> (TestServer, String) {
    let server = TestServer::start_with(ServerOptions {
        config: "[admin]\nlisten = \"127.0.0.1:0\"\n".into(),
        ..Default::default()
    })
    .await;
    let addr = admin_address(&server);
    (server, addr)
}

/// The admin port's address, from the server's log line.
fn admin_address(server: &TestServer) -> String {
    let needle = "admin port (/metrics, /health) listening on ";
    server
        .log_lines()
        .iter()
        .find_map(|l| {
            let rest = &l[l.find(needle)? + needle.len()..];
            Some(rest.split_whitespace().next()?.to_string())
        })
        .unwrap_or_else(|| panic!("no admin listen line\n{}", server.log_tail()))
}

/// One raw HTTP exchange on a fresh connection: whatever the server sends
/// back until it closes (it is asked to), or an error.
async fn raw(addr: &str, request: &[u8]) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(request).await?;
        let mut out = vec![];
        s.read_to_end(&mut out).await?;
        Ok(out)
    };
    match tokio::time::timeout(HTTP_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::other("HTTP exchange timed out")),
    }
}

struct HttpResponse {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

async fn get(addr: &str, path: &str) -> HttpResponse {
    request(addr, "GET", path).await
}

async fn request(addr: &str, method: &str, path: &str) -> HttpResponse {
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let bytes = raw(addr, req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8(bytes).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The samples of a Prometheus text page, by name with labels.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("sample line");
            (name.to_string(), value.parse().expect("sample value"))
        })
        .collect()
}

async fn metrics(addr: &str) -> BTreeMap<String, f64> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200, "{}", r.body);
    samples(&r.body)
}

fn value(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("{name} missing from {m:?}"))
}

async fn system_stats(c: &tokio_postgres::Client) -> BTreeMap<String, f64> {
    c.simple_query("SELECT metric_name, metric_value FROM system.stats")
        .await
        .expect("system.stats")
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some((
                r.get(0)?.to_string(),
                r.get(1)?.parse().expect("metric_value"),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn health_metrics_and_system_stats() {
    timed("admin metrics", TEST_TIMEOUT, async {
        let (server, addr) = start_with_admin().await;

        let h = get(&addr, "/health").await;
        assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));

        let page = get(&addr, "/metrics").await;
        assert_eq!(page.status, 200);
        assert_eq!(
            page.headers.get("content-type").map(String::as_str),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        for name in [
            "connections_total",
            "connections_active",
            "queries_total",
            "query_errors_total",
            "rows_written_total",
            "rows_read_total",
            "flush_jobs_total",
            "compaction_jobs_total",
            "flush_rows_total",
            "flush_bytes_total",
            "compaction_bytes_total",
            "footer_cache_hits_total",
            "footer_cache_misses_total",
            "job_queue_depth",
        ] {
            assert!(
                page.body.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{}",
                page.body
            );
        }
        let before = samples(&page.body);
        assert_eq!(value(&before, "queries_total"), 0.0);
        assert_eq!(
            value(&before, r#"flush_jobs_total{status="completed"}"#),
            0.0
        );

        // Only this test's clients talk to this server: the counts are exact.
        let c = server.client().await;
        let open = metrics(&addr).await;
        assert_eq!(value(&open, "connections_total"), 1.0);
        assert_eq!(value(&open, "connections_active"), 1.0);

        c.batch_execute(
            "CREATE NAMESPACE app;
             CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO app.t VALUES (1, 'a'), (2, 'b'), (3, 'c');
             UPDATE app.t SET v = 'x' WHERE id = 1;
             DELETE FROM app.t WHERE id = 2",
        )
        .await
        .expect("setup");
        let rows = c.simple_query("SELECT * FROM app.t").await.expect("select");
        let read = rows
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(read, 2);
        // The extended protocol counts in the same counters.
        let one = c
            .query("SELECT v FROM app.t WHERE id = $1", &[&1i64])
            .await
            .expect("extended select");
        assert_eq!(one.len(), 1);
        let inserted = c
            .execute("INSERT INTO app.t VALUES ($1, $2)", &[&9i64, &"z"])
            .await
            .expect("extended insert");
        assert_eq!(inserted, 1);
        // Errors: one while planning, one while computing rows.
        assert!(c.simple_query("SELECT nope FROM app.t").await.is_err());
        assert!(
            c.simple_query("SELECT 1 / (id - id) FROM app.t")
                .await
                .is_err()
        );

        let after = metrics(&addr).await;
        // 5 statements of the batch, the SELECT, two extended ones, two errors.
        assert_eq!(value(&after, "queries_total"), 10.0, "{after:?}");
        assert_eq!(value(&after, "query_errors_total"), 2.0, "{after:?}");
        // 3 inserted, 1 updated, 1 deleted, 1 inserted.
        assert_eq!(value(&after, "rows_written_total"), 6.0, "{after:?}");
        assert_eq!(value(&after, "rows_read_total"), 3.0, "{after:?}");

        // A flush job counts when it ends, with the rows and bytes it wrote.
        c.simple_query("FLUSH TABLE app.t").await.expect("flush");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let flushed = loop {
            let m = metrics(&addr).await;
            if value(&m, r#"flush_jobs_total{status="completed"}"#) >= 1.0 {
                break m;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the flush did not complete: {m:?}\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(value(&flushed, "flush_rows_total"), 3.0, "{flushed:?}");
        assert!(value(&flushed, "flush_bytes_total") > 0.0, "{flushed:?}");
        assert_eq!(value(&flushed, r#"flush_jobs_total{status="failed"}"#), 0.0);
        assert_eq!(value(&flushed, "job_queue_depth"), 0.0);

        // system.stats: the same samples by the same names; the counters no
        // statement moves in between have the same values.
        let stats = system_stats(&c).await;
        let page = metrics(&addr).await;
        assert_eq!(
            stats.keys().collect::<Vec<_>>(),
            page.keys().collect::<Vec<_>>()
        );
        for name in [
            "rows_written_total",
            "flush_rows_total",
            "flush_bytes_total",
            r#"flush_jobs_total{status="completed"}"#,
            "connections_total",
        ] {
            assert_eq!(value(&stats, name), value(&page, name), "{name}");
        }
        // The system.stats query itself counts before /metrics is read.
        assert_eq!(value(&stats, "queries_total"), 11.0);
        assert_eq!(value(&page, "queries_total"), 12.0);

        // Reading the flushed rows goes to the cold tier: the built-in
        // `local` storage's object-store requests and the footer lookups count.
        let cold = c
            .simple_query("SELECT * FROM app.t")
            .await
            .expect("cold read");
        assert_eq!(
            cold.iter()
                .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
                .count(),
            3
        );
        let m = metrics(&addr).await;
        let local: f64 = m
            .iter()
            .filter(|(k, _)| k.starts_with(r#"object_store_requests_total{storage="local","#))
            .map(|(_, v)| v)
            .sum();
        assert!(local > 0.0, "{m:?}");
        let footers = value(&m, "footer_cache_hits_total") + value(&m, "footer_cache_misses_total");
        assert!(footers >= 1.0, "{m:?}");

        // Every logged-in user may read it, like every system table.
        c.batch_execute("CREATE USER alice PASSWORD 'pw' ROLE user")
            .await
            .expect("create user");
        let alice = server.client_as("alice", Some("pw")).await;
        assert!(!system_stats(&alice).await.is_empty());
        drop(alice);

        drop(c);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let m = metrics(&addr).await;
            if value(&m, "connections_active") == 0.0 {
                assert_eq!(value(&m, "connections_total"), 2.0);
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{m:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn other_paths_and_hostile_clients() {
    timed("admin hostile", TEST_TIMEOUT, async {
        let (mut server, addr) = start_with_admin().await;

        assert_eq!(get(&addr, "/").await.status, 404);
        assert_eq!(get(&addr, "/metricsx").await.status, 404);
        assert_eq!(get(&addr, "/health/../metrics").await.status, 404);
        assert_eq!(request(&addr, "DELETE", "/nope").await.status, 404);
        assert_eq!(request(&addr, "POST", "/metrics").await.status, 405);
        assert_eq!(request(&addr, "HEAD", "/health").await.status, 200);

        // Garbage and malformed requests get a 4xx or a closed connection,
        // never a dead server.
        let garbage: &[&[u8]] = &[
            b"\x00\x01\x02\xff\xfe garbage\r\n\r\n",
            b"GET /metrics HTTP/9.9\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        ];
        for g in garbage {
            let answer = raw(&addr, g).await.unwrap_or_default();
            let text = String::from_utf8_lossy(&answer);
            assert!(
                answer.is_empty() || text.starts_with("HTTP/1.1 4"),
                "{g:?} answered {text:?}"
            );
        }
        // A body is never read: a broken one does not matter to the answer,
        // nor does a client that sends half a request and goes away.
        for g in [
            &b"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            &b"GET /metrics HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nab"[..],
            &b"GET /metr"[..],
        ] {
            let mut s = TcpStream::connect(&addr).await.expect("connect");
            s.write_all(g).await.expect("send");
            drop(s);
        }
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(200_000)
        );
        let answer = raw(&addr, huge.as_bytes()).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || text.starts_with("HTTP/1.1 431"),
            "{text:?}"
        );
        let many = format!(
            "GET /metrics HTTP/1.1\r\n{}Connection: close\r\n\r\n",
            (0..200)
                .map(|i| format!("X-H{i}: v\r\n"))
                .collect::<String>()
        );
        let answer = raw(&addr, many.as_bytes()).await.unwrap_or_default();
        assert!(!String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

        // Idle sockets past the connection bound: the port stops taking new
        // connections only until the header timeout closes them.
        let mut idle = vec![];
        for _ in 0..40 {
            if let Ok(s) = TcpStream::connect(&addr).await {
                idle.push(s);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let answer = raw(
                &addr,
                b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap_or_default();
            if String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the admin port did not recover from idle sockets\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(idle);

        assert!(server.is_running(), "{}", server.log_tail());
        assert_eq!(get(&addr, "/health").await.status, 200);
        let c = server.client().await;
        c.simple_query("SELECT 1").await.expect("still serving SQL");
    })
    .await;
}

#[tokio::test]
async fn off_by_default_and_on_by_environment() {
    timed("admin off", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        assert!(
            !server.log_lines().iter().any(|l| l.contains("admin port")),
            "{}",
            server.log_tail()
        );
        drop(server);
        let server = TestServer::start_with(ServerOptions {
            env: vec![("STRATA_ADMIN_LISTEN".into(), "127.0.0.1:0".into())],
            ..Default::default()
        })
        .await;
        let addr = admin_address(&server);
        assert_eq!(get(&addr, "/health").await.status, 200);
    })
    .await;
}

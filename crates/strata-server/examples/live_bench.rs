//! Change → subscriber latency and write throughput with N subscribers, each
//! on its own user, while W writers insert rows for those users
//! (`bench/live.sh` runs it against Strata and PostgreSQL).
//!
//!   live_bench --port P --password PW --subscribers 100 --writers 8 --seconds 10 --mode subscribe
//!
//! `subscribe`: each subscriber runs `SUBSCRIBE TO bench.events` as its user
//! (a USER table: it sees its own rows); writers insert with EXECUTE AS USER.
//! `notify`: each subscriber LISTENs on its own channel; writers insert and
//! NOTIFY that channel in one statement string (runs on PostgreSQL too).
//! Each row carries the writer's clock; a subscriber's latency is its clock
//! when the row arrives minus that. Prints one line of figures.

use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_postgres::{AsyncMessage, Client, NoTls};

struct Args {
    host: String,
    port: u16,
    user: String,
    password: String,
    db: String,
    subscribers: usize,
    writers: usize,
    seconds: u64,
    mode: String,
}

fn args() -> Args {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 5433,
        user: "root".into(),
        password: String::new(),
        db: "strata".into(),
        subscribers: 1,
        writers: 8,
        seconds: 10,
        mode: "subscribe".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--host" => a.host = v,
            "--port" => a.port = v.parse().expect("--port"),
            "--user" => a.user = v,
            "--password" => a.password = v,
            "--db" => a.db = v,
            "--subscribers" => a.subscribers = v.parse().expect("--subscribers"),
            "--writers" => a.writers = v.parse().expect("--writers"),
            "--seconds" => a.seconds = v.parse().expect("--seconds"),
            "--mode" => a.mode = v,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

async fn connect(
    a: &Args,
    user: &str,
    password: &str,
) -> (
    Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
) {
    let conn = format!(
        "host={} port={} user={user} password={password} dbname={} connect_timeout=30",
        a.host, a.port, a.db
    );
    tokio_postgres::connect(&conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

async fn plain(a: &Args, user: &str, password: &str) -> Client {
    let (c, conn) = connect(a, user, password).await;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// Latencies (µs) of what arrived, shared by the subscribers.
#[derive(Default)]
struct Seen {
    latencies: std::sync::Mutex<Vec<i64>>,
    count: AtomicU64,
}

impl Seen {
    fn record(&self, sent_at: i64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = self.latencies.lock() {
            l.push(now_us() - sent_at);
        }
    }
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let admin = plain(&a, &a.user, &a.password).await;
    let strata = a.mode == "subscribe";
    // Setup: one table; one user per subscriber on Strata (a USER table
    // gives each its own rows).
    let _ = admin
        .batch_execute("DROP SCHEMA IF EXISTS bench_live CASCADE")
        .await;
    if strata {
        admin
            .batch_execute(
                "CREATE SCHEMA bench_live;
                 CREATE USER TABLE bench_live.events (id BIGINT PRIMARY KEY, sent_at BIGINT)",
            )
            .await
            .expect("setup");
    } else {
        admin
            .batch_execute(
                "CREATE SCHEMA bench_live;
                 CREATE TABLE bench_live.events (id BIGINT PRIMARY KEY, sent_at BIGINT, who INT)",
            )
            .await
            .expect("setup");
    }
    let users: Vec<String> = (0..a.subscribers.max(1))
        .map(|i| format!("lb_{i}"))
        .collect();
    if strata {
        for u in &users {
            let _ = admin
                .batch_execute(&format!("DROP USER IF EXISTS {u}"))
                .await;
            admin
                .batch_execute(&format!("CREATE USER {u} WITH PASSWORD 'pw' ROLE user"))
                .await
                .expect("create user");
        }
    }
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut keep = vec![];
    for (i, u) in users.iter().enumerate().take(a.subscribers) {
        let seen = seen.clone();
        if strata {
            let c = plain(&a, u, "pw").await;
            let rows = c
                .copy_out("SUBSCRIBE TO bench_live.events")
                .await
                .expect("subscribe");
            tokio::spawn(async move {
                let mut rows = Box::pin(rows);
                while let Some(Ok(line)) = rows.next().await {
                    let text = String::from_utf8_lossy(&line);
                    if let Some(sent) = text
                        .trim_end()
                        .rsplit('\t')
                        .next()
                        .and_then(|s| s.parse().ok())
                    {
                        seen.record(sent);
                    }
                }
            });
            keep.push(c);
        } else {
            let (c, mut conn) = connect(&a, &a.user, &a.password).await;
            tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(Ok(m)) = messages.next().await {
                    if let AsyncMessage::Notification(n) = m
                        && let Ok(sent) = n.payload().parse()
                    {
                        seen.record(sent);
                    }
                }
            });
            c.batch_execute(&format!("LISTEN lb_{i}"))
                .await
                .expect("listen");
            keep.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let written = Arc::new(AtomicU64::new(0));
    let mut tasks = vec![];
    let started = Instant::now();
    for w in 0..a.writers {
        let c = plain(&a, &a.user, &a.password).await;
        let (users, stop, written) = (users.clone(), stop.clone(), written.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = (w as u64) << 40 | n;
                let u = (n as usize * 7 + w) % users.len();
                let sql = if strata {
                    format!(
                        "EXECUTE AS USER '{}' (INSERT INTO bench_live.events VALUES ({id}, {}))",
                        users[u],
                        now_us()
                    )
                } else {
                    let at = now_us();
                    format!(
                        "INSERT INTO bench_live.events VALUES ({id}, {at}, {u}); NOTIFY lb_{u}, '{at}'"
                    )
                };
                c.batch_execute(&sql).await.expect("insert");
                written.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let total = written.load(Ordering::Relaxed);
    let mut lat = seen
        .latencies
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0
    };
    println!(
        "mode={} subscribers={} writers={} inserts={} inserts_per_s={:.0} received={} latency_ms p50={:.2} p99={:.2} max={:.2}",
        a.mode,
        a.subscribers,
        a.writers,
        total,
        total as f64 / elapsed,
        seen.count.load(Ordering::Relaxed),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    drop(keep);
    let _ = admin
        .batch_execute("DROP SCHEMA IF EXISTS bench_live CASCADE")
        .await;
    if strata {
        for u in &users {
            let _ = admin
                .batch_execute(&format!("DROP USER IF EXISTS {u}"))
                .await;
        }
    }
}

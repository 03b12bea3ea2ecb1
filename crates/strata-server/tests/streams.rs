//! STREAM tables over the wire: rows vanish when their TTL elapses (before any
//! eviction), the `SE-` eviction job reclaims them, the TTL survives restarts,
//! and FLUSH is refused.

mod common;

use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use common::{TestServer, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// (job_id, status, result) of the table's eviction jobs.
async fn evictions(client: &Client, table: &str) -> Vec<(String, String, String)> {
    let sql = format!(
        "SELECT job_id, status, coalesce(result, '') FROM system.jobs \
         WHERE job_type = 'evict' AND table_name = '{table}' ORDER BY created_at"
    );
    let mut out = vec![];
    for m in client.simple_query(&sql).await.expect("system.jobs") {
        if let SimpleQueryMessage::Row(r) = m {
            let get = |i| r.get(i).unwrap_or_default().to_string();
            out.push((get(0), get(1), get(2)));
        }
    }
    out
}

fn evicted_in(result: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(result)
        .ok()
        .and_then(|v| v["rows_evicted"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_expire_at_ttl_and_are_evicted() {
    timed("stream ttl", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let client = server.client().await;
        client
            .batch_execute(
                "CREATE NAMESPACE s;
                 CREATE STREAM TABLE s.ev (id BIGINT PRIMARY KEY, v TEXT) WITH (TTL_SECONDS = 2);
                 CREATE TABLE s.keep (id BIGINT PRIMARY KEY);
                 INSERT INTO s.keep VALUES (1);",
            )
            .await
            .expect("setup");
        let written = Instant::now();
        client
            .batch_execute("INSERT INTO s.ev VALUES (1, 'a'), (2, 'b'), (3, 'c')")
            .await
            .expect("insert");
        assert_eq!(count(&client, "SELECT count(*) FROM s.ev").await, 3);
        let point = client
            .prepare("SELECT v FROM s.ev WHERE id = $1")
            .await
            .expect("prepare");
        let rows = client.query(&point, &[&2i64]).await.expect("point");
        assert_eq!(rows.len(), 1);

        // FLUSH is refused with a clear error; FLUSH ALL leaves the stream out.
        let err = client
            .simple_query("FLUSH TABLE s.ev")
            .await
            .expect_err("flush of a stream table");
        assert_eq!(sqlstate(&err).as_deref(), Some("55000"), "{err}");
        let message = err.as_db_error().map(|d| d.message().to_string());
        assert!(
            message.as_deref().is_some_and(|m| m.contains("STREAM")),
            "{message:?}"
        );
        let all = client
            .simple_query("FLUSH ALL IN s")
            .await
            .expect("flush all");
        let tables: Vec<String> = all
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => r.get(2).map(str::to_string),
                _ => None,
            })
            .collect();
        assert_eq!(tables, vec!["keep".to_string()]);

        // Past the TTL every read path misses the rows at once.
        tokio::time::sleep(Duration::from_millis(2100).saturating_sub(written.elapsed())).await;
        assert_eq!(count(&client, "SELECT count(*) FROM s.ev").await, 0);
        assert!(
            client
                .query(&point, &[&2i64])
                .await
                .expect("point")
                .is_empty()
        );
        assert_eq!(
            client
                .execute("UPDATE s.ev SET v = 'z' WHERE id = 1", &[])
                .await
                .expect("update"),
            0
        );
        // The key is free again.
        client
            .batch_execute("INSERT INTO s.ev VALUES (1, 'again')")
            .await
            .expect("re-insert after expiry");
        assert_eq!(count(&client, "SELECT count(*) FROM s.ev").await, 1);

        // The eviction job removes the expired rows (and not the new one).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let jobs = evictions(&client, "ev").await;
            let evicted: u64 = jobs
                .iter()
                .filter(|j| j.1 == "completed")
                .map(|j| evicted_in(&j.2))
                .sum();
            if evicted >= 2 {
                assert!(jobs.iter().all(|j| j.0.starts_with("SE-")), "{jobs:?}");
                break;
            }
            assert!(Instant::now() < deadline, "no eviction: {jobs:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Write times survive a restart: a row written before it still expires.
        drop(client);
        server.restart().await;
        let client = server.client().await;
        let left = count(&client, "SELECT count(*) FROM s.ev").await;
        assert!(left <= 1, "only the re-inserted row may remain, got {left}");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(count(&client, "SELECT count(*) FROM s.ev").await, 0);
        assert_eq!(count(&client, "SELECT count(*) FROM s.keep").await, 1);
    })
    .await;
}

//! Live queries: `SUBSCRIBE TO …` over COPY OUT with tokio-postgres — the
//! snapshot, then each committed change promptly, filtered server-side; a
//! block's changes at COMMIT and never on ROLLBACK; each user of a USER table
//! sees only their own changes; errors for bad subscriptions.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use common::live::{Rows, next_line, subscribe};
use common::{TestServer, exec, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The next row (one CopyData a row), as its tab-separated fields.
async fn next(rows: &mut Rows) -> Vec<String> {
    let line = next_line(rows).await;
    line.trim_end_matches('\n')
        .split('\t')
        .map(str::to_string)
        .collect()
}

/// No row arrives within `wait`.
async fn quiet(rows: &mut Rows, wait: Duration) {
    if let Ok(got) = tokio::time::timeout(wait, rows.next()).await {
        panic!("unexpected row: {got:?}");
    }
}

fn fields(row: &[String]) -> (String, Vec<String>) {
    (row[0].clone(), row[2..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_sends_the_snapshot_then_each_committed_change() {
    timed("subscribe", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let w = server.client().await;
        exec(
            &w,
            "CREATE TABLE msgs (id BIGINT PRIMARY KEY, body TEXT, n INT);
             INSERT INTO msgs VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 30);",
        )
        .await;
        let s = server.client().await;
        let mut rows = subscribe(&s, "SUBSCRIBE TO msgs WHERE n < 10 OPTIONS (last_rows = 5)").await;
        assert_eq!(fields(&next(&mut rows).await), ("snapshot".into(), vec!["1".into(), "one".into(), "1".into()]));
        assert_eq!(fields(&next(&mut rows).await), ("snapshot".into(), vec!["2".into(), "two".into(), "2".into()]));

        exec(&w, "INSERT INTO msgs VALUES (4, 'four', 4)").await;
        let row = next(&mut rows).await;
        assert_eq!(fields(&row), ("insert".into(), vec!["4".into(), "four".into(), "4".into()]));
        let seq: i64 = row[1].parse().unwrap();
        exec(&w, "INSERT INTO msgs VALUES (5, 'filtered', 50)").await;
        exec(&w, "UPDATE msgs SET body = 'uno' WHERE id = 1").await;
        let row = next(&mut rows).await;
        assert_eq!(fields(&row), ("update".into(), vec!["1".into(), "uno".into(), "1".into()]));
        assert!(row[1].parse::<i64>().unwrap() > seq, "_seq grows: {row:?}");
        exec(&w, "DELETE FROM msgs WHERE id = 2").await;
        assert_eq!(fields(&next(&mut rows).await), ("delete".into(), vec!["2".into(), "two".into(), "2".into()]));

        // A block's changes arrive at COMMIT, in order; a rolled-back one never.
        exec(&w, "BEGIN; INSERT INTO msgs VALUES (6, 'six', 6); INSERT INTO msgs VALUES (7, 'seven', 7);").await;
        quiet(&mut rows, Duration::from_millis(500)).await;
        exec(&w, "COMMIT").await;
        assert_eq!(fields(&next(&mut rows).await).1[0], "6");
        assert_eq!(fields(&next(&mut rows).await).1[0], "7");
        exec(&w, "BEGIN; INSERT INTO msgs VALUES (8, 'eight', 8); ROLLBACK;").await;
        quiet(&mut rows, Duration::from_millis(500)).await;

        // Cold rows: an update of a flushed row is an update.
        let id = common::text_rows(&w, "FLUSH TABLE msgs").await[0][0].clone();
        common::wait_job(&w, &id).await;
        exec(&w, "UPDATE msgs SET body = 'cold' WHERE id = 4").await;
        assert_eq!(fields(&next(&mut rows).await), ("update".into(), vec!["4".into(), "cold".into(), "4".into()]));
        // A row that leaves the filter by an update arrives as a delete of the old row.
        exec(&w, "UPDATE msgs SET n = 99 WHERE id = 4").await;
        assert_eq!(
            fields(&next(&mut rows).await),
            ("delete".into(), vec!["4".into(), "cold".into(), "4".into()])
        );
        // The writer is not held up by the subscriber, and the server answers.
        assert_eq!(common::text_rows(&w, "SELECT count(*) FROM msgs").await[0][0], "6");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_receives_only_their_own_changes() {
    timed("subscribe per user", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE USER TABLE notes (id BIGINT PRIMARY KEY, body TEXT);
             CREATE USER alice WITH PASSWORD 'a' ROLE user;
             CREATE USER bob WITH PASSWORD 'b' ROLE user;",
        )
        .await;
        let alice = server.client_as("alice", Some("a")).await;
        let bob = server.client_as("bob", Some("b")).await;
        let mut a_rows = subscribe(&alice, "SUBSCRIBE TO SELECT body FROM notes").await;
        let mut b_rows = subscribe(&bob, "SUBSCRIBE TO notes").await;
        let aw = server.client_as("alice", Some("a")).await;
        let bw = server.client_as("bob", Some("b")).await;
        let mut model: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        // A fixed pseudo-random interleaving of both users' writes.
        let mut x: u64 = 0x9e37_79b9;
        for i in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (user, client) = if x.is_multiple_of(2) {
                ("alice", &aw)
            } else {
                ("bob", &bw)
            };
            let body = format!("{user}-{i}");
            exec(client, &format!("INSERT INTO notes VALUES ({i}, '{body}')")).await;
            model.entry(user).or_default().push(body);
        }
        for body in model.get("alice").cloned().unwrap_or_default() {
            let row = next(&mut a_rows).await;
            assert_eq!(
                (row[0].as_str(), row[2].as_str()),
                ("insert", body.as_str())
            );
            assert_eq!(row.len(), 3, "only the selected column: {row:?}");
        }
        for body in model.get("bob").cloned().unwrap_or_default() {
            let row = next(&mut b_rows).await;
            assert_eq!(
                (row[0].as_str(), row[3].as_str()),
                ("insert", body.as_str())
            );
        }
        quiet(&mut a_rows, Duration::from_millis(300)).await;
        quiet(&mut b_rows, Duration::from_millis(300)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_are_clear_errors() {
    timed("subscribe errors", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        exec(&c, "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, 'b')").await;
        for (sql, code) in [
            ("SUBSCRIBE TO nope", "42P01"),
            ("SUBSCRIBE TO nons.t", "3F000"),
            ("SUBSCRIBE TO SELECT missing FROM t", "42703"),
            ("SUBSCRIBE TO t WHERE", "42601"),
            ("SUBSCRIBE TO t WHERE missing = 1", "42703"),
            ("SUBSCRIBE TO t OPTIONS (from_seq = 1)", "55000"),
            ("SUBSCRIBE TO t OPTIONS (from_seq = 1, last_rows = 1)", "22023"),
            ("SUBSCRIBE TO t OPTIONS (from_seq = 999999999)", "22023"),
        ] {
            let e = match c.copy_out(sql).await {
                Ok(_) => panic!("{sql} was accepted"),
                Err(e) => e,
            };
            assert_eq!(sqlstate(&e).as_deref(), Some(code), "{sql}: {e:?}");
        }
        assert_eq!(common::text_rows(&c, "SELECT 1").await[0][0], "1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_listed_and_killed() {
    timed("live queries", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT) WITH (ACCESS_LEVEL = 'PUBLIC');
             CREATE TABLE secret (id BIGINT PRIMARY KEY, v TEXT);
             CREATE USER alice WITH PASSWORD 'a' ROLE user;
             CREATE USER bob WITH PASSWORD 'b' ROLE user;",
        )
        .await;
        let alice = server.client_as("alice", Some("a")).await;
        // A table the user may not read cannot be subscribed to either.
        let e = match alice.copy_out("SUBSCRIBE TO secret").await {
            Ok(_) => panic!("a PRIVATE table was subscribed to by a user"),
            Err(e) => e,
        };
        assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e:?}");
        // The COPY form, as COPY APIs send it.
        let mut rows = subscribe(&alice, "COPY (SUBSCRIBE TO t WHERE id > 1) TO STDOUT").await;
        let listed = common::text_rows(
            &root,
            "SELECT live_id, user_id, table_name, query, changes_sent FROM system.live_queries",
        )
        .await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0][1], "alice");
        assert_eq!(listed[0][2], "t");
        assert_eq!(listed[0][3], "SUBSCRIBE TO t WHERE id > 1");
        assert_eq!(listed[0][4], "0");
        let id = listed[0][0].clone();
        assert!(id.starts_with("LQ-"), "{id}");

        exec(&root, "INSERT INTO t VALUES (2, 'x')").await;
        assert_eq!(next(&mut rows).await[0], "insert");
        let sent = common::text_rows(
            &root,
            "SELECT changes_sent, last_change_at IS NOT NULL FROM system.live_queries",
        )
        .await;
        assert_eq!(sent, vec![vec!["1".to_string(), "t".into()]]);

        // Another user may not end it; its owner (or a dba) may.
        let bob = server.client_as("bob", Some("b")).await;
        let e = bob
            .batch_execute(&format!("KILL LIVE QUERY '{id}'"))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e:?}");
        let e = root
            .batch_execute("KILL LIVE QUERY 'LQ-000000000000'")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("42704"), "{e:?}");
        exec(&root, &format!("KILL LIVE QUERY '{id}'")).await;
        let end = tokio::time::timeout(Duration::from_secs(10), rows.next())
            .await
            .expect("the stream ends within 10 s");
        assert!(end.is_none(), "the COPY completes: {end:?}");
        assert!(
            common::text_rows(&root, "SELECT * FROM system.live_queries")
                .await
                .is_empty()
        );
        // The connection goes on.
        assert_eq!(
            common::text_rows(&alice, "SELECT count(*) FROM t").await[0][0],
            "1"
        );
    })
    .await;
}

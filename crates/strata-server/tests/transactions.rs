//! Transaction blocks over the wire: a block's writes are invisible to other
//! sessions until COMMIT, visible to the block itself (scans, primary-key
//! reads, UPDATE and DELETE), land together at COMMIT (across tables, across a
//! flush, across a restart) and vanish at ROLLBACK; an error aborts the block
//! with 25P02 until ROLLBACK; a key another session committed meanwhile fails
//! the COMMIT with 23505 without touching that session's row.

mod common;

use std::time::Duration;

use tokio_postgres::Client;

use common::{TestServer, sqlstate, timed, wait_job};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

async fn count(client: &Client, sql: &str) -> i64 {
    client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn body(client: &Client, id: i64) -> Option<String> {
    client
        .query_opt("SELECT body FROM tx.t WHERE id = $1", &[&id])
        .await
        .expect("point read")
        .map(|r| r.get(0))
}

async fn setup(server: &TestServer) -> (Client, Client) {
    let a = server.client().await;
    a.batch_execute(
        "CREATE NAMESPACE tx;
         CREATE TABLE tx.t (id BIGINT PRIMARY KEY, body TEXT);
         CREATE TABLE tx.u (id BIGINT PRIMARY KEY, n INT);
         INSERT INTO tx.t VALUES (1, 'one'), (2, 'two');",
    )
    .await
    .expect("setup");
    let b = server.client().await;
    (a, b)
}

#[tokio::test]
async fn a_block_sees_its_own_writes_and_others_see_them_at_commit() {
    timed("own writes", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let (mut a, b) = setup(&server).await;
        let tx = a.transaction().await.expect("begin");
        tx.execute("INSERT INTO tx.t VALUES (3, 'three')", &[])
            .await
            .expect("insert");
        tx.execute("UPDATE tx.t SET body = 'uno' WHERE id = 1", &[])
            .await
            .expect("update");
        tx.execute("DELETE FROM tx.t WHERE id = 2", &[])
            .await
            .expect("delete");
        tx.execute("INSERT INTO tx.u VALUES (1, 10)", &[])
            .await
            .expect("insert u");
        // The block sees its writes through a scan, an aggregate and a
        // prepared primary-key read.
        let rows = tx
            .query("SELECT id, body FROM tx.t ORDER BY id", &[])
            .await
            .expect("scan");
        let seen: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(seen, vec![(1, "uno".into()), (3, "three".into())]);
        let own: Option<String> = tx
            .query_opt("SELECT body FROM tx.t WHERE id = $1", &[&3i64])
            .await
            .expect("pk read")
            .map(|r| r.get(0));
        assert_eq!(own.as_deref(), Some("three"));
        let gone = tx
            .query_opt("SELECT body FROM tx.t WHERE id = $1", &[&2i64])
            .await
            .expect("pk read");
        assert!(gone.is_none(), "the block deleted id 2");
        // A duplicate of a row the block inserted is caught inside the block.
        // Others see nothing yet.
        assert_eq!(count(&b, "SELECT count(*) FROM tx.t").await, 2);
        assert_eq!(body(&b, 1).await.as_deref(), Some("one"));
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 0);
        tx.commit().await.expect("commit");
        assert_eq!(body(&b, 1).await.as_deref(), Some("uno"));
        assert_eq!(body(&b, 2).await, None);
        assert_eq!(body(&b, 3).await.as_deref(), Some("three"));
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 1);
    })
    .await;
}

#[tokio::test]
async fn rollback_discards_and_an_error_aborts_the_block() {
    timed("rollback", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let (a, b) = setup(&server).await;
        a.batch_execute(
            "BEGIN; INSERT INTO tx.t VALUES (5, 'five'); DELETE FROM tx.t WHERE id = 1",
        )
        .await
        .expect("block");
        assert_eq!(count(&a, "SELECT count(*) FROM tx.t").await, 2);
        a.batch_execute("ROLLBACK").await.expect("rollback");
        assert_eq!(count(&a, "SELECT count(*) FROM tx.t").await, 2);
        assert_eq!(body(&a, 5).await, None);
        assert_eq!(body(&a, 1).await.as_deref(), Some("one"));

        // An error aborts the block: 25P02 for everything but ROLLBACK/COMMIT.
        a.batch_execute("BEGIN; INSERT INTO tx.t VALUES (6, 'six')")
            .await
            .expect("begin");
        let dup = a
            .batch_execute("INSERT INTO tx.t VALUES (1, 'again')")
            .await
            .expect_err("duplicate");
        assert_eq!(sqlstate(&dup).as_deref(), Some("23505"));
        let aborted = a.query("SELECT 1", &[]).await.expect_err("aborted");
        assert_eq!(sqlstate(&aborted).as_deref(), Some("25P02"));
        let aborted = a
            .batch_execute("SELECT 1")
            .await
            .expect_err("aborted (simple)");
        assert_eq!(sqlstate(&aborted).as_deref(), Some("25P02"));
        // COMMIT of an aborted block rolls it back.
        let tag = a.simple_query("COMMIT").await.expect("commit aborted");
        assert!(
            matches!(
                tag.last(),
                Some(tokio_postgres::SimpleQueryMessage::CommandComplete(_))
            ),
            "{tag:?}"
        );
        assert_eq!(body(&b, 6).await, None);
        assert_eq!(count(&a, "SELECT count(*) FROM tx.t").await, 2);

        // A syntax error inside a block aborts it too.
        a.batch_execute("BEGIN").await.expect("begin");
        let e = a.batch_execute("SELEC 1").await.expect_err("syntax");
        assert_eq!(sqlstate(&e).as_deref(), Some("42601"));
        let e = a
            .batch_execute("INSERT INTO tx.t VALUES (7, 'x')")
            .await
            .expect_err("aborted");
        assert_eq!(sqlstate(&e).as_deref(), Some("25P02"));
        a.batch_execute("ROLLBACK").await.expect("rollback");
        a.batch_execute("INSERT INTO tx.t VALUES (7, 'seven')")
            .await
            .expect("works after rollback");
        assert_eq!(body(&b, 7).await.as_deref(), Some("seven"));

        // A dropped connection rolls its block back.
        let c = server.client().await;
        c.batch_execute("BEGIN; INSERT INTO tx.t VALUES (8, 'lost')")
            .await
            .expect("block");
        drop(c);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(body(&b, 8).await, None);
    })
    .await;
}

#[tokio::test]
async fn commit_is_atomic_across_tables_flushes_and_restarts() {
    timed("atomic commit", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let (mut a, b) = setup(&server).await;
        // Make ids 1 and 2 cold, so the block supersedes cold versions.
        let job: String = b
            .simple_query("FLUSH TABLE tx.t")
            .await
            .expect("flush")
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("job id");
        wait_job(&b, &job).await;
        let tx = a.transaction().await.expect("begin");
        let insert = tx
            .prepare("INSERT INTO tx.u (id, n) VALUES ($1, $2)")
            .await
            .expect("prepare");
        for i in 0..100i64 {
            tx.execute(&insert, &[&i, &(i as i32)])
                .await
                .expect("insert");
        }
        tx.execute("UPDATE tx.t SET body = upper(body)", &[])
            .await
            .expect("update cold rows");
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 0);
        tx.commit().await.expect("commit");
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 100);
        let rows = b
            .query("SELECT id, body FROM tx.t ORDER BY id", &[])
            .await
            .expect("scan");
        let seen: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(seen, vec![(1, "ONE".into()), (2, "TWO".into())]);
        drop((a, b));
        server.restart().await;
        let c = server.client().await;
        assert_eq!(count(&c, "SELECT count(*) FROM tx.u").await, 100);
        assert_eq!(count(&c, "SELECT count(*) FROM tx.t").await, 2);
        assert_eq!(
            count(&c, "SELECT count(*) FROM tx.t WHERE body = 'ONE'").await,
            1
        );
    })
    .await;
}

#[tokio::test]
async fn a_key_committed_meanwhile_fails_the_commit_with_23505() {
    timed("commit conflict", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let (a, b) = setup(&server).await;
        a.batch_execute(
            "BEGIN; INSERT INTO tx.t VALUES (10, 'mine'); INSERT INTO tx.u VALUES (1, 1)",
        )
        .await
        .expect("block");
        b.batch_execute("INSERT INTO tx.t VALUES (10, 'theirs')")
            .await
            .expect("other session");
        let e = a.batch_execute("COMMIT").await.expect_err("conflict");
        assert_eq!(sqlstate(&e).as_deref(), Some("23505"));
        // Nothing of the block landed, and the other session's row is intact.
        assert_eq!(body(&b, 10).await.as_deref(), Some("theirs"));
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 0);
        // The session is usable again.
        a.batch_execute("ROLLBACK")
            .await
            .expect("rollback after failed commit");
        a.batch_execute("INSERT INTO tx.u VALUES (2, 2)")
            .await
            .expect("autocommit again");
        assert_eq!(count(&b, "SELECT count(*) FROM tx.u").await, 1);
    })
    .await;
}

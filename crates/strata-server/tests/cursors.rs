//! Cursors, SQL and protocol: DECLARE / FETCH / MOVE / CLOSE with Postgres'
//! errors and transaction rules, WITH HOLD across COMMIT, and the extended
//! protocol's Execute with a row limit (PortalSuspended, then the rest), which
//! pgjdbc's setFetchSize and tokio-postgres' query_portal use.

mod common;

use common::{TestServer, sqlstate, text_rows};
use tokio_postgres::Client;

async fn code_of(c: &Client, sql: &str) -> Option<String> {
    match c.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => sqlstate(&e),
    }
}

fn ints(rows: Vec<Vec<String>>) -> Vec<i64> {
    rows.into_iter().map(|r| r[0].parse().unwrap()).collect()
}

#[tokio::test]
async fn sql_cursors_fetch_move_close_like_postgres() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT);
         INSERT INTO t SELECT x, 'v' || x FROM generate_series(1, 25) AS g(x);",
    )
    .await
    .unwrap();
    // Outside a block only WITH HOLD.
    assert_eq!(
        code_of(&c, "DECLARE c CURSOR FOR SELECT 1")
            .await
            .as_deref(),
        Some("25P01")
    );
    c.batch_execute("BEGIN; DECLARE c CURSOR FOR SELECT id FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ints(text_rows(&c, "FETCH 3 FROM c").await), vec![1, 2, 3]);
    assert_eq!(ints(text_rows(&c, "FETCH c").await), vec![4]);
    assert_eq!(ints(text_rows(&c, "FETCH NEXT IN c").await), vec![5]);
    let moved = c.simple_query("MOVE FORWARD 5 FROM c").await.unwrap();
    assert!(
        matches!(
            moved.last(),
            Some(tokio_postgres::SimpleQueryMessage::CommandComplete(5))
        ),
        "{moved:?}"
    );
    assert_eq!(
        ints(text_rows(&c, "FETCH FORWARD 2 FROM c").await),
        vec![11, 12]
    );
    assert_eq!(
        ints(text_rows(&c, "FETCH RELATIVE 2 FROM c").await),
        vec![14]
    );
    assert_eq!(
        ints(text_rows(&c, "FETCH ABSOLUTE 20 FROM c").await),
        vec![20]
    );
    assert_eq!(
        ints(text_rows(&c, "FETCH ALL FROM c").await),
        (21..=25).collect::<Vec<_>>()
    );
    assert!(
        text_rows(&c, "FETCH c").await.is_empty(),
        "past the end: no rows"
    );
    // A second cursor of the same name, and one that does not exist.
    assert_eq!(
        code_of(&c, "DECLARE c CURSOR FOR SELECT 1")
            .await
            .as_deref(),
        Some("42P03")
    );
    c.batch_execute("ROLLBACK; BEGIN; DECLARE c CURSOR FOR SELECT id FROM t ORDER BY id")
        .await
        .unwrap();
    // Forward only.
    text_rows(&c, "FETCH 2 FROM c").await;
    assert_eq!(
        code_of(&c, "FETCH PRIOR FROM c").await.as_deref(),
        Some("55000")
    );
    c.batch_execute("ROLLBACK; BEGIN; DECLARE c CURSOR FOR SELECT id FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        code_of(&c, "FETCH 1 FROM nosuch").await.as_deref(),
        Some("34000")
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    // COMMIT closes cursors declared without HOLD; ROLLBACK every cursor of
    // the block.
    c.batch_execute("BEGIN; DECLARE a CURSOR FOR SELECT 1; COMMIT")
        .await
        .unwrap();
    assert_eq!(code_of(&c, "FETCH a").await.as_deref(), Some("34000"));
    c.batch_execute("BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT 1; ROLLBACK")
        .await
        .unwrap();
    assert_eq!(code_of(&c, "CLOSE h").await.as_deref(), Some("34000"));
    // WITH HOLD survives COMMIT, holding the rows it had not handed out.
    c.batch_execute(
        "BEGIN; DECLARE h CURSOR WITH HOLD FOR SELECT id FROM t WHERE id <= 10 ORDER BY id",
    )
    .await
    .unwrap();
    assert_eq!(
        ints(text_rows(&c, "FETCH 4 FROM h").await),
        vec![1, 2, 3, 4]
    );
    c.batch_execute("COMMIT; DELETE FROM t WHERE id = 5")
        .await
        .unwrap();
    assert_eq!(
        ints(text_rows(&c, "FETCH ALL FROM h").await),
        vec![5, 6, 7, 8, 9, 10],
        "a held cursor keeps the rows of its transaction"
    );
    c.batch_execute("CLOSE h").await.unwrap();
    // Declared WITH HOLD outside a block: its own transaction.
    c.batch_execute("DECLARE h2 CURSOR WITH HOLD FOR SELECT id FROM t WHERE id < 4 ORDER BY id")
        .await
        .unwrap();
    assert_eq!(ints(text_rows(&c, "FETCH ALL IN h2").await), vec![1, 2, 3]);
    c.batch_execute("CLOSE ALL").await.unwrap();
    assert_eq!(code_of(&c, "CLOSE h2").await.as_deref(), Some("34000"));
    // A prepared DECLARE takes parameters; FETCH describes the cursor's columns.
    let tx = c.transaction().await.unwrap();
    let declare = tx
        .prepare("DECLARE p CURSOR FOR SELECT id, v FROM t WHERE id > $1 ORDER BY id")
        .await
        .unwrap();
    tx.execute(&declare, &[&20i64]).await.unwrap();
    let rows = tx.query("FETCH 2 FROM p", &[]).await.unwrap();
    let got: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![(21, "v21".to_string()), (22, "v22".to_string())]);
    tx.rollback().await.unwrap();
    // The session still answers.
    assert_eq!(text_rows(&c, "SELECT 1").await, vec![vec!["1".to_string()]]);
}

#[tokio::test]
async fn execute_with_a_row_limit_suspends_and_resumes_the_portal() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let tx = c.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT x FROM generate_series(1, 1000) AS g(x) WHERE x % $1 = 0")
        .await
        .unwrap();
    let portal = tx.bind(&stmt, &[&3i64]).await.unwrap();
    let mut seen = vec![];
    let mut chunks = 0;
    loop {
        let rows = tx.query_portal(&portal, 50).await.unwrap();
        if rows.is_empty() {
            break;
        }
        assert!(rows.len() <= 50);
        chunks += 1;
        seen.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
    }
    assert_eq!(seen, (1..=333).map(|i| i * 3).collect::<Vec<i64>>());
    assert_eq!(chunks, 7, "333 rows in chunks of 50");
    tx.commit().await.unwrap();
}

/// Each portal suspended by a row limit keeps its query running: a
/// connection may keep 256, the next is refused with 54000 (and aborts the
/// block), and closing them makes room again.
#[tokio::test]
async fn suspended_portals_per_connection_are_bounded() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let tx = c.transaction().await.unwrap();
    let stmt = tx
        .prepare("SELECT x FROM generate_series(1, 10) AS g(x)")
        .await
        .unwrap();
    let mut portals = vec![];
    let refused = loop {
        let portal = tx.bind(&stmt, &[]).await.unwrap();
        match tx.query_portal(&portal, 1).await {
            Ok(rows) => {
                assert_eq!(rows.len(), 1);
                portals.push(portal);
            }
            Err(e) => break e,
        }
        assert!(portals.len() <= 256, "more than 256 suspended portals");
    };
    assert_eq!(portals.len(), 256);
    assert_eq!(sqlstate(&refused).as_deref(), Some("54000"), "{refused}");
    drop(portals);
    tx.rollback().await.unwrap();
    // Closed (with the transaction): room again.
    let tx = c.transaction().await.unwrap();
    let portal = tx.bind(&stmt, &[]).await.unwrap();
    assert_eq!(tx.query_portal(&portal, 5).await.unwrap().len(), 5);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn pg_cursors_lists_the_sessions_cursors_and_binary_cursors_fetch_binary() {
    let server = TestServer::start().await;
    let c = server.client().await;
    let other = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id INT PRIMARY KEY);
         INSERT INTO t VALUES (1), (2), (3);
         BEGIN;
         DECLARE plain CURSOR FOR SELECT id FROM t ORDER BY id;
         DECLARE bin BINARY CURSOR WITH HOLD FOR SELECT id FROM t ORDER BY id;",
    )
    .await
    .unwrap();
    let listed = "SELECT name, is_holdable, is_binary, is_scrollable, \
                  creation_time IS NOT NULL FROM pg_catalog.pg_cursors ORDER BY name";
    assert_eq!(
        text_rows(&c, listed).await,
        vec![
            vec!["bin", "t", "t", "f", "t"],
            vec!["plain", "f", "f", "f", "t"],
        ]
    );
    // Another session sees its own cursors only.
    assert!(
        text_rows(&other, "SELECT name FROM pg_cursors")
            .await
            .is_empty()
    );
    // A BINARY cursor's rows come in binary over the simple protocol: an int4
    // is four bytes, which tokio-postgres' text reader cannot read as text.
    let raw = c.simple_query("FETCH 1 FROM bin").await;
    let binary_as_text = match raw {
        Ok(msgs) => common::simple_rows(&msgs)
            .concat()
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
        Err(_) => vec![],
    };
    assert_ne!(binary_as_text, vec!["1".to_string()]);
    assert_eq!(ints(text_rows(&c, "FETCH 1 FROM plain").await), vec![1]);
    c.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        text_rows(&c, "SELECT name FROM pg_cursors").await,
        vec![vec!["bin"]]
    );
    c.batch_execute("CLOSE ALL").await.unwrap();
    assert!(
        text_rows(&c, "SELECT name FROM pg_cursors")
            .await
            .is_empty()
    );
}

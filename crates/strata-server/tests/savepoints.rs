//! Savepoints and cursors as classes of input: nesting and repeated names,
//! ROLLBACK TO after an error, what a savepoint's snapshot costs (bounded by
//! `max_transaction_memory_mb`), how many cursors a session may open, and
//! LIKE … ESCAPE with any escape character (literal and parameter patterns).

mod common;

use common::{ServerOptions, TestServer, sqlstate, text_rows};
use tokio_postgres::Client;

async fn code_of(c: &Client, sql: &str) -> Option<String> {
    match c.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => sqlstate(&e),
    }
}

async fn ids(c: &Client, sql: &str) -> Vec<i64> {
    text_rows(c, sql)
        .await
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect()
}

#[tokio::test]
async fn nested_savepoints_roll_back_exactly_what_came_after_them() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'committed');",
    )
    .await
    .unwrap();
    c.batch_execute(
        "BEGIN;
         INSERT INTO t VALUES (2, 'a');
         SAVEPOINT s;
         UPDATE t SET v = 'changed' WHERE id = 1;
         SAVEPOINT s;
         DELETE FROM t WHERE id = 2;
         INSERT INTO t VALUES (3, 'b');",
    )
    .await
    .unwrap();
    // The newest `s` wins: its rollback restores row 2 and removes 3.
    c.batch_execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    assert_eq!(ids(&c, "SELECT id FROM t ORDER BY id").await, vec![1, 2]);
    assert_eq!(
        text_rows(&c, "SELECT v FROM t WHERE id = 1").await,
        vec![vec!["changed".to_string()]]
    );
    // Releasing the newest exposes the older one of the same name.
    c.batch_execute("RELEASE s; ROLLBACK TO s").await.unwrap();
    assert_eq!(
        text_rows(&c, "SELECT v FROM t WHERE id = 1").await,
        vec![vec!["committed".to_string()]]
    );
    // An error, then ROLLBACK TO: the block goes on and commits.
    assert_eq!(
        code_of(&c, "INSERT INTO t VALUES (1, 'dup')")
            .await
            .as_deref(),
        Some("23505")
    );
    assert_eq!(code_of(&c, "SELECT 1").await.as_deref(), Some("25P02"));
    c.batch_execute("ROLLBACK TO s; INSERT INTO t VALUES (4, 'c'); COMMIT")
        .await
        .unwrap();
    assert_eq!(ids(&c, "SELECT id FROM t ORDER BY id").await, vec![1, 2, 4]);
    // Outside a block.
    for sql in ["SAVEPOINT x", "RELEASE x", "ROLLBACK TO x"] {
        assert_eq!(code_of(&c, sql).await.as_deref(), Some("25P01"), "{sql}");
    }
}

#[tokio::test]
async fn savepoint_snapshots_and_cursors_are_bounded() {
    let server = TestServer::start_with(ServerOptions {
        config: "[limits]\nmax_transaction_memory_mb = 1\n".into(),
        ..ServerOptions::default()
    })
    .await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    // A few hundred KB staged: the rows fit, a few snapshots of them do not.
    c.batch_execute(
        "BEGIN; INSERT INTO t SELECT x, repeat('v', 100) FROM generate_series(1, 1000) AS g(x);
         SAVEPOINT a;",
    )
    .await
    .unwrap();
    let mut refused = None;
    for i in 0..20 {
        if let Some(code) = code_of(&c, &format!("SAVEPOINT s{i}")).await {
            refused = Some((i, code));
            break;
        }
    }
    let (at, code) = refused.expect("savepoints of a large block are bounded");
    assert_eq!(code, "54000");
    assert!(at < 10, "refused only at savepoint {at}");
    c.batch_execute("ROLLBACK").await.unwrap();
    // Cursors per session.
    c.batch_execute("BEGIN").await.unwrap();
    let mut opened = 0;
    let code = loop {
        match code_of(&c, &format!("DECLARE c{opened} CURSOR FOR SELECT 1")).await {
            None => opened += 1,
            Some(code) => break code,
        }
        assert!(opened <= 256, "more than 256 cursors opened");
    };
    assert_eq!((opened, code.as_str()), (256, "54000"));
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(ids(&c, "SELECT count(*) FROM t").await, vec![0]);
}

#[tokio::test]
async fn like_escape_takes_any_escape_character() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute(
        r"CREATE TABLE n (id BIGINT PRIMARY KEY, s TEXT);
          INSERT INTO n VALUES (1, 'a_b'), (2, 'axb'), (3, '100%'), (4, 'a\b'), (5, 'a/b');",
    )
    .await
    .unwrap();
    let cases: [(&str, Vec<i64>); 7] = [
        ("s LIKE 'a/_b' ESCAPE '/'", vec![1]),
        ("s LIKE 'a_b'", vec![1, 2, 4, 5]),
        ("s LIKE '100#%' ESCAPE '#'", vec![3]),
        ("s LIKE 'a//b' ESCAPE '/'", vec![5]),
        (r"s LIKE 'a\b' ESCAPE '/'", vec![4]),
        (r"s LIKE 'a\b' ESCAPE ''", vec![4]),
        ("s NOT ILIKE 'A/_%' ESCAPE '/'", vec![2, 3, 4, 5]),
    ];
    for (cond, want) in cases {
        let got = ids(&c, &format!("SELECT id FROM n WHERE {cond} ORDER BY id")).await;
        assert_eq!(got, want, "{cond}");
    }
    // A pattern that is a parameter (or built from one) is rewritten when it runs.
    let rows = c
        .query(
            "SELECT id FROM n WHERE s LIKE $1 || '%' ESCAPE '/' ORDER BY id",
            &[&"a/_"],
        )
        .await
        .unwrap();
    let got: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(got, vec![1]);
}

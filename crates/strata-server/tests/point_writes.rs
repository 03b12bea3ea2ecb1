//! The write fast paths of issue 17 give what the planned statements gave:
//! `UPDATE/DELETE … WHERE pk = $n` read the row by key (block, hot or cold)
//! and evaluate the new values on it; prepared INSERT value expressions are
//! planned once and folded per execution (or, when not deterministic, run as
//! a query each time). Each case runs several executions of one prepared
//! statement with different parameters, on hot and on cold rows, inside and
//! outside a transaction block.

mod common;

use common::{TestServer, exec, sqlstate, text_rows, wait_job};

async fn rows(c: &tokio_postgres::Client, sql: &str) -> Vec<Vec<String>> {
    text_rows(c, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_insert_expressions_are_evaluated_per_execution() {
    let server = TestServer::start().await;
    let c = server.client().await;
    exec(
        &c,
        "CREATE TABLE ie (id BIGINT PRIMARY KEY, v TEXT, n BIGINT, at TIMESTAMPTZ)",
    )
    .await;
    let ins = c
        .prepare("INSERT INTO ie (id, v, n) VALUES ($1, 'v-' || $2, $1 * 2 + length($2))")
        .await
        .unwrap();
    for (id, s) in [(1i64, "a"), (2, "bb"), (3, ""), (4, "ü#%/..")] {
        c.execute(&ins, &[&id, &s]).await.unwrap();
    }
    // NULL through the expression is NULL.
    c.execute(&ins, &[&5i64, &None::<String>]).await.unwrap();
    assert_eq!(
        rows(&c, "SELECT id, v, n FROM ie ORDER BY id").await,
        vec![
            vec!["1", "v-a", "3"],
            vec!["2", "v-bb", "6"],
            vec!["3", "v-", "6"],
            vec!["4", "v-ü#%/..", "14"],
            vec!["5", "NULL", "NULL"],
        ]
    );
    // Not deterministic: a subquery and now() are run at every execution.
    let sub = c
        .prepare(
            "INSERT INTO ie (id, v, n, at) VALUES ($1, 'x', (SELECT max(n) FROM ie) + 1, now())",
        )
        .await
        .unwrap();
    c.execute(&sub, &[&10i64]).await.unwrap();
    c.execute(&sub, &[&11i64]).await.unwrap();
    assert_eq!(
        rows(
            &c,
            "SELECT id, n, at IS NOT NULL FROM ie WHERE id >= 10 ORDER BY id"
        )
        .await,
        vec![vec!["10", "15", "t"], vec!["11", "16", "t"]]
    );
    // A duplicate is still 23505, an expression error still an error.
    let err = c.execute(&ins, &[&1i64, &"z"]).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23505"));
    let div = c
        .prepare("INSERT INTO ie (id, n) VALUES ($1, 10 / $2)")
        .await
        .unwrap();
    assert!(c.execute(&div, &[&20i64, &0i64]).await.is_err());
    c.execute(&div, &[&21i64, &5i64]).await.unwrap();
    assert_eq!(
        rows(&c, "SELECT n FROM ie WHERE id = 21").await,
        vec![vec!["2"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_by_key_on_hot_cold_and_staged_rows() {
    let server = TestServer::start().await;
    let c = server.client().await;
    exec(
        &c,
        "CREATE TABLE pw (id BIGINT PRIMARY KEY, v TEXT NOT NULL, n BIGINT);
         INSERT INTO pw SELECT i, 'v' || i, i FROM generate_series(1, 20) AS g(i);",
    )
    .await;
    let f = common::text_rows(&c, "FLUSH TABLE pw").await[0][0].clone();
    wait_job(&c, &f).await;
    exec(&c, "INSERT INTO pw VALUES (21, 'v21', 21)").await;
    let upd = c
        .prepare("UPDATE pw SET n = n + $2, v = upper(v) WHERE id = $1")
        .await
        .unwrap();
    // Cold row, hot row, missing row, NULL key.
    assert_eq!(c.execute(&upd, &[&3i64, &100i64]).await.unwrap(), 1);
    assert_eq!(c.execute(&upd, &[&21i64, &100i64]).await.unwrap(), 1);
    assert_eq!(c.execute(&upd, &[&99i64, &100i64]).await.unwrap(), 0);
    assert_eq!(c.execute(&upd, &[&None::<i64>, &100i64]).await.unwrap(), 0);
    assert_eq!(
        rows(
            &c,
            "SELECT id, v, n FROM pw WHERE id IN (3, 21) ORDER BY id"
        )
        .await,
        vec![vec!["3", "V3", "103"], vec!["21", "V21", "121"]]
    );
    // The key written as a literal, the column qualified, the sides swapped.
    exec(&c, "UPDATE pw SET n = 0 WHERE 4 = pw.id").await;
    assert_eq!(
        rows(&c, "SELECT n FROM pw WHERE id = 4").await,
        vec![vec!["0"]]
    );
    // NOT NULL is checked; a key change onto another row is 23505.
    let err = c
        .execute("UPDATE pw SET v = NULL WHERE id = $1", &[&5i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23502"));
    let err = c
        .execute("UPDATE pw SET id = 6 WHERE id = $1", &[&5i64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("23505"));
    // A subquery in SET falls back to the planned statement.
    exec(&c, "UPDATE pw SET n = (SELECT max(n) FROM pw) WHERE id = 7").await;
    assert_eq!(
        rows(&c, "SELECT n FROM pw WHERE id = 7").await,
        vec![vec!["121"]]
    );
    // RETURNING.
    let r = c
        .query(
            "UPDATE pw SET n = n * 2 WHERE id = $1 RETURNING id, n",
            &[&8i64],
        )
        .await
        .unwrap();
    assert_eq!((r[0].get::<_, i64>(0), r[0].get::<_, i64>(1)), (8, 16));

    // In a block: the staged version is the one updated, ROLLBACK undoes it.
    exec(&c, "BEGIN; UPDATE pw SET n = 500 WHERE id = 9").await;
    c.execute(&upd, &[&9i64, &1i64]).await.unwrap();
    assert_eq!(
        rows(&c, "SELECT n FROM pw WHERE id = 9").await,
        vec![vec!["501"]]
    );
    exec(&c, "ROLLBACK").await;
    assert_eq!(
        rows(&c, "SELECT n FROM pw WHERE id = 9").await,
        vec![vec!["9"]]
    );
    exec(&c, "BEGIN; INSERT INTO pw VALUES (30, 'v30', 30)").await;
    c.execute(&upd, &[&30i64, &1i64]).await.unwrap();
    exec(&c, "COMMIT").await;
    assert_eq!(
        rows(&c, "SELECT v, n FROM pw WHERE id = 30").await,
        vec![vec!["V30", "31"]]
    );

    // DELETE by key: cold, hot, missing; RETURNING; then the count.
    let del = c.prepare("DELETE FROM pw WHERE id = $1").await.unwrap();
    assert_eq!(c.execute(&del, &[&10i64]).await.unwrap(), 1);
    assert_eq!(c.execute(&del, &[&21i64]).await.unwrap(), 1);
    assert_eq!(c.execute(&del, &[&10i64]).await.unwrap(), 0);
    let r = c
        .query("DELETE FROM pw WHERE id = $1 RETURNING v", &[&11i64])
        .await
        .unwrap();
    assert_eq!(r[0].get::<_, String>(0), "v11");
    assert_eq!(rows(&c, "SELECT count(*) FROM pw").await, vec![vec!["19"]]);
    assert!(
        rows(&c, "SELECT id FROM pw WHERE id IN (10, 11, 21)")
            .await
            .is_empty()
    );
}

/// A key parameter of another type than the key (JDBC's `setDouble`, a
/// float8 the client declares) converts only exactly, as its text form
/// would: 7.0 is key 7; 7.9, 3e9 and NaN for an INT key are 22P02 (never
/// truncated to 7, which would read, update or delete another row). And
/// the new values of an UPDATE by key may use the functions DataFusion runs
/// only simplified: now(), current_date, coalesce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_parameters_of_other_types_and_simplified_functions() {
    use tokio_postgres::types::Type;
    let server = TestServer::start().await;
    let c = server.client().await;
    exec(
        &c,
        "CREATE TABLE kp (id INT PRIMARY KEY, n INT, at TIMESTAMPTZ, d DATE);
         INSERT INTO kp (id, n) SELECT i, i FROM generate_series(1, 10) AS g(i);",
    )
    .await;
    let sel = c
        .prepare_typed("SELECT n FROM kp WHERE id = $1", &[Type::FLOAT8])
        .await
        .unwrap();
    let upd = c
        .prepare_typed(
            "UPDATE kp SET n = COALESCE(n, 0) + 100, at = now(), d = current_date WHERE id = $1",
            &[Type::FLOAT8],
        )
        .await
        .unwrap();
    let del = c
        .prepare_typed("DELETE FROM kp WHERE id = $1", &[Type::FLOAT8])
        .await
        .unwrap();
    for round in ["hot", "cold"] {
        let (a, b) = if round == "hot" {
            (7.0, 8.0)
        } else {
            (5.0, 6.0)
        };
        assert_eq!(c.query(&sel, &[&a]).await.unwrap().len(), 1, "{round}");
        let inexact = c.query(&sel, &[&(a + 0.9)]).await.unwrap_err();
        assert_eq!(sqlstate(&inexact).as_deref(), Some("22P02"), "{inexact}");
        for bad in [a + 0.9, 3e9, f64::NAN] {
            let e = c.execute(&upd, &[&bad]).await.unwrap_err();
            assert_eq!(sqlstate(&e).as_deref(), Some("22P02"), "{round} {bad}: {e}");
        }
        assert_eq!(c.execute(&upd, &[&a]).await.unwrap(), 1, "{round}");
        let e = c.execute(&del, &[&(b + 0.5)]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("22P02"), "{round}: {e}");
        assert_eq!(c.execute(&del, &[&b]).await.unwrap(), 1, "{round}");
        let f = common::text_rows(&c, "FLUSH TABLE kp").await[0][0].clone();
        wait_job(&c, &f).await;
    }
    assert_eq!(
        rows(
            &c,
            "SELECT id, n, at IS NOT NULL AND at <= now(), d = current_date FROM kp \
             WHERE id BETWEEN 4 AND 9 ORDER BY id"
        )
        .await,
        vec![
            vec!["4", "4", "f", "NULL"],
            vec!["5", "105", "t", "t"],
            vec!["7", "107", "t", "t"],
            vec!["9", "9", "f", "NULL"],
        ]
    );
}

/// A prepared query keeps its optimized plan across executions (see
/// `plan_cache`): each execution still sees its own parameters, the rows of
/// that moment (hot, cold, staged in a block), and functions that must not
/// be fixed at the first execution (now(), random()) are evaluated afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_queries_reuse_their_plan_and_see_each_execution() {
    let server = TestServer::start().await;
    let c = server.client().await;
    exec(
        &c,
        "CREATE TABLE pq (id BIGINT PRIMARY KEY, n BIGINT, at TIMESTAMPTZ);
         INSERT INTO pq (id, n) SELECT i, i FROM generate_series(1, 100) AS g(i);",
    )
    .await;
    let agg = c
        .prepare("SELECT count(*), sum(n) FROM pq WHERE id BETWEEN $1 AND $2")
        .await
        .unwrap();
    let sums = |lo: i64, hi: i64| (hi - lo + 1, (lo..=hi).sum::<i64>());
    for (lo, hi) in [(1i64, 10i64), (50, 59), (95, 200), (7, 7)] {
        let r = c.query_one(&agg, &[&lo, &hi]).await.unwrap();
        let (n, s) = sums(lo, hi.min(100));
        assert_eq!(
            (r.get::<_, i64>(0), r.get::<_, i64>(1)),
            (n, s),
            "{lo}..{hi}"
        );
    }
    let empty = c.query_one(&agg, &[&500i64, &600i64]).await.unwrap();
    assert_eq!(empty.get::<_, i64>(0), 0);
    // Rows change between executions: cold after a flush, new ones hot,
    // staged ones in a block.
    let f = common::text_rows(&c, "FLUSH TABLE pq").await[0][0].clone();
    wait_job(&c, &f).await;
    exec(&c, "INSERT INTO pq (id, n) VALUES (101, 1000)").await;
    let r = c.query_one(&agg, &[&100i64, &101i64]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (2, 1100));
    exec(
        &c,
        "BEGIN; INSERT INTO pq (id, n) VALUES (102, 5); DELETE FROM pq WHERE id = 100",
    )
    .await;
    let r = c.query_one(&agg, &[&100i64, &102i64]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (2, 1005));
    exec(&c, "ROLLBACK").await;
    let r = c.query_one(&agg, &[&100i64, &102i64]).await.unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (2, 1100));
    // A subquery beside the parameters.
    let sub = c
        .prepare(
            "SELECT count(*) FROM pq WHERE n > (SELECT avg(n) FROM pq WHERE id <= $1) AND id <= $1",
        )
        .await
        .unwrap();
    assert_eq!(
        c.query_one(&sub, &[&10i64]).await.unwrap().get::<_, i64>(0),
        5
    );
    assert_eq!(
        c.query_one(&sub, &[&20i64]).await.unwrap().get::<_, i64>(0),
        10
    );
    // now() and random() are not fixed by the first execution.
    let clock = c
        .prepare("SELECT now(), random() FROM pq WHERE id = $1 OR id = $1 + 1 LIMIT 1")
        .await
        .unwrap();
    let first = c.query_one(&clock, &[&1i64]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = c.query_one(&clock, &[&1i64]).await.unwrap();
    let t = |r: &tokio_postgres::Row| r.get::<_, std::time::SystemTime>(0);
    assert!(
        t(&second) > t(&first),
        "now() was fixed at the first execution"
    );
    assert_ne!(first.get::<_, f64>(1), second.get::<_, f64>(1));
}

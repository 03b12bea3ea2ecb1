//! Session settings over the wire: SET / SHOW / RESET (back to the value the
//! client sent at startup), search_path choosing the namespace of unqualified
//! names, statement_timeout cancelling with 57014, DISCARD ALL, and SQL-level
//! PREPARE / EXECUTE / DEALLOCATE.

mod common;

use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use common::{TestServer, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn show(client: &Client, name: &str) -> String {
    let msgs = client
        .simple_query(&format!("SHOW {name}"))
        .await
        .unwrap_or_else(|e| panic!("SHOW {name}: {e}"));
    msgs.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap_or_else(|| panic!("SHOW {name} gave no row"))
}

#[tokio::test]
async fn set_show_reset_and_startup_values() {
    timed("set show reset", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let conn = format!("{} application_name=from-startup", server.conn_string());
        let (c, connection) = tokio_postgres::connect(&conn, NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        assert_eq!(show(&c, "application_name").await, "from-startup");
        c.batch_execute("SET application_name = 'changed'")
            .await
            .expect("set");
        assert_eq!(show(&c, "application_name").await, "changed");
        c.batch_execute("RESET application_name")
            .await
            .expect("reset");
        assert_eq!(show(&c, "application_name").await, "from-startup");

        c.batch_execute(
            "SET DateStyle = 'ISO, DMY'; SET extra_float_digits = 3; SET TimeZone = 'Europe/Paris'",
        )
        .await
        .expect("set several");
        assert_eq!(show(&c, "datestyle").await, "ISO, DMY");
        assert_eq!(show(&c, "extra_float_digits").await, "3");
        assert_eq!(show(&c, "timezone").await, "Europe/Paris");
        c.batch_execute("RESET ALL").await.expect("reset all");
        assert_eq!(show(&c, "datestyle").await, "ISO, MDY");
        assert_eq!(show(&c, "application_name").await, "from-startup");
        assert_eq!(
            show(&c, "transaction isolation level").await,
            "read committed"
        );

        let err = c
            .batch_execute("SET server_version = '1'")
            .await
            .expect_err("read-only");
        assert_eq!(sqlstate(&err).as_deref(), Some("55P02"));
        let err = c
            .batch_execute("SET extra_float_digits = 9")
            .await
            .expect_err("out of range");
        assert_eq!(sqlstate(&err).as_deref(), Some("22023"));
        let err = c
            .batch_execute("SHOW no_such_setting")
            .await
            .expect_err("unknown");
        assert_eq!(sqlstate(&err).as_deref(), Some("42704"));

        // search_path picks the namespace unqualified names live in.
        c.batch_execute(
            "CREATE NAMESPACE sp;
             CREATE TABLE sp.t (id BIGINT PRIMARY KEY);
             SET search_path = sp;
             INSERT INTO t VALUES (1);",
        )
        .await
        .expect("search_path");
        let n: i64 = c
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect("unqualified")
            .get(0);
        assert_eq!(n, 1);
        c.batch_execute("RESET search_path").await.expect("reset");
        let err = c
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .expect_err("back to the default namespace");
        assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
    })
    .await;
}

#[tokio::test]
async fn statement_timeout_cancels_with_57014() {
    timed("statement timeout", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.batch_execute("SET statement_timeout = '200ms'")
            .await
            .expect("set");
        assert_eq!(show(&c, "statement_timeout").await, "200ms");
        let slow = "SELECT count(*) FROM generate_series(1, 100000000000)";
        let started = Instant::now();
        let err = c.simple_query(slow).await.expect_err("simple: timed out");
        assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err:?}");
        assert!(
            err.as_db_error()
                .is_some_and(|d| d.message().contains("statement timeout"))
        );
        let err = c.query(slow, &[]).await.expect_err("extended: timed out");
        assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(20));
        // The session is fine afterwards, and 0 turns the limit off.
        c.batch_execute("SET statement_timeout = 0")
            .await
            .expect("off");
        let one: i64 = c
            .query_one("SELECT count(*) FROM generate_series(1, 1000)", &[])
            .await
            .expect("fast query")
            .get(0);
        assert_eq!(one, 1000);
        let err = c
            .batch_execute("SET statement_timeout = 'soon'")
            .await
            .expect_err("bad value");
        assert_eq!(sqlstate(&err).as_deref(), Some("22023"));
    })
    .await;
}

#[tokio::test]
async fn prepare_execute_and_discard_all() {
    timed("prepare and discard", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        c.batch_execute(
            "CREATE NAMESPACE pe;
             CREATE TABLE pe.t (id BIGINT PRIMARY KEY, body TEXT);
             PREPARE ins (BIGINT, TEXT) AS INSERT INTO pe.t VALUES ($1, $2);
             EXECUTE ins (1, 'one');
             EXECUTE ins (2, 'two');
             PREPARE get (BIGINT) AS SELECT body FROM pe.t WHERE id = $1;",
        )
        .await
        .expect("prepare and execute");
        let rows = c.simple_query("EXECUTE get (2)").await.expect("execute");
        let body = rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(body.as_deref(), Some("two"));
        let err = c
            .batch_execute("PREPARE ins (BIGINT) AS SELECT 1")
            .await
            .expect_err("duplicate name");
        assert_eq!(sqlstate(&err).as_deref(), Some("42P05"));
        c.batch_execute("DEALLOCATE ins").await.expect("deallocate");
        let err = c
            .batch_execute("EXECUTE ins (3, 'three')")
            .await
            .expect_err("gone");
        assert_eq!(sqlstate(&err).as_deref(), Some("26000"));

        c.batch_execute("SET application_name = 'before discard'")
            .await
            .expect("set");
        c.batch_execute("BEGIN").await.expect("begin");
        let err = c
            .batch_execute("DISCARD ALL")
            .await
            .expect_err("not in a block");
        assert_eq!(sqlstate(&err).as_deref(), Some("25001"));
        c.batch_execute("ROLLBACK").await.expect("rollback");
        c.batch_execute("DISCARD ALL").await.expect("discard");
        assert_eq!(show(&c, "application_name").await, "");
        let err = c
            .batch_execute("EXECUTE get (1)")
            .await
            .expect_err("discarded");
        assert_eq!(sqlstate(&err).as_deref(), Some("26000"));
    })
    .await;
}

//! COPY over the wire with tokio-postgres (extended protocol) and simple
//! queries: FROM STDIN and TO STDOUT in text, CSV and binary; one statement
//! per COPY (a bad row anywhere writes nothing, and its error names its line);
//! COPY inside a transaction block; USER tables scoped to the copying user.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, TryStreamExt, pin_mut};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutStream};
use tokio_postgres::types::Type;

use common::{TestServer, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

async fn copy_in(
    client: &Client,
    sql: &str,
    chunks: &[&[u8]],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client.copy_in(sql).await?;
    pin_mut!(sink);
    for c in chunks {
        sink.send(Bytes::copy_from_slice(c)).await?;
    }
    sink.finish().await
}

async fn copy_out(client: &Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.expect("copy out");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("copy out rows");
    chunks.concat()
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

async fn setup(server: &TestServer) -> Client {
    let c = server.client().await;
    c.batch_execute(
        "CREATE NAMESPACE cp;
         CREATE TABLE cp.t (id BIGINT PRIMARY KEY, body TEXT, n DOUBLE, ts TIMESTAMP, ok BOOLEAN, tags TEXT[]);
         CREATE TABLE cp.u (id BIGINT PRIMARY KEY, body TEXT, n DOUBLE, ts TIMESTAMP, ok BOOLEAN, tags TEXT[]);",
    )
    .await
    .expect("setup");
    c
}

#[tokio::test]
async fn text_and_csv_round_trip_in_any_chunking() {
    timed("text and csv", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = setup(&server).await;
        // 5000 rows, cut into CopyData messages at awkward places.
        let mut input = String::new();
        for i in 1..=5000 {
            input.push_str(&format!(
                "{i}\tline {i}\\twith tab\\nand newline\t{}.5\t2024-01-02 03:04:05\t{}\t{{a,\"b c\"}}\n",
                i % 7,
                if i % 2 == 0 { "t" } else { "f" }
            ));
        }
        input.push_str("5001\t\\N\t\\N\t\\N\t\\N\t\\N\n");
        let bytes = input.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(997).collect();
        let n = copy_in(&c, "COPY cp.t FROM STDIN", &chunks).await.expect("copy in");
        assert_eq!(n, 5001);
        assert_eq!(count(&c, "cp.t").await, 5001);
        let row = c
            .query_one("SELECT body, n, ok, tags FROM cp.t WHERE id = 2", &[])
            .await
            .expect("row 2");
        assert_eq!(row.get::<_, String>(0), "line 2\twith tab\nand newline");
        assert_eq!(row.get::<_, f64>(1), 2.5);
        assert!(row.get::<_, bool>(2));
        assert_eq!(row.get::<_, Vec<String>>(3), vec!["a", "b c"]);
        let null_row = c
            .query_one("SELECT body IS NULL, n IS NULL FROM cp.t WHERE id = 5001", &[])
            .await
            .expect("null row");
        assert!(null_row.get::<_, bool>(0) && null_row.get::<_, bool>(1));

        // Text out is what went in.
        let out = copy_out(&c, "COPY cp.t TO STDOUT").await;
        let mut lines: Vec<&str> = std::str::from_utf8(&out).expect("utf8").lines().collect();
        lines.sort_by_key(|l| l.split('\t').next().and_then(|k| k.parse::<i64>().ok()));
        let mut expected: Vec<&str> = input.lines().collect();
        expected.sort_by_key(|l| l.split('\t').next().and_then(|k| k.parse::<i64>().ok()));
        assert_eq!(lines, expected);

        // CSV out with a header, CSV back in: the same rows, NULL and '' kept apart.
        c.batch_execute("INSERT INTO cp.t (id, body) VALUES (6000, ''), (6001, 'a,\"b\"')")
            .await
            .expect("edge rows");
        let csv = copy_out(&c, "COPY cp.t TO STDOUT WITH (FORMAT csv, HEADER true)").await;
        let text = String::from_utf8(csv.clone()).expect("utf8");
        assert!(text.starts_with("id,body,n,ts,ok,tags\n"), "{}", &text[..40]);
        assert!(text.contains("\n6000,\"\",,,,\n"), "empty string is quoted");
        assert!(text.contains("\n6001,\"a,\"\"b\"\"\",,,,\n"));
        let n = copy_in(&c, "COPY cp.u FROM STDIN WITH (FORMAT csv, HEADER true)", &[&csv])
            .await
            .expect("csv in");
        assert_eq!(n, 5003);
        let same: i64 = c
            .query_one(
                "SELECT count(*) FROM cp.t JOIN cp.u ON cp.t.id = cp.u.id
                 WHERE (cp.t.body IS NOT DISTINCT FROM cp.u.body)
                   AND (cp.t.n IS NOT DISTINCT FROM cp.u.n)
                   AND (cp.t.ts IS NOT DISTINCT FROM cp.u.ts)",
                &[],
            )
            .await
            .expect("compare")
            .get(0);
        assert_eq!(same, 5003);

        // A query's rows, and a column list.
        let q = copy_out(
            &c,
            "COPY (SELECT id, body FROM cp.t WHERE id IN (1, 6000) ORDER BY id) TO STDOUT (FORMAT csv)",
        )
        .await;
        assert_eq!(
            String::from_utf8(q).expect("utf8"),
            "1,\"line 1\twith tab\nand newline\"\n6000,\"\"\n"
        );
        let cols = copy_out(&c, "COPY cp.t (ok, id) TO STDOUT").await;
        assert!(String::from_utf8(cols).expect("utf8").contains("\nt\t2\n"));
    })
    .await;
}

#[tokio::test]
async fn binary_round_trip() {
    timed("binary", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = setup(&server).await;
        c.batch_execute(
            "INSERT INTO cp.t VALUES
               (1, 'one', 1.5, '2024-01-02 03:04:05', true, '{a,b}'),
               (2, NULL, NULL, NULL, NULL, NULL)",
        )
        .await
        .expect("rows");
        let types = [
            Type::INT8,
            Type::TEXT,
            Type::FLOAT8,
            Type::TIMESTAMP,
            Type::BOOL,
            Type::TEXT_ARRAY,
        ];
        let stream = c
            .copy_out("COPY cp.t TO STDOUT (FORMAT binary)")
            .await
            .expect("binary out");
        let rows: Vec<_> = BinaryCopyOutStream::new(stream, &types)
            .try_collect()
            .await
            .expect("binary rows");
        assert_eq!(rows.len(), 2);
        let one = rows.iter().find(|r| r.get::<i64>(0) == 1).expect("row 1");
        assert_eq!(one.get::<&str>(1), "one");
        assert_eq!(one.get::<f64>(2), 1.5);
        assert_eq!(one.get::<Vec<String>>(5), vec!["a", "b"]);

        let sink = c
            .copy_in("COPY cp.u FROM STDIN (FORMAT binary)")
            .await
            .expect("binary in");
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for i in 0..1000i64 {
            let body = format!("row {i}");
            let ts = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .expect("ts");
            let tags = vec!["x".to_string()];
            let ok = i % 2 == 0;
            let n = i as f64 / 2.0;
            if i == 999 {
                writer
                    .as_mut()
                    .write(&[
                        &i,
                        &None::<String>,
                        &None::<f64>,
                        &None::<chrono::NaiveDateTime>,
                        &None::<bool>,
                        &None::<Vec<String>>,
                    ])
                    .await
                    .expect("write null row");
            } else {
                writer
                    .as_mut()
                    .write(&[&i, &body, &n, &ts, &ok, &tags])
                    .await
                    .expect("write row");
            }
        }
        assert_eq!(writer.finish().await.expect("finish"), 1000);
        let row = c
            .query_one("SELECT body, n, ts, ok, tags FROM cp.u WHERE id = 7", &[])
            .await
            .expect("row 7");
        assert_eq!(row.get::<_, String>(0), "row 7");
        assert_eq!(row.get::<_, f64>(1), 3.5);
        assert!(!row.get::<_, bool>(3));
        assert_eq!(row.get::<_, Vec<String>>(4), vec!["x"]);
        let nulls: i64 = c
            .query_one(
                "SELECT count(*) FROM cp.u WHERE body IS NULL AND tags IS NULL",
                &[],
            )
            .await
            .expect("nulls")
            .get(0);
        assert_eq!(nulls, 1);
    })
    .await;
}

#[tokio::test]
async fn a_bad_row_writes_nothing_and_names_its_line() {
    timed("bad rows", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = setup(&server).await;
        c.batch_execute("INSERT INTO cp.t (id, body) VALUES (42, 'existing')")
            .await
            .expect("row");
        let good: String = (1..=999)
            .map(|i| format!("{i}\tok\t1\t\\N\tt\t\\N\n"))
            .collect();
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!("{good}1000\tx\tnot-a-number\t\\N\tt\t\\N\n"),
                "22P02",
                "line 1000, column n",
            ),
            (format!("{good}1000\tx\n"), "22P04", "line 1000"),
            (
                format!("{good}1000\tx\t1\t\\N\tt\t\\N\textra\n"),
                "22P04",
                "line 1000",
            ),
            (
                format!("{good}5\tagain\t1\t\\N\tt\t\\N\n"),
                "23505",
                "line 1000",
            ),
            (
                format!("{good}42\tclash\t1\t\\N\tt\t\\N\n"),
                "23505",
                "line 1000",
            ),
            (
                format!("{good}\\N\tno key\t1\t\\N\tt\t\\N\n"),
                "23502",
                "line 1000",
            ),
        ];
        for (input, code, line) in cases {
            let err = copy_in(&c, "COPY cp.t FROM STDIN", &[input.as_bytes()])
                .await
                .expect_err("bad copy");
            assert_eq!(sqlstate(&err).as_deref(), Some(code), "{err:?}");
            let db = err.as_db_error().expect("db error");
            assert!(
                db.where_().is_some_and(|w| w.contains(line)),
                "{code}: context {:?}",
                db.where_()
            );
            assert_eq!(
                count(&c, "cp.t").await,
                1,
                "{code}: nothing of the copy landed"
            );
        }
        // The connection goes on, and a CSV error counts physical lines.
        let err = copy_in(
            &c,
            "COPY cp.t (id, body) FROM STDIN (FORMAT csv)",
            &[b"1,\"two\nlines\"\nx,y\n"],
        )
        .await
        .expect_err("bad csv key");
        assert_eq!(sqlstate(&err).as_deref(), Some("22P02"));
        assert!(
            err.as_db_error()
                .and_then(|d| d.where_())
                .is_some_and(|w| w.contains("line 3"))
        );

        // A client that gives up mid-copy (CopyFail) leaves nothing either.
        let mut sink = Box::pin(c.copy_in("COPY cp.t FROM STDIN").await.expect("copy"));
        sink.send(Bytes::from_static(b"7\tseven\t1\t\\N\tt\t\\N\n"))
            .await
            .expect("send");
        // Dropping the sink unfinished sends CopyFail.
        drop(sink);
        assert_eq!(count(&c, "cp.t").await, 1);

        // Options Strata cannot honour are refused up front.
        let err = c
            .batch_execute("COPY cp.t FROM '/etc/passwd'")
            .await
            .expect_err("server file");
        assert_eq!(sqlstate(&err).as_deref(), Some("0A000"));
        let err = c
            .batch_execute("COPY cp.missing FROM STDIN")
            .await
            .expect_err("missing table");
        assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
    })
    .await;
}

#[tokio::test]
async fn copy_in_a_block_lands_at_commit_and_user_tables_stay_scoped() {
    timed("copy in block", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = setup(&server).await;
        c.batch_execute("BEGIN").await.expect("begin");
        copy_in(
            &c,
            "COPY cp.t (id, body) FROM STDIN",
            &[b"1\tone\n2\ttwo\n"],
        )
        .await
        .expect("copy");
        assert_eq!(count(&c, "cp.t").await, 2, "the block sees its copy");
        let other = server.client().await;
        assert_eq!(count(&other, "cp.t").await, 0, "others do not, yet");
        c.batch_execute("ROLLBACK").await.expect("rollback");
        assert_eq!(count(&c, "cp.t").await, 0);
        c.batch_execute("BEGIN").await.expect("begin");
        copy_in(&c, "COPY cp.t (id, body) FROM STDIN", &[b"1\tone\n"])
            .await
            .expect("copy");
        c.batch_execute("COMMIT").await.expect("commit");
        assert_eq!(count(&other, "cp.t").await, 1);

        c.batch_execute(
            "CREATE USER alice PASSWORD 'alice-pw';
             CREATE USER bob PASSWORD 'bob-pw';
             CREATE USER TABLE cp.notes (id BIGINT PRIMARY KEY, body TEXT)",
        )
        .await
        .expect("users");
        let alice = server.client_as("alice", Some("alice-pw")).await;
        let bob = server.client_as("bob", Some("bob-pw")).await;
        copy_in(&alice, "COPY cp.notes FROM STDIN", &[b"1\talice's\n"])
            .await
            .expect("alice");
        copy_in(
            &bob,
            "COPY cp.notes FROM STDIN (FORMAT csv)",
            &[b"1,bob's\n2,more\n"],
        )
        .await
        .expect("bob");
        assert_eq!(
            copy_out(&alice, "COPY cp.notes TO STDOUT").await,
            b"1\talice's\n"
        );
        assert_eq!(count(&bob, "cp.notes").await, 2);
    })
    .await;
}

#[tokio::test]
async fn a_copy_past_its_memory_limit_fails_cleanly() {
    timed("copy memory limit", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = setup(&server).await;
        c.batch_execute("SET copy_memory_limit = '64kB'")
            .await
            .expect("set");
        let input: String = (1..=5000).map(|i| format!("{i}\tsome text\n")).collect();
        let chunks: Vec<&[u8]> = input.as_bytes().chunks(4096).collect();
        let err = copy_in(&c, "COPY cp.t (id, body) FROM STDIN", &chunks)
            .await
            .expect_err("over the limit");
        assert_eq!(sqlstate(&err).as_deref(), Some("54000"), "{err:?}");
        assert_eq!(count(&c, "cp.t").await, 0);
        // A COPY within the limit still works on the same connection.
        let n = copy_in(&c, "COPY cp.t (id, body) FROM STDIN", &[b"1\tone\n"])
            .await
            .expect("small copy");
        assert_eq!(n, 1);
    })
    .await;
}

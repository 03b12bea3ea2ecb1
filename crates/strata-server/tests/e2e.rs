//! End-to-end tests through tokio-postgres, covering both wire protocols:
//! the simple query protocol (`simple_query`, text results) and the extended
//! protocol (`prepare`/`query`/`execute`, typed parameters, binary results).
//!
//! Each test starts its own server, so tests are independent and may run in
//! parallel. Every test body is bounded by a timeout.

mod common;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use rust_decimal::Decimal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::types::{FromSql, FromSqlOwned, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Row, SimpleQueryMessage};
use uuid::Uuid;

use common::{TestServer, simple_rows, sqlstate, timed};

/// Upper bound for a whole test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The CommandComplete row counts of a simple query, in order.
fn simple_counts(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

/// Runs a simple query and panics with the SQL on error.
async fn simple(client: &Client, sql: &str) -> Vec<SimpleQueryMessage> {
    match client.simple_query(sql).await {
        Ok(messages) => messages,
        Err(e) => panic!(
            "simple query failed: {sql}\n  error: {e} (sqlstate {:?})",
            sqlstate(&e)
        ),
    }
}

/// Single value of a single-row simple query.
async fn simple_scalar(client: &Client, sql: &str) -> Option<String> {
    let rows = simple_rows(&simple(client, sql).await);
    assert_eq!(
        rows.len(),
        1,
        "expected exactly one row from: {sql}\n  got {rows:?}"
    );
    assert_eq!(
        rows[0].len(),
        1,
        "expected exactly one column from: {sql}\n  got {rows:?}"
    );
    rows[0][0].clone()
}

/// Single BIGINT of an extended-protocol query.
async fn scalar_i64(client: &Client, sql: &str) -> i64 {
    match client.query_one(sql, &[]).await {
        Ok(row) => row.get(0),
        Err(e) => panic!(
            "query failed: {sql}\n  error: {e} (sqlstate {:?})",
            sqlstate(&e)
        ),
    }
}

/// Asserts that `result` failed with SQLSTATE `code`.
fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tokio_postgres::Error>,
    code: &str,
    what: &str,
) {
    match result {
        Ok(v) => panic!("{what}: expected SQLSTATE {code}, but it succeeded with {v:?}"),
        Err(e) => assert_eq!(
            sqlstate(&e).as_deref(),
            Some(code),
            "{what}: expected SQLSTATE {code}, got error: {e}"
        ),
    }
}

/// A readable description of a driver error: the server's SQLSTATE and
/// message, or the client-side cause (e.g. a parameter type mismatch).
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.code().code(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// A JSON document bound as a parameter whatever type the server reports for
/// it: Strata returns JSON/JSONB as text, but a server may also describe the
/// parameter as json or jsonb.
#[derive(Debug)]
struct JsonParam<'a>(&'a str);

impl ToSql for JsonParam<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::JSON | Type::JSONB | Type::TEXT | Type::VARCHAR | Type::UNKNOWN
        )
    }

    to_sql_checked!();
}

/// A JSON (or text) result column read back as its text.
#[derive(Debug)]
struct JsonText(String);

impl<'a> FromSql<'a> for JsonText {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let body = if *ty == Type::JSONB {
            raw.get(1..).unwrap_or_default()
        } else {
            raw
        };
        Ok(JsonText(std::str::from_utf8(body)?.to_string()))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB | Type::TEXT | Type::VARCHAR)
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON: {text:?}: {e}"))
}

// ---------------------------------------------------------------------------
// Parameters and results of every type
// ---------------------------------------------------------------------------

/// How a value must read back through the simple protocol (text format).
enum TextExpect {
    Exact(&'static str),
    /// Date/time values: the fraction's rendering is the server's choice.
    Prefix(&'static str),
    /// JSON documents: compared as parsed JSON.
    Json(&'static str),
}

type BinaryCheck = Box<dyn Fn(&Row) -> Result<(), String> + Send + Sync>;

/// One column type exercised end to end.
struct TypeCase {
    sql_type: &'static str,
    /// Bound (in binary) as an INSERT parameter and a WHERE parameter.
    param: Box<dyn ToSql + Sync + Send>,
    /// Checks column 0 of the binary result row.
    check_binary: BinaryCheck,
    text: TextExpect,
    /// Whether `WHERE v = $1` is meaningful (PostgreSQL has no `json = json`).
    where_eq: bool,
}

/// A case whose Rust type decodes back to itself.
fn case<T>(sql_type: &'static str, value: T, text: TextExpect) -> TypeCase
where
    T: ToSql + FromSqlOwned + PartialEq + std::fmt::Debug + Clone + Send + Sync + 'static,
{
    let expected = value.clone();
    TypeCase {
        sql_type,
        param: Box::new(value),
        check_binary: Box::new(move |row: &Row| match row.try_get::<_, T>(0) {
            Ok(v) if v == expected => Ok(()),
            Ok(v) => Err(format!("binary result {v:?}, expected {expected:?}")),
            Err(e) => Err(format!("binary result does not decode: {}", describe(&e))),
        }),
        text,
        where_eq: true,
    }
}

/// A JSON case: bound through [`JsonParam`], compared as parsed JSON.
fn json_case(sql_type: &'static str, doc: &'static str) -> TypeCase {
    TypeCase {
        sql_type,
        param: Box::new(JsonParam(doc)),
        check_binary: Box::new(move |row: &Row| match row.try_get::<_, JsonText>(0) {
            Ok(v) if json(&v.0) == json(doc) => Ok(()),
            Ok(v) => Err(format!("binary result {:?}, expected {doc:?}", v.0)),
            Err(e) => Err(format!("binary result does not decode: {}", describe(&e))),
        }),
        text: TextExpect::Json(doc),
        where_eq: sql_type != "JSON",
    }
}

/// A NULL of whatever type the server asks for.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn type_cases() -> Vec<TypeCase> {
    use TextExpect::*;
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).expect("valid date");
    let time = NaiveTime::from_hms_micro_opt(13, 45, 10, 250_000).expect("valid time");
    let tstz = Utc
        .with_ymd_and_hms(2024, 2, 29, 13, 45, 10)
        .single()
        .expect("valid timestamp");
    let uuid = Uuid::parse_str("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11").expect("valid uuid");
    vec![
        case("BOOLEAN", true, Exact("t")),
        case("SMALLINT", 7i16, Exact("7")),
        case("INT", -42i32, Exact("-42")),
        case("INTEGER", 2_147_483_647i32, Exact("2147483647")),
        case("BIGINT", 9_000_000_000i64, Exact("9000000000")),
        case("REAL", 1.5f32, Exact("1.5")),
        case("DOUBLE PRECISION", 2.25f64, Exact("2.25")),
        case("NUMERIC(12, 3)", Decimal::new(12345, 3), Exact("12.345")),
        case("TEXT", "héllo wörld".to_string(), Exact("héllo wörld")),
        case("VARCHAR(20)", "world".to_string(), Exact("world")),
        case("BYTEA", vec![0u8, 1, 2, 255], Exact("\\x000102ff")),
        case("DATE", date, Exact("2024-02-29")),
        case("TIME", time, Prefix("13:45:10.25")),
        case(
            "TIMESTAMP",
            date.and_time(time),
            Prefix("2024-02-29 13:45:10.25"),
        ),
        case("TIMESTAMPTZ", tstz, Prefix("2024-02-29 13:45:10")),
        case("UUID", uuid, Exact("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        json_case("JSON", r#"{"a": 1, "b": [true, null]}"#),
        json_case("JSONB", r#"{"k": "v"}"#),
        case(
            "INT[]",
            vec![Some(1i32), None, Some(3)],
            Exact("{1,NULL,3}"),
        ),
        case("BIGINT[]", vec![10i64, 20], Exact("{10,20}")),
        case(
            "TEXT[]",
            vec!["a".to_string(), "b c".to_string()],
            Exact(r#"{a,"b c"}"#),
        ),
    ]
}

/// Runs one [`TypeCase`] in table `table`; returns the first failure.
async fn run_type_case(client: &Client, table: &str, c: &TypeCase) -> Result<(), String> {
    let db = |what: &str, e: tokio_postgres::Error| format!("{what}: {}", describe(&e));
    client
        .simple_query(&format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, v {})",
            c.sql_type
        ))
        .await
        .map_err(|e| db("CREATE TABLE", e))?;

    // Named prepared INSERT; the value and a NULL as binary parameters.
    let insert = client
        .prepare(&format!("INSERT INTO {table} (id, v) VALUES ($1, $2)"))
        .await
        .map_err(|e| db("prepare INSERT", e))?;
    let param: &(dyn ToSql + Sync) = c.param.as_ref();
    let n = client
        .execute(&insert, &[&1i64, param])
        .await
        .map_err(|e| db("INSERT with a binary parameter", e))?;
    if n != 1 {
        return Err(format!("INSERT reported {n} rows"));
    }
    client
        .execute(&insert, &[&2i64, &Null])
        .await
        .map_err(|e| db("INSERT with a NULL parameter", e))?;

    // From here on the checks are independent: collect every problem.
    let mut problems = Vec::new();

    // Binary results (extended protocol).
    let select = format!("SELECT v FROM {table} WHERE id = $1");
    match client.query_one(&select, &[&1i64]).await {
        Ok(row) => {
            if let Err(e) = (c.check_binary)(&row) {
                problems.push(e);
            }
        }
        Err(e) => problems.push(db("SELECT (binary)", e)),
    }
    match client.query_one(&select, &[&2i64]).await {
        Ok(row) if row.get::<_, Option<RawValue>>(0).is_some() => {
            problems.push("the NULL row reads back non-NULL (binary)".into())
        }
        Ok(_) => {}
        Err(e) => problems.push(db("SELECT NULL (binary)", e)),
    }

    // The value as a WHERE parameter (type inferred from the column).
    if c.where_eq {
        let sql = format!("SELECT id FROM {table} WHERE v = $1");
        match client.query(&sql, &[param]).await {
            Ok(rows) => {
                let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                if ids != [1] {
                    problems.push(format!("WHERE v = $1 matched ids {ids:?}, expected [1]"));
                }
            }
            Err(e) => problems.push(db("WHERE v = $1", e)),
        }
    }

    // Text results (simple protocol).
    match client
        .simple_query(&format!("SELECT v FROM {table} ORDER BY id"))
        .await
    {
        Ok(messages) => {
            let rows = simple_rows(&messages);
            let texts: Vec<Option<String>> = rows.iter().map(|r| r[0].clone()).collect();
            let ok = match (texts.as_slice(), &c.text) {
                ([Some(t), None], TextExpect::Exact(want)) => t == want,
                ([Some(t), None], TextExpect::Prefix(want)) => t.starts_with(want),
                ([Some(t), None], TextExpect::Json(want)) => {
                    serde_json::from_str::<serde_json::Value>(t).ok() == Some(json(want))
                }
                _ => false,
            };
            if !ok {
                let want = match &c.text {
                    TextExpect::Exact(w) => format!("{w:?}"),
                    TextExpect::Prefix(w) => format!("text starting with {w:?}"),
                    TextExpect::Json(w) => format!("JSON {w}"),
                };
                problems.push(format!("text results {texts:?}, expected [{want}, NULL]"));
            }
        }
        Err(e) => problems.push(db("SELECT (text)", e)),
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Every supported type through both protocols: bound as a binary parameter
/// (INSERT and WHERE), NULL, read back in binary and in text. All types are
/// tried and every failing one is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_through_parameters_and_both_result_formats() {
    let server = TestServer::start().await;
    timed("every-type round trip", TEST_TIMEOUT, async {
        let client = server.client().await;
        let mut failures = Vec::new();
        for (i, c) in type_cases().iter().enumerate() {
            if let Err(e) = run_type_case(&client, &format!("types_{i}"), c).await {
                failures.push(format!("{}: {e}", c.sql_type));
            }
        }
        assert!(
            failures.is_empty(),
            "{} type(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    })
    .await;
}

/// Parameters whose type comes from a cast rather than from a column
/// (`$1::BIGINT` is a BIGINT parameter, as in PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_typed_by_casts() {
    let server = TestServer::start().await;
    timed("cast parameters", TEST_TIMEOUT, async {
        let client = server.client().await;
        let mut failures = Vec::new();

        match client
            .query_one("SELECT $1::BIGINT + $2::BIGINT", &[&40i64, &2i64])
            .await
        {
            Ok(row) if row.get::<_, i64>(0) == 42 => {}
            Ok(row) => failures.push(format!(
                "$1::BIGINT + $2::BIGINT = {:?}",
                row.get::<_, Option<i64>>(0)
            )),
            Err(e) => failures.push(format!("$1::BIGINT + $2::BIGINT: {}", describe(&e))),
        }
        match client.query_one("SELECT $1::TEXT || '!'", &[&"hi"]).await {
            Ok(row) if row.get::<_, String>(0) == "hi!" => {}
            Ok(row) => failures.push(format!(
                "$1::TEXT || '!' = {:?}",
                row.get::<_, Option<String>>(0)
            )),
            Err(e) => failures.push(format!("$1::TEXT || '!': {}", describe(&e))),
        }
        match client
            .query_one("SELECT $1::DOUBLE PRECISION * 2", &[&1.25f64])
            .await
        {
            Ok(row) if row.get::<_, f64>(0) == 2.5 => {}
            Ok(row) => failures.push(format!(
                "$1::DOUBLE PRECISION * 2 = {:?}",
                row.get::<_, Option<f64>>(0)
            )),
            Err(e) => failures.push(format!("$1::DOUBLE PRECISION * 2: {}", describe(&e))),
        }
        match client
            .query_one(
                "SELECT count(*) FROM (SELECT 1) AS t WHERE $1::INT > 0",
                &[&5i32],
            )
            .await
        {
            Ok(row) if row.get::<_, i64>(0) == 1 => {}
            Ok(row) => failures.push(format!(
                "$1::INT > 0 counted {:?}",
                row.get::<_, Option<i64>>(0)
            )),
            Err(e) => failures.push(format!("WHERE $1::INT > 0: {}", describe(&e))),
        }
        assert!(
            failures.is_empty(),
            "cast parameters failed:\n{}",
            failures.join("\n")
        );
    })
    .await;
}

/// Any non-NULL value, undecoded (used to test NULL-ness of any type).
#[derive(Debug)]
struct RawValue;

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, _: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(RawValue)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------
// Named and unnamed statements
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_and_unnamed_statements() {
    let server = TestServer::start().await;
    timed("named/unnamed statements", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(
            &client,
            "CREATE TABLE kv (id BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        )
        .await;

        // Several named statements alive at once, executed interleaved.
        let insert = client
            .prepare("INSERT INTO kv (id, name) VALUES ($1, $2)")
            .await
            .expect("prepare insert");
        let select = client
            .prepare("SELECT name FROM kv WHERE id = $1")
            .await
            .expect("prepare select");
        assert_eq!(
            insert.params(),
            &[Type::INT8, Type::TEXT],
            "INSERT parameter types"
        );
        assert!(
            insert.columns().is_empty(),
            "INSERT without RETURNING has no result columns"
        );
        assert_eq!(select.params(), &[Type::INT8], "SELECT parameter types");
        assert_eq!(select.columns().len(), 1);
        assert_eq!(select.columns()[0].name(), "name");
        assert_eq!(*select.columns()[0].type_(), Type::TEXT);

        for id in 1..=5i64 {
            let n = client
                .execute(&insert, &[&id, &format!("name-{id}")])
                .await
                .expect("execute insert");
            assert_eq!(n, 1);
            let row = client
                .query_one(&select, &[&id])
                .await
                .expect("execute select");
            assert_eq!(row.get::<_, String>(0), format!("name-{id}"));
        }

        let update = client
            .prepare("UPDATE kv SET name = $2 WHERE id = $1")
            .await
            .expect("prepare update");
        assert_eq!(
            client
                .execute(&update, &[&3i64, &"three"])
                .await
                .expect("execute update"),
            1
        );
        assert_eq!(
            client
                .execute(&update, &[&99i64, &"none"])
                .await
                .expect("update of a missing row"),
            0
        );

        // Statement with RETURNING describes its result columns.
        let returning = client
            .prepare("DELETE FROM kv WHERE id = $1 RETURNING id, name")
            .await
            .expect("prepare delete returning");
        assert_eq!(returning.columns().len(), 2);
        let rows = client
            .query(&returning, &[&5i64])
            .await
            .expect("delete returning");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>(0), 5);
        assert_eq!(rows[0].get::<_, String>(1), "name-5");

        // Closing a statement (dropping it sends Close) leaves the others usable.
        drop(insert);
        drop(update);
        let row = client
            .query_one(&select, &[&3i64])
            .await
            .expect("select after closing other statements");
        assert_eq!(row.get::<_, String>(0), "three");

        // The same SQL prepared twice gives two independent statements.
        let again = client
            .prepare("SELECT name FROM kv WHERE id = $1")
            .await
            .expect("prepare same SQL again");
        assert_eq!(
            client
                .query_one(&again, &[&1i64])
                .await
                .expect("run 2nd copy")
                .get::<_, String>(0),
            "name-1"
        );
        assert_eq!(
            client
                .query_one(&select, &[&2i64])
                .await
                .expect("run 1st copy")
                .get::<_, String>(0),
            "name-2"
        );

        // Unnamed statements: Parse/Bind/Execute in one round trip.
        let rows = client
            .query_typed(
                "SELECT name FROM kv WHERE id = $1",
                &[(&4i64 as &(dyn ToSql + Sync), Type::INT8)],
            )
            .await
            .expect("unnamed statement (query_typed)");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, String>(0), "name-4");
        let n = client
            .execute_typed(
                "INSERT INTO kv (id, name) VALUES ($1, $2)",
                &[
                    (&6i64 as &(dyn ToSql + Sync), Type::INT8),
                    (&"six" as &(dyn ToSql + Sync), Type::TEXT),
                ],
            )
            .await
            .expect("unnamed statement (execute_typed)");
        assert_eq!(n, 1);
        // Unnamed statements replace each other; the named one still works.
        let rows = client
            .query_typed("SELECT count(*) FROM kv", &[])
            .await
            .expect("second unnamed statement");
        assert_eq!(rows[0].get::<_, i64>(0), 5);
        assert_eq!(
            client
                .query_one(&select, &[&6i64])
                .await
                .expect("named after unnamed")
                .get::<_, String>(0),
            "six"
        );

        // An error in one statement does not break the prepared ones.
        assert_code(
            client
                .execute("INSERT INTO kv (id, name) VALUES (1, 'dup')", &[])
                .await,
            "23505",
            "duplicate key",
        );
        assert_eq!(
            client
                .query_one(&select, &[&1i64])
                .await
                .expect("after error")
                .get::<_, String>(0),
            "name-1"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_parameter_values_are_rejected_by_the_driver_or_server() {
    let server = TestServer::start().await;
    timed("parameter errors", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(
            &client,
            "CREATE TABLE p (id BIGINT PRIMARY KEY, n INT NOT NULL)",
        )
        .await;
        let insert = client
            .prepare("INSERT INTO p VALUES ($1, $2)")
            .await
            .expect("prepare");
        assert_eq!(
            client
                .execute(&insert, &[&1i64, &10i32])
                .await
                .expect("valid insert"),
            1
        );
        assert_code(
            client.execute(&insert, &[&1i64, &11i32]).await,
            "23505",
            "duplicate key via parameters",
        );
        assert_code(
            client.execute(&insert, &[&2i64, &None::<i32>]).await,
            "23502",
            "NULL parameter into NOT NULL",
        );
        // The connection and statement keep working after the errors.
        assert_eq!(
            client
                .execute(&insert, &[&2i64, &20i32])
                .await
                .expect("insert after errors"),
            1
        );
        assert_eq!(scalar_i64(&client, "SELECT count(*) FROM p").await, 2);
    })
    .await;
}

// ---------------------------------------------------------------------------
// Simple query protocol: several statements in one string
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_simple_query() {
    let server = TestServer::start().await;
    timed("multi-statement simple query", TEST_TIMEOUT, async {
        let client = server.client().await;
        let messages = simple(
            &client,
            "CREATE NAMESPACE ms;
             CREATE TABLE ms.t (id BIGINT PRIMARY KEY, v TEXT);
             INSERT INTO ms.t VALUES (1, 'a'), (2, 'b'), (3, 'c');
             UPDATE ms.t SET v = 'bb' WHERE id = 2;
             SELECT id, v FROM ms.t ORDER BY id;
             DELETE FROM ms.t WHERE id = 1;
             SELECT count(*) FROM ms.t;",
        )
        .await;
        let counts = simple_counts(&messages);
        assert_eq!(
            counts.len(),
            7,
            "one CommandComplete per statement: {counts:?}"
        );
        assert_eq!(
            &counts[2..],
            &[3, 1, 3, 1, 1],
            "row counts of INSERT, UPDATE, SELECT, DELETE, SELECT"
        );
        let rows = simple_rows(&messages);
        let expected: Vec<Vec<Option<String>>> = vec![
            vec![Some("1".into()), Some("a".into())],
            vec![Some("2".into()), Some("bb".into())],
            vec![Some("3".into()), Some("c".into())],
            vec![Some("2".into())],
        ];
        assert_eq!(rows, expected);

        // An error stops the rest of the string; the connection stays usable.
        let err = client
            .simple_query(
                "INSERT INTO ms.t VALUES (10, 'x');
                 SELECT * FROM ms.does_not_exist;
                 INSERT INTO ms.t VALUES (11, 'y');",
            )
            .await
            .expect_err("a statement on a missing table must fail");
        assert_eq!(sqlstate(&err).as_deref(), Some("42P01"), "error: {err}");
        assert_eq!(
            simple_scalar(&client, "SELECT count(*) FROM ms.t WHERE id = 11")
                .await
                .as_deref(),
            Some("0"),
            "statements after the failing one must not run"
        );

        // batch_execute with comments, blank statements and a trailing semicolon.
        client
            .batch_execute(
                "-- a comment
                 INSERT INTO ms.t VALUES (20, 'c1');;
                 /* block comment */ INSERT INTO ms.t VALUES (21, 'c2');",
            )
            .await
            .expect("batch with comments and empty statements");
        assert_eq!(
            simple_scalar(&client, "SELECT count(*) FROM ms.t WHERE id >= 20")
                .await
                .as_deref(),
            Some("2")
        );

        // An empty query string is answered (EmptyQueryResponse), not an error.
        client.simple_query("").await.expect("empty query string");
        client
            .simple_query(" ; ")
            .await
            .expect("query string of only a semicolon");
        assert_eq!(
            simple_scalar(&client, "SELECT 1").await.as_deref(),
            Some("1")
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Errors carry the right SQLSTATE in both protocols
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_sqlstates_in_both_protocols() {
    let server = TestServer::start().await;
    timed("error sqlstates", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(&client, "CREATE NAMESPACE e").await;
        simple(
            &client,
            "CREATE TABLE e.t (id BIGINT PRIMARY KEY, name TEXT NOT NULL, n INT)",
        )
        .await;
        simple(&client, "INSERT INTO e.t VALUES (1, 'one', 1)").await;

        let cases: &[(&str, &str)] = &[
            ("INSERT INTO e.t VALUES (1, 'dup', 2)", "23505"),
            ("INSERT INTO e.t (id, name) VALUES (2, NULL)", "23502"),
            ("INSERT INTO e.t (id, n) VALUES (3, 3)", "23502"),
            ("INSERT INTO e.t VALUES (4, 'x', 'abc')", "22P02"),
            ("SELECT * FROM e.does_not_exist", "42P01"),
            ("SELECT no_such_column FROM e.t", "42703"),
            ("SELEC 1", "42601"),
            ("CREATE TABLE e.t (id BIGINT PRIMARY KEY)", "42P07"),
            ("CREATE NAMESPACE e", "42P06"),
            ("CREATE TABLE no_such_ns.t (id BIGINT PRIMARY KEY)", "3F000"),
            (
                "CREATE TABLE e.two_pk (a INT PRIMARY KEY, b INT PRIMARY KEY)",
                "42P16",
            ),
            ("CREATE NAMESPACE system", "42939"),
            ("DROP NAMESPACE e", "2BP01"),
            (
                "CREATE TABLE e.w (id BIGINT PRIMARY KEY) WITH (BOGUS_OPTION = '1')",
                "22023",
            ),
            ("CREATE STREAM TABLE e.s (id BIGINT PRIMARY KEY)", "22023"),
        ];
        for (sql, code) in cases {
            assert_code(
                client.simple_query(sql).await,
                code,
                &format!("simple: {sql}"),
            );
            assert_code(
                client.execute(*sql, &[]).await,
                code,
                &format!("extended: {sql}"),
            );
        }

        // Nothing above changed the data, and both protocols still work.
        assert_eq!(scalar_i64(&client, "SELECT count(*) FROM e.t").await, 1);
        assert_eq!(
            simple_scalar(&client, "SELECT name FROM e.t WHERE id = 1")
                .await
                .as_deref(),
            Some("one")
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Volume: one prepared INSERT executed many times; concurrent connections
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_insert_executed_1000_times() {
    let server = TestServer::start().await;
    timed("1000 prepared inserts", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(
            &client,
            "CREATE TABLE bulk (id BIGINT PRIMARY KEY, payload TEXT, score DOUBLE PRECISION)",
        )
        .await;
        let insert = client
            .prepare("INSERT INTO bulk (id, payload, score) VALUES ($1, $2, $3)")
            .await
            .expect("prepare insert");
        for id in 0..1000i64 {
            let n = client
                .execute(&insert, &[&id, &format!("row {id}"), &(id as f64 / 4.0)])
                .await
                .unwrap_or_else(|e| panic!("insert #{id}: {e}"));
            assert_eq!(n, 1, "rows affected by insert #{id}");
        }
        let row = client
            .query_one(
                "SELECT count(*), sum(id), min(id), max(id), count(DISTINCT id) FROM bulk",
                &[],
            )
            .await
            .expect("aggregate over the inserted rows");
        assert_eq!(row.get::<_, i64>(0), 1000);
        assert_eq!(row.get::<_, i64>(1), 999 * 1000 / 2);
        assert_eq!(row.get::<_, i64>(2), 0);
        assert_eq!(row.get::<_, i64>(3), 999);
        assert_eq!(row.get::<_, i64>(4), 1000);
        let row = client
            .query_one("SELECT payload, score FROM bulk WHERE id = $1", &[&777i64])
            .await
            .expect("point lookup");
        assert_eq!(row.get::<_, String>(0), "row 777");
        assert_eq!(row.get::<_, f64>(1), 194.25);
        assert_eq!(
            simple_scalar(&client, "SELECT count(*) FROM bulk")
                .await
                .as_deref(),
            Some("1000")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_connections_insert_their_own_rows() {
    const CONNECTIONS: i64 = 20;
    const ROWS_EACH: i64 = 50;
    let server = TestServer::start().await;
    timed("20 concurrent connections", TEST_TIMEOUT, async {
        let setup = server.client().await;
        simple(&setup, "CREATE NAMESPACE conc").await;
        simple(
            &setup,
            "CREATE TABLE conc.t (id BIGINT PRIMARY KEY, worker INT NOT NULL, v TEXT)",
        )
        .await;

        let mut tasks = Vec::new();
        for worker in 0..CONNECTIONS {
            let port = server.port();
            tasks.push(tokio::spawn(async move {
                let client = common::connect(port).await?;
                let fail =
                    |what: &str, e: tokio_postgres::Error| format!("worker {worker}: {what}: {e}");
                let insert = client
                    .prepare("INSERT INTO conc.t (id, worker, v) VALUES ($1, $2, $3)")
                    .await
                    .map_err(|e| fail("prepare", e))?;
                // Half the rows one by one through the extended protocol ...
                for i in 0..ROWS_EACH / 2 {
                    let id = worker * 1000 + i;
                    client
                        .execute(&insert, &[&id, &(worker as i32), &format!("w{worker}-{i}")])
                        .await
                        .map_err(|e| fail("insert", e))?;
                }
                // ... and half as one multi-row simple-protocol INSERT.
                let values: Vec<String> = (ROWS_EACH / 2..ROWS_EACH)
                    .map(|i| format!("({}, {worker}, 'w{worker}-{i}')", worker * 1000 + i))
                    .collect();
                client
                    .simple_query(&format!(
                        "INSERT INTO conc.t (id, worker, v) VALUES {}",
                        values.join(", ")
                    ))
                    .await
                    .map_err(|e| fail("multi-row insert", e))?;
                // Each connection sees all of its own rows.
                let row = client
                    .query_one(
                        "SELECT count(*) FROM conc.t WHERE worker = $1",
                        &[&(worker as i32)],
                    )
                    .await
                    .map_err(|e| fail("count", e))?;
                let own: i64 = row.get(0);
                if own != ROWS_EACH {
                    return Err(format!(
                        "worker {worker} sees {own} of its {ROWS_EACH} rows"
                    ));
                }
                Ok::<(), String>(())
            }));
        }
        let mut errors = Vec::new();
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("worker task panicked: {e}")),
            }
        }
        assert!(
            errors.is_empty(),
            "concurrent workers failed:\n{}",
            errors.join("\n")
        );

        let row = setup
            .query_one(
                "SELECT count(*), count(DISTINCT id), count(DISTINCT worker) FROM conc.t",
                &[],
            )
            .await
            .expect("totals");
        assert_eq!(row.get::<_, i64>(0), CONNECTIONS * ROWS_EACH);
        assert_eq!(row.get::<_, i64>(1), CONNECTIONS * ROWS_EACH);
        assert_eq!(row.get::<_, i64>(2), CONNECTIONS);
        let per_worker = setup
            .query(
                "SELECT worker, count(*) FROM conc.t GROUP BY worker ORDER BY worker",
                &[],
            )
            .await
            .expect("per-worker counts");
        assert_eq!(per_worker.len() as i64, CONNECTIONS);
        for (i, row) in per_worker.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), i as i32);
            assert_eq!(row.get::<_, i64>(1), ROWS_EACH, "rows of worker {i}");
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// Robustness: garbage on the socket, clients vanishing, cancel requests
// ---------------------------------------------------------------------------

/// A v3 StartupMessage for user root / database strata.
fn startup_packet() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for s in ["user", "root", "database", "strata"] {
        body.extend_from_slice(s.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// A simple-protocol Query message.
fn query_message(sql: &str) -> Vec<u8> {
    let mut packet = vec![b'Q'];
    packet.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    packet.extend_from_slice(sql.as_bytes());
    packet.push(0);
    packet
}

/// Reads from `stream` until EOF, an error, `limit` bytes or `wait`,
/// whichever comes first. Returns what was read.
async fn read_for(stream: &mut TcpStream, wait: Duration, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    while out.len() < limit {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Opens a raw socket, writes `bytes`, reads whatever comes back for a while,
/// and closes it.
async fn send_raw(port: u16, bytes: &[u8]) {
    let mut stream = timed(
        "raw connect",
        Duration::from_secs(10),
        TcpStream::connect(("127.0.0.1", port)),
    )
    .await
    .expect("raw TCP connect");
    // The server may close the socket before everything is written; that is fine.
    let _ = stream.write_all(bytes).await;
    let _ = read_for(&mut stream, Duration::from_secs(2), 1 << 20).await;
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_do_not_kill_the_server() {
    let mut server = TestServer::start().await;
    let port = server.port();
    timed("garbage clients", TEST_TIMEOUT, async {
        // A well-behaved client connected before the garbage arrives.
        let bystander = server.client().await;
        simple(&bystander, "CREATE TABLE g (id BIGINT PRIMARY KEY)").await;
        simple(&bystander, "INSERT INTO g VALUES (1)").await;

        // A client that sends half a length word and then stalls, held open
        // for the whole test: it must not block anybody else.
        let mut staller = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect staller");
        staller
            .write_all(&[0, 0])
            .await
            .expect("write partial length");

        let mut startup_then_junk = startup_packet();
        startup_then_junk.extend_from_slice(&[b'!', 0, 0, 0, 8, 1, 2, 3, 4]); // unknown message type
        let mut startup_then_huge = startup_packet();
        startup_then_huge.extend_from_slice(&[b'Q', 0x7f, 0xff, 0xff, 0xff, b'S', b'E']); // absurd length
        let mut startup_then_bad_len = startup_packet();
        startup_then_bad_len.extend_from_slice(&[b'Q', 0, 0, 0, 2]); // length smaller than itself

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "HTTP request",
                b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            ),
            (
                "huge startup length",
                vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
            ),
            ("tiny startup length", vec![0, 0, 0, 1]),
            (
                "unknown protocol version",
                vec![0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78],
            ),
            ("truncated startup", startup_packet()[..10].to_vec()),
            ("random bytes", junk(4096, 0x9e37_79b9_7f4a_7c15)),
            ("more random bytes", junk(65_536, 42)),
            ("startup then unknown message", startup_then_junk),
            ("startup then huge message length", startup_then_huge),
            ("startup then bad message length", startup_then_bad_len),
            ("connect and close", Vec::new()),
        ];
        for (what, bytes) in &cases {
            send_raw(port, bytes).await;
            let client = server
                .try_client()
                .await
                .unwrap_or_else(|e| panic!("after {what}: a new connection failed: {e}"));
            let messages = client
                .simple_query("SELECT count(*) FROM g")
                .await
                .unwrap_or_else(|e| panic!("after {what}: query failed: {e}"));
            assert_eq!(
                simple_rows(&messages),
                vec![vec![Some("1".to_string())]],
                "after {what}"
            );
        }

        // The earlier connection is unaffected, in both protocols.
        assert_eq!(scalar_i64(&bystander, "SELECT count(*) FROM g").await, 1);
        assert_eq!(
            simple_scalar(&bystander, "SELECT count(*) FROM g")
                .await
                .as_deref(),
            Some("1")
        );
        drop(staller);
    })
    .await;
    assert!(
        server.is_running(),
        "the server process died\n{}",
        server.log_tail()
    );
}

/// A query that keeps the server busy for a long time (tens of seconds in a
/// debug build): a 400-million-row nested-loop join over `generate_series`
/// (its output column is `value` in DataFusion) with a filter, counted.
const LONG_QUERY: &str = "SELECT count(*) FROM generate_series(1, 20000) AS a \
     CROSS JOIN generate_series(1, 20000) AS b \
     WHERE (a.value * 7 + b.value) % 1000003 = 1";

/// Like [`LONG_QUERY`] but a quarter of the work (seconds in a debug build),
/// so a server that ignores cancel requests still finishes the test quickly.
const CANCEL_QUERY: &str = "SELECT count(*) FROM generate_series(1, 10000) AS a \
     CROSS JOIN generate_series(1, 10000) AS b \
     WHERE (a.value * 7 + b.value) % 1000003 = 1";

/// While one client runs a long query, another can still connect and run a
/// trivial query promptly: executing a query must not starve the server's
/// connection handling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stays_responsive_during_a_long_query() {
    let server = TestServer::start().await;
    timed("responsiveness during a long query", TEST_TIMEOUT, async {
        let busy = server.client().await;
        let long = tokio::spawn(async move { busy.simple_query(LONG_QUERY).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(300)).await;

        let started = std::time::Instant::now();
        let other = server
            .try_client()
            .await
            .unwrap_or_else(|e| panic!("connecting while a long query runs: {e}"));
        let value = timed(
            "SELECT 1 on a second connection while a long query runs",
            Duration::from_secs(10),
            simple_scalar(&other, "SELECT 1"),
        )
        .await;
        assert_eq!(value.as_deref(), Some("1"));
        eprintln!(
            "connect + SELECT 1 took {:?} while a long query ran",
            started.elapsed()
        );
        // Not waited for: the long query's outcome is not what this tests.
        long.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_vanishing_mid_query_do_not_hurt_the_server() {
    let mut server = TestServer::start().await;
    let port = server.port();
    timed("vanishing clients", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(&client, "CREATE TABLE v (id BIGINT PRIMARY KEY, s TEXT)").await;
        simple(&client, "INSERT INTO v VALUES (1, 'x'), (2, 'y')").await;

        // 1. A driver connection torn down (socket dropped) while a long
        //    query runs.
        let (doomed, connection_task) = common::connect_with_handle(port).await.expect("connect");
        let running =
            tokio::spawn(async move { doomed.simple_query(CANCEL_QUERY).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(300)).await;
        connection_task.abort();
        let _ = timed(
            "query task after its socket closed",
            Duration::from_secs(30),
            running,
        )
        .await;

        // 2. A raw client that sends a query and hangs up immediately.
        let mut raw = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("raw connect");
        raw.write_all(&startup_packet()).await.expect("startup");
        let _ = read_for(&mut raw, Duration::from_millis(500), 1 << 16).await;
        raw.write_all(&query_message(CANCEL_QUERY))
            .await
            .expect("query");
        drop(raw);

        // Whether queries of vanished clients keep running is not this
        // test's business (see server_stays_responsive_during_a_long_query):
        // wait until the server serves again before the next step.
        wait_until_serving(&server, Duration::from_secs(120)).await;

        // 3. A client that stops reading while a large result streams, then
        //    vanishes.
        let (reader, reader_task) = common::connect_with_handle(port).await.expect("connect");
        let stream = reader
            .query_raw(
                "SELECT value, repeat('x', 100) FROM generate_series(1, 500000)",
                Vec::<i64>::new(),
            )
            .await;
        if let Ok(stream) = stream {
            use futures::StreamExt;
            let mut stream = Box::pin(stream);
            for _ in 0..10 {
                if stream.next().await.is_none() {
                    break;
                }
            }
        }
        reader_task.abort();
        drop(reader);

        // 4. A simple-protocol client dropped (not aborted) mid-query.
        let doomed = server.client().await;
        let pending =
            tokio::spawn(async move { doomed.simple_query(CANCEL_QUERY).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        pending.abort();

        // The server keeps serving: old and new connections, both protocols.
        wait_until_serving(&server, Duration::from_secs(120)).await;
        let fresh = server.client().await;
        assert_eq!(scalar_i64(&fresh, "SELECT count(*) FROM v").await, 2);
        assert_eq!(
            simple_scalar(&client, "SELECT s FROM v WHERE id = 2")
                .await
                .as_deref(),
            Some("y")
        );
        simple(&fresh, "INSERT INTO v VALUES (3, 'z')").await;
        assert_eq!(scalar_i64(&client, "SELECT count(*) FROM v").await, 3);
    })
    .await;
    assert!(
        server.is_running(),
        "the server process died\n{}",
        server.log_tail()
    );
}

/// Retries connect + `SELECT 1` until it succeeds or `limit` passes.
async fn wait_until_serving(server: &TestServer, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let attempt = async {
            let client = server.try_client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        };
        match tokio::time::timeout(Duration::from_secs(15), attempt).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) if tokio::time::Instant::now() >= deadline => {
                panic!("server not serving after {limit:?}: {e}")
            }
            Err(_) if tokio::time::Instant::now() >= deadline => {
                panic!("server not serving after {limit:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_cancels_a_running_query() {
    let mut server = TestServer::start().await;
    timed("cancel request", TEST_TIMEOUT, async {
        // Extended protocol, then simple protocol.
        for extended in [true, false] {
            let mode = if extended { "extended" } else { "simple" };
            let client = Arc::new(server.client().await);
            let token = client.cancel_token();
            let runner = Arc::clone(&client);
            let query = tokio::spawn(async move {
                if extended {
                    runner.query(CANCEL_QUERY, &[]).await.map(|rows| rows.len())
                } else {
                    runner
                        .simple_query(CANCEL_QUERY)
                        .await
                        .map(|m| simple_rows(&m).len())
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            timed(
                "CancelRequest round trip",
                Duration::from_secs(10),
                token.cancel_query(NoTls),
            )
            .await
            .unwrap_or_else(|e| panic!("{mode}: sending CancelRequest failed: {e}"));
            let cancelled_at = std::time::Instant::now();

            // The query runs for many seconds in a debug build; the cancel
            // arrives 300 ms in, so it must end the query promptly with 57014.
            let outcome = timed("cancelled query to finish", Duration::from_secs(120), query)
                .await
                .expect("query task panicked");
            let waited = cancelled_at.elapsed();
            match outcome {
                Ok(rows) => panic!(
                    "{mode}: the query completed ({rows} rows) {waited:?} after the CancelRequest"
                ),
                Err(e) => assert_eq!(
                    sqlstate(&e).as_deref(),
                    Some("57014"),
                    "{mode}: a cancelled query must fail with query_canceled, got: {e}"
                ),
            }
            assert!(
                waited < Duration::from_secs(5),
                "{mode}: cancelling took {waited:?}"
            );

            // The connection is usable afterwards, and a later query is not
            // hit by the (already handled) cancel.
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                scalar_i64(&client, "SELECT CAST(1 AS BIGINT)").await,
                1,
                "{mode}: after cancel"
            );
            assert_eq!(
                simple_scalar(&client, "SELECT 2").await.as_deref(),
                Some("2"),
                "{mode}: after cancel"
            );
        }

        // A cancel for an idle connection is harmless.
        let client = server.client().await;
        timed(
            "idle CancelRequest",
            Duration::from_secs(10),
            client.cancel_token().cancel_query(NoTls),
        )
        .await
        .expect("cancel on an idle connection");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            simple_scalar(&client, "SELECT 3").await.as_deref(),
            Some("3")
        );
    })
    .await;
    assert!(
        server.is_running(),
        "the server process died\n{}",
        server.log_tail()
    );
}

// ---------------------------------------------------------------------------
// What client drivers see: text-format parameters, column types, command
// tags, failed logins
// ---------------------------------------------------------------------------

/// A parameter sent in text format, as node-postgres and psycopg send them.
#[derive(Debug)]
struct TextParam(&'static str);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }

    to_sql_checked!();
}

/// Arrays sent as text parameters (`{1,2,NULL}`), in Postgres' array syntax:
/// quoted elements, backslash escapes, NULL, the empty array.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_format_array_parameters() {
    let server = TestServer::start().await;
    timed("text array parameters", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(
            &client,
            "CREATE TABLE arr (id BIGINT PRIMARY KEY, ai INT[], ai8 BIGINT[], af8 DOUBLE PRECISION[], ab BOOLEAN[], at TEXT[])",
        )
        .await;
        // Parsed without parameter types, as node-postgres sends them (OID 0).
        let insert = client
            .prepare("INSERT INTO arr VALUES ($1, $2, $3, $4, $5, $6)")
            .await
            .expect("prepare insert");
        let rows: [(i64, [&'static str; 5]); 4] = [
            (1, ["{1,2,NULL}", "{9007199254740993,-1}", "{1.5,-2.25}", "{t,f}", r#"{a,"b c",""}"#]),
            (2, ["{}", "{NULL}", "{}", "{NULL,t}", r#"{"x\"y","back\\slash","NULL"," sp ",NULL,"{}","a,b"}"#]),
            (3, [r#"{"1","2",NULL}"#, r#"{"-5"}"#, r#"{"1e3", 0.5 }"#, r#"{"true","false"}"#, "{}"]),
            (4, ["{ 7 }", "{}", "{NaN}", "{}", "{NULL}"]),
        ];
        for (id, [ai, ai8, af8, ab, at]) in rows {
            let (ai, ai8, af8, ab, at) =
                (TextParam(ai), TextParam(ai8), TextParam(af8), TextParam(ab), TextParam(at));
            client
                .execute(&insert, &[&id, &ai, &ai8, &af8, &ab, &at])
                .await
                .unwrap_or_else(|e| panic!("insert {id}: {}", describe(&e)));
        }
        type Arrays = (
            Vec<Option<i32>>,
            Vec<Option<i64>>,
            Vec<Option<f64>>,
            Vec<Option<bool>>,
            Vec<Option<String>>,
        );
        let got: Vec<Arrays> = client
            .query("SELECT ai, ai8, af8, ab, at FROM arr ORDER BY id", &[])
            .await
            .expect("select arrays")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect();
        let s = |v: &[Option<&str>]| v.iter().map(|x| x.map(String::from)).collect::<Vec<_>>();
        assert_eq!(got[0].0, vec![Some(1), Some(2), None]);
        assert_eq!(got[0].1, vec![Some(9007199254740993), Some(-1)]);
        assert_eq!(got[0].2, vec![Some(1.5), Some(-2.25)]);
        assert_eq!(got[0].3, vec![Some(true), Some(false)]);
        assert_eq!(got[0].4, s(&[Some("a"), Some("b c"), Some("")]));
        assert_eq!(got[1].0, Vec::<Option<i32>>::new());
        assert_eq!(got[1].1, vec![None]);
        assert_eq!(got[1].3, vec![None, Some(true)]);
        assert_eq!(
            got[1].4,
            s(&[Some("x\"y"), Some("back\\slash"), Some("NULL"), Some(" sp "), None, Some("{}"), Some("a,b")])
        );
        assert_eq!(got[2].0, vec![Some(1), Some(2), None]);
        assert_eq!(got[2].1, vec![Some(-5)]);
        assert_eq!(got[2].2, vec![Some(1000.0), Some(0.5)]);
        assert_eq!(got[2].3, vec![Some(true), Some(false)]);
        assert_eq!(got[3].0, vec![Some(7)]);
        assert!(got[3].2.first().copied().flatten().is_some_and(f64::is_nan));
        assert_eq!(got[3].4, vec![None]);

        // The same text in a WHERE clause's comparison with an array column.
        let n: i64 = client
            .query_one("SELECT count(*) FROM arr WHERE ai = $1", &[&TextParam("{1,2,NULL}")])
            .await
            .map(|r| r.get(0))
            .unwrap_or_else(|e| panic!("array parameter in WHERE: {}", describe(&e)));
        assert_eq!(n, 2);

        for (bad, why) in [
            ("{1,2", "unterminated"),
            ("{1,,2}", "empty element"),
            ("{x}", "not an integer"),
            ("{{1},{2}}", "nested"),
        ] {
            let e = client
                .execute(&insert, &[&9i64, &TextParam(bad), &TextParam("{}"), &TextParam("{}"), &TextParam("{}"), &TextParam("{}")])
                .await
                .expect_err(why);
            assert_eq!(sqlstate(&e).as_deref(), Some("22P02"), "{why}: {}", describe(&e));
        }
    })
    .await;
}

/// Column and literal types in RowDescription as Postgres reports them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn described_types_match_postgres() {
    let server = TestServer::start().await;
    timed("described types", TEST_TIMEOUT, async {
        let client = server.client().await;
        simple(
            &client,
            "CREATE TABLE vt (id BIGINT PRIMARY KEY, vc VARCHAR(20), v VARCHAR, t TEXT)",
        )
        .await;
        simple(&client, "INSERT INTO vt VALUES (1, 'abc', 'd', 'e')").await;
        let types = |sql: &'static str| {
            let client = &client;
            async move {
                client
                    .prepare(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)))
                    .columns()
                    .iter()
                    .map(|c| c.type_().clone())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            types("SELECT id, vc, v, t FROM vt").await,
            vec![Type::INT8, Type::VARCHAR, Type::VARCHAR, Type::TEXT]
        );
        let row = client
            .query_one("SELECT vc, v FROM vt", &[])
            .await
            .expect("select varchar");
        assert_eq!(row.get::<_, String>(0), "abc");
        assert_eq!(row.get::<_, String>(1), "d");
        // An integer literal that fits is int4, as in Postgres; a larger one int8.
        assert_eq!(types("SELECT 1").await, vec![Type::INT4]);
        assert_eq!(
            types("SELECT -7 AS n, 4294967296").await,
            vec![Type::INT4, Type::INT8]
        );
        let row = client.query_one("SELECT 1", &[]).await.expect("SELECT 1");
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(
            simple_scalar(&client, "SELECT 1").await.as_deref(),
            Some("1")
        );
        // Arithmetic on literals keeps 64 bits (no int4 overflow).
        assert_eq!(
            scalar_i64(&client, "SELECT 100000 * 100000").await,
            10_000_000_000
        );
    })
    .await;
}

/// The Postgres messages of a raw byte stream: (type, body).
fn backend_messages(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = vec![];
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if len < 4 || bytes.len() < 1 + len {
            break;
        }
        out.push((bytes[0], bytes[5..1 + len].to_vec()));
        bytes = &bytes[1 + len..];
    }
    out
}

/// The fields of an ErrorResponse body, by their one-letter codes.
fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// CREATE/DROP SCHEMA complete with Postgres' tags; the NAMESPACE spellings with their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_statements_have_postgres_command_tags() {
    let server = TestServer::start().await;
    timed("schema command tags", TEST_TIMEOUT, async {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
            .await
            .expect("connect");
        stream.write_all(&startup_packet()).await.expect("startup");
        let mut seen = Vec::new();
        while !backend_messages(&seen).iter().any(|(t, _)| *t == b'Z') {
            let more = read_for(&mut stream, Duration::from_secs(10), 1).await;
            assert!(!more.is_empty(), "no ReadyForQuery after startup");
            seen.extend(more);
        }
        stream
            .write_all(&query_message(
                "CREATE SCHEMA s1; DROP SCHEMA s1; CREATE NAMESPACE n1; DROP NAMESPACE n1",
            ))
            .await
            .expect("query");
        let mut seen = Vec::new();
        while !backend_messages(&seen).iter().any(|(t, _)| *t == b'Z') {
            let more = read_for(&mut stream, Duration::from_secs(10), 1).await;
            assert!(!more.is_empty(), "no ReadyForQuery after the query");
            seen.extend(more);
        }
        let tags: Vec<String> = backend_messages(&seen)
            .into_iter()
            .filter(|(t, _)| *t == b'C')
            .map(|(_, body)| {
                String::from_utf8_lossy(&body)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect();
        assert_eq!(
            tags,
            [
                "CREATE SCHEMA",
                "DROP SCHEMA",
                "CREATE NAMESPACE",
                "DROP NAMESPACE"
            ]
        );
    })
    .await;
}

/// A failed login ends with a FATAL ErrorResponse and the server closing the
/// connection, with no ReadyForQuery (asyncpg fails on one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_is_fatal_and_closes_the_connection() {
    let server = TestServer::start_with(common::ServerOptions {
        config: "[auth]\nallow_cleartext = true".into(),
        ..Default::default()
    })
    .await;
    timed("failed login", TEST_TIMEOUT, async {
        let root = server.client().await;
        simple(&root, "CREATE USER alice PASSWORD 'alice-pw'").await;
        for user in ["alice", "ghost"] {
            let mut body = 196_608u32.to_be_bytes().to_vec();
            for s in ["user", user, "database", "strata"] {
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
            body.push(0);
            let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
            startup.extend_from_slice(&body);
            let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .expect("connect");
            stream.write_all(&startup).await.expect("startup");
            // AuthenticationCleartextPassword: 'R', length 8, code 3.
            let mut ask = [0u8; 9];
            stream.read_exact(&mut ask).await.expect("auth request");
            assert_eq!(
                ask,
                [b'R', 0, 0, 0, 8, 0, 0, 0, 3],
                "{user}: cleartext request"
            );
            let password = b"wrong\0";
            let mut msg = vec![b'p'];
            msg.extend_from_slice(&((password.len() + 4) as u32).to_be_bytes());
            msg.extend_from_slice(password);
            stream.write_all(&msg).await.expect("password");
            // Everything until the server closes the connection.
            let mut rest = Vec::new();
            let closed = timed(
                "the server closing the connection",
                Duration::from_secs(10),
                stream.read_to_end(&mut rest),
            )
            .await;
            assert!(closed.is_ok(), "{user}: {closed:?}");
            let messages = backend_messages(&rest);
            let types: Vec<char> = messages.iter().map(|(t, _)| *t as char).collect();
            assert_eq!(types, ['E'], "{user}: messages after the password");
            let fields = error_fields(&messages[0].1);
            assert!(
                fields.contains(&(b'S', "FATAL".into())),
                "{user}: {fields:?}"
            );
            assert!(
                fields.contains(&(b'C', "28P01".into())),
                "{user}: {fields:?}"
            );
        }
        // The server is fine and a right password still works.
        let alice = server.client_as("alice", Some("alice-pw")).await;
        assert_eq!(
            simple_scalar(&alice, "SELECT current_user")
                .await
                .as_deref(),
            Some("alice")
        );
    })
    .await;
}

//! pg_catalog as drivers read it: asyncpg's type introspection (typed `oid[]`
//! parameter, rows for an array and its element), `= ANY($1)` parameters typed
//! as arrays, `pg_attribute` carrying each column's Postgres type, primary keys
//! in `pg_index`/`pg_constraint`/`pg_class` (pgjdbc's `getPrimaryKeys`, psql's
//! `\d` index list), owners naming the system user, `current_setting('jit')`,
//! and RowDescription naming each plain column's table (JDBC getTableName).

mod common;

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::types::Type;

use common::{TestServer, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The catalog SQL a client sends, as captured in tests/clients/NOTES-*.sql:
/// the text from the line starting with `start` through the line ending with `end`.
fn captured(file: &str, start: &str, end: &str) -> String {
    let path = format!("{}/../../tests/clients/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {path}"));
    let rest = &text[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("{end} not in {path}"));
    rest[..to + end.len()].to_string()
}

async fn setup(c: &Client) {
    c.batch_execute(
        "CREATE NAMESPACE cat;
         CREATE TABLE cat.t (id BIGINT PRIMARY KEY, vc VARCHAR(20), u UUID, j JSON, jb JSONB,
             num NUMERIC(10,2), ai8 BIGINT[], af8 DOUBLE PRECISION[], ab BOOLEAN[], at TEXT[]);
         INSERT INTO cat.t (id) VALUES (1), (2), (3)",
    )
    .await
    .expect("setup");
}

#[tokio::test]
async fn asyncpg_type_introspection() {
    timed("asyncpg introspection", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        let sql = captured(
            "NOTES-asyncpg-queries.sql",
            "WITH RECURSIVE typeinfo_tree",
            "depth DESC;",
        );
        let st = c.prepare(&sql).await.expect("prepare introspection");
        // asyncpg has built-in codecs only for oid[] and text[]: anything else
        // here would make it introspect again, without end.
        assert_eq!(st.params(), &[Type::OID_ARRAY]);
        let types: Vec<(&str, &Type)> =
            st.columns().iter().map(|c| (c.name(), c.type_())).collect();
        let attrtypoids = types.iter().find(|(n, _)| *n == "attrtypoids").map(|t| t.1);
        assert_eq!(attrtypoids, Some(&Type::TEXT_ARRAY));
        assert_eq!(types.first(), Some(&("oid", &Type::OID)));

        let rows = c
            .query(&st, &[&vec![1016u32, 1000]])
            .await
            .expect("run introspection");
        let got: Vec<(u32, String, u32, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r.get("oid"),
                    r.get("name"),
                    r.get("elemtype"),
                    r.get("depth"),
                )
            })
            .collect();
        assert_eq!(got.len(), 4, "{got:?}");
        // Elements first (deepest), then the arrays.
        assert!(got[..2].contains(&(20, "int8".into(), 0, 1)), "{got:?}");
        assert!(got[..2].contains(&(16, "bool".into(), 0, 1)), "{got:?}");
        assert!(got[2..].contains(&(1016, "_int8".into(), 20, 0)), "{got:?}");
        assert!(got[2..].contains(&(1000, "_bool".into(), 16, 0)), "{got:?}");
        let delim: Option<String> = rows[3].get("elemdelim");
        assert_eq!(delim.as_deref(), Some(","));
    })
    .await;
}

#[tokio::test]
async fn jit_setting_reads_inside_a_block() {
    timed("current_setting('jit')", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        // asyncpg reads it before each type lookup, inside the caller's block.
        c.batch_execute("BEGIN").await.expect("begin");
        let row = c
            .query_one("SELECT current_setting('jit')", &[])
            .await
            .expect("current_setting('jit')");
        assert_eq!(row.get::<_, String>(0), "off");
        c.batch_execute("COMMIT").await.expect("commit");
    })
    .await;
}

#[tokio::test]
async fn any_array_parameter() {
    timed("= ANY($1)", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        setup(&c).await;
        let st = c
            .prepare("SELECT id FROM cat.t WHERE id = ANY($1) ORDER BY id")
            .await
            .expect("prepare");
        assert_eq!(st.params(), &[Type::INT8_ARRAY]);
        let ids: Vec<i64> = c
            .query(&st, &[&vec![1i64, 3, 7]])
            .await
            .expect("binary int8[]")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, vec![1, 3]);
        // Declared by the client as int2[] (as psycopg does for small ints).
        let st = c
            .prepare_typed(
                "SELECT id FROM cat.t WHERE id = ANY($1) ORDER BY id",
                &[Type::INT2_ARRAY],
            )
            .await
            .expect("prepare typed");
        let ids: Vec<i64> = c
            .query(&st, &[&vec![2i16]])
            .await
            .expect("binary int2[]")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(ids, vec![2]);
    })
    .await;
}

#[tokio::test]
async fn attribute_types_and_primary_keys() {
    timed("pg_attribute and primary keys", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let c = server.client().await;
        setup(&c).await;
        let rows = c
            .query(
                "SELECT a.attname, t.typname, pg_catalog.format_type(a.atttypid, a.atttypmod)
                 FROM pg_catalog.pg_attribute a
                 JOIN pg_catalog.pg_class c ON a.attrelid = c.oid
                 JOIN pg_catalog.pg_namespace n ON c.relnamespace = n.oid
                 JOIN pg_catalog.pg_type t ON a.atttypid = t.oid
                 WHERE n.nspname = 'cat' AND c.relname = 't' ORDER BY a.attnum",
                &[],
            )
            .await
            .expect("pg_attribute");
        let got: Vec<(String, String, String)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let want = [
            ("id", "int8", "bigint"),
            ("vc", "varchar", "character varying(20)"),
            ("u", "uuid", "uuid"),
            ("j", "json", "json"),
            ("jb", "jsonb", "jsonb"),
            ("num", "numeric", "numeric(10,2)"),
            ("ai8", "_int8", "bigint[]"),
            ("af8", "_float8", "double precision[]"),
            ("ab", "_bool", "boolean[]"),
            ("at", "_text", "text[]"),
        ];
        let want: Vec<(String, String, String)> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(got, want);

        // pgjdbc's DatabaseMetaData.getPrimaryKeys.
        let sql = captured(
            "NOTES-pgjdbc-queries.sql",
            "SELECT        result.TABLE_CAT",
            "result.key_seq;",
        )
        .replace("strata_clients_pgjdbc", "cat")
        .replace("'types'", "'t'");
        let rows = c.query(sql.as_str(), &[]).await.expect("getPrimaryKeys");
        let got: Vec<(String, String, i32, String)> = rows
            .iter()
            .map(|r| (r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
        assert_eq!(got, vec![("t".into(), "id".into(), 1, "t_pkey".into())]);

        // psql's \d index list.
        let rows = c
            .query(
                "SELECT c2.relname, i.indisprimary, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),
                        con.contype, c.relhasindex
                 FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
                   LEFT JOIN pg_catalog.pg_constraint con
                     ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
                 WHERE c.relname = 't' AND c.oid = i.indrelid AND i.indexrelid = c2.oid",
                &[],
            )
            .await
            .expect("index list");
        assert_eq!(rows.len(), 1);
        let def: String = rows[0].get(2);
        assert_eq!(rows[0].get::<_, String>(0), "t_pkey");
        assert!(rows[0].get::<_, bool>(1));
        assert!(def.ends_with(" USING btree (id)"), "{def}");
        assert_eq!(rows[0].get::<_, String>(3), "p");
        assert!(rows[0].get::<_, bool>(4));

        // Owners are the system user (the one the test server logs in as).
        let row = c
            .query_one(
                "SELECT pg_catalog.pg_get_userbyid(n.nspowner) FROM pg_catalog.pg_namespace n
                 WHERE n.nspname = 'cat'",
                &[],
            )
            .await
            .expect("owner");
        assert_eq!(row.get::<_, String>(0), "root");
    })
    .await;
}

/// RowDescription names the table and column number of a result column that
/// is a table's column as is (JDBC's getTableName looks them up in pg_class
/// and pg_attribute), for planned queries and primary-key reads alike, and
/// the OID is the one pg_class reports for the table, across a restart.
#[tokio::test]
async fn result_columns_name_their_table() {
    timed("result column sources", TEST_TIMEOUT, async {
        let mut server = TestServer::start().await;
        let c = server.client().await;
        c.batch_execute(
            "CREATE NAMESPACE src;
             CREATE TABLE src.t (id BIGINT PRIMARY KEY, body TEXT, n INT)",
        )
        .await
        .expect("setup");
        let table_oid = |rows: Vec<tokio_postgres::Row>| -> u32 { rows[0].get::<_, u32>(0) };
        let oid = table_oid(
            c.query(
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = 't'",
                &[],
            )
            .await
            .expect("pg_class"),
        );
        for sql in [
            "SELECT n, body, id + 1 FROM src.t WHERE n > $1",
            "SELECT n, body, id + 1 FROM src.t WHERE id = $1",
        ] {
            let stmt = c.prepare(sql).await.expect("prepare");
            let cols = stmt.columns();
            assert_eq!(cols[0].table_oid(), Some(oid), "{sql}");
            assert_eq!(cols[0].column_id(), Some(3), "{sql}");
            assert_eq!(cols[1].column_id(), Some(2), "{sql}");
            assert_eq!(
                cols[2].table_oid(),
                None,
                "{sql}: an expression has no table"
            );
        }
        let attname: String = c
            .query_one(
                "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attnum = 3",
                &[&(oid as i32)],
            )
            .await
            .expect("pg_attribute")
            .get(0);
        assert_eq!(attname, "n");
        drop(c);
        server.restart().await;
        let c = server.client().await;
        let again = table_oid(
            c.query(
                "SELECT oid FROM pg_catalog.pg_class WHERE relname = 't'",
                &[],
            )
            .await
            .expect("pg_class"),
        );
        assert_eq!(again, oid, "a table keeps its OID");
    })
    .await;
}

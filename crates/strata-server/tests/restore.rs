//! What pg_dump's scripts need to load back into Strata: a table created
//! without a key (keyed by a generated `_rowid`), loaded, then given its key
//! by `ALTER TABLE ONLY … ADD CONSTRAINT … PRIMARY KEY`; `LOCK TABLE`,
//! `ALTER … OWNER TO` and `FROM ONLY` accepted with Postgres' checks.

mod common;

use common::{TestServer, sqlstate, text_rows};
use tokio_postgres::Client;

async fn code_of(c: &Client, sql: &str) -> Option<String> {
    match c.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => sqlstate(&e),
    }
}

#[tokio::test]
async fn a_keyless_table_takes_its_key_after_its_rows() {
    let mut server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute(
        "CREATE NAMESPACE r;
         CREATE TABLE r.t (id INT NOT NULL, name TEXT DEFAULT 'x', v DOUBLE PRECISION);
         INSERT INTO r.t (id, name, v) VALUES (1, 'a', 1.5), (2, NULL, 'NaN'), (3, 'c', '-Infinity');
         INSERT INTO r.t (id) VALUES (4);",
    )
    .await
    .unwrap();
    // Keyed by the generated _rowid until it has a key; FLUSH leaves it hot.
    c.batch_execute("FLUSH TABLE r.t").await.unwrap();
    let keyed = "SELECT column_name FROM information_schema.columns \
                 WHERE table_schema = 'r' AND table_name = 't' ORDER BY ordinal_position";
    assert_eq!(
        text_rows(&c, keyed).await.concat(),
        vec!["id", "name", "v", "_rowid"]
    );
    // A duplicate, a NULL or a second key leave the table as it was.
    c.batch_execute(
        "CREATE TABLE r.d (a INT, b TEXT); INSERT INTO r.d VALUES (1, 'x'), (1, 'y'), (NULL, 'z')",
    )
    .await
    .unwrap();
    assert_eq!(
        code_of(&c, "ALTER TABLE r.d ADD PRIMARY KEY (a)")
            .await
            .as_deref(),
        Some("23505")
    );
    c.batch_execute("DELETE FROM r.d WHERE b = 'y'")
        .await
        .unwrap();
    assert_eq!(
        code_of(&c, "ALTER TABLE r.d ADD PRIMARY KEY (a)")
            .await
            .as_deref(),
        Some("23502")
    );
    assert_eq!(
        text_rows(&c, "SELECT b FROM r.d ORDER BY b").await.concat(),
        vec!["x", "z"]
    );
    assert_eq!(
        code_of(&c, "ALTER TABLE r.t ADD PRIMARY KEY (nope)")
            .await
            .as_deref(),
        Some("42703")
    );
    assert_eq!(
        code_of(&c, "ALTER TABLE r.t ADD PRIMARY KEY (v)")
            .await
            .as_deref(),
        Some("42P16")
    );
    c.batch_execute("ALTER TABLE ONLY r.t ADD CONSTRAINT t_pkey PRIMARY KEY (id)")
        .await
        .unwrap();
    assert_eq!(
        code_of(&c, "ALTER TABLE r.t ADD PRIMARY KEY (name)")
            .await
            .as_deref(),
        Some("42P16")
    );
    assert_eq!(
        code_of(&c, "INSERT INTO r.t VALUES (2, 'dup', 0)")
            .await
            .as_deref(),
        Some("23505")
    );
    let all = "SELECT id, name, v FROM r.t ORDER BY id";
    let expected = vec![
        vec!["1", "a", "1.5"],
        vec!["2", "NULL", "NaN"],
        vec!["3", "c", "-Infinity"],
        vec!["4", "x", "NULL"],
    ];
    assert_eq!(text_rows(&c, all).await, expected);
    assert_eq!(text_rows(&c, keyed).await.concat(), vec!["id", "name", "v"]);
    // The key is the real one: point reads by it, updates, a flush, a restart.
    c.batch_execute("UPDATE r.t SET name = 'z' WHERE id = 4; FLUSH TABLE r.t")
        .await
        .unwrap();
    drop(c);
    server.restart().await;
    let c = server.client().await;
    assert_eq!(
        text_rows(&c, "SELECT name FROM r.t WHERE id = 4").await,
        vec![vec!["z"]]
    );
    assert_eq!(text_rows(&c, all).await.len(), 4);
}

#[tokio::test]
async fn a_block_writing_a_keyless_table_fails_when_it_gets_its_key() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    a.batch_execute("CREATE TABLE k (id INT, v TEXT); INSERT INTO k VALUES (1, 'one')")
        .await
        .unwrap();
    b.batch_execute("BEGIN; INSERT INTO k VALUES (2, 'two')")
        .await
        .unwrap();
    a.batch_execute("ALTER TABLE k ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    // The block's row was staged by the _rowid definition: it must not land.
    assert_eq!(code_of(&b, "COMMIT").await.as_deref(), Some("40001"));
    assert_eq!(
        text_rows(&a, "SELECT id, v FROM k ORDER BY id").await,
        vec![vec!["1", "one"]]
    );
    // A block that wrote to a key-less table cannot give it its key: DDL takes
    // effect at once, and the block's rows could not move with it.
    a.batch_execute("CREATE TABLE k2 (id INT, v TEXT); INSERT INTO k2 VALUES (1, 'one')")
        .await
        .unwrap();
    a.batch_execute("BEGIN; INSERT INTO k2 VALUES (2, 'two')")
        .await
        .unwrap();
    assert_eq!(
        code_of(&a, "ALTER TABLE k2 ADD PRIMARY KEY (id)")
            .await
            .as_deref(),
        Some("25001")
    );
    a.batch_execute("ROLLBACK; ALTER TABLE k2 ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    assert_eq!(
        text_rows(&a, "SELECT id, v FROM k2 ORDER BY id").await,
        vec![vec!["1", "one"]]
    );
}

#[tokio::test]
async fn copy_without_a_column_list_fills_a_keyless_tables_own_columns() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE kc (id INT, v TEXT)")
        .await
        .unwrap();
    let sink = c.copy_in("COPY kc FROM STDIN").await.unwrap();
    futures::pin_mut!(sink);
    use futures::SinkExt;
    sink.send(bytes::Bytes::from_static(b"1\tone\n2\t\\N\n"))
        .await
        .unwrap();
    assert_eq!(sink.finish().await.unwrap(), 2);
    assert_eq!(
        text_rows(&c, "SELECT id, v FROM kc ORDER BY id").await,
        vec![vec!["1", "one"], vec!["2", "NULL"]]
    );
}

#[tokio::test]
async fn lock_owner_to_and_only_are_accepted_with_postgres_checks() {
    let server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute("CREATE NAMESPACE o; CREATE TABLE o.t (id INT PRIMARY KEY); INSERT INTO o.t VALUES (1), (2)")
        .await
        .unwrap();
    assert_eq!(
        code_of(&c, "LOCK TABLE o.t IN ACCESS SHARE MODE")
            .await
            .as_deref(),
        Some("25P01")
    );
    c.batch_execute(
        "BEGIN; LOCK TABLE o.t IN ACCESS SHARE MODE; LOCK TABLE ONLY o.t, o.t IN ACCESS EXCLUSIVE MODE NOWAIT; COMMIT",
    )
    .await
    .unwrap();
    assert_eq!(
        code_of(&c, "BEGIN; LOCK TABLE o.nope").await.as_deref(),
        Some("42P01")
    );
    c.batch_execute("ROLLBACK").await.unwrap();
    c.batch_execute("ALTER SCHEMA o OWNER TO root; ALTER TABLE o.t OWNER TO root")
        .await
        .unwrap();
    assert_eq!(
        code_of(&c, "ALTER TABLE o.t OWNER TO nobody")
            .await
            .as_deref(),
        Some("42704")
    );
    assert_eq!(
        code_of(&c, "ALTER SCHEMA nope OWNER TO root")
            .await
            .as_deref(),
        Some("3F000")
    );
    assert_eq!(
        text_rows(&c, "SELECT count(*) FROM ONLY o.t").await,
        vec![vec!["2"]]
    );
    c.batch_execute("UPDATE ONLY o.t SET id = id WHERE id = 1; DELETE FROM ONLY o.t WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(text_rows(&c, "SELECT id FROM o.t").await, vec![vec!["1"]]);
}

#[tokio::test]
async fn a_keyless_user_table_is_rekeyed_per_user() {
    let mut server = TestServer::start().await;
    let c = server.client().await;
    c.batch_execute(
        "CREATE USER alice; CREATE USER bob;
         CREATE NAMESPACE u;
         CREATE USER TABLE u.notes (id INT NOT NULL, body TEXT);
         EXECUTE AS USER 'alice' (INSERT INTO u.notes VALUES (1, 'a1'), (2, 'a2'));
         EXECUTE AS USER 'bob' (INSERT INTO u.notes VALUES (1, 'b1'));",
    )
    .await
    .unwrap();
    // Keys are unique per user: the same id in two users' rows is no duplicate.
    c.batch_execute("ALTER TABLE u.notes ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    drop(c);
    server.restart().await;
    let c = server.client().await;
    let of =
        |user: &str| format!("EXECUTE AS USER '{user}' (SELECT id, body FROM u.notes ORDER BY id)");
    assert_eq!(
        text_rows(&c, &of("alice")).await,
        vec![vec!["1", "a1"], vec!["2", "a2"]]
    );
    assert_eq!(text_rows(&c, &of("bob")).await, vec![vec!["1", "b1"]]);
    // Each user's key is enforced under the new key.
    assert_eq!(
        code_of(
            &c,
            "EXECUTE AS USER 'bob' (INSERT INTO u.notes VALUES (1, 'again'))"
        )
        .await
        .as_deref(),
        Some("23505")
    );
}

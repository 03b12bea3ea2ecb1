//! Issue 13's reproductions, each as a test of its class: sizes a client
//! controls, definitions that change under a statement, privileges that change
//! under a session, and resources one client could take from the others.
//! After each hostile input the server must still answer.

mod common;

use common::raw::{self, RawConn};
use common::{ServerOptions, TestServer, connect_as, sqlstate};
use std::time::{Duration, Instant};
use tokio_postgres::Client;

async fn code_of(client: &Client, sql: &str) -> Option<String> {
    match client.batch_execute(sql).await {
        Ok(()) => None,
        Err(e) => sqlstate(&e),
    }
}

/// The single bigint a counting query returns.
async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn alive(server: &TestServer) {
    let c = server.client().await;
    let v: i64 = c.query_one("SELECT 41 + 1", &[]).await.unwrap().get(0);
    assert_eq!(v, 42, "the server answers after hostile input");
}

// --- sizes from outside ------------------------------------------------------

#[tokio::test]
async fn placeholder_numbers_are_bounded() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for sql in [
        "SELECT $100000000000",
        "SELECT $60000000",
        "SELECT $65536",
        "SELECT $0",
    ] {
        assert_eq!(code_of(&c, sql).await.as_deref(), Some("42P02"), "{sql}");
        let e = c.prepare(sql).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("42P02"), "prepare {sql}");
    }
    c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    for sql in [
        "INSERT INTO t VALUES ($99999999, 'x')",
        "UPDATE t SET v = $70000 WHERE id = 1",
        "DELETE FROM t WHERE id = $4000000000",
        "SELECT * FROM t WHERE id = $123456789",
        "PREPARE p AS SELECT $9999999",
    ] {
        assert_eq!(code_of(&c, sql).await.as_deref(), Some("42P02"), "{sql}");
    }
    // The highest legal number still works.
    let st = c.prepare("SELECT $65535::bigint IS NULL").await.unwrap();
    assert_eq!(st.params().len(), 65535);
    alive(&server).await;
}

#[tokio::test]
async fn execute_cannot_recurse() {
    let server = TestServer::start().await;
    let c = server.client().await;
    for sql in [
        "PREPARE p AS EXECUTE p",
        "PREPARE q AS PREPARE r AS SELECT 1",
        "PREPARE s AS DEALLOCATE ALL",
    ] {
        assert_eq!(code_of(&c, sql).await.as_deref(), Some("42601"), "{sql}");
    }
    assert_eq!(
        code_of(&c, "EXECUTE p").await.as_deref(),
        Some("26000"),
        "nothing was prepared"
    );
    alive(&server).await;
}

#[tokio::test]
async fn deep_expressions_plan_or_fail_with_54001() {
    let server = TestServer::start().await;
    let c = server.client().await;
    // Near the bound: it must plan and run, through the simple and the
    // extended protocol (planned on a connection thread).
    for n in [500i64, 1_990] {
        let sum = format!("SELECT 1{}", "+1".repeat(n as usize - 1));
        let v: i64 = c.query_one(sum.as_str(), &[]).await.unwrap().get(0);
        assert_eq!(v, n);
        let st = c.prepare(sum.as_str()).await.unwrap();
        let v: i64 = c.query_one(&st, &[]).await.unwrap().get(0);
        assert_eq!(v, n);
    }
    // An ORM-sized OR chain over a table.
    c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO t VALUES (1), (2), (3)")
        .await
        .unwrap();
    let ors = (0..900)
        .map(|i| format!("id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let rows = c
        .query(
            format!("SELECT id FROM t WHERE {ors} ORDER BY id").as_str(),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    // Past the bound: a clean 54001, however long the chain.
    for n in [2_500, 100_000] {
        let sql = format!("SELECT 1{}", "+1".repeat(n));
        assert_eq!(code_of(&c, &sql).await.as_deref(), Some("54001"), "{n}");
    }
    let concat = format!("SELECT 'a'{}", " || 'a'".repeat(3_000));
    assert_eq!(code_of(&c, &concat).await.as_deref(), Some("54001"));
    // Deep parentheses stop at the parser's recursion limit.
    let nested = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(code_of(&c, &nested).await.is_some());
    let casts = format!("SELECT 1{}", "::bigint".repeat(3_000));
    assert_eq!(code_of(&c, &casts).await.as_deref(), Some("54001"));
    alive(&server).await;
}

/// A binary int4[] parameter whose header claims `count` elements.
fn forged_array(count: i32, elements: &[i32]) -> Vec<u8> {
    let mut v = vec![];
    v.extend_from_slice(&1i32.to_be_bytes()); // ndim
    v.extend_from_slice(&0i32.to_be_bytes()); // has nulls
    v.extend_from_slice(&23u32.to_be_bytes()); // int4
    v.extend_from_slice(&count.to_be_bytes());
    v.extend_from_slice(&1i32.to_be_bytes()); // lower bound
    for e in elements {
        v.extend_from_slice(&4i32.to_be_bytes());
        v.extend_from_slice(&e.to_be_bytes());
    }
    v
}

#[tokio::test]
async fn binary_array_counts_are_checked_against_the_bytes() {
    let server = TestServer::start().await;
    let mut conn = RawConn::login(server.port(), "root").await.unwrap();
    const INT4_ARRAY: u32 = 1007;
    for count in [0x7fff_ffff, 1 << 24, 3, -1] {
        let mut msg = raw::parse("SELECT cardinality($1)", &[INT4_ARRAY]);
        msg.extend(raw::bind_binary(&[Some(forged_array(count, &[1, 2]))]));
        msg.extend(raw::execute());
        msg.extend(raw::sync());
        let code = conn.roundtrip(&msg).await.unwrap();
        assert_eq!(code.as_deref(), Some("22P02"), "count {count}");
    }
    // An honest array still works on the same connection.
    let mut msg = raw::parse("SELECT cardinality($1)", &[INT4_ARRAY]);
    msg.extend(raw::bind_binary(&[Some(forged_array(2, &[1, 2]))]));
    msg.extend(raw::execute());
    msg.extend(raw::sync());
    assert_eq!(conn.roundtrip(&msg).await.unwrap(), None);
    alive(&server).await;
}

// --- definitions that change under a statement -------------------------------

#[tokio::test]
async fn concurrent_alters_never_lose_a_column_or_reuse_its_id() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    let mut tasks = vec![];
    for i in 0..16 {
        let c = server.client().await;
        tasks.push(tokio::spawn(async move {
            let ty = if i % 2 == 0 { "TEXT" } else { "BIGINT" };
            let sql = format!("ALTER TABLE t ADD COLUMN c{i} {ty}");
            // 40001 means another ALTER came first: retry, as a client would.
            for _ in 0..200 {
                match c.batch_execute(&sql).await {
                    Ok(()) => return,
                    Err(e) if sqlstate(&e).as_deref() == Some("40001") => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(e) => panic!("{sql}: {e}"),
                }
            }
            panic!("{sql} kept conflicting");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let cols = root.prepare("SELECT * FROM t").await.unwrap();
    assert_eq!(cols.columns().len(), 17, "every ADD COLUMN landed");
    let values: Vec<String> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                format!("'text {i}'")
            } else {
                format!("{i}")
            }
        })
        .collect();
    let names: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
    root.batch_execute(&format!(
        "INSERT INTO t (id, {}) VALUES (1, {})",
        names.join(", "),
        values.join(", ")
    ))
    .await
    .unwrap();
    root.batch_execute("FLUSH TABLE t").await.unwrap();
    for i in 0..16 {
        let row = root
            .query_one(
                format!("SELECT c{i}::text FROM t WHERE id = 1").as_str(),
                &[],
            )
            .await
            .unwrap();
        let want = if i % 2 == 0 {
            format!("text {i}")
        } else {
            i.to_string()
        };
        assert_eq!(row.get::<_, String>(0), want, "column c{i}");
    }
}

#[tokio::test]
async fn a_block_whose_table_was_altered_fails_instead_of_misreading() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT);
         INSERT INTO t VALUES (1, 'committed');",
    )
    .await
    .unwrap();
    for alter in [
        "ALTER TABLE t ADD COLUMN extra BIGINT",
        "ALTER TABLE t DROP COLUMN extra",
    ] {
        let block = server.client().await;
        block
            .batch_execute("BEGIN; INSERT INTO t VALUES (2, 'staged')")
            .await
            .unwrap();
        root.batch_execute(alter).await.unwrap();
        // A scan and a point read by the new definition over rows staged by
        // the old one: an error, never an empty or wrong "success".
        let e = block.query("SELECT * FROM t", &[]).await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{alter}: {e}");
        block.batch_execute("ROLLBACK").await.unwrap();
        block
            .batch_execute("BEGIN; INSERT INTO t (id, v) VALUES (3, 'staged')")
            .await
            .unwrap();
        root.batch_execute(if alter.contains("ADD") {
            "ALTER TABLE t SET (FLUSH_POLICY = 'rows:50')"
        } else {
            "ALTER TABLE t ADD COLUMN extra BIGINT"
        })
        .await
        .unwrap();
        let e = block
            .query("SELECT v FROM t WHERE id = 3", &[])
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("40001"), "{e}");
        // COMMIT of the aborted block rolls back: nothing of it lands.
        block.batch_execute("COMMIT").await.unwrap();
        let n = count(&root, "SELECT count(*) FROM t").await;
        assert_eq!(n, 1, "{alter}");
    }
    // Staged, then altered, then COMMIT directly: rolled back with 40001.
    let block = server.client().await;
    block
        .batch_execute("BEGIN; INSERT INTO t (id, v) VALUES (4, 'staged')")
        .await
        .unwrap();
    root.batch_execute("ALTER TABLE t ADD COLUMN more TEXT")
        .await
        .unwrap();
    assert_eq!(code_of(&block, "COMMIT").await.as_deref(), Some("40001"));
    let n = count(&root, "SELECT count(*) FROM t").await;
    assert_eq!(n, 1);
}

/// Statements prepared before an ALTER run by the table's new definition:
/// an INSERT fills a column added since with its default, an UPDATE of a
/// column dropped since fails as Postgres does (42703), and nothing is written
/// by the definition the statement was planned against.
#[tokio::test]
async fn statements_prepared_before_an_alter_run_by_the_new_definition() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT, gone TEXT)")
        .await
        .unwrap();
    let c = server.client().await;
    let insert = c
        .prepare("INSERT INTO t (id, v) VALUES ($1, $2)")
        .await
        .unwrap();
    let update = c
        .prepare("UPDATE t SET gone = $1 WHERE id = $2")
        .await
        .unwrap();
    let delete = c.prepare("DELETE FROM t WHERE id = $1").await.unwrap();
    let select = c.prepare("SELECT * FROM t WHERE id = $1").await.unwrap();
    c.execute(&insert, &[&1i64, &"before"]).await.unwrap();
    root.batch_execute(
        "ALTER TABLE t ADD COLUMN added TEXT DEFAULT 'dflt'; ALTER TABLE t DROP COLUMN gone",
    )
    .await
    .unwrap();
    c.execute(&insert, &[&2i64, &"after"]).await.unwrap();
    let e = c.execute(&update, &[&"x", &1i64]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42703"), "{e}");
    let rows = common::text_rows(&root, "SELECT id, v, added FROM t ORDER BY id").await;
    assert_eq!(
        rows,
        vec![
            vec!["1".to_string(), "before".into(), "dflt".into()],
            vec!["2".to_string(), "after".into(), "dflt".into()],
        ]
    );
    // A prepared SELECT * was described with the old columns: the same
    // types still run, other types are refused as in Postgres, never decoded
    // by the wrong type.
    assert_eq!(c.query(&select, &[&2i64]).await.unwrap().len(), 1);
    root.batch_execute("ALTER TABLE t ADD COLUMN n BIGINT DEFAULT 7")
        .await
        .unwrap();
    let e = c.query(&select, &[&2i64]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("0A000"), "{e}");
    let message = e.as_db_error().map(|d| d.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some("cached plan must not change result type")
    );
    let fresh = c.prepare("SELECT * FROM t WHERE id = $1").await.unwrap();
    let row = c.query_one(&fresh, &[&2i64]).await.unwrap();
    assert_eq!(row.get::<_, Option<i64>>(3), Some(7));
    assert_eq!(c.execute(&delete, &[&1i64]).await.unwrap(), 1);
    assert_eq!(count(&root, "SELECT count(*) FROM t").await, 1);
}

// --- privileges that change under a session ----------------------------------

#[tokio::test]
async fn a_dropped_user_takes_its_rows_and_its_sessions_with_it() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute(
        "CREATE NAMESPACE app;
         CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT);
         CREATE USER alice WITH PASSWORD 'a1' ROLE user;",
    )
    .await
    .unwrap();
    let old = server.client_as("alice", Some("a1")).await;
    old.batch_execute("INSERT INTO app.notes VALUES (1, 'hot secret'), (2, 'cold secret')")
        .await
        .unwrap();
    root.batch_execute("FLUSH TABLE app.notes").await.unwrap();
    wait_idle_jobs(&root).await;
    old.batch_execute("INSERT INTO app.notes VALUES (3, 'newer')")
        .await
        .unwrap();
    root.batch_execute("DROP USER alice; CREATE USER alice WITH PASSWORD 'a2' ROLE user")
        .await
        .unwrap();
    // The old session is not the new alice.
    let e = old.query("SELECT * FROM app.notes", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("28000"), "{e}");
    let new = server.client_as("alice", Some("a2")).await;
    let n = count(&new, "SELECT count(*) FROM app.notes").await;
    assert_eq!(n, 0, "the new alice sees none of the old alice's rows");
    new.batch_execute("INSERT INTO app.notes VALUES (1, 'mine')")
        .await
        .unwrap();
    let body: String = new
        .query_one("SELECT body FROM app.notes WHERE id = 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(body, "mine");
    // And nothing comes back across a restart.
    let mut server = server;
    server.restart().await;
    let new = server.client_as("alice", Some("a2")).await;
    let n = count(&new, "SELECT count(*) FROM app.notes").await;
    assert_eq!(n, 1);
}

async fn wait_idle_jobs(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count(
            c,
            "SELECT count(*) FROM system.jobs WHERE status IN ('queued', 'running')",
        )
        .await;
        if n == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn privileges_are_checked_when_a_statement_runs_not_when_it_was_prepared() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute(
        "CREATE NAMESPACE app;
         CREATE TABLE app.priv (id BIGINT PRIMARY KEY);
         CREATE USER svc WITH PASSWORD 's1' ROLE service;
         CREATE USER bob WITH PASSWORD 'b1' ROLE user;",
    )
    .await
    .unwrap();
    let svc = server.client_as("svc", Some("s1")).await;
    let insert = svc
        .prepare("INSERT INTO app.priv VALUES ($1)")
        .await
        .unwrap();
    let select = svc.prepare("SELECT id FROM app.priv").await.unwrap();
    svc.execute(&insert, &[&1i64]).await.unwrap();
    svc.batch_execute("PREPARE ins AS INSERT INTO app.priv VALUES (2)")
        .await
        .unwrap();
    root.batch_execute("ALTER USER svc ROLE user")
        .await
        .unwrap();
    let e = svc.execute(&insert, &[&3i64]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    let e = svc.query(&select, &[]).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    assert_eq!(code_of(&svc, "EXECUTE ins").await.as_deref(), Some("42501"));
    let n = count(&root, "SELECT count(*) FROM app.priv").await;
    assert_eq!(n, 1);

    // A delegate acts as its target but does not get the target's credentials.
    root.batch_execute("CREATE USER svc2 WITH PASSWORD 's2' ROLE service")
        .await
        .unwrap();
    let svc2 = server.client_as("svc2", Some("s2")).await;
    assert_eq!(
        code_of(
            &svc2,
            "EXECUTE AS USER 'bob' (ALTER USER bob WITH PASSWORD 'taken')"
        )
        .await
        .as_deref(),
        Some("42501")
    );
    assert!(connect_as(server.port(), "bob", Some("b1")).await.is_ok());
    assert!(
        connect_as(server.port(), "bob", Some("taken"))
            .await
            .is_err()
    );
    // bob may still change its own password.
    let bob = server.client_as("bob", Some("b1")).await;
    bob.batch_execute("ALTER USER bob WITH PASSWORD 'b2'")
        .await
        .unwrap();
    assert!(connect_as(server.port(), "bob", Some("b2")).await.is_ok());
}

#[tokio::test]
async fn set_role_is_refused_not_pretended() {
    let server = TestServer::start().await;
    let root = server.client().await;
    root.batch_execute("CREATE USER alice WITH PASSWORD 'a1' ROLE user")
        .await
        .unwrap();
    for sql in [
        "SET ROLE alice",
        "SET ROLE nosuchrole",
        "SET SESSION AUTHORIZATION alice",
        "SET role = 'alice'",
    ] {
        assert_eq!(code_of(&root, sql).await.as_deref(), Some("0A000"), "{sql}");
    }
    assert!(
        root.query("SELECT set_config('role', 'alice', false)", &[])
            .await
            .is_err()
    );
    for sql in [
        "SET ROLE NONE",
        "SET SESSION AUTHORIZATION DEFAULT",
        "SET ROLE root",
    ] {
        assert_eq!(code_of(&root, sql).await, None, "{sql}");
    }
    let who: String = root
        .query_one("SELECT current_user", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(who, "root");
}

#[tokio::test]
async fn scram_iterations_are_bounded() {
    let server = TestServer::start().await;
    let root = server.client().await;
    let key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let verifier = format!("SCRAM-SHA-256$2000000000:c2FsdA==${key}:{key}");
    assert_eq!(
        code_of(
            &root,
            &format!("CREATE USER slow WITH PASSWORD '{verifier}'")
        )
        .await
        .as_deref(),
        Some("22023")
    );
    root.batch_execute("CREATE USER u WITH PASSWORD 'p'")
        .await
        .unwrap();
    assert_eq!(
        code_of(&root, &format!("ALTER USER u WITH PASSWORD '{verifier}'"))
            .await
            .as_deref(),
        Some("22023")
    );
    let ok = format!("SCRAM-SHA-256$4096:c2FsdA==${key}:{key}");
    root.batch_execute(&format!("ALTER USER u WITH PASSWORD '{ok}'"))
        .await
        .unwrap();
}

// --- resources one client could take from the others ------------------------

#[tokio::test]
async fn idle_sockets_cannot_lock_out_root_and_are_closed() {
    let server = TestServer::start_with(ServerOptions {
        config:
            "max_connections = 6\n[limits]\nreserved_connections = 2\nauth_timeout_seconds = 1\n"
                .into(),
        ..Default::default()
    })
    .await;
    let root = server.client().await;
    root.batch_execute("CREATE USER u WITH PASSWORD 'p' ROLE user")
        .await
        .unwrap();
    // Sockets that connect and say nothing.
    let mut idle = vec![];
    for _ in 0..30 {
        idle.push(
            tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
                .await
                .unwrap(),
        );
    }
    // Root still logs in; plain users fill only the unreserved slots
    // (6 - 2 reserved = 4, of which the two root sessions hold two).
    let _root2 = server.client().await;
    let mut users = vec![];
    for _ in 0..2 {
        users.push(connect_as(server.port(), "u", Some("p")).await.unwrap());
    }
    let e = connect_as(server.port(), "u", Some("p")).await.unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("53300"), "{e}");
    let root3 = server.client().await;
    // The idle sockets are closed after the auth timeout.
    let mut buf = [0u8; 16];
    for mut s in idle {
        use tokio::io::AsyncReadExt;
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "idle socket not closed"
        );
    }
    // Slots come back when their connections close (root3 held the fifth,
    // a user the fourth).
    drop(root3);
    drop(users.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect_as(server.port(), "u", Some("p")).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(sqlstate(&e).as_deref(), Some("53300"));
                assert!(Instant::now() < deadline, "slot not given back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn copy_buffers_and_settings_are_bounded() {
    let server = TestServer::start_with(ServerOptions {
        config: "[limits]\nmax_copy_memory_mb = 64\n".into(),
        ..Default::default()
    })
    .await;
    let c = server.client().await;
    assert_eq!(
        code_of(&c, "SET copy_memory_limit = '1TB'")
            .await
            .as_deref(),
        Some("22023")
    );
    assert!(
        c.query("SELECT set_config('copy_memory_limit', '1TB', false)", &[])
            .await
            .is_err()
    );
    c.batch_execute(
        "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); SET copy_memory_limit = '256kB'",
    )
    .await
    .unwrap();
    // A line that never ends.
    let mut conn = RawConn::login(server.port(), "root").await.unwrap();
    conn.send(&raw::query("SET copy_memory_limit = '256kB'"))
        .await
        .unwrap();
    conn.until_ready(Duration::from_secs(10)).await.unwrap();
    conn.send(&raw::query("COPY t FROM STDIN")).await.unwrap();
    let (tag, _) = conn.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(tag, b'G', "CopyInResponse");
    let chunk = vec![b'7'; 64 * 1024];
    let mut code = None;
    for _ in 0..64 {
        if conn.send(&raw::frame(b'd', &chunk)).await.is_err() {
            break;
        }
        // The error comes as soon as the unfinished line passes the limit.
        if let Ok((b'E', body)) = conn.next(Duration::from_millis(20)).await {
            code = raw::error_code(&body);
            break;
        }
    }
    if code.is_none() {
        conn.send(&raw::frame(b'c', &[])).await.unwrap();
        let msgs = conn.until_ready(Duration::from_secs(10)).await.unwrap();
        code = msgs
            .iter()
            .find(|(t, _)| *t == b'E')
            .and_then(|(_, b)| raw::error_code(b));
    }
    assert_eq!(code.as_deref(), Some("54000"));
    alive(&server).await;
}

#[tokio::test]
async fn a_transaction_block_stages_a_bounded_amount() {
    let server = TestServer::start_with(ServerOptions {
        config: "[limits]\nmax_transaction_memory_mb = 1\n".into(),
        ..Default::default()
    })
    .await;
    let c = server.client().await;
    c.batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT); BEGIN")
        .await
        .unwrap();
    let mut code = None;
    for i in 0..100 {
        let sql = format!(
            "INSERT INTO t SELECT value, repeat('x', 1000) FROM generate_series({}, {})",
            i * 100,
            i * 100 + 99
        );
        if let Err(e) = c.batch_execute(&sql).await {
            code = sqlstate(&e);
            break;
        }
    }
    assert_eq!(code.as_deref(), Some("54000"));
    c.batch_execute("ROLLBACK").await.unwrap();
    let n = count(&c, "SELECT count(*) FROM t").await;
    assert_eq!(n, 0);
}

#[tokio::test]
async fn query_memory_is_bounded_by_the_pool() {
    let server = TestServer::start_with(ServerOptions {
        config: "[query]\nmemory_limit_mb = 32\n".into(),
        ..Default::default()
    })
    .await;
    let c = server.client().await;
    // An aggregate that cannot spill past the pool: 53200, not the machine.
    let e = c
        .query(
            "SELECT array_agg(repeat('x', 100)) FROM generate_series(1, 2000000)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("53200"), "{e}");
    // A sort bigger than the pool spills and completes.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT value, repeat('y', 50) AS pad FROM generate_series(1, 1000000) ORDER BY pad, value DESC) s",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1_000_000);
    alive(&server).await;
}

#[tokio::test]
async fn a_query_stops_when_its_client_goes_away() {
    let server = TestServer::start().await;
    let (client, task) = common::connect_with_handle(server.port()).await.unwrap();
    let running = tokio::spawn(async move {
        let _ = client
            .query(
                "SELECT count(*) FROM generate_series(1, 1000000000000)",
                &[],
            )
            .await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();
    running.abort();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server
        .log_lines()
        .iter()
        .any(|l| l.contains("statement cancelled"))
    {
        assert!(
            Instant::now() < deadline,
            "the query was not cancelled:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alive(&server).await;
}

/// A cancel that arrives while a result is already streaming (the client has
/// read rows) ends it with 57014 too, promptly, and the connection is usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_rows_stream_ends_the_result() {
    use futures::StreamExt;
    let server = TestServer::start().await;
    let client = server.client().await;
    let token = client.cancel_token();
    let stream = client
        .query_raw(
            "SELECT x, repeat('x', 100) AS pad FROM generate_series(1, 200000000) AS g(x)",
            std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
        )
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let mut n = 0u64;
    while n < 1000 {
        stream.next().await.expect("rows").expect("a row");
        n += 1;
    }
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let cancelled_at = Instant::now();
    let outcome = loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("the result stalled after the cancel")
        {
            Some(Ok(_)) => n += 1,
            Some(Err(e)) => break Err(e),
            None => break Ok(n),
        }
    };
    let e = outcome.expect_err("200 million rows cannot all arrive before the cancel");
    assert_eq!(sqlstate(&e).as_deref(), Some("57014"), "{e}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(30),
        "the cancel took {:?} ({n} rows read)",
        cancelled_at.elapsed()
    );
    assert_eq!(
        count(&client, "SELECT count(*) FROM generate_series(1, 3)").await,
        3
    );
    alive(&server).await;
}

#[tokio::test]
async fn named_statements_per_connection_are_bounded() {
    let server = TestServer::start().await;
    let client = server.client().await;
    // tokio-postgres names every prepared statement anew; empty ones cost the
    // server no planning, so the bound is reached quickly.
    let mut kept = Vec::new();
    let mut refused = None;
    for _ in 0..10_050 {
        match client.prepare("").await {
            Ok(s) => kept.push(s),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let err = refused.expect("the 10,001st named statement must be refused");
    assert_eq!(sqlstate(&err).as_deref(), Some("54000"), "{err:?}");
    assert_eq!(kept.len(), 10_000);
    // Closing statements makes room again.
    kept.truncate(9_990);
    client.simple_query("SELECT 1").await.unwrap();
    client.prepare("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn result_columns_are_described_with_the_type_their_values_are_sent_in() {
    let server = TestServer::start().await;
    let client = server.client().await;
    // DataFusion widens `int UNION bigint` to bigint after the plan is built;
    // the description must say so, or binary clients read 8-byte values as 4.
    let rows = client
        .query("SELECT 1::int AS a UNION ALL SELECT 2 ORDER BY a", &[])
        .await
        .unwrap();
    assert_eq!(
        rows[0].columns()[0].type_(),
        &tokio_postgres::types::Type::INT8
    );
    let values: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(values, vec![1, 2]);
}

//! Users, SCRAM logins, roles and EXECUTE AS against the real server binary.

mod common;

use common::{ServerOptions, TestServer, connect_as, sqlstate};
use std::process::{Command, Stdio};
use tokio_postgres::{Client, SimpleQueryMessage};

const AUTH_FAILED: &str = "28P01";
const DENIED: &str = "42501";

async fn scalar(client: &Client, sql: &str) -> Option<String> {
    let msgs = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    msgs.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
        _ => None,
    })?
}

async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The SQLSTATE a statement fails with.
async fn fails(client: &Client, sql: &str) -> String {
    match client.batch_execute(sql).await {
        Ok(()) => panic!("{sql} succeeded"),
        Err(e) => sqlstate(&e).unwrap_or_else(|| panic!("{sql}: no SQLSTATE in {e}")),
    }
}

/// The SQLSTATE and message of a failed login.
async fn login_error(port: u16, user: &str, password: &str) -> (String, String) {
    match connect_as(port, user, Some(password)).await {
        Ok(_) => panic!("login as {user} succeeded"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("login as {user}: no server error in {e}"));
            (db.code().code().to_string(), db.message().to_string())
        }
    }
}

/// root plus one user of each role: alice (user), bob (user), svc (service),
/// ops (dba), sys (system). Each password is the name followed by "-pw".
async fn with_users(server: &TestServer) -> Client {
    let root = server.client().await;
    exec(
        &root,
        "CREATE USER alice WITH PASSWORD 'alice-pw';
         CREATE USER bob PASSWORD 'bob-pw' ROLE user;
         CREATE USER svc WITH PASSWORD 'svc-pw' ROLE service;
         CREATE USER ops WITH PASSWORD 'ops-pw' ROLE dba;
         CREATE USER sys WITH PASSWORD 'sys-pw' ROLE 'system';",
    )
    .await;
    root
}

async fn login(server: &TestServer, user: &str) -> Client {
    server.client_as(user, Some(&format!("{user}-pw"))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_logins_and_failures_look_alike() {
    let server = TestServer::start().await;
    let root = with_users(&server).await;
    for user in ["alice", "svc", "ops", "sys"] {
        let c = login(&server, user).await;
        assert_eq!(
            scalar(&c, "SELECT current_user").await.as_deref(),
            Some(user)
        );
        assert_eq!(
            scalar(&c, "SELECT session_user").await.as_deref(),
            Some(user)
        );
    }
    let (code, msg) = login_error(server.port(), "alice", "wrong").await;
    assert_eq!(code, AUTH_FAILED);
    assert_eq!(msg, "password authentication failed for user \"alice\"");
    let (code, msg) = login_error(server.port(), "ghost", "wrong").await;
    assert_eq!(code, AUTH_FAILED);
    assert_eq!(msg, "password authentication failed for user \"ghost\"");

    // Duplicates and unknown users, Postgres' codes.
    assert_eq!(
        fails(&root, "CREATE USER alice PASSWORD 'x'").await,
        "42710"
    );
    assert_eq!(fails(&root, "ALTER USER ghost PASSWORD 'x'").await, "42704");
    assert_eq!(fails(&root, "DROP USER ghost").await, "42704");
    exec(&root, "DROP USER IF EXISTS ghost").await;
    assert_eq!(fails(&root, "DROP USER root").await, "55006");
    let sys = login(&server, "sys").await;
    assert_eq!(fails(&sys, "DROP USER root").await, "2BP01");
    assert_eq!(
        fails(&root, "CREATE USER x PASSWORD 'x' ROLE king").await,
        "22023"
    );
    // Identifiers fold to lower case unless quoted.
    exec(
        &root,
        "CREATE USER Carol PASSWORD 'c'; CREATE USER \"Dave\" PASSWORD 'd'",
    )
    .await;
    server.client_as("carol", Some("c")).await;
    server.client_as("Dave", Some("d")).await;

    // A user without a password exists (for EXECUTE AS) but cannot log in.
    exec(&root, "CREATE USER nologin").await;
    assert_eq!(
        login_error(server.port(), "nologin", "").await.0,
        AUTH_FAILED
    );

    // A dropped user can no longer log in.
    exec(&root, "DROP USER carol").await;
    assert_eq!(
        login_error(server.port(), "carol", "c").await.0,
        AUTH_FAILED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_users_never_shows_a_password() {
    let server = TestServer::start().await;
    let root = with_users(&server).await;
    let rows = root
        .query(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_catalog = 'strata' AND table_schema = 'system' AND table_name = 'users' \
             ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns of system.users");
    let cols: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        cols,
        ["user_id", "role", "storage_id", "created_at", "updated_at"]
    );
    let all = root
        .simple_query("SELECT * FROM system.users ORDER BY user_id")
        .await
        .expect("system.users");
    let mut roles = vec![];
    for m in all {
        if let SimpleQueryMessage::Row(r) = m {
            for i in 0..r.len() {
                let v = r.get(i).unwrap_or_default();
                assert!(!v.contains("SCRAM") && !v.contains("-pw"), "leaked: {v}");
            }
            roles.push(format!(
                "{}:{}",
                r.get(0).unwrap_or_default(),
                r.get(1).unwrap_or_default()
            ));
        }
    }
    assert_eq!(
        roles,
        [
            "alice:user",
            "bob:user",
            "ops:dba",
            "root:system",
            "svc:service",
            "sys:system"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_who_may_run_what() {
    let server = TestServer::start().await;
    let root = with_users(&server).await;
    exec(
        &root,
        "CREATE NAMESPACE app; CREATE TABLE app.t (id INT PRIMARY KEY)",
    )
    .await;

    let alice = login(&server, "alice").await;
    for sql in [
        "CREATE NAMESPACE mine",
        "DROP NAMESPACE app CASCADE",
        "CREATE TABLE app.u (id INT PRIMARY KEY)",
        "ALTER TABLE app.t ADD COLUMN v TEXT",
        "DROP TABLE app.t",
        "FLUSH ALL",
        "COMPACT TABLE app.t",
        "CREATE USER eve PASSWORD 'x'",
        "ALTER USER bob PASSWORD 'x'",
        "ALTER USER alice ROLE dba",
        "DROP USER bob",
    ] {
        assert_eq!(fails(&alice, sql).await, DENIED, "{sql}");
    }
    // Anyone may change their own password.
    exec(&alice, "ALTER USER alice WITH PASSWORD 'new-pw'").await;
    assert_eq!(
        login_error(server.port(), "alice", "alice-pw").await.0,
        AUTH_FAILED
    );
    server.client_as("alice", Some("new-pw")).await;

    // A service user is no dba either.
    let svc = login(&server, "svc").await;
    assert_eq!(fails(&svc, "CREATE NAMESPACE s").await, DENIED);

    // A dba manages namespaces, tables and non-system users.
    let ops = login(&server, "ops").await;
    exec(
        &ops,
        "CREATE NAMESPACE opsns; CREATE TABLE opsns.t (id INT PRIMARY KEY)",
    )
    .await;
    exec(&ops, "CREATE USER helper PASSWORD 'h' ROLE service").await;
    exec(&ops, "ALTER USER helper SET ROLE user").await;
    assert_eq!(
        fails(&ops, "CREATE USER boss PASSWORD 'x' ROLE system").await,
        DENIED
    );
    assert_eq!(fails(&ops, "ALTER USER sys PASSWORD 'x'").await, DENIED);
    assert_eq!(fails(&ops, "ALTER USER helper ROLE system").await, DENIED);
    assert_eq!(fails(&ops, "DROP USER sys").await, DENIED);
    assert_eq!(fails(&ops, "DROP USER ops").await, "55006");
    exec(&ops, "DROP USER helper").await;

    // A system user may do all of it, but root stays root.
    let sys = login(&server, "sys").await;
    exec(&sys, "ALTER USER ops ROLE system").await;
    assert_eq!(fails(&sys, "ALTER USER root ROLE dba").await, DENIED);

    // A role change applies to open sessions at once.
    exec(&root, "ALTER USER alice SET ROLE dba").await;
    exec(&alice, "CREATE NAMESPACE mine").await;
    exec(&root, "ALTER USER alice SET ROLE user").await;
    assert_eq!(fails(&alice, "DROP NAMESPACE mine").await, DENIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_as_follows_the_delegation_rules() {
    let server = TestServer::start().await;
    let root = with_users(&server).await;

    let alice = login(&server, "alice").await;
    assert_eq!(
        fails(&alice, "EXECUTE AS USER 'bob' (SELECT 1)").await,
        DENIED
    );
    // Naming a user that does not exist tells a plain user nothing more.
    assert_eq!(
        fails(&alice, "EXECUTE AS USER 'ghost' (SELECT 1)").await,
        DENIED
    );
    assert_eq!(
        scalar(&alice, "EXECUTE AS USER 'alice' (SELECT current_user)")
            .await
            .as_deref(),
        Some("alice")
    );

    let svc = login(&server, "svc").await;
    assert_eq!(
        scalar(
            &svc,
            "EXECUTE AS USER 'alice' (SELECT current_user || '/' || session_user)"
        )
        .await
        .as_deref(),
        Some("alice/svc")
    );
    // The extended protocol describes and runs it too.
    let rows = svc
        .query("EXECUTE AS USER 'alice' (SELECT current_user AS who)", &[])
        .await
        .expect("extended EXECUTE AS");
    assert_eq!(rows[0].get::<_, String>("who"), "alice");
    assert_eq!(
        fails(&svc, "EXECUTE AS USER 'ops' (SELECT 1)").await,
        DENIED
    );
    exec(&svc, "EXECUTE AS USER 'svc' (SELECT 1)").await;
    assert_eq!(
        fails(&svc, "EXECUTE AS USER 'ghost' (SELECT 1)").await,
        "42704"
    );

    let ops = login(&server, "ops").await;
    exec(&ops, "EXECUTE AS USER svc (SELECT 1)").await;
    assert_eq!(
        fails(&ops, "EXECUTE AS USER 'sys' (SELECT 1)").await,
        DENIED
    );

    // The statement runs with the target's privileges, not the caller's.
    assert_eq!(
        fails(&root, "EXECUTE AS USER 'alice' (CREATE NAMESPACE x)").await,
        DENIED
    );
    exec(&root, "EXECUTE AS USER 'ops' (CREATE NAMESPACE x)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_keep_their_own_users() {
    let server = TestServer::start().await;
    let _root = with_users(&server).await;
    let users = ["alice", "bob", "svc", "ops"];
    let port = server.port();
    let mut tasks = vec![];
    for i in 0..20 {
        let user = users[i % users.len()];
        tasks.push(tokio::spawn(async move {
            // Every fifth task also fails a login first, in the middle of the others.
            if i % 5 == 0 {
                let e = connect_as(port, user, Some("nope")).await.err();
                assert!(e.is_some(), "a wrong password logged in as {user}");
            }
            let client = connect_as(port, user, Some(&format!("{user}-pw")))
                .await
                .unwrap_or_else(|e| panic!("login {i} as {user}: {e}"));
            for _ in 0..3 {
                let who = scalar(&client, "SELECT current_user").await;
                assert_eq!(who.as_deref(), Some(user), "task {i}");
            }
        }));
    }
    for t in tasks {
        t.await.expect("login task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_passwords_survive_restart() {
    let mut server = TestServer::start().await;
    let root = with_users(&server).await;
    exec(&root, "ALTER USER bob WITH PASSWORD 'changed'").await;
    drop(root);
    server.restart().await;
    login(&server, "alice").await;
    server.client_as("bob", Some("changed")).await;
    assert_eq!(
        login_error(server.port(), "bob", "bob-pw").await.0,
        AUTH_FAILED
    );
    // root still has no password, so loopback logins need none.
    let root = server.client().await;
    assert_eq!(
        scalar(&root, "SELECT role FROM system.users WHERE user_id = 'svc'")
            .await
            .as_deref(),
        Some("service")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_password_from_the_environment() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("STRATA_ROOT_PASSWORD".into(), "r00t-secret".into())],
        ..Default::default()
    })
    .await;
    // Without a password the client cannot answer SCRAM.
    assert!(connect_as(server.port(), "root", None).await.is_err());
    assert!(server.try_client().await.is_err());
    let (code, _) = login_error(server.port(), "root", "wrong").await;
    assert_eq!(code, AUTH_FAILED);
    let root = server.client_as("root", Some("r00t-secret")).await;
    assert_eq!(
        scalar(&root, "SELECT current_user").await.as_deref(),
        Some("root")
    );
    // Setting root's password later applies at once.
    exec(&root, "ALTER USER root PASSWORD 'next'").await;
    server.client_as("root", Some("next")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_password_set_later_is_required() {
    let server = TestServer::start().await;
    let root = server.client().await;
    exec(&root, "ALTER USER root WITH PASSWORD 'late'").await;
    assert!(server.try_client().await.is_err());
    server.client_as("root", Some("late")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_only_when_configured() {
    let server = TestServer::start_with(ServerOptions {
        config: "[auth]\nallow_cleartext = true".into(),
        ..Default::default()
    })
    .await;
    let root = server.client().await;
    exec(&root, "CREATE USER alice PASSWORD 'alice-pw'").await;
    let alice = login(&server, "alice").await;
    assert_eq!(
        scalar(&alice, "SELECT current_user").await.as_deref(),
        Some("alice")
    );
    let (code, msg) = login_error(server.port(), "alice", "wrong").await;
    assert_eq!(code, AUTH_FAILED);
    assert_eq!(msg, "password authentication failed for user \"alice\"");
    assert_eq!(
        login_error(server.port(), "ghost", "x").await.0,
        AUTH_FAILED
    );
}

/// psql (libpq) logs in with SCRAM; output and exit code of one command.
fn psql_as(port: u16, user: &str, password: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .args(["-X", "-w", "-At", "-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", user, "-d", "strata", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("LC_ALL", "C")
        .env_remove("PGSERVICE")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_logs_in_with_scram() {
    let server = TestServer::start().await;
    let _root = with_users(&server).await;
    let port = server.port();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        psql_as(port, "alice", "alice-pw", "SELECT current_user")
    })
    .await
    .expect("psql task");
    assert!(ok, "psql failed: {err}");
    assert_eq!(out, "alice");
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || psql_as(port, "alice", "bad", "SELECT 1"))
            .await
            .expect("psql task");
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user \"alice\""),
        "{err}"
    );
}

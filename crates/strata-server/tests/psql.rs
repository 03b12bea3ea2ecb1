//! Smoke test with the real `psql` client (libpq): connecting, a one-off
//! query, a small script, and an error.
//!
//! `psql` must be installed (`.ci/run` installs postgresql-client); the test
//! fails rather than skips when it is missing.

mod common;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

/// Upper bound for one psql invocation.
const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs psql against `port` with `args` (after the connection options), with
/// a deadline; returns its output.
fn psql(port: u16, args: &[&str], stdin: Option<&str>) -> Output {
    let port = port.to_string();
    let mut command = Command::new("psql");
    command
        // -X: ignore ~/.psqlrc; -w: never prompt for a password.
        .args([
            "-X",
            "-w",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "root",
            "-d",
            "strata",
        ])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        // No pager, predictable messages.
        .env("PAGER", "")
        .env("LC_ALL", "C")
        .env_remove("PGSERVICE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes()).expect("write psql stdin");
        // Dropping the pipe closes stdin so psql sees EOF.
    }
    // Drain stdout/stderr on threads so a chatty psql cannot block.
    let mut out_pipe = child.stdout.take().expect("psql stdout");
    let mut err_pipe = child.stderr.take().expect("psql stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + PSQL_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("psql {args:?} did not finish within {PSQL_TIMEOUT:?}");
            }
            Err(e) => panic!("waiting for psql failed: {e}"),
        }
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Panics with psql's output unless it exited 0.
fn expect_success(output: &Output, what: &str) -> String {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{what}: psql exited with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        text(&output.stderr)
    );
    stdout
}

#[test]
fn psql_is_installed() {
    let output = Command::new("psql")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("psql is not installed or not on PATH ({e}); .ci/run installs postgresql-client")
        });
    assert!(output.status.success(), "psql --version failed");
    assert!(
        text(&output.stdout).contains("psql (PostgreSQL)"),
        "unexpected: {}",
        text(&output.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_queries_and_scripts() {
    let server = TestServer::start().await;
    let port = server.port();
    // psql is blocking; keep it off the runtime's worker threads.
    let result = tokio::task::spawn_blocking(move || {
        // 1. The classic one-liner, default aligned output.
        let out = expect_success(&psql(port, &["-c", "SELECT 1"], None), "psql -c 'SELECT 1'");
        assert!(out.contains("(1 row)"), "psql -c 'SELECT 1' output:\n{out}");
        assert!(out.lines().any(|l| l.trim() == "1"), "psql -c 'SELECT 1' has no value line:\n{out}");

        // Unaligned, tuples only: exactly the value.
        let out = expect_success(&psql(port, &["-A", "-t", "-c", "SELECT 1"], None), "psql -At -c 'SELECT 1'");
        assert_eq!(out.trim(), "1");

        // 2. A small script on stdin, stopping at the first error.
        let script = "\
CREATE NAMESPACE shop;
CREATE TABLE shop.items (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price DOUBLE PRECISION DEFAULT 0);
INSERT INTO shop.items (id, name, price) VALUES (1, 'apple', 0.5), (2, 'pear', 0.75), (3, 'plum', 1.25);
UPDATE shop.items SET price = 2.5 WHERE id = 3;
DELETE FROM shop.items WHERE id = 2;
SELECT id, name, price FROM shop.items ORDER BY id;
SELECT count(*) AS n FROM shop.items;
";
        let out = expect_success(
            &psql(port, &["-v", "ON_ERROR_STOP=1", "-A", "-F", "|"], Some(script)),
            "psql script",
        );
        let lines: Vec<&str> = out.lines().collect();
        for expected in ["INSERT 0 3", "UPDATE 1", "DELETE 1", "id|name|price", "1|apple|0.5", "3|plum|2.5", "(2 rows)", "n", "2"] {
            assert!(lines.contains(&expected), "psql script output lacks line {expected:?}:\n{out}");
        }

        // The same data through a second session, with -c.
        let out = expect_success(
            &psql(port, &["-A", "-t", "-c", "SELECT name FROM shop.items WHERE id = 1"], None),
            "psql select",
        );
        assert_eq!(out.trim(), "apple");

        // 3. An error: reported with its message, exit status 1 for -c.
        let output = psql(port, &["-v", "ON_ERROR_STOP=1", "-c", "SELECT * FROM shop.nope"], None);
        assert!(!output.status.success(), "a failing query must make psql exit non-zero");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("ERROR:"), "psql stderr for a failing query:\n{stderr}");

        // VERBOSITY verbose shows the SQLSTATE.
        let output = psql(
            port,
            &["-v", "VERBOSITY=verbose", "-c", "INSERT INTO shop.items (id, name) VALUES (1, 'dup')"],
            None,
        );
        let stderr = text(&output.stderr);
        assert!(stderr.contains("23505"), "duplicate key through psql must report 23505:\n{stderr}");
    })
    .await;
    match result {
        Ok(()) => {}
        // Re-raise the assertion from the blocking thread while the server
        // is still alive, so its log is printed as it is dropped.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("psql task failed: {e}"),
    }
    drop(server);
}

/// psql's describe commands read pg_catalog: every listing names what exists.
#[tokio::test]
async fn psql_describe_commands_list_the_catalog() {
    let server = TestServer::start().await;
    let port = server.port();
    let result = tokio::task::spawn_blocking(move || {
        expect_success(
            &psql(
                port,
                &[
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "CREATE NAMESPACE app; CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, n INT); CREATE USER alice ROLE dba",
                ],
                None,
            ),
            "setup",
        );
        let run = |cmd: &str| expect_success(&psql(port, &["-c", cmd], None), cmd);
        let dn = run("\\dn");
        assert!(dn.contains("app") && dn.contains("system"), "\\dn:\n{dn}");
        let dt = run("\\dt app.*");
        assert!(dt.contains("notes") && dt.contains("table"), "\\dt app.*:\n{dt}");
        // Without a pattern, as in Postgres: the tables of the search_path's
        // namespace (pg_table_is_visible).
        let dt = expect_success(
            &psql(port, &["-c", "SET search_path = app", "-c", "\\dt"], None),
            "\\dt",
        );
        assert!(dt.contains("notes") && !dt.contains("jobs"), "\\dt:\n{dt}");
        let dt = run("\\dt system.*");
        assert!(dt.contains("jobs") && !dt.contains("notes"), "\\dt system.*:\n{dt}");
        let d = run("\\d app.notes");
        for want in ["Table \"app.notes\"", "bigint", "not null", "body", "integer"] {
            assert!(d.contains(want), "\\d app.notes lacks {want}:\n{d}");
        }
        let du = run("\\du");
        assert!(du.contains("root") && du.contains("Superuser") && du.contains("alice"), "\\du:\n{du}");
        let l = run("\\l");
        assert!(l.contains("strata"), "\\l:\n{l}");
    })
    .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A `pg_dump --data-only` script from PostgreSQL 15 (its SET lines,
/// set_config, and COPY ... FROM stdin with backslash escapes, arrays, NULLs,
/// fractional timestamps and floats) loads through psql unchanged, and
/// `COPY ... TO STDOUT` gives back exactly the lines PostgreSQL dumped.
#[tokio::test]
async fn psql_loads_a_pg_dump_and_copies_the_same_rows_out() {
    let server = TestServer::start().await;
    let port = server.port();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pg_dump_notes.sql"
    );
    let result = tokio::task::spawn_blocking(move || {
        expect_success(
            &psql(
                port,
                &[
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-c",
                    "CREATE NAMESPACE app; CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, created TIMESTAMPTZ, tags TEXT[], score DOUBLE PRECISION, ok BOOLEAN)",
                ],
                None,
            ),
            "setup",
        );
        let load = expect_success(
            &psql(port, &["-v", "ON_ERROR_STOP=1", "-f", fixture], None),
            "load the dump",
        );
        assert!(load.contains("COPY 10"), "{load}");
        let out = expect_success(
            &psql(port, &["-c", "COPY app.notes TO STDOUT"], None),
            "copy out",
        );
        let dump = std::fs::read_to_string(fixture).expect("fixture");
        let mut dumped: Vec<&str> = dump
            .lines()
            .skip_while(|l| !l.starts_with("COPY app.notes"))
            .skip(1)
            .take_while(|l| *l != "\\.")
            .collect();
        let mut copied: Vec<&str> = out.lines().collect();
        let key = |l: &&str| l.split('\t').next().and_then(|k| k.parse::<i64>().ok());
        dumped.sort_by_key(key);
        copied.sort_by_key(key);
        assert_eq!(dumped.len(), 10);
        assert_eq!(copied, dumped);
    })
    .await;
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

//! Shared harness for Strata's integration tests.
//!
//! [`TestServer`] runs the real `strata` binary (`strata serve`) on a free
//! loopback port with a fresh temporary data directory, waits for its
//! `ready to accept connections on 127.0.0.1:PORT` log line, and kills it when
//! dropped. It can restart the server cleanly (SIGTERM, wait, start again on
//! the same port and directory) or crash it (`kill9`, SIGKILL) to exercise
//! recovery.
//!
//! Only std and tokio are used. Every wait is bounded: starting, connecting and
//! shutting down all have timeouts, so a broken server makes a test fail with
//! the server's log attached instead of hanging.

// Each integration-test binary compiles this module and uses a different
// subset of it.
#![allow(dead_code)]

pub mod live;
pub mod raw;
pub mod s3;

use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long the server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client connection (TCP + startup handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take to exit after SIGTERM.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How many log lines to attach to a failure message.
const LOG_TAIL_LINES: usize = 80;

/// Output lines of every incarnation of one test server, shared with the
/// threads that drain the child's stdout and stderr.
type SharedLog = Arc<Mutex<Vec<String>>>;

/// A running (or deliberately stopped) `strata serve` process.
pub struct TestServer {
    port: u16,
    /// Kept for the whole life of the test so restarts reuse the same data.
    data_dir: TempDir,
    child: Option<Child>,
    log: SharedLog,
    /// Incremented on every (re)start; used to tag log lines.
    generation: u32,
    /// Extra environment for the server process (kept across restarts).
    env: Vec<(String, String)>,
}

/// How to start a test server beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Environment variables for the server, e.g. `STRATA_ROOT_PASSWORD`.
    pub env: Vec<(String, String)>,
    /// TOML appended to the test config (which sets only the flush tick).
    pub config: String,
}

impl TestServer {
    /// Starts a server on a free port with an empty data directory.
    ///
    /// Panics (with the server log) if it does not become ready in time.
    pub async fn start() -> TestServer {
        match Self::try_start().await {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`TestServer::start`] but returns the failure (with the server
    /// log) instead of panicking.
    pub async fn try_start() -> Result<TestServer, String> {
        Self::try_start_with(ServerOptions::default()).await
    }

    /// Starts a server with extra environment and configuration.
    pub async fn start_with(options: ServerOptions) -> TestServer {
        match Self::try_start_with(options).await {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    pub async fn try_start_with(options: ServerOptions) -> Result<TestServer, String> {
        let mut data_dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary data directory: {e}"))?;
        let log: SharedLog = Arc::new(Mutex::new(Vec::new()));

        // A free port is found by binding port 0 and releasing it, which
        // races with other tests doing the same. If the server exits early
        // (most likely "address in use"), try again with another port.
        let mut last_error = String::new();
        for attempt in 1..=3 {
            let port = free_port()?;
            let mut server = TestServer {
                port,
                data_dir,
                child: None,
                log: Arc::clone(&log),
                generation: 0,
                env: options.env.clone(),
            };
            write_config(server.data_dir(), &options.config)
                .map_err(|e| format!("cannot write test config: {e}"))?;
            match server.spawn().await {
                Ok(()) => return Ok(server),
                Err(SpawnError::Exited(msg)) if attempt < 3 => {
                    last_error = msg;
                    // Take the directory back for the next attempt; the
                    // child has exited so nothing holds it.
                    data_dir = server.take_data_dir();
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(last_error)
    }

    /// The TCP port the server listens on (stable across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's data directory (stable across restarts).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// libpq-style connection string for this server.
    pub fn conn_string(&self) -> String {
        conn_string(self.port)
    }

    /// The server's resident memory in KiB (VmRSS), if it is running.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Whether the server process is currently alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Opens a new connection. Panics (with the server log) on failure.
    pub async fn client(&self) -> Client {
        match self.try_client().await {
            Ok(client) => client,
            Err(e) => panic!("{e}\n{}", self.log_tail()),
        }
    }

    /// Opens a new connection, bounded by [`CONNECT_TIMEOUT`].
    pub async fn try_client(&self) -> Result<Client, String> {
        connect(self.port).await
    }

    /// Connects as `user` with `password`. Panics (with the server log) if
    /// the login fails.
    pub async fn client_as(&self, user: &str, password: Option<&str>) -> Client {
        match connect_as(self.port, user, password).await {
            Ok(client) => client,
            Err(e) => panic!("login as {user} failed: {e}\n{}", self.log_tail()),
        }
    }

    /// Stops the server with SIGTERM, waits for it to exit, then starts it
    /// again on the same port and data directory. If the server is not
    /// running (e.g. after [`TestServer::kill9`]) it is simply started.
    ///
    /// Returns the exit status of the stopped process, if there was one.
    pub async fn restart(&mut self) -> Option<ExitStatus> {
        let status = self.stop().await;
        if let Err(e) = self.spawn().await {
            panic!("server did not come back after restart: {e}");
        }
        status
    }

    /// Stops the server with SIGTERM and waits (bounded) for it to exit.
    /// Panics if it is still alive after [`SHUTDOWN_TIMEOUT`].
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let tail = self.log_tail();
        let result = tokio::task::spawn_blocking(move || {
            let result = terminate(&mut child);
            if result.is_err() {
                // Never leave a stray process behind.
                let _ = child.kill();
                let _ = child.wait();
            }
            result
        })
        .await
        .unwrap_or_else(|e| Err(format!("shutdown task failed: {e}")));
        match result {
            Ok(status) => Some(status),
            Err(e) => panic!("{e}\n{tail}"),
        }
    }

    /// Crashes the server with SIGKILL (no chance to flush anything) and
    /// reaps it. Call [`TestServer::restart`] to bring it back.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = tokio::task::spawn_blocking(move || {
                // `Child::kill` sends SIGKILL on Unix.
                let _ = child.kill();
                let _ = child.wait();
            })
            .await;
        }
    }

    /// The last lines the server printed (all incarnations), for failure
    /// messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log, LOG_TAIL_LINES)
    }

    /// Every line the server printed so far (all incarnations).
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Spawns `strata serve` and waits for the ready line.
    async fn spawn(&mut self) -> Result<(), SpawnError> {
        self.generation += 1;
        let port = self.port;
        let dir = self.data_dir.path().to_path_buf();
        let log = Arc::clone(&self.log);
        let generation = self.generation;
        let env = self.env.clone();
        let child =
            tokio::task::spawn_blocking(move || spawn_and_wait(port, &dir, &log, generation, &env))
                .await
                .map_err(|e| SpawnError::Other(format!("spawn task failed: {e}")))??;
        self.child = Some(child);
        Ok(())
    }

    /// Gives up ownership of the data directory (used only between start
    /// attempts, when no process is running).
    fn take_data_dir(mut self) -> TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let placeholder = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        std::mem::replace(&mut self.data_dir, placeholder)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- strata server log (port {}) ----\n{}",
                self.port,
                self.log_tail()
            );
        }
    }
}

/// Why a server failed to start.
#[derive(Debug)]
enum SpawnError {
    /// The process exited before printing its ready line.
    Exited(String),
    /// Anything else (could not spawn, never became ready, ...).
    Other(String),
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpawnError::Exited(msg) | SpawnError::Other(msg) => f.write_str(msg),
        }
    }
}

/// Path of the server binary under test.
pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// Connection string for a Strata server on `port`.
pub fn conn_string(port: u16) -> String {
    format!("host=127.0.0.1 port={port} user=root dbname=strata connect_timeout=10")
}

/// Connects to `port` and spawns the connection task; bounded by
/// [`CONNECT_TIMEOUT`].
pub async fn connect(port: u16) -> Result<Client, String> {
    // The connection task ends when the client is dropped or the server goes
    // away; its error (if any) surfaces through the client's calls.
    connect_with_handle(port)
        .await
        .map(|(client, _task)| client)
}

/// Connects to `port` and returns the client together with the task that
/// drives the connection, so a test can abort that task to drop the socket
/// abruptly (a client vanishing mid-query).
pub async fn connect_with_handle(
    port: u16,
) -> Result<(Client, tokio::task::JoinHandle<()>), String> {
    let config = conn_string(port);
    let connecting = tokio_postgres::connect(&config, NoTls);
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("cannot connect to strata on port {port}: {e}")),
        Err(_) => {
            return Err(format!(
                "connecting to strata on port {port} timed out after {CONNECT_TIMEOUT:?}"
            ));
        }
    };
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, handle))
}

/// Connects to `port` as `user` (SCRAM or cleartext, whatever the server
/// asks for), bounded by [`CONNECT_TIMEOUT`]; the login error is returned so
/// a test can check its SQLSTATE.
pub async fn connect_as(
    port: u16,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname("strata")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(p) = password {
        config.password(p);
    }
    let (client, connection) = timed(
        "connecting with a password",
        CONNECT_TIMEOUT,
        config.connect(NoTls),
    )
    .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn timed<F: Future>(what: &str, limit: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(err: &tokio_postgres::Error) -> Option<String> {
    err.code().map(|c| c.code().to_string())
}

/// Picks a port that is free right now by binding port 0 and releasing it.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot read the bound port: {e}"))
}

/// Blocking part of a start: spawn the process, drain its output into `log`
/// from two threads, and wait for the ready line, the process's exit, or the
/// timeout, whichever comes first.
fn spawn_and_wait(
    port: u16,
    dir: &Path,
    log: &SharedLog,
    generation: u32,
    env: &[(String, String)],
) -> Result<Child, SpawnError> {
    let listen = format!("127.0.0.1:{port}");
    // A short scheduler tick so flush-policy tests do not wait 5 s per check.
    let config = dir.join("strata-test.toml");
    if !config.exists() {
        write_config(dir, "")
            .map_err(|e| SpawnError::Other(format!("cannot write test config: {e}")))?;
    }
    let mut child = Command::new(strata_bin())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(&listen)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("STRATA_ROOT_PASSWORD")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SpawnError::Other(format!("cannot spawn {}: {e}", strata_bin().display())))?;

    let (tx, rx) = mpsc::channel::<String>();
    if let Some(out) = child.stdout.take() {
        drain(
            out,
            format!("[{generation} out]"),
            Arc::clone(log),
            tx.clone(),
        );
    }
    if let Some(err) = child.stderr.take() {
        drain(
            err,
            format!("[{generation} err]"),
            Arc::clone(log),
            tx.clone(),
        );
    }
    drop(tx);

    let needle = format!("ready to accept connections on {listen}");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SpawnError::Other(format!(
                "strata did not print {needle:?} within {READY_TIMEOUT:?}\n{}",
                log_tail(log, LOG_TAIL_LINES)
            )));
        }
        let slice = (deadline - now).min(Duration::from_millis(200));
        match rx.recv_timeout(slice) {
            Ok(line) if line.contains(&needle) => return Ok(child),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            // Both pipes closed: the process is gone (or closed its output);
            // fall through to the exit check below.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(slice),
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Give the drain threads a moment to collect the last lines.
            std::thread::sleep(Duration::from_millis(100));
            return Err(SpawnError::Exited(format!(
                "strata exited with {status} before becoming ready on {listen}\n{}",
                log_tail(log, LOG_TAIL_LINES)
            )));
        }
    }
}

/// The test config: a short scheduler tick so flush-policy tests do not wait
/// 5 s per check, plus whatever a test adds.
fn write_config(dir: &Path, extra: &str) -> std::io::Result<()> {
    // Top-level keys of `extra` (those before its first table) must come
    // before the harness's own [flush] table.
    let split = extra
        .lines()
        .position(|l| l.trim_start().starts_with('['))
        .unwrap_or(extra.lines().count());
    let top: Vec<&str> = extra.lines().take(split).collect();
    let tables: Vec<&str> = extra.lines().skip(split).collect();
    std::fs::write(
        dir.join("strata-test.toml"),
        format!(
            "{}\n[flush]\ncheck_interval_seconds = 1\n{}\n",
            top.join("\n"),
            tables.join("\n")
        ),
    )
}

/// Copies lines from a child pipe into the shared log and the ready channel
/// until EOF. The pipe must be drained for the life of the process or the
/// server would block on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: R, tag: String, log: SharedLog, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
                    if let Ok(mut lines) = log.lock() {
                        lines.push(format!("{tag} {line}"));
                    }
                    // The receiver is gone once the server is ready.
                    let _ = tx.send(line);
                }
            }
        }
    });
}

/// Sends SIGTERM and waits for the process to exit.
fn terminate(child: &mut Child) -> Result<ExitStatus, String> {
    if let Ok(Some(status)) = child.try_wait() {
        return Ok(status);
    }
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match sent {
        Ok(status) if status.success() => {}
        // The process may have exited between try_wait and kill.
        _ => {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            return Err(format!("could not send SIGTERM to strata (pid {pid})"));
        }
    }
    let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for strata (pid {pid}) failed: {e}")),
        }
    }
    Err(format!(
        "strata (pid {pid}) did not exit within {SHUTDOWN_TIMEOUT:?} after SIGTERM"
    ))
}

fn log_tail(log: &SharedLog, n: usize) -> String {
    let lines = log.lock().map(|l| l.clone()).unwrap_or_default();
    let start = lines.len().saturating_sub(n);
    let mut out = String::from("---- last server log lines ----\n");
    for line in &lines[start..] {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Removes ANSI escape sequences (colours) from a log line.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Waits up to 30 s for job `job` to complete and returns its result JSON.
/// Panics with the job's error if it fails or is cancelled.
pub async fn wait_job(client: &Client, job: &str) -> serde_json::Value {
    let sql = format!(
        "SELECT status, coalesce(result, '{{}}'), coalesce(error_message, '') \
         FROM system.jobs WHERE job_id = '{job}'"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = client
            .query_one(&sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let status: String = row.get(0);
        match status.as_str() {
            "completed" => {
                let result: String = row.get(1);
                return serde_json::from_str(&result)
                    .unwrap_or_else(|e| panic!("job {job} result {result:?}: {e}"));
            }
            "failed" | "cancelled" => {
                let err: String = row.get(2);
                panic!("job {job} ended {status}: {err:?}");
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "job {job} still {status} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows of all result sets of a simple query, as text (`None` = NULL).
pub fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// Every row of a simple query, NULL as "NULL"; panics with the statement
/// on an error.
pub async fn text_rows(client: &Client, sql: &str) -> Vec<Vec<String>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    simple_rows(&messages)
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

pub async fn exec(client: &Client, sql: &str) {
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
}
/// Rows of a query as column name → text (NULL as "NULL").
pub async fn named_rows(
    client: &Client,
    sql: &str,
) -> Vec<std::collections::BTreeMap<String, String>> {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("NULL").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
pub async fn one(client: &Client, sql: &str) -> String {
    let rows = text_rows(client, sql).await;
    assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
    rows[0][0].clone()
}

//! TLS over the wire with a certificate generated here (rcgen): psql connects
//! with `sslmode=require` and with full verification against the generated
//! certificate; with `tls.required` a plaintext login is refused with 28000.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{ServerOptions, TestServer, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Writes a self-signed certificate for localhost/127.0.0.1 and its key.
fn write_certificate(dir: &Path) -> (String, String) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names).expect("generate certificate");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert.display().to_string(), key.display().to_string())
}

/// Starts a server whose config has this `[tls]` section.
async fn start_with_tls(cert: &str, key: &str, required: bool) -> TestServer {
    TestServer::start_with(ServerOptions {
        config: format!("[tls]\ncert = {cert:?}\nkey = {key:?}\nrequired = {required}\n"),
        ..ServerOptions::default()
    })
    .await
}

/// Runs psql with a libpq connection string; returns (success, stdout, stderr).
fn psql(conninfo: &str, sql: &str) -> (bool, String, String) {
    let out = Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_and_required_tls() {
    timed("tls", TEST_TIMEOUT, async {
        let certs = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_certificate(certs.path());

        // TLS offered, not required: both kinds of connection work.
        let server = start_with_tls(&cert, &key, false).await;
        let base = format!("host=127.0.0.1 port={} user=root dbname=strata", server.port());
        let (ok, out, err) = psql(&format!("{base} sslmode=require"), "SELECT 40 + 2");
        assert!(ok, "TLS login failed: {err}\n{}", server.log_tail());
        assert_eq!(out.trim(), "42");
        let plain = server.client().await;
        let row = plain.query_one("SELECT 1::BIGINT", &[]).await.expect("plaintext");
        assert_eq!(row.get::<_, i64>(0), 1);
        drop(plain);

        drop(server);

        // TLS required.
        let server = start_with_tls(&cert, &key, true).await;
        let port = server.port();
        let base = format!("host=127.0.0.1 port={port} user=root dbname=strata");
        // psql reports the encryption it negotiated.
        let (ok, out, err) = psql(&format!("{base} sslmode=require"), "\\conninfo");
        assert!(ok, "TLS login failed: {err}");
        assert!(out.contains("SSL connection"), "not encrypted: {out}");
        // Full verification of the generated certificate (chain and host name).
        let verify = format!(
            "host=localhost port={port} user=root dbname=strata sslmode=verify-full sslrootcert={cert}"
        );
        let (ok, out, err) = psql(&verify, "CREATE NAMESPACE sec; SELECT 'verified'");
        assert!(ok, "verify-full failed: {err}");
        assert_eq!(out.trim().lines().last(), Some("verified"));
        // Plaintext is refused with a clear error, from psql and from a driver.
        let (ok, _, err) = psql(&format!("{base} sslmode=disable"), "SELECT 1");
        assert!(!ok, "plaintext login was accepted");
        assert!(err.contains("requires TLS"), "unclear refusal: {err}");
        let conn_string = server.conn_string();
        let refused = tokio_postgres::connect(&conn_string, tokio_postgres::NoTls).await;
        let e = refused.err().expect("plaintext refused");
        assert_eq!(sqlstate(&e).as_deref(), Some("28000"), "{e}");
        let message = e.as_db_error().map(|d| d.message().to_string());
        assert!(message.as_deref().is_some_and(|m| m.contains("requires TLS")), "{message:?}");
        // The server is unharmed by the refusals.
        let (ok, out, err) = psql(&format!("{base} sslmode=require"), "SELECT count(*) FROM system.namespaces WHERE namespace_id = 'sec'");
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "1");
    })
    .await;
}

/// A cert without a key is a startup error, not a server silently without TLS.
#[test]
fn half_configured_tls_does_not_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = write_certificate(dir.path());
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("[tls]\ncert = {cert:?}\n")).expect("config");
    let out = Command::new(common::strata_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run strata");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls.cert and tls.key"), "{stderr}");
}

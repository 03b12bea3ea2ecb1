//! The client-compatibility suite (`tests/clients/` at the workspace root):
//! psycopg 3, psycopg2, asyncpg, node-postgres, pgjdbc and psql scripts, each
//! connecting with a password to a real server. `install.sh` puts the drivers
//! in a cache outside the repository first (pip, npm, Debian packages; quick
//! when they are there already), so this runs on a fresh machine. The same
//! suite runs against a throwaway PostgreSQL too (`reference.sh`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{ServerOptions, TestServer};

const PASSWORD: &str = "clients-pw";

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/clients")
}

/// The drivers' installation, once at a time (both tests need it).
fn install() {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    run("install.sh", &[]);
}

/// Runs a script, printing what it printed; panics with it when it fails.
fn run(script: &str, envs: &[(&str, String)]) {
    let out = Command::new("bash")
        .arg(clients_dir().join(script))
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{text}",
        out.status
    );
}

#[tokio::test]
async fn real_drivers_pass_the_client_suite() {
    install();
    let server = TestServer::start_with(ServerOptions {
        env: vec![("STRATA_ROOT_PASSWORD".into(), PASSWORD.into())],
        ..Default::default()
    })
    .await;
    let port = server.port().to_string();
    // The scripts block; keep them off the runtime's worker threads.
    tokio::task::spawn_blocking(move || {
        run(
            "run.sh",
            &[
                ("PGHOST", "127.0.0.1".into()),
                ("PGPORT", port),
                ("PGUSER", "root".into()),
                ("PGPASSWORD", PASSWORD.into()),
                ("PGDATABASE", "strata".into()),
            ],
        )
    })
    .await
    .expect("client suite task");
    drop(server);
}

/// Every check of the suite also passes against PostgreSQL (a throwaway
/// cluster from the installed server binaries), so a wrong expectation shows.
#[test]
fn the_client_suite_passes_on_postgres_too() {
    install();
    run("reference.sh", &[]);
}

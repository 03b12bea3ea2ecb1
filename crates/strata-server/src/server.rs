//! Startup, the accept loop with its connection limit, and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use strata_catalog::Catalog;
use strata_cold::ColdStore;
use strata_common::config::Config;
use strata_jobs::{Control, JobManager};
use strata_pgwire::{AuthSettings, Frontend};
use strata_query::{Engine, Tiers};
use strata_store::Store;
use tokio::net::TcpListener;
use tracing::Instrument;

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub async fn serve(config: Config) -> Result<(), String> {
    // A TLS misconfiguration stops the server before it touches any data.
    let tls = crate::tls::acceptor(&config.tls)?;
    let store = Arc::new(
        Store::open(&config.data_dir.join("hot"), config.sync_writes).map_err(|e| e.to_string())?,
    );
    let policy =
        strata_sql::FlushPolicy::parse(&config.flush.default_policy).map_err(|e| e.to_string())?;
    let catalog = Arc::new(Catalog::open(store.clone(), policy).map_err(|e| e.to_string())?);
    catalog
        .bootstrap_root(
            config
                .auth
                .root_password
                .as_deref()
                .filter(|p| !p.is_empty()),
        )
        .map_err(|e| format!("cannot create the root user: {e}"))?;
    let cold = Arc::new(
        ColdStore::local("local", &config.data_dir.join("storage")).map_err(|e| e.to_string())?,
    );
    let tiers = Tiers::new(store.clone(), catalog, cold);
    let engine =
        Engine::new(tiers.clone()).map_err(|e| format!("cannot start the query runtime: {e}"))?;
    let jobs = JobManager::new(engine.clone(), config.jobs.max_concurrent)
        .map_err(|e| format!("cannot start the job runtime: {e}"))?;
    tiers.set_jobs(Arc::new(Control(jobs.clone())));
    jobs.start(Duration::from_secs(config.flush.check_interval_seconds))
        .await
        .map_err(|e| format!("startup recovery failed: {e}"))?;
    let auth = AuthSettings {
        allow_cleartext: config.auth.allow_cleartext,
        tls_required: config.tls.required,
    };
    let frontend = Frontend::new(engine, auth).map_err(|e| e.to_string())?;

    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        tls = tls.is_some(),
        tls_required = config.tls.required,
        "ready to accept connections on {addr}"
    );

    let active = Arc::new(AtomicUsize::new(0));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                let count = active.fetch_add(1, Ordering::SeqCst) + 1;
                let over_limit = count > config.max_connections;
                let handlers = frontend.connection(over_limit);
                let active = active.clone();
                let tls = tls.clone();
                let span = tracing::info_span!("connection", %peer);
                tokio::spawn(async move {
                    if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                }.instrument(span));
            }
        }
    }
    tracing::info!("shutting down");
    drop(listener);
    store.flush().map_err(|e| e.to_string())?;
    tracing::info!("shutdown complete");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

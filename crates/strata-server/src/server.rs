//! Startup, the accept loop with its connection limit, and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use strata_catalog::Catalog;
use strata_cold::ColdStore;
use strata_common::config::Config;
use strata_jobs::{Control, JobManager};
use strata_pgwire::{AuthSettings, Frontend};
use strata_query::{Engine, EngineOptions, Tiers};
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
    // The admin port answers from the start: /metrics at once, /health 503
    // until recovery is done and connections are accepted.
    let readiness = crate::admin::Readiness::default();
    if let Some(address) = config.admin.address() {
        crate::admin::start(&address, readiness.clone()).await?;
    }
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
    let local_dir = config.data_dir.join("storage");
    catalog.set_local_storage(&local_dir);
    let cold = Arc::new(ColdStore::local("local", &local_dir).map_err(|e| e.to_string())?);
    // Spill files of queries a crash interrupted are never read again.
    let spill = config.data_dir.join("spill");
    if spill.exists()
        && let Err(e) = std::fs::remove_dir_all(&spill)
    {
        tracing::warn!(error = %e, "could not clear the spill directory");
    }
    let tiers = Tiers::new(store.clone(), catalog, cold);
    tiers.change_log.set_retention(strata_query::Retention {
        seconds: config.live.retention_seconds,
        max_entries: config.live.max_entries,
    });
    tiers.changes.set_capacity(config.live.queue_size);
    trim_change_logs(tiers.clone());
    let engine = Engine::new(tiers.clone(), engine_options(&config))
        .map_err(|e| format!("cannot start the query runtime: {e}"))?;
    let jobs = JobManager::new(engine.tiers().clone(), &config.jobs)
        .map_err(|e| format!("cannot start the job runtime: {e}"))?;
    tiers.set_jobs(Arc::new(Control(jobs.clone())));
    jobs.start(Duration::from_secs(config.flush.check_interval_seconds))
        .await
        .map_err(|e| format!("startup recovery failed: {e}"))?;
    let auth = AuthSettings {
        allow_cleartext: config.auth.allow_cleartext,
        tls_required: config.tls.required,
        max_connections: config.max_connections,
        reserved_connections: config.limits.reserved_connections,
    };
    let auth_timeout = Duration::from_secs(config.limits.auth_timeout_seconds.max(1));
    let frontend = Frontend::new(engine, auth).map_err(|e| e.to_string())?;

    let listener = TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Bound: connections wait in the backlog for the loop below.
    readiness.set(true);
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
                // Logged-in connections are limited at login (with slots kept
                // for dba and system users); sockets still logging in are
                // limited here, and each gets `auth_timeout` to finish, so idle
                // sockets can neither fill the server nor lock out its operator.
                let count = active.fetch_add(1, Ordering::SeqCst) + 1;
                let over_limit =
                    count > config.max_connections + config.limits.max_pending_logins;
                let handlers = frontend.connection(over_limit);
                let logged_in = handlers.logged_in();
                let watcher = watch_disconnect(&socket, handlers.disconnect_hook());
                let active = active.clone();
                let tls = tls.clone();
                let span = tracing::info_span!("connection", %peer);
                tokio::spawn(async move {
                    let conn = crate::connection::serve(socket, tls, handlers);
                    tokio::pin!(conn);
                    let result = tokio::select! {
                        r = &mut conn => Some(r),
                        _ = tokio::time::sleep(auth_timeout) => None,
                    };
                    let result = match result {
                        Some(r) => r,
                        None if logged_in.load(Ordering::SeqCst) => conn.await,
                        None => {
                            tracing::info!("closing a connection that did not log in within the auth timeout");
                            Ok(())
                        }
                    };
                    if let Some(w) = watcher {
                        w.abort();
                    }
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection closed with an error");
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                }.instrument(span));
            }
        }
    }
    readiness.set(false);
    tracing::info!("shutting down");
    drop(listener);
    store.flush().map_err(|e| e.to_string())?;
    tracing::info!("shutdown complete");
    Ok(())
}

/// Watches a second descriptor of the client's socket for the client going
/// away (EOF or a reset) while the connection is busy: pgwire reads the socket
/// only between statements, so without this a query would run to its end for
/// nobody. The peer's close is seen even behind unread bytes (a pipelined
/// Sync); a CopyFail among them ends the running statement too (the way a
/// client ends a live query's COPY OUT). Pending bytes are looked at again after a
/// pause, not in a busy loop.
fn watch_disconnect(
    socket: &tokio::net::TcpStream,
    hook: strata_pgwire::DisconnectHook,
) -> Option<tokio::task::JoinHandle<()>> {
    use std::os::fd::AsFd;
    let fd = socket.as_fd().try_clone_to_owned().ok()?;
    let std_socket = std::net::TcpStream::from(fd);
    std_socket.set_nonblocking(true).ok()?;
    let probe = tokio::net::TcpStream::from_std(std_socket).ok()?;
    Some(tokio::spawn(async move {
        let mut pending = vec![0u8; 8192];
        loop {
            let closed = match probe.ready(tokio::io::Interest::READABLE).await {
                Ok(ready) => ready.is_read_closed(),
                Err(_) => true,
            };
            let ending = match probe.peek(&mut pending).await {
                Ok(0) | Err(_) => true,
                Ok(n) => closed || ends_statement(&pending[..n]),
            };
            if ending {
                if hook.fire().await {
                    tracing::info!(
                        "the client went away or ended a running statement: statement cancelled"
                    );
                }
                if closed {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}

/// Whether unread client messages include a CopyFail. TLS records (content
/// types 20–23) are not looked into.
fn ends_statement(mut bytes: &[u8]) -> bool {
    if matches!(bytes.first(), Some(20..=23)) {
        return false;
    }
    while bytes.len() >= 5 {
        if bytes[0] == b'f' {
            return true;
        }
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if len < 4 || len + 1 > bytes.len() {
            return false;
        }
        bytes = &bytes[len + 1..];
    }
    false
}

/// Trims the live-query change logs to their retention, once a second.
fn trim_change_logs(tiers: std::sync::Arc<Tiers>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let t = tiers.clone();
            let trimmed = tokio::task::spawn_blocking(move || {
                let catalog = t.catalog.clone();
                t.change_log.trim(
                    &t.store,
                    |id| catalog.table_by_id(id).is_some(),
                    strata_catalog::now_micros(),
                )
            })
            .await;
            match trimmed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "trimming the change log failed"),
                Err(e) => tracing::error!(error = %e, "trimming the change log panicked"),
            }
        }
    });
}

fn engine_options(config: &Config) -> EngineOptions {
    const MB: usize = 1 << 20;
    EngineOptions {
        memory_limit: config.query.memory_limit_mb.saturating_mul(MB),
        spill_dir: config.data_dir.join("spill"),
        max_copy_memory: config.limits.max_copy_memory_mb.saturating_mul(MB),
        max_transaction_memory: config.limits.max_transaction_memory_mb.saturating_mul(MB),
    }
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

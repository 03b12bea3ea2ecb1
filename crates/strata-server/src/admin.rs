//! The admin HTTP port (`[admin] listen`, `STRATA_ADMIN_LISTEN`): `GET
//! /metrics` answers the server's metrics in the Prometheus text format,
//! `GET /health` answers 200 `ok` once startup recovery has finished and the
//! Postgres listener accepts connections (503 before, and again while shutting
//! down). Any other path is 404; another method on those two is 405.
//!
//! HTTP/1 by hyper. The port is meant for a scraper and a load balancer on a
//! trusted network, and is bounded so that no client can hold it or grow it:
//! at most [`MAX_CONNECTIONS`] connections at once (more are closed at
//! accept), request headers within [`MAX_BUF`] bytes and [`HEADER_TIMEOUT`],
//! and every connection closed after [`CONNECTION_LIFETIME`] whatever it does.
//! A request's body is never read.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

/// Admin connections served at once; past it a new one is closed at accept.
const MAX_CONNECTIONS: usize = 32;
/// Bytes hyper may buffer for one connection's request (line and headers).
const MAX_BUF: usize = 16 * 1024;
/// Header lines one request may have.
const MAX_HEADERS: usize = 64;
/// Time a client has to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection stays open, kept alive or not.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// Whether `/health` reports ready: set once recovery is done and the
/// Postgres listener accepts, cleared again at shutdown.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Binds the admin port and serves it on the runtime until the process ends.
pub async fn start(address: &str, readiness: Readiness) -> Result<(), String> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on the admin address {address}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("admin port (/metrics, /health) listening on {addr}");
    tokio::spawn(accept_loop(listener, readiness));
    Ok(())
}

async fn accept_loop(listener: TcpListener, readiness: Readiness) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off, keep serving.
                tracing::warn!(error = %e, "admin port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin port: too many connections, closing a new one");
            continue;
        };
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = route(req.method(), req.uri().path(), readiness.get());
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_BUF)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(socket), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "admin connection ended"),
                Err(_) => tracing::debug!(%peer, "admin connection closed after its lifetime"),
            }
            drop(slot);
        });
    }
}

/// The response to one request.
fn route(method: &Method, path: &str, ready: bool) -> Response<Full<Bytes>> {
    let known = matches!(path, "/metrics" | "/health");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(
                strata_common::stats::render_prometheus(),
            )));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(strata_common::stats::PROMETHEUS_CONTENT_TYPE),
            );
            r
        }
        _ if ready => text(StatusCode::OK, "ok\n"),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body(r: Response<Full<Bytes>>) -> String {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn health_follows_readiness() {
        let r = route(&Method::GET, "/health", false);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = route(&Method::GET, "/health", true);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, "ok\n");
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text_ready_or_not() {
        for ready in [false, true] {
            let r = route(&Method::GET, "/metrics", ready);
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(
                r.headers()[CONTENT_TYPE],
                "text/plain; version=0.0.4; charset=utf-8"
            );
            assert!(body(r).await.contains("# TYPE queries_total counter"));
        }
    }

    #[test]
    fn other_paths_and_methods() {
        assert_eq!(
            route(&Method::GET, "/", true).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::GET, "/metrics/x", true).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::POST, "/nope", true).status(),
            StatusCode::NOT_FOUND
        );
        let r = route(&Method::POST, "/metrics", true);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
        assert_eq!(
            route(&Method::HEAD, "/health", true).status(),
            StatusCode::OK
        );
    }
}

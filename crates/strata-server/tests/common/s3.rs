//! An S3-protocol server on loopback for the storage tests.
//!
//! [`S3Server`] serves `s3s-fs` (an S3 implementation over a temporary
//! directory) through `s3s` on `127.0.0.1` with SigV4 authentication on, so a
//! client (object_store inside Strata, or this module's own client) signs
//! real requests with [`ACCESS_KEY`] / [`SECRET_KEY`] and a request signed
//! with another secret is refused.
//!
//! The server runs on its own small tokio runtime, independent of the test's
//! runtime (whatever its flavour), and records every request that reaches the
//! access check — every request whose route it could resolve, signed or not —
//! by S3 operation (`GetObject`, `PutObject`, `ListObjectsV2`, ...), key and
//! `Range` header, so a test can assert how many (ranged) GETs a query caused
//! ([`S3Server::requests`], [`S3Server::reset_requests`]).
//!
//! [`S3Server::stop`] closes the listener and every open connection (clients
//! then get "connection refused"); [`S3Server::restart`] listens again on the
//! same port with the same data.
//!
//! Objects are listed and read back through the S3 API ([`S3Server::list`],
//! [`S3Server::get`]) with object_store's S3 client, never from the directory.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer, AwsCredential};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, ReqwestConnector};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::task::{AbortHandle, JoinHandle};

/// The access key the server accepts.
pub const ACCESS_KEY: &str = "strata-test-access-key";
/// The secret of [`ACCESS_KEY`]. Distinctive, so tests can grep logs and
/// system tables for it.
pub const SECRET_KEY: &str = "s3cr3t-Zq8Xw4Lm2Pv7Kd9Rt5Hy";
/// The region requests are signed for.
pub const REGION: &str = "us-east-1";

/// How long [`S3Server::restart`] keeps trying to bind the old port.
const REBIND_TIMEOUT: Duration = Duration::from_secs(10);

/// One request the server received (one that reached the access check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Call {
    /// S3 operation: `GetObject`, `HeadObject`, `PutObject`, `ListObjectsV2`,
    /// `CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`,
    /// `DeleteObject`, `CreateBucket`, ...
    pub op: String,
    /// HTTP method.
    pub method: String,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// The `Range` header, if any (`bytes=10-99`, `bytes=-8`).
    pub range: Option<String>,
    /// Whether the request carried valid credentials.
    pub signed: bool,
}

impl S3Call {
    /// `GetObject` with a `Range` header.
    pub fn is_ranged_get(&self) -> bool {
        self.op == "GetObject" && self.range.is_some()
    }

    /// `GetObject` without a `Range` header.
    pub fn is_full_get(&self) -> bool {
        self.op == "GetObject" && self.range.is_none()
    }

    /// Short form for reports: `GetObject(range bytes=1-9) bucket/key`.
    pub fn describe(&self) -> String {
        let range = self
            .range
            .as_deref()
            .map(|r| format!("(range {r})"))
            .unwrap_or_default();
        format!(
            "{}{range} {}/{}",
            self.op,
            self.bucket.as_deref().unwrap_or(""),
            self.key.as_deref().unwrap_or("")
        )
    }
}

type CallLog = Arc<Mutex<Vec<S3Call>>>;

/// Records each request, then applies s3s's default rule (a request must be
/// signed with valid credentials).
struct Recorder {
    calls: CallLog,
}

#[async_trait::async_trait]
impl S3Access for Recorder {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> s3s::S3Result<()> {
        let call = S3Call {
            op: cx.s3_op().name().to_string(),
            method: cx.method().as_str().to_string(),
            bucket: cx.s3_path().get_bucket_name().map(str::to_string),
            key: cx.s3_path().get_object_key().map(str::to_string),
            range: cx
                .headers()
                .get("range")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            signed: cx.credentials().is_some(),
        };
        let signed = call.signed;
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        if signed {
            Ok(())
        } else {
            Err(s3s::s3_error!(AccessDenied, "Signature is required"))
        }
    }
}

/// An in-process S3-protocol server (s3s + s3s-fs) on 127.0.0.1.
pub struct S3Server {
    port: u16,
    /// The buckets' directory, kept across stop/restart.
    root: TempDir,
    service: S3Service,
    calls: CallLog,
    /// Open connections, aborted by [`S3Server::stop`].
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: Option<JoinHandle<()>>,
    /// Taken (and shut down in the background) on drop.
    runtime: Option<Runtime>,
}

impl S3Server {
    /// Starts a server on a free loopback port with no buckets.
    pub async fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("strata-s3-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create the S3 server's directory: {e}"));
        let fs = s3s_fs::FileSystem::new(root.path())
            .unwrap_or_else(|e| panic!("s3s-fs on {}: {e:?}", root.path().display()));
        let calls: CallLog = Arc::default();
        let service = {
            let mut builder = S3ServiceBuilder::new(fs);
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            builder.set_access(Recorder {
                calls: Arc::clone(&calls),
            });
            builder.build()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-test-server")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the S3 server's runtime: {e}"));
        let listener = StdListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 for the S3 server: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("S3 server address: {e}"))
            .port();
        let mut server = S3Server {
            port,
            root,
            service,
            calls,
            connections: Arc::default(),
            accept: None,
            runtime: Some(runtime),
        };
        server.serve(listener);
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory s3s-fs keeps the buckets in (for diagnostics only: tests
    /// look at objects through the S3 API).
    pub fn root_dir(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.accept.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// The value of `CREDENTIALS '…'` for this server.
    pub fn credentials_json(&self) -> String {
        credentials_json(ACCESS_KEY, SECRET_KEY)
    }

    /// Creates `bucket` with a SigV4-signed `PUT /bucket` (CreateBucket).
    pub async fn create_bucket(&self, bucket: &str) {
        let credential = AwsCredential {
            key_id: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
            token: None,
        };
        let mut request = HttpRequest::new(Vec::<u8>::new().into());
        *request.method_mut() = "PUT".parse().expect("method");
        *request.uri_mut() = format!("{}/{bucket}", self.endpoint())
            .parse()
            .expect("bucket uri");
        AwsAuthorizer::new(&credential, "s3", REGION).authorize(&mut request, None);
        let client: HttpClient = ReqwestConnector::default()
            .connect(&ClientOptions::new().with_allow_http(true))
            .unwrap_or_else(|e| panic!("http client: {e}"));
        let response = tokio::time::timeout(Duration::from_secs(10), client.execute(request))
            .await
            .unwrap_or_else(|_| panic!("CreateBucket {bucket} timed out"))
            .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e}"));
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().bytes().await.unwrap_or_default();
            panic!(
                "CreateBucket {bucket}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// An object_store client for `bucket` on this server (path-style, plain
    /// HTTP, signed with the test keys, at most one retry).
    pub fn store(&self, bucket: &str) -> AmazonS3 {
        self.store_with(bucket, ACCESS_KEY, SECRET_KEY)
    }

    /// Like [`S3Server::store`] with other keys (to see them refused).
    pub fn store_with(&self, bucket: &str, access_key: &str, secret: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            // Client options first: they replace allow_http.
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_secs(10))
                    .with_connect_timeout(Duration::from_secs(2)),
            )
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(REGION)
            .with_bucket_name(bucket)
            .with_access_key_id(access_key)
            .with_secret_access_key(secret)
            .with_retry(RetryConfig {
                max_retries: 1,
                retry_timeout: Duration::from_secs(5),
                ..RetryConfig::default()
            })
            .build()
            .unwrap_or_else(|e| panic!("object_store client for {bucket}: {e}"))
    }

    /// Keys of the objects in `bucket` under `prefix` (all of them for ""),
    /// sorted, listed through the S3 API (ListObjectsV2).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        self.try_list(bucket, prefix)
            .await
            .unwrap_or_else(|e| panic!("LIST {bucket}/{prefix}: {e}"))
    }

    pub async fn try_list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<String>, object_store::Error> {
        let store = self.store(bucket);
        let prefix = prefix.trim_matches('/');
        let prefix = (!prefix.is_empty()).then(|| ObjectPath::from(prefix));
        let listing = store.list(prefix.as_ref()).try_collect::<Vec<_>>();
        let objects = tokio::time::timeout(Duration::from_secs(20), listing)
            .await
            .map_err(|_| object_store::Error::Generic {
                store: "S3",
                source: "listing timed out".into(),
            })??;
        let mut keys: Vec<String> = objects
            .into_iter()
            .map(|o| o.location.to_string())
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// The content of `bucket/key` (GetObject).
    pub async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.try_get(bucket, key)
            .await
            .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e}"))
    }

    pub async fn try_get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, object_store::Error> {
        let store = self.store(bucket);
        // Keys are stored escaped (see docs/storage.md): parse, don't escape again.
        let path = ObjectPath::parse(key)?;
        let result = store.get(&path).await?;
        Ok(result.bytes().await?.to_vec())
    }

    /// Every request received since the start or the last reset, in order.
    pub fn requests(&self) -> Vec<S3Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets the requests recorded so far.
    pub fn reset_requests(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.clear();
        }
    }

    /// Requests since the last reset by kind: the operation name, with
    /// `+range` for a GetObject that carried a Range header.
    pub fn request_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.requests() {
            let kind = if call.is_ranged_get() {
                "GetObject+range".to_string()
            } else {
                call.op.clone()
            };
            *counts.entry(kind).or_insert(0) += 1;
        }
        counts
    }

    /// How many requests of operation `op` were received since the last
    /// reset.
    pub fn count(&self, op: &str) -> usize {
        self.requests().iter().filter(|c| c.op == op).count()
    }

    /// Stops serving: closes the listener and every open connection, so
    /// clients get "connection refused" until [`S3Server::restart`].
    pub async fn stop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            // Awaiting the aborted task guarantees the listener is dropped.
            let _ = accept.await;
        }
        let open: Vec<AbortHandle> = self
            .connections
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for connection in open {
            connection.abort();
        }
        // Let the runtime run the cancellations (closing the sockets).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Serves again on the same port with the same data.
    pub async fn restart(&mut self) {
        if self.is_running() {
            self.stop().await;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + REBIND_TIMEOUT;
        let listener = loop {
            match StdListener::bind(addr) {
                Ok(listener) => break listener,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("S3 server: rebinding {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("S3 server cannot listen on {addr} again: {e}"),
            }
        };
        self.serve(listener);
    }

    /// Spawns the accept loop on the server's runtime.
    fn serve(&mut self, listener: StdListener) {
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("S3 server listener: {e}"));
        let runtime = self.runtime.as_ref().expect("S3 server runtime");
        let service = self.service.clone();
        let connections = Arc::clone(&self.connections);
        let handle = runtime.handle().clone();
        self.accept = Some(runtime.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => panic!("S3 server listener: {e}"),
            };
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = match listener.accept().await {
                    Ok((socket, _)) => socket,
                    Err(e) => {
                        eprintln!("S3 server: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let connection = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                let task = handle.spawn(async move {
                    let _ = connection.await;
                });
                if let Ok(mut open) = connections.lock() {
                    open.retain(|c| !c.is_finished());
                    open.push(task.abort_handle());
                }
            }
        }));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may block, which is not allowed inside the
            // test's async context; this does not wait.
            runtime.shutdown_background();
        }
    }
}

/// `{"access_key_id":"…","secret_access_key":"…"}`.
pub fn credentials_json(access_key: &str, secret: &str) -> String {
    serde_json::json!({"access_key_id": access_key, "secret_access_key": secret}).to_string()
}

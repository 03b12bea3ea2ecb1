//! S3 storages end to end, against an S3-protocol server the tests start
//! in-process (`common::s3`: s3s + s3s-fs on loopback, SigV4 on).

mod common;

use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use common::s3::{ACCESS_KEY, S3Server};
use common::timed;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The harness alone: put/list/get/delete through the S3 API, a wrong secret
/// refused, requests counted, stop → connection refused, restart → same data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_harness_serves_signed_requests_and_stops() {
    timed("s3 harness", TEST_TIMEOUT, async {
        let mut s3 = S3Server::start().await;
        s3.create_bucket("harness").await;
        let store = s3.store("harness");
        for key in ["a/one.txt", "a/b/two.txt", "c/three.txt"] {
            store
                .put(
                    &ObjectPath::from(key),
                    PutPayload::from(key.as_bytes().to_vec()),
                )
                .await
                .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
        }
        assert_eq!(
            s3.list("harness", "").await,
            ["a/b/two.txt", "a/one.txt", "c/three.txt"]
        );
        assert_eq!(s3.list("harness", "a").await, ["a/b/two.txt", "a/one.txt"]);
        assert_eq!(s3.get("harness", "c/three.txt").await, b"c/three.txt");

        // Counting: one full GET and one ranged GET.
        s3.reset_requests();
        s3.get("harness", "a/one.txt").await;
        let part = store
            .get_range(&ObjectPath::from("a/one.txt"), 2..5)
            .await
            .unwrap();
        assert_eq!(&part[..], b"one");
        let counts = s3.request_counts();
        assert_eq!(counts.get("GetObject"), Some(&1), "{counts:?}");
        assert_eq!(counts.get("GetObject+range"), Some(&1), "{counts:?}");
        let calls = s3.requests();
        assert!(calls.iter().all(|c| c.signed), "{calls:?}");
        assert_eq!(calls[1].key.as_deref(), Some("a/one.txt"));

        store.delete(&ObjectPath::from("a/one.txt")).await.unwrap();
        assert_eq!(s3.list("harness", "a").await, ["a/b/two.txt"]);

        // A wrong secret is refused with an authentication error.
        let wrong = s3.store_with("harness", ACCESS_KEY, "not-the-secret");
        let err = wrong
            .get(&ObjectPath::from("c/three.txt"))
            .await
            .expect_err("a request signed with a wrong secret succeeded");
        let text = err.to_string();
        assert!(
            text.contains("SignatureDoesNotMatch") || text.contains("403"),
            "unexpected error for a wrong secret: {text}"
        );
        let wrong_key = s3.store_with("harness", "nobody", "x");
        let err = wrong_key
            .list_with_delimiter(None)
            .await
            .expect_err("an unknown access key was accepted");
        assert!(
            err.to_string().contains("403") || err.to_string().contains("InvalidAccessKeyId"),
            "{err}"
        );

        // Stopped: connection refused, quickly. Restarted: same port, same data.
        s3.stop().await;
        assert!(!s3.is_running());
        let refused = std::net::TcpStream::connect(("127.0.0.1", s3.port()));
        assert!(
            refused.is_err(),
            "the stopped server still accepts connections"
        );
        let started = std::time::Instant::now();
        assert!(s3.try_get("harness", "c/three.txt").await.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
        s3.restart().await;
        assert_eq!(s3.get("harness", "c/three.txt").await, b"c/three.txt");
        assert_eq!(s3.list("harness", "").await, ["a/b/two.txt", "c/three.txt"]);
    })
    .await;
}

//! LISTEN/NOTIFY: notifications reach an idle listener with no query from it;
//! NOTIFY and pg_notify() between sessions, at COMMIT and never on ROLLBACK;
//! UNLISTEN; limits; table channels (`ns_t`) carrying each committed change
//! of the rows the listener may see.

mod common;

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls, Notification};

use common::{TestServer, exec, sqlstate, timed};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A client whose notifications arrive on a channel.
async fn listener(
    server: &TestServer,
    user: &str,
) -> (Client, mpsc::UnboundedReceiver<Notification>) {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} password=pw dbname=strata",
        server.port()
    );
    let (client, mut connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n);
            }
        }
    });
    (client, rx)
}

async fn heard(rx: &mut mpsc::UnboundedReceiver<Notification>) -> Notification {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the connection goes on")
}

async fn silent(rx: &mut mpsc::UnboundedReceiver<Notification>, wait: Duration) {
    if let Ok(n) = tokio::time::timeout(wait, rx.recv()).await {
        panic!("unexpected notification: {n:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_reaches_idle_listeners_at_commit() {
    timed("notify", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let (a, mut a_rx) = listener(&server, "root").await;
        let (b, _b_rx) = listener(&server, "root").await;
        exec(&a, "LISTEN jobs; LISTEN \"Ünïcode #%/..\"").await;
        let b_pid = common::one(&b, "SELECT pg_backend_pid()").await;

        // The listener sends nothing; the notification still arrives.
        exec(&b, "NOTIFY jobs, 'hello'").await;
        let n = heard(&mut a_rx).await;
        assert_eq!((n.channel(), n.payload()), ("jobs", "hello"));
        assert_eq!(n.process_id().to_string(), b_pid);
        exec(&b, "SELECT pg_notify('jobs', 'from a function')").await;
        assert_eq!(heard(&mut a_rx).await.payload(), "from a function");
        exec(&b, "NOTIFY \"Ünïcode #%/..\"").await;
        let n = heard(&mut a_rx).await;
        assert_eq!((n.channel(), n.payload()), ("Ünïcode #%/..", ""));
        // Channels nobody listens on go nowhere.
        exec(&b, "NOTIFY other, 'x'").await;

        // In a block: at COMMIT, once per distinct payload; never on ROLLBACK.
        exec(
            &b,
            "BEGIN; NOTIFY jobs, 'one'; NOTIFY jobs, 'one'; NOTIFY jobs, 'two'",
        )
        .await;
        silent(&mut a_rx, Duration::from_millis(400)).await;
        exec(&b, "COMMIT").await;
        assert_eq!(heard(&mut a_rx).await.payload(), "one");
        assert_eq!(heard(&mut a_rx).await.payload(), "two");
        exec(&b, "BEGIN; NOTIFY jobs, 'lost'; ROLLBACK").await;
        silent(&mut a_rx, Duration::from_millis(400)).await;

        // A listener inside its own block hears it when the block ends.
        exec(&a, "BEGIN").await;
        exec(&b, "NOTIFY jobs, 'later'").await;
        silent(&mut a_rx, Duration::from_millis(400)).await;
        exec(&a, "COMMIT").await;
        assert_eq!(heard(&mut a_rx).await.payload(), "later");

        // Limits are errors, not truncation.
        let long = "x".repeat(8000);
        let e = b
            .batch_execute(&format!("NOTIFY jobs, '{long}'"))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");
        let e = b
            .batch_execute("SELECT pg_notify(NULL, 'x')")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("22023"), "{e:?}");

        exec(&a, "UNLISTEN jobs").await;
        exec(&b, "NOTIFY jobs, 'unheard'").await;
        silent(&mut a_rx, Duration::from_millis(400)).await;
        exec(&a, "UNLISTEN *").await;
        exec(&b, "NOTIFY \"Ünïcode #%/..\", 'unheard'").await;
        silent(&mut a_rx, Duration::from_millis(400)).await;
        assert_eq!(common::one(&a, "SELECT 1").await, "1");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_channels_carry_the_listeners_own_changes() {
    timed("table channels", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let root = server.client().await;
        exec(
            &root,
            "CREATE NAMESPACE app;
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT);
             CREATE TABLE app.secret (id BIGINT PRIMARY KEY);
             CREATE USER alice WITH PASSWORD 'pw' ROLE user;
             CREATE USER bob WITH PASSWORD 'pw' ROLE user;",
        )
        .await;
        let (alice, mut rx) = listener(&server, "alice").await;
        exec(&alice, "LISTEN app_notes").await;
        let e = alice.batch_execute("LISTEN app_secret").await.unwrap_err();
        assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e:?}");
        let (bob, _) = listener(&server, "bob").await;
        exec(&bob, "INSERT INTO app.notes VALUES (1, 'bob''s')").await;
        let (aw, _) = listener(&server, "alice").await;
        exec(&aw, "INSERT INTO app.notes VALUES (7, 'mine')").await;
        let n = heard(&mut rx).await;
        assert_eq!(n.channel(), "app_notes");
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        assert_eq!(v["op"], "insert");
        assert_eq!(v["pk"], 7);
        assert!(v["seq"].as_u64().unwrap() > 0, "{v}");
        exec(
            &aw,
            "UPDATE app.notes SET body = 'x' WHERE id = 7; DELETE FROM app.notes WHERE id = 7",
        )
        .await;
        let ops: Vec<String> = [heard(&mut rx).await, heard(&mut rx).await]
            .iter()
            .map(|n| {
                serde_json::from_str::<serde_json::Value>(n.payload()).unwrap()["op"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ops, ["update", "delete"]);
        // Bob's rows were never heard.
        silent(&mut rx, Duration::from_millis(400)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_never_reads_holds_up_nothing() {
    timed("stalled listener", TEST_TIMEOUT, async {
        let server = TestServer::start().await;
        let mut raw = common::raw::RawConn::login(server.port(), "root")
            .await
            .unwrap();
        assert_eq!(
            raw.roundtrip(&common::raw::query("LISTEN flood"))
                .await
                .unwrap(),
            None
        );
        let sender = server.client().await;
        let before = server.rss_kib().unwrap();
        // 8 MB of notifications for a client that reads none of them: more
        // than its socket and its mailbox (1 MiB) hold.
        let payload = "p".repeat(7000);
        for _ in 0..20 {
            let batch: Vec<String> = (0..60)
                .map(|_| format!("NOTIFY flood, '{payload}'"))
                .collect();
            exec(&sender, &batch.join(";")).await;
        }
        let after = server.rss_kib().unwrap();
        assert!(
            after.saturating_sub(before) < 64 * 1024,
            "server memory grew from {before} KiB to {after} KiB"
        );
        // The listener's connection still answers once it reads again; the
        // notifications kept for it were bounded.
        raw.send(&common::raw::query("SELECT 1")).await.unwrap();
        let mut notes = 0;
        let mut answered = false;
        loop {
            let (tag, _) = raw.next(Duration::from_secs(10)).await.unwrap();
            match tag {
                b'A' => notes += 1,
                b'D' => answered = true,
                b'Z' => break,
                _ => {}
            }
        }
        assert!(answered, "SELECT 1 was answered");
        assert!(
            notes < 6000,
            "{notes} notifications kept for a stalled listener"
        );
    })
    .await;
}

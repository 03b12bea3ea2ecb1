//! LISTEN/NOTIFY between sessions: channels, each with the connections that
//! listen on it. A connection's notifications go to its mailbox, a queue its
//! socket loop delivers from whenever the connection is idle, bounded in
//! count and in bytes; a notification for a full mailbox is dropped and
//! counted, never waited for, so a listener that does not read can neither
//! hold up a writer nor make the server hold its backlog.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Notifications a connection may have waiting for delivery.
pub const MAILBOX: usize = 10_000;
/// Bytes of channel names and payloads a connection may have waiting.
pub const MAILBOX_BYTES: usize = 1 << 20;

/// One NotificationResponse: the sending backend's pid, channel, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub pid: i32,
    pub channel: String,
    pub payload: String,
}

impl Notification {
    fn bytes(&self) -> usize {
        self.channel.len() + self.payload.len()
    }
}

/// Where a connection's notifications go.
#[derive(Debug, Clone)]
pub struct Mailbox {
    tx: mpsc::Sender<Notification>,
    /// Bytes waiting, shared with the receiving end.
    bytes: Arc<AtomicUsize>,
}

impl Mailbox {
    /// Resolves when the connection has gone.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The connection's end of its mailbox.
#[derive(Debug)]
pub struct MailboxReceiver {
    rx: mpsc::Receiver<Notification>,
    bytes: Arc<AtomicUsize>,
}

impl MailboxReceiver {
    pub async fn recv(&mut self) -> Option<Notification> {
        let n = self.rx.recv().await?;
        self.bytes.fetch_sub(n.bytes(), Ordering::Relaxed);
        Some(n)
    }
}

/// A connection's mailbox, for its socket loop to deliver from.
pub fn mailbox() -> (Mailbox, MailboxReceiver) {
    let (tx, rx) = mpsc::channel(MAILBOX);
    let bytes = Arc::new(AtomicUsize::new(0));
    (
        Mailbox {
            tx,
            bytes: bytes.clone(),
        },
        MailboxReceiver { rx, bytes },
    )
}

#[derive(Debug, Default)]
pub struct Notifier {
    /// channel → listening pid → its mailbox.
    channels: Mutex<HashMap<String, HashMap<i32, Mailbox>>>,
    dropped: AtomicU64,
}

impl Notifier {
    pub fn listen(&self, channel: &str, pid: i32, mailbox: Mailbox) {
        self.channels
            .lock()
            .entry(channel.to_string())
            .or_default()
            .insert(pid, mailbox);
    }

    pub fn unlisten(&self, channel: &str, pid: i32) {
        let mut channels = self.channels.lock();
        if let Some(listeners) = channels.get_mut(channel) {
            listeners.remove(&pid);
            if listeners.is_empty() {
                channels.remove(channel);
            }
        }
    }

    pub fn unlisten_all(&self, pid: i32) {
        self.channels.lock().retain(|_, listeners| {
            listeners.remove(&pid);
            !listeners.is_empty()
        });
    }

    /// Sends to every connection listening on `channel` (the sender's own too,
    /// as in Postgres).
    pub fn notify(&self, channel: &str, payload: &str, from_pid: i32) {
        let listeners: Vec<Mailbox> = match self.channels.lock().get(channel) {
            Some(l) => l.values().cloned().collect(),
            None => return,
        };
        for mailbox in listeners {
            deliver(
                &mailbox,
                Notification {
                    pid: from_pid,
                    channel: channel.to_string(),
                    payload: payload.to_string(),
                },
                &self.dropped,
            );
        }
    }

    /// Puts one notification in one mailbox (a table channel's change).
    pub fn send_to(&self, mailbox: &Mailbox, notification: Notification) {
        deliver(mailbox, notification, &self.dropped);
    }

    /// Notifications dropped because a mailbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn deliver(mailbox: &Mailbox, n: Notification, dropped: &AtomicU64) {
    let size = n.bytes();
    let waiting = mailbox.bytes.fetch_add(size, Ordering::Relaxed);
    let result = if waiting + size > MAILBOX_BYTES {
        Err(mpsc::error::TrySendError::Full(n))
    } else {
        mailbox.tx.try_send(n)
    };
    if result.is_err() {
        mailbox.bytes.fetch_sub(size, Ordering::Relaxed);
    }
    match result {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(n)) => {
            dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                channel = %n.channel,
                "a listener's notification queue is full: notification dropped"
            );
        }
    }
}

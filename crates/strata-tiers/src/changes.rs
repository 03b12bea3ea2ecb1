//! Committed changes, fanned out to live queries (`SUBSCRIBE`).
//!
//! Writers publish after their commit, only when someone listens; each
//! subscriber reads from a bounded broadcast queue, so a slow subscriber never
//! slows a writer: it falls behind and is cut off instead.

use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many committed change sets a subscriber may fall behind.
pub const CHANGE_QUEUE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Change {
    pub op: ChangeOp,
    /// The new version's `_seq`; for a delete, the commit's last `_seq`.
    pub seq: u64,
    /// The new row; for a delete, the row that was deleted.
    pub row: Vec<ScalarValue>,
    /// For an update, the row it replaced (a filter it no longer passes
    /// makes it a delete for that subscriber).
    pub old: Option<Vec<ScalarValue>>,
}

/// One commit's changes to one partition of one table.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub table_id: u32,
    pub user: String,
    pub changes: Vec<Change>,
}

#[derive(Debug)]
pub struct ChangeBus {
    tx: broadcast::Sender<Arc<ChangeSet>>,
}

impl Default for ChangeBus {
    fn default() -> Self {
        ChangeBus {
            tx: broadcast::channel(CHANGE_QUEUE).0,
        }
    }
}

impl ChangeBus {
    /// Whether any live query listens (writers skip the work otherwise).
    pub fn listened(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub fn publish(&self, set: ChangeSet) {
        if !set.changes.is_empty() {
            let _ = self.tx.send(Arc::new(set));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeSet>> {
        self.tx.subscribe()
    }
}

/// An open subscription, for `system.live_queries` and `KILL LIVE QUERY`.
#[derive(Debug)]
pub struct LiveQuery {
    pub live_id: String,
    pub user: String,
    pub namespace: String,
    pub table: String,
    pub query: String,
    pub created_at: i64,
    pub changes_sent: std::sync::atomic::AtomicU64,
    /// µs of the last change sent; 0 before the first.
    pub last_change_at: std::sync::atomic::AtomicI64,
    kill: tokio::sync::watch::Sender<bool>,
}

impl LiveQuery {
    /// Resolves when the subscription is killed.
    pub fn killed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.kill.subscribe()
    }

    pub fn sent(&self, rows: usize, at: i64) {
        use std::sync::atomic::Ordering;
        self.changes_sent.fetch_add(rows as u64, Ordering::Relaxed);
        self.last_change_at.store(at, Ordering::Relaxed);
    }
}

/// The open subscriptions, by id.
#[derive(Debug, Default)]
pub struct LiveQueries {
    open: parking_lot::Mutex<std::collections::BTreeMap<String, Arc<LiveQuery>>>,
}

/// Removes its subscription from the registry when the stream goes.
#[derive(Debug)]
pub struct LiveGuard {
    registry: Arc<LiveQueries>,
    pub query: Arc<LiveQuery>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.query.live_id);
    }
}

impl LiveQueries {
    pub fn register(
        self: &Arc<Self>,
        user: &str,
        namespace: &str,
        table: &str,
        query: &str,
        now: i64,
    ) -> LiveGuard {
        let id = format!("LQ-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let query = Arc::new(LiveQuery {
            live_id: id.clone(),
            user: user.into(),
            namespace: namespace.into(),
            table: table.into(),
            query: query.into(),
            created_at: now,
            changes_sent: Default::default(),
            last_change_at: Default::default(),
            kill: tokio::sync::watch::channel(false).0,
        });
        self.open.lock().insert(id, query.clone());
        LiveGuard {
            registry: self.clone(),
            query,
        }
    }

    pub fn list(&self) -> Vec<Arc<LiveQuery>> {
        self.open.lock().values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveQuery>> {
        self.open.lock().get(id).cloned()
    }

    /// Ends a subscription; false if there is none by that id.
    pub fn kill(&self, id: &str) -> bool {
        match self.get(id) {
            Some(q) => {
                let _ = q.kill.send(true);
                true
            }
            None => false,
        }
    }
}

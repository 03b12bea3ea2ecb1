//! Committed changes, fanned out to live queries (`SUBSCRIBE`).
//!
//! Writers publish after their commit, only when someone listens; each
//! subscriber reads from a bounded broadcast queue, so a slow subscriber never
//! slows a writer: it falls behind and is cut off instead.

use datafusion::scalar::ScalarValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::sync::broadcast;

/// How many committed change sets a subscriber may fall behind, unless
/// `[live] queue_size` says otherwise.
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
    /// Made at first use, with the capacity set by then.
    tx: std::sync::OnceLock<broadcast::Sender<Arc<ChangeSet>>>,
    capacity: std::sync::atomic::AtomicUsize,
    /// Held shared by each writer from deciding whether to describe its
    /// changes until it has published them; a new subscriber takes it
    /// exclusively once, so no writer that decided before it started can
    /// commit after its snapshot unseen.
    gate: tokio::sync::RwLock<()>,
    published: AtomicU64,
}

impl Default for ChangeBus {
    fn default() -> Self {
        ChangeBus {
            tx: std::sync::OnceLock::new(),
            capacity: CHANGE_QUEUE.into(),
            gate: Default::default(),
            published: AtomicU64::new(0),
        }
    }
}

impl ChangeBus {
    /// A writer's pass; see `gate`.
    pub async fn writing(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// Waits until every writer that may have missed a new subscriber is done.
    pub async fn settle(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    /// How many change sets a subscriber may fall behind; takes effect
    /// only before the first subscription (the server sets it at startup).
    pub fn set_capacity(&self, capacity: usize) {
        self.capacity
            .store(capacity.clamp(1, 1 << 20), Ordering::Relaxed);
    }

    fn tx(&self) -> &broadcast::Sender<Arc<ChangeSet>> {
        self.tx
            .get_or_init(|| broadcast::channel(self.capacity.load(Ordering::Relaxed)).0)
    }

    /// Whether any live query listens (writers skip the work otherwise).
    pub fn listened(&self) -> bool {
        self.tx.get().is_some_and(|tx| tx.receiver_count() > 0)
    }

    pub fn publish(&self, set: ChangeSet) {
        if !set.changes.is_empty() && self.tx().send(Arc::new(set)).is_ok() {
            self.published.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many change sets have been published (for subscribers' lag).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeSet>> {
        self.tx().subscribe()
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
    pub changes_sent: AtomicU64,
    /// µs of the last change sent; 0 before the first.
    pub last_change_at: AtomicI64,
    /// How many of the bus's change sets this subscriber has taken (it
    /// started at the count published then); the difference is its lag.
    pub consumed: AtomicU64,
    kill: tokio::sync::watch::Sender<bool>,
}

impl LiveQuery {
    /// Resolves when the subscription is killed.
    pub fn killed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.kill.subscribe()
    }

    /// Change sets published that this subscriber has not taken yet.
    pub fn lag(&self, bus: &ChangeBus) -> u64 {
        bus.published()
            .saturating_sub(self.consumed.load(Ordering::Relaxed))
    }

    /// The subscriber took `n` change sets off the bus (or lost them).
    pub fn took(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sent(&self, rows: usize, at: i64) {
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
    /// `published` is the bus's count when the subscriber started listening.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        self: &Arc<Self>,
        published: u64,
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
            consumed: AtomicU64::new(published),
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

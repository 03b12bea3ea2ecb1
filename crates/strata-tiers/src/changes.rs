//! Committed changes, fanned out to live queries (`SUBSCRIBE`) and table
//! channels (`LISTEN ns_t`).
//!
//! Each subscriber has its own bounded queue, registered under the table
//! and partition (user) it follows: a commit is handed only to the queues of
//! its partition, so the cost of a commit does not grow with the number of
//! subscribers elsewhere, and a queue holds only what is waiting in it.
//! Writers publish after their commit and never wait: a subscriber whose
//! queue is full is marked lagged and fed nothing more; it drains what it
//! has (all in order) and is then cut off, naming where to resume.

use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;

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
    /// The change's own `_seq` (a put's new version's; a delete's is one
    /// of the commit's numbers too).
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

type Key = (u32, String);

/// One subscriber's end as the publisher sees it.
#[derive(Debug)]
struct Route {
    id: u64,
    tx: mpsc::Sender<Arc<ChangeSet>>,
    lagged: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Routes {
    by_key: HashMap<Key, Vec<Route>>,
    /// Subscribers per table: writers describe their changes only for these.
    tables: HashMap<u32, usize>,
}

#[derive(Debug)]
struct Inner {
    routes: Mutex<Routes>,
    /// How many receivers there are, read without the lock by every writer.
    receivers: AtomicUsize,
    next_id: AtomicU64,
    capacity: AtomicUsize,
}

impl Inner {
    fn remove(&self, key: &Key, id: u64) {
        let mut routes = self.routes.lock();
        if let Some(list) = routes.by_key.get_mut(key) {
            let before = list.len();
            list.retain(|r| r.id != id);
            let removed = before - list.len();
            if list.is_empty() {
                routes.by_key.remove(key);
            }
            self.receivers.fetch_sub(removed, Ordering::Relaxed);
            if removed > 0
                && let Some(n) = routes.tables.get_mut(&key.0)
            {
                *n = n.saturating_sub(removed);
                if *n == 0 {
                    routes.tables.remove(&key.0);
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct ChangeBus {
    inner: Arc<Inner>,
    /// Held shared by each writer from deciding whether to describe its
    /// changes until it has published them; a new subscriber takes it
    /// exclusively once, so no writer that decided before it started can
    /// commit after its snapshot unseen.
    gate: tokio::sync::RwLock<()>,
}

impl Default for ChangeBus {
    fn default() -> Self {
        ChangeBus {
            inner: Arc::new(Inner {
                routes: Mutex::new(Routes::default()),
                receivers: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                capacity: AtomicUsize::new(CHANGE_QUEUE),
            }),
            gate: Default::default(),
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

    /// How many change sets a subscriber may fall behind (for subscribers
    /// that start after this).
    pub fn set_capacity(&self, capacity: usize) {
        self.inner
            .capacity
            .store(capacity.clamp(1, 1 << 20), Ordering::Relaxed);
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity.load(Ordering::Relaxed)
    }

    /// Whether anyone follows `table_id` (writers skip the work otherwise).
    pub fn listened(&self, table_id: u32) -> bool {
        self.inner.receivers.load(Ordering::Relaxed) > 0
            && self.inner.routes.lock().tables.contains_key(&table_id)
    }

    /// Hands a committed change set to the queues of its partition.
    pub fn publish(&self, set: ChangeSet) {
        if set.changes.is_empty() {
            return;
        }
        let key = (set.table_id, set.user.clone());
        let set = Arc::new(set);
        let mut gone = vec![];
        {
            let routes = self.inner.routes.lock();
            let Some(list) = routes.by_key.get(&key) else {
                return;
            };
            for r in list {
                if r.lagged.load(Ordering::Relaxed) {
                    continue;
                }
                match r.tx.try_send(set.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Nothing more after a gap: the subscriber drains what
                        // it has, then ends.
                        r.lagged.store(true, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => gone.push(r.id),
                }
            }
        }
        for id in gone {
            self.inner.remove(&key, id);
        }
    }

    /// A queue for the changes of one partition (`user` empty for SHARED
    /// and STREAM tables).
    pub fn subscribe(&self, table_id: u32, user: &str) -> ChangeReceiver {
        let (tx, rx) = mpsc::channel(self.inner.capacity.load(Ordering::Relaxed));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let lagged = Arc::new(AtomicBool::new(false));
        let key = (table_id, user.to_string());
        {
            let mut routes = self.inner.routes.lock();
            routes.by_key.entry(key.clone()).or_default().push(Route {
                id,
                tx: tx.clone(),
                lagged: lagged.clone(),
            });
            *routes.tables.entry(table_id).or_default() += 1;
            self.inner.receivers.fetch_add(1, Ordering::Relaxed);
        }
        ChangeReceiver {
            inner: self.inner.clone(),
            key,
            id,
            rx,
            queue: tx.downgrade(),
            lagged,
        }
    }
}

/// Why a receiver has no more changes.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvEnd {
    /// Its queue overflowed: changes after what it received are missing.
    Lagged,
    Closed,
}

/// A subscriber's queue; leaving it unregisters the subscriber.
#[derive(Debug)]
pub struct ChangeReceiver {
    inner: Arc<Inner>,
    key: Key,
    id: u64,
    rx: mpsc::Receiver<Arc<ChangeSet>>,
    queue: mpsc::WeakSender<Arc<ChangeSet>>,
    lagged: Arc<AtomicBool>,
}

impl Drop for ChangeReceiver {
    fn drop(&mut self) {
        self.inner.remove(&self.key, self.id);
    }
}

impl ChangeReceiver {
    /// The next change set, in commit order; after an overflow, what was
    /// queued before it, then `Lagged`.
    pub async fn recv(&mut self) -> Result<Arc<ChangeSet>, RecvEnd> {
        match self.rx.try_recv() {
            Ok(set) => return Ok(set),
            Err(mpsc::error::TryRecvError::Disconnected) => return Err(RecvEnd::Closed),
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        if self.lagged.load(Ordering::Relaxed) {
            return Err(RecvEnd::Lagged);
        }
        self.rx.recv().await.ok_or(RecvEnd::Closed)
    }

    /// A handle that tells how many change sets wait in this queue.
    pub fn depth(&self) -> QueueDepth {
        QueueDepth(self.queue.clone())
    }
}

/// How many change sets wait in a subscriber's queue.
#[derive(Debug, Clone)]
pub struct QueueDepth(mpsc::WeakSender<Arc<ChangeSet>>);

impl QueueDepth {
    pub fn get(&self) -> u64 {
        self.0
            .upgrade()
            .map_or(0, |tx| (tx.max_capacity() - tx.capacity()) as u64)
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
    /// Its queue, for the lag: change sets waiting to be sent.
    depth: QueueDepth,
    kill: tokio::sync::watch::Sender<bool>,
}

impl LiveQuery {
    /// Resolves when the subscription is killed.
    pub fn killed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.kill.subscribe()
    }

    /// Committed change sets waiting in this subscriber's queue.
    pub fn lag(&self) -> u64 {
        self.depth.get()
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
    /// `depth` tells how much waits in the subscriber's queue.
    pub fn register(
        self: &Arc<Self>,
        depth: QueueDepth,
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
            depth,
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

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

//! A session's LISTEN, UNLISTEN, NOTIFY and `pg_notify()`, over the
//! server-wide channels of `strata_tiers::notify`.
//!
//! As in Postgres, NOTIFY inside a transaction block is sent at COMMIT and
//! never on ROLLBACK. A channel named after a table (`ns_t` or `"ns.t"`)
//! also carries that table's committed changes, one notification each with a
//! small JSON payload — `{"op":"insert","seq":42,"pk":7}` — for drivers that
//! only speak notifications; a USER table's listener hears only its own rows,
//! and a listener that loses access to the table hears nothing more.

use crate::context::QueryContext;
use crate::provider::partition_of;
use crate::tiers::Tiers;
use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use strata_catalog::TableDef;
use strata_common::{Result, StrataError};
use strata_tiers::changes::{ChangeReceiver, RecvEnd};
pub use strata_tiers::notify::{Mailbox, MailboxReceiver, Notification, mailbox};

/// Longest payload, as in Postgres.
pub const MAX_PAYLOAD: usize = 7999;
/// Longest channel name (Postgres' NAMEDATALEN - 1).
pub const MAX_CHANNEL: usize = 63;
/// Most channels one session may listen on.
pub const MAX_CHANNELS: usize = 10_000;

/// One session's listening state, shared with its EXECUTE AS delegates.
pub struct Listening {
    tiers: Arc<Tiers>,
    /// The connection's pid and mailbox, once it has logged in.
    me: Mutex<Option<(i32, Mailbox)>>,
    /// Channels listened on; a table channel's change forwarder with it.
    channels: Mutex<BTreeMap<String, Option<tokio::task::AbortHandle>>>,
    /// NOTIFYs of the open transaction block.
    pending: Mutex<Pending>,
}

/// A block's NOTIFYs, in order, each distinct one once.
#[derive(Default)]
struct Pending {
    order: Vec<(String, String)>,
    seen: std::collections::HashSet<(String, String)>,
    bytes: usize,
}

/// Bytes of NOTIFYs one transaction block may hold until COMMIT.
pub const MAX_PENDING_BYTES: usize = 16 << 20;

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening").finish_non_exhaustive()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some((pid, _)) = self.me.lock().take() {
            self.tiers.notifier.unlisten_all(pid);
        }
        for forwarder in self.channels.lock().values().flatten() {
            forwarder.abort();
        }
    }
}

impl Listening {
    pub fn new(tiers: Arc<Tiers>) -> Arc<Listening> {
        Arc::new(Listening {
            tiers,
            me: Mutex::new(None),
            channels: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(Pending::default()),
        })
    }

    /// Where this session's notifications go: its connection's mailbox.
    pub fn attach(&self, pid: i32, mailbox: Mailbox) {
        *self.me.lock() = Some((pid, mailbox));
    }

    fn pid(&self) -> i32 {
        self.me.lock().as_ref().map_or(0, |(pid, _)| *pid)
    }

    /// `LISTEN channel`.
    pub async fn listen(&self, session: &QueryContext, channel: &str) -> Result<()> {
        check_channel(channel)?;
        let Some((pid, mailbox)) = self.me.lock().clone() else {
            return Err(StrataError::unsupported(
                "LISTEN needs a client connection to deliver notifications to",
            ));
        };
        if self.channels.lock().contains_key(channel) {
            return Ok(());
        }
        if self.channels.lock().len() >= MAX_CHANNELS {
            return Err(StrataError::ProgramLimitExceeded(format!(
                "a session may listen on at most {MAX_CHANNELS} channels"
            )));
        }
        let forwarder = match table_channel(&self.tiers, channel) {
            Some(def) => {
                crate::privileges::check_table_access(
                    &self.tiers.catalog,
                    session.user(),
                    &def,
                    false,
                )?;
                // Between writers (as SUBSCRIBE): every change committed
                // after LISTEN returns is heard.
                let rx = {
                    let _settled = self.tiers.changes.settle().await;
                    self.tiers
                        .changes
                        .subscribe(def.id, &partition_of(&def, session.user()))
                };
                let task = tokio::spawn(forward(
                    self.tiers.clone(),
                    def,
                    session.user().to_string(),
                    channel.to_string(),
                    mailbox.clone(),
                    rx,
                ));
                Some(task.abort_handle())
            }
            None => None,
        };
        self.tiers.notifier.listen(channel, pid, mailbox);
        self.channels.lock().insert(channel.to_string(), forwarder);
        Ok(())
    }

    /// `UNLISTEN channel` or `UNLISTEN *`.
    pub fn unlisten(&self, channel: &str) {
        let pid = self.pid();
        let mut channels = self.channels.lock();
        let gone: Vec<String> = if channel == "*" {
            channels.keys().cloned().collect()
        } else {
            vec![channel.to_string()]
        };
        for c in gone {
            if let Some(forwarder) = channels.remove(&c) {
                if let Some(f) = forwarder {
                    f.abort();
                }
                self.tiers.notifier.unlisten(&c, pid);
            }
        }
    }

    /// The channels listened on (`pg_listening_channels()`).
    pub fn channels(&self) -> Vec<String> {
        self.channels.lock().keys().cloned().collect()
    }

    /// `NOTIFY channel, 'payload'`: sent now, or at COMMIT inside a block.
    pub fn notify(&self, in_block: bool, channel: &str, payload: &str) -> Result<()> {
        check_channel(channel)?;
        if payload.len() > MAX_PAYLOAD {
            return Err(StrataError::InvalidParameterValue(
                "payload string too long".into(),
            ));
        }
        if in_block {
            let mut pending = self.pending.lock();
            let entry = (channel.to_string(), payload.to_string());
            // Postgres sends a block's identical notifications once.
            if pending.seen.contains(&entry) {
                return Ok(());
            }
            let size = channel.len() + payload.len();
            if pending.bytes + size > MAX_PENDING_BYTES {
                return Err(StrataError::ProgramLimitExceeded(format!(
                    "a transaction block may hold at most {MAX_PENDING_BYTES} bytes of notifications"
                )));
            }
            pending.bytes += size;
            pending.seen.insert(entry.clone());
            pending.order.push(entry);
            return Ok(());
        }
        self.tiers.notifier.notify(channel, payload, self.pid());
        Ok(())
    }

    /// The block ended: its notifications go out if it committed.
    pub fn end_block(&self, committed: bool) {
        let pending = std::mem::take(&mut *self.pending.lock());
        if committed {
            let pid = self.pid();
            for (channel, payload) in pending.order {
                self.tiers.notifier.notify(&channel, &payload, pid);
            }
        }
    }
}

fn check_channel(channel: &str) -> Result<()> {
    if channel.is_empty() {
        return Err(StrataError::InvalidParameterValue(
            "channel name cannot be empty".into(),
        ));
    }
    if channel.len() > MAX_CHANNEL {
        return Err(StrataError::InvalidParameterValue(
            "channel name too long".into(),
        ));
    }
    Ok(())
}

/// The table a channel names: `ns.t`, or `ns_t` split at an underscore.
fn table_channel(tiers: &Tiers, channel: &str) -> Option<Arc<TableDef>> {
    if let Some((ns, t)) = channel.split_once('.') {
        return tiers.catalog.table(ns, t);
    }
    channel
        .match_indices('_')
        .find_map(|(i, _)| tiers.catalog.table(&channel[..i], &channel[i + 1..]))
}

/// Sends a table's changes the listener may see to its mailbox, until the
/// connection goes or UNLISTEN aborts it.
async fn forward(
    tiers: Arc<Tiers>,
    def: Arc<TableDef>,
    user: String,
    channel: String,
    mailbox: Mailbox,
    mut rx: ChangeReceiver,
) {
    loop {
        let got = tokio::select! {
            _ = mailbox.closed() => return,
            got = rx.recv() => got,
        };
        let payloads = match got {
            Ok(set) => {
                if crate::live::check_follower(&tiers.catalog, &user, &def).is_err() {
                    return;
                }
                let pk = def.pk_index();
                set.changes
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "op": c.op.as_str(),
                            "seq": c.seq,
                            "pk": c.row.get(pk).map_or(serde_json::Value::Null, json_value),
                        })
                        .to_string()
                    })
                    .collect()
            }
            // The queue overflowed: say so, and follow from a fresh one.
            Err(RecvEnd::Lagged) => {
                rx = tiers.changes.subscribe(def.id, &partition_of(&def, &user));
                vec![serde_json::json!({"op": "lagged"}).to_string()]
            }
            Err(RecvEnd::Closed) => return,
        };
        for payload in payloads {
            tiers.notifier.send_to(
                &mailbox,
                Notification {
                    pid: 0,
                    channel: channel.clone(),
                    payload,
                },
            );
        }
    }
}

/// A key value as JSON: numbers and booleans as themselves, the rest as text.
fn json_value(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value;
    match v {
        v if v.is_null() => Value::Null,
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(Some(x)) => (*x).into(),
        ScalarValue::Int16(Some(x)) => (*x).into(),
        ScalarValue::Int32(Some(x)) => (*x).into(),
        ScalarValue::Int64(Some(x)) => (*x).into(),
        ScalarValue::UInt8(Some(x)) => (*x).into(),
        ScalarValue::UInt16(Some(x)) => (*x).into(),
        ScalarValue::UInt32(Some(x)) => (*x).into(),
        ScalarValue::UInt64(Some(x)) => (*x).into(),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// `pg_notify(channel, payload)`, `pg_listening_channels()` and
/// `pg_backend_pid()` (the pid notifications carry) on a session's
/// DataFusion context.
pub fn register_functions(
    ctx: &SessionContext,
    listening: &Arc<Listening>,
    txn: &crate::txn::TxnHandle,
) {
    for (name, arity) in [
        ("pg_notify", 2),
        ("pg_listening_channels", 0),
        ("pg_backend_pid", 0),
    ] {
        ctx.register_udf(ScalarUDF::from(NotifyFn {
            name,
            listening: listening.clone(),
            txn: txn.clone(),
            signature: if arity == 0 {
                Signature::nullary(Volatility::Volatile)
            } else {
                Signature::any(arity, Volatility::Volatile)
            },
        }));
    }
}

struct NotifyFn {
    name: &'static str,
    listening: Arc<Listening>,
    txn: crate::txn::TxnHandle,
    signature: Signature,
}

impl std::fmt::Debug for NotifyFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for NotifyFn {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.listening, &other.listening)
    }
}

impl Eq for NotifyFn {}

impl std::hash::Hash for NotifyFn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        (Arc::as_ptr(&self.listening) as usize).hash(state);
    }
}

impl ScalarUDFImpl for NotifyFn {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(match self.name {
            "pg_backend_pid" => DataType::Int32,
            _ => DataType::Utf8,
        })
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let external = |e: StrataError| datafusion::error::DataFusionError::External(Box::new(e));
        if self.name == "pg_backend_pid" {
            let pid = self.listening.pid();
            return Ok(ColumnarValue::Scalar(ScalarValue::Int32(Some(pid))));
        }
        if self.name == "pg_listening_channels" {
            // A set-returning function in Postgres; here the channels as one
            // comma-separated value.
            let joined = self.listening.channels().join(",");
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(joined))));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| -> datafusion::error::Result<StringArray> {
            let a = datafusion::arrow::compute::cast(&arrays[i], &DataType::Utf8)?;
            Ok(a.as_any()
                .downcast_ref::<StringArray>()
                .cloned()
                .unwrap_or_else(|| StringArray::from(vec![None::<&str>; a.len()])))
        };
        let (channels, payloads) = (text(0)?, text(1)?);
        let in_block = self.txn.in_block();
        for i in 0..channels.len().min(payloads.len()) {
            if channels.is_null(i) {
                return Err(external(StrataError::InvalidParameterValue(
                    "channel name cannot be empty".into(),
                )));
            }
            let payload = if payloads.is_null(i) {
                ""
            } else {
                payloads.value(i)
            };
            self.listening
                .notify(in_block, channels.value(i), payload)
                .map_err(external)?;
        }
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }
}

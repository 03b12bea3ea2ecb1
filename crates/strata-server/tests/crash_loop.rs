//! Crash loop: many `kill -9` cycles across inserts, updates, deletes,
//! transaction blocks, flushes, compactions and DDL; after every restart each
//! table must equal the test's model exactly.
//!
//! Every cycle starts (or restarts) the server, connects five writers and one
//! admin session, lets them work for a random short time and then SIGKILLs the
//! server mid-work:
//!
//! - two root writers on the SHARED table `crash.items`, each owning its own
//!   key range, and one writer per user (`ann`, `bob`, `cyd`) on the USER table
//!   `crash.notes`, all three over the same key range (their rows are kept
//!   apart by the table kind). Each writer mixes multi-row INSERTs, UPDATEs and
//!   DELETEs (by key list and by key range), upserts, and BEGIN…COMMIT/ROLLBACK
//!   blocks, through the simple and the extended protocol;
//! - the admin session runs FLUSH TABLE, COMPACT TABLE, `ALTER TABLE … ADD /
//!   DROP COLUMN` and `ALTER TABLE … SET (FLUSH_POLICY = …)` (retrying 40001),
//!   and sometimes waits for a job; the flush policies are small, so the
//!   scheduler flushes too.
//!
//! Since every key is written by exactly one writer, one statement at a time,
//! the model of a key is exact: an acknowledged write is in it, a statement
//! that failed with an error is not, and the one statement (or COMMIT) in
//! flight at the kill is *uncertain*: after the restart its keys must show
//! either all of its effect or none of it (statements and blocks are atomic).
//! A block whose COMMIT was never sent must have left nothing.
//!
//! After each restart the test checks, per table: the exact rows and values
//! (no acknowledged row lost, none duplicated, no acknowledged update lost, no
//! row nobody wrote), `count(*)`, that `_seq` values are unique, that a row
//! untouched since the last check kept its `_seq` (through flushes and
//! compactions) and a row written since has a larger one than anything seen
//! before; the columns (acknowledged ADD/DROP COLUMN, each added column
//! reading its default in every row) and flush policies; and that no job the
//! crashed server started is still `queued` or `running`. The uncertain
//! outcomes are then adopted as the model, and the next cycle starts.
//!
//! `STRATA_CRASH_CYCLES` sets the number of cycles (default 10, about 25 s in
//! a debug build on 2 cores; `STRATA_CRASH_CYCLES=100` is the long run, about
//! 4 minutes). `STRATA_CRASH_SEED` replays a seed (the seed is printed at the
//! start; the kill timing still varies from run to run).
//!
//! `a_block_sees_every_committed_row_it_scans` keeps the bug the loop first
//! found (a block's scan missed committed rows) fixed without crashes.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, SimpleQueryMessage};

use common::{TestServer, simple_rows, sqlstate, timed};

const USERS: [&str; 3] = ["ann", "bob", "cyd"];
/// Keys each writer owns.
const KEYS: i64 = 100;
/// Default number of kill -9 cycles.
const DEFAULT_CYCLES: u64 = 10;
/// How long a cycle's work may run before the kill (ms): [MIN, MIN + SPREAD).
const KILL_AFTER_MIN_MS: u64 = 250;
const KILL_AFTER_SPREAD_MS: u64 = 2000;
/// At most this many extra (added) columns per table at a time.
const MAX_EXTRA_COLUMNS: usize = 2;

/// Deterministic pseudo-random numbers (xorshift64*), so a seed replays the
/// same choices (the timing of the kill still varies from run to run).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so similar seeds diverge and 0 is fine.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi_exclusive: u64) -> u64 {
        lo + self.below(hi_exclusive - lo)
    }
}

// ---------------------------------------------------------------------------
// Model

/// A row as the model knows it: its value and its `_seq` as seen at the last
/// check (`None`: written since, so its `_seq` must exceed everything seen).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    v: String,
    seq: Option<i64>,
}

/// The final image of every key a statement (or block) changes:
/// `Some(v)` = the row has value `v`, `None` = the row is gone.
type Effect = BTreeMap<i64, Option<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Items,
    Notes,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Items => "crash.items",
            Table::Notes => "crash.notes",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Table::Items => "items",
            Table::Notes => "notes",
        }
    }
}

/// One writer: who it logs in as, which table and key range it owns, and the
/// model of those keys.
struct Writer {
    name: String,
    /// `None`: root.
    user: Option<&'static str>,
    table: Table,
    base: i64,
    rows: BTreeMap<i64, Row>,
    /// Makes every written value unique.
    counter: u64,
}

/// What a writer's cycle did.
#[derive(Default)]
struct WriterOutcome {
    acked: u64,
    /// Statements or blocks refused with 40001 (nothing applied).
    conflicts: u64,
    rolled_back: u64,
    /// The statement or COMMIT in flight when the server died.
    uncertain: Option<Effect>,
}

/// The admin session's model: extra columns and flush policy per table.
#[derive(Clone)]
struct Schema {
    /// Extra columns in the order they were added: (name, default as text).
    extras: BTreeMap<&'static str, Vec<(String, String)>>,
    policy: BTreeMap<&'static str, String>,
    next_column: u64,
}

#[derive(Debug, Clone)]
enum Ddl {
    Add(Table, String, String),
    Drop(Table, String),
    Policy(Table, String),
}

impl Schema {
    fn apply(&mut self, op: &Ddl) {
        match op {
            Ddl::Add(t, name, default) => self
                .extras
                .entry(t.short())
                .or_default()
                .push((name.clone(), default.clone())),
            Ddl::Drop(t, name) => self
                .extras
                .entry(t.short())
                .or_default()
                .retain(|(n, _)| n != name),
            Ddl::Policy(t, p) => {
                self.policy.insert(t.short(), p.clone());
            }
        }
    }
    fn extras(&self, t: Table) -> &[(String, String)] {
        self.extras.get(t.short()).map(Vec::as_slice).unwrap_or(&[])
    }
}

#[derive(Default)]
struct AdminOutcome {
    jobs: Vec<String>,
    ddl_acked: u64,
    ddl_retries: u64,
    uncertain: Option<Ddl>,
}

// ---------------------------------------------------------------------------
// Helpers

fn is_conflict(e: &tokio_postgres::Error) -> bool {
    sqlstate(e).as_deref() == Some("40001")
}

/// An error the server answered (it did not apply the statement) as opposed
/// to the connection going away (the statement may or may not have landed).
fn answered(e: &tokio_postgres::Error) -> bool {
    e.code().is_some()
}

/// An error as "SQLSTATE: message" (tokio-postgres' own Display says only
/// "db error"), or the client-side error and its cause.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            db.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

async fn query(client: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    match timed(sql, Duration::from_secs(60), client.simple_query(sql)).await {
        Ok(m) => simple_rows(&m),
        Err(e) => panic!("{sql}\n  failed: {}", describe(&e)),
    }
}

fn affected(messages: &[SimpleQueryMessage]) -> Option<u64> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::CommandComplete(n) => Some(*n),
        _ => None,
    })
}

/// Runs one statement through the simple or the extended protocol and
/// returns the affected-row count.
async fn run(client: &Client, sql: &str, extended: bool) -> Result<u64, tokio_postgres::Error> {
    if extended {
        client.execute(sql, &[]).await
    } else {
        let m = client.simple_query(sql).await?;
        Ok(affected(&m).unwrap_or(0))
    }
}

fn sql_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Writers

/// One generated statement: its SQL, the count it must report, and what it
/// does to the keys (already applied to `scratch`).
struct Stmt {
    sql: String,
    count: u64,
}

impl Writer {
    fn key(&self, rng: &mut Rng) -> i64 {
        self.base + rng.below(KEYS as u64) as i64
    }

    fn value(&mut self, cycle: u64) -> String {
        self.counter += 1;
        format!("{}.{cycle}.{}", self.name, self.counter)
    }

    /// Generates one statement against `scratch` (the writer's keys as the
    /// statement will see them), applying its effect to `scratch` and `effect`.
    fn statement(
        &mut self,
        rng: &mut Rng,
        cycle: u64,
        scratch: &mut BTreeMap<i64, String>,
        effect: &mut Effect,
    ) -> Stmt {
        let t = self.table.name();
        let mut set = |scratch: &mut BTreeMap<i64, String>, id: i64, v: Option<String>| {
            match &v {
                Some(v) => scratch.insert(id, v.clone()),
                None => scratch.remove(&id),
            };
            effect.insert(id, v);
        };
        let kind = rng.below(100);
        let free: Vec<i64> = (self.base..self.base + KEYS)
            .filter(|k| !scratch.contains_key(k))
            .collect();
        if kind < 35 && !free.is_empty() {
            // Multi-row INSERT of new keys.
            let n = rng.range(1, 5) as usize;
            let mut ids = BTreeSet::new();
            for _ in 0..n {
                ids.insert(free[rng.below(free.len() as u64) as usize]);
            }
            let mut values = vec![];
            for id in &ids {
                let v = self.value(cycle);
                values.push(format!("({id}, '{v}')"));
                set(scratch, *id, Some(v));
            }
            return Stmt {
                sql: format!("INSERT INTO {t} (id, v) VALUES {}", values.join(", ")),
                count: ids.len() as u64,
            };
        }
        match kind % 6 {
            0 => {
                // UPDATE by key list, with a per-row expression.
                let ids: BTreeSet<i64> = (0..rng.range(1, 5)).map(|_| self.key(rng)).collect();
                let v = self.value(cycle);
                let mut count = 0;
                for id in &ids {
                    if scratch.contains_key(id) {
                        count += 1;
                        set(scratch, *id, Some(format!("{v}-{id}")));
                    }
                }
                let ids: Vec<i64> = ids.into_iter().collect();
                Stmt {
                    sql: format!(
                        "UPDATE {t} SET v = '{v}-' || CAST(id AS TEXT) WHERE id IN ({})",
                        sql_list(&ids)
                    ),
                    count,
                }
            }
            1 => {
                // UPDATE by key range.
                let lo = self.key(rng);
                let hi = (lo + rng.below(12) as i64).min(self.base + KEYS - 1);
                let v = self.value(cycle);
                let hit: Vec<i64> = scratch.range(lo..=hi).map(|(k, _)| *k).collect();
                for id in &hit {
                    set(scratch, *id, Some(v.clone()));
                }
                Stmt {
                    sql: format!("UPDATE {t} SET v = '{v}' WHERE id BETWEEN {lo} AND {hi}"),
                    count: hit.len() as u64,
                }
            }
            2 => {
                // DELETE by key list.
                let ids: BTreeSet<i64> = (0..rng.range(1, 4)).map(|_| self.key(rng)).collect();
                let mut count = 0;
                for id in &ids {
                    if scratch.contains_key(id) {
                        count += 1;
                        set(scratch, *id, None);
                    }
                }
                let ids: Vec<i64> = ids.into_iter().collect();
                Stmt {
                    sql: format!("DELETE FROM {t} WHERE id IN ({})", sql_list(&ids)),
                    count,
                }
            }
            3 => {
                // DELETE by key range (short ranges, so tables stay populated).
                let lo = self.key(rng);
                let hi = (lo + rng.below(5) as i64).min(self.base + KEYS - 1);
                let hit: Vec<i64> = scratch.range(lo..=hi).map(|(k, _)| *k).collect();
                for id in &hit {
                    set(scratch, *id, None);
                }
                Stmt {
                    sql: format!("DELETE FROM {t} WHERE id >= {lo} AND id <= {hi}"),
                    count: hit.len() as u64,
                }
            }
            _ => {
                // Upsert: new keys are inserted, existing ones updated.
                let ids: BTreeSet<i64> = (0..rng.range(1, 4)).map(|_| self.key(rng)).collect();
                let mut values = vec![];
                for id in &ids {
                    let v = self.value(cycle);
                    values.push(format!("({id}, '{v}')"));
                    set(scratch, *id, Some(v));
                }
                Stmt {
                    sql: format!(
                        "INSERT INTO {t} (id, v) VALUES {} ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
                        values.join(", ")
                    ),
                    count: ids.len() as u64,
                }
            }
        }
    }

    /// Adopts an acknowledged effect.
    fn apply(&mut self, effect: &Effect) {
        for (id, v) in effect {
            match v {
                Some(v) => {
                    self.rows.insert(
                        *id,
                        Row {
                            v: v.clone(),
                            seq: None,
                        },
                    );
                }
                None => {
                    self.rows.remove(id);
                }
            }
        }
    }

    fn values(&self) -> BTreeMap<i64, String> {
        self.rows.iter().map(|(k, r)| (*k, r.v.clone())).collect()
    }
}

/// The writer's rows as the server shows them (for failure messages).
async fn diagnose(client: &Client, w: &Writer) -> String {
    let sql = format!(
        "SELECT id, v, _seq FROM {} WHERE id >= {} AND id < {} ORDER BY id",
        w.table.name(),
        w.base,
        w.base + KEYS
    );
    match client.simple_query(&sql).await {
        Ok(m) => {
            let rows: Vec<String> = simple_rows(&m)
                .into_iter()
                .map(|r| {
                    let f = |i: usize| r[i].clone().unwrap_or_else(|| "NULL".into());
                    format!("{}={}@{}", f(0), f(1), f(2))
                })
                .collect();
            format!("{rows:?}")
        }
        Err(e) => format!("{sql}: {}", describe(&e)),
    }
}

/// A writer's cycle: statements and blocks until the connection dies (or a
/// generous bound is reached). Returns the writer with its model updated by
/// every acknowledged effect, and the uncertain one.
async fn write_loop(
    mut w: Writer,
    client: Client,
    seed: u64,
    cycle: u64,
) -> Result<(Writer, WriterOutcome), String> {
    let mut rng = Rng::new(seed);
    let mut out = WriterOutcome::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let mut scratch = w.values();
        let mut effect = Effect::new();
        if rng.below(100) < 22 {
            // A transaction block of 2-4 statements.
            if let Err(e) = client.simple_query("BEGIN").await {
                if answered(&e) {
                    return Err(format!("{}: BEGIN failed: {}", w.name, describe(&e)));
                }
                // Nothing was staged, let alone committed.
                return Ok((w, out));
            }
            let n = rng.range(2, 5);
            let mut failed = false;
            let mut done: Vec<String> = vec![];
            for _ in 0..n {
                let stmt = w.statement(&mut rng, cycle, &mut scratch, &mut effect);
                let extended = rng.below(2) == 0;
                match run(&client, &stmt.sql, extended).await {
                    Ok(count) => {
                        if count != stmt.count {
                            let committed: Vec<_> =
                                w.rows.iter().map(|(k, r)| format!("{k}={}", r.v)).collect();
                            let inside = diagnose(&client, &w).await;
                            let _ = client.simple_query("ROLLBACK").await;
                            let outside = diagnose(&client, &w).await;
                            return Err(format!(
                                "{} (in a block): {} (extended protocol: {extended}) reported {count} rows, the model says {}\n  \
                                 earlier in the block: {done:?}\n  committed rows (model): {committed:?}\n  \
                                 the block sees: {inside}\n  after ROLLBACK: {outside}",
                                w.name, stmt.sql, stmt.count
                            ));
                        }
                        done.push(format!("{} (extended: {extended}) -> {count}", stmt.sql));
                    }
                    Err(e) if is_conflict(&e) => {
                        failed = true;
                        break;
                    }
                    Err(e) if answered(&e) => {
                        return Err(format!(
                            "{} (in a block): {}: {}",
                            w.name,
                            stmt.sql,
                            describe(&e)
                        ));
                    }
                    // The COMMIT was never sent: the block must leave nothing.
                    Err(_) => return Ok((w, out)),
                }
            }
            if failed {
                out.conflicts += 1;
                match client.simple_query("ROLLBACK").await {
                    Ok(_) => continue,
                    Err(e) if answered(&e) => {
                        return Err(format!("{}: ROLLBACK failed: {}", w.name, describe(&e)));
                    }
                    Err(_) => return Ok((w, out)),
                }
            }
            if rng.below(10) == 0 {
                match client.simple_query("ROLLBACK").await {
                    Ok(_) => out.rolled_back += 1,
                    Err(e) if answered(&e) => {
                        return Err(format!("{}: ROLLBACK failed: {}", w.name, describe(&e)));
                    }
                    Err(_) => return Ok((w, out)),
                }
                continue;
            }
            match client.simple_query("COMMIT").await {
                Ok(_) => {
                    out.acked += 1;
                    w.apply(&effect);
                }
                Err(e) if is_conflict(&e) => out.conflicts += 1,
                Err(e) if answered(&e) => {
                    return Err(format!("{}: COMMIT failed: {}", w.name, describe(&e)));
                }
                Err(_) => {
                    out.uncertain = Some(effect);
                    return Ok((w, out));
                }
            }
        } else {
            let stmt = w.statement(&mut rng, cycle, &mut scratch, &mut effect);
            let extended = rng.below(2) == 0;
            match run(&client, &stmt.sql, extended).await {
                Ok(count) => {
                    if count != stmt.count {
                        return Err(format!(
                            "{}: {} reported {count} rows, the model says {}",
                            w.name, stmt.sql, stmt.count
                        ));
                    }
                    out.acked += 1;
                    w.apply(&effect);
                }
                Err(e) if is_conflict(&e) => out.conflicts += 1,
                Err(e) if answered(&e) => {
                    return Err(format!("{}: {}: {}", w.name, stmt.sql, describe(&e)));
                }
                Err(_) => {
                    out.uncertain = Some(effect);
                    return Ok((w, out));
                }
            }
        }
    }
    Ok((w, out))
}

// ---------------------------------------------------------------------------
// Admin: flushes, compactions, DDL

/// Runs a DDL statement, retrying 40001. `Ok(true)`: acknowledged;
/// `Ok(false)`: the connection died (the statement is uncertain).
async fn ddl(client: &Client, sql: &str, out: &mut AdminOutcome) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.simple_query(sql).await {
            Ok(_) => {
                out.ddl_acked += 1;
                return Ok(true);
            }
            Err(e) if is_conflict(&e) && Instant::now() < deadline => {
                out.ddl_retries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) if answered(&e) => return Err(format!("{sql}: {}", describe(&e))),
            Err(_) => return Ok(false),
        }
    }
}

/// Starts a job (FLUSH / COMPACT TABLE); `Ok(None)` when the connection died.
async fn start_job(client: &Client, sql: &str) -> Result<Option<String>, String> {
    match client.simple_query(sql).await {
        Ok(m) => {
            let rows = simple_rows(&m);
            match rows.first().and_then(|r| r.first()).cloned().flatten() {
                Some(id) => Ok(Some(id)),
                None => Err(format!("{sql} answered no job id: {rows:?}")),
            }
        }
        Err(e) if answered(&e) => Err(format!("{sql}: {}", describe(&e))),
        Err(_) => Ok(None),
    }
}

async fn admin_loop(
    mut schema: Schema,
    client: Client,
    seed: u64,
) -> Result<(Schema, AdminOutcome), String> {
    let mut rng = Rng::new(seed);
    let mut out = AdminOutcome::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let table = if rng.below(2) == 0 {
            Table::Items
        } else {
            Table::Notes
        };
        let t = table.name();
        let r = rng.below(100);
        let extras = schema.extras(table).len();
        let op = if r < 25 {
            None
        } else if r < 55 {
            let add = (r < 42 && extras < MAX_EXTRA_COLUMNS) || extras == 0;
            if add {
                schema.next_column += 1;
                let n = schema.next_column;
                let (ty, default_sql, default_text) = if n.is_multiple_of(2) {
                    ("TEXT", format!("'d{n}'"), format!("d{n}"))
                } else {
                    ("BIGINT", format!("{}", n * 7), format!("{}", n * 7))
                };
                Some((
                    format!("ALTER TABLE {t} ADD COLUMN x{n} {ty} DEFAULT {default_sql}"),
                    Ddl::Add(table, format!("x{n}"), default_text),
                ))
            } else {
                let cols = schema.extras(table);
                let name = cols[rng.below(cols.len() as u64) as usize].0.clone();
                Some((
                    format!("ALTER TABLE {t} DROP COLUMN {name}"),
                    Ddl::Drop(table, name),
                ))
            }
        } else if r < 70 {
            let rows = [10, 25, 60, 200][rng.below(4) as usize];
            let interval = [1, 2, 5, 60][rng.below(4) as usize];
            let policy = format!("rows:{rows},interval:{interval}");
            Some((
                format!("ALTER TABLE {t} SET (FLUSH_POLICY = '{policy}')"),
                Ddl::Policy(table, policy),
            ))
        } else {
            None
        };
        match op {
            Some((sql, op)) => {
                if !ddl(&client, &sql, &mut out).await? {
                    out.uncertain = Some(op);
                    return Ok((schema, out));
                }
                schema.apply(&op);
            }
            None if !(15..90).contains(&r) => {
                match start_job(&client, &format!("FLUSH TABLE {t}")).await? {
                    Some(id) => out.jobs.push(id),
                    None => return Ok((schema, out)),
                }
            }
            None if r < 25 => match start_job(&client, &format!("COMPACT TABLE {t}")).await? {
                Some(id) => out.jobs.push(id),
                None => return Ok((schema, out)),
            },
            None => {
                // Wait (briefly) for the latest job, so some cycles crash
                // with nothing running and others in the middle of a job.
                if let Some(job) = out.jobs.last().cloned() {
                    let sql = format!("SELECT status FROM system.jobs WHERE job_id = '{job}'");
                    let until = Instant::now() + Duration::from_secs(3);
                    while Instant::now() < until {
                        match client.simple_query(&sql).await {
                            Ok(m) => {
                                let status = simple_rows(&m)
                                    .first()
                                    .and_then(|r| r.first().cloned().flatten());
                                if !matches!(status.as_deref(), Some("queued" | "running")) {
                                    break;
                                }
                            }
                            Err(e) if answered(&e) => {
                                return Err(format!("{sql}: {}", describe(&e)));
                            }
                            Err(_) => return Ok((schema, out)),
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.range(10, 150))).await;
    }
    Ok((schema, out))
}

// ---------------------------------------------------------------------------
// Checking

/// The columns of a table as the server lists them (after `id`, `v`).
async fn server_extras(root: &Client, t: Table) -> Vec<String> {
    let cols = query(
        root,
        &format!(
            "SELECT column_name FROM system.columns WHERE namespace_id = 'crash' AND table_name = '{}' ORDER BY ordinal",
            t.short()
        ),
    )
    .await;
    let names: Vec<String> = cols
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect();
    assert!(
        names.len() >= 2 && names[0] == "id" && names[1] == "v",
        "columns of {}: {names:?}",
        t.name()
    );
    names[2..].to_vec()
}

async fn server_policy(root: &Client, t: Table) -> String {
    let r = query(
        root,
        &format!(
            "SELECT flush_policy FROM system.tables WHERE namespace_id = 'crash' AND table_name = '{}'",
            t.short()
        ),
    )
    .await;
    assert_eq!(r.len(), 1, "system.tables row of {}: {r:?}", t.name());
    r[0][0].clone().unwrap_or_default()
}

/// Resolves the admin's uncertain DDL against what the server shows, checks
/// every acknowledged DDL is there, and returns the schema now in force.
async fn check_schema(root: &Client, schema: &Schema, uncertain: Option<&Ddl>) -> (Schema, bool) {
    let mut candidates = vec![(schema.clone(), false)];
    if let Some(op) = uncertain {
        let mut after = schema.clone();
        after.apply(op);
        candidates.push((after, true));
    }
    let mut seen_extras = BTreeMap::new();
    let mut seen_policy = BTreeMap::new();
    for t in [Table::Items, Table::Notes] {
        seen_extras.insert(t.short(), server_extras(root, t).await);
        seen_policy.insert(t.short(), server_policy(root, t).await);
    }
    for (candidate, landed) in &candidates {
        let matches = [Table::Items, Table::Notes].iter().all(|t| {
            let want: Vec<String> = candidate
                .extras(*t)
                .iter()
                .map(|(n, _)| n.clone())
                .collect();
            seen_extras[t.short()] == want
                && Some(&seen_policy[t.short()]) == candidate.policy.get(t.short())
        });
        if matches {
            return (candidate.clone(), *landed);
        }
    }
    panic!(
        "schema after restart matches neither the acknowledged DDL nor it plus the one in flight ({uncertain:?}):\n  \
         server columns {seen_extras:?}, policies {seen_policy:?}\n  \
         acknowledged columns {:?}, policies {:?}",
        schema.extras, schema.policy
    );
}

/// Rows of one partition: id → (v, _seq), with every extra column checked
/// against its default and every id and `_seq` checked unique.
async fn read_partition(
    client: &Client,
    t: Table,
    extras: &[(String, String)],
    seqs: &mut BTreeSet<i64>,
    who: &str,
) -> BTreeMap<i64, (String, i64)> {
    let mut cols = vec!["id".to_string(), "v".to_string(), "_seq".to_string()];
    cols.extend(extras.iter().map(|(n, _)| n.clone()));
    let sql = format!("SELECT {} FROM {} ORDER BY id", cols.join(", "), t.name());
    let mut out = BTreeMap::new();
    for row in query(client, &sql).await {
        let id: i64 = row[0]
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{who}: bad id in {row:?}"));
        let v = row[1].clone().unwrap_or_else(|| "NULL".into());
        let seq: i64 = row[2]
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{who}: bad _seq in {row:?}"));
        for (i, (name, default)) in extras.iter().enumerate() {
            assert_eq!(
                row[3 + i].as_deref(),
                Some(default.as_str()),
                "{who}: column {name} of id {id} must read its default"
            );
        }
        assert!(
            out.insert(id, (v, seq)).is_none(),
            "{who}: id {id} returned twice by {sql}"
        );
        assert!(
            seqs.insert(seq),
            "{who}: _seq {seq} (id {id}) appears twice in {}",
            t.name()
        );
    }
    let counts = query(
        client,
        &format!("SELECT count(*), count(DISTINCT id) FROM {}", t.name()),
    )
    .await;
    let n = out.len().to_string();
    assert_eq!(
        counts,
        vec![vec![Some(n.clone()), Some(n)]],
        "{who}: count(*) and count(DISTINCT id) of {} disagree with its rows",
        t.name()
    );
    out
}

/// Checks one writer's keys against its model (the uncertain effect landing
/// whole or not at all), then adopts what the server shows. Returns whether
/// the uncertain effect landed.
fn check_writer(
    w: &mut Writer,
    uncertain: Option<&Effect>,
    seen: &BTreeMap<i64, (String, i64)>,
    watermark: i64,
    cycle: u64,
) -> Option<bool> {
    let before = w.rows.clone();
    let mut candidates = vec![(before.clone(), false)];
    if let Some(effect) = uncertain {
        let mut after_w = Writer {
            name: String::new(),
            user: None,
            table: w.table,
            base: w.base,
            rows: before.clone(),
            counter: 0,
        };
        after_w.apply(effect);
        candidates.push((after_w.rows, true));
    }
    let seq_ok = |model: &BTreeMap<i64, Row>| -> Result<(), String> {
        for (id, (_, seq)) in seen {
            match model.get(id).and_then(|r| r.seq) {
                Some(s) if s != *seq => {
                    return Err(format!(
                        "id {id} was not written since the last check but its _seq changed from {s} to {seq}"
                    ));
                }
                None if *seq <= watermark => {
                    return Err(format!(
                        "id {id} was written in this cycle but its _seq {seq} is not above the last check's maximum {watermark}"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    };
    let mut why = vec![];
    for (model, landed) in &candidates {
        let want: BTreeMap<i64, &str> = model.iter().map(|(k, r)| (*k, r.v.as_str())).collect();
        let got: BTreeMap<i64, &str> = seen.iter().map(|(k, (v, _))| (*k, v.as_str())).collect();
        if want != got {
            let missing: Vec<_> = want
                .iter()
                .filter(|(k, v)| got.get(k) != Some(v))
                .take(8)
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|(k, v)| want.get(k) != Some(v))
                .take(8)
                .collect();
            why.push(format!(
                "as if the in-flight write {}: expected but not found {missing:?}; found but not expected {extra:?}",
                if *landed { "landed" } else { "did not land" }
            ));
            continue;
        }
        if let Err(e) = seq_ok(model) {
            why.push(e);
            continue;
        }
        w.rows = seen
            .iter()
            .map(|(k, (v, s))| {
                (
                    *k,
                    Row {
                        v: v.clone(),
                        seq: Some(*s),
                    },
                )
            })
            .collect();
        return uncertain.map(|_| *landed);
    }
    panic!(
        "cycle {cycle}: writer {} ({} keys {}..{}) lost or corrupted acknowledged writes (in flight at the kill: {uncertain:?}):\n  {}",
        w.name,
        w.table.name(),
        w.base,
        w.base + KEYS,
        why.join("\n  ")
    );
}

/// Checks every table against the model after a restart; returns the new
/// watermark (the largest `_seq` seen).
#[allow(clippy::too_many_arguments)]
async fn check_all(
    server: &TestServer,
    writers: &mut [Writer],
    uncertain: &[Option<Effect>],
    schema: &Schema,
    watermark: i64,
    cycle: u64,
    landed: &mut (u64, u64),
) -> i64 {
    let root = server.client().await;
    let mut max_seq = watermark;
    // SHARED table: one read, split by the writers' key ranges.
    let mut seqs = BTreeSet::new();
    let items = read_partition(
        &root,
        Table::Items,
        schema.extras(Table::Items),
        &mut seqs,
        &format!("cycle {cycle}, root"),
    )
    .await;
    let mut claimed = 0;
    for (i, w) in writers.iter_mut().enumerate() {
        if w.table != Table::Items {
            continue;
        }
        let mine: BTreeMap<i64, (String, i64)> = items
            .range(w.base..w.base + KEYS)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        claimed += mine.len();
        tally(
            landed,
            check_writer(w, uncertain[i].as_ref(), &mine, watermark, cycle),
        );
    }
    assert_eq!(
        claimed,
        items.len(),
        "cycle {cycle}: crash.items has rows outside every writer's key range: {:?}",
        items.keys().collect::<Vec<_>>()
    );
    max_seq = max_seq.max(seqs.iter().next_back().copied().unwrap_or(0));
    // USER table: each user reads its own partition; _seq is unique across
    // the whole table.
    let mut seqs = BTreeSet::new();
    for (i, w) in writers.iter_mut().enumerate() {
        let Some(user) = w.user else { continue };
        let client = login(server, user).await;
        let mine = read_partition(
            &client,
            Table::Notes,
            schema.extras(Table::Notes),
            &mut seqs,
            &format!("cycle {cycle}, user {user}"),
        )
        .await;
        tally(
            landed,
            check_writer(w, uncertain[i].as_ref(), &mine, watermark, cycle),
        );
    }
    max_seq.max(seqs.iter().next_back().copied().unwrap_or(0))
}

fn tally(landed: &mut (u64, u64), outcome: Option<bool>) {
    match outcome {
        Some(true) => landed.0 += 1,
        Some(false) => landed.1 += 1,
        None => {}
    }
}

/// No job the crashed server started may still be queued or running, and
/// every acknowledged job id must still be known.
async fn check_jobs(
    root: &Client,
    acked: &[String],
    killed_at: chrono::DateTime<chrono::Utc>,
    cycle: u64,
) -> BTreeMap<String, u64> {
    let rows = timed(
        "reading system.jobs",
        Duration::from_secs(30),
        root.query(
            "SELECT job_id, status, created_at, coalesce(error_message, '') FROM system.jobs",
            &[],
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("SELECT FROM system.jobs: {}", describe(&e)));
    let mut status: HashMap<String, String> = HashMap::new();
    let mut tally = BTreeMap::new();
    for row in &rows {
        let id: String = row.get(0);
        let st: String = row.get(1);
        let created: chrono::DateTime<chrono::Utc> = row.get(2);
        let err: String = row.get(3);
        if created < killed_at {
            assert!(
                !matches!(st.as_str(), "queued" | "running"),
                "cycle {cycle}: job {id} created before the kill is still {st} after the restart"
            );
        }
        if acked.contains(&id) {
            let key = if st == "failed" {
                format!("failed ({err})")
            } else {
                st.clone()
            };
            *tally.entry(key).or_insert(0) += 1;
        }
        status.insert(id, st);
    }
    for id in acked {
        assert!(
            status.contains_key(id),
            "cycle {cycle}: acknowledged job {id} is missing from system.jobs after the restart"
        );
    }
    tally
}

async fn login(server: &TestServer, user: &str) -> Client {
    server.client_as(user, Some(&format!("pw-{user}"))).await
}

// ---------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_loses_and_duplicates_nothing() {
    crash_loop().await;
}

async fn crash_loop() {
    let cycles: u64 = std::env::var("STRATA_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var("STRATA_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!(
        "crash loop: {cycles} cycles, seed {seed} (replay with STRATA_CRASH_SEED={seed} STRATA_CRASH_CYCLES={cycles})"
    );
    let mut server = TestServer::start().await;
    let limit = Duration::from_secs(120 + 40 * cycles);
    let started = Instant::now();
    timed("crash loop", limit, async {
        let root = server.client().await;
        let mut setup = String::from(
            "CREATE NAMESPACE crash;
             CREATE SHARED TABLE crash.items (id BIGINT PRIMARY KEY, v TEXT NOT NULL)
               WITH (FLUSH_POLICY = 'rows:25,interval:2');
             CREATE USER TABLE crash.notes (id BIGINT PRIMARY KEY, v TEXT NOT NULL)
               WITH (FLUSH_POLICY = 'rows:25,interval:2');",
        );
        for u in USERS {
            setup.push_str(&format!("CREATE USER {u} WITH PASSWORD 'pw-{u}' ROLE user;"));
        }
        root.batch_execute(&setup).await.expect("setup");
        drop(root);

        let mut writers: Vec<Writer> = vec![];
        for (i, base) in [0i64, 1_000].into_iter().enumerate() {
            writers.push(Writer {
                name: format!("root{i}"),
                user: None,
                table: Table::Items,
                base,
                rows: BTreeMap::new(),
                counter: 0,
            });
        }
        for u in USERS {
            writers.push(Writer {
                name: u.to_string(),
                user: Some(u),
                table: Table::Notes,
                base: 0,
                rows: BTreeMap::new(),
                counter: 0,
            });
        }
        let mut schema = Schema {
            extras: BTreeMap::new(),
            policy: [
                ("items", "rows:25,interval:2".to_string()),
                ("notes", "rows:25,interval:2".to_string()),
            ]
            .into_iter()
            .collect(),
            next_column: 0,
        };
        let mut master = Rng::new(seed);
        let mut watermark = 0i64;
        let mut acked_total = 0u64;
        let mut conflicts_total = 0u64;
        let mut rolled_back_total = 0u64;
        let mut ddl_total = 0u64;
        let mut landed = (0u64, 0u64);
        let mut jobs_total: BTreeMap<String, u64> = BTreeMap::new();

        for cycle in 1..=cycles {
            let cycle_started = Instant::now();
            // Connect everyone first, so the kill lands in the work.
            let mut clients = vec![];
            for w in &writers {
                clients.push(match w.user {
                    Some(u) => login(&server, u).await,
                    None => server.client().await,
                });
            }
            let admin_client = server.client().await;

            let mut tasks = vec![];
            for (w, client) in std::mem::take(&mut writers).into_iter().zip(clients) {
                let s = master.next();
                tasks.push(tokio::spawn(write_loop(w, client, s, cycle)));
            }
            let admin = tokio::spawn(admin_loop(schema.clone(), admin_client, master.next()));

            let delay = Duration::from_millis(master.range(KILL_AFTER_MIN_MS, KILL_AFTER_MIN_MS + KILL_AFTER_SPREAD_MS));
            tokio::time::sleep(delay).await;
            let killed_at = chrono::Utc::now();
            server.kill9().await;

            let mut uncertain = vec![];
            let mut acked = 0;
            for task in tasks {
                let joined = timed("a writer to notice the kill", Duration::from_secs(30), task).await;
                let (w, out) = match joined {
                    Ok(Ok(pair)) => pair,
                    Ok(Err(e)) => panic!("cycle {cycle}: {e}"),
                    Err(e) => panic!("cycle {cycle}: writer task failed: {e}"),
                };
                acked += out.acked;
                conflicts_total += out.conflicts;
                rolled_back_total += out.rolled_back;
                uncertain.push(out.uncertain);
                writers.push(w);
            }
            let (new_schema, admin_out) = match timed("the admin to notice the kill", Duration::from_secs(30), admin).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => panic!("cycle {cycle}: admin: {e}"),
                Err(e) => panic!("cycle {cycle}: admin task failed: {e}"),
            };
            acked_total += acked;
            ddl_total += admin_out.ddl_acked;
            assert!(acked > 0, "cycle {cycle}: no write was acknowledged in {delay:?}");

            server.restart().await;
            let root = server.client().await;
            let (resolved, ddl_landed) = check_schema(&root, &new_schema, admin_out.uncertain.as_ref()).await;
            schema = resolved;
            let job_tally = check_jobs(&root, &admin_out.jobs, killed_at, cycle).await;
            for (k, n) in &job_tally {
                *jobs_total.entry(k.clone()).or_insert(0) += n;
            }
            let new_watermark = check_all(&server, &mut writers, &uncertain, &schema, watermark, cycle, &mut landed).await;
            assert!(new_watermark >= watermark, "_seq went backwards");
            watermark = new_watermark;
            eprintln!(
                "cycle {cycle}/{cycles}: killed after {delay:?}, {acked} writes acknowledged, \
                 {} DDL ({} retries on 40001, in flight: {:?}, landed: {ddl_landed}), jobs {job_tally:?}, \
                 rows {}; cycle took {:?}",
                admin_out.ddl_acked,
                admin_out.ddl_retries,
                admin_out.uncertain,
                writers.iter().map(|w| w.rows.len()).sum::<usize>(),
                cycle_started.elapsed()
            );
        }

        // Finally: flush and compact everything, a clean restart, and the
        // same checks once more.
        let root = server.client().await;
        for t in [Table::Items, Table::Notes] {
            for stmt in ["FLUSH TABLE", "COMPACT TABLE"] {
                let id = query(&root, &format!("{stmt} {}", t.name())).await[0][0]
                    .clone()
                    .expect("job id");
                common::wait_job(&root, &id).await;
            }
        }
        drop(root);
        server.restart().await;
        let none: Vec<Option<Effect>> = writers.iter().map(|_| None).collect();
        check_schema(&server.client().await, &schema, None).await;
        check_all(&server, &mut writers, &none, &schema, watermark, cycles + 1, &mut landed).await;

        eprintln!(
            "crash loop done: {cycles} kill -9 cycles in {:?}, seed {seed}: {acked_total} writes and {ddl_total} DDL acknowledged, \
             {conflicts_total} refused with 40001, {rolled_back_total} blocks rolled back, in-flight writes landed {} / not {}; acknowledged jobs after restart: {jobs_total:?}",
            started.elapsed(),
            landed.0,
            landed.1
        );
    })
    .await;
}

/// What the crash loop found, without crashes: a block that has staged a
/// write to a partition must still see every committed row of it, cold and
/// hot, when it scans (SELECT, and the scans UPDATE and DELETE plan).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_sees_every_committed_row_it_scans() {
    let server = TestServer::start().await;
    timed("block overlay scan", Duration::from_secs(120), async {
        let c = server.client().await;
        c.batch_execute(
            "CREATE TABLE b (id BIGINT PRIMARY KEY, v TEXT) FLUSH ROWS 1000000 INTERVAL 86400s;
             INSERT INTO b VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        )
        .await
        .expect("setup");
        let job = query(&c, "FLUSH TABLE b").await[0][0]
            .clone()
            .expect("job id");
        common::wait_job(&c, &job).await;
        c.batch_execute("INSERT INTO b VALUES (4, 'd'), (5, 'e')")
            .await
            .expect("hot rows");
        c.batch_execute("BEGIN; INSERT INTO b VALUES (10, 'x')")
            .await
            .expect("a block with a staged row");
        let ids = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
            rows.into_iter()
                .map(|r| r[0].clone().unwrap_or_default())
                .collect()
        };
        assert_eq!(
            ids(query(&c, "SELECT id FROM b ORDER BY id").await),
            ["1", "2", "3", "4", "5", "10"],
            "the block's scan: 3 cold rows, 2 hot rows, its own row"
        );
        assert_eq!(
            ids(query(&c, "SELECT count(*) FROM b").await),
            ["6"],
            "count(*) in the block"
        );
        let updated = c
            .execute("UPDATE b SET v = 'u'", &[])
            .await
            .unwrap_or_else(|e| panic!("UPDATE in the block: {}", describe(&e)));
        assert_eq!(updated, 6, "UPDATE of every row in the block");
        let deleted = c
            .execute("DELETE FROM b WHERE id >= 4", &[])
            .await
            .unwrap_or_else(|e| panic!("DELETE in the block: {}", describe(&e)));
        assert_eq!(deleted, 3, "DELETE in the block");
        c.batch_execute("COMMIT").await.expect("COMMIT");
        let rows = query(&c, "SELECT id, v FROM b ORDER BY id").await;
        let got: Vec<(String, String)> = rows
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap_or_default(),
                    r[1].clone().unwrap_or_default(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = ["1", "2", "3"]
            .iter()
            .map(|id| (id.to_string(), "u".to_string()))
            .collect();
        assert_eq!(got, want, "after COMMIT");
    })
    .await;
}

//! Live-query helpers: a subscription's COPY OUT rows, read with a bound.

use futures::StreamExt;
use std::pin::Pin;
use std::time::Duration;
use tokio_postgres::{Client, CopyOutStream};

pub type Rows = Pin<Box<CopyOutStream>>;

/// Starts `sql` (a SUBSCRIBE or COPY (SUBSCRIBE …)) and returns its rows.
pub async fn subscribe(client: &Client, sql: &str) -> Rows {
    Box::pin(
        client
            .copy_out(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}")),
    )
}

/// The next CopyData as text; panics when none arrives within 20 s.
pub async fn next_line(rows: &mut Rows) -> String {
    let data = tokio::time::timeout(Duration::from_secs(20), rows.next())
        .await
        .expect("a row within 20 s")
        .expect("the stream goes on")
        .expect("a row");
    String::from_utf8(data.to_vec()).expect("UTF-8 row")
}

/// Deterministic pseudo-random numbers (xorshift), so a failure reproduces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

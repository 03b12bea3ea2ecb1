//! Failpoints for the end-to-end tests: ways to make a job pause, hog its
//! thread or panic at a chosen step, so races that real workloads hit only by
//! chance (an ALTER TABLE while a job is between reading and committing, a
//! panicking job) can be reproduced deterministically.
//!
//! Compiled into debug builds only; a release build has no failpoints and
//! ignores the variable. Enabled by `STRATA_FAILPOINT`, a comma-separated list
//! of `name=table[:millis]`, read once:
//!
//! | name | effect on jobs of the (unqualified) table name |
//! |---|---|
//! | `pause_flush`, `pause_compact` | sleep `millis` after reading the definition, before reading rows or files |
//! | `pause_flush_piece` | sleep `millis` after each piece of a flush commit but the last (lock released, file partly committed) |
//! | `pause_evict` | sleep `millis` between finding expired rows and taking the lock to delete them |
//! | `busy_flush` | block the job's runtime thread for `millis` (a CPU-bound job) |
//! | `panic_flush` | panic in the flush job's async part |
//! | `panic_flush_blocking` | panic inside the flush job's blocking (spawn_blocking) part |

#[cfg(debug_assertions)]
mod enabled {
    use std::sync::OnceLock;
    use std::time::Duration;

    /// One armed failpoint: its name, the table it applies to, its argument.
    struct Point {
        name: String,
        table: String,
        millis: u64,
    }

    fn points() -> &'static [Point] {
        static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
        POINTS.get_or_init(|| {
            let spec = std::env::var("STRATA_FAILPOINT").unwrap_or_default();
            let points = parse(&spec);
            if !points.is_empty() {
                tracing::warn!(%spec, "failpoints armed (debug build)");
            }
            points
        })
    }

    fn parse(spec: &str) -> Vec<Point> {
        spec.split(',')
            .filter_map(|item| {
                let (name, rest) = item.trim().split_once('=')?;
                let (table, millis) = match rest.split_once(':') {
                    Some((t, m)) => (t, m.parse().unwrap_or(0)),
                    None => (rest, 0),
                };
                Some(Point {
                    name: name.to_string(),
                    table: table.to_string(),
                    millis,
                })
            })
            .collect()
    }

    /// The argument of failpoint `name` armed for `table`, if it is.
    pub(crate) fn armed(name: &str, table: &str) -> Option<u64> {
        points()
            .iter()
            .find(|p| p.name == name && p.table == table)
            .map(|p| p.millis)
    }

    pub(crate) async fn pause(name: &str, table: &str) {
        if let Some(ms) = armed(name, table) {
            tracing::warn!(failpoint = name, ms, "failpoint: pausing the job");
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// Blocks the calling thread, as a CPU-bound step would.
    pub(crate) fn block(name: &str, table: &str) {
        if let Some(ms) = armed(name, table) {
            tracing::warn!(failpoint = name, ms, "failpoint: blocking the job's thread");
            std::thread::sleep(Duration::from_millis(ms));
        }
    }

    pub(crate) fn panic_if(name: &str, table: &str) {
        if armed(name, table).is_some() {
            panic!("failpoint {name} on {table}");
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn parses_names_tables_and_arguments() {
            let p = super::parse("pause_flush=t1:250, panic_flush=t2,junk");
            assert_eq!(p.len(), 2);
            assert_eq!(
                (p[0].name.as_str(), p[0].table.as_str()),
                ("pause_flush", "t1")
            );
            assert_eq!(p[0].millis, 250);
            assert_eq!(
                (p[1].name.as_str(), p[1].table.as_str()),
                ("panic_flush", "t2")
            );
        }
    }
}

#[cfg(debug_assertions)]
pub(crate) use enabled::{block, panic_if, pause};

#[cfg(not(debug_assertions))]
pub(crate) async fn pause(_name: &str, _table: &str) {}

#[cfg(not(debug_assertions))]
pub(crate) fn block(_name: &str, _table: &str) {}

#[cfg(not(debug_assertions))]
pub(crate) fn panic_if(_name: &str, _table: &str) {}

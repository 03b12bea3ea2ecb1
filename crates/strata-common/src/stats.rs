//! The server's metrics: one process-global registry of counters and gauges
//! (prometheus-client), fed by plain functions any crate calls, and read two
//! ways — [`render_prometheus`] for the admin port's `/metrics` and
//! [`snapshot`] for `system.stats`. Both come from the library's own text
//! encoder, so the two views always agree. See docs/operations.md for the list.
//!
//! Counters only go up while the process runs (they start at 0 at every start);
//! gauges are the current value. Labels are few and bounded: job statuses, the
//! storages of the catalog and a fixed set of object-store operations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

/// The `Content-Type` of [`render_prometheus`]'s text (format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageOpLabels {
    storage: String,
    op: &'static str,
}

/// The statuses a finished job can end in; created up front so the families
/// show a 0 before the first job ends.
const JOB_STATUSES: [&str; 3] = ["completed", "failed", "cancelled"];

struct Stats {
    registry: Registry,
    connections: Counter,
    connections_active: Gauge,
    queries: Counter,
    query_errors: Counter,
    rows_written: Counter,
    rows_read: Counter,
    flush_jobs: Family<StatusLabel, Counter>,
    compaction_jobs: Family<StatusLabel, Counter>,
    flush_rows: Counter,
    flush_bytes: Counter,
    compaction_bytes: Counter,
    object_store_requests: Family<StorageOpLabels, Counter>,
    object_store_errors: Family<StorageOpLabels, Counter>,
    footer_cache_hits: Counter,
    footer_cache_misses: Counter,
    job_queue_depth: Gauge,
}

impl Stats {
    fn new() -> Stats {
        let mut s = Stats {
            registry: Registry::default(),
            connections: Counter::default(),
            connections_active: Gauge::default(),
            queries: Counter::default(),
            query_errors: Counter::default(),
            rows_written: Counter::default(),
            rows_read: Counter::default(),
            flush_jobs: Family::default(),
            compaction_jobs: Family::default(),
            flush_rows: Counter::default(),
            flush_bytes: Counter::default(),
            compaction_bytes: Counter::default(),
            object_store_requests: Family::default(),
            object_store_errors: Family::default(),
            footer_cache_hits: Counter::default(),
            footer_cache_misses: Counter::default(),
            job_queue_depth: Gauge::default(),
        };
        for status in JOB_STATUSES {
            let _ = s.flush_jobs.get_or_create(&StatusLabel { status });
            let _ = s.compaction_jobs.get_or_create(&StatusLabel { status });
        }
        // Counters are registered without `_total`: the encoder appends it.
        let r = &mut s.registry;
        r.register(
            "connections",
            "Client connections accepted",
            s.connections.clone(),
        );
        r.register(
            "connections_active",
            "Client connections open now",
            s.connections_active.clone(),
        );
        r.register(
            "queries",
            "Statements executed (simple and extended protocol)",
            s.queries.clone(),
        );
        r.register(
            "query_errors",
            "Statements that ended in an error",
            s.query_errors.clone(),
        );
        r.register(
            "rows_written",
            "Rows inserted, updated, deleted or copied in",
            s.rows_written.clone(),
        );
        r.register("rows_read", "Rows returned to clients", s.rows_read.clone());
        r.register(
            "flush_jobs",
            "Flush jobs finished, by status",
            s.flush_jobs.clone(),
        );
        r.register(
            "compaction_jobs",
            "Compaction jobs finished, by status",
            s.compaction_jobs.clone(),
        );
        r.register(
            "flush_rows",
            "Rows written to the cold tier by flush jobs",
            s.flush_rows.clone(),
        );
        r.register(
            "flush_bytes",
            "Bytes of Parquet written by flush jobs",
            s.flush_bytes.clone(),
        );
        r.register(
            "compaction_bytes",
            "Bytes of Parquet written by compaction jobs",
            s.compaction_bytes.clone(),
        );
        r.register(
            "object_store_requests",
            "Object-store requests, by storage and operation",
            s.object_store_requests.clone(),
        );
        r.register(
            "object_store_errors",
            "Object-store requests that failed, by storage and operation",
            s.object_store_errors.clone(),
        );
        r.register(
            "footer_cache_hits",
            "Parquet footers served from the footer cache",
            s.footer_cache_hits.clone(),
        );
        r.register(
            "footer_cache_misses",
            "Parquet footers fetched from storage",
            s.footer_cache_misses.clone(),
        );
        r.register(
            "job_queue_depth",
            "Jobs queued or running now",
            s.job_queue_depth.clone(),
        );
        s
    }
}

static STATS: LazyLock<Stats> = LazyLock::new(Stats::new);

/// A client connection was accepted.
pub fn connection_opened() {
    STATS.connections.inc();
    STATS.connections_active.inc();
}

/// A client connection (one [`connection_opened`] counted) closed.
pub fn connection_closed() {
    STATS.connections_active.dec();
}

/// One statement ran; `ok` is false when it ended in an error.
pub fn query(ok: bool) {
    STATS.queries.inc();
    if !ok {
        STATS.query_errors.inc();
    }
}

/// Rows a DML statement or COPY FROM wrote.
pub fn rows_written(n: u64) {
    STATS.rows_written.inc_by(n);
}

/// Rows returned to a client.
pub fn rows_read(n: u64) {
    STATS.rows_read.inc_by(n);
}

/// A job finished. `kind` is the job type (`flush` or `compact`; other kinds
/// are not counted), `status` how it ended (`completed`, `failed`,
/// `cancelled`); `rows` and `bytes` are what it wrote, added only when it
/// completed.
pub fn job_finished(kind: &str, status: &'static str, rows: u64, bytes: u64) {
    let completed = status == "completed";
    match kind {
        "flush" => {
            STATS
                .flush_jobs
                .get_or_create(&StatusLabel { status })
                .inc();
            if completed {
                STATS.flush_rows.inc_by(rows);
                STATS.flush_bytes.inc_by(bytes);
            }
        }
        "compact" | "compaction" => {
            STATS
                .compaction_jobs
                .get_or_create(&StatusLabel { status })
                .inc();
            if completed {
                STATS.compaction_bytes.inc_by(bytes);
            }
        }
        _ => {}
    }
}

/// Jobs queued or running now.
pub fn job_queue_depth(n: usize) {
    STATS
        .job_queue_depth
        .set(i64::try_from(n).unwrap_or(i64::MAX));
}

/// One request to a storage's object store (`op`: get, put, list, …).
pub fn object_store_request(storage: &str, op: &'static str) {
    storage_family_inc(&STATS.object_store_requests, storage, op);
}

/// One object-store request that failed.
pub fn object_store_error(storage: &str, op: &'static str) {
    storage_family_inc(&STATS.object_store_errors, storage, op);
}

fn storage_family_inc(family: &Family<StorageOpLabels, Counter>, storage: &str, op: &'static str) {
    let labels = StorageOpLabels {
        storage: storage.to_string(),
        op,
    };
    family.get_or_create(&labels).inc();
}

/// A Parquet footer lookup: served from the cache (`hit`) or fetched.
pub fn footer_cache(hit: bool) {
    if hit {
        STATS.footer_cache_hits.inc();
    } else {
        STATS.footer_cache_misses.inc();
    }
}

/// Every metric in the Prometheus text format 0.0.4
/// ([`PROMETHEUS_CONTENT_TYPE`]), by the library's encoder.
pub fn render_prometheus() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; an error could only leave the text short.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &STATS.registry);
    out
}

/// Every sample as (name with its labels, value), sorted by name, e.g.
/// `object_store_requests_total{storage="s3main",op="get"}`: the sample lines
/// of [`render_prometheus`], so `system.stats` and `/metrics` agree.
pub fn snapshot() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = render_prometheus()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            // The value is the last field (no timestamps are written); label
            // values may hold spaces, so split at the last one.
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse::<f64>().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The registry is process-global and tests run in parallel: every check
    // is on a label set only its own test touches, or on a difference.

    fn value(name: &str) -> Option<f64> {
        snapshot()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn storage_requests_and_errors_have_labels() {
        object_store_request("unit_s3", "get");
        object_store_request("unit_s3", "get");
        object_store_request("unit_s3", "put");
        object_store_error("unit_s3", "get");
        assert_eq!(
            value(r#"object_store_requests_total{storage="unit_s3",op="get"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(r#"object_store_requests_total{storage="unit_s3",op="put"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"object_store_errors_total{storage="unit_s3",op="get"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(r#"object_store_errors_total{storage="unit_s3",op="put"}"#),
            None
        );
    }

    #[test]
    fn label_values_are_escaped() {
        object_store_request("we\"ird \\ name", "list");
        let text = render_prometheus();
        assert!(
            text.contains(r#"object_store_requests_total{storage="we\"ird \\ name",op="list"} 1"#),
            "{text}"
        );
        assert_eq!(
            value(r#"object_store_requests_total{storage="we\"ird \\ name",op="list"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn counters_move() {
        let before = |n: &str| value(n).unwrap_or(0.0);
        let q = before("queries_total");
        let e = before("query_errors_total");
        let w = before("rows_written_total");
        let r = before("rows_read_total");
        let h = before("footer_cache_hits_total");
        let m = before("footer_cache_misses_total");
        query(true);
        query(false);
        rows_written(5);
        rows_read(7);
        footer_cache(true);
        footer_cache(false);
        footer_cache(false);
        assert!(value("queries_total").unwrap() >= q + 2.0);
        assert!(value("query_errors_total").unwrap() >= e + 1.0);
        assert!(value("rows_written_total").unwrap() >= w + 5.0);
        assert!(value("rows_read_total").unwrap() >= r + 7.0);
        assert!(value("footer_cache_hits_total").unwrap() >= h + 1.0);
        assert!(value("footer_cache_misses_total").unwrap() >= m + 2.0);
    }

    #[test]
    fn jobs_count_by_status_and_add_what_completed_ones_wrote() {
        let flush_done = r#"flush_jobs_total{status="completed"}"#;
        let flush_failed = r#"flush_jobs_total{status="failed"}"#;
        let compact_done = r#"compaction_jobs_total{status="completed"}"#;
        // Present (at 0 or more) before any job ends.
        assert!(value(flush_done).is_some());
        assert!(value(compact_done).is_some());
        assert!(value(r#"compaction_jobs_total{status="cancelled"}"#).is_some());
        let fd = value(flush_done).unwrap();
        let ff = value(flush_failed).unwrap();
        let cd = value(compact_done).unwrap();
        let rows = value("flush_rows_total").unwrap();
        let bytes = value("flush_bytes_total").unwrap();
        let cbytes = value("compaction_bytes_total").unwrap();
        job_finished("flush", "completed", 10, 1000);
        job_finished("flush", "failed", 99, 99_999);
        job_finished("compact", "completed", 0, 500);
        job_finished("evict", "completed", 3, 3);
        assert!(value(flush_done).unwrap() >= fd + 1.0);
        assert!(value(flush_failed).unwrap() >= ff + 1.0);
        assert!(value(compact_done).unwrap() >= cd + 1.0);
        assert!(value("flush_rows_total").unwrap() >= rows + 10.0);
        assert!(value("flush_bytes_total").unwrap() >= bytes + 1000.0);
        assert!(value("compaction_bytes_total").unwrap() >= cbytes + 500.0);
    }

    #[test]
    fn gauges_go_both_ways() {
        // Only this test sets the queue depth.
        job_queue_depth(3);
        assert_eq!(value("job_queue_depth"), Some(3.0));
        job_queue_depth(0);
        assert_eq!(value("job_queue_depth"), Some(0.0));
        let text = render_prometheus();
        assert!(text.contains("# TYPE job_queue_depth gauge"), "{text}");
        let c = value("connections_total").unwrap();
        connection_opened();
        assert!(value("connections_total").unwrap() >= c + 1.0);
        connection_closed();
    }

    #[test]
    fn prometheus_text_is_the_library_format() {
        let text = render_prometheus();
        for name in [
            "connections_total",
            "connections_active",
            "queries_total",
            "query_errors_total",
            "rows_written_total",
            "rows_read_total",
            "flush_jobs_total",
            "compaction_jobs_total",
            "flush_rows_total",
            "flush_bytes_total",
            "compaction_bytes_total",
            "footer_cache_hits_total",
            "footer_cache_misses_total",
            "job_queue_depth",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }
        assert!(text.contains("# TYPE queries_total counter"));
        assert!(text.contains("# TYPE connections_active gauge"));
        assert!(PROMETHEUS_CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    }

    #[test]
    fn snapshot_is_sorted_and_complete() {
        let s = snapshot();
        let names: Vec<&String> = s.iter().map(|(n, _)| n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for name in [
            "connections_active",
            "connections_total",
            "job_queue_depth",
            "queries_total",
            "rows_read_total",
        ] {
            assert!(
                names.iter().any(|n| *n == name),
                "{name} missing: {names:?}"
            );
        }
    }
}

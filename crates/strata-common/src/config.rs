//! Server configuration: the TOML file's shape with its defaults. Environment
//! variables and command-line flags are layered on top by the server binary.

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_connections: usize,
    /// fsync the RocksDB WAL on every commit. Off by default: the WAL still
    /// survives a process crash (`kill -9`); only an OS crash can lose the tail.
    pub sync_writes: bool,
    /// `text` or `json`.
    pub log_format: String,
    pub tls: TlsConfig,
    pub flush: FlushConfig,
    pub jobs: JobsConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub query: QueryConfig,
    pub admin: AdminConfig,
    pub live: LiveConfig,
}

/// Live queries (`SUBSCRIBE`): how long a table's change log is kept for
/// subscribers to resume from (`OPTIONS (from_seq = S)`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveConfig {
    /// Changes older than this are dropped from the log, and a table's log
    /// is dropped this long after its last subscriber left.
    pub retention_seconds: u64,
    /// The most changes kept per table; older ones are dropped first.
    pub max_entries: u64,
    /// How many change sets (commits of its partition) may wait in a
    /// subscriber's queue; past it the subscriber is cut off (SQLSTATE 53400,
    /// with the `from_seq` to resume from). A queue's memory is what waits in it.
    pub queue_size: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            retention_seconds: 3600,
            max_entries: 100_000,
            queue_size: 4096,
        }
    }
}

/// The admin HTTP port (`/metrics`, `/health`): off unless `listen` is set or
/// `enabled = true` (which alone listens on [`ADMIN_DEFAULT_LISTEN`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// `false` turns the port off even when `listen` is set.
    pub enabled: Option<bool>,
    /// `host:port`; a bare port (`9187` or `:9187`) means loopback.
    pub listen: Option<String>,
}

/// Where the admin port listens when it is on without an address: loopback.
pub const ADMIN_DEFAULT_LISTEN: &str = "127.0.0.1:9187";

impl AdminConfig {
    /// The address to listen on, or `None` when the admin port is off.
    pub fn address(&self) -> Option<String> {
        if self.enabled == Some(false) {
            return None;
        }
        match self.listen.as_deref().map(str::trim) {
            Some(l) if !l.is_empty() => {
                let port = l.strip_prefix(':').unwrap_or(l);
                Some(if port.parse::<u16>().is_ok() {
                    format!("127.0.0.1:{port}")
                } else {
                    l.to_string()
                })
            }
            _ if self.enabled == Some(true) => Some(ADMIN_DEFAULT_LISTEN.to_string()),
            _ => None,
        }
    }
}

/// What one client may take of the server; see docs/operations.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connection slots of `max_connections` only dba and system users may
    /// take (Postgres' `superuser_reserved_connections`).
    pub reserved_connections: usize,
    /// A connection that has not logged in within this many seconds is closed.
    pub auth_timeout_seconds: u64,
    /// Sockets still logging in at once, on top of `max_connections`; past
    /// it a new socket is refused with 53300. They never count against the
    /// logged-in slots, so they cannot lock out a login.
    pub max_pending_logins: usize,
    /// The most a session may set `copy_memory_limit` to, in MB.
    pub max_copy_memory_mb: usize,
    /// The most rows a transaction block may stage before COMMIT, in MB.
    pub max_transaction_memory_mb: usize,
}

/// The query engine's shared resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Memory all running queries' sorts, joins and aggregates share, in MB;
    /// past it operators that can spill to disk do, the others fail with 53200.
    pub memory_limit_mb: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            reserved_connections: 3,
            auth_timeout_seconds: 10,
            max_pending_logins: 1000,
            max_copy_memory_mb: 1024,
            max_transaction_memory_mb: 256,
        }
    }
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit_mb: 2048,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlushConfig {
    pub default_policy: String,
    pub check_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    pub max_concurrent: usize,
    /// Finished job records (completed, failed, cancelled) older than this many
    /// days are deleted from `system.jobs`; 0 deletes them at the next prune.
    pub retention_days: u64,
    /// The most job records `system.jobs` keeps; past it the oldest finished
    /// ones are deleted. Queued and running jobs are never deleted.
    pub max_records: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub root_password: Option<String>,
    pub allow_cleartext: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:5433".into(),
            data_dir: PathBuf::from("./data"),
            max_connections: 100,
            sync_writes: false,
            log_format: "text".into(),
            tls: TlsConfig::default(),
            flush: FlushConfig::default(),
            jobs: JobsConfig::default(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            query: QueryConfig::default(),
            admin: AdminConfig::default(),
            live: LiveConfig::default(),
        }
    }
}

impl Default for FlushConfig {
    fn default() -> Self {
        FlushConfig {
            default_policy: "rows:10000,interval:300".into(),
            check_interval_seconds: 5,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_concurrent: 2,
            retention_days: 7,
            max_records: 10_000,
        }
    }
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_file_with_defaults() {
        let c =
            Config::from_toml("listen = \"0.0.0.0:6000\"\n[jobs]\nmax_concurrent = 4\n").unwrap();
        assert_eq!(c.listen, "0.0.0.0:6000");
        assert_eq!(c.jobs.max_concurrent, 4);
        assert_eq!(c.max_connections, 100);
    }

    #[test]
    fn job_record_retention_has_defaults_and_can_be_set() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.jobs.retention_days, 7);
        assert_eq!(c.jobs.max_records, 10_000);
        let c = Config::from_toml("[jobs]\nretention_days = 1\nmax_records = 50\n").unwrap();
        assert_eq!(c.jobs.retention_days, 1);
        assert_eq!(c.jobs.max_records, 50);
        assert_eq!(c.jobs.max_concurrent, 2);
    }

    #[test]
    fn admin_port_is_off_by_default_and_loopback_when_on() {
        let address = |toml: &str| Config::from_toml(toml).unwrap().admin.address();
        assert_eq!(address(""), None);
        assert_eq!(address("[admin]\n"), None);
        assert_eq!(
            address("[admin]\nenabled = true\n").as_deref(),
            Some(ADMIN_DEFAULT_LISTEN)
        );
        assert_eq!(
            address("[admin]\nlisten = \"0.0.0.0:9000\"\n").as_deref(),
            Some("0.0.0.0:9000")
        );
        assert_eq!(
            address("[admin]\nlisten = \"9000\"\n").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(
            address("[admin]\nlisten = \":9000\"\n").as_deref(),
            Some("127.0.0.1:9000")
        );
        assert_eq!(
            address("[admin]\nlisten = \"[::1]:9000\"\n").as_deref(),
            Some("[::1]:9000")
        );
        assert_eq!(
            address("[admin]\nenabled = false\nlisten = \"127.0.0.1:1\"\n"),
            None
        );
        assert!(Config::from_toml("[admin]\nport = 1\n").is_err());
    }

    #[test]
    fn rejects_unknown_keys() {
        assert!(Config::from_toml("listn = \"x\"").is_err());
    }
}

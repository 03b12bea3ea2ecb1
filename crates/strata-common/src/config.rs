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
        JobsConfig { max_concurrent: 2 }
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
    fn rejects_unknown_keys() {
        assert!(Config::from_toml("listn = \"x\"").is_err());
    }
}

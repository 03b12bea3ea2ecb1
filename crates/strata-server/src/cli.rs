//! Command line and configuration layering: flags win over environment
//! variables, which win over the config file, which wins over defaults.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use strata_common::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a Postgres-compatible server for per-user data"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default command).
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Default, clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "STRATA_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:5433.
    #[arg(long, env = "STRATA_LISTEN")]
    listen: Option<String>,
    /// Directory for the hot tier, catalog and local storage.
    #[arg(long, env = "STRATA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, env = "STRATA_LOG_FORMAT")]
    log_format: Option<String>,
    /// Turns the admin HTTP port (/metrics, /health) on at this address,
    /// e.g. 127.0.0.1:9187 (a bare port means loopback).
    #[arg(long, env = "STRATA_ADMIN_LISTEN")]
    admin_listen: Option<String>,
}

impl Cli {
    pub fn config(&self) -> Result<Config, String> {
        let args = match &self.command {
            Some(Command::Serve(a)) => a.clone(),
            None => self.serve.clone(),
        };
        let mut config = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
                Config::from_toml(&text)
                    .map_err(|e| format!("invalid config {}: {e}", path.display()))?
            }
            None => Config::default(),
        };
        // The environment wins over the file; an empty value means "not set".
        if let Ok(p) = std::env::var("STRATA_ROOT_PASSWORD")
            && !p.is_empty()
        {
            config.auth.root_password = Some(p);
        }
        if let Some(l) = args.listen {
            config.listen = l;
        }
        if let Some(d) = args.data_dir {
            config.data_dir = d;
        }
        if let Some(f) = args.log_format {
            config.log_format = f;
        }
        if let Some(a) = args.admin_listen.filter(|a| !a.trim().is_empty()) {
            config.admin.enabled = Some(true);
            config.admin.listen = Some(a);
        }
        if config.log_format != "text" && config.log_format != "json" {
            return Err(format!(
                "log format must be text or json, not {}",
                config.log_format
            ));
        }
        if config.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        strata_sql::FlushPolicy::parse(&config.flush.default_policy)
            .map_err(|e| format!("invalid flush.default_policy: {e}"))?;
        Ok(config)
    }
}

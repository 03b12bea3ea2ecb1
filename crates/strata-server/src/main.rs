//! The `strata` binary: reads configuration (file, then `STRATA_*` environment,
//! then flags), opens the hot tier and catalog, serves the Postgres protocol, and
//! shuts down cleanly on SIGTERM or SIGINT.

mod admin;
mod cli;
mod connection;
mod server;
mod tls;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("strata: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    server::init_logging(&config.log_format);
    // Connections plan their statements on these threads: the same stack as
    // the query runtime's (see QUERY_THREAD_STACK).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(strata_query::QUERY_THREAD_STACK)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("strata: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            eprintln!("strata: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

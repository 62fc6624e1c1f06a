//! `hashguard serve`: flags (over the environment, over the configuration file) into the
//! server's configuration, then the server until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hashguard_server::config::{Config, LogFormat, Overrides};
use hashguard_server::{init_logging, shutdown_signal, Server};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// Run the upload service.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8640].
    #[arg(long, env = "HASHGUARD_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Database: `postgres://...`, `sqlite://PATH`, or a path to a SQLite file
    /// [default: hashguard.db in the working directory, created if missing].
    #[arg(long, env = "HASHGUARD_DB", value_name = "URL")]
    db: Option<String>,
    /// Data folder for attachment blobs [default: hashguard-data].
    #[arg(long, env = "HASHGUARD_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// The table directory `hashguard table build --out` wrote [default: table].
    #[arg(long, env = "HASHGUARD_TABLE", value_name = "DIR")]
    table: Option<PathBuf>,
    /// The table's opening key file (`hashguard table build --key`) [default: table.key].
    #[arg(long, env = "HASHGUARD_KEY", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Configuration file (TOML); flags and environment variables win over it.
    #[arg(long, env = "HASHGUARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// TLS certificate chain (PEM), for deployments without a proxy in front.
    #[arg(
        long,
        env = "HASHGUARD_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        env = "HASHGUARD_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Log lines as text or as JSON objects.
    #[arg(long, env = "HASHGUARD_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormatArg>,
}

/// Runs `hashguard serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::resolve(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            db: args.db,
            data: args.data,
            table: args.table,
            key: args.key,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            log_format: args.log_format.map(|f| match f {
                LogFormatArg::Text => LogFormat::Text,
                LogFormatArg::Json => LogFormat::Json,
            }),
        },
    )?;
    init_logging(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        eprintln!(
            "hashguard serve: listening on {scheme}://{} (Ctrl-C stops it)",
            server.local_addr()
        );
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

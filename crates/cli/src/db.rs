//! The `--db` option shared by `list`, `match` and `table`: a database URL, or a path to a SQLite
//! file; by default the SQLite file `hashguard.db` in the working directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use hashguard_store::Store;

/// The default database: a SQLite file in the working directory.
pub const DEFAULT_DB: &str = "hashguard.db";

/// Where the banks live.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database: `postgres://...`, `sqlite://PATH`, or a path to a SQLite file
    /// [default: hashguard.db in the working directory].
    #[arg(long, env = "HASHGUARD_DB", value_name = "URL")]
    pub db: Option<String>,
}

impl DbArgs {
    /// The URL to connect to, and for a SQLite file its path.
    fn resolve(&self) -> (String, Option<PathBuf>) {
        let given = self.db.as_deref().unwrap_or(DEFAULT_DB);
        if given.starts_with("postgres://") || given.starts_with("postgresql://") {
            (given.to_string(), None)
        } else if let Some(rest) = given.strip_prefix("sqlite://") {
            let path = rest.split('?').next().unwrap_or(rest);
            (given.to_string(), Some(PathBuf::from(path)))
        } else if given.starts_with("sqlite:") {
            // `sqlite::memory:` and other forms sqlx accepts: no file to check.
            (given.to_string(), None)
        } else {
            let path = Path::new(given);
            (Store::sqlite_url(path), Some(path.to_path_buf()))
        }
    }

    /// A short description for messages (never includes a password).
    pub fn describe(&self) -> String {
        match self.resolve() {
            (_, Some(path)) => format!("SQLite database {}", path.display()),
            (url, None) if url.starts_with("sqlite:") => format!("SQLite database {url}"),
            (url, None) => {
                let host = url.rsplit('@').next().unwrap_or("");
                let host = host.split_once("://").map_or(host, |(_, h)| h);
                format!("PostgreSQL database {host}")
            }
        }
    }

    /// Opens the store (migrating it). With `must_exist`, a SQLite file that is not there is an
    /// error rather than a new empty database: reading commands should not create one.
    pub async fn open(&self, must_exist: bool) -> anyhow::Result<Store> {
        let (url, path) = self.resolve();
        if let Some(path) = path.filter(|_| must_exist) {
            anyhow::ensure!(
                path.exists(),
                "no database at {} (create a bank with `hashguard list create`, or give --db)",
                path.display()
            );
        }
        Store::open(&url)
            .await
            .with_context(|| format!("cannot open the {}", self.describe()))
    }
}

/// A single-threaded async runtime for the store's calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

//! The `--db` option shared by `list`, `match` and `table`: a database URL, or a path to a SQLite
//! file; by default the SQLite file `hashguard.db` in the working directory. Resolving it is
//! the store's ([`DatabaseLocation`]).

use anyhow::Context;
use clap::Args;
use hashguard_store::{DatabaseLocation, OpenMode, Store, StoreError, DEFAULT_DATABASE};

/// Where the banks live.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Database: `postgres://...`, `sqlite://PATH`, or a path to a SQLite file
    /// [default: hashguard.db in the working directory].
    #[arg(long, env = "HASHGUARD_DB", value_name = "URL")]
    pub db: Option<String>,
}

impl DbArgs {
    /// The location the flag names.
    pub fn location(&self) -> DatabaseLocation {
        DatabaseLocation::parse(self.db.as_deref().unwrap_or(DEFAULT_DATABASE))
    }

    /// Opens the store for `mode`, failing at once with the database's own reason.
    pub async fn open(&self, mode: OpenMode) -> anyhow::Result<Store> {
        let location = self.location();
        match Store::open_location(&location, mode).await {
            Ok(store) => Ok(store),
            Err(e @ StoreError::NoDatabase(_)) => Err(anyhow::anyhow!(
                "{e} (create a bank with `hashguard list create`, or give --db)"
            )),
            Err(e @ (StoreError::NotAFile(_) | StoreError::ReadOnly { .. })) => Err(e.into()),
            Err(e) => Err(e).with_context(|| format!("cannot open the {}", location.describe())),
        }
    }
}

/// A single-threaded async runtime for the store's calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

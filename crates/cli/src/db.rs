//! The `--db` option shared by `list`, `match` and `table`: a database URL, or a path to a SQLite
//! file; by default the SQLite file `hashguard.db` in the working directory.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hashguard_store::{redact_url, sqlite_file, Store};

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

/// What a command does with the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: the database must exist; SQLite is opened read-only and nothing is migrated.
    Read,
    /// Writes to an existing database (migrating it first).
    Write,
    /// May create a new SQLite file (`list create`, `demo`).
    Create,
}

/// A resolved `--db`: the URL to connect to and, for a SQLite file, its path.
struct Resolved {
    url: String,
    sqlite_file: Option<PathBuf>,
}

impl DbArgs {
    /// The URL to connect to, and for a SQLite file its path. A `sqlite://PATH` URL without a
    /// `mode` parameter gets `mode=rwc`, so it creates a new file exactly as a bare path does
    /// (whether a command may create one is decided by [`DbArgs::open`]).
    fn resolve(&self) -> Resolved {
        let given = self.db.as_deref().unwrap_or(DEFAULT_DB);
        if given.starts_with("postgres://") || given.starts_with("postgresql://") {
            Resolved {
                url: given.to_string(),
                sqlite_file: None,
            }
        } else if let Some(rest) = given.strip_prefix("sqlite://") {
            let query = rest.split_once('?').map_or("", |(_, q)| q);
            let url = if query.split('&').any(|p| p.starts_with("mode=")) {
                given.to_string()
            } else if query.is_empty() {
                format!("{given}?mode=rwc")
            } else {
                format!("{given}&mode=rwc")
            };
            Resolved {
                sqlite_file: sqlite_file(&url),
                url,
            }
        } else if given.starts_with("sqlite:") {
            // `sqlite::memory:` and other forms sqlx accepts: no file to check.
            Resolved {
                url: given.to_string(),
                sqlite_file: None,
            }
        } else {
            let path = PathBuf::from(given);
            Resolved {
                url: Store::sqlite_url(&path),
                sqlite_file: Some(path),
            }
        }
    }

    /// A short description for messages: the SQLite file, or the PostgreSQL server and
    /// database. Never a user name, a password or URL parameters.
    pub fn describe(&self) -> String {
        let given = self.db.as_deref().unwrap_or(DEFAULT_DB);
        match self.resolve() {
            Resolved {
                sqlite_file: Some(path),
                ..
            } => format!("SQLite database {}", path.display()),
            _ if given.starts_with("sqlite:") => {
                format!("SQLite database {}", redact_url(given))
            }
            _ => {
                let redacted = redact_url(given);
                let host = redacted.split_once("://").map_or(&*redacted, |(_, h)| h);
                format!("PostgreSQL database {host}")
            }
        }
    }

    /// Opens the store for `access`. Only [`Access::Create`] may make a new SQLite file;
    /// [`Access::Read`] opens it read-only (it works in a directory the user cannot write, and
    /// never migrates). Fails at once with the database's own reason when it cannot be opened.
    pub async fn open(&self, access: Access) -> anyhow::Result<Store> {
        let resolved = self.resolve();
        if let Some(path) = &resolved.sqlite_file {
            if access != Access::Create {
                anyhow::ensure!(
                    path.exists(),
                    "no database at {} (create a bank with `hashguard list create`, or give --db)",
                    path.display()
                );
            }
            anyhow::ensure!(
                !path.is_dir(),
                "{} is a directory, not a SQLite database file",
                path.display()
            );
        }
        let store = match access {
            Access::Read => Store::open_read_only(&resolved.url).await,
            Access::Write | Access::Create => Store::open(&resolved.url).await,
        };
        store.with_context(|| format!("cannot open the {}", self.describe()))
    }
}

/// A single-threaded async runtime for the store's calls.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str) -> DbArgs {
        DbArgs {
            db: Some(db.to_string()),
        }
    }

    #[test]
    fn sqlite_urls_create_like_bare_paths_unless_they_say_otherwise() {
        let r = args("sqlite:///tmp/x.db").resolve();
        assert_eq!(r.url, "sqlite:///tmp/x.db?mode=rwc");
        assert_eq!(r.sqlite_file, Some(PathBuf::from("/tmp/x.db")));
        let r = args("sqlite://a.db?mode=ro").resolve();
        assert_eq!(r.url, "sqlite://a.db?mode=ro");
        let r = args("sqlite://a%3Fb.db?cache=shared").resolve();
        assert_eq!(r.url, "sqlite://a%3Fb.db?cache=shared&mode=rwc");
        assert_eq!(r.sqlite_file, Some(PathBuf::from("a?b.db")));
        assert_eq!(args("sqlite::memory:").resolve().sqlite_file, None);
    }

    #[test]
    fn descriptions_never_show_credentials() {
        for url in [
            "postgres://alice:s3cret@db.example:5432/banks?sslmode=disable",
            "postgres://db.example/banks?password=s3cret",
            "postgresql://alice:s3cret@db.example/banks?user=alice&password=s3cret",
        ] {
            let d = args(url).describe();
            assert!(!d.contains("s3cret") && !d.contains("alice"), "{d}");
            assert!(d.contains("db.example"), "{d}");
        }
    }
}

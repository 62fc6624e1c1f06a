//! Where a store lives, as a person gives it: a PostgreSQL URL, a `sqlite://` URL, or a bare
//! path to a SQLite file. The command line, the server's configuration and the SDK's tools all
//! resolve it the same way, and describe it without credentials.

use std::path::{Path, PathBuf};

use crate::open::{redact_url, sqlite_file};
use crate::{Store, StoreError};

/// The default database: the SQLite file `hashguard.db` in the working directory.
pub const DEFAULT_DATABASE: &str = "hashguard.db";

/// A resolved database location: the URL to connect to and, for a SQLite file, its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseLocation {
    given: String,
    url: String,
    sqlite_file: Option<PathBuf>,
}

/// What the caller will do with the database, which decides how it is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Reads only: the database must exist; SQLite is opened read-only (so it works in a
    /// directory the user cannot write) and nothing is migrated.
    Read,
    /// Writes to an existing database, migrating it first.
    Write,
    /// May create a new SQLite file.
    Create,
}

impl DatabaseLocation {
    /// Resolves what a person gave: `postgres://...` and `postgresql://...` as they are;
    /// `sqlite://PATH` with `mode=rwc` added unless a `mode` is given, so it creates a new file
    /// exactly as a bare path does (whether one may be created is [`OpenMode`]'s decision);
    /// other `sqlite:` forms (`sqlite::memory:`) as they are; anything else as a path to a
    /// SQLite file.
    pub fn parse(given: &str) -> Self {
        let (url, sqlite_file) =
            if given.starts_with("postgres://") || given.starts_with("postgresql://") {
                (given.to_string(), None)
            } else if let Some(rest) = given.strip_prefix("sqlite://") {
                let query = rest.split_once('?').map_or("", |(_, q)| q);
                let url = if query.split('&').any(|p| p.starts_with("mode=")) {
                    given.to_string()
                } else if query.is_empty() {
                    format!("{given}?mode=rwc")
                } else {
                    format!("{given}&mode=rwc")
                };
                let file = sqlite_file(&url);
                (url, file)
            } else if given.starts_with("sqlite:") {
                (given.to_string(), None)
            } else {
                let path = PathBuf::from(given);
                (Store::sqlite_url(&path), Some(path))
            };
        DatabaseLocation {
            given: given.to_string(),
            url,
            sqlite_file,
        }
    }

    /// The URL to connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite file, when the location is one.
    pub fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    /// A short description for messages: the SQLite file, or the PostgreSQL server and
    /// database. Never a user name, a password or URL parameters.
    pub fn describe(&self) -> String {
        if let Some(path) = &self.sqlite_file {
            format!("SQLite database {}", path.display())
        } else if self.given.starts_with("sqlite:") {
            format!("SQLite database {}", redact_url(&self.given))
        } else {
            let redacted = redact_url(&self.given);
            let host = redacted.split_once("://").map_or(&*redacted, |(_, h)| h);
            format!("PostgreSQL database {host}")
        }
    }
}

impl Default for DatabaseLocation {
    fn default() -> Self {
        DatabaseLocation::parse(DEFAULT_DATABASE)
    }
}

impl Store {
    /// Opens the store at `location` for `mode`. Only [`OpenMode::Create`] may make a new
    /// SQLite file ([`StoreError::NoDatabase`] otherwise), a directory is never taken for a
    /// database file ([`StoreError::NotAFile`]), and [`OpenMode::Read`] opens read-only.
    pub async fn open_location(
        location: &DatabaseLocation,
        mode: OpenMode,
    ) -> Result<Store, StoreError> {
        if let Some(path) = location.sqlite_file() {
            if mode != OpenMode::Create && !path.exists() {
                return Err(StoreError::NoDatabase(path.to_path_buf()));
            }
            if path.is_dir() {
                return Err(StoreError::NotAFile(path.to_path_buf()));
            }
            // SQLite opens a file it may not write read-only without a word, and a command
            // that turns out to write nothing (an unchanged list) would then succeed; a
            // writing caller is told at once instead.
            if mode == OpenMode::Write {
                if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
                    return Err(StoreError::ReadOnly {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        match mode {
            OpenMode::Read => Store::open_read_only(location.url()).await,
            OpenMode::Write | OpenMode::Create => Store::open(location.url()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_like_bare_paths_unless_they_say_otherwise() {
        let r = DatabaseLocation::parse("sqlite:///tmp/x.db");
        assert_eq!(r.url(), "sqlite:///tmp/x.db?mode=rwc");
        assert_eq!(r.sqlite_file(), Some(Path::new("/tmp/x.db")));
        let r = DatabaseLocation::parse("sqlite://a.db?mode=ro");
        assert_eq!(r.url(), "sqlite://a.db?mode=ro");
        let r = DatabaseLocation::parse("sqlite://a%3Fb.db?cache=shared");
        assert_eq!(r.url(), "sqlite://a%3Fb.db?cache=shared&mode=rwc");
        assert_eq!(r.sqlite_file(), Some(Path::new("a?b.db")));
        assert_eq!(
            DatabaseLocation::parse("sqlite::memory:").sqlite_file(),
            None
        );
        let bare = DatabaseLocation::parse("banks.db");
        assert_eq!(bare.sqlite_file(), Some(Path::new("banks.db")));
        assert_eq!(bare.describe(), "SQLite database banks.db");
        assert_eq!(
            DatabaseLocation::default().sqlite_file(),
            Some(Path::new(DEFAULT_DATABASE))
        );
    }

    #[test]
    fn descriptions_never_show_credentials() {
        for url in [
            "postgres://alice:s3cret@db.example:5432/banks?sslmode=disable",
            "postgres://db.example/banks?password=s3cret",
            "postgresql://alice:s3cret@db.example/banks?user=alice&password=s3cret",
        ] {
            let d = DatabaseLocation::parse(url).describe();
            assert!(!d.contains("s3cret") && !d.contains("alice"), "{d}");
            assert!(d.contains("db.example"), "{d}");
            assert!(d.starts_with("PostgreSQL database"), "{d}");
        }
    }

    #[tokio::test]
    async fn only_create_makes_a_file_and_a_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new.db");
        let location = DatabaseLocation::parse(&path.display().to_string());
        for mode in [OpenMode::Read, OpenMode::Write] {
            assert!(matches!(
                Store::open_location(&location, mode).await,
                Err(StoreError::NoDatabase(p)) if p == path
            ));
            assert!(!path.exists());
        }
        Store::open_location(&location, OpenMode::Create)
            .await
            .expect("created");
        assert!(path.exists());
        let dir_location = DatabaseLocation::parse(&dir.path().display().to_string());
        assert!(matches!(
            Store::open_location(&dir_location, OpenMode::Create).await,
            Err(StoreError::NotAFile(_))
        ));
    }
}

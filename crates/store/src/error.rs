//! The store's error type.

use std::time::Duration;

use hashguard_hashlist::{BankName, SignalType, Version, VersionError};

use crate::{AccountId, AttachmentId, Backend, CaseId};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database did not answer within the time given (an unreachable host, say).
    #[error("no answer from the database within {} s", .0.as_secs())]
    ConnectTimeout(Duration),
    /// Another writer kept the database (SQLite) or the bank (PostgreSQL) locked for longer
    /// than the busy timeout ([`StoreOptions::with_busy_timeout`](crate::StoreOptions::with_busy_timeout)).
    #[error("another writer kept the database locked for more than {} s (the busy timeout); try again", .0.as_secs_f64())]
    Busy(Duration),
    /// A reading command found a database without this version's schema changes.
    #[error("the database lacks {missing} schema migration(s) of this version; a writing command (e.g. `hashguard list import`) upgrades it")]
    NeedsUpgrade {
        /// How many migrations are not applied.
        missing: usize,
    },
    /// A SQLite file that does not exist, opened by a caller that may not create one
    /// ([`OpenMode`](crate::OpenMode)).
    #[error("no database at {}", .0.display())]
    NoDatabase(std::path::PathBuf),
    /// A SQLite file this user may not write, opened by a writing caller.
    #[error("the database file {} is read-only for this user ({reason})", path.display())]
    ReadOnly {
        /// The file.
        path: std::path::PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A directory where a SQLite database file was expected.
    #[error("{} is a directory, not a SQLite database file", .0.display())]
    NotAFile(std::path::PathBuf),
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("unsupported database URL (use sqlite://PATH or postgres://...): {0}")]
    UnsupportedUrl(String),
    /// A bank of that name exists already.
    #[error("bank {0} exists already")]
    BankExists(BankName),
    /// No bank of that name.
    #[error("no bank named {0}")]
    NoSuchBank(BankName),
    /// An export asked for a version after the bank's latest (or of a bank with no version).
    #[error("bank {bank} has no version {version} ({})", match .latest {
        Some(latest) => format!("its latest is {latest}"),
        None => "nothing was imported into it yet".to_string(),
    })]
    NoSuchVersion {
        /// The bank.
        bank: BankName,
        /// The version asked for.
        version: Version,
        /// The bank's latest version.
        latest: Option<Version>,
    },
    /// [`Store::import_next`](crate::Store::import_next) found the bank at the largest version
    /// there is, and the list differs from it.
    #[error("version numbers exhausted: bank {bank} is at version {latest}, the largest there is; import into a new bank")]
    VersionsExhausted {
        /// The bank.
        bank: BankName,
        /// Its latest version.
        latest: Version,
    },
    /// The list's signal type is not the bank's.
    #[error("bank {bank} holds {expected} values, the list holds {found}")]
    SignalTypeMismatch {
        /// The bank.
        bank: BankName,
        /// The bank's type.
        expected: SignalType,
        /// The list's type.
        found: SignalType,
    },
    /// The version cannot be imported (older than the latest, or the latest with other content).
    #[error(transparent)]
    Version(#[from] VersionError),
    /// An account of that id exists already.
    #[error("account {0} exists already")]
    AccountExists(AccountId),
    /// No account of that id.
    #[error("no account {0}")]
    NoSuchAccount(AccountId),
    /// No attachment of that id.
    #[error("no attachment {0}")]
    NoSuchAttachment(AttachmentId),
    /// No case of that id.
    #[error("no case {0}")]
    NoSuchCase(CaseId),
    /// A row with the same key exists already. The key's value is not in the message: it can be
    /// a token's digest.
    #[error("{table}: a row with the same {key} exists already")]
    Duplicate {
        /// The table.
        table: &'static str,
        /// Which key (a column, or a description of the unique index).
        key: &'static str,
    },
    /// A number does not fit the database's signed 64-bit integers (or a time is negative
    /// where it cannot be).
    #[error("out of range for the database: {what}")]
    OutOfRange {
        /// Which number.
        what: &'static str,
    },
    /// [`Store::take_tokens`](crate::Store::take_tokens) was asked for more tokens than the
    /// bucket can ever hold: a configuration error, refused rather than waited for forever.
    #[error("a take of {cost} tokens from a bucket of capacity {capacity} can never succeed")]
    BucketTooSmall {
        /// Tokens asked for.
        cost: u32,
        /// The bucket's capacity.
        capacity: u32,
    },
    /// A write that retries when another writer takes its key first (an audit seq, a new rate
    /// bucket) lost that race this many times in a row.
    #[error(
        "gave up writing {what} after {attempts} attempts: other writers kept taking the key first"
    )]
    Contended {
        /// What was being written.
        what: &'static str,
        /// How many attempts were made.
        attempts: u32,
    },
    /// [`Store::integrity_check`](crate::Store::integrity_check) found a problem.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A stored row does not validate (written by something other than this crate?).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// A [`StoreError::Corrupt`].
pub(crate) fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

/// `error` as [`StoreError::Busy`] when it says that a lock was not had within the busy timeout:
/// SQLite's SQLITE_BUSY (primary code 5, any extended code) or PostgreSQL's `lock_not_available`
/// (55P03, raised by `lock_timeout`).
pub(crate) fn busy_or(error: sqlx::Error, backend: Backend, timeout: Duration) -> StoreError {
    let busy = match (&error, backend) {
        (sqlx::Error::Database(e), Backend::Sqlite) => e
            .code()
            .and_then(|c| c.parse::<u32>().ok())
            .is_some_and(|c| c & 0xff == 5),
        (sqlx::Error::Database(e), Backend::Postgres) => e.code().as_deref() == Some("55P03"),
        _ => false,
    };
    if busy {
        StoreError::Busy(timeout)
    } else {
        StoreError::Database(error)
    }
}

/// A decoding error of ours carried through sqlx's row mapping (which only passes
/// `sqlx::Error` on), and taken out again by [`from_mapped`].
pub(crate) fn into_mapped(error: StoreError) -> sqlx::Error {
    match error {
        StoreError::Database(e) => e,
        other => sqlx::Error::Decode(Box::new(other)),
    }
}

/// The inverse of [`into_mapped`].
pub(crate) fn from_mapped(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Decode(inner) => match inner.downcast::<StoreError>() {
            Ok(ours) => *ours,
            Err(other) => StoreError::Database(sqlx::Error::Decode(other)),
        },
        other => StoreError::Database(other),
    }
}

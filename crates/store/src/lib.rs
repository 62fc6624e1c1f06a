//! Persistence of hash banks, their entries (with tombstones) and list versions, on SQLite (the
//! embedded default: one file, WAL mode) or PostgreSQL (for deployments that outgrow one
//! machine), through one schema and one set of migrations.
//!
//! # Design decisions
//!
//! - **`sqlx::Any`, not a trait with two implementations.** Every operation is one SQL text that
//!   runs unchanged on both databases, so the two backends cannot drift apart: there is no second
//!   implementation to forget to update, and the one test suite exercises the same code on both.
//!   The price is the `Any` type set (integers, text, floats, bytes), which is all this schema
//!   needs. The SQL stays in the portable subset: `$n` placeholders (PostgreSQL's, which SQLite
//!   also accepts), `TEXT` and `BIGINT` columns, natural keys instead of auto-increment, partial
//!   unique indexes, no `RETURNING`, `ON CONFLICT` or `FOR UPDATE`.
//! - **One schema, one migration set** (`migrations/`, embedded at build time with
//!   `sqlx::migrate!`, which needs no database at build time). A migration that may have been
//!   applied is never edited; changes come as new migrations in the same portable SQL
//!   (`0002_vpdq.sql` rebuilds the tables to change a CHECK constraint, which neither database
//!   can alter portably). No compile-time checked `query!`
//!   macros, for the same reason. User data only ever reaches the database as bind parameters;
//!   the only SQL built at run time is a list of placeholders (`($1,$2,...)`) for batched inserts.
//! - **Hash values are lowercase hex text.** Portable, readable from `sqlite3` and `psql`, and the
//!   same text as the list files; the pure `hashguard-hashlist` crate validates them on the way
//!   in and again on the way out (a row that fails validation is reported as corrupt, never
//!   skipped).
//! - **A vPDQ entry is keyed by a digest of its text.** A vPDQ value (one video) is a JSON
//!   `signal_str` of 77 bytes per frame, too long for a PostgreSQL B-tree key (checked: a
//!   60-frame `signal_str` of 4.5 kB is refused as a `TEXT PRIMARY KEY`: "index row size 4504
//!   exceeds btree version 4 maximum 2704"; at one hashed frame per second that is a one-minute
//!   video), so its row has
//!   `value` = SHA-256 (lowercase hex) of the canonical `signal_str` and `payload` = the
//!   `signal_str` itself (migration `0002_vpdq.sql`). The digest is the identity
//!   (`hashguard-hashlist` defines vPDQ identity as the canonical text, and equal texts have
//!   equal digests), so keys, tombstones and the one-live-row-per-value index work unchanged.
//!   On the way out the payload is parsed and its digest checked against `value`; a mismatch is
//!   reported as corrupt. For the other types `payload` is NULL.
//! - **An entry keeps each list line's metadata in the entry's row.** A list that repeats a value
//!   gives one entry with several source ids (PDQ CLI file names) and several labels (CSV collab,
//!   category and tags; see `hashguard_hashlist::ListItem`). They are kept in the `source_id`,
//!   `collab`, `category` and `tags` columns, one line per id or label, since none of those texts
//!   can hold a newline (migration `0003_collab.sql`): no extra table, no join on every load, and
//!   a row with one id and one label, or one written by an earlier version, reads as before.
//! - **An import is one transaction.** It starts with a write to the bank's row
//!   (`UPDATE banks SET threshold = threshold ...`), which takes PostgreSQL's row lock and SQLite's write
//!   lock before anything is read, so two concurrent imports into one bank serialise instead of
//!   both planning from the same state. The plan itself is [`hashguard_hashlist::plan_import`]:
//!   the store only executes it, so the versioning rules are defined (and property-tested) once.
//! - **Tombstones, not deletes.** Removing a value sets `removed_in`; any past version can be
//!   exported, and the `list_versions` table is the audit trail (who, when, file SHA-256,
//!   counts).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType, Version};
//! use hashguard_store::{ImportMeta, ImportOutcome, Store};
//!
//! let dir = std::env::temp_dir().join(format!("hashguard-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = Store::open(&Store::sqlite_url(&dir.join("lists.db"))).await?;
//! let bank = Bank::new("standin".parse()?, "Stand-in Org", "GB".parse()?, SignalType::Md5, BankKind::Block)?;
//! store.create_bank(&bank).await?;
//!
//! let file = format!("md5 {}\n", "0".repeat(32));
//! let list = parse_list(file.as_bytes(), SignalType::Md5, None)?;
//! let meta = ImportMeta::new("doc-test", Some("standin.txt"), file.as_bytes());
//! let outcome = store.import(bank.name(), &list, Version::FIRST, &meta).await?;
//! assert!(matches!(outcome, ImportOutcome::Imported { added: 1, .. }));
//! assert_eq!(store.import(bank.name(), &list, Version::FIRST, &meta).await?, ImportOutcome::NoOp);
//! assert_eq!(store.export(bank.name(), None).await?.len(), 1);
//! store.close().await;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hashguard_hashlist::{
    plan_import, Bank, BankKind, BankName, Changes, Entry, ImportPlan, Jurisdiction, Label,
    ListItem, ParsedList, Quality, Signal, SignalType, Tag, Text, Version, VersionError,
};
use sha2::{Digest, Sha256};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row, Transaction};

/// The schema migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Rows per batched `INSERT` (10 parameters each). Measured on 100,000 PDQ entries when there
/// were 9 (release build, loaded 2-core machine): SQLite took 6.4 s with 500 rows per statement,
/// 1.8 s with 100 and 1.2 s with 40 (binding cost grows faster than linearly with the parameter
/// count); PostgreSQL took 1.7-1.8 s either way.
const INSERT_BATCH: usize = 40;

/// Payload bytes per batched `INSERT` of vPDQ entries (a video's `signal_str` can be megabytes):
/// a batch ends at 40 rows or once it holds this many payload bytes.
const INSERT_BATCH_BYTES: usize = 4 << 20;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

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
    /// A reading command found a database without this version's schema changes.
    #[error("the database lacks {missing} schema migration(s) of this version; a writing command (e.g. `hashguard list import`) upgrades it")]
    NeedsUpgrade {
        /// How many migrations are not applied.
        missing: usize,
    },
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
    /// A stored row does not validate (written by something other than this crate?).
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What is wrong.
        detail: String,
    },
}

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

/// Who imports a list, from which file: the audit row's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMeta {
    imported_by: String,
    source_name: Option<String>,
    file_sha256: String,
}

impl ImportMeta {
    /// The audit data of an import of `file_bytes` (their SHA-256 is recorded, not the bytes)
    /// by `imported_by`, from a file called `source_name`.
    pub fn new(imported_by: &str, source_name: Option<&str>, file_bytes: &[u8]) -> ImportMeta {
        let digest = Sha256::digest(file_bytes);
        ImportMeta {
            imported_by: imported_by.to_string(),
            source_name: source_name.map(str::to_string),
            file_sha256: hex(&digest),
        }
    }

    /// The SHA-256 of the file, lowercase hex.
    pub fn file_sha256(&self) -> &str {
        &self.file_sha256
    }
}

/// The result of [`Store::import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The version was the bank's latest with the same content: nothing was written.
    NoOp,
    /// The version was recorded and applied.
    Imported {
        /// The version.
        version: Version,
        /// Entries added.
        added: u64,
        /// Entries tombstoned.
        removed: u64,
        /// Entries left as they were.
        unchanged: u64,
    },
}

/// One audit row: a list version as imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    /// The version.
    pub version: Version,
    /// Unix time (seconds) of the import.
    pub imported_at: i64,
    /// Who imported it.
    pub imported_by: String,
    /// The file's name, as given.
    pub source_name: Option<String>,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub file_sha256: String,
    /// The format it was read as (`hex`, `local-file`, `csv`, `pdq-cli`).
    pub format: String,
    /// Items in the list.
    pub items: u64,
    /// Entries added.
    pub added: u64,
    /// Entries tombstoned.
    pub removed: u64,
    /// Entries unchanged.
    pub unchanged: u64,
}

/// Counts for one bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankStats {
    /// The bank.
    pub bank: Bank,
    /// Its latest imported version.
    pub latest_version: Option<Version>,
    /// Number of imported versions.
    pub versions: u64,
    /// Live entries (the latest version's size).
    pub live: u64,
    /// Tombstones.
    pub tombstones: u64,
    /// The latest import's audit row.
    pub last_import: Option<ImportRecord>,
}

/// A bank with entries, as [`Store::load_enabled`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBank {
    /// The bank.
    pub bank: Bank,
    /// Its live entries.
    pub entries: Vec<Entry>,
}

/// A connection pool to a hashguard database, migrated to the current schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `($k+1,...,$k+width),(...)` for `rows` rows: placeholders only, never data.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How long opening a database may take before it is reported as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a store may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

/// The per-connection settings: WAL and foreign keys on SQLite (WAL only when writing: the
/// journal mode is a property of the file, and switching it needs write access), a read-only
/// session on PostgreSQL when reading.
async fn set_up_connection(
    conn: &mut AnyConnection,
    backend: Backend,
    access: Access,
) -> Result<(), sqlx::Error> {
    match (backend, access) {
        (Backend::Sqlite, Access::ReadWrite) => {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut *conn)
                .await?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await?;
        }
        (Backend::Sqlite, Access::ReadOnly) => {
            // Reads the schema, so a file that is not a database fails here, on the probe.
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&mut *conn)
                .await?;
        }
        (Backend::Postgres, Access::ReadWrite) => {}
        (Backend::Postgres, Access::ReadOnly) => {
            sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Connects once and sets the connection up: the database's own error if it cannot be opened.
async fn probe(url: &str, backend: Backend, access: Access) -> Result<(), StoreError> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(url))
        .await
        .map_err(|_| StoreError::ConnectTimeout(CONNECT_TIMEOUT))??;
    let set_up = set_up_connection(&mut conn, backend, access).await;
    // The probe of an in-memory database would be a database of its own: it is only a check.
    let _ = conn.close().await;
    Ok(set_up?)
}

/// Whether a read-only SQLite open failed only because the WAL shared-memory file cannot be
/// made (SQLITE_READONLY or SQLITE_CANTOPEN, with any extended code, on an existing file with
/// no `-wal` beside it).
fn needs_immutable(url: &str, backend: Backend, access: Access, error: &sqlx::Error) -> bool {
    if backend != Backend::Sqlite || access != Access::ReadOnly || url.contains("immutable=") {
        return false;
    }
    // The primary result code is the low byte of SQLite's extended code (1544 is
    // SQLITE_READONLY_DIRECTORY, a kind of SQLITE_READONLY = 8).
    let primary = match error {
        sqlx::Error::Database(e) => e
            .code()
            .and_then(|c| c.parse::<u32>().ok())
            .map(|c| c & 0xff),
        _ => None,
    };
    let Some(path) = sqlite_file(url) else {
        return false;
    };
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    matches!(primary, Some(8) | Some(14)) && path.is_file() && !Path::new(&wal).exists()
}

/// The file a `sqlite://PATH?...` URL names (its `%XX` escapes decoded, as sqlx decodes
/// them), or `None` for another URL or an in-memory database.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    Some(std::path::PathBuf::from(decoded.into_owned()))
}

/// Refuses a database that lacks one of this version's migrations (a reading command does
/// not migrate).
async fn check_schema_current(pool: &AnyPool) -> Result<(), StoreError> {
    let applied: Vec<i64> = match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()?,
        // No migrations table: an empty file, or not a hashguard database.
        Err(sqlx::Error::Database(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let missing = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    if missing > 0 {
        return Err(StoreError::NeedsUpgrade { missing });
    }
    Ok(())
}

/// `url` with its SQLite `mode` parameter set to `mode` (replacing any given).
fn sqlite_url_with_mode(url: &str, mode: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .collect();
    let mode = format!("mode={mode}");
    params.push(&mode);
    format!("{base}?{}", params.join("&"))
}

/// A database URL fit for messages: scheme, host, port and database name; never a user name,
/// a password or query parameters (which can hold `password=`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if scheme.is_empty() {
        rest.to_string()
    } else {
        format!("{scheme}://{rest}")
    }
}

impl Store {
    /// The URL of a SQLite database file, created if missing. `%`, `?` and `#` in the path
    /// are percent-encoded, as sqlx's SQLite URL reader expects, so any UTF-8 path works.
    pub fn sqlite_url(path: &Path) -> String {
        let path = path.display().to_string();
        let mut encoded = String::with_capacity(path.len());
        for c in path.chars() {
            match c {
                '%' => encoded.push_str("%25"),
                '?' => encoded.push_str("%3F"),
                '#' => encoded.push_str("%23"),
                c => encoded.push(c),
            }
        }
        format!("sqlite://{encoded}?mode=rwc")
    }

    /// Connects to `url` (`sqlite://PATH?mode=rwc`, `sqlite::memory:` or `postgres://...`) and
    /// applies any pending migrations. SQLite databases are switched to WAL mode.
    ///
    /// A database that cannot be opened fails at once with the database's own reason (a closed
    /// port, a file that is not SQLite, a directory that cannot be written), not after a pool's
    /// acquire timeout: one connection is made and set up first, outside the pool's retry loop.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, Access::ReadWrite).await
    }

    /// Connects to `url` for reading only: a SQLite file is opened with `mode=ro` (so reading
    /// works where the file or its directory cannot be written, and nothing is ever created),
    /// a PostgreSQL session is made read-only. Nothing is migrated; a database whose schema is
    /// older than this version is refused with [`StoreError::NeedsUpgrade`].
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        Self::open_with(url, Access::ReadOnly).await
    }

    async fn open_with(url: &str, access: Access) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        sqlx::any::install_default_drivers();
        let memory = backend == Backend::Sqlite && url.contains(":memory:");
        let url = match (backend, access) {
            (Backend::Sqlite, Access::ReadOnly) if !memory => sqlite_url_with_mode(url, "ro"),
            _ => url.to_string(),
        };

        // The pool retries refused connections and failing set-ups until its acquire timeout
        // and then reports only that it timed out; one direct attempt reports the real cause.
        let url = match probe(&url, backend, access).await {
            Err(StoreError::Database(e)) if needs_immutable(&url, backend, access, &e) => {
                // A WAL database in a directory this user cannot write: SQLite cannot create the
                // shared-memory file a WAL reader needs. No writer is active (it would have made
                // that file), so the file is read as immutable.
                let immutable = format!("{url}&immutable=1");
                probe(&immutable, backend, access).await?;
                immutable
            }
            other => {
                other?;
                url
            }
        };

        let pool = AnyPoolOptions::new()
            // Each connection to an in-memory SQLite database is a database of its own.
            .max_connections(if memory { 1 } else { 4 })
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    set_up_connection(conn, backend, access).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        match access {
            Access::ReadWrite => MIGRATOR.run(&pool).await?,
            Access::ReadOnly => check_schema_current(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The SQLite journal mode (`wal` after [`Store::open`]); `None` on PostgreSQL.
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>, StoreError> {
        if self.backend != Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(row.try_get::<String, _>(0)?))
    }

    /// Creates a bank. Fails with [`StoreError::BankExists`] if the name is taken.
    pub async fn create_bank(&self, bank: &Bank) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        if bank_in(&mut tx, bank.name()).await?.is_some() {
            return Err(StoreError::BankExists(bank.name().clone()));
        }
        sqlx::query(
            "INSERT INTO banks (name, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(bank.name().as_str())
        .bind(bank.organisation().as_str())
        .bind(bank.jurisdiction().as_str())
        .bind(bank.signal_type().as_str())
        .bind(i64::from(bank.threshold()))
        .bind(i64::from(bank.enabled()))
        .bind(bank.kind().as_str())
        .bind(now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Updates a bank's threshold and enabled flag (the other fields define the bank and do not
    /// change: create another bank instead).
    pub async fn update_bank(&self, bank: &Bank) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE banks SET threshold = $1, enabled = $2 WHERE name = $3")
            .bind(i64::from(bank.threshold()))
            .bind(i64::from(bank.enabled()))
            .bind(bank.name().as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NoSuchBank(bank.name().clone()));
        }
        Ok(())
    }

    /// The bank called `name`, if any.
    pub async fn bank(&self, name: &BankName) -> Result<Option<Bank>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query(BANK_SELECT_ONE)
            .bind(name.as_str())
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|r| bank_from_row(&r)).transpose()
    }

    /// Every bank, by name.
    pub async fn banks(&self) -> Result<Vec<Bank>, StoreError> {
        let rows = sqlx::query(&format!("{BANK_SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(bank_from_row).collect()
    }

    /// The bank's latest imported version.
    pub async fn latest_version(&self, name: &BankName) -> Result<Option<Version>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        latest_in(&mut conn, name).await
    }

    /// Imports `list` as `version` of bank `name`, in one transaction: either the version row,
    /// every addition and every tombstone are written, or nothing is. Re-importing the latest
    /// version with the same content is [`ImportOutcome::NoOp`] (and writes nothing, not even an
    /// audit row); the rules are [`hashguard_hashlist::plan_import`]'s.
    pub async fn import(
        &self,
        name: &BankName,
        list: &ParsedList,
        version: Version,
        meta: &ImportMeta,
    ) -> Result<ImportOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the bank first (see the crate documentation).
        let locked = sqlx::query("UPDATE banks SET threshold = threshold WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        if locked.rows_affected() == 0 {
            return Err(StoreError::NoSuchBank(name.clone()));
        }
        let bank = bank_in(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::NoSuchBank(name.clone()))?;
        if bank.signal_type() != list.signal_type() {
            return Err(StoreError::SignalTypeMismatch {
                bank: name.clone(),
                expected: bank.signal_type(),
                found: list.signal_type(),
            });
        }
        let latest = latest_in(&mut tx, name).await?;
        let live = entries_in(&mut tx, &bank, true).await?;
        let changes = match plan_import(latest, &live, list.items(), version)? {
            ImportPlan::NoOp => {
                tx.rollback().await?;
                return Ok(ImportOutcome::NoOp);
            }
            ImportPlan::Apply(changes) => changes,
        };
        let live_since: HashMap<Signal, Version> = live
            .iter()
            .map(|e| (e.value().clone(), e.added_in()))
            .collect();
        write_changes(&mut tx, name, list, &changes, &live_since, meta).await?;
        tx.commit().await?;
        Ok(ImportOutcome::Imported {
            version,
            added: changes.added.len() as u64,
            removed: changes.removed.len() as u64,
            unchanged: changes.unchanged as u64,
        })
    }

    /// Every entry of the bank, live and tombstones, ordered by value then version (vPDQ entries:
    /// by the digest of their value).
    pub async fn entries(&self, name: &BankName) -> Result<Vec<Entry>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let bank = bank_in(&mut conn, name)
            .await?
            .ok_or_else(|| StoreError::NoSuchBank(name.clone()))?;
        entries_in(&mut conn, &bank, false).await
    }

    /// The bank's list at `version` (default: the latest), ordered by value (vPDQ: by digest):
    /// the items to write
    /// with [`hashguard_hashlist::write_list`]. A version that was never imported but lies between
    /// two imported ones gives the list as it stood then; a version after the latest is
    /// [`StoreError::NoSuchVersion`] (the list it would name does not exist yet, and answering
    /// with the latest would pass one version off as another).
    pub async fn export(
        &self,
        name: &BankName,
        version: Option<Version>,
    ) -> Result<Vec<ListItem>, StoreError> {
        let entries = self.entries(name).await?;
        if let Some(version) = version {
            let latest = self.latest_version(name).await?;
            if latest.is_none_or(|latest| version > latest) {
                return Err(StoreError::NoSuchVersion {
                    bank: name.clone(),
                    version,
                    latest,
                });
            }
        }
        Ok(entries
            .into_iter()
            .filter(|e| match version {
                Some(v) => e.live_at(v),
                None => e.is_live(),
            })
            .map(|e| e.item().clone())
            .collect())
    }

    /// The audit rows of the bank's imports, oldest first.
    pub async fn imports(&self, name: &BankName) -> Result<Vec<ImportRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged \
             FROM list_versions WHERE bank = $1 ORDER BY version",
        )
        .bind(name.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(import_from_row).collect()
    }

    /// Counts for one bank.
    pub async fn stats(&self, name: &BankName) -> Result<BankStats, StoreError> {
        let bank = self
            .bank(name)
            .await?
            .ok_or_else(|| StoreError::NoSuchBank(name.clone()))?;
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN removed_in IS NULL THEN 1 ELSE 0 END), 0) \
             FROM entries WHERE bank = $1",
        )
        .bind(name.as_str())
        .fetch_one(&self.pool)
        .await?;
        let total = to_u64(row.try_get::<i64, _>(0)?);
        let live = to_u64(row.try_get::<i64, _>(1)?);
        let imports = self.imports(name).await?;
        Ok(BankStats {
            bank,
            latest_version: imports.last().map(|r| r.version),
            versions: imports.len() as u64,
            live,
            tombstones: total - live.min(total),
            last_import: imports.last().cloned(),
        })
    }

    /// Every enabled bank (of `signal_type`, if given) with its live entries: the input of the
    /// matcher and of [`hashguard_hashlist::consensus()`]. Allow banks are included (the matcher
    /// needs them); the consensus view leaves them out by itself.
    pub async fn load_enabled(
        &self,
        signal_type: Option<SignalType>,
    ) -> Result<Vec<LoadedBank>, StoreError> {
        let banks = self.banks().await?;
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::new();
        for bank in banks {
            if !bank.enabled() || signal_type.is_some_and(|t| t != bank.signal_type()) {
                continue;
            }
            let entries = entries_in(&mut conn, &bank, true).await?;
            out.push(LoadedBank { bank, entries });
        }
        Ok(out)
    }
}

const BANK_SELECT: &str =
    "SELECT name, organisation, jurisdiction, signal_type, threshold, enabled, kind FROM banks";
const BANK_SELECT_ONE: &str = "SELECT name, organisation, jurisdiction, signal_type, threshold, enabled, kind FROM banks WHERE name = $1";

fn bank_from_row(r: &AnyRow) -> Result<Bank, StoreError> {
    let c = |e: &dyn std::fmt::Display| corrupt("banks", e);
    let name: BankName = r.try_get::<String, _>(0)?.parse().map_err(|e| c(&e))?;
    let organisation: String = r.try_get(1)?;
    let jurisdiction: Jurisdiction = r.try_get::<String, _>(2)?.parse().map_err(|e| c(&e))?;
    let signal_type: SignalType = r.try_get::<String, _>(3)?.parse().map_err(|e| c(&e))?;
    let threshold = u32::try_from(r.try_get::<i64, _>(4)?).map_err(|e| c(&e))?;
    let enabled = r.try_get::<i64, _>(5)? != 0;
    let kind: BankKind = r.try_get::<String, _>(6)?.parse().map_err(|e| c(&e))?;
    Bank::new(name, &organisation, jurisdiction, signal_type, kind)
        .and_then(|b| b.with_threshold(threshold))
        .map(|b| b.with_enabled(enabled))
        .map_err(|e| c(&e))
}

fn import_from_row(r: &AnyRow) -> Result<ImportRecord, StoreError> {
    let version = u64::try_from(r.try_get::<i64, _>(0)?)
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| corrupt("list_versions", "version out of range"))?;
    Ok(ImportRecord {
        version,
        imported_at: r.try_get(1)?,
        imported_by: r.try_get(2)?,
        source_name: r.try_get(3)?,
        file_sha256: r.try_get(4)?,
        format: r.try_get(5)?,
        items: to_u64(r.try_get(6)?),
        added: to_u64(r.try_get(7)?),
        removed: to_u64(r.try_get(8)?),
        unchanged: to_u64(r.try_get(9)?),
    })
}

async fn bank_in(
    conn: &mut sqlx::AnyConnection,
    name: &BankName,
) -> Result<Option<Bank>, StoreError> {
    let row = sqlx::query(BANK_SELECT_ONE)
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| bank_from_row(&r)).transpose()
}

async fn latest_in(
    conn: &mut sqlx::AnyConnection,
    name: &BankName,
) -> Result<Option<Version>, StoreError> {
    let row = sqlx::query("SELECT MAX(version) FROM list_versions WHERE bank = $1")
        .bind(name.as_str())
        .fetch_one(&mut *conn)
        .await?;
    match row.try_get::<Option<i64>, _>(0)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .ok()
            .and_then(Version::new)
            .map(Some)
            .ok_or_else(|| corrupt("list_versions", "version out of range")),
    }
}

async fn entries_in(
    conn: &mut sqlx::AnyConnection,
    bank: &Bank,
    live_only: bool,
) -> Result<Vec<Entry>, StoreError> {
    let sql = if live_only {
        "SELECT value, added_in, removed_in, quality, source_id, category, tags, payload, collab FROM entries \
         WHERE bank = $1 AND removed_in IS NULL ORDER BY value, added_in"
    } else {
        "SELECT value, added_in, removed_in, quality, source_id, category, tags, payload, collab FROM entries \
         WHERE bank = $1 ORDER BY value, added_in"
    };
    let rows = sqlx::query(sql)
        .bind(bank.name().as_str())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| entry_from_row(r, bank.signal_type()))
        .collect()
}

fn entry_from_row(r: &AnyRow, signal_type: SignalType) -> Result<Entry, StoreError> {
    let c = |e: &dyn std::fmt::Display| corrupt("entries", e);
    let version = |v: i64| {
        u64::try_from(v)
            .ok()
            .and_then(Version::new)
            .ok_or_else(|| corrupt("entries", format!("version {v} out of range")))
    };
    let key: String = r.try_get(0)?;
    let payload: Option<String> = r.try_get(7)?;
    let value = match (signal_type, payload) {
        (SignalType::Vpdq, Some(text)) => {
            let value = Signal::parse(signal_type, &text).map_err(|e| c(&e))?;
            let (want, _) = value_columns(&value);
            if want != key {
                return Err(c(&format!(
                    "vpdq entry {key}: its payload's digest is {want}"
                )));
            }
            value
        }
        (SignalType::Vpdq, None) => {
            return Err(c(&format!("vpdq entry {key} has no payload")));
        }
        (_, Some(_)) => {
            return Err(c(&format!("{signal_type} entry {key} has a payload")));
        }
        (_, None) => Signal::parse(signal_type, &key).map_err(|e| c(&e))?,
    };
    let added_in = version(r.try_get(1)?)?;
    let removed_in = r.try_get::<Option<i64>, _>(2)?.map(version).transpose()?;
    let quality = r
        .try_get::<Option<i64>, _>(3)?
        .map(|q| {
            u8::try_from(q)
                .ok()
                .and_then(|q| Quality::new(q).ok())
                .ok_or_else(|| corrupt("entries", format!("quality {q}")))
        })
        .transpose()?;
    let source_ids = r
        .try_get::<Option<String>, _>(4)?
        .map(|s| s.split('\n').map(Text::new).collect::<Result<Vec<_>, _>>())
        .transpose()
        .map_err(|e| c(&e))?
        .unwrap_or_default();
    let labels = labels_from_columns(r.try_get(8)?, r.try_get(5)?, r.try_get(6)?)
        .map_err(|e| c(&format!("entry {key}: {e}")))?;
    let item = ListItem::new(value, quality)
        .map_err(|e| c(&e))?
        .with_source_ids(source_ids)
        .with_labels(labels);
    Entry::new(item, added_in, removed_in).map_err(|e| c(&e))
}

/// The `collab`, `category` and `tags` columns of an item's labels: one line per label (see the
/// crate documentation); NULL, NULL and empty for none, and NULL for a column no label fills.
fn label_columns(labels: &[Label]) -> (Option<String>, Option<String>, String) {
    let column = |field: &dyn Fn(&Label) -> Option<&Text>| {
        labels.iter().any(|l| field(l).is_some()).then(|| {
            labels
                .iter()
                .map(|l| field(l).map_or("", Text::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    let tags = labels
        .iter()
        .map(|l| {
            l.tags()
                .iter()
                .map(Tag::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    (column(&Label::collab), column(&Label::category), tags)
}

/// The labels that [`label_columns`] wrote (and the one label of a row of an earlier version:
/// a category and tags, no collab).
fn labels_from_columns(
    collab: Option<String>,
    category: Option<String>,
    tags: String,
) -> Result<Vec<Label>, String> {
    if collab.is_none() && category.is_none() && tags.is_empty() {
        return Ok(Vec::new());
    }
    let count = tags.split('\n').count();
    let texts = |column: Option<String>, name: &str| -> Result<Vec<Option<Text>>, String> {
        let Some(column) = column else {
            return Ok(vec![None; count]);
        };
        let parts: Vec<&str> = column.split('\n').collect();
        if parts.len() != count {
            return Err(format!("{} {name} lines for {count} labels", parts.len()));
        }
        parts
            .into_iter()
            .map(|p| {
                (!p.is_empty())
                    .then(|| Text::new(p).map_err(|e| format!("{name}: {e}")))
                    .transpose()
            })
            .collect()
    };
    let collabs = texts(collab, "collab")?;
    let categories = texts(category, "category")?;
    tags.split('\n')
        .zip(collabs.into_iter().zip(categories))
        .map(|(tags, (collab, category))| {
            let tags = tags
                .split_whitespace()
                .map(|t| t.parse::<Tag>().map_err(|e| format!("tag {t:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Label::new(collab, category, tags))
        })
        .collect()
}

/// The `value` and `payload` columns of a value: the hex and nothing, or for vPDQ the SHA-256 of
/// the canonical `signal_str` and the `signal_str` (see the crate documentation).
fn value_columns(value: &Signal) -> (String, Option<String>) {
    match value {
        Signal::Vpdq(v) => (v.sha256_hex(), Some(v.to_string())),
        other => (other.to_string(), None),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn write_changes(
    tx: &mut Transaction<'static, Any>,
    name: &BankName,
    list: &ParsedList,
    changes: &Changes,
    live_since: &HashMap<Signal, Version>,
    meta: &ImportMeta,
) -> Result<(), StoreError> {
    let version = to_i64(changes.version.get());
    sqlx::query(
        "INSERT INTO list_versions (bank, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(name.as_str())
    .bind(version)
    .bind(now())
    .bind(meta.imported_by.as_str())
    .bind(meta.source_name.as_deref())
    .bind(meta.file_sha256.as_str())
    .bind(list.format().as_str())
    .bind(list.items().len() as i64)
    .bind(changes.added.len() as i64)
    .bind(changes.removed.len() as i64)
    .bind(changes.unchanged as i64)
    .execute(&mut **tx)
    .await?;

    // Tombstones first: a value whose metadata changed is removed and added in this version, and
    // the partial unique index allows one live row per value. One statement per row, on the full
    // primary key: a batched `value IN ($3, ..., $502)` looked fine but PostgreSQL's generic plan
    // for it, on a table without statistics yet, scanned every row of the bank and compared it
    // with all 500 parameters (measured: 113 s to tombstone 33,334 of 100,000 entries; row by row
    // on the key it is an index lookup each, whatever the statistics).
    for value in &changes.removed {
        let key = value_columns(value).0;
        let added_in = live_since
            .get(value)
            .ok_or_else(|| corrupt("entries", format!("{key} is not live")))?;
        let done = sqlx::query(
            "UPDATE entries SET removed_in = $1 \
             WHERE bank = $2 AND value = $3 AND added_in = $4 AND removed_in IS NULL",
        )
        .bind(version)
        .bind(name.as_str())
        .bind(key.as_str())
        .bind(to_i64(added_in.get()))
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(corrupt(
                "entries",
                format!(
                    "{key}: expected one live row, found {}",
                    done.rows_affected()
                ),
            ));
        }
    }

    let mut rest: &[ListItem] = &changes.added;
    while !rest.is_empty() {
        let mut rows = Vec::with_capacity(INSERT_BATCH);
        let mut bytes = 0;
        for item in rest.iter().take(INSERT_BATCH) {
            if !rows.is_empty() && bytes >= INSERT_BATCH_BYTES {
                break;
            }
            let (value, payload) = value_columns(item.value());
            bytes += payload.as_ref().map_or(0, String::len);
            rows.push((item, value, payload));
        }
        rest = &rest[rows.len()..];
        let sql = format!(
            "INSERT INTO entries (bank, value, added_in, removed_in, quality, source_id, category, tags, payload, collab) VALUES {}",
            placeholders(rows.len(), 10)
        );
        let mut q = sqlx::query(&sql);
        for (item, value, payload) in rows {
            let source_ids = (!item.source_ids().is_empty()).then(|| {
                item.source_ids()
                    .iter()
                    .map(Text::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            let (collab, category, tags) = label_columns(item.labels());
            q = q
                .bind(name.as_str())
                .bind(value)
                .bind(version)
                .bind(None::<i64>)
                .bind(item.quality().map(|q| i64::from(q.get())))
                .bind(source_ids)
                .bind(category)
                .bind(tags)
                .bind(payload)
                .bind(collab);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3), "($1,$2,$3),($4,$5,$6)");
    }

    #[test]
    fn label_columns_round_trip() {
        let t = |s: &str| Some(Text::new(s).unwrap());
        let tags = |t: &[&str]| t.iter().map(|t| t.parse().unwrap()).collect::<Vec<Tag>>();
        let cases = [
            vec![],
            vec![Label::new(None, None, tags(&["a"]))],
            vec![Label::new(t("Org"), None, vec![])],
            vec![Label::new(None, t("c"), tags(&["b", "a"]))],
            vec![
                Label::new(t("A"), None, vec![]),
                Label::new(None, t("c"), tags(&["x"])),
                Label::new(t("B"), t("d"), vec![]),
            ],
        ];
        for labels in cases {
            let (collab, category, tags) = label_columns(&labels);
            assert_eq!(labels_from_columns(collab, category, tags).unwrap(), labels);
        }
        // A row of an earlier version: a category and tags, no collab column.
        assert_eq!(
            labels_from_columns(None, Some("c".into()), "b a".into()).unwrap(),
            vec![Label::new(None, t("c"), tags(&["a", "b"]))]
        );
        assert!(labels_from_columns(Some("A\nB".into()), None, "x".into()).is_err());
    }
}

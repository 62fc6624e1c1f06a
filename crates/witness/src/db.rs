//! The witness's state in SQLite or PostgreSQL: the latest cosigned tree per log, every
//! cosigned checkpoint, and fork evidence.
//!
//! The SQL is the portable subset hashguard's store uses (`$n` placeholders, `TEXT` and
//! `BIGINT`, natural keys, no `ON CONFLICT` or `RETURNING`), run through `sqlx::AnyPool`: the
//! witness writes a few rows per list epoch, so the generic driver's cost does not matter. The
//! schema lives in `migrations/` with its own version table, `witness_schema`, so the witness
//! can share a database with `hashguard serve` without touching the store's migrations.
//!
//! The rule that matters: [`WitnessDb::advance`] checks the stored latest tree and replaces it
//! in one transaction, by a compare-and-swap `UPDATE ... WHERE size = old AND root = old_root`
//! (or an `INSERT` on the log's primary key for its first checkpoint). Of two requests that
//! advance from the same tree, the database lets exactly one through; the other sees zero rows
//! changed (or a key violation) and is told the new latest size.

use std::str::FromStr;
use std::time::Duration;

use hashguard_transparency::merkle::Hash;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/0001_witness.sql"))];

/// How long a writer waits for another writer's lock (SQLite's busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A database failure, or a stored value this version cannot read.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored row is not what this version writes.
    #[error("corrupt witness row: {0}")]
    Corrupt(String),
    /// A tree size above 2^63 - 1, which the `BIGINT` columns cannot hold.
    #[error("tree size {0} is above 2^63 - 1")]
    SizeTooLarge(u64),
    /// The URL is neither `sqlite:` nor `postgres://`/`postgresql://`.
    #[error("unsupported database URL (expected sqlite: or postgres://)")]
    UnsupportedUrl,
}

/// A tree: its size and RFC 6962 root hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tree {
    /// Number of leaves.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// A checkpoint the witness cosigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedCheckpoint {
    /// The log's origin.
    pub origin: String,
    /// The tree.
    pub tree: Tree,
    /// The log-signed note as received.
    pub note: String,
    /// When it was first cosigned (POSIX seconds).
    pub cosigned_at: u64,
}

/// Where fork evidence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkSource {
    /// An `add-checkpoint` request.
    AddCheckpoint,
    /// A client's `POST /gossip`.
    Gossip,
}

impl ForkSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ForkSource::AddCheckpoint => "add-checkpoint",
            ForkSource::Gossip => "gossip",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "add-checkpoint" => Some(ForkSource::AddCheckpoint),
            "gossip" => Some(ForkSource::Gossip),
            _ => None,
        }
    }
}

/// Evidence of a split view: the log signed `note` for a tree of `size` whose root is not the
/// one this witness cosigned for that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEvidence {
    /// The log's origin.
    pub origin: String,
    /// The tree size both checkpoints name.
    pub size: u64,
    /// The root this witness cosigned (its note is in the history).
    pub cosigned_root: Hash,
    /// The other root.
    pub other_root: Hash,
    /// The log-signed note carrying the other root, as received.
    pub note: String,
    /// How it reached the witness.
    pub source: ForkSource,
    /// When it was recorded (POSIX seconds).
    pub recorded_at: u64,
}

/// What [`WitnessDb::advance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// The latest tree is now the new one, and it is in the history.
    Advanced,
    /// The stored latest tree was not the expected one: nothing was written. Carries the
    /// latest size now stored (0 if none).
    Conflict(u64),
}

/// The database backend behind a [`WitnessDb`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (a file, or in memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The witness's database.
#[derive(Debug, Clone)]
pub struct WitnessDb {
    pool: AnyPool,
    backend: Backend,
}

fn to_i64(size: u64) -> Result<i64, DbError> {
    i64::try_from(size).map_err(|_| DbError::SizeTooLarge(size))
}

fn to_u64(v: i64, what: &str) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative {what}")))
}

fn to_hash(s: &str) -> Result<Hash, DbError> {
    Hash::from_base64(s).ok_or_else(|| DbError::Corrupt(format!("root {s:?} is not a hash")))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl WitnessDb {
    /// Connects to `url` (`sqlite://PATH?mode=rwc`, `sqlite::memory:`, `postgres://...`) and
    /// applies the witness's migrations.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DbError::UnsupportedUrl);
        };
        let memory = url.contains(":memory:");
        let options = AnyConnectOptions::from_str(url)?;
        let busy = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
        let pool = AnyPoolOptions::new()
            // Each connection to an in-memory SQLite database is a database of its own.
            .max_connections(if memory { 1 } else { 4 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let busy = busy.clone();
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(busy.as_str()).await?;
                        if !memory {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let db = WitnessDb { pool, backend };
        db.migrate().await?;
        Ok(db)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), DbError> {
        self.pool
            .execute(
                "CREATE TABLE IF NOT EXISTS witness_schema \
                 (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM witness_schema")
            .fetch_all(&self.pool)
            .await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            let mut tx = self.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            let inserted =
                sqlx::query("INSERT INTO witness_schema (version, applied_at) VALUES ($1, $2)")
                    .bind(*version)
                    .bind(to_i64(now())?)
                    .execute(&mut *tx)
                    .await;
            match inserted {
                Ok(_) => tx.commit().await?,
                // Another process applied it meanwhile (the statements are idempotent).
                Err(e) if is_unique_violation(&e) => tx.rollback().await?,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// A writing transaction: on SQLite `BEGIN IMMEDIATE` takes the write lock at once (waiting
    /// up to the busy timeout), so a transaction never fails half-way on a lock upgrade.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// The latest tree cosigned for `origin`, or `None` if none was.
    pub async fn latest(&self, origin: &str) -> Result<Option<Tree>, DbError> {
        let row = sqlx::query("SELECT size, root FROM witness_latest WHERE origin = $1")
            .bind(origin)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Tree {
                size: to_u64(r.try_get("size")?, "size")?,
                root: to_hash(&r.try_get::<String, _>("root")?)?,
            })
        })
        .transpose()
    }

    /// Every log with a cosigned tree, with that latest tree, in origin order.
    pub async fn all_latest(&self) -> Result<Vec<(String, Tree)>, DbError> {
        let rows = sqlx::query("SELECT origin, size, root FROM witness_latest ORDER BY origin")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("origin")?,
                    Tree {
                        size: to_u64(r.try_get("size")?, "size")?,
                        root: to_hash(&r.try_get::<String, _>("root")?)?,
                    },
                ))
            })
            .collect()
    }

    /// Atomically replaces `origin`'s latest tree `from` (`None`: no checkpoint cosigned yet)
    /// by `to`, and adds `to` with its `note` to the history, if and only if the stored latest
    /// tree is still `from`. `to.size` must be larger than `from`'s.
    pub async fn advance(
        &self,
        origin: &str,
        from: Option<&Tree>,
        to: &Tree,
        note: &str,
        at: u64,
    ) -> Result<Advance, DbError> {
        let size = to_i64(to.size)?;
        let at = to_i64(at)?;
        let mut tx = self.begin().await?;
        let swapped = match from {
            None => {
                let r = sqlx::query(
                    "INSERT INTO witness_latest (origin, size, root, updated_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(origin)
                .bind(size)
                .bind(to.root.to_base64())
                .bind(at)
                .execute(&mut *tx)
                .await;
                match r {
                    Ok(_) => true,
                    Err(e) if is_unique_violation(&e) => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Some(from) => {
                let r = sqlx::query(
                    "UPDATE witness_latest SET size = $1, root = $2, updated_at = $3 \
                     WHERE origin = $4 AND size = $5 AND root = $6",
                )
                .bind(size)
                .bind(to.root.to_base64())
                .bind(at)
                .bind(origin)
                .bind(to_i64(from.size)?)
                .bind(from.root.to_base64())
                .execute(&mut *tx)
                .await?;
                r.rows_affected() == 1
            }
        };
        if !swapped {
            drop(tx);
            let latest = self.latest(origin).await?.map_or(0, |t| t.size);
            return Ok(Advance::Conflict(latest));
        }
        sqlx::query(
            "INSERT INTO witness_history (origin, size, root, note, cosigned_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(origin)
        .bind(size)
        .bind(to.root.to_base64())
        .bind(note)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Advance::Advanced)
    }

    /// The checkpoint of `size` cosigned for `origin`, if any.
    pub async fn cosigned(
        &self,
        origin: &str,
        size: u64,
    ) -> Result<Option<CosignedCheckpoint>, DbError> {
        let row = sqlx::query(
            "SELECT origin, size, root, note, cosigned_at FROM witness_history \
             WHERE origin = $1 AND size = $2",
        )
        .bind(origin)
        .bind(to_i64(size)?)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(history_row).transpose()
    }

    /// Every checkpoint cosigned for `origin`, by size.
    pub async fn history(&self, origin: &str) -> Result<Vec<CosignedCheckpoint>, DbError> {
        let rows = sqlx::query(
            "SELECT origin, size, root, note, cosigned_at FROM witness_history \
             WHERE origin = $1 ORDER BY size",
        )
        .bind(origin)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(history_row).collect()
    }

    /// Stores fork evidence; `false` if the same evidence (log, size, other root) was already
    /// stored.
    pub async fn record_fork(&self, evidence: &ForkEvidence) -> Result<bool, DbError> {
        let r = sqlx::query(
            "INSERT INTO witness_forks \
             (origin, size, cosigned_root, other_root, note, source, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&evidence.origin)
        .bind(to_i64(evidence.size)?)
        .bind(evidence.cosigned_root.to_base64())
        .bind(evidence.other_root.to_base64())
        .bind(&evidence.note)
        .bind(evidence.source.as_str())
        .bind(to_i64(evidence.recorded_at)?)
        .execute(&self.pool)
        .await;
        match r {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// All fork evidence, for one log or all, oldest first.
    pub async fn forks(&self, origin: Option<&str>) -> Result<Vec<ForkEvidence>, DbError> {
        let columns = "SELECT origin, size, cosigned_root, other_root, note, source, recorded_at \
                       FROM witness_forks";
        let rows = match origin {
            Some(o) => {
                sqlx::query(&format!(
                    "{columns} WHERE origin = $1 ORDER BY recorded_at, size"
                ))
                .bind(o)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{columns} ORDER BY recorded_at, origin, size"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                let source: String = r.try_get("source")?;
                Ok(ForkEvidence {
                    origin: r.try_get("origin")?,
                    size: to_u64(r.try_get("size")?, "size")?,
                    cosigned_root: to_hash(&r.try_get::<String, _>("cosigned_root")?)?,
                    other_root: to_hash(&r.try_get::<String, _>("other_root")?)?,
                    note: r.try_get("note")?,
                    source: ForkSource::parse(&source)
                        .ok_or_else(|| DbError::Corrupt(format!("fork source {source:?}")))?,
                    recorded_at: to_u64(r.try_get("recorded_at")?, "time")?,
                })
            })
            .collect()
    }
}

fn history_row(r: &sqlx::any::AnyRow) -> Result<CosignedCheckpoint, DbError> {
    Ok(CosignedCheckpoint {
        origin: r.try_get("origin")?,
        tree: Tree {
            size: to_u64(r.try_get("size")?, "size")?,
            root: to_hash(&r.try_get::<String, _>("root")?)?,
        },
        note: r.try_get("note")?,
        cosigned_at: to_u64(r.try_get("cosigned_at")?, "time")?,
    })
}

/// The current POSIX time in seconds (at least 1: a cosignature's timestamp must not be zero).
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}

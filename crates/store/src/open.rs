//! Opening a database: URL handling, the per-connection set-up, the one direct probe that
//! reports why a database cannot be opened, the pool, and the migrations or schema check.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::error::StoreError;
use crate::pool::{on_conn, Conn, Pool};
use crate::{Backend, Store, StoreOptions, MIGRATOR};

/// Rows the SQLite driver's worker thread may read ahead of the reader (sqlx's default is 50):
/// fewer hand-overs between the threads on a load of millions of rows.
const SQLITE_ROW_BUFFER: usize = 1024;

/// Whether a store may write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadWrite,
    ReadOnly,
}

/// The per-connection settings: WAL and foreign keys on SQLite (WAL only when writing: the
/// journal mode is a property of the file, and switching it needs write access), a read-only
/// session on PostgreSQL when reading.
async fn set_up_connection(conn: &mut Conn<'_>, access: Access) -> Result<(), sqlx::Error> {
    match (conn, access) {
        (Conn::Sqlite(c), Access::ReadWrite) => {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&mut **c)
                .await?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut **c)
                .await?;
        }
        (Conn::Sqlite(c), Access::ReadOnly) => {
            // Reads the schema, so a file that is not a database fails here, on the probe.
            sqlx::query("SELECT count(*) FROM sqlite_master")
                .execute(&mut **c)
                .await?;
        }
        (Conn::Postgres(_), Access::ReadWrite) => {}
        (Conn::Postgres(c), Access::ReadOnly) => {
            sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .execute(&mut **c)
                .await?;
        }
    }
    Ok(())
}

/// Whether a read-only SQLite open failed only because the WAL shared-memory file cannot be
/// made (SQLITE_READONLY or SQLITE_CANTOPEN, with any extended code, on an existing file with
/// no `-wal` beside it).
fn needs_immutable(url: &str, access: Access, error: &StoreError) -> bool {
    if access != Access::ReadOnly || url.contains("immutable=") {
        return false;
    }
    // The primary result code is the low byte of SQLite's extended code (1544 is
    // SQLITE_READONLY_DIRECTORY, a kind of SQLITE_READONLY = 8).
    let primary = match error {
        StoreError::Database(sqlx::Error::Database(e)) => e
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
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    Some(PathBuf::from(decoded.into_owned()))
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

/// Waits for `connect` up to the connect timeout.
async fn within<T>(
    options: &StoreOptions,
    connect: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    let limit = options.connect_timeout();
    Ok(tokio::time::timeout(limit, connect)
        .await
        .map_err(|_| StoreError::ConnectTimeout(limit))??)
}

/// The SQLite connection settings of `url`.
fn sqlite_options(url: &str, options: &StoreOptions) -> Result<SqliteConnectOptions, StoreError> {
    Ok(SqliteConnectOptions::from_str(url)?
        .busy_timeout(options.busy_timeout())
        .row_buffer_size(SQLITE_ROW_BUFFER))
}

/// Connects once to SQLite and sets the connection up: the database's own error if it cannot be
/// opened.
async fn probe_sqlite(
    url: &str,
    access: Access,
    options: &StoreOptions,
) -> Result<SqliteConnectOptions, StoreError> {
    let connect = sqlite_options(url, options)?;
    let mut conn = within(options, SqliteConnection::connect_with(&connect)).await?;
    let set_up = set_up_connection(&mut Conn::Sqlite(&mut conn), access).await;
    // The probe of an in-memory database would be a database of its own: it is only a check.
    let _ = conn.close().await;
    set_up?;
    Ok(connect)
}

/// The pool of a SQLite database and the rate buckets' pool (see [`Store::take_tokens_together`]):
/// on a file, up to two connections of their own with `synchronous = NORMAL` (a commit waits
/// for no disk flush; the WAL keeps the file consistent); in memory (one database per
/// connection) and read-only, the main pool itself.
async fn open_sqlite(
    url: &str,
    access: Access,
    options: &StoreOptions,
) -> Result<(Pool, Pool), StoreError> {
    let memory = url.contains(":memory:");
    let url = match access {
        Access::ReadOnly if !memory => sqlite_url_with_mode(url, "ro"),
        _ => url.to_string(),
    };
    // The pool retries refused connections and failing set-ups until its acquire timeout
    // and then reports only that it timed out; one direct attempt reports the real cause.
    let connect = match probe_sqlite(&url, access, options).await {
        Err(e) if needs_immutable(&url, access, &e) => {
            // A WAL database in a directory this user cannot write: SQLite cannot create the
            // shared-memory file a WAL reader needs. No writer is active (it would have made
            // that file), so the file is read as immutable.
            probe_sqlite(&format!("{url}&immutable=1"), access, options).await?
        }
        other => other?,
    };
    let pool = SqlitePoolOptions::new()
        // Each connection to an in-memory SQLite database is a database of its own.
        .max_connections(if memory {
            1
        } else {
            options.max_connections().get()
        })
        .acquire_timeout(options.connect_timeout())
        .after_connect(move |conn, _meta| {
            Box::pin(async move { set_up_connection(&mut Conn::Sqlite(conn), access).await })
        })
        .connect_with(connect.clone())
        .await?;
    if memory || access == Access::ReadOnly {
        return Ok((Pool::Sqlite(pool.clone()), Pool::Sqlite(pool)));
    }
    let limits = SqlitePoolOptions::new()
        .max_connections(2)
        .acquire_timeout(options.connect_timeout())
        .after_connect(move |conn, _meta| {
            Box::pin(async move { set_up_connection(&mut Conn::Sqlite(conn), access).await })
        })
        .connect_with(connect.synchronous(SqliteSynchronous::Normal))
        .await?;
    Ok((Pool::Sqlite(pool), Pool::Sqlite(limits)))
}

async fn open_postgres(
    url: &str,
    access: Access,
    options: &StoreOptions,
) -> Result<Pool, StoreError> {
    // The busy timeout bounds the wait for a bank's row lock (and any other lock).
    let lock_timeout = format!("{}ms", options.busy_timeout().as_millis().max(1));
    let connect = PgConnectOptions::from_str(url)?.options([("lock_timeout", lock_timeout)]);
    let mut conn = within(options, PgConnection::connect_with(&connect)).await?;
    let set_up = set_up_connection(&mut Conn::Postgres(&mut conn), access).await;
    let _ = conn.close().await;
    set_up?;
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections().get())
        .acquire_timeout(options.connect_timeout())
        .after_connect(move |conn, _meta| {
            Box::pin(async move { set_up_connection(&mut Conn::Postgres(conn), access).await })
        })
        .connect_with(connect)
        .await?;
    Ok(Pool::Postgres(pool))
}

/// Runs the migrations on a connection of their own without a lock timeout: sqlx serializes
/// concurrent migrations with an advisory lock, and a process that starts while another is
/// migrating must wait for it, however short the busy timeout set for bank locks is.
async fn migrate_postgres(url: &str, options: &StoreOptions) -> Result<(), StoreError> {
    let connect = PgConnectOptions::from_str(url)?.options([("lock_timeout", "0")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.connect_timeout())
        .connect_with(connect)
        .await?;
    let result = MIGRATOR.run(&pool).await.map_err(StoreError::from);
    pool.close().await;
    result
}

/// Refuses a database that lacks one of this version's migrations (a reading command does
/// not migrate).
async fn check_schema_current(pool: &Pool) -> Result<(), StoreError> {
    let mut pooled = pool.acquire().await?;
    let applied: Result<Vec<i64>, sqlx::Error> = on_conn!(&mut pooled.conn(), |c| {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut *c)
            .await
    });
    let applied = match applied {
        Ok(applied) => applied,
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

/// Opens `url` as [`Store::open_with_options`] and [`Store::open_read_only_with_options`]
/// describe.
pub(crate) async fn open(
    url: &str,
    access: Access,
    options: StoreOptions,
) -> Result<Store, StoreError> {
    let (pool, limits_pool) = if url.starts_with("sqlite:") {
        open_sqlite(url, access, &options).await?
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = open_postgres(url, access, &options).await?;
        (pool.clone(), pool)
    } else {
        return Err(StoreError::UnsupportedUrl(redact_url(url)));
    };
    let checked = match access {
        Access::ReadWrite => match &pool {
            Pool::Sqlite(p) => MIGRATOR.run(p).await.map_err(StoreError::from),
            Pool::Postgres(_) => migrate_postgres(url, &options).await,
        },
        Access::ReadOnly => check_schema_current(&pool).await,
    };
    if let Err(e) = checked {
        pool.close().await;
        limits_pool.close().await;
        return Err(e);
    }
    Ok(Store {
        pool,
        limits_pool,
        options,
    })
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

    /// Connects to `url` (`sqlite://PATH?mode=rwc`, `sqlite::memory:` or `postgres://...`) with
    /// the [default options](StoreOptions::default) and applies any pending migrations. SQLite
    /// databases are switched to WAL mode.
    ///
    /// A database that cannot be opened fails at once with the database's own reason (a closed
    /// port, a file that is not SQLite, a directory that cannot be written), not after a pool's
    /// acquire timeout: one connection is made and set up first, outside the pool's retry loop.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        open(url, Access::ReadWrite, StoreOptions::default()).await
    }

    /// [`Store::open`] with these options (pool size, busy timeout, connect timeout).
    pub async fn open_with_options(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        open(url, Access::ReadWrite, options).await
    }

    /// Connects to `url` for reading only, with the [default options](StoreOptions::default):
    /// a SQLite file is opened with `mode=ro` (so reading works where the file or its directory
    /// cannot be written, and nothing is ever created), a PostgreSQL session is made read-only.
    /// Nothing is migrated; a database whose schema is older than this version is refused with
    /// [`StoreError::NeedsUpgrade`].
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        open(url, Access::ReadOnly, StoreOptions::default()).await
    }

    /// [`Store::open_read_only`] with these options.
    pub async fn open_read_only_with_options(
        url: &str,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        open(url, Access::ReadOnly, options).await
    }

    /// The database behind this store.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// The options this store was opened with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
        self.limits_pool.close().await;
    }

    /// The SQLite journal mode (`wal` after [`Store::open`]); `None` on PostgreSQL.
    pub async fn sqlite_journal_mode(&self) -> Result<Option<String>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        match pooled.conn() {
            Conn::Sqlite(c) => Ok(Some(
                sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *c)
                    .await?,
            )),
            Conn::Postgres(_) => Ok(None),
        }
    }
}

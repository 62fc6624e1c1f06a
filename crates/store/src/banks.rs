//! Banks: create, update, read, delete and rename.

use hashguard_hashlist::{Bank, BankName};

use crate::error::{busy_or, StoreError};
use crate::pool::{on_conn, Conn};
use crate::rows::{bank_from_row, now, BankRow, BANK_COLUMNS};
use crate::{Backend, Store};

/// What [`Store::delete_bank`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedBank {
    /// Imported versions (audit rows) removed.
    pub versions: u64,
    /// Entries removed, live and tombstones.
    pub entries: u64,
}

/// The bank called `name`, if any.
pub(crate) async fn bank_in(
    conn: &mut Conn<'_>,
    name: &BankName,
) -> Result<Option<Bank>, StoreError> {
    let sql = format!("SELECT {BANK_COLUMNS} FROM banks WHERE name = $1");
    let row: Option<BankRow> = on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(name.as_str())
        .fetch_optional(&mut *c)
        .await?);
    row.map(bank_from_row).transpose()
}

/// Every bank, by name.
pub(crate) async fn banks_in(conn: &mut Conn<'_>) -> Result<Vec<Bank>, StoreError> {
    let sql = format!("SELECT {BANK_COLUMNS} FROM banks ORDER BY name");
    let rows: Vec<BankRow> = on_conn!(conn, |c| sqlx::query_as(&sql).fetch_all(&mut *c).await?);
    rows.into_iter().map(bank_from_row).collect()
}

/// Starts a writing transaction ([`Pool::begin_write`]), reporting a lock not had within the
/// busy timeout as [`StoreError::Busy`].
pub(crate) async fn begin_write(store: &Store) -> Result<crate::pool::Tx, StoreError> {
    store
        .pool
        .begin_write()
        .await
        .map_err(|e| busy_or(e, store.backend(), store.options.busy_timeout()))
}

/// Locks bank `name` for the rest of the writing transaction `conn` and returns it, or
/// [`StoreError::NoSuchBank`]. On PostgreSQL this is `SELECT ... FOR UPDATE` on the bank's row:
/// a second writer of the same bank waits here (up to the busy timeout) until the first commits,
/// and then reads what it committed. On SQLite the transaction holds the database's write lock
/// since its `BEGIN IMMEDIATE` already.
pub(crate) async fn lock_bank(
    store: &Store,
    conn: &mut Conn<'_>,
    name: &BankName,
) -> Result<Bank, StoreError> {
    let row: Option<BankRow> = match conn {
        Conn::Sqlite(_) => {
            return bank_in(conn, name)
                .await?
                .ok_or_else(|| StoreError::NoSuchBank(name.clone()))
        }
        Conn::Postgres(c) => sqlx::query_as(&format!(
            "SELECT {BANK_COLUMNS} FROM banks WHERE name = $1 FOR UPDATE"
        ))
        .bind(name.as_str())
        .fetch_optional(&mut **c)
        .await
        .map_err(|e| busy_or(e, Backend::Postgres, store.options.busy_timeout()))?,
    };
    row.map(bank_from_row)
        .transpose()?
        .ok_or_else(|| StoreError::NoSuchBank(name.clone()))
}

/// Whether `error` is a unique-key violation (a bank name taken by a concurrent writer).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

impl Store {
    /// Creates a bank. Fails with [`StoreError::BankExists`] if the name is taken.
    pub async fn create_bank(&self, bank: &Bank) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        if bank_in(&mut conn, bank.name()).await?.is_some() {
            return Err(StoreError::BankExists(bank.name().clone()));
        }
        let sql = "INSERT INTO banks (name, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let inserted = on_conn!(&mut conn, |c| sqlx::query(sql)
            .bind(bank.name().as_str())
            .bind(bank.organisation().as_str())
            .bind(bank.jurisdiction().as_str())
            .bind(bank.signal_type().as_str())
            .bind(i64::from(bank.threshold()))
            .bind(i64::from(bank.enabled()))
            .bind(bank.kind().as_str())
            .bind(now())
            .execute(&mut *c)
            .await
            .map(|_| ()));
        match inserted {
            // Another writer created it between the check and the insert (PostgreSQL).
            Err(e) if is_unique_violation(&e) => Err(StoreError::BankExists(bank.name().clone())),
            Err(e) => Err(e.into()),
            Ok(_) => Ok(tx.commit().await?),
        }
    }

    /// Updates a bank's threshold and enabled flag (the other fields define the bank and do not
    /// change: create another bank instead). Fails with [`StoreError::NoSuchBank`] if there is
    /// no bank of that name.
    pub async fn update_bank(&self, bank: &Bank) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE banks SET threshold = $1, enabled = $2 WHERE name = $3"
        )
        .bind(i64::from(bank.threshold()))
        .bind(i64::from(bank.enabled()))
        .bind(bank.name().as_str())
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done == 0 {
            return Err(StoreError::NoSuchBank(bank.name().clone()));
        }
        Ok(())
    }

    /// The bank called `name`, if any.
    pub async fn bank(&self, name: &BankName) -> Result<Option<Bank>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        bank_in(&mut pooled.conn(), name).await
    }

    /// Every bank, by name.
    pub async fn banks(&self) -> Result<Vec<Bank>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        banks_in(&mut pooled.conn()).await
    }

    /// Deletes bank `name` with its whole history: its entries (live and tombstones), their
    /// second hashes, its imported versions (the audit rows) and the bank itself, in one transaction. Fails with
    /// [`StoreError::NoSuchBank`] if there is no bank of that name. An import into the bank
    /// that runs at the same time either finishes first (and is deleted with the rest) or
    /// fails with [`StoreError::NoSuchBank`].
    pub async fn delete_bank(&self, name: &BankName) -> Result<DeletedBank, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        lock_bank(self, &mut conn, name).await?;
        let (entries, versions) = on_conn!(&mut conn, |c| {
            let entries = sqlx::query("DELETE FROM entries WHERE bank = $1")
                .bind(name.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected();
            for table in ["second_hashes", "superseded_second_hashes"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE bank = $1"))
                    .bind(name.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            let versions = sqlx::query("DELETE FROM list_versions WHERE bank = $1")
                .bind(name.as_str())
                .execute(&mut *c)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM banks WHERE name = $1")
                .bind(name.as_str())
                .execute(&mut *c)
                .await?;
            (entries, versions)
        });
        tx.commit().await?;
        Ok(DeletedBank { versions, entries })
    }

    /// Renames bank `from` to `to`, keeping everything else: its fields, its creation time, its
    /// entries with their history and the audit rows of its imports. Fails with
    /// [`StoreError::NoSuchBank`] if there is no bank `from` and with
    /// [`StoreError::BankExists`] if `to` is taken (renaming a bank to its own name changes
    /// nothing). An import into `from` that runs at the same time either finishes first (and
    /// its version is renamed with the rest) or fails with [`StoreError::NoSuchBank`].
    pub async fn rename_bank(&self, from: &BankName, to: &BankName) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        lock_bank(self, &mut conn, from).await?;
        if from == to {
            return Ok(tx.rollback().await?);
        }
        if bank_in(&mut conn, to).await?.is_some() {
            return Err(StoreError::BankExists(to.clone()));
        }
        // The foreign keys (entries -> list_versions -> banks) are checked at once and do not
        // cascade, so the rows move to the new name child by child: the new bank row, copies
        // of the audit rows, the entries (which then reference the copies), and last the old
        // audit rows and bank row.
        // (SQL, whether it takes the new name as $1 before the old one).
        let steps = [
            ("INSERT INTO banks (name, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at) \
              SELECT $1, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at FROM banks WHERE name = $2", true),
            ("INSERT INTO list_versions (bank, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged) \
              SELECT $1, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged FROM list_versions WHERE bank = $2", true),
            ("UPDATE entries SET bank = $1 WHERE bank = $2", true),
            ("UPDATE second_hashes SET bank = $1 WHERE bank = $2", true),
            ("UPDATE superseded_second_hashes SET bank = $1 WHERE bank = $2", true),
            ("DELETE FROM list_versions WHERE bank = $1", false),
            ("DELETE FROM banks WHERE name = $1", false),
        ];
        let moved = on_conn!(&mut conn, |c| {
            let mut moved = Ok(());
            for (sql, takes_new) in steps {
                let mut q = sqlx::query(sql);
                if takes_new {
                    q = q.bind(to.as_str());
                }
                if let Err(e) = q.bind(from.as_str()).execute(&mut *c).await {
                    moved = Err(e);
                    break;
                }
            }
            moved
        });
        match moved {
            // Another writer created `to` meanwhile (PostgreSQL).
            Err(e) if is_unique_violation(&e) => Err(StoreError::BankExists(to.clone())),
            Err(e) => Err(e.into()),
            Ok(()) => Ok(tx.commit().await?),
        }
    }
}

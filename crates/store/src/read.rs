//! Reading a bank's history: its entries, the list at a version, the audit rows and counts.

use hashguard_hashlist::{Bank, BankName, Entry, ListItem, Version};

use crate::banks::bank_in;
use crate::error::StoreError;
use crate::load::entries_in;
use crate::pool::{on_conn, Conn};
use crate::rows::{import_from_row, to_u64, version, ImportRow, IMPORT_COLUMNS};
use crate::Store;

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

/// The bank's latest imported version.
pub(crate) async fn latest_in(
    conn: &mut Conn<'_>,
    name: &BankName,
) -> Result<Option<Version>, StoreError> {
    let latest: Option<i64> = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT MAX(version) FROM list_versions WHERE bank = $1"
    )
    .bind(name.as_str())
    .fetch_one(&mut *c)
    .await?);
    latest.map(|v| version("list_versions", v)).transpose()
}

/// The bank's audit rows, oldest first.
async fn imports_in(conn: &mut Conn<'_>, name: &BankName) -> Result<Vec<ImportRecord>, StoreError> {
    let sql =
        format!("SELECT {IMPORT_COLUMNS} FROM list_versions WHERE bank = $1 ORDER BY version");
    let rows: Vec<ImportRow> = on_conn!(conn, |c| sqlx::query_as(&sql)
        .bind(name.as_str())
        .fetch_all(&mut *c)
        .await?);
    rows.into_iter().map(import_from_row).collect()
}

impl Store {
    /// The bank's latest imported version (`None` for a bank without versions, or no bank of
    /// that name).
    pub async fn latest_version(&self, name: &BankName) -> Result<Option<Version>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        latest_in(&mut pooled.conn(), name).await
    }

    /// Every entry of the bank, live and tombstones, ordered by value then version (vPDQ entries:
    /// by the digest of their value). Fails with [`StoreError::NoSuchBank`] if there is no bank
    /// of that name.
    pub async fn entries(&self, name: &BankName) -> Result<Vec<Entry>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
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
        let mut pooled = self.pool.acquire().await?;
        imports_in(&mut pooled.conn(), name).await
    }

    /// Counts for one bank. Fails with [`StoreError::NoSuchBank`] if there is no bank of that
    /// name.
    pub async fn stats(&self, name: &BankName) -> Result<BankStats, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let bank = bank_in(&mut conn, name)
            .await?
            .ok_or_else(|| StoreError::NoSuchBank(name.clone()))?;
        let (total, live): (i64, i64) = on_conn!(&mut conn, |c| {
            sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN removed_in IS NULL THEN 1 ELSE 0 END), 0) \
             FROM entries WHERE bank = $1",
        )
        .bind(name.as_str())
        .fetch_one(&mut *c)
        .await?
        });
        let (total, live) = (to_u64(total), to_u64(live));
        let imports = imports_in(&mut conn, name).await?;
        Ok(BankStats {
            bank,
            latest_version: imports.last().map(|r| r.version),
            versions: imports.len() as u64,
            live,
            tombstones: total - live.min(total),
            last_import: imports.last().cloned(),
        })
    }
}

//! The database's own consistency check, for the upload service's start and its health checks.

use crate::error::StoreError;
use crate::pool::{on_conn, Conn};
use crate::Store;

impl Store {
    /// Checks the database. On SQLite, `PRAGMA integrity_check` must answer `ok` (the file is
    /// not damaged) and `PRAGMA foreign_key_check` must find nothing (no row names a missing
    /// parent). On both databases, the two logs must be dense from seq 0, as their writers keep
    /// them: every account's opened records, and the audit events. Any finding is
    /// [`StoreError::Integrity`]. The log checks read the whole of both tables.
    pub async fn integrity_check(&self) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        if let Conn::Sqlite(c) = pooled.conn() {
            let answer: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_all(&mut *c)
                .await?;
            if answer != ["ok"] {
                // The first lines say enough; a damaged file can list thousands.
                let shown: Vec<&str> = answer.iter().take(5).map(String::as_str).collect();
                return Err(StoreError::Integrity(format!(
                    "SQLite integrity_check: {}",
                    shown.join("; ")
                )));
            }
            let orphans = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(&mut *c)
                .await?
                .len();
            if orphans > 0 {
                return Err(StoreError::Integrity(format!(
                    "SQLite foreign_key_check: {orphans} row(s) name a missing parent"
                )));
            }
        }
        // Seqs are unique (primary key) and non-negative (CHECK), so a log is dense from 0
        // exactly when it has max + 1 rows.
        let (gapped_accounts, audit_rows, audit_next): (i64, i64, i64) =
            on_conn!(&mut pooled.conn(), |c| {
                let gapped: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT account FROM opened_records \
                     GROUP BY account HAVING count(*) <> MAX(seq) + 1) AS gapped",
                )
                .fetch_one(&mut *c)
                .await?;
                let (rows, next): (i64, i64) =
                    sqlx::query_as("SELECT count(*), COALESCE(MAX(seq) + 1, 0) FROM audit_events")
                        .fetch_one(&mut *c)
                        .await?;
                (gapped, rows, next)
            });
        if gapped_accounts > 0 {
            return Err(StoreError::Integrity(format!(
                "the opened-record log of {gapped_accounts} account(s) has gaps"
            )));
        }
        if audit_rows != audit_next {
            return Err(StoreError::Integrity(format!(
                "the audit log has {audit_rows} events but its seqs run to {}",
                audit_next - 1
            )));
        }
        Ok(())
    }
}

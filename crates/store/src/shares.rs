//! Threshold state: an account's log of opened records (append-only, dense from seq 0) and
//! whether its share store is frozen. The only bytes derived from vouchers that the store keeps
//! are those of vouchers that opened (guarantee G1).

use crate::error::{corrupt, StoreError};
use crate::pool::{on_conn, Conn};
use crate::rows::hex;
use crate::state::{
    from_db, hex_vec, is_foreign_key_violation, is_unique_violation, parse_col, to_db, AccountId,
    Appended, AttachmentId, StoredRecord,
};
use crate::Store;

/// Whether the account exists.
pub(crate) async fn account_exists(
    conn: &mut Conn<'_>,
    account: &AccountId,
) -> Result<bool, StoreError> {
    let n: i64 = on_conn!(conn, |c| sqlx::query_scalar(
        "SELECT count(*) FROM accounts WHERE id = $1"
    )
    .bind(account.to_string())
    .fetch_one(&mut *c)
    .await?);
    Ok(n > 0)
}

/// The error of an insert that named an account and maybe an attachment, one of which does not
/// exist: looked up after the fact, since neither driver says reliably which key failed.
pub(crate) async fn missing_parent(
    conn: &mut Conn<'_>,
    account: &AccountId,
    attachment: Option<&AttachmentId>,
) -> StoreError {
    match (account_exists(conn, account).await, attachment) {
        (Err(e), _) => e,
        (Ok(false), _) | (Ok(true), None) => StoreError::NoSuchAccount(*account),
        (Ok(true), Some(a)) => StoreError::NoSuchAttachment(*a),
    }
}

impl Store {
    /// The account's opened records, in seq order (0, 1, 2, ...); empty for an account with
    /// none, or no account.
    pub async fn opened_records(
        &self,
        account: &AccountId,
    ) -> Result<Vec<StoredRecord>, StoreError> {
        const T: &str = "opened_records";
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(i64, String, Option<String>, i64)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT seq, record, attachment, created_at FROM opened_records \
                 WHERE account = $1 ORDER BY seq"
            )
            .bind(account.to_string())
            .fetch_all(&mut *c)
            .await?);
        let mut records = Vec::with_capacity(rows.len());
        for (expected, (seq, record, attachment, created_at)) in (0u64..).zip(rows) {
            let seq = from_db(T, seq)?;
            // A gap would make the caller append at a seq that is taken for ever.
            if seq != expected {
                return Err(corrupt(
                    T,
                    format!("account {account}: seq {seq} where {expected} was expected"),
                ));
            }
            records.push(StoredRecord {
                seq,
                bytes: hex_vec(&record).ok_or_else(|| corrupt(T, "record is not hex"))?,
                attachment: attachment.map(|a| parse_col(T, &a)).transpose()?,
                created_at,
            });
        }
        Ok(records)
    }

    /// Appends an opened record to the account's log at `seq`, which must be the log's current
    /// length. One atomic statement: it inserts only if the log has exactly `seq` records, and
    /// the primary key (account, seq) refuses a second writer of the same seq. When the log is
    /// not at `seq` (another writer, perhaps another server process, appended first) nothing is
    /// written and the answer is [`Appended::SeqTaken`]: reload the log and retry. Fails with
    /// [`StoreError::NoSuchAccount`] or [`StoreError::NoSuchAttachment`] when either does not
    /// exist.
    pub async fn append_opened_record(
        &self,
        account: &AccountId,
        seq: u64,
        bytes: &[u8],
        attachment: Option<&AttachmentId>,
        now: i64,
    ) -> Result<Appended, StoreError> {
        let seq_db = to_db(seq, "opened record seq")?;
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        // The count guard keeps the log dense (no append past its end); the primary key settles
        // a race between two appends at the same seq, on either database. On SQLite the
        // statement holds the write lock from its start; on PostgreSQL the loser of the race
        // waits for the winner's commit and then hits the key.
        let inserted = on_conn!(&mut conn, |c| sqlx::query(
            "INSERT INTO opened_records (account, seq, record, attachment, created_at) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE (SELECT count(*) FROM opened_records WHERE account = $1) = $2"
        )
        .bind(account.to_string())
        .bind(seq_db)
        .bind(hex(bytes))
        .bind(attachment.map(|a| a.to_string()))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Ok(Appended::SeqTaken),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(missing_parent(&mut conn, account, attachment).await)
            }
            Err(e) => Err(self.write_error(e)),
            Ok(0) => Ok(Appended::SeqTaken),
            Ok(_) => Ok(Appended::Written),
        }
    }

    /// Whether the account's share store is frozen. Fails with [`StoreError::NoSuchAccount`] if
    /// there is no such account.
    pub async fn shares_frozen(&self, account: &AccountId) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let frozen: Option<i64> = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT shares_frozen FROM accounts WHERE id = $1"
        )
        .bind(account.to_string())
        .fetch_optional(&mut *c)
        .await?);
        match frozen {
            None => Err(StoreError::NoSuchAccount(*account)),
            Some(f) => Ok(f != 0),
        }
    }

    /// Freezes the account's share store (for good: there is no thaw). Freezing a frozen store
    /// succeeds. Fails with [`StoreError::NoSuchAccount`] if there is no such account.
    pub async fn freeze_shares(&self, account: &AccountId) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE accounts SET shares_frozen = 1 WHERE id = $1"
        )
        .bind(account.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        if done == 0 {
            return Err(StoreError::NoSuchAccount(*account));
        }
        Ok(())
    }
}

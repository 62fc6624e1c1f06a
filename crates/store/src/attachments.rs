//! Attachments: the bookkeeping of uploaded ciphertexts (id, owner, SHA-256, length, state,
//! time). Never their content, nor anything else derived from their vouchers (guarantee G1).

use crate::error::{corrupt, StoreError};
use crate::pool::on_conn;
use crate::rows::hex;
use crate::state::{
    from_db, hex_array, is_foreign_key_violation, is_unique_violation, parse_col, to_db,
    AttachmentId, AttachmentRecord, AttachmentState,
};
use crate::Store;

/// The columns of an attachment, in the order of the `SELECT` in [`Store::attachment`].
type AttachmentRow = (String, String, String, i64, String, i64);

fn attachment_from_row(row: AttachmentRow) -> Result<AttachmentRecord, StoreError> {
    const T: &str = "attachments";
    let (id, account, sha256, length, state, created_at) = row;
    Ok(AttachmentRecord {
        id: parse_col(T, &id)?,
        account: parse_col(T, &account)?,
        sha256: hex_array(&sha256).ok_or_else(|| corrupt(T, "sha256 is not 64 hex digits"))?,
        length: from_db(T, length)?,
        state: parse_col(T, &state)?,
        created_at,
    })
}

impl Store {
    /// Records an uploaded ciphertext. Fails with [`StoreError::NoSuchAccount`] if its account
    /// does not exist, with [`StoreError::Duplicate`] if the id is taken, and with
    /// [`StoreError::OutOfRange`] if the length exceeds `i64::MAX`.
    pub async fn insert_attachment(&self, a: &AttachmentRecord) -> Result<(), StoreError> {
        let length = to_db(a.length, "attachment length")?;
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO attachments (id, account, sha256, length, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(a.id.to_string())
        .bind(a.account.to_string())
        .bind(hex(&a.sha256))
        .bind(length)
        .bind(a.state.as_str())
        .bind(a.created_at)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "attachments",
                key: "id",
            }),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NoSuchAccount(a.account)),
            Err(e) => Err(self.write_error(e)),
            Ok(_) => Ok(()),
        }
    }

    /// The attachment of this id, if any.
    pub async fn attachment(
        &self,
        id: &AttachmentId,
    ) -> Result<Option<AttachmentRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql =
            "SELECT id, account, sha256, length, state, created_at FROM attachments WHERE id = $1";
        let row: Option<AttachmentRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(sql)
            .bind(id.to_string())
            .fetch_optional(&mut *c)
            .await?);
        row.map(attachment_from_row).transpose()
    }

    /// Sets an attachment's state; `false` if there is no such attachment. Any state may follow
    /// any other: the service owns the life cycle.
    pub async fn set_attachment_state(
        &self,
        id: &AttachmentId,
        state: AttachmentState,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE attachments SET state = $1 WHERE id = $2"
        )
        .bind(state.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        Ok(done > 0)
    }

    /// The id of every attachment row (every state, `Deleted` included), in id order: what an
    /// integrity check compares with the ciphertext files on disk.
    pub async fn attachment_ids(&self) -> Result<Vec<AttachmentId>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let ids: Vec<String> = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT id FROM attachments ORDER BY id"
        )
        .fetch_all(&mut *c)
        .await?);
        ids.iter().map(|id| parse_col("attachments", id)).collect()
    }
}

//! Upload slots of the two-phase upload: the bookkeeping of a ciphertext announced by its
//! SHA-256 and length and not received yet (migration `0009_upload_slots.sql`). Never anything
//! derived from a voucher (guarantee G1).

use crate::banks::begin_write;
use crate::error::{corrupt, StoreError};
use crate::pool::on_conn;
use crate::rows::hex;
use crate::state::{
    from_db, hex_array, is_foreign_key_violation, is_unique_violation, parse_col, to_db, AccountId,
    AttachmentId, AttachmentRecord, SlotId,
};
use crate::Store;

/// A slot: where the ciphertext of one announced attachment is to arrive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotRecord {
    /// The slot (a capability of its account's: unguessable).
    pub id: SlotId,
    /// The account that announced the ciphertext; no other may use the slot.
    pub account: AccountId,
    /// The id the attachment gets once its bytes arrive and match.
    pub attachment: AttachmentId,
    /// The SHA-256 the bytes must have.
    pub sha256: [u8; 32],
    /// The exact length the bytes must have (at least 1).
    pub length: u64,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stops taking bytes (Unix seconds).
    pub expires_at: i64,
}

/// The columns of a slot, in the order of [`SLOT_COLUMNS`].
type SlotRow = (String, String, String, String, i64, i64, i64);

/// The `SELECT` list of a [`SlotRow`].
const SLOT_COLUMNS: &str = "id, account, attachment, sha256, length, created_at, expires_at";

fn slot_from_row(row: SlotRow) -> Result<SlotRecord, StoreError> {
    const T: &str = "upload_slots";
    let (id, account, attachment, sha256, length, created_at, expires_at) = row;
    Ok(SlotRecord {
        id: parse_col(T, &id)?,
        account: parse_col(T, &account)?,
        attachment: parse_col(T, &attachment)?,
        sha256: hex_array(&sha256).ok_or_else(|| corrupt(T, "sha256 is not 64 hex digits"))?,
        length: from_db(T, length)?,
        created_at,
        expires_at,
    })
}

impl Store {
    /// Records a slot. Fails with [`StoreError::NoSuchAccount`] if its account does not exist
    /// and with [`StoreError::Duplicate`] if its id or attachment id is taken.
    pub async fn insert_slot(&self, slot: &SlotRecord) -> Result<(), StoreError> {
        let length = to_db(slot.length, "slot length")?;
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| sqlx::query(&format!(
            "INSERT INTO upload_slots ({SLOT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(slot.id.to_string())
        .bind(slot.account.to_string())
        .bind(slot.attachment.to_string())
        .bind(hex(&slot.sha256))
        .bind(length)
        .bind(slot.created_at)
        .bind(slot.expires_at)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "upload_slots",
                key: "id",
            }),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NoSuchAccount(slot.account)),
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// The slot of this id, if any (expired or not).
    pub async fn slot(&self, id: &SlotId) -> Result<Option<SlotRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {SLOT_COLUMNS} FROM upload_slots WHERE id = $1");
        let row: Option<SlotRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *c)
            .await?);
        row.map(slot_from_row).transpose()
    }

    /// The slot that will become attachment `attachment`, if any.
    pub async fn slot_for_attachment(
        &self,
        attachment: &AttachmentId,
    ) -> Result<Option<SlotRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {SLOT_COLUMNS} FROM upload_slots WHERE attachment = $1");
        let row: Option<SlotRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(attachment.to_string())
            .fetch_optional(&mut *c)
            .await?);
        row.map(slot_from_row).transpose()
    }

    /// Turns slot `id` into the attachment `attachment` in one transaction: the slot's row is
    /// deleted and the attachment's inserted, or neither. `false` (and nothing written) when
    /// the slot is gone (completed by another request, or swept).
    pub async fn complete_slot(
        &self,
        id: &SlotId,
        attachment: &AttachmentRecord,
    ) -> Result<bool, StoreError> {
        let length = to_db(attachment.length, "attachment length")?;
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let deleted = on_conn!(&mut conn, |c| sqlx::query(
            "DELETE FROM upload_slots WHERE id = $1"
        )
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        if deleted == 0 {
            tx.rollback().await.map_err(|e| self.write_error(e))?;
            return Ok(false);
        }
        let inserted = on_conn!(&mut conn, |c| sqlx::query(
            "INSERT INTO attachments (id, account, sha256, length, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(attachment.id.to_string())
        .bind(attachment.account.to_string())
        .bind(hex(&attachment.sha256))
        .bind(length)
        .bind(attachment.state.as_str())
        .bind(attachment.created_at)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "attachments",
                key: "id",
            }),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(StoreError::NoSuchAccount(attachment.account))
            }
            Err(e) => Err(self.write_error(e)),
            Ok(()) => {
                tx.commit().await.map_err(|e| self.write_error(e))?;
                Ok(true)
            }
        }
    }

    /// Deletes a slot; `false` if there was none.
    pub async fn delete_slot(&self, id: &SlotId) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM upload_slots WHERE id = $1"
        )
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        Ok(done > 0)
    }

    /// Slots that expired at or before `now`, oldest first, at most `limit`.
    pub async fn expired_slots(&self, now: i64, limit: u32) -> Result<Vec<SlotRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!(
            "SELECT {SLOT_COLUMNS} FROM upload_slots WHERE expires_at <= $1 \
             ORDER BY expires_at, id LIMIT $2"
        );
        let rows: Vec<SlotRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(slot_from_row).collect()
    }
}

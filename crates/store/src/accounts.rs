//! Accounts and their devices. A device authenticates with a bearer token; the store keeps only
//! the token's SHA-256, so a copy of the database cannot be used to authenticate.

use crate::banks::begin_write;
use crate::error::StoreError;
use crate::pool::on_conn;
use crate::rows::hex;
use crate::state::{is_unique_violation, parse_col, AccountId, Device, DeviceId};
use crate::Store;

impl Store {
    /// Creates an account with its first device, in one transaction (an account without a
    /// device could never authenticate). Fails with [`StoreError::AccountExists`] if the account
    /// exists, and with [`StoreError::Duplicate`] if the device id or the token's digest is
    /// taken; either way nothing is written.
    pub async fn create_account(
        &self,
        account: &AccountId,
        device: &DeviceId,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let created = on_conn!(&mut conn, |c| sqlx::query(
            "INSERT INTO accounts (id, created_at, shares_frozen) VALUES ($1, $2, 0)"
        )
        .bind(account.to_string())
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()));
        match created {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AccountExists(*account)),
            Err(e) => return Err(self.write_error(e)),
            Ok(_) => {}
        }
        let added = on_conn!(&mut conn, |c| sqlx::query(
            "INSERT INTO devices (id, account, token_hash, created_at) VALUES ($1, $2, $3, $4)"
        )
        .bind(device.to_string())
        .bind(account.to_string())
        .bind(hex(token_hash))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()));
        match added {
            Err(e) if is_unique_violation(&e) => Err(device_taken()),
            Err(e) => Err(self.write_error(e)),
            Ok(_) => tx.commit().await.map_err(|e| self.write_error(e)),
        }
    }

    /// Adds a device to an existing account. Fails with [`StoreError::NoSuchAccount`] if there
    /// is no such account, and with [`StoreError::Duplicate`] if the device id or the token's
    /// digest is taken.
    pub async fn add_device(
        &self,
        account: &AccountId,
        device: &DeviceId,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        // One statement that inserts only if the account exists: no window between a check and
        // the insert, and no reliance on how each driver reports a foreign-key violation.
        let added = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO devices (id, account, token_hash, created_at) \
             SELECT $1, id, $3, $4 FROM accounts WHERE id = $2"
        )
        .bind(device.to_string())
        .bind(account.to_string())
        .bind(hex(token_hash))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()));
        match added {
            Err(e) if is_unique_violation(&e) => Err(device_taken()),
            Err(e) => Err(self.write_error(e)),
            Ok(0) => Err(StoreError::NoSuchAccount(*account)),
            Ok(_) => Ok(()),
        }
    }

    /// The device whose token has this SHA-256, if any (revoked or not: the caller refuses a
    /// revoked one, and can tell it apart from an unknown token).
    pub async fn device_for_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Device>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row: Option<(String, String, Option<i64>)> = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query_as("SELECT account, id, revoked_at FROM devices WHERE token_hash = $1")
                .bind(hex(token_hash))
                .fetch_optional(&mut *c)
                .await?
        });
        row.map(|(account, device, revoked_at)| {
            Ok(Device {
                account: parse_col("devices", &account)?,
                device: parse_col("devices", &device)?,
                revoked: revoked_at.is_some(),
            })
        })
        .transpose()
    }

    /// Revokes a device of `account`: its token is refused from now on, and in the same
    /// transaction its MLS delivery queue and unclaimed key packages are deleted (it receives
    /// nothing more; its group memberships stay until a commit removes them). Revoking a
    /// revoked device again succeeds and keeps the first revocation time. `false` if `account`
    /// has no such device (so one account cannot revoke another's).
    pub async fn revoke_device(
        &self,
        account: &AccountId,
        device: &DeviceId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        // The UPDATE locks the device's row, which every delivery to it updates too: a
        // delivery in flight commits first and is deleted below, a later one skips the device.
        let done = on_conn!(&mut conn, |c| sqlx::query(
            "UPDATE devices SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND account = $3"
        )
        .bind(now)
        .bind(device.to_string())
        .bind(account.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        if done == 0 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM mls_queue WHERE device = $1",
            "DELETE FROM mls_key_packages WHERE device = $1",
        ] {
            on_conn!(&mut conn, |c| sqlx::query(sql)
                .bind(device.to_string())
                .execute(&mut *c)
                .await
                .map(|_| ()))
            .map_err(|e| self.write_error(e))?;
        }
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(true)
    }
}

/// The error of a device insert that hit a unique key: the device id or the token's digest
/// (which of the two is not told apart: both are random, so either means a caller's bug).
fn device_taken() -> StoreError {
    StoreError::Duplicate {
        table: "devices",
        key: "id or token_hash",
    }
}

//! The second hashes of listed PDQ entries (migrations `0010_second_hashes.sql` and
//! `0011_second_hash_profiles.sql`, which set aside the earlier form's rows): the server's
//! private companion of a bank entry, which the automatic check and the post-threshold
//! pipeline compare with the decrypted visual derivative's (docs/second-hash.md).

use hashguard_hashlist::BankName;

use crate::banks::{bank_in, begin_write};
use crate::error::StoreError;
use crate::pool::on_conn;
use crate::Store;

/// One stored second hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondHashRow {
    /// The bank.
    pub bank: String,
    /// The entry's PDQ value (lowercase hex).
    pub value: String,
    /// The second hash (40 lowercase hex digits).
    pub second: String,
}

impl Store {
    /// Records `second` as the second hash of PDQ value `value` in bank `bank`, replacing one
    /// recorded before (also one of the earlier form that migration 0011 set aside). Fails with
    /// [`StoreError::NoSuchBank`] if there is no such bank; the caller checks that the value is
    /// a live entry and that `second` is a well-formed hash (the schema refuses any other
    /// length).
    pub async fn set_second_hash(
        &self,
        bank: &BankName,
        value: &str,
        second: &str,
        added_by: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        if bank_in(&mut conn, bank).await?.is_none() {
            return Err(StoreError::NoSuchBank(bank.clone()));
        }
        let written = on_conn!(&mut conn, |c| {
            sqlx::query(
                "INSERT INTO second_hashes (bank, value, second, added_at, added_by) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (bank, value) DO UPDATE SET second = excluded.second, \
                 added_at = excluded.added_at, added_by = excluded.added_by",
            )
            .bind(bank.as_str())
            .bind(value)
            .bind(second)
            .bind(now)
            .bind(added_by)
            .execute(&mut *c)
            .await?;
            // The earlier form of the same entry, if migration 0011 set one aside, is replaced.
            sqlx::query("DELETE FROM superseded_second_hashes WHERE bank = $1 AND value = $2")
                .bind(bank.as_str())
                .bind(value)
                .execute(&mut *c)
                .await
                .map(|_| ())
        });
        match written {
            Ok(()) => Ok(tx.commit().await?),
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// How many second hashes of the earlier 32-digit form migration 0011 set aside (in
    /// `superseded_second_hashes`): their entries have no second hash until
    /// `hashguard list second-hash` computes the new form from the listed original.
    pub async fn superseded_second_hashes(&self) -> Result<u64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query_scalar("SELECT COUNT(*) FROM superseded_second_hashes")
                .fetch_one(&mut *c)
                .await?
        });
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Every recorded second hash, by bank and value.
    pub async fn second_hashes(&self) -> Result<Vec<SecondHashRow>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(String, String, String)> = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query_as("SELECT bank, value, second FROM second_hashes ORDER BY bank, value")
                .fetch_all(&mut *c)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(bank, value, second)| SecondHashRow {
                bank,
                value,
                second,
            })
            .collect())
    }
}

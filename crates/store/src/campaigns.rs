//! Crafted-collision campaigns (protocol.md R/E12 step 6): the PDQ hashes of items released by
//! consented checks, kept for a bounded time, and the campaigns flagged from them. The service
//! decides what is a campaign; the store keeps the rows.

use crate::error::{corrupt, StoreError};
use crate::pool::on_conn;
use crate::rows::hex;
use crate::state::{
    hex_array, is_foreign_key_violation, is_unique_violation, parse_col, AccountId, CampaignId,
    CaseId,
};
use crate::Store;

/// A consented check that released its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReleasedCheck {
    /// The case of the held item.
    pub case: CaseId,
    /// The account that sent it.
    pub account: AccountId,
    /// The released item's PDQ hash (its 32 bytes, as the payload carries them).
    pub pdq: [u8; 32],
    /// When it was released (Unix seconds).
    pub released_at: i64,
}

/// A flagged campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Campaign {
    /// The campaign.
    pub id: CampaignId,
    /// The PDQ hash of the release that raised the flag.
    pub pdq: [u8; 32],
    /// The largest number of distinct accounts seen releasing it within the window.
    pub accounts: u64,
    /// When it was flagged (Unix seconds).
    pub first_seen: i64,
    /// The last release that counted toward it (Unix seconds).
    pub last_seen: i64,
}

fn pdq_col(table: &'static str, text: &str) -> Result<[u8; 32], StoreError> {
    hex_array(text).ok_or_else(|| corrupt(table, "pdq is not 64 hex digits"))
}

impl Store {
    /// Records a released check and, in the same transaction, deletes every released check
    /// from before `keep_since` (the retention). Fails with [`StoreError::NoSuchAccount`] or
    /// [`StoreError::NoSuchCase`] when either is unknown, and with [`StoreError::Duplicate`]
    /// when the case has a released check already.
    pub async fn record_released_check(
        &self,
        check: &ReleasedCheck,
        keep_since: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin_write()
            .await
            .map_err(|e| self.write_error(e))?;
        let purged = on_conn!(&mut tx.conn(), |c| sqlx::query(
            "DELETE FROM released_checks WHERE released_at < $1"
        )
        .bind(keep_since)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        if let Err(e) = purged {
            return Err(self.write_error(e));
        }
        let inserted = on_conn!(&mut tx.conn(), |c| sqlx::query(
            "INSERT INTO released_checks (case_id, account, pdq, released_at) \
             VALUES ($1, $2, $3, $4)"
        )
        .bind(check.case.to_string())
        .bind(check.account.to_string())
        .bind(hex(&check.pdq))
        .bind(check.released_at)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Ok(()) => tx.commit().await.map_err(|e| self.write_error(e)),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "released_checks",
                key: "case_id",
            }),
            Err(e) if is_foreign_key_violation(&e) => {
                drop(tx);
                Err(self
                    .missing_case_or_account(&check.case, &check.account)
                    .await)
            }
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// The released checks from `since` on (Unix seconds), oldest first.
    pub async fn released_checks_since(
        &self,
        since: i64,
    ) -> Result<Vec<ReleasedCheck>, StoreError> {
        const T: &str = "released_checks";
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(String, String, String, i64)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT case_id, account, pdq, released_at FROM released_checks \
                 WHERE released_at >= $1 ORDER BY released_at, case_id"
            )
            .bind(since)
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter()
            .map(|(case, account, pdq, released_at)| {
                Ok(ReleasedCheck {
                    case: parse_col(T, &case)?,
                    account: parse_col(T, &account)?,
                    pdq: pdq_col(T, &pdq)?,
                    released_at,
                })
            })
            .collect()
    }

    /// Adds a campaign, or, when one of that id exists, raises its account count to
    /// `accounts` (if larger) and its `last_seen` (if later).
    pub async fn upsert_campaign(&self, campaign: &Campaign) -> Result<(), StoreError> {
        let accounts = i64::try_from(campaign.accounts).map_err(|_| StoreError::OutOfRange {
            what: "a campaign's account count",
        })?;
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO campaigns (id, pdq, accounts, first_seen, last_seen) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET \
             accounts = CASE WHEN excluded.accounts > campaigns.accounts \
                 THEN excluded.accounts ELSE campaigns.accounts END, \
             last_seen = CASE WHEN excluded.last_seen > campaigns.last_seen \
                 THEN excluded.last_seen ELSE campaigns.last_seen END"
        )
        .bind(campaign.id.to_string())
        .bind(hex(&campaign.pdq))
        .bind(accounts)
        .bind(campaign.first_seen)
        .bind(campaign.last_seen)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// The campaigns, the most recently active first, at most `limit`.
    pub async fn campaigns(&self, limit: u32) -> Result<Vec<Campaign>, StoreError> {
        const T: &str = "campaigns";
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(String, String, i64, i64, i64)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT id, pdq, accounts, first_seen, last_seen FROM campaigns \
                 ORDER BY last_seen DESC, id LIMIT $1"
            )
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter()
            .map(|(id, pdq, accounts, first_seen, last_seen)| {
                Ok(Campaign {
                    id: parse_col(T, &id)?,
                    pdq: pdq_col(T, &pdq)?,
                    accounts: u64::try_from(accounts)
                        .map_err(|_| corrupt(T, "a negative account count"))?,
                    first_seen,
                    last_seen,
                })
            })
            .collect()
    }
}

//! Review cases: opened when an attachment is held or an account reaches the threshold, moved
//! through review by compare-and-set so that two reviewers (or two server processes) cannot both
//! act on one state.

use crate::error::StoreError;
use crate::pool::on_conn;
use crate::shares::missing_parent;
use crate::state::{
    is_foreign_key_violation, is_unique_violation, parse_col, AccountId, CaseId, CaseKind,
    CaseRecord, CaseState,
};
use crate::Store;

/// The columns of a case, in the order of [`CASE_COLUMNS`].
type CaseRow = (
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    String,
);

/// The `SELECT` list of a [`CaseRow`].
const CASE_COLUMNS: &str = "id, account, kind, attachment, state, created_at, updated_at, detail";

fn case_from_row(row: CaseRow) -> Result<CaseRecord, StoreError> {
    const T: &str = "cases";
    let (id, account, kind, attachment, state, created_at, updated_at, detail) = row;
    Ok(CaseRecord {
        id: parse_col(T, &id)?,
        account: parse_col(T, &account)?,
        kind: parse_col(T, &kind)?,
        attachment: attachment.map(|a| parse_col(T, &a)).transpose()?,
        state: parse_col(T, &state)?,
        created_at,
        updated_at,
        detail,
    })
}

impl Store {
    /// Opens a case. Fails with [`StoreError::NoSuchAccount`] or
    /// [`StoreError::NoSuchAttachment`] when either does not exist, and with
    /// [`StoreError::Duplicate`] when the id is taken or when the case is a
    /// [`CaseKind::Threshold`] case and the account has one already (a unique index keeps it
    /// to one per account, so two processes that both found none cannot both open one).
    pub async fn insert_case(&self, c: &CaseRecord) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let mut conn = pooled.conn();
        let inserted = on_conn!(&mut conn, |db| sqlx::query(&format!(
            "INSERT INTO cases ({CASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))
        .bind(c.id.to_string())
        .bind(c.account.to_string())
        .bind(c.kind.as_str())
        .bind(c.attachment.map(|a| a.to_string()))
        .bind(c.state.as_str())
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(&c.detail)
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "cases",
                key: "id, or the account's one threshold case",
            }),
            Err(e) if is_foreign_key_violation(&e) => {
                Err(missing_parent(&mut conn, &c.account, c.attachment.as_ref()).await)
            }
            Err(e) => Err(self.write_error(e)),
            Ok(_) => Ok(()),
        }
    }

    /// The error of an insert that named a case and an account, one of which does not exist:
    /// looked up after the fact, as [`missing_parent`] does for accounts and attachments.
    pub(crate) async fn missing_case_or_account(
        &self,
        case: &CaseId,
        account: &AccountId,
    ) -> StoreError {
        match self.case(case).await {
            Err(e) => e,
            Ok(None) => StoreError::NoSuchCase(*case),
            Ok(Some(_)) => StoreError::NoSuchAccount(*account),
        }
    }

    /// The case of this id, if any.
    pub async fn case(&self, id: &CaseId) -> Result<Option<CaseRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1");
        let row: Option<CaseRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *c)
            .await?);
        row.map(case_from_row).transpose()
    }

    /// Compare-and-set: moves the case from state `from` to `to`, sets `updated_at` to `now`
    /// and, when given, replaces `detail`. One statement whose condition is the state, so of
    /// two concurrent moves from one state only one succeeds. `false` (nothing changed) if the
    /// case was not in `from`, or does not exist.
    pub async fn set_case_state(
        &self,
        id: &CaseId,
        from: CaseState,
        to: CaseState,
        detail: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let done = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE cases SET state = $1, updated_at = $2, detail = COALESCE($3, detail) \
             WHERE id = $4 AND state = $5"
        )
        .bind(to.as_str())
        .bind(now)
        .bind(detail)
        .bind(id.to_string())
        .bind(from.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))?;
        Ok(done > 0)
    }

    /// The review queue: cases in state [`CaseState::Queued`] or [`CaseState::CheckBlocked`],
    /// oldest first (by `created_at`, then id, so the order is stable), at most `limit`.
    pub async fn case_queue(&self, limit: u32) -> Result<Vec<CaseRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE state IN ($1, $2) \
             ORDER BY created_at, id LIMIT $3"
        );
        let rows: Vec<CaseRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(CaseState::Queued.as_str())
            .bind(CaseState::CheckBlocked.as_str())
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(case_from_row).collect()
    }

    /// The cases whose `column = $1` (a fixed condition of the review module), oldest first.
    pub(crate) async fn cases_where(
        &self,
        condition: &'static str,
        value: &str,
    ) -> Result<Vec<CaseRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql =
            format!("SELECT {CASE_COLUMNS} FROM cases WHERE {condition} ORDER BY created_at, id");
        let rows: Vec<CaseRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(value)
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(case_from_row).collect()
    }

    /// At most `limit` cases in any state, oldest first.
    pub(crate) async fn cases_limited(&self, limit: u32) -> Result<Vec<CaseRecord>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases ORDER BY created_at, id LIMIT $1");
        let rows: Vec<CaseRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(case_from_row).collect()
    }

    /// Whether the account has a [`CaseKind::Threshold`] case (in any state).
    pub async fn threshold_case_exists(&self, account: &AccountId) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM cases WHERE account = $1 AND kind = $2"
        )
        .bind(account.to_string())
        .bind(CaseKind::Threshold.as_str())
        .fetch_one(&mut *c)
        .await?);
        Ok(n > 0)
    }
}

//! Appeals: a user's request that a person look again at one of their held items.

use crate::error::StoreError;
use crate::pool::on_conn;
use crate::state::{
    is_foreign_key_violation, is_unique_violation, parse_col, AccountId, AppealState, CaseId,
};
use crate::Store;

/// An appeal of one case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Appeal {
    /// The case appealed.
    pub case: CaseId,
    /// The account that appealed (the case's).
    pub account: AccountId,
    /// What the user wrote (may be empty).
    pub message: String,
    /// Where it is.
    pub state: AppealState,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it was decided (Unix seconds), once it is.
    pub decided_at: Option<i64>,
}

/// The columns of an appeal, in the order of [`APPEAL_COLUMNS`].
type AppealRow = (String, String, String, String, i64, Option<i64>);

/// The `SELECT` list of an [`AppealRow`].
const APPEAL_COLUMNS: &str = "case_id, account, message, state, created_at, decided_at";

fn appeal_from_row(row: AppealRow) -> Result<Appeal, StoreError> {
    const T: &str = "appeals";
    let (case, account, message, state, created_at, decided_at) = row;
    Ok(Appeal {
        case: parse_col(T, &case)?,
        account: parse_col(T, &account)?,
        message,
        state: parse_col(T, &state)?,
        created_at,
        decided_at,
    })
}

impl Store {
    /// Records an appeal. Fails with [`StoreError::Duplicate`] when the case has one already,
    /// and with [`StoreError::NoSuchCase`] or [`StoreError::NoSuchAccount`] when either is
    /// unknown.
    pub async fn insert_appeal(&self, appeal: &Appeal) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| sqlx::query(&format!(
            "INSERT INTO appeals ({APPEAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(appeal.case.to_string())
        .bind(appeal.account.to_string())
        .bind(&appeal.message)
        .bind(appeal.state.as_str())
        .bind(appeal.created_at)
        .bind(appeal.decided_at)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "appeals",
                key: "case_id",
            }),
            Err(e) if is_foreign_key_violation(&e) => {
                drop(pooled);
                Err(self
                    .missing_case_or_account(&appeal.case, &appeal.account)
                    .await)
            }
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// The appeal of a case, if it has one.
    pub async fn appeal(&self, case: &CaseId) -> Result<Option<Appeal>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE case_id = $1");
        let row: Option<AppealRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(case.to_string())
            .fetch_optional(&mut *c)
            .await?);
        row.map(appeal_from_row).transpose()
    }

    /// The open appeals, oldest first, at most `limit`.
    pub async fn open_appeals(&self, limit: u32) -> Result<Vec<Appeal>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} FROM appeals WHERE state = $1 \
             ORDER BY created_at, case_id LIMIT $2"
        );
        let rows: Vec<AppealRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(&sql)
            .bind(AppealState::Open.as_str())
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter().map(appeal_from_row).collect()
    }
}

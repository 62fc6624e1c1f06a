//! The reviewers' work on cases (issue 16): decisions, where each case stands, reveals of
//! visual derivatives, the reports confirmed cases produce, the server-side allow-list, and the
//! derivatives kept for review of consented checks. Rules (who may decide, when a case is
//! decided) belong to the review crate; each change here is one statement or one transaction,
//! and the keys make the rules that must hold across server processes hold in the database:
//! one decision per reviewer and case, one report per case, one allow-list row per hash.

use crate::banks::begin_write;
use crate::error::StoreError;
use crate::pool::on_conn;
use crate::state::{is_unique_violation, parse_col, CaseId};
use crate::Store;

/// One reviewer's decision on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewDecision {
    /// The case.
    pub case: CaseId,
    /// The staff id of the reviewer.
    pub staff: String,
    /// `independent`, `senior` or `appeal`.
    pub stage: String,
    /// `confirm` or `reject`.
    pub decision: String,
    /// The classification of a confirmation (`A1`, `A2`, `B1`, `B2`).
    pub classification: Option<String>,
    /// What the reviewer noted (may be empty).
    pub note: String,
    /// When (Unix seconds).
    pub decided_at: i64,
}

/// Where a case stands in review.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReviewOutcome {
    /// `confirmed` or `rejected` once decided.
    pub outcome: Option<String>,
    /// Whether the two independent decisions disagreed and a senior reviewer must decide.
    pub needs_senior: bool,
    /// When it was decided.
    pub decided_at: Option<i64>,
}

/// One reveal of one item of a case by one reviewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    /// The case.
    pub case: CaseId,
    /// The item's index in the case.
    pub item: i64,
    /// The reviewer's staff id.
    pub staff: String,
    /// Why they revealed it.
    pub reason: String,
    /// When.
    pub at: i64,
    /// Until when it is shown unblurred.
    pub expires_at: i64,
}

/// A confirmed case's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewReport {
    /// The case.
    pub case: CaseId,
    /// When it was generated.
    pub created_at: i64,
    /// The report as JSON.
    pub json: String,
    /// The report as XML.
    pub xml: String,
    /// When it was first exported.
    pub exported_at: Option<i64>,
    /// When its material was deleted.
    pub purged_at: Option<i64>,
}

/// A derivative kept for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewMaterial {
    /// The case.
    pub case: CaseId,
    /// The item's index.
    pub item: i64,
    /// Its full PDQ hash (64 hex digits).
    pub pdq: String,
    /// The thumbnail's bytes.
    pub thumbnail: Vec<u8>,
}

/// The columns of a report.
type ReportRow = (String, i64, String, String, Option<i64>, Option<i64>);

type DecisionRow = (String, String, String, String, Option<String>, String, i64);

impl Store {
    /// Records a decision. [`StoreError::Duplicate`] when this reviewer decided this case
    /// already (the primary key: one person never counts twice).
    pub async fn insert_review_decision(&self, d: &ReviewDecision) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO review_decisions \
             (case_id, staff, stage, decision, classification, note, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)"
        )
        .bind(d.case.to_string())
        .bind(&d.staff)
        .bind(&d.stage)
        .bind(&d.decision)
        .bind(&d.classification)
        .bind(&d.note)
        .bind(d.decided_at)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "review_decisions",
                key: "case_id, staff",
            }),
            Err(e) => Err(self.write_error(e)),
            Ok(()) => Ok(()),
        }
    }

    /// Every decision on a case, oldest first.
    pub async fn review_decisions(&self, case: &CaseId) -> Result<Vec<ReviewDecision>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<DecisionRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT case_id, staff, stage, decision, classification, note, decided_at \
             FROM review_decisions WHERE case_id = $1 ORDER BY decided_at, staff"
        )
        .bind(case.to_string())
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter()
            .map(
                |(case, staff, stage, decision, classification, note, decided_at)| {
                    Ok(ReviewDecision {
                        case: parse_col("review_decisions", &case)?,
                        staff,
                        stage,
                        decision,
                        classification,
                        note,
                        decided_at,
                    })
                },
            )
            .collect()
    }

    /// The ids of the cases a reviewer decided.
    pub async fn cases_decided_by(&self, staff: &str) -> Result<Vec<CaseId>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<String> = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT case_id FROM review_decisions WHERE staff = $1"
        )
        .bind(staff)
        .fetch_all(&mut *c)
        .await?);
        rows.iter()
            .map(|c| parse_col("review_decisions", c))
            .collect()
    }

    /// Where a case stands (the default, nothing decided, when it has no row).
    pub async fn review_outcome(&self, case: &CaseId) -> Result<ReviewOutcome, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row: Option<(Option<String>, i64, Option<i64>)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT outcome, needs_senior, decided_at FROM review_outcomes WHERE case_id = $1"
            )
            .bind(case.to_string())
            .fetch_optional(&mut *c)
            .await?);
        Ok(row
            .map(|(outcome, needs_senior, decided_at)| ReviewOutcome {
                outcome,
                needs_senior: needs_senior != 0,
                decided_at,
            })
            .unwrap_or_default())
    }

    /// Sets where a case stands. Once an outcome is recorded it is never replaced: `false`
    /// (nothing changed) when the case has one already, so of two concurrent final decisions
    /// only one takes effect.
    pub async fn set_review_outcome(
        &self,
        case: &CaseId,
        outcome: &ReviewOutcome,
    ) -> Result<bool, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        let id = case.to_string();
        let existing: Option<Option<String>> = on_conn!(&mut conn, |c| sqlx::query_scalar(
            "SELECT outcome FROM review_outcomes WHERE case_id = $1"
        )
        .bind(&id)
        .fetch_optional(&mut *c)
        .await?);
        let changed = match existing {
            Some(Some(_)) => 0,
            Some(None) => on_conn!(&mut conn, |c| sqlx::query(
                "UPDATE review_outcomes SET outcome = $1, needs_senior = $2, decided_at = $3 \
                 WHERE case_id = $4 AND outcome IS NULL"
            )
            .bind(&outcome.outcome)
            .bind(i64::from(outcome.needs_senior))
            .bind(outcome.decided_at)
            .bind(&id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| self.write_error(e))?,
            None => on_conn!(&mut conn, |c| sqlx::query(
                "INSERT INTO review_outcomes (case_id, outcome, needs_senior, decided_at) \
                 VALUES ($1, $2, $3, $4)"
            )
            .bind(&id)
            .bind(&outcome.outcome)
            .bind(i64::from(outcome.needs_senior))
            .bind(outcome.decided_at)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))
            .map_err(|e| self.write_error(e))?,
        };
        tx.commit().await.map_err(|e| self.write_error(e))?;
        Ok(changed > 0)
    }

    /// Records a reveal.
    pub async fn insert_reveal(&self, r: &Reveal) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO review_reveals (case_id, item, staff, reason, at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(r.case.to_string())
        .bind(r.item)
        .bind(&r.staff)
        .bind(&r.reason)
        .bind(r.at)
        .bind(r.expires_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Ends every reveal of a reviewer that is still running at `now` (one at a time).
    pub async fn end_reveals(&self, staff: &str, now: i64) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE review_reveals SET expires_at = $1 WHERE staff = $2 AND expires_at > $1"
        )
        .bind(now)
        .bind(staff)
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Whether the reviewer has a running reveal of this item at `now`.
    pub async fn reveal_active(
        &self,
        case: &CaseId,
        item: i64,
        staff: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM review_reveals \
             WHERE case_id = $1 AND item = $2 AND staff = $3 AND expires_at > $4"
        )
        .bind(case.to_string())
        .bind(item)
        .bind(staff)
        .bind(now)
        .fetch_one(&mut *c)
        .await?);
        Ok(n > 0)
    }

    /// How many reveals the reviewer made at or after `since`.
    pub async fn reveals_since(&self, staff: &str, since: i64) -> Result<i64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM review_reveals WHERE staff = $1 AND at >= $2"
        )
        .bind(staff)
        .bind(since)
        .fetch_one(&mut *c)
        .await?);
        Ok(n)
    }

    /// Whether anyone ever revealed an item of this case (the report says whether the file
    /// was viewed).
    pub async fn case_revealed(&self, case: &CaseId) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM review_reveals WHERE case_id = $1"
        )
        .bind(case.to_string())
        .fetch_one(&mut *c)
        .await?);
        Ok(n > 0)
    }

    /// Stores a confirmed case's report. [`StoreError::Duplicate`] if it has one.
    pub async fn insert_review_report(&self, r: &ReviewReport) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query(
            "INSERT INTO review_reports (case_id, created_at, json, xml, exported_at, purged_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(r.case.to_string())
        .bind(r.created_at)
        .bind(&r.json)
        .bind(&r.xml)
        .bind(r.exported_at)
        .bind(r.purged_at)
        .execute(&mut *c)
        .await
        .map(|_| ())
        });
        match inserted {
            Err(e) if is_unique_violation(&e) => Err(StoreError::Duplicate {
                table: "review_reports",
                key: "case_id",
            }),
            Err(e) => Err(self.write_error(e)),
            Ok(()) => Ok(()),
        }
    }

    /// A case's report, if it has one.
    pub async fn review_report(&self, case: &CaseId) -> Result<Option<ReviewReport>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let row: Option<ReportRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT case_id, created_at, json, xml, exported_at, purged_at \
                 FROM review_reports WHERE case_id = $1"
        )
        .bind(case.to_string())
        .fetch_optional(&mut *c)
        .await?);
        row.map(|(case, created_at, json, xml, exported_at, purged_at)| {
            Ok(ReviewReport {
                case: parse_col("review_reports", &case)?,
                created_at,
                json,
                xml,
                exported_at,
                purged_at,
            })
        })
        .transpose()
    }

    /// Marks a report exported at `now` (the first export's time is kept).
    pub async fn mark_report_exported(&self, case: &CaseId, now: i64) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE review_reports SET exported_at = COALESCE(exported_at, $1) WHERE case_id = $2"
        )
        .bind(now)
        .bind(case.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// The cases whose report was exported before `before` and whose material is not deleted
    /// yet.
    pub async fn reports_due_for_purge(&self, before: i64) -> Result<Vec<CaseId>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<String> = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT case_id FROM review_reports \
             WHERE exported_at IS NOT NULL AND exported_at < $1 AND purged_at IS NULL \
             ORDER BY case_id"
        )
        .bind(before)
        .fetch_all(&mut *c)
        .await?);
        rows.iter()
            .map(|c| parse_col("review_reports", c))
            .collect()
    }

    /// Marks a report's material deleted at `now`.
    pub async fn mark_report_purged(&self, case: &CaseId, now: i64) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "UPDATE review_reports SET purged_at = $1 WHERE case_id = $2"
        )
        .bind(now)
        .bind(case.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))
        .map_err(|e| self.write_error(e))
    }

    /// Adds a confirmed mistake to the server-side allow-list; `false` if the hash is on it
    /// already.
    pub async fn insert_allow_listed(
        &self,
        pdq: &str,
        second_hash: Option<&str>,
        case: &CaseId,
        added_by: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "INSERT INTO allow_list (pdq, second_hash, case_id, added_by, added_at) \
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(pdq)
        .bind(second_hash)
        .bind(case.to_string())
        .bind(added_by)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()));
        match inserted {
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(self.write_error(e)),
            Ok(()) => Ok(true),
        }
    }

    /// Whether this full PDQ hash (64 lowercase hex digits) is on the allow-list.
    pub async fn allow_listed(&self, pdq: &str) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM allow_list WHERE pdq = $1"
        )
        .bind(pdq)
        .fetch_one(&mut *c)
        .await?);
        Ok(n > 0)
    }

    /// Keeps a derivative for review. Storing one item twice keeps the first.
    pub async fn insert_review_material(&self, m: &ReviewMaterial) -> Result<(), StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let inserted = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query(
            "INSERT INTO review_material (case_id, item, pdq, thumbnail) VALUES ($1, $2, $3, $4)"
        )
        .bind(m.case.to_string())
        .bind(m.item)
        .bind(&m.pdq)
        .bind(crate::rows::hex(&m.thumbnail))
        .execute(&mut *c)
        .await
        .map(|_| ())
        });
        match inserted {
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(self.write_error(e)),
            Ok(()) => Ok(()),
        }
    }

    /// The derivatives kept for review of a case, by item.
    pub async fn review_material(&self, case: &CaseId) -> Result<Vec<ReviewMaterial>, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(String, i64, String, String)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT case_id, item, pdq, thumbnail FROM review_material \
                 WHERE case_id = $1 ORDER BY item"
            )
            .bind(case.to_string())
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter()
            .map(|(case, item, pdq, thumbnail)| {
                Ok(ReviewMaterial {
                    case: parse_col("review_material", &case)?,
                    item,
                    pdq,
                    thumbnail: crate::state::hex_vec(&thumbnail).ok_or_else(|| {
                        crate::error::corrupt("review_material", "thumbnail is not hex")
                    })?,
                })
            })
            .collect()
    }

    /// Deletes the derivatives kept for review of a case; how many.
    pub async fn delete_review_material(&self, case: &CaseId) -> Result<u64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        on_conn!(&mut pooled.conn(), |c| sqlx::query(
            "DELETE FROM review_material WHERE case_id = $1"
        )
        .bind(case.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| self.write_error(e))
    }

    /// Every case of an account, oldest first (the account's history; the review crate shows
    /// counts only).
    pub async fn account_cases(
        &self,
        account: &crate::AccountId,
    ) -> Result<Vec<crate::CaseRecord>, StoreError> {
        self.cases_where("account = $1", &account.to_string()).await
    }

    /// Every case in any state, oldest first, at most `limit` (the review queue's filters
    /// read from here).
    pub async fn all_cases(&self, limit: u32) -> Result<Vec<crate::CaseRecord>, StoreError> {
        self.cases_limited(limit).await
    }

    /// How many opened records an account's log holds.
    pub async fn opened_record_count(&self, account: &crate::AccountId) -> Result<i64, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n: i64 = on_conn!(&mut pooled.conn(), |c| sqlx::query_scalar(
            "SELECT count(*) FROM opened_records WHERE account = $1"
        )
        .bind(account.to_string())
        .fetch_one(&mut *c)
        .await?);
        Ok(n)
    }

    /// Sets the state of an appeal that is open; `false` if it is not open (decided already,
    /// or none).
    pub async fn decide_appeal(
        &self,
        case: &CaseId,
        state: crate::AppealState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut pooled = self.pool.acquire().await?;
        let n = on_conn!(&mut pooled.conn(), |c| {
            sqlx::query(
            "UPDATE appeals SET state = $1, decided_at = $2 WHERE case_id = $3 AND state = 'open'"
        )
        .bind(state.as_str())
        .bind(now)
        .bind(case.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })
        .map_err(|e| self.write_error(e))?;
        Ok(n > 0)
    }
}

//! Append-only audit events, numbered densely from 0 by the store. (The hash chain over them
//! comes later; a dense, writer-assigned seq is what it will hang on.)

use crate::banks::begin_write;
use crate::error::StoreError;
use crate::pool::on_conn;
use crate::state::{from_db, is_unique_violation, AuditEvent};
use crate::Store;

/// How often [`Store::append_audit`] tries again after another writer took its seq. Each lost
/// race is another writer's success, so this bounds the wait under contention rather than in
/// the normal case.
const AUDIT_ATTEMPTS: u32 = 1000;

impl Store {
    /// Appends an audit event and returns its seq: one more than the largest so far (0 for the
    /// first), so the seqs stay dense. The seq is chosen and the row inserted in one writing
    /// transaction: on SQLite that transaction holds the write lock, so writers never collide;
    /// on PostgreSQL two writers may choose the same seq, the primary key refuses the second,
    /// and it tries again with the next.
    pub async fn append_audit(
        &self,
        at: i64,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<u64, StoreError> {
        for _ in 0..AUDIT_ATTEMPTS {
            let mut tx = begin_write(self).await?;
            let mut conn = tx.conn();
            let inserted = on_conn!(&mut conn, |c| {
                match sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(MAX(seq) + 1, 0) FROM audit_events",
                )
                .fetch_one(&mut *c)
                .await
                {
                    Err(e) => Err(e),
                    Ok(seq) => sqlx::query(
                        "INSERT INTO audit_events (seq, at, actor, action, subject, detail) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(seq)
                    .bind(at)
                    .bind(actor)
                    .bind(action)
                    .bind(subject)
                    .bind(detail)
                    .execute(&mut *c)
                    .await
                    .map(|_| seq),
                }
            });
            match inserted {
                // The transaction is rolled back when dropped.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(self.write_error(e)),
                Ok(seq) => {
                    tx.commit().await.map_err(|e| self.write_error(e))?;
                    return from_db("audit_events", seq);
                }
            }
        }
        Err(StoreError::Contended {
            what: "an audit event",
            attempts: AUDIT_ATTEMPTS,
        })
    }

    /// At most `limit` audit events with a seq after `after_seq` (from the first when `None`),
    /// in seq order: a reader pages through the log by passing the last seq it saw.
    pub async fn audit_events(
        &self,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        // Seqs are at most i64::MAX, so a later `after_seq` has nothing after it.
        let after = match after_seq {
            None => -1,
            Some(s) => match i64::try_from(s) {
                Ok(s) => s,
                Err(_) => return Ok(Vec::new()),
            },
        };
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<(i64, i64, String, String, String, String)> =
            on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
                "SELECT seq, at, actor, action, subject, detail FROM audit_events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2"
            )
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await?);
        rows.into_iter()
            .map(|(seq, at, actor, action, subject, detail)| {
                Ok(AuditEvent {
                    seq: from_db("audit_events", seq)?,
                    at,
                    actor,
                    action,
                    subject,
                    detail,
                })
            })
            .collect()
    }
}

//! Append-only audit events, numbered densely from 0 by the store and hash-chained: each
//! event's `hash` is SHA-256 over the previous event's hash and this event's fields
//! ([`audit_hash`]), and `audit_head` holds the last event's seq and hash. An event edited or
//! deleted directly in the database breaks the chain at that event, and
//! [`Store::verify_audit`] names it.

use sha2::{Digest, Sha256};

use crate::banks::begin_write;
use crate::error::StoreError;
use crate::pool::{on_conn, Conn};
use crate::rows::hex;
use crate::state::{from_db, hex_array, is_unique_violation, AuditEvent};
use crate::Store;

/// How often [`Store::append_audit`] tries again after another writer took its seq. Each lost
/// race is another writer's success, so this bounds the wait under contention rather than in
/// the normal case.
const AUDIT_ATTEMPTS: u32 = 1000;

/// How many events [`Store::verify_audit`] reads at a time.
const VERIFY_PAGE: u32 = 1000;

/// The hash "before" the first event.
pub const AUDIT_GENESIS: [u8; 32] = [0u8; 32];

/// The chain hash of an event: SHA-256 of a domain tag, the previous event's hash, the seq and
/// time (8 bytes big-endian each) and each text field with its length (8 bytes big-endian)
/// before it, so no two different events hash the same input.
pub fn audit_hash(
    previous: &[u8; 32],
    seq: u64,
    at: i64,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hashguard audit event v1\0");
    h.update(previous);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [actor, action, subject, detail] {
        h.update(u64::try_from(field.len()).unwrap_or(u64::MAX).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// What [`Store::verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// How many events were read.
    pub events: u64,
    /// The first break in the chain, if any.
    pub problem: Option<AuditProblem>,
}

/// A break in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditProblem {
    /// An event's seq is missing: it was deleted.
    #[error("audit event {seq} is missing: it was deleted")]
    Deleted {
        /// The missing seq.
        seq: u64,
    },
    /// An event's stored hash is not the hash of its fields after the previous event: it (or,
    /// if its hash was recomputed to match, the event before it) was edited.
    #[error("audit event {seq} was edited: its fields do not give its hash after event {}", .seq.checked_sub(1).map_or("(none)".to_string(), |s| s.to_string()))]
    Edited {
        /// The event whose hash does not match.
        seq: u64,
    },
    /// The last events were deleted: the head names a later event than the log has.
    #[error("audit events after {last} are missing (the log's head names event {head}): they were deleted")]
    TailDeleted {
        /// The last event the log has (`None`: none at all).
        last: String,
        /// The seq the head names.
        head: u64,
    },
    /// The head's hash is not the last event's hash.
    #[error("the audit head does not match event {seq}: the head or that event was changed")]
    HeadMismatch {
        /// The last event.
        seq: u64,
    },
}

type EventRow = (i64, i64, String, String, String, String, Option<String>);

fn event_from_row(row: EventRow) -> Result<(AuditEvent, Option<String>), StoreError> {
    let (seq, at, actor, action, subject, detail, hash) = row;
    Ok((
        AuditEvent {
            seq: from_db("audit_events", seq)?,
            at,
            actor,
            action,
            subject,
            detail,
        },
        hash,
    ))
}

impl AuditEvent {
    /// This event's chain hash after `previous`.
    pub fn chain_hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        audit_hash(
            previous,
            self.seq,
            self.at,
            &self.actor,
            &self.action,
            &self.subject,
            &self.detail,
        )
    }
}

/// The head (last seq, its hash) inside a writing transaction, after giving every event written
/// before the chain existed (hash NULL) its hash; `None` for an empty log.
async fn head_in(conn: &mut Conn<'_>) -> Result<Option<(i64, [u8; 32])>, sqlx::Error> {
    // Touch the head row first: on PostgreSQL this locks it, so appenders take turns here.
    on_conn!(conn, |c| sqlx::query(
        "UPDATE audit_head SET seq = seq WHERE id = 1"
    )
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    let head: Option<(i64, String)> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT seq, hash FROM audit_head WHERE id = 1"
    )
    .fetch_optional(&mut *c)
    .await?);
    if let Some((seq, hash)) = head {
        let hash = hex_array(&hash)
            .ok_or_else(|| sqlx::Error::Protocol("audit_head.hash is not 64 hex digits".into()))?;
        return Ok(Some((seq, hash)));
    }
    // No head yet: a new log, or one written before the chain. Chain what is there.
    let rows: Vec<EventRow> = on_conn!(conn, |c| sqlx::query_as(
        "SELECT seq, at, actor, action, subject, detail, hash FROM audit_events ORDER BY seq"
    )
    .fetch_all(&mut *c)
    .await?);
    let mut previous = AUDIT_GENESIS;
    let mut last = None;
    for row in rows {
        let (event, _) = event_from_row(row).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        previous = event.chain_hash(&previous);
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        on_conn!(conn, |c| sqlx::query(
            "UPDATE audit_events SET hash = $1 WHERE seq = $2"
        )
        .bind(hex(&previous))
        .bind(seq)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
        last = Some(seq);
    }
    let head = last.map(|seq| (seq, previous));
    if let Some((seq, hash)) = head {
        on_conn!(conn, |c| sqlx::query(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)"
        )
        .bind(seq)
        .bind(hex(&hash))
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    }
    Ok(head)
}

impl Store {
    /// Appends an audit event and returns its seq: one more than the last (0 for the first),
    /// so the seqs stay dense; its hash chains it to the event before. The seq is chosen and
    /// the row inserted in one writing transaction: on SQLite that transaction holds the write
    /// lock, and on PostgreSQL it first locks the head row, so writers take turns; should two
    /// still choose one seq, the primary key refuses the second, and it tries again.
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
            let appended: Result<i64, sqlx::Error> = async {
                let head = head_in(&mut conn).await?;
                let (seq, previous) = match head {
                    None => (0, AUDIT_GENESIS),
                    Some((s, h)) => (s + 1, h),
                };
                let seq_u = u64::try_from(seq).unwrap_or(0);
                let hash = audit_hash(&previous, seq_u, at, actor, action, subject, detail);
                on_conn!(&mut conn, |c| sqlx::query(
                    "INSERT INTO audit_events (seq, at, actor, action, subject, detail, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(seq)
                .bind(at)
                .bind(actor)
                .bind(action)
                .bind(subject)
                .bind(detail)
                .bind(hex(&hash))
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
                let sql = if head.is_none() {
                    "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)"
                } else {
                    "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1"
                };
                on_conn!(&mut conn, |c| sqlx::query(sql)
                    .bind(seq)
                    .bind(hex(&hash))
                    .execute(&mut *c)
                    .await
                    .map(|_| ()))?;
                Ok(seq)
            }
            .await;
            match appended {
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
        Ok(self
            .audit_rows(after_seq, limit)
            .await?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    /// The events (as [`Store::audit_events`]) with their stored chain hashes (`None` for an
    /// event written before the chain and not chained yet).
    pub async fn audit_rows(
        &self,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
        // Seqs are at most i64::MAX, so a later `after_seq` has nothing after it.
        let after = match after_seq {
            None => -1,
            Some(s) => match i64::try_from(s) {
                Ok(s) => s,
                Err(_) => return Ok(Vec::new()),
            },
        };
        let mut pooled = self.pool.acquire().await?;
        let rows: Vec<EventRow> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT seq, at, actor, action, subject, detail, hash FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&mut *c)
        .await?);
        rows.into_iter().map(event_from_row).collect()
    }

    /// Checks the whole chain from event 0: every seq present, every hash the hash of its
    /// event's fields after the previous stored hash, and the head naming the last event and
    /// its hash. Names the first event where it breaks. A log written before the chain and
    /// never appended to since has no head and no hashes; it is reported as edited at 0.
    pub async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let mut previous = AUDIT_GENESIS;
        let mut expected: u64 = 0;
        let mut after = None;
        loop {
            let page = self.audit_rows(after, VERIFY_PAGE).await?;
            if page.is_empty() {
                break;
            }
            for (event, stored) in &page {
                if event.seq != expected {
                    return Ok(AuditCheck {
                        events: expected,
                        problem: Some(AuditProblem::Deleted { seq: expected }),
                    });
                }
                let computed = event.chain_hash(&previous);
                let stored = stored.as_deref().and_then(hex_array::<32>);
                match stored {
                    Some(s) if s == computed => previous = s,
                    _ => {
                        return Ok(AuditCheck {
                            events: expected,
                            problem: Some(AuditProblem::Edited { seq: event.seq }),
                        })
                    }
                }
                expected += 1;
            }
            after = page.last().map(|(e, _)| e.seq);
        }
        let mut pooled = self.pool.acquire().await?;
        let head: Option<(i64, String)> = on_conn!(&mut pooled.conn(), |c| sqlx::query_as(
            "SELECT seq, hash FROM audit_head WHERE id = 1"
        )
        .fetch_optional(&mut *c)
        .await?);
        let last = expected.checked_sub(1);
        let problem = match (head, last) {
            (None, None) => None,
            (None, Some(_)) => Some(AuditProblem::Edited { seq: 0 }),
            (Some((seq, hash)), last) => {
                let head_seq = from_db("audit_head", seq)?;
                if Some(head_seq) != last {
                    if last.is_none_or(|l| head_seq > l) {
                        Some(AuditProblem::TailDeleted {
                            last: last.map_or("none".to_string(), |l| l.to_string()),
                            head: head_seq,
                        })
                    } else {
                        Some(AuditProblem::HeadMismatch { seq: head_seq })
                    }
                } else if hex_array::<32>(&hash) != Some(previous) {
                    Some(AuditProblem::HeadMismatch { seq: head_seq })
                } else {
                    None
                }
            }
        };
        Ok(AuditCheck {
            events: expected,
            problem,
        })
    }
}

//! The review UI's side of the audit log: every login, view, reveal, decision, export and
//! allow-list change is an event in the store's hash-chained log
//! ([`Store::append_audit`]); [`verify`] and [`export`] are what `hashguard audit verify` and
//! `hashguard audit export` run.

use hashguard_store::{AuditCheck, AuditEvent, Store};

use crate::{now, ReviewError};

/// Appends one event: who (a staff username, `user`, `intake`, ...), what, to what, and a JSON
/// detail.
pub async fn log(
    store: &Store,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> Result<u64, ReviewError> {
    Ok(store
        .append_audit(now(), actor, action, subject, &detail.to_string())
        .await?)
}

/// Checks the whole chain (see [`Store::verify_audit`]).
pub async fn verify(store: &Store) -> Result<AuditCheck, ReviewError> {
    Ok(store.verify_audit().await?)
}

/// One event as exported: its fields and its chain hash.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedEvent {
    /// Dense from 0.
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// To what.
    pub subject: String,
    /// More (JSON text as logged).
    pub detail: String,
    /// The chain hash (64 hex digits), as stored.
    pub hash: Option<String>,
}

/// Writes every event as one JSON object per line to `out`, in seq order; returns how many.
pub async fn export(store: &Store, out: &mut impl std::io::Write) -> Result<u64, ReviewError> {
    let mut after = None;
    let mut n = 0;
    loop {
        let page = store.audit_rows(after, 1000).await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(last.seq);
        for (event, hash) in page {
            let AuditEvent {
                seq,
                at,
                actor,
                action,
                subject,
                detail,
            } = event;
            let line = serde_json::to_string(&ExportedEvent {
                seq,
                at,
                actor,
                action,
                subject,
                detail,
                hash,
            })
            .map_err(ReviewError::internal)?;
            writeln!(out, "{line}")
                .map_err(|e| ReviewError::internal(format!("cannot write: {e}")))?;
            n += 1;
        }
    }
    Ok(n)
}

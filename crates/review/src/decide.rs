//! Decisions (G4: no report without two humans' review), reports, the allow-list and appeals.
//!
//! - Two independent decisions by two different reviewers: the database's key (case, staff)
//!   keeps one person from counting twice, and the case page does not show the first decision
//!   to anyone who has not decided yet. Auditors and admins never decide.
//! - Two agreeing confirmations (same classification) confirm the case; two agreeing
//!   rejections reject it; any difference goes to a senior reviewer who decided neither.
//! - Confirmed: the case's report is generated (JSON and CyberTipline XML) and the case
//!   closed. Rejected: a false positive; each item's full PDQ goes on the server-side
//!   allow-list, the held item is released and its material deleted at once.
//! - Appeals: decided by a reviewer who made no decision on the case; overturning releases the
//!   item as a rejection does. The user's client reads the answer from its case.

use hashguard_service::blobs::{BlobName, BlobStore};
use hashguard_store::{
    AppealState, AttachmentState, CaseKind, CaseState, ReviewDecision, ReviewOutcome, ReviewReport,
    Store, StoreError,
};
use minijinja::context;

use crate::casework::{CaseFacts, Stage};
use crate::report::{Confirmation, Report, ReportedFile, INCIDENT_TYPE};
use crate::web::Me;
use crate::{now, ReviewError, ReviewState};

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is abuse material.
    Confirm,
    /// A false positive.
    Reject,
}

/// The classifications the CyberTipline API takes.
pub const CLASSIFICATIONS: [&str; 4] = ["A1", "A2", "B1", "B2"];

/// What the case page offers `me` to decide, if anything.
pub fn offer(me: &Me, facts: &CaseFacts) -> Option<minijinja::Value> {
    if !me.role.reviews() || facts.decisions.iter().any(|d| d.staff == me.staff.id) {
        return None;
    }
    match facts.stage {
        Stage::AwaitingFirst | Stage::AwaitingSecond => Some(context! {
            title => "Your decision",
            help => "Decide on your own: you will see any other reviewer's decision only after you make yours. Two reviewers must agree before anything is reported.",
        }),
        Stage::AwaitingSenior if me.role.is_senior() => Some(context! {
            title => "Senior decision",
            help => "The two reviewers disagreed (their decisions are shown above). Your decision settles the case.",
        }),
        _ => None,
    }
}

/// Records `me`'s decision on a case and settles the case when it can be.
pub async fn decide(
    state: &ReviewState,
    me: &Me,
    facts: &CaseFacts,
    decision: Decision,
    classification: Option<&str>,
    note: &str,
) -> Result<Stage, ReviewError> {
    me.must_review()?;
    let store = state.store();
    let stage = match facts.stage {
        Stage::AwaitingFirst | Stage::AwaitingSecond => "independent",
        Stage::AwaitingSenior if me.role.is_senior() => "senior",
        Stage::AwaitingSenior => {
            return Err(ReviewError::Forbidden(
                "The two reviewers disagreed: a senior reviewer decides this case now.".to_string(),
            ))
        }
        Stage::Confirmed | Stage::Rejected => {
            return Err(ReviewError::Conflict(
                "This case is decided already.".to_string(),
            ))
        }
    };
    let classification = match (decision, classification.filter(|c| !c.is_empty())) {
        (Decision::Confirm, Some(c)) if CLASSIFICATIONS.contains(&c) => Some(c.to_string()),
        (Decision::Confirm, _) => {
            return Err(ReviewError::BadRequest(
                "To confirm, choose the classification (A1, A2, B1 or B2).".to_string(),
            ))
        }
        (Decision::Reject, _) => None,
    };
    let note: String = note.trim().chars().take(1000).collect();
    let t = now();
    let record = ReviewDecision {
        case: facts.case.id,
        staff: me.staff.id.clone(),
        stage: stage.to_string(),
        decision: match decision {
            Decision::Confirm => "confirm",
            Decision::Reject => "reject",
        }
        .to_string(),
        classification,
        note,
        decided_at: t,
    };
    match store.insert_review_decision(&record).await {
        Ok(()) => {}
        Err(StoreError::Duplicate { .. }) => {
            return Err(ReviewError::Conflict(
                "You decided this case already. The same person never counts twice: another reviewer must make the other decision.".to_string(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    crate::audit::log(
        store,
        &me.staff.username,
        "decided",
        &facts.case.id.to_string(),
        &serde_json::json!({ "stage": stage, "decision": record.decision, "classification": record.classification }),
    )
    .await?;
    settle(state, facts, &me.staff.username).await
}

/// Settles a case from its decisions: the outcome after two agreeing independent decisions or
/// a senior's, a referral to a senior after two that differ.
async fn settle(state: &ReviewState, facts: &CaseFacts, by: &str) -> Result<Stage, ReviewError> {
    let store = state.store();
    let decisions = store.review_decisions(&facts.case.id).await?;
    let independent: Vec<&ReviewDecision> = decisions
        .iter()
        .filter(|d| d.stage == "independent")
        .take(2)
        .collect();
    let senior = decisions.iter().find(|d| d.stage == "senior");
    let t = now();
    let final_decision = if let Some(s) = senior {
        Some(s.decision.clone())
    } else if let [a, b] = independent[..] {
        if a.decision == b.decision && a.classification == b.classification {
            Some(a.decision.clone())
        } else {
            store
                .set_review_outcome(
                    &facts.case.id,
                    &ReviewOutcome {
                        outcome: None,
                        needs_senior: true,
                        decided_at: None,
                    },
                )
                .await?;
            crate::audit::log(
                store,
                by,
                "referred_to_senior",
                &facts.case.id.to_string(),
                &serde_json::json!({}),
            )
            .await?;
            return Ok(Stage::AwaitingSenior);
        }
    } else {
        return Ok(Stage::AwaitingSecond);
    };
    match final_decision.as_deref() {
        Some("confirm") => {
            if store
                .set_review_outcome(
                    &facts.case.id,
                    &ReviewOutcome {
                        outcome: Some("confirmed".to_string()),
                        needs_senior: senior.is_some(),
                        decided_at: Some(t),
                    },
                )
                .await?
            {
                confirm(state, facts, &decisions, by).await?;
            }
            Ok(Stage::Confirmed)
        }
        _ => {
            if store
                .set_review_outcome(
                    &facts.case.id,
                    &ReviewOutcome {
                        outcome: Some("rejected".to_string()),
                        needs_senior: senior.is_some(),
                        decided_at: Some(t),
                    },
                )
                .await?
            {
                release(state, facts, by, "rejected").await?;
            }
            Ok(Stage::Rejected)
        }
    }
}

fn open_state(kind: CaseKind) -> CaseState {
    match kind {
        CaseKind::Held => CaseState::CheckBlocked,
        CaseKind::Threshold => CaseState::Queued,
    }
}

/// A confirmed case: its report generated and kept, the case closed.
async fn confirm(
    state: &ReviewState,
    facts: &CaseFacts,
    decisions: &[ReviewDecision],
    by: &str,
) -> Result<(), ReviewError> {
    let store = state.store();
    let t = now();
    let viewed = store.case_revealed(&facts.case.id).await?;
    let deciding: Vec<&ReviewDecision> = decisions
        .iter()
        .filter(|d| d.decision == "confirm" && d.stage != "appeal")
        .collect();
    let classification = deciding
        .iter()
        .rev()
        .find_map(|d| d.classification.clone())
        .unwrap_or_else(|| "A1".to_string());
    let mut confirmations = Vec::new();
    for d in &deciding {
        let reviewer = store
            .staff_by_id(&d.staff)
            .await?
            .map_or_else(|| d.staff.clone(), |s| s.username);
        confirmations.push(Confirmation {
            reviewer,
            stage: d.stage.clone(),
            classification: d.classification.clone().unwrap_or_default(),
            at: crate::report::iso8601(d.decided_at),
        });
    }
    let files = facts
        .items
        .iter()
        .map(|it| ReportedFile {
            file_id: it.index.to_string(),
            file_name: facts
                .case
                .attachment
                .map_or_else(|| format!("item-{}", it.index), |a| a.to_string()),
            viewed,
            industry_classification: classification.clone(),
            pdq: it.pdq.clone(),
            matched: match (&it.bank, &it.entry, it.distance) {
                (Some(b), Some(e), Some(d)) => {
                    Some(format!("bank {b}, entry {e}, PDQ distance {d}"))
                }
                _ => None,
            },
        })
        .collect();
    let cfg = state.config();
    let report = Report {
        incident_type: INCIDENT_TYPE.to_string(),
        incident_date_time: crate::report::iso8601(facts.case.created_at),
        reporter_name: cfg.reporter_name.clone(),
        reporter_email: cfg.reporter_email.clone(),
        esp_service: cfg.service_name.clone(),
        reported_account: facts.case.account.to_string(),
        files,
        confirmations,
        case_id: facts.case.id.to_string(),
    };
    match store
        .insert_review_report(&ReviewReport {
            case: facts.case.id,
            created_at: t,
            json: report.to_json(),
            xml: report.to_xml(),
            exported_at: None,
            purged_at: None,
        })
        .await
    {
        Ok(()) | Err(StoreError::Duplicate { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    store
        .set_case_state(
            &facts.case.id,
            open_state(facts.case.kind),
            CaseState::Closed,
            None,
            t,
        )
        .await?;
    crate::audit::log(
        store,
        by,
        "confirmed",
        &facts.case.id.to_string(),
        &serde_json::json!({ "classification": classification }),
    )
    .await?;
    Ok(())
}

/// A false positive: each item's full PDQ on the allow-list, the held item released, the
/// material deleted at once, the case closed.
pub async fn release(
    state: &ReviewState,
    facts: &CaseFacts,
    by: &str,
    why: &str,
) -> Result<(), ReviewError> {
    let store = state.store();
    let t = now();
    let staff_id = store.staff_by_name(by).await?.map(|s| s.id);
    for it in &facts.items {
        if let (Some(pdq), Some(staff)) = (&it.pdq, &staff_id) {
            if store
                .insert_allow_listed(pdq, None, &facts.case.id, staff, t)
                .await?
            {
                crate::audit::log(
                    store,
                    by,
                    "allow_listed",
                    &facts.case.id.to_string(),
                    &serde_json::json!({ "pdq": pdq }),
                )
                .await?;
            }
        }
    }
    if let Some(attachment) = facts.case.attachment {
        store
            .set_attachment_state(&attachment, AttachmentState::Released)
            .await?;
    }
    purge_material(state, facts).await?;
    store
        .set_case_state(
            &facts.case.id,
            open_state(facts.case.kind),
            CaseState::Closed,
            None,
            t,
        )
        .await?;
    crate::audit::log(
        store,
        by,
        "false_positive",
        &facts.case.id.to_string(),
        &serde_json::json!({ "why": why }),
    )
    .await?;
    Ok(())
}

/// Deletes what the server keeps of a case's content: the derivatives kept for review and the
/// encrypted derivatives of its items. (A released item's ciphertext stays: it is the user's
/// attachment, delivered now.)
pub async fn purge_material(state: &ReviewState, facts: &CaseFacts) -> Result<(), ReviewError> {
    let store = state.store();
    store.delete_review_material(&facts.case.id).await?;
    let records = store.opened_records(&facts.case.account).await?;
    for row in records {
        let (Some(attachment), Some(params)) = (row.attachment, state.params()) else {
            continue;
        };
        if facts.case.kind == CaseKind::Held && Some(attachment) != facts.case.attachment {
            continue;
        }
        if let Ok(rec) = hashguard_protocol::opener::OpenedRecord::decode(&row.bytes, params) {
            let name =
                BlobName::visual_derivative(&attachment.to_string(), &hex::encode(rec.voucher_id));
            state
                .blobs()
                .delete(&name)
                .await
                .map_err(ReviewError::internal)?;
        }
    }
    Ok(())
}

/// What the case page says about its report, if it has one.
pub async fn report_offer(
    store: &Store,
    facts: &CaseFacts,
) -> Result<Option<minijinja::Value>, ReviewError> {
    let Some(r) = store.review_report(&facts.case.id).await? else {
        return Ok(None);
    };
    let words = match (r.exported_at, r.purged_at) {
        (_, Some(p)) => format!("Exported; the case's material was deleted on {} (UTC) as the retention rule says.", crate::web::utc(p)),
        (Some(e), None) => format!("First exported on {} (UTC). The material is deleted when the retention period after the export ends.", crate::web::utc(e)),
        (None, None) => "Generated after two reviewers confirmed. Not exported yet.".to_string(),
    };
    Ok(Some(context! { words => words }))
}

/// What the case page says about its appeal, and whether `me` may decide it.
pub async fn appeal_offer(
    store: &Store,
    me: &Me,
    facts: &CaseFacts,
) -> Result<Option<minijinja::Value>, ReviewError> {
    let Some(a) = store.appeal(&facts.case.id).await? else {
        return Ok(None);
    };
    let decided_case = facts.decisions.iter().any(|d| d.staff == me.staff.id);
    let words = match a.state {
        AppealState::Open if decided_case => {
            "The user appealed. You decided this case, so another reviewer decides the appeal."
        }
        AppealState::Open => "The user appealed and asks for another look.",
        AppealState::Upheld => "Appeal decided: upheld (the file stays blocked).",
        AppealState::Overturned => "Appeal decided: overturned (the file was released).",
    };
    Ok(Some(context! {
        words => words,
        message => a.message,
        can_decide => a.state == AppealState::Open && me.role.reviews() && !decided_case,
    }))
}

/// Decides an appeal: `overturn` releases the item as a rejection does.
pub async fn decide_appeal(
    state: &ReviewState,
    me: &Me,
    facts: &CaseFacts,
    overturn: bool,
    note: &str,
) -> Result<(), ReviewError> {
    me.must_review()?;
    let store = state.store();
    match store.appeal(&facts.case.id).await? {
        Some(a) if a.state == AppealState::Open => {}
        Some(_) => {
            return Err(ReviewError::Conflict(
                "This appeal is decided already.".to_string(),
            ))
        }
        None => return Err(ReviewError::NotFound("appeal")),
    }
    let t = now();
    // The key (case, staff) refuses anyone who decided the case: the appeal goes to someone
    // else.
    match store
        .insert_review_decision(&ReviewDecision {
            case: facts.case.id,
            staff: me.staff.id.clone(),
            stage: "appeal".to_string(),
            decision: if overturn { "reject" } else { "confirm" }.to_string(),
            classification: None,
            note: note.trim().chars().take(1000).collect(),
            decided_at: t,
        })
        .await
    {
        Ok(()) => {}
        Err(StoreError::Duplicate { .. }) => {
            return Err(ReviewError::Forbidden(
                "You decided this case, so another reviewer must decide its appeal.".to_string(),
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let new_state = if overturn {
        AppealState::Overturned
    } else {
        AppealState::Upheld
    };
    if !store.decide_appeal(&facts.case.id, new_state, t).await? {
        return Err(ReviewError::Conflict(
            "This appeal is decided already.".to_string(),
        ));
    }
    crate::audit::log(
        store,
        &me.staff.username,
        "appeal_decided",
        &facts.case.id.to_string(),
        &serde_json::json!({ "outcome": new_state.as_str() }),
    )
    .await?;
    if overturn {
        store
            .set_review_outcome(
                &facts.case.id,
                &ReviewOutcome {
                    outcome: Some("rejected".to_string()),
                    needs_senior: false,
                    decided_at: Some(t),
                },
            )
            .await?;
        release(state, facts, &me.staff.username, "appeal overturned").await?;
    }
    Ok(())
}

/// Deletes the material of confirmed cases whose report was exported more than the retention
/// period ago; how many cases.
pub async fn purge_expired(state: &ReviewState, t: i64) -> Result<usize, ReviewError> {
    let store = state.store();
    let before = t.saturating_sub(state.config().retention_after_export_seconds);
    let due = store.reports_due_for_purge(before).await?;
    for id in &due {
        if let Some(case) = store.case(id).await? {
            let facts = crate::casework::facts(store, case).await?;
            purge_material(state, &facts).await?;
            if let Some(attachment) = facts.case.attachment {
                store
                    .set_attachment_state(&attachment, AttachmentState::Deleted)
                    .await?;
                state
                    .blobs()
                    .delete(&BlobName::attachment(&attachment.to_string()))
                    .await
                    .map_err(ReviewError::internal)?;
            }
        }
        store.mark_report_purged(id, t).await?;
        crate::audit::log(
            store,
            "retention",
            "material_deleted",
            &id.to_string(),
            &serde_json::json!({}),
        )
        .await?;
    }
    Ok(due.len())
}

/// The longest one retention pass may take before it is abandoned until the next (a stuck
/// database must not pile passes up).
pub const RETENTION_PASS_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs [`purge_expired`] every `every` (the first time at once), each pass bounded by
/// [`RETENTION_PASS_LIMIT`] (or `every`, if shorter), until the task is aborted (the server
/// aborts it when it stops). A failed pass is logged and tried again at the next tick.
pub async fn run_retention(state: ReviewState, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = every.min(RETENTION_PASS_LIMIT);
    loop {
        ticks.tick().await;
        match tokio::time::timeout(limit, purge_expired(&state, now())).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                cases = n,
                "retention: deleted the material of confirmed cases exported longer ago than the retention period"
            ),
            Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed; trying again later"),
            Err(_) => tracing::error!(
                seconds = limit.as_secs(),
                "retention pass took too long and was stopped; trying again later"
            ),
        }
    }
}

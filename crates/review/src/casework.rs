//! What the queue and the case page show, read from the store: where each case stands in
//! review, its items (bank, list entry, PDQ distance), the account's history as counts, and the
//! visual derivatives the reviewers may see.
//!
//! Where derivatives come from: a held item that its sender's consented check kept blocked has
//! its derivative kept by the intake at the check (`review_material`: the keys the sender
//! revealed are not kept). A threshold case's derivatives are opened again when they are
//! looked at: the account's opened records rebuild its share store, the threshold
//! reconstruction gives each item's payload with its derivative's key, and the encrypted
//! derivative is in the blob store beside the held ciphertext.

use std::collections::BTreeMap;

use hashguard_protocol::opener::{open_vd_blob, AccountShares, OpenedRecord, ThresholdOutcome};
use hashguard_protocol::params::Params;
use hashguard_service::blobs::{BlobName, BlobStore, LocalBlobs};
use hashguard_store::{
    AccountId, CaseId, CaseKind, CaseRecord, CaseState, ReviewDecision, ReviewOutcome, Store,
};
use serde::Serialize;

use crate::ReviewError;

/// Where a case stands in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Nobody decided yet.
    AwaitingFirst,
    /// One reviewer decided; a second, different one must.
    AwaitingSecond,
    /// The two disagreed: a senior reviewer decides.
    AwaitingSenior,
    /// Confirmed by two reviewers (or a senior reviewer after a disagreement).
    Confirmed,
    /// Rejected: a false positive; the item was released.
    Rejected,
}

impl Stage {
    /// Every stage, in the queue's order.
    pub const ALL: [Stage; 5] = [
        Stage::AwaitingFirst,
        Stage::AwaitingSecond,
        Stage::AwaitingSenior,
        Stage::Confirmed,
        Stage::Rejected,
    ];

    /// The query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::AwaitingFirst => "first",
            Stage::AwaitingSecond => "second",
            Stage::AwaitingSenior => "senior",
            Stage::Confirmed => "confirmed",
            Stage::Rejected => "rejected",
        }
    }

    /// In words, for the queue.
    pub fn words(self) -> &'static str {
        match self {
            Stage::AwaitingFirst => "needs a first decision",
            Stage::AwaitingSecond => "needs a second decision",
            Stage::AwaitingSenior => "the two decisions differ: needs a senior reviewer",
            Stage::Confirmed => "confirmed",
            Stage::Rejected => "rejected (a false positive)",
        }
    }

    /// Whether the case still waits for a decision.
    pub fn open(self) -> bool {
        matches!(
            self,
            Stage::AwaitingFirst | Stage::AwaitingSecond | Stage::AwaitingSenior
        )
    }

    /// The stage of a case from its outcome row and its decisions.
    pub fn of(outcome: &ReviewOutcome, decisions: &[ReviewDecision]) -> Stage {
        match outcome.outcome.as_deref() {
            Some("confirmed") => Stage::Confirmed,
            Some(_) => Stage::Rejected,
            None if outcome.needs_senior => Stage::AwaitingSenior,
            None => match decisions
                .iter()
                .filter(|d| d.stage == "independent")
                .count()
            {
                0 => Stage::AwaitingFirst,
                _ => Stage::AwaitingSecond,
            },
        }
    }
}

/// Whether a case is one reviewers work: a held item its sender's check kept blocked, or an
/// account past the threshold. (A held item nobody checked is not: below the threshold nobody
/// may see what matched, G3.)
pub fn reviewable(case: &CaseRecord) -> bool {
    match case.kind {
        CaseKind::Held => matches!(case.state, CaseState::CheckBlocked | CaseState::Closed),
        CaseKind::Threshold => matches!(case.state, CaseState::Queued | CaseState::Closed),
    }
}

/// One item of a case as the case page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its index in the case (0, 1, ...).
    pub index: usize,
    /// Its full PDQ hash, if known.
    pub pdq: Option<String>,
    /// PDQ quality, if known.
    pub quality: Option<u64>,
    /// The bank that lists the nearest entry.
    pub bank: Option<String>,
    /// The nearest listed entry.
    pub entry: Option<String>,
    /// Its PDQ distance.
    pub distance: Option<u64>,
    /// Whether a derivative can be shown.
    pub has_picture: bool,
    /// The voucher id (hex) of a threshold item, to find its derivative.
    #[serde(skip)]
    pub voucher_id: Option<String>,
}

/// The account's history, as counts only.
#[derive(Debug, Clone, Default, Serialize)]
pub struct History {
    /// Held uploads.
    pub held: usize,
    /// Held uploads released by the automatic check.
    pub released_by_check: usize,
    /// Held uploads the check kept blocked.
    pub blocked_by_check: usize,
    /// Key matches recorded toward the threshold.
    pub matches: i64,
    /// Whether the account reached the threshold.
    pub threshold_reached: bool,
}

/// A case with what the queue and the case page need.
#[derive(Debug, Clone)]
pub struct CaseFacts {
    /// The case.
    pub case: CaseRecord,
    /// Its items.
    pub items: Vec<Item>,
    /// The second check's result, in words.
    pub second_check: String,
    /// Decisions so far.
    pub decisions: Vec<ReviewDecision>,
    /// The outcome row.
    pub outcome: ReviewOutcome,
    /// Where it stands.
    pub stage: Stage,
}

impl CaseFacts {
    /// The banks its items were matched in.
    pub fn banks(&self) -> Vec<String> {
        let mut b: Vec<String> = self.items.iter().filter_map(|i| i.bank.clone()).collect();
        b.sort();
        b.dedup();
        b
    }
}

fn nearest(value: &serde_json::Value) -> (Option<String>, Option<String>, Option<u64>) {
    let n = &value["nearest_listed"];
    (
        n["bank"].as_str().map(str::to_string),
        n["entry"].as_str().map(str::to_string),
        n["distance"].as_u64(),
    )
}

/// The words for the second check, from what the intake recorded.
fn second_check_words(detail: &serde_json::Value) -> String {
    let Some(s) = detail["second_hash"].as_str() else {
        return "Not recorded for this case.".to_string();
    };
    if s.starts_with("not computed") {
        // Cases recorded before the second hash existed.
        return "Not available: this case was recorded before the server computed the second hash, so the full PDQ distance alone kept it for review.".to_string();
    }
    if s.starts_with("not on file") {
        return "Not on file for the listed entry: its list came without a second hash for it, so the full PDQ distance alone kept this item for review.".to_string();
    }
    if s.starts_with("matches") {
        return "Matches: the second hash of the visual derivative agrees with the same listed entry as PDQ.".to_string();
    }
    let mut words = s.to_string();
    if let Some(first) = words.get(..1) {
        words.replace_range(..1, &first.to_uppercase());
    }
    if !words.ends_with('.') {
        words.push('.');
    }
    words
}

/// Reads a case and everything the review pages show of it, or `None` if it does not exist
/// or is not one reviewers work.
pub async fn load(store: &Store, id: &CaseId) -> Result<Option<CaseFacts>, ReviewError> {
    let Some(case) = store.case(id).await? else {
        return Ok(None);
    };
    if !reviewable(&case) {
        return Ok(None);
    }
    Ok(Some(facts(store, case).await?))
}

/// The facts of a case already read.
pub async fn facts(store: &Store, case: CaseRecord) -> Result<CaseFacts, ReviewError> {
    let detail: serde_json::Value = serde_json::from_str(&case.detail).unwrap_or_default();
    let items = match case.kind {
        CaseKind::Held => {
            let material = store.review_material(&case.id).await?;
            let (bank, entry, distance) = nearest(&detail);
            vec![Item {
                index: 0,
                pdq: material.first().map(|m| m.pdq.clone()),
                quality: None,
                bank,
                entry,
                distance,
                has_picture: material.first().is_some_and(|m| !m.thumbnail.is_empty()),
                voucher_id: None,
            }]
        }
        CaseKind::Threshold => detail["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .enumerate()
                    .map(|(index, it)| {
                        let (bank, entry, distance) = nearest(it);
                        Item {
                            index,
                            pdq: it["pdq"].as_str().map(str::to_string),
                            quality: it["quality"].as_u64(),
                            bank,
                            entry,
                            distance,
                            has_picture: it["voucher_id"].is_string(),
                            voucher_id: it["voucher_id"].as_str().map(str::to_string),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let decisions = store.review_decisions(&case.id).await?;
    let outcome = store.review_outcome(&case.id).await?;
    let stage = Stage::of(&outcome, &decisions);
    Ok(CaseFacts {
        second_check: second_check_words(&detail),
        case,
        items,
        decisions,
        outcome,
        stage,
    })
}

/// The account's history as counts.
pub async fn history(store: &Store, account: &AccountId) -> Result<History, ReviewError> {
    let cases = store.account_cases(account).await?;
    let mut h = History {
        matches: store.opened_record_count(account).await?,
        ..History::default()
    };
    for c in &cases {
        match c.kind {
            CaseKind::Held => {
                h.held += 1;
                match c.state {
                    CaseState::CheckReleased => h.released_by_check += 1,
                    CaseState::CheckBlocked => h.blocked_by_check += 1,
                    _ => {}
                }
            }
            CaseKind::Threshold => h.threshold_reached = true,
        }
    }
    Ok(h)
}

/// The derivative of item `index` of a case (its thumbnail bytes), if one can be had.
pub async fn derivative(
    store: &Store,
    blobs: &LocalBlobs,
    params: Option<&Params>,
    facts: &CaseFacts,
    index: usize,
) -> Result<Option<Vec<u8>>, ReviewError> {
    match facts.case.kind {
        CaseKind::Held => Ok(store
            .review_material(&facts.case.id)
            .await?
            .into_iter()
            .find(|m| usize::try_from(m.item).ok() == Some(index))
            .map(|m| m.thumbnail)
            .filter(|t| !t.is_empty())),
        CaseKind::Threshold => {
            let (Some(params), Some(item)) = (params, facts.items.get(index)) else {
                return Ok(None);
            };
            let Some(voucher) = item.voucher_id.as_deref() else {
                return Ok(None);
            };
            let opened = threshold_derivatives(store, blobs, params, &facts.case.account).await?;
            Ok(opened.get(voucher).cloned().filter(|t| !t.is_empty()))
        }
    }
}

/// Every derivative of an account past the threshold, by voucher id (hex): the share store
/// rebuilt from the account's log, reconstructed, and each item's encrypted derivative opened
/// with its payload's key.
async fn threshold_derivatives(
    store: &Store,
    blobs: &LocalBlobs,
    params: &Params,
    account: &AccountId,
) -> Result<BTreeMap<String, Vec<u8>>, ReviewError> {
    let rows = store.opened_records(account).await?;
    let frozen = store.shares_frozen(account).await?;
    let decoded: Vec<(OpenedRecord, Option<String>)> = rows
        .iter()
        .filter_map(|r| {
            OpenedRecord::decode(&r.bytes, params)
                .ok()
                .map(|rec| (rec, r.attachment.map(|a| a.to_string())))
        })
        .collect();
    let records: Vec<OpenedRecord> = decoded.iter().map(|(r, _)| r.clone()).collect();
    let Ok(shares) = AccountShares::rebuild(params.clone(), records, frozen) else {
        return Ok(BTreeMap::new());
    };
    let ThresholdOutcome::Decrypted { items, .. } = shares.try_decrypt() else {
        return Ok(BTreeMap::new());
    };
    let mut out = BTreeMap::new();
    for item in items {
        let voucher = hex::encode(item.voucher_id);
        let Some(attachment) = decoded
            .iter()
            .find(|(r, _)| r.voucher_id == item.voucher_id)
            .and_then(|(_, a)| a.clone())
        else {
            continue;
        };
        let name = BlobName::visual_derivative(&attachment, &voucher);
        let Some(blob) = blobs.get(&name).await.map_err(ReviewError::internal)? else {
            continue;
        };
        if let Some(thumbnail) = open_vd_blob(&item.payload, &blob) {
            out.insert(voucher, thumbnail.to_vec());
        }
    }
    Ok(out)
}

//! The checks of one decrypted item (protocol.md R/E12 step 2 and the post-threshold pipeline,
//! G4): every listed PDQ entry within the index's radius of the item's PDQ, in each orientation
//! the item was probed in, and for each the second hash of the item's visual derivative (turned
//! the same way) against the second hash on file for that same entry. The decision itself is
//! [`crate::review::auto_check`]; this module gathers its facts and says them in words for the
//! case and the audit log.

use hashguard_hashing::second::{decode_derivative, oriented};
use hashguard_hashing::{SecondHash as DerivativeHash, SECOND_MATCH_THRESHOLD};
use hashguard_hashlist::Signal;
use hashguard_index::Scratch;
use hashguard_pdq::Hash256;
use hashguard_protocol::params::DIHEDRAL_NAMES;

use crate::banks::BankSet;
use crate::review::{auto_check, Candidate, CheckFacts, SecondHash, Verdict};

/// One orientation of an item: `None` as sent, `Some(i)` dihedral variant `DIHEDRAL_NAMES[i]`,
/// with the item's PDQ in it (big-endian bytes).
pub type Orientation = (Option<usize>, [u8; 32]);

/// What the checks found for one item.
#[derive(Debug, Clone)]
pub struct ItemCheck {
    /// The decision.
    pub verdict: Verdict,
    /// The facts, for the case detail and the audit log: `nearest_listed` (the entry the
    /// verdict names, else the nearest), `second_hash` (in words) and every candidate.
    pub detail: serde_json::Value,
}

fn orientation_name(o: Option<usize>) -> &'static str {
    o.and_then(|i| DIHEDRAL_NAMES.get(i).copied())
        .unwrap_or("as sent")
}

/// Checks one item: its PDQ in each of `orientations`, and its derivative (the decrypted VD's
/// image bytes; `None` if there is none). Without banks nothing is near, so the item is
/// released.
pub fn check_item(
    banks: Option<&BankSet>,
    orientations: &[Orientation],
    derivative: Option<&[u8]>,
    scratch: &mut Scratch,
) -> ItemCheck {
    let picture = derivative.and_then(decode_derivative);
    let mut candidates = Vec::new();
    let mut described = Vec::new();
    if let Some(banks) = banks {
        for &(orientation, pdq) in orientations {
            // The derivative turned as the client turned the image for this probe.
            let turned = match (&picture, orientation) {
                (Some(p), None) => Some(DerivativeHash::of_derivative(p)),
                (Some(p), Some(i)) => oriented(p, i).map(|t| DerivativeHash::of_derivative(&t)),
                (None, _) => None,
            };
            let lookup = banks.lookup(&Signal::Pdq(Hash256::from_be_bytes(&pdq)), scratch);
            for hit in lookup.reported() {
                let Some(item) = banks.item(hit.bank, hit.item) else {
                    continue;
                };
                let second_hash = match (banks.second_hash(hit.bank, hit.item), turned) {
                    (None, _) => SecondHash::NotOnFile,
                    (Some(listed), Some(ours)) if listed.matches(&ours) => {
                        SecondHash::Matches(listed.distance(&ours))
                    }
                    (Some(listed), Some(ours)) => SecondHash::Differs(listed.distance(&ours)),
                    (Some(_), None) => SecondHash::Unreadable,
                };
                let entry = candidates.len() as u64;
                candidates.push(Candidate {
                    entry,
                    distance: hit.distance,
                    second_hash,
                });
                described.push(serde_json::json!({
                    "bank": banks.label(hit.bank),
                    "entry": BankSet::entry_id(item),
                    "distance": hit.distance,
                    "orientation": orientation_name(orientation),
                    "second_hash": second_hash_words(second_hash),
                }));
            }
        }
    }
    let facts = CheckFacts { candidates };
    let verdict = auto_check(&facts);
    let named = match verdict {
        Verdict::ToReview { entry, .. } => Some(entry),
        Verdict::Release => facts
            .candidates
            .iter()
            .min_by_key(|c| (c.distance, c.entry))
            .map(|c| c.entry),
    };
    let named = named.and_then(|e| described.get(e as usize));
    let words = match verdict {
        Verdict::ToReview {
            second_hash_matched: true,
            ..
        } => "matches the same listed entry".to_string(),
        Verdict::ToReview {
            second_hash_matched: false,
            ..
        } => "not on file for this listed entry: the full PDQ distance alone kept the item"
            .to_string(),
        Verdict::Release => named.and_then(|n| n["second_hash"].as_str()).map_or(
            "no listed entry within the PDQ match distance".to_string(),
            str::to_string,
        ),
    };
    ItemCheck {
        verdict,
        detail: serde_json::json!({
            "nearest_listed": named.map(|n| serde_json::json!({
                "bank": n["bank"], "entry": n["entry"], "distance": n["distance"],
                "orientation": n["orientation"],
            })),
            "second_hash": words,
            "candidates": described,
        }),
    }
}

/// One candidate's second-hash result in words.
fn second_hash_words(s: SecondHash) -> String {
    match s {
        SecondHash::Matches(d) => {
            format!("matches (distance {d}; {SECOND_MATCH_THRESHOLD} or less is a match)")
        }
        SecondHash::Differs(d) => {
            format!("differs (distance {d}; more than {SECOND_MATCH_THRESHOLD} is no match)")
        }
        SecondHash::NotOnFile => "not on file for this listed entry".to_string(),
        SecondHash::Unreadable => "the item's visual derivative could not be read".to_string(),
    }
}

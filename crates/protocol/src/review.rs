//! The review gate (G4, PT12): which decrypted items may reach human reviewers, and when a
//! case may be reported. Pure decision logic; the server supplies the facts (nearest listed
//! PDQ distance from its plaintext index, and whether the private second hash of the visual
//! derivative matches the *same* listed entry).

use std::collections::BTreeSet;

/// Meta's PDQ match threshold δ: full-distance check after decryption.
pub const MATCH_DISTANCE: u32 = 31;

/// Facts the server established for one decrypted item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckFacts {
    /// The listed entry nearest to the payload's PDQ and its distance, if any entry is within
    /// the index's search radius.
    pub nearest: Option<(u64, u32)>,
    /// The listed entry the private second hash of the VD matched, if any.
    pub second_hash_entry: Option<u64>,
}

/// The automatic decision for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Release at once and delete the material (not a match).
    Release,
    /// Keep blocked and queue for two human reviewers.
    ToReview {
        /// The listed entry both checks agree on.
        entry: u64,
    },
}

/// (a) full PDQ distance ≤ 31 to a listed entry **and** (b) the second hash matches that same
/// entry; otherwise release (R/E12 step 2).
pub fn auto_check(f: &CheckFacts) -> Verdict {
    match (f.nearest, f.second_hash_entry) {
        (Some((e, d)), Some(e2)) if d <= MATCH_DISTANCE && e == e2 => {
            Verdict::ToReview { entry: e }
        }
        _ => Verdict::Release,
    }
}

/// A review case: reportable only after two distinct reviewers confirm and none rejects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewCase {
    confirmed: BTreeSet<u64>,
    rejected: BTreeSet<u64>,
}

impl ReviewCase {
    /// A new case (only create one for [`Verdict::ToReview`] items).
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a reviewer's confirmation.
    pub fn confirm(&mut self, reviewer: u64) {
        self.rejected.remove(&reviewer);
        self.confirmed.insert(reviewer);
    }
    /// Records a reviewer's rejection.
    pub fn reject(&mut self, reviewer: u64) {
        self.confirmed.remove(&reviewer);
        self.rejected.insert(reviewer);
    }
    /// G4: at least two distinct reviewers confirmed and nobody rejected.
    pub fn reportable(&self) -> bool {
        self.confirmed.len() >= 2 && self.rejected.is_empty()
    }
}

//! The review gate (G4, PT12): which decrypted items may reach human reviewers, and when a
//! case may be reported. Pure decision logic; the server supplies the facts (nearest listed
//! PDQ distance from its plaintext index, and whether the private second hash of the visual
//! derivative matches the *same* listed entry).

use std::collections::BTreeSet;

/// The full-distance check after decryption uses the field's PDQ match threshold δ.
pub use hashguard_pdq::MATCH_THRESHOLD as MATCH_DISTANCE;

/// What the private second hash of the visual derivative said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondHash {
    /// It matched this listed entry.
    Matches(u64),
    /// It matched no listed entry.
    NoMatch,
    /// No second hash is computed yet (issue "Detection quality"): the check is the full PDQ
    /// distance alone, and every case it opens says so.
    NotComputed,
}

/// Facts the server established for one decrypted item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckFacts {
    /// The listed entry nearest to the payload's PDQ and its distance, if any entry is within
    /// the index's search radius.
    pub nearest: Option<(u64, u32)>,
    /// The second hash's result.
    pub second_hash: SecondHash,
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
/// entry; otherwise release (R/E12 step 2). Without a second hash, (a) alone decides.
pub fn auto_check(f: &CheckFacts) -> Verdict {
    match (f.nearest, f.second_hash) {
        (Some((e, d)), SecondHash::Matches(e2)) if d <= MATCH_DISTANCE && e == e2 => {
            Verdict::ToReview { entry: e }
        }
        (Some((e, d)), SecondHash::NotComputed) if d <= MATCH_DISTANCE => {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// PT12: the review gate (G4).
    #[test]
    fn pt12_review_gate() {
        let facts = |d: u32, e1: u64, e2: Option<u64>| CheckFacts {
            nearest: Some((e1, d)),
            second_hash: e2.map_or(SecondHash::NoMatch, SecondHash::Matches),
        };
        assert_eq!(
            auto_check(&facts(31, 7, Some(7))),
            Verdict::ToReview { entry: 7 }
        );
        assert_eq!(
            auto_check(&facts(32, 7, Some(7))),
            Verdict::Release,
            "distance > 31"
        );
        assert_eq!(
            auto_check(&facts(3, 7, None)),
            Verdict::Release,
            "no second-hash match"
        );
        assert_eq!(
            auto_check(&facts(3, 7, Some(8))),
            Verdict::Release,
            "second hash on another entry"
        );
        assert_eq!(
            auto_check(&CheckFacts {
                nearest: None,
                second_hash: SecondHash::Matches(1)
            }),
            Verdict::Release
        );
        // Until the second hash exists, the full PDQ distance alone decides.
        let pdq_only = |nearest| CheckFacts {
            nearest,
            second_hash: SecondHash::NotComputed,
        };
        assert_eq!(
            auto_check(&pdq_only(Some((7, 31)))),
            Verdict::ToReview { entry: 7 }
        );
        assert_eq!(auto_check(&pdq_only(Some((7, 32)))), Verdict::Release);
        assert_eq!(auto_check(&pdq_only(None)), Verdict::Release);
        let mut case = ReviewCase::new();
        assert!(!case.reportable());
        case.confirm(1);
        case.confirm(1);
        assert!(!case.reportable(), "one reviewer twice is not two");
        case.confirm(2);
        assert!(case.reportable());
        case.reject(3);
        assert!(!case.reportable());
    }
}

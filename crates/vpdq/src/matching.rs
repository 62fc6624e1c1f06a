//! Matching two vPDQ hash sets, under the rule of python-threatexchange or of the C++ reference.

use std::collections::HashSet;

use crate::Feature;

/// Which of the field's two vPDQ matching rules to apply (pdq.md 4.3). Both drop frames with
/// quality under the quality threshold first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchRule {
    /// python-threatexchange's `vpdq_brute_matcher` (what HMA deployments use): exact duplicate
    /// hashes are removed (keeping the first), a frame matches at distance `<= threshold`, and
    /// the videos match when `query% >= 80` (compared% >= 0).
    ThreatExchange,
    /// The C++ reference's `matchTwoHashBrute`: no dedupe, a frame matches at distance
    /// `< threshold`, and either side empty after filtering gives 0% / 0%.
    Reference,
}

/// The percentages of one comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchResult {
    /// Percentage of the query's frames with a match in the compared video.
    pub query_percent: f64,
    /// Percentage of the compared video's frames with a match in the query.
    pub compared_percent: f64,
}

impl MatchResult {
    /// Whether the videos match: `query% >= query_threshold` and
    /// `compared% >= compared_threshold` (the field's defaults are 80 and 0).
    pub fn is_match(&self, query_threshold: f64, compared_threshold: f64) -> bool {
        self.query_percent >= query_threshold && self.compared_percent >= compared_threshold
    }
}

fn prepare(features: &[Feature], rule: MatchRule, quality: u8) -> Vec<&Feature> {
    let good = features.iter().filter(|f| f.quality >= quality);
    match rule {
        MatchRule::Reference => good.collect(),
        MatchRule::ThreatExchange => {
            let mut seen = HashSet::new();
            good.filter(|f| seen.insert(f.hash)).collect()
        }
    }
}

/// Compares `query` with `compared`: `distance` is the PDQ threshold (31 in the field) and
/// `quality` the minimum frame quality (50).
pub fn match_features(
    query: &[Feature],
    compared: &[Feature],
    rule: MatchRule,
    distance: u32,
    quality: u8,
) -> MatchResult {
    let q = prepare(query, rule, quality);
    let c = prepare(compared, rule, quality);
    if q.is_empty() || c.is_empty() {
        return MatchResult {
            query_percent: 0.0,
            compared_percent: 0.0,
        };
    }
    let close = |a: &Feature, b: &Feature| {
        let d = a.hash.distance(&b.hash);
        match rule {
            MatchRule::ThreatExchange => d <= distance,
            MatchRule::Reference => d < distance,
        }
    };
    let percent = |from: &[&Feature], to: &[&Feature]| {
        let matched = from
            .iter()
            .filter(|a| to.iter().any(|b| close(a, b)))
            .count();
        matched as f64 * 100.0 / from.len() as f64
    };
    MatchResult {
        query_percent: percent(&q, &c),
        compared_percent: percent(&c, &q),
    }
}

/// Up to `max` distinct frames to represent a video in the private protocol (ARCHITECTURE.md:
/// up to 16 keyframe vouchers per video). Frames of quality at least `quality` are deduplicated
/// greedily in time order (a frame within `min_distance` of one already kept is dropped); if more
/// than `max` remain, `max` of them are taken evenly spread over the video, so a clip cut from
/// any part of it still shares keyframes.
pub fn select_keyframes(
    features: &[Feature],
    max: usize,
    quality: u8,
    min_distance: u32,
) -> Vec<Feature> {
    let mut distinct: Vec<Feature> = Vec::new();
    for f in features.iter().filter(|f| f.quality >= quality) {
        if distinct
            .iter()
            .all(|c| c.hash.distance(&f.hash) > min_distance)
        {
            distinct.push(*f);
        }
    }
    if distinct.len() <= max {
        return distinct;
    }
    (0..max)
        .map(|i| distinct[i * distinct.len() / max])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashguard_pdq::{Hash256, MATCH_THRESHOLD, QUALITY_THRESHOLD};

    fn feature(frame: u64, words: [u64; 4], quality: u8) -> Feature {
        Feature {
            frame,
            quality,
            hash: Hash256::from_words(words),
            timestamp: frame as f32 / 30.0,
        }
    }

    #[test]
    fn empty_sides_give_zero_under_both_rules() {
        let a = [feature(0, [1, 2, 3, 4], 100)];
        let low = [feature(0, [1, 2, 3, 4], 49)];
        for rule in [MatchRule::Reference, MatchRule::ThreatExchange] {
            let r = match_features(&a, &low, rule, MATCH_THRESHOLD, QUALITY_THRESHOLD);
            assert_eq!((r.query_percent, r.compared_percent), (0.0, 0.0));
            assert!(!r.is_match(80.0, 0.0));
        }
    }

    #[test]
    fn rules_differ_at_the_threshold_and_on_duplicates() {
        let base = [0u64; 4];
        let at_31 = [(1u64 << 31) - 1, 0, 0, 0]; // 31 bits set
        let q = [feature(0, base, 100), feature(1, base, 100)];
        let c = [feature(0, at_31, 100)];
        // ThreatExchange: <= 31 matches, and the duplicate query frame counts once.
        let te = match_features(
            &q,
            &c,
            MatchRule::ThreatExchange,
            MATCH_THRESHOLD,
            QUALITY_THRESHOLD,
        );
        assert_eq!((te.query_percent, te.compared_percent), (100.0, 100.0));
        // Reference: < 31 does not match.
        let cpp = match_features(
            &q,
            &c,
            MatchRule::Reference,
            MATCH_THRESHOLD,
            QUALITY_THRESHOLD,
        );
        assert_eq!((cpp.query_percent, cpp.compared_percent), (0.0, 0.0));
    }

    #[test]
    fn keyframes_are_distinct_spread_and_capped() {
        // 100 frames: 50 distinct hashes, each repeated twice in a row, plus low-quality frames.
        let mut features = Vec::new();
        for i in 0..100u64 {
            let distinct = i / 2;
            // Hashes far apart: a different 64-bit word pattern per distinct frame.
            let w = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(distinct + 1);
            features.push(feature(
                i,
                [w, !w, w.rotate_left(17), !w.rotate_left(9)],
                100,
            ));
        }
        features.push(feature(100, [7, 7, 7, 7], 10));
        let picked = select_keyframes(&features, 16, 50, 10);
        assert_eq!(picked.len(), 16);
        for (i, a) in picked.iter().enumerate() {
            assert!(a.quality >= 50);
            for b in &picked[i + 1..] {
                assert!(a.hash.distance(&b.hash) > 10);
                assert!(a.frame < b.frame, "time order");
            }
        }
        // Spread: the first and the last eighth of the video are both represented.
        assert!(picked.first().is_some_and(|f| f.frame < 12));
        assert!(picked.last().is_some_and(|f| f.frame >= 88));
        // Fewer distinct frames than the cap: all of them.
        assert_eq!(select_keyframes(&features[..10], 16, 50, 10).len(), 5);
    }
}

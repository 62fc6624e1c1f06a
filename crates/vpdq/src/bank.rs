//! Matching one video against every video of a bank at once.
//!
//! # What it returns
//!
//! [`VideoBankIndex::matches`] returns exactly the entries that [`match_features`] against every
//! entry, one by one, would call a match: `query% >= QUERY_MATCH_PERCENT` (80) and
//! `compared% >= COMPARED_MATCH_PERCENT` (0), under the chosen [`MatchRule`], the index's frame
//! distance (a vPDQ bank's threshold, 31 by default) and minimum frame quality (50), with the
//! percentages [`match_features`] computes. It is property-tested against that brute force.
//!
//! # How
//!
//! At build time every distinct listed frame hash of quality >= the minimum goes into one
//! [`FrozenIndex`] (exact Hamming range search), with the entries that list it. A query's
//! distinct good frames are searched at the rule's radius (`distance` for
//! [`MatchRule::ThreatExchange`], which matches at `<=`; `distance - 1` for
//! [`MatchRule::Reference`], which matches at `<`); the entries hit are the candidates, and each
//! candidate is compared exactly with [`match_features`].
//!
//! Why no passing entry is missed: a match needs `query% >= 80 > 0`, so at least one good query
//! frame has a good frame of the entry within the rule's distance; the range search finds that
//! frame (it is indexed, being good, and the search is exact), so the entry is a candidate.
//! Entries that are not candidates have `query% = 0` and cannot pass.
//!
//! Cost: one range search per distinct good query frame, then a brute-force comparison per
//! candidate (`|query| x |entry|` distances); listed videos that share no near frame with the
//! query cost nothing.

use std::collections::HashMap;
use std::sync::Arc;

use hashguard_index::{BuildError, Code, FrozenIndex, Scratch};

use crate::matching::{match_features, MatchRule};
use crate::Feature;

/// The frame distance of the field (a vPDQ bank's default threshold): frames match at Hamming
/// distance `<= 31` (python-threatexchange) or `< 31` (C++ reference).
pub const DEFAULT_DISTANCE: u32 = hashguard_pdq::MATCH_THRESHOLD;
/// The field's minimum frame quality: frames under 50 are ignored on both sides.
pub const DEFAULT_QUALITY: u8 = hashguard_pdq::QUALITY_THRESHOLD;
/// A match needs at least this share of the query's frames matched (python-threatexchange's
/// `VPDQ_QUERY_MATCH_THRESHOLD_PERCENT`).
pub const QUERY_MATCH_PERCENT: f64 = 80.0;
/// A match needs at least this share of the listed video's frames matched
/// (python-threatexchange's `VPDQ_INDEX_MATCH_THRESHOLD_PERCENT`).
pub const COMPARED_MATCH_PERCENT: f64 = 0.0;

/// Why a [`VideoBankIndex`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VideoIndexError {
    /// The frame distance is over 255 (a PDQ hash has 256 bits; bank thresholds are 0..=255).
    #[error("frame distance {0} is over 255")]
    Distance(u32),
    /// More entries or distinct listed frames than 32-bit ids can number.
    #[error("too many {what}: {found}")]
    TooMany {
        /// `entries` or `frames`.
        what: &'static str,
        /// How many were given.
        found: usize,
    },
    /// The hash index refused the frames.
    #[error("frame index: {0}")]
    Index(#[from] BuildError),
}

/// One listed video that matches the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoMatch {
    /// The entry's position in the order given to [`VideoBankIndex::build`].
    pub entry: usize,
    /// Percentage of the query's frames (quality-filtered, and deduplicated under
    /// [`MatchRule::ThreatExchange`]) with a matching frame in the entry.
    pub query_percent: f64,
    /// Percentage of the entry's frames with a matching frame in the query.
    pub compared_percent: f64,
}

/// The listed videos of one or more vPDQ banks with the same frame distance, indexed for
/// matching query videos (see the [module documentation](self)). Immutable once built; `Id` is
/// whatever the caller names entries by.
///
/// ```
/// use hashguard_vpdq::{Feature, MatchRule, VideoBankIndex};
/// use hashguard_pdq::Hash256;
/// // Frame hashes about 128 bits apart from each other.
/// let frame = |i: u64, k: u64| Feature {
///     frame: i,
///     quality: 100,
///     hash: Hash256::from_words([k.wrapping_mul(0x9e37_79b9_7f4a_7c15); 4]),
///     timestamp: i as f32,
/// };
/// let listed = vec![
///     ("video-a", vec![frame(0, 1), frame(1, 2), frame(2, 3)]),
///     ("video-b", vec![frame(0, 10), frame(1, 11)]),
/// ];
/// let index = VideoBankIndex::build(listed)?;
/// // A clip of video a: two of its frames.
/// let query = [frame(0, 2), frame(1, 3)];
/// let hits = index.matches(&query, MatchRule::ThreatExchange);
/// assert_eq!(hits.len(), 1);
/// assert_eq!(index.id(hits[0].entry), Some(&"video-a"));
/// assert_eq!(hits[0].query_percent, 100.0);
/// assert!((hits[0].compared_percent - 200.0 / 3.0).abs() < 1e-9);
/// # Ok::<(), hashguard_vpdq::VideoIndexError>(())
/// ```
#[derive(Debug)]
pub struct VideoBankIndex<Id> {
    entries: Vec<(Id, Arc<[Feature]>)>,
    /// The distinct good listed frame hashes; search result ids are positions in `codes`.
    index: FrozenIndex,
    /// For distinct hash `k`, the entries listing it are `owners[starts[k]..starts[k + 1]]`.
    starts: Vec<u32>,
    owners: Vec<u32>,
    distance: u32,
    quality: u8,
}

impl<Id> VideoBankIndex<Id> {
    /// Indexes `entries` (an id and the video's frames each) for the field's frame distance
    /// ([`DEFAULT_DISTANCE`]) and minimum quality ([`DEFAULT_QUALITY`]).
    pub fn build<I, F>(entries: I) -> Result<Self, VideoIndexError>
    where
        I: IntoIterator<Item = (Id, F)>,
        F: Into<Arc<[Feature]>>,
    {
        Self::build_with(entries, DEFAULT_DISTANCE, DEFAULT_QUALITY)
    }

    /// Indexes `entries` for frames matching within `distance` (a vPDQ bank's threshold,
    /// 0..=255) and frames of quality at least `quality` counting.
    pub fn build_with<I, F>(entries: I, distance: u32, quality: u8) -> Result<Self, VideoIndexError>
    where
        I: IntoIterator<Item = (Id, F)>,
        F: Into<Arc<[Feature]>>,
    {
        if distance > 255 {
            return Err(VideoIndexError::Distance(distance));
        }
        let entries: Vec<(Id, Arc<[Feature]>)> =
            entries.into_iter().map(|(id, f)| (id, f.into())).collect();
        if u32::try_from(entries.len()).is_err() {
            return Err(VideoIndexError::TooMany {
                what: "entries",
                found: entries.len(),
            });
        }
        let mut distinct: HashMap<Code, u32> = HashMap::new();
        let mut codes: Vec<Code> = Vec::new();
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for (e, (_, features)) in entries.iter().enumerate() {
            for f in features.iter().filter(|f| f.quality >= quality) {
                let code = f.hash.to_words();
                let next = codes.len();
                let k = match distinct.get(&code) {
                    Some(&k) => k,
                    None => {
                        let k = u32::try_from(next).map_err(|_| VideoIndexError::TooMany {
                            what: "frames",
                            found: next + 1,
                        })?;
                        distinct.insert(code, k);
                        codes.push(code);
                        k
                    }
                };
                // `e` fits a u32: checked above.
                pairs.push((k, e as u32));
            }
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut starts = vec![0u32; codes.len() + 1];
        for &(k, _) in &pairs {
            starts[k as usize + 1] += 1;
        }
        for k in 0..codes.len() {
            starts[k + 1] += starts[k];
        }
        let owners: Vec<u32> = pairs.iter().map(|&(_, e)| e).collect();
        if u32::try_from(owners.len()).is_err() {
            return Err(VideoIndexError::TooMany {
                what: "frames",
                found: owners.len(),
            });
        }
        let index = FrozenIndex::build(&codes, None, None)?;
        Ok(VideoBankIndex {
            entries,
            index,
            starts,
            owners,
            distance,
            quality,
        })
    }

    /// Every entry that matches `query` under `rule` (see the [module documentation](self)),
    /// in entry order, with its percentages.
    pub fn matches(&self, query: &[Feature], rule: MatchRule) -> Vec<VideoMatch> {
        let radius = match rule {
            MatchRule::ThreatExchange => self.distance,
            // `< distance`: nothing matches at distance 0.
            MatchRule::Reference => match self.distance.checked_sub(1) {
                Some(r) => r,
                None => return Vec::new(),
            },
        };
        let mut searched: std::collections::HashSet<Code> = std::collections::HashSet::new();
        let mut candidate = vec![false; self.entries.len()];
        let mut scratch = Scratch::new();
        let mut hits = Vec::new();
        for f in query.iter().filter(|f| f.quality >= self.quality) {
            let code = f.hash.to_words();
            if !searched.insert(code) {
                continue;
            }
            hits.clear();
            self.index
                .search_into(&code, radius, &mut scratch, &mut hits);
            for hit in &hits {
                let k = hit.id as usize;
                let (Some(&a), Some(&b)) = (self.starts.get(k), self.starts.get(k + 1)) else {
                    continue;
                };
                for &e in self.owners.get(a as usize..b as usize).unwrap_or(&[]) {
                    if let Some(c) = candidate.get_mut(e as usize) {
                        *c = true;
                    }
                }
            }
        }
        candidate
            .iter()
            .enumerate()
            .filter(|(_, &c)| c)
            .filter_map(|(e, _)| {
                let (_, features) = &self.entries[e];
                let r = match_features(query, features, rule, self.distance, self.quality);
                r.is_match(QUERY_MATCH_PERCENT, COMPARED_MATCH_PERCENT)
                    .then_some(VideoMatch {
                        entry: e,
                        query_percent: r.query_percent,
                        compared_percent: r.compared_percent,
                    })
            })
            .collect()
    }

    /// The id of entry `entry` (a [`VideoMatch::entry`]).
    pub fn id(&self, entry: usize) -> Option<&Id> {
        self.entries.get(entry).map(|(id, _)| id)
    }

    /// The frames of entry `entry`.
    pub fn features(&self, entry: usize) -> Option<&[Feature]> {
        self.entries.get(entry).map(|(_, f)| &f[..])
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The distinct listed frame hashes indexed (quality at least the minimum).
    pub fn indexed_frames(&self) -> usize {
        self.index.len()
    }

    /// The frame distance (the bank threshold).
    pub fn distance(&self) -> u32 {
        self.distance
    }

    /// The minimum frame quality.
    pub fn quality(&self) -> u8 {
        self.quality
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashguard_pdq::Hash256;

    fn f(frame: u64, words: [u64; 4], quality: u8) -> Feature {
        Feature {
            frame,
            quality,
            hash: Hash256::from_words(words),
            timestamp: frame as f32,
        }
    }

    #[test]
    fn edges() {
        let idx = VideoBankIndex::<u8>::build(Vec::<(u8, Vec<Feature>)>::new()).unwrap();
        assert!(idx.is_empty());
        assert!(idx
            .matches(&[f(0, [1, 2, 3, 4], 100)], MatchRule::ThreatExchange)
            .is_empty());
        assert_eq!(
            VideoBankIndex::build_with(vec![(0, vec![f(0, [0; 4], 100)])], 256, 50).unwrap_err(),
            VideoIndexError::Distance(256)
        );
        // Low-quality frames are not indexed and never match.
        let idx = VideoBankIndex::build(vec![(7, vec![f(0, [0; 4], 49)])]).unwrap();
        assert_eq!(idx.indexed_frames(), 0);
        assert!(idx
            .matches(&[f(0, [0; 4], 100)], MatchRule::ThreatExchange)
            .is_empty());
        // Distance 0 under the reference rule (`< 0`) matches nothing; under ThreatExchange,
        // equal hashes.
        let idx = VideoBankIndex::build_with(vec![(1, vec![f(0, [5; 4], 100)])], 0, 50).unwrap();
        assert!(idx
            .matches(&[f(0, [5; 4], 100)], MatchRule::Reference)
            .is_empty());
        assert_eq!(
            idx.matches(&[f(0, [5; 4], 100)], MatchRule::ThreatExchange)
                .len(),
            1
        );
    }
}

//! The bank set: every enabled bank of a database (or one list file) indexed for matching media
//! in the clear, with what a match names (the bank, the entry's id, the list line).
//!
//! An image is looked up by its PDQ hash (when its quality reaches the floor), optionally by the
//! seven rotated and mirrored variants of that hash, and by the MD5 and SHA-256 of its bytes; a
//! video by its vPDQ frames (python-threatexchange's rule) and by its bytes. Per bank entry the
//! closest match over all of an input's values is kept. Allow banks suppress: when any allow
//! bank matches an input, none of its block matches is reported.

use std::collections::{BTreeMap, HashMap};

use hashguard_hashing::{Hashed, SecondHash};
use hashguard_hashlist::{
    BankKind, Hit, ListItem, Lookup, MatchRules, Matcher, MatcherError, Signal, SignalType,
};
use hashguard_index::Scratch;
use hashguard_store::{LoadedBank, SecondHashRow, Store};
use hashguard_vpdq::{Feature, MatchRule, VideoBankIndex, VideoIndexError, DEFAULT_QUALITY};

/// Why a bank set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BankSetError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] hashguard_store::StoreError),
    /// The PDQ or exact-value banks could not be indexed.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// A vPDQ bank could not be indexed.
    #[error("bank {bank}: {source}")]
    Video {
        /// The bank's label.
        bank: String,
        /// The cause.
        source: VideoIndexError,
    },
    /// The labels (or list lines) do not match the banks (or items) one for one.
    #[error("{0}")]
    Shape(&'static str),
    /// A stored second hash is unreadable.
    #[error("unreadable second hash: {0}")]
    SecondHash(String),
}

/// One value looked up for an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The value.
    pub value: Signal,
    /// The PDQ quality of the image it was computed from (PDQ values only).
    pub quality: Option<u8>,
    /// For a dihedral variant of the image's PDQ hash, its name (`rot90`, `flipx`, ...).
    pub variant: Option<&'static str>,
}

impl Query {
    /// The values to look up for one hashed input: its PDQ hash if the quality reaches
    /// `min_quality`, with the seven variants when they were computed; then the digests of its
    /// bytes when they were computed.
    pub fn of(hashed: &Hashed, min_quality: u8) -> Vec<Query> {
        let mut out = Vec::new();
        let digests = match hashed {
            Hashed::Image {
                hash,
                dihedral,
                digests,
                ..
            } => {
                if hash.quality >= min_quality {
                    out.push(Query {
                        value: Signal::Pdq(hash.hash),
                        quality: Some(hash.quality),
                        variant: None,
                    });
                    for (name, h) in dihedral.iter().flat_map(|d| d.named_variants()) {
                        out.push(Query {
                            value: Signal::Pdq(h),
                            quality: Some(hash.quality),
                            variant: Some(name),
                        });
                    }
                }
                digests
            }
            Hashed::Video { digests, .. } => digests,
        };
        if let Some(d) = digests {
            for value in [Signal::Md5(d.md5), Signal::Sha256(d.sha256)] {
                out.push(Query {
                    value,
                    quality: None,
                    variant: None,
                });
            }
        }
        out
    }
}

/// A video's match with one vPDQ bank entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoHit {
    /// The bank's position in the set.
    pub bank: usize,
    /// The entry's position in the bank.
    pub item: usize,
    /// Share (percent) of the query video's distinct good frames that match the entry.
    pub query_percent: f64,
    /// Share (percent) of the entry's frames that match the query.
    pub compared_percent: f64,
}

/// What one input matched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaMatches {
    /// The values looked up.
    pub queries: Vec<Query>,
    /// The reported matches of single values, one per bank entry at its smallest distance over
    /// the queries, as (index into `queries`, hit), sorted by (distance, bank, item).
    pub reported: Vec<(usize, Hit)>,
    /// The reported vPDQ matches.
    pub videos: Vec<VideoHit>,
    /// The allow banks that suppressed block matches, sorted, without repeats.
    pub suppressed_by: Vec<usize>,
}

impl MediaMatches {
    /// Whether anything is reported.
    pub fn any(&self) -> bool {
        !self.reported.is_empty() || !self.videos.is_empty()
    }
}

/// The live PDQ entry of a bank that a listed original belongs to, for recording its second
/// hash: the entry whose value equals the original's PDQ, else the nearest within
/// `threshold` (a list hashed by another PDQ implementation can differ by a few bits), as
/// (value in lowercase hex, distance). `None` if no entry is that near.
pub fn entry_for_original(
    entries: &[hashguard_hashlist::Entry],
    pdq: &hashguard_pdq::Hash256,
    threshold: u32,
) -> Option<(String, u32)> {
    entries
        .iter()
        .filter(|e| e.removed_in().is_none())
        .filter_map(|e| match e.item().value() {
            Signal::Pdq(h) => Some((h.to_string(), h.distance(pdq))),
            _ => None,
        })
        .filter(|(_, d)| *d <= threshold)
        .min_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)))
}

/// Banks ready to match media and hash values (see the [module documentation](self)).
pub struct BankSet {
    matcher: Matcher,
    /// One frame index per enabled vPDQ bank: (bank, kind, index of the bank's items).
    videos: Vec<(usize, BankKind, VideoBankIndex<usize>)>,
    /// Per bank: its name, or the list file's path.
    labels: Vec<String>,
    /// For a list file: each item's line number.
    lines: Option<Vec<usize>>,
    /// The second hashes on file, by (bank, item): the server-private companion of a listed
    /// PDQ entry that the automatic check compares (docs/second-hash.md).
    second: HashMap<(usize, usize), SecondHash>,
}

impl BankSet {
    /// Indexes `banks` (rules and items), each named by its label. `radius` overrides every
    /// PDQ block bank's threshold. `lines`, for a list file, gives each item's line number.
    pub fn new(
        banks: Vec<(MatchRules, Vec<ListItem>)>,
        radius: Option<u32>,
        labels: Vec<String>,
        lines: Option<Vec<usize>>,
    ) -> Result<BankSet, BankSetError> {
        if labels.len() != banks.len() {
            return Err(BankSetError::Shape("one label per bank is needed"));
        }
        if let Some(lines) = &lines {
            if banks.len() != 1 || lines.len() != banks[0].1.len() {
                return Err(BankSetError::Shape(
                    "list lines are given for one bank, one per item",
                ));
            }
        }
        let mut videos = Vec::new();
        for (b, (rules, items)) in banks.iter().enumerate() {
            if rules.signal_type != SignalType::Vpdq || !rules.enabled {
                continue;
            }
            let entries = items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| item.value().as_vpdq().map(|v| (i, v.shared_features())));
            let index = VideoBankIndex::build_with(entries, rules.threshold, DEFAULT_QUALITY)
                .map_err(|source| BankSetError::Video {
                    bank: labels[b].clone(),
                    source,
                })?;
            videos.push((b, rules.kind, index));
        }
        Ok(BankSet {
            matcher: Matcher::new(banks, radius)?,
            videos,
            labels,
            lines,
            second: HashMap::new(),
        })
    }

    /// The enabled banks of a database, as loaded by [`Store::load_enabled`].
    pub fn from_loaded(loaded: Vec<LoadedBank>, radius: Option<u32>) -> Result<Self, BankSetError> {
        let labels = loaded.iter().map(|l| l.bank.name().to_string()).collect();
        let banks = loaded
            .into_iter()
            .map(|l| {
                let rules = MatchRules::from(&l.bank);
                let items = l.entries.into_iter().map(|e| e.item().clone()).collect();
                (rules, items)
            })
            .collect();
        Self::new(banks, radius, labels, None)
    }

    /// Loads and indexes every enabled bank of the store, with the second hashes on file.
    pub async fn load(store: &Store, radius: Option<u32>) -> Result<Self, BankSetError> {
        let loaded = store.load_enabled(None).await?;
        let mut set = Self::from_loaded(loaded, radius)?;
        set.attach_second_hashes(&store.second_hashes().await?)?;
        Ok(set)
    }

    /// Attaches second hashes to the PDQ entries they name (bank name and value). A row for a
    /// bank that is not loaded (disabled) or a value that is no live entry is skipped: the
    /// entry it was recorded for is not matched now. An unreadable hash is an error (the
    /// schema keeps its length, not its digits).
    pub fn attach_second_hashes(&mut self, rows: &[SecondHashRow]) -> Result<(), BankSetError> {
        // Indexed by the rows (usually far fewer than the entries), so a large bank costs one
        // lookup per entry and no allocation. A value that is no PDQ hash names no entry.
        let wanted: HashMap<(&str, hashguard_pdq::Hash256), &SecondHashRow> = rows
            .iter()
            .filter_map(|row| Some(((row.bank.as_str(), row.value.parse().ok()?), row)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut found = HashMap::new();
        for (b, (_, items)) in self.matcher.banks().iter().enumerate() {
            for (i, item) in items.iter().enumerate() {
                let Signal::Pdq(h) = item.value() else {
                    continue;
                };
                let Some(row) = wanted.get(&(self.label(b), *h)) else {
                    continue;
                };
                let hash = SecondHash::from_hex(&row.second).map_err(|e| {
                    BankSetError::SecondHash(format!("bank {} value {}: {e}", row.bank, row.value))
                })?;
                found.insert((b, i), hash);
            }
        }
        self.second.extend(found);
        Ok(())
    }

    /// The second hash on file for item `item` of bank `bank`, if any.
    pub fn second_hash(&self, bank: usize, item: usize) -> Option<SecondHash> {
        self.second.get(&(bank, item)).copied()
    }

    /// One list file as a block bank of its signal type, at the type's default threshold
    /// unless `radius` is given; `label` names it in matches, `lines` gives each item's line.
    pub fn from_list(
        signal_type: SignalType,
        items: Vec<ListItem>,
        lines: Vec<usize>,
        label: String,
        radius: Option<u32>,
    ) -> Result<Self, BankSetError> {
        let rules = MatchRules {
            signal_type,
            kind: BankKind::Block,
            threshold: signal_type.default_threshold(),
            enabled: true,
        };
        Self::new(vec![(rules, items)], radius, vec![label], Some(lines))
    }

    /// Whether any enabled bank is a block bank (without one, nothing can match).
    pub fn has_block_bank(&self) -> bool {
        self.matcher
            .banks()
            .iter()
            .any(|(rules, _)| rules.enabled && rules.kind == BankKind::Block)
    }

    /// The signal type of the first bank (for a list file, its only bank).
    pub fn first_signal_type(&self) -> Option<SignalType> {
        self.matcher
            .banks()
            .first()
            .map(|(rules, _)| rules.signal_type)
    }

    /// The label of bank `bank`: its name, or the list file's path.
    pub fn label(&self, bank: usize) -> &str {
        self.labels.get(bank).map(String::as_str).unwrap_or("")
    }

    /// The list line of item `item` (list files only).
    pub fn list_line(&self, item: usize) -> Option<usize> {
        self.lines.as_ref().and_then(|l| l.get(item).copied())
    }

    /// How many items the list file has (0 for a database).
    pub fn list_len(&self) -> usize {
        self.lines.as_ref().map_or(0, Vec::len)
    }

    /// The item a hit names.
    pub fn item(&self, bank: usize, item: usize) -> Option<&ListItem> {
        self.matcher.banks().get(bank).and_then(|b| b.1.get(item))
    }

    /// The id a match names: the list's id for the entry, else the value (for a video, the
    /// SHA-256 of its `signal_str`, which is also the store's key for it).
    pub fn entry_id(item: &ListItem) -> String {
        match (item.source_id(), item.value()) {
            (Some(id), _) => id.as_str().to_string(),
            (None, Signal::Vpdq(v)) => format!("sha256:{}", v.sha256_hex()),
            (None, value) => value.to_string(),
        }
    }

    /// Looks up one value in every bank.
    pub fn lookup(&self, value: &Signal, scratch: &mut Scratch) -> Lookup {
        self.matcher.lookup_with(value, scratch)
    }

    /// Everything one hashed input matches (see the [module documentation](self)).
    pub fn match_media(
        &self,
        hashed: &Hashed,
        min_quality: u8,
        scratch: &mut Scratch,
    ) -> MediaMatches {
        let queries = Query::of(hashed, min_quality);
        let mut matched = self.lookup_all(queries, scratch);
        if let Hashed::Video { features, .. } = hashed {
            let (videos, allow) = self.match_video(features);
            if allow.is_empty() {
                matched.videos = videos;
            } else if !videos.is_empty() {
                matched.suppressed_by.extend(allow);
                matched.suppressed_by.sort_unstable();
                matched.suppressed_by.dedup();
            }
        }
        matched
    }

    /// Looks up every query and keeps, per bank entry, the closest reported match.
    fn lookup_all(&self, queries: Vec<Query>, scratch: &mut Scratch) -> MediaMatches {
        let mut best: BTreeMap<(usize, usize), (usize, Hit)> = BTreeMap::new();
        let mut suppressed_by = Vec::new();
        for (qi, q) in queries.iter().enumerate() {
            let lookup = self.matcher.lookup_with(&q.value, scratch);
            if lookup.suppressed() {
                suppressed_by.extend(lookup.allow.iter().map(|h| h.bank));
            }
            for hit in lookup.reported() {
                let slot = best.entry((hit.bank, hit.item)).or_insert((qi, *hit));
                if hit.distance < slot.1.distance {
                    *slot = (qi, *hit);
                }
            }
        }
        suppressed_by.sort_unstable();
        suppressed_by.dedup();
        let mut reported: Vec<(usize, Hit)> = best.into_values().collect();
        reported.sort_by_key(|(_, h)| (h.distance, h.bank, h.item));
        MediaMatches {
            queries,
            reported,
            videos: Vec::new(),
            suppressed_by,
        }
    }

    /// Every vPDQ bank entry the video matches under the python-threatexchange rule: the block
    /// matches, and the allow banks that matched.
    fn match_video(&self, features: &[Feature]) -> (Vec<VideoHit>, Vec<usize>) {
        let mut block = Vec::new();
        let mut allow = Vec::new();
        for (bank, kind, index) in &self.videos {
            for m in index.matches(features, MatchRule::ThreatExchange) {
                let Some(&item) = index.id(m.entry) else {
                    continue;
                };
                match kind {
                    BankKind::Block => block.push(VideoHit {
                        bank: *bank,
                        item,
                        query_percent: m.query_percent,
                        compared_percent: m.compared_percent,
                    }),
                    BankKind::Allow => allow.push(*bank),
                }
            }
        }
        (block, allow)
    }
}

#[cfg(test)]
mod tests {
    use hashguard_hashing::Digests;
    use hashguard_hashlist::Text;
    use hashguard_pdq::{DihedralHashes, Hash256, PdqOutput};

    use super::*;

    fn hash(seed: u64) -> Hash256 {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut word = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        Hash256::from_words([word(), word(), word(), word()])
    }

    fn flipped(h: Hash256, bits: usize) -> Hash256 {
        (0..bits).fold(h, |h, b| h.with_bit_flipped(b * 7))
    }

    fn pdq_item(h: Hash256, id: Option<&str>) -> ListItem {
        ListItem::new(Signal::Pdq(h), None)
            .expect("item")
            .with_source_id(id.map(|i| Text::new(i).expect("id")))
    }

    fn rules(signal_type: SignalType, kind: BankKind) -> MatchRules {
        MatchRules {
            signal_type,
            kind,
            threshold: signal_type.default_threshold(),
            enabled: true,
        }
    }

    fn image(h: Hash256, quality: u8, dihedral: Option<DihedralHashes>) -> Hashed {
        Hashed::Image {
            hash: PdqOutput { hash: h, quality },
            floats: None,
            dihedral: dihedral.map(Box::new),
            digests: None,
        }
    }

    /// Eight unrelated hashes, with `rot90` and `flipx` chosen by the caller.
    fn dihedral(original: Hash256, rot90: Hash256, flipx: Hash256) -> DihedralHashes {
        DihedralHashes {
            quality: 90,
            original,
            rot90,
            rot180: hash(101),
            rot270: hash(102),
            flipx,
            flipy: hash(103),
            flipplus1: hash(104),
            flipminus1: hash(105),
        }
    }

    #[test]
    fn labels_and_lines_must_match_the_banks() {
        let bank = (
            rules(SignalType::Pdq, BankKind::Block),
            vec![pdq_item(hash(1), None)],
        );
        assert!(matches!(
            BankSet::new(vec![bank.clone()], None, vec![], None),
            Err(BankSetError::Shape(_))
        ));
        assert!(matches!(
            BankSet::new(vec![bank], None, vec!["b".into()], Some(vec![1, 2])),
            Err(BankSetError::Shape(_))
        ));
    }

    #[test]
    fn an_image_matches_through_its_closest_dihedral_variant() {
        let listed = hash(1);
        let set = BankSet::new(
            vec![(
                rules(SignalType::Pdq, BankKind::Block),
                vec![pdq_item(hash(2), None), pdq_item(listed, Some("entry-7"))],
            )],
            None,
            vec!["bank-a".into()],
            None,
        )
        .expect("bank set");
        let mut scratch = Scratch::default();
        // The image as it is is far from the entry; turned 90 degrees it is 3 bits away, and
        // mirrored 10 bits: the closer variant names the match.
        let far = hash(3);
        let turned = dihedral(far, flipped(listed, 3), flipped(listed, 10));
        let m = set.match_media(&image(far, 90, Some(turned)), 50, &mut scratch);
        assert!(m.any());
        assert_eq!(m.reported.len(), 1, "one match per bank entry");
        let (qi, hit) = m.reported[0];
        assert_eq!((hit.bank, hit.item, hit.distance), (0, 1, 3));
        assert_eq!(m.queries[qi].variant, Some("rot90"));
        assert_eq!(set.label(hit.bank), "bank-a");
        assert_eq!(
            BankSet::entry_id(set.item(hit.bank, hit.item).expect("item")),
            "entry-7"
        );
        // Without the variants, or below the quality floor, nothing matches.
        assert!(!set
            .match_media(&image(far, 90, None), 50, &mut scratch)
            .any());
        let low = set.match_media(&image(far, 40, Some(turned)), 50, &mut scratch);
        assert!(low.queries.is_empty() && !low.any());
    }

    #[test]
    fn an_allow_bank_suppresses_and_exact_banks_match_the_bytes() {
        let listed = hash(11);
        let digests = Digests {
            md5: [0x5a; 16],
            sha256: [0xa5; 32],
        };
        let md5_item = ListItem::new(Signal::Md5(digests.md5), None).expect("md5 item");
        let set = BankSet::new(
            vec![
                (
                    rules(SignalType::Pdq, BankKind::Block),
                    vec![pdq_item(listed, None)],
                ),
                (
                    rules(SignalType::Pdq, BankKind::Allow),
                    vec![pdq_item(flipped(listed, 2), None)],
                ),
                (rules(SignalType::Md5, BankKind::Block), vec![md5_item]),
            ],
            None,
            vec!["block".into(), "allow".into(), "md5".into()],
            None,
        )
        .expect("bank set");
        assert!(set.has_block_bank());
        let mut scratch = Scratch::default();
        let m = set.match_media(&image(flipped(listed, 1), 90, None), 50, &mut scratch);
        assert!(m.reported.is_empty(), "{:?}", m.reported);
        assert_eq!(m.suppressed_by, vec![1]);
        // The same bytes' MD5 matches the exact bank; the value names the entry.
        let with_digests = Hashed::Image {
            hash: PdqOutput {
                hash: hash(12),
                quality: 90,
            },
            floats: None,
            dihedral: None,
            digests: Some(digests),
        };
        let m = set.match_media(&with_digests, 50, &mut scratch);
        assert_eq!(m.reported.len(), 1);
        let (qi, hit) = m.reported[0];
        assert_eq!((hit.bank, hit.distance), (2, 0));
        assert_eq!(m.queries[qi].value, Signal::Md5(digests.md5));
        assert_eq!(
            BankSet::entry_id(set.item(2, hit.item).expect("item")),
            Signal::Md5(digests.md5).to_string()
        );
    }

    /// Second hashes attach to the entry of the bank and value they name; rows for another
    /// bank or a value that is not listed are skipped; an unreadable hash is an error that names
    /// the row. `entry_for_original` names the equal entry, else the nearest within the
    /// threshold, else none.
    #[test]
    fn second_hashes_attach_to_their_entries() {
        let (a, b) = (hash(1), hash(2));
        let mut set = BankSet::new(
            vec![(
                rules(SignalType::Pdq, BankKind::Block),
                vec![pdq_item(a, None), pdq_item(b, None)],
            )],
            None,
            vec!["bank-a".into()],
            None,
        )
        .expect("set");
        let row = |bank: &str, value: Hash256, second: &str| SecondHashRow {
            bank: bank.into(),
            value: value.to_string(),
            second: second.into(),
        };
        let good = "00112233445566778899aabbccddeeff01234567";
        set.attach_second_hashes(&[
            row("bank-a", b, good),
            row("other", a, good),
            row("bank-a", hash(3), good),
        ])
        .expect("attach");
        assert_eq!(set.second_hash(0, 0), None);
        assert_eq!(set.second_hash(0, 1), SecondHash::from_hex(good).ok());
        let err = set
            .attach_second_hashes(&[row("bank-a", a, "zz112233445566778899aabbccddeeff01234567")])
            .expect_err("unreadable");
        assert!(err.to_string().contains(&a.to_string()), "{err}");

        let entries: Vec<hashguard_hashlist::Entry> = [a, b]
            .iter()
            .map(|h| {
                hashguard_hashlist::Entry::new(
                    pdq_item(*h, None),
                    hashguard_hashlist::Version::FIRST,
                    None,
                )
                .expect("entry")
            })
            .collect();
        assert_eq!(
            entry_for_original(&entries, &a, 31),
            Some((a.to_string(), 0))
        );
        assert_eq!(
            entry_for_original(&entries, &flipped(b, 3), 31),
            Some((b.to_string(), 3))
        );
        let far = (0..40).fold(b, |h, bit| h.with_bit_flipped(bit));
        assert!(far.distance(&a) > 31);
        assert_eq!(entry_for_original(&entries, &far, 31), None);
    }
}

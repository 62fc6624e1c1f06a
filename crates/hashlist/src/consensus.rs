//! The consensus view: the hashes that enough independent organisations, in enough
//! jurisdictions, list. The private-matching table is built from this view only (guarantee G5).
//!
//! # Definition
//!
//! Inputs are banks with their entries and a signal type. The view is defined for PDQ (what the
//! private-matching table is built from) and for the exact types MD5 and SHA-256. **vPDQ never
//! enters it**: a video upload is checked through the PDQ hashes of its keyframes
//! (ARCHITECTURE.md: up to 16 keyframe vouchers per video), and a vPDQ entry, a whole video, is
//! matched on the server only. So the view of `vpdq` is empty, and vPDQ banks never count toward
//! the view of any other type.
//!
//! An entry is *eligible* when its bank
//! has that signal type, is enabled, is a [`BankKind::Block`] bank, and the entry is live (not a
//! tombstone). Allow banks are left out entirely: an allow-list lives on the server only and
//! never removes a key from the list clients get (ARCHITECTURE.md, "Allow-list on the server
//! only"), so it neither supports nor suppresses a consensus item.
//!
//! Two values are *near* when they are within Hamming distance `d` (PDQ) or equal (MD5,
//! SHA-256; `d` is ignored). For every distinct eligible value `v`, its *supporters* are the
//! eligible entries whose value is near `v` (including the entries of `v` itself). `v` is in the
//! view when its supporters come from at least `N` distinct organisations and at least `M`
//! distinct jurisdictions (each counted on its own: an organisation's banks in two jurisdictions
//! give one organisation and two jurisdictions). Organisations are compared case-insensitively,
//! so one supplier cannot count twice by spelling its name twice.
//!
//! There is no representative per cluster: every qualifying listed value is output as listed
//! (nothing is averaged or invented), sorted by value. Near-neighbourhood is not transitive, so
//! clusters are not well defined anyway; this per-value rule is, and it never outputs a hash that
//! no organisation listed. Each item carries the organisations and jurisdictions that support it
//! and the highest quality listed for exactly that value.

use std::collections::{BTreeMap, HashMap};

use hashguard_index::{FrozenIndex, Scratch};

use crate::bank::{Bank, BankKind, Jurisdiction};
use crate::entry::Entry;
use crate::signal::{Quality, Signal, SignalType};

/// The consensus rule's parameters: at least `N` organisations in at least `M` jurisdictions,
/// near meaning within distance `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusParams {
    min_organisations: usize,
    min_jurisdictions: usize,
    max_distance: u32,
}

impl Default for ConsensusParams {
    /// N = 2, M = 2, d = 10.
    fn default() -> Self {
        ConsensusParams {
            min_organisations: 2,
            min_jurisdictions: 2,
            max_distance: 10,
        }
    }
}

/// Invalid consensus parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("consensus needs N >= 1, M >= 1 and d <= 256 (got N={n}, M={m}, d={d})")]
pub struct ConsensusParamsError {
    /// The refused N.
    pub n: usize,
    /// The refused M.
    pub m: usize,
    /// The refused d.
    pub d: u32,
}

impl ConsensusParams {
    /// Parameters; refuses N = 0, M = 0 and d > 256.
    pub fn new(
        min_organisations: usize,
        min_jurisdictions: usize,
        max_distance: u32,
    ) -> Result<Self, ConsensusParamsError> {
        if min_organisations == 0 || min_jurisdictions == 0 || max_distance > 256 {
            return Err(ConsensusParamsError {
                n: min_organisations,
                m: min_jurisdictions,
                d: max_distance,
            });
        }
        Ok(ConsensusParams {
            min_organisations,
            min_jurisdictions,
            max_distance,
        })
    }
    /// N.
    pub fn min_organisations(&self) -> usize {
        self.min_organisations
    }
    /// M.
    pub fn min_jurisdictions(&self) -> usize {
        self.min_jurisdictions
    }
    /// d.
    pub fn max_distance(&self) -> u32 {
        self.max_distance
    }
}

/// A bank and its entries (live and tombstones), as loaded from a store.
#[derive(Debug, Clone, Copy)]
pub struct BankEntries<'a> {
    /// The bank.
    pub bank: &'a Bank,
    /// Its entries.
    pub entries: &'a [Entry],
}

/// One value of the consensus view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusItem {
    /// The value, as listed.
    pub value: Signal,
    /// The highest quality listed for exactly this value, if any.
    pub quality: Option<Quality>,
    /// The supporting organisations, lowercase, sorted.
    pub organisations: Vec<String>,
    /// The supporting jurisdictions, sorted.
    pub jurisdictions: Vec<Jurisdiction>,
}

/// The distinct eligible values with what supports each exactly.
struct Eligible {
    values: Vec<Signal>,
    quality: Vec<Option<Quality>>,
    /// Per value: (organisation id, jurisdiction) of each entry with exactly this value.
    own: Vec<Vec<(u32, Jurisdiction)>>,
    organisations: Vec<String>,
}

fn eligible(signal_type: SignalType, banks: &[BankEntries<'_>]) -> Eligible {
    let mut org_ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut index: HashMap<Signal, usize> = HashMap::new();
    let mut e = Eligible {
        values: Vec::new(),
        quality: Vec::new(),
        own: Vec::new(),
        organisations: Vec::new(),
    };
    if signal_type == SignalType::Vpdq {
        // vPDQ is left out of the consensus view (see the module documentation).
        return e;
    }
    for b in banks {
        let bank = b.bank;
        if bank.signal_type() != signal_type || !bank.enabled() || bank.kind() != BankKind::Block {
            continue;
        }
        let key = bank.organisation().as_str().to_lowercase();
        let next = org_ids.len() as u32;
        let org = *org_ids.entry(key.clone()).or_insert_with(|| {
            e.organisations.push(key);
            next
        });
        for entry in b.entries.iter().filter(|x| x.is_live()) {
            let v = entry.value().clone();
            if v.signal_type() != signal_type {
                continue;
            }
            let i = *index.entry(v.clone()).or_insert_with(|| {
                e.values.push(v);
                e.quality.push(None);
                e.own.push(Vec::new());
                e.values.len() - 1
            });
            e.own[i].push((org, bank.jurisdiction()));
            e.quality[i] = e.quality[i].max(entry.item().quality());
        }
    }
    e
}

fn near(a: &Signal, b: &Signal, d: u32) -> bool {
    match (a, b) {
        (Signal::Pdq(x), Signal::Pdq(y)) => x.distance(y) <= d,
        _ => a == b,
    }
}

/// Decides one value from the supporters of its neighbours (`neighbours` includes itself).
fn decide(
    e: &Eligible,
    i: usize,
    neighbours: &[usize],
    params: &ConsensusParams,
) -> Option<ConsensusItem> {
    let mut orgs: Vec<u32> = Vec::new();
    let mut jurs: Vec<Jurisdiction> = Vec::new();
    for &j in neighbours {
        for &(o, jur) in &e.own[j] {
            orgs.push(o);
            jurs.push(jur);
        }
    }
    orgs.sort_unstable();
    orgs.dedup();
    jurs.sort_unstable();
    jurs.dedup();
    if orgs.len() < params.min_organisations || jurs.len() < params.min_jurisdictions {
        return None;
    }
    let mut organisations: Vec<String> = orgs
        .iter()
        .map(|&o| e.organisations[o as usize].clone())
        .collect();
    organisations.sort();
    Some(ConsensusItem {
        value: e.values[i].clone(),
        quality: e.quality[i],
        organisations,
        jurisdictions: jurs,
    })
}

/// The consensus view by its definition (see the module documentation), comparing every pair of
/// values: quadratic, the reference that [`consensus`] is tested against.
pub fn consensus_brute_force(
    signal_type: SignalType,
    banks: &[BankEntries<'_>],
    params: &ConsensusParams,
) -> Vec<ConsensusItem> {
    let e = eligible(signal_type, banks);
    let mut out: Vec<ConsensusItem> = (0..e.values.len())
        .filter_map(|i| {
            let n: Vec<usize> = (0..e.values.len())
                .filter(|&j| near(&e.values[i], &e.values[j], params.max_distance))
                .collect();
            decide(&e, i, &n, params)
        })
        .collect();
    out.sort_by(|a, b| a.value.cmp(&b.value));
    out
}

/// The consensus view (see the module documentation for the exact rule).
///
/// Exact types group equal values with a hash map. PDQ values go into a [`FrozenIndex`] (the
/// index crate's exact multi-index hashing), and each value's neighbours are one range search at
/// radius `d`: exact, so the result equals [`consensus_brute_force`], and close to linear in the
/// number of values at the field's small `d`, where comparing the bucket-mates of 16-bit words
/// (the previous method) grew with the square of the list.
///
/// ```
/// use hashguard_hashlist::*;
/// let bank = |name: &str, org: &str, j: &str| Bank::new(name.parse().unwrap(), org, j.parse().unwrap(),
///     SignalType::Pdq, BankKind::Block).unwrap();
/// let (a, b) = (bank("a", "Org A", "GB"), bank("b", "Org B", "US"));
/// let h = hashguard_pdq::Hash256::from_words([1, 2, 3, 4]);
/// let entry = |h: hashguard_pdq::Hash256| Entry::new(ListItem::new(Signal::Pdq(h), None).unwrap(), Version::FIRST, None).unwrap();
/// let ea = [entry(h)];
/// let eb = [entry(h.with_bit_flipped(7))]; // distance 1
/// let view = consensus(SignalType::Pdq,
///     &[BankEntries { bank: &a, entries: &ea }, BankEntries { bank: &b, entries: &eb }],
///     &ConsensusParams::default());
/// assert_eq!(view.len(), 2); // both listed values qualify
/// assert_eq!(view[0].organisations, ["org a", "org b"]);
/// ```
pub fn consensus(
    signal_type: SignalType,
    banks: &[BankEntries<'_>],
    params: &ConsensusParams,
) -> Vec<ConsensusItem> {
    let d = params.max_distance;
    let e = eligible(signal_type, banks);
    let mut out: Vec<ConsensusItem> = if signal_type != SignalType::Pdq {
        // Distinct values: a value's only neighbour is itself.
        (0..e.values.len())
            .filter_map(|i| decide(&e, i, &[i], params))
            .collect()
    } else {
        let codes: Vec<[u64; 4]> = e
            .values
            .iter()
            .map(|v| v.as_pdq().copied().unwrap_or_default().to_words())
            .collect();
        // Ids are positions; the build fails only beyond u32 positions.
        let Ok(index) = FrozenIndex::build(&codes, None, None) else {
            return consensus_brute_force(signal_type, banks, params);
        };
        let mut scratch = Scratch::new();
        let mut hits = Vec::new();
        let mut neighbours: Vec<usize> = Vec::new();
        let mut out = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            hits.clear();
            index.search_into(code, d, &mut scratch, &mut hits);
            neighbours.clear();
            neighbours.extend(hits.iter().map(|m| m.id as usize));
            if let Some(item) = decide(&e, i, &neighbours, params) {
                out.push(item);
            }
        }
        out
    };
    out.sort_by(|a, b| a.value.cmp(&b.value));
    out
}

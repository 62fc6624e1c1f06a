//! Table keys: the k-bit LSH key taken from fixed PDQ bit positions, the client's multi-probe set
//! over its weakest key bits, the server's separation pruning, and exact file-digest keys.

use std::collections::HashMap;

use hashguard_pdq::Hash256;
use subtle::{ConditionallySelectable, ConstantTimeGreater};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::params::Params;
use crate::suite::sha256;

/// Which key space a table holds. Part of every `build_id`, so the spaces never share a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// k-bit PDQ keys (k from the parameters).
    Pdq,
    /// SHA-256 digests of file bytes (tier 0, one probe per voucher).
    ExactSha256,
    /// MD5 digests of file bytes (tier 0, one probe per voucher).
    ExactMd5,
}

impl TableKind {
    /// Wire value.
    pub fn to_byte(self) -> u8 {
        match self {
            TableKind::Pdq => 1,
            TableKind::ExactSha256 => 2,
            TableKind::ExactMd5 => 3,
        }
    }
    /// Parses the wire value.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(TableKind::Pdq),
            2 => Some(TableKind::ExactSha256),
            3 => Some(TableKind::ExactMd5),
            _ => None,
        }
    }
    /// The hash-to-group DST of this key space.
    pub fn h2g_dst(self) -> &'static [u8] {
        match self {
            TableKind::Pdq => crate::suite::dst::KEY,
            TableKind::ExactSha256 | TableKind::ExactMd5 => crate::suite::dst::EXACT,
        }
    }
    /// Key length in bytes for this kind (`k` only matters for PDQ).
    pub fn key_len(self, k: u8) -> usize {
        match self {
            TableKind::Pdq => usize::from(k).div_ceil(8),
            TableKind::ExactSha256 => 32,
            TableKind::ExactMd5 => 16,
        }
    }
}

/// The bytes of one table key (κ), at most 32. Zeroized on drop: keys of the client's own
/// images are as sensitive as the images.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Zeroize, ZeroizeOnDrop)]
pub struct KeyBytes {
    len: u8,
    buf: [u8; 32],
}

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes(..)")
    }
}

impl KeyBytes {
    /// Wraps up to 32 bytes; `None` if longer.
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 32 {
            return None;
        }
        let mut buf = [0u8; 32];
        buf[..bytes.len()].copy_from_slice(bytes);
        Some(KeyBytes {
            len: u8::try_from(bytes.len()).ok()?,
            buf,
        })
    }
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
    /// The packed bytes of a k-bit PDQ key value (MSB-first, zero padded: protocol-review m9).
    /// Keys have at most 64 bits ([`Params`] bounds k); a larger `k` is taken as 64.
    pub fn from_pdq_key(value: u64, k: u8) -> Self {
        let k = k.min(64);
        let shifted = if k == 0 {
            0
        } else {
            value << (64 - u32::from(k))
        };
        let be = shifted.to_be_bytes();
        let len = k.div_ceil(8);
        let n = usize::from(len);
        let mut buf = [0u8; 32];
        buf[..n].copy_from_slice(&be[..n]);
        KeyBytes { len, buf }
    }
}

/// κ(y): the k key bits of a PDQ hash as an integer, `POS[0]` the most significant.
pub fn pdq_key(hash: &Hash256, params: &Params) -> u64 {
    let k = params.k();
    let words = hash.to_words();
    let mut v = 0u64;
    for &pos in params.key_positions() {
        let bit = (words[usize::from(pos) / 64] >> (pos % 64)) & 1;
        v = (v << 1) | bit;
    }
    debug_assert!(k == 64 || v >> k == 0);
    v
}

/// The client's multi-probe set: `κ₀ ⊕ e_F` for every subset F of the `w` key bits with the
/// smallest margins `|coefficient − median|`, `|F| ≤ f`, in canonical order (∅, then singletons,
/// then pairs, … by rank of weakness). Always exactly `Σ_{i≤f} C(w, i)` keys (the probes of
/// the image's own orientation; dihedral variants add theirs, `sender::all_probe_keys`).
///
/// The selection of the weakest bits is a sorting network of constant-time compare-and-swaps
/// (`subtle`), so no branch depends on the image's margins. Ties are broken by key-bit index.
///
/// ```
/// use hashguard_pdq::Hash256;
/// use hashguard_protocol::keys::{pdq_key, probe_keys};
/// use hashguard_protocol::params::{Params, Policy};
/// let p = Params::v1(Policy::Intervene);
/// let y: Hash256 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22".parse()?;
/// let mut margins = [10.0f32; 256];
/// margins[usize::from(p.key_positions()[5])] = 0.1; // key bit 5 is the weakest
/// let probes = probe_keys(&y, &margins, &p);
/// assert_eq!(probes.len(), 79);
/// assert_eq!(probes[0], pdq_key(&y, &p));
/// assert_eq!(probes[1], pdq_key(&y, &p) ^ (1 << (47 - 5)));
/// # Ok::<(), hashguard_pdq::ParseHashError>(())
/// ```
pub fn probe_keys(hash: &Hash256, margins: &[f32; 256], params: &Params) -> Zeroizing<Vec<u64>> {
    probe_keys_with_flips(hash, margins, params, params.f())
}

/// As [`probe_keys`] with at most `f` flips (`≤ w`; a dihedral variant uses
/// `params.dihedral_f()`): `Σ_{i≤f} C(w, i)` keys.
pub fn probe_keys_with_flips(
    hash: &Hash256,
    margins: &[f32; 256],
    params: &Params,
    f: u8,
) -> Zeroizing<Vec<u64>> {
    let k = usize::from(params.k());
    let kappa0 = Zeroizing::new(pdq_key(hash, params));
    // sort key = margin bits (non-negative floats order like their bit patterns) << 8 | key index
    let mut s: Zeroizing<Vec<u64>> = Zeroizing::new(
        params
            .key_positions()
            .iter()
            .enumerate()
            .map(|(i, &pos)| {
                let m = margins[usize::from(pos)].abs().to_bits();
                (u64::from(m) << 8) | i as u64
            })
            .collect(),
    );
    // Odd-even transposition sort: k rounds of data-independent compare-and-swap.
    for round in 0..k {
        let mut i = round % 2;
        while i + 1 < k {
            let (a, b) = s.split_at_mut(i + 1);
            let x = &mut a[i];
            let y = &mut b[0];
            let gt = x.ct_gt(y);
            u64::conditional_swap(x, y, gt);
            i += 2;
        }
    }
    let w = usize::from(params.w());
    let masks: Zeroizing<Vec<u64>> = Zeroizing::new(
        s[..w]
            .iter()
            .map(|&e| 1u64 << (k as u64 - 1 - (e & 0xff)))
            .collect(),
    );
    let f = usize::from(f.min(params.w()));
    let mut out = Zeroizing::new(Vec::with_capacity(
        crate::params::probe_count(params.w(), f as u8) as usize,
    ));
    // Enumerate subsets of size 0..=f in lexicographic order of ranks.
    let mut idx: Vec<usize> = Vec::with_capacity(f);
    for size in 0..=f {
        idx.clear();
        idx.extend(0..size);
        loop {
            let mut m = 0u64;
            for &j in &idx {
                m ^= masks[j];
            }
            out.push(*kappa0 ^ m);
            // next combination
            let mut pos = size;
            let mut advanced = false;
            while pos > 0 {
                pos -= 1;
                if idx[pos] < w - size + pos {
                    idx[pos] += 1;
                    for q in pos + 1..size {
                        idx[q] = idx[q - 1] + 1;
                    }
                    advanced = true;
                    break;
                }
            }
            if !advanced {
                break;
            }
        }
    }
    idx.zeroize();
    out
}

/// Result of [`prune_separated`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Keys kept, pairwise at Hamming distance ≥ sep, sorted ascending.
    pub kept: Vec<u64>,
    /// Keys removed because a kept key was within distance < sep.
    pub removed: Vec<u64>,
}

/// Greedy key separation (protocol.md 3.5 step 2): walk the distinct keys in canonical order
/// (ascending SHA-256 of the packed key) and drop any key within Hamming distance `< sep` of a
/// key already kept. With `sep ≥ 2f + 1` two probes of one voucher (≤ 2f apart) can never both
/// open on an honest table.
///
/// Near neighbours are found exactly with the pigeonhole principle (multi-index hashing over
/// disjoint chunks of the key, `KeptKeys`).
///
/// ```
/// use hashguard_protocol::keys::prune_separated;
/// let pr = prune_separated(&[0b0000, 0b0011, 0xff_ffff], 48, 5);
/// assert_eq!(pr.kept.len() + pr.removed.len(), 3);
/// assert_eq!(pr.removed.len(), 1); // 0b0000 and 0b0011 are 2 apart: one of them goes
/// ```
pub fn prune_separated(keys: &[u64], k: u8, sep: u8) -> Pruned {
    prune_separated_with_threads(keys, k, sep, 1)
}

/// [`prune_separated`] with the near-key lookups spread over up to `threads` threads
/// ([`separate_related_with_threads`]); the result does not depend on `threads`.
pub fn prune_separated_with_threads(keys: &[u64], k: u8, sep: u8, threads: usize) -> Pruned {
    prune_in_blocks(keys, k, sep, threads, walk_block(threads))
}

fn prune_in_blocks(keys: &[u64], k: u8, sep: u8, threads: usize, block: usize) -> Pruned {
    let order = walk_order(keys.iter().copied(), k);
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    separation_walk(&order, k, sep, threads, block, |v, near| {
        if near.is_empty() {
            kept.push(v);
            true
        } else {
            removed.push(v);
            false
        }
    });
    kept.sort_unstable();
    removed.sort_unstable();
    Pruned { kept, removed }
}

/// The distinct `keys` in the separation walk's canonical order: ascending SHA-256 of the
/// packed key, so the order is fixed by the keys alone and no party chooses it.
fn walk_order(keys: impl Iterator<Item = u64>, k: u8) -> Vec<u64> {
    let mut distinct: Vec<u64> = keys.collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut order: Vec<([u8; 32], u64)> = distinct
        .into_iter()
        .map(|v| (sha256(&[KeyBytes::from_pdq_key(v, k).as_bytes()]), v))
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, v)| v).collect()
}

/// Keys per block of a walk on several threads. Large enough that starting the threads costs
/// nothing measurable (about 600 blocks for 10M keys), small enough that the second index of a
/// block stays small.
const WALK_BLOCK: usize = 1 << 14;

/// The block length of a walk on `threads` threads: one block (the plain one-by-one walk) on
/// one thread.
fn walk_block(threads: usize) -> usize {
    if threads <= 1 {
        usize::MAX
    } else {
        WALK_BLOCK
    }
}

/// The separation walk of [`prune_separated`] and [`separate_related`]: visits `order`'s keys
/// one by one and calls `decide(v, near)` with the distinct keys already kept that are closer
/// than `sep` to `v` (in no particular order); `v` is kept when it returns true.
///
/// The walk goes in blocks of `block` keys. First the block's keys look up the keys kept before
/// the block, on up to `threads` threads (the lookups are 97 % of a walk's time at 10M keys,
/// docs/quality.md); then they are decided in order, each also looking up the keys kept earlier
/// in the same block in a second, small index. So every key sees exactly the kept keys that a
/// one-by-one walk shows it, whatever `threads` and `block` are.
fn separation_walk(
    order: &[u64],
    k: u8,
    sep: u8,
    threads: usize,
    block: usize,
    mut decide: impl FnMut(u64, &[u64]) -> bool,
) {
    let mut before = KeptKeys::new(k, sep);
    let mut in_block = KeptKeys::new(k, sep);
    let mut kept_in_block = Vec::new();
    let mut near = Vec::new();
    let mut blocks = order.chunks(block.max(1)).peekable();
    while let Some(keys) = blocks.next() {
        let earlier = NearLists::find(&before, keys, threads);
        for (i, &v) in keys.iter().enumerate() {
            near.clear();
            near.extend_from_slice(earlier.get(i));
            near.extend(in_block.within(v));
            if decide(v, &near) {
                in_block.insert(v);
                kept_in_block.push(v);
            }
        }
        if blocks.peek().is_none() {
            // The last block (the only one on one thread): nobody looks its keys up again.
            break;
        }
        for &v in &kept_in_block {
            in_block.remove(v);
            before.insert(v);
        }
        kept_in_block.clear();
    }
}

/// The near kept keys of each key of a block, as one flat list.
struct NearLists {
    /// `near[start[i]..start[i + 1]]` belongs to the block's key i.
    start: Vec<usize>,
    near: Vec<u64>,
}

impl NearLists {
    /// Looks up every key of `keys` in `index`, on up to `threads` threads (contiguous parts
    /// of the block, joined in order).
    fn find(index: &KeptKeys, keys: &[u64], threads: usize) -> NearLists {
        let mut out = NearLists {
            start: Vec::with_capacity(keys.len() + 1),
            near: Vec::new(),
        };
        out.start.push(0);
        if index.is_empty() {
            out.start.resize(keys.len() + 1, 0);
            return out;
        }
        let part = keys.len().div_ceil(threads.clamp(1, keys.len().max(1)));
        let look =
            |part: &[u64]| -> Vec<Vec<u64>> { part.iter().map(|&v| index.within(v)).collect() };
        let found: Vec<Vec<Vec<u64>>> = if part >= keys.len() {
            vec![look(keys)]
        } else {
            std::thread::scope(|scope| {
                let workers: Vec<_> = keys
                    .chunks(part.max(1))
                    .map(|p| scope.spawn(move || look(p)))
                    .collect();
                workers
                    .into_iter()
                    .map(|w| match w.join() {
                        Ok(found) => found,
                        Err(panic) => std::panic::resume_unwind(panic),
                    })
                    .collect()
            })
        };
        for near in found.iter().flatten() {
            out.near.extend_from_slice(near);
            out.start.push(out.near.len());
        }
        out
    }

    /// The near keys of the block's key `i`.
    fn get(&self, i: usize) -> &[u64] {
        &self.near[self.start[i]..self.start[i + 1]]
    }
}

/// Two list entries are *related* (near-variants of one picture: colourways, frames, crops)
/// when their full PDQ hashes are within this distance: the field's match radius, and
/// protocol-review.md m2's definition.
pub const RELATED_DISTANCE: u32 = 31;

/// Most entries per key compared when deciding relatedness (bounds the work on a key that many
/// entries share; they are near-identical in practice).
const RELATED_SAMPLE: usize = 16;

/// Buckets of [`Separation::pruned_histogram`]: the PDQ distance (inclusive bounds) of a pruned
/// key's entry to the nearest entry of a kept key closer than `sep`.
pub const PRUNED_DISTANCE_BUCKETS: [(u32, u32); 6] =
    [(0, 15), (16, 31), (32, 63), (64, 95), (96, 127), (128, 256)];

/// Result of [`separate_related`]: the table build's key set and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Separation {
    /// Keys kept, sorted ascending. Keys of unrelated entries are pairwise ≥ sep apart; within
    /// `< sep` of any kept key there are at most `cluster_cap − 1` other kept keys, all of
    /// related entries.
    pub kept: Vec<u64>,
    /// Kept keys closer than sep to another kept key (members of related clusters).
    pub kept_close: usize,
    /// Keys removed whose entry is related (PDQ ≤ [`RELATED_DISTANCE`]) to a kept key's entry
    /// closer than sep: a near-variant that the cluster cap did not admit.
    pub pruned_related: Vec<u64>,
    /// Keys removed with no related kept key closer than sep: distinct pictures whose keys
    /// collide, which cannot open for their own copies (protocol-review.md m2).
    pub pruned_unrelated: Vec<u64>,
    /// Count of pruned keys per [`PRUNED_DISTANCE_BUCKETS`] bucket.
    pub pruned_histogram: [usize; 6],
}

impl Separation {
    /// All removed keys.
    pub fn removed(&self) -> usize {
        self.pruned_related.len() + self.pruned_unrelated.len()
    }
}

/// The table build's key selection (protocol.md 3.5 step 2 as revised for related entries):
/// the keys of `entries` (full PDQ hashes), walked in [`prune_separated`]'s canonical order. A
/// key with no kept key closer than `sep` is kept. A key closer than `sep` to kept keys is kept
/// too when every one of them belongs to a related entry (PDQ ≤ [`RELATED_DISTANCE`]) and
/// neither it nor any of them would then have more than `params.cluster_cap() − 1` kept keys
/// closer than `sep`; otherwise it is removed and counted as related or unrelated.
///
/// Why this bounds opened probes: the probes of one orientation lie within distance f of one
/// key, so any two listed keys they reach are ≤ 2f < sep apart; such keys form a clique of the
/// "closer than sep" graph, which the cap bounds by `cluster_cap`. With `orientations` probed
/// orientations an honest voucher opens at most `orientations · cluster_cap ≤ max_opens`
/// probes. With `cluster_cap = 1` (always under `silent`) this is exactly [`prune_separated`].
///
/// ```
/// use hashguard_pdq::Hash256;
/// use hashguard_protocol::keys::{pdq_key, separate_related};
/// use hashguard_protocol::params::{Params, Policy};
/// let p = Params::v1(Policy::Intervene);
/// let a = Hash256::from_words([0x1234_5678_9abc_def0, 0xffff_0000_ffff_0000, 7, 9]);
/// // A near-variant: one key bit and a few other bits differ (PDQ distance 4).
/// let b = a.with_bit_flipped(usize::from(p.key_positions()[3])).with_bit_flipped(200)
///     .with_bit_flipped(201).with_bit_flipped(202);
/// let s = separate_related(&[a, b], &p);
/// assert_eq!(s.kept.len(), 2); // both stay catchable under `intervene`
/// let strict = separate_related(&[a, b], &Params::v1(Policy::Silent));
/// assert_eq!((strict.kept.len(), strict.pruned_related.len()), (1, 1));
/// ```
pub fn separate_related(entries: &[Hash256], params: &Params) -> Separation {
    separate_related_with_threads(entries, params, 1)
}

/// [`separate_related`] with the near-key lookups, most of its time on a large list, spread
/// over up to `threads` threads (`hashguard table build --threads`). The result does not
/// depend on `threads`: the walk decides the keys one by one in the same order, and each sees
/// the same kept keys (`separation_walk`).
pub fn separate_related_with_threads(
    entries: &[Hash256],
    params: &Params,
    threads: usize,
) -> Separation {
    separate_in_blocks(entries, params, threads, walk_block(threads))
}

fn separate_in_blocks(
    entries: &[Hash256],
    params: &Params,
    threads: usize,
    block: usize,
) -> Separation {
    let k = params.k();
    let sep = params.sep();
    let cap = usize::from(params.cluster_cap().max(1));
    let mut by_key: HashMap<u64, Vec<Hash256>> = HashMap::new();
    for h in entries {
        let e = by_key.entry(pdq_key(h, params)).or_default();
        if e.len() < RELATED_SAMPLE && !e.contains(h) {
            e.push(*h);
        }
    }
    let order = walk_order(by_key.keys().copied(), k);
    // Kept keys closer than sep to each kept key.
    let mut close: HashMap<u64, usize> = HashMap::new();
    let mut out = Separation {
        kept: Vec::new(),
        kept_close: 0,
        pruned_related: Vec::new(),
        pruned_unrelated: Vec::new(),
        pruned_histogram: [0; 6],
    };
    let min_distance = |a: &[Hash256], b: &[Hash256]| -> u32 {
        a.iter()
            .flat_map(|x| b.iter().map(move |y| x.distance(y)))
            .min()
            .unwrap_or(256)
    };
    separation_walk(&order, k, sep, threads, block, |v, near| {
        let mine = by_key.get(&v).map(Vec::as_slice).unwrap_or(&[]);
        let dists: Vec<u32> = near
            .iter()
            .map(|u| min_distance(mine, by_key.get(u).map(Vec::as_slice).unwrap_or(&[])))
            .collect();
        let admit = near.is_empty()
            || (cap > 1
                && near.len() < cap
                && dists.iter().all(|&d| d <= RELATED_DISTANCE)
                && near
                    .iter()
                    .all(|u| close.get(u).copied().unwrap_or(0) + 1 < cap));
        if admit {
            for u in near {
                *close.entry(*u).or_default() += 1;
            }
            close.insert(v, near.len());
            out.kept.push(v);
        } else {
            let d = dists.iter().copied().min().unwrap_or(256);
            if let Some(i) = PRUNED_DISTANCE_BUCKETS
                .iter()
                .position(|&(lo, hi)| (lo..=hi).contains(&d))
            {
                out.pruned_histogram[i] += 1;
            }
            if d <= RELATED_DISTANCE {
                out.pruned_related.push(v);
            } else {
                out.pruned_unrelated.push(v);
            }
        }
        admit
    });
    out.kept_close = out
        .kept
        .iter()
        .filter(|v| close.get(v).copied().unwrap_or(0) > 0)
        .count();
    out.kept.sort_unstable();
    out.pruned_related.sort_unstable();
    out.pruned_unrelated.sort_unstable();
    out
}

/// The kept keys of a separation walk, indexed to answer "which kept keys are closer than sep
/// to this one" without scanning them all.
///
/// Multi-index hashing: the k key bits are cut into `c` disjoint chunks, and two keys at most
/// `d = sep − 1` apart differ in at most `r` bits of some chunk whenever `c · (r + 1) > d`
/// (pigeonhole). Every kept key is filed under each of its chunk values; a query looks up each
/// of its own chunk values and all values within `r` bits of it, then checks the full distance
/// exactly. With r = 1 and three 16-bit chunks (v1: k = 48, sep = 5) a bucket holds about
/// n / 65,536 keys, so the walk costs about 51 bucket reads of that size per key instead of
/// `sep` reads of n / 1,024 keys with exact-match chunks (docs/quality.md measures both on
/// lists of 1M and 10M entries).
struct KeptKeys {
    sep: u32,
    /// Chunk bit ranges `[lo, hi)` of the key value.
    bounds: Vec<(u32, u32)>,
    /// Differing bits searched within one chunk: 0 or 1.
    radius: u32,
    /// Per chunk, indexed by the chunk's value: the kept keys with that value.
    buckets: Vec<Vec<Vec<u64>>>,
    /// Keys indexed.
    len: usize,
}

/// Widest chunk: a chunk's buckets are a plain array of 2^width lists.
const MAX_CHUNK_BITS: u32 = 17;

impl KeptKeys {
    fn new(k: u8, sep: u8) -> Self {
        let d = u32::from(sep.max(1)) - 1;
        let k = u32::from(k.max(1));
        // Radius 1 when the distance allows it (fewer, wider chunks: small buckets), else exact
        // chunks: c = d / (r + 1) + 1 gives c · (r + 1) > d. Never a chunk wider than
        // MAX_CHUNK_BITS (more chunks keep the bound); never more chunks than bits: then every
        // chunk is one bit wide and radius 1 reads both of its values, so every kept key is
        // checked.
        let radius = u32::from(d >= 2);
        let chunks = (d / (radius + 1) + 1).clamp(k.div_ceil(MAX_CHUNK_BITS), k);
        let radius = if chunks * (radius + 1) > d { radius } else { 1 };
        let bounds: Vec<(u32, u32)> = (0..chunks)
            .map(|c| (c * k / chunks, (c + 1) * k / chunks))
            .collect();
        KeptKeys {
            sep: u32::from(sep),
            buckets: bounds
                .iter()
                .map(|&(lo, hi)| vec![Vec::new(); 1 << (hi - lo)])
                .collect(),
            bounds,
            radius,
            len: 0,
        }
    }

    /// The chunk's value, an index into its buckets (below 2^MAX_CHUNK_BITS).
    fn chunk(v: u64, (lo, hi): (u32, u32)) -> usize {
        // hi − lo ≤ MAX_CHUNK_BITS, so the value fits any usize.
        ((v >> lo) & ((1u64 << (hi - lo)) - 1)) as usize
    }

    fn insert(&mut self, v: u64) {
        for (lists, &b) in self.buckets.iter_mut().zip(&self.bounds) {
            lists[Self::chunk(v, b)].push(v);
        }
        self.len += 1;
    }

    /// Removes `v`, which was inserted once.
    fn remove(&mut self, v: u64) {
        for (lists, &b) in self.buckets.iter_mut().zip(&self.bounds) {
            let list = &mut lists[Self::chunk(v, b)];
            if let Some(at) = list.iter().position(|&u| u == v) {
                list.swap_remove(at);
            }
        }
        self.len = self.len.saturating_sub(1);
    }

    /// Whether no key is indexed.
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The distinct kept keys closer than sep to `v`.
    fn within(&self, v: u64) -> Vec<u64> {
        let mut near = Vec::new();
        for (lists, &b) in self.buckets.iter().zip(&self.bounds) {
            let x = Self::chunk(v, b);
            let width = b.1 - b.0;
            let flips = if self.radius >= 1 { width } else { 0 };
            // The chunk's own value, then (radius 1) each value one bit away. A key within sep
            // shows up under every chunk it shares, so it is taken once.
            for value in std::iter::once(x).chain((0..flips).map(|i| x ^ (1 << i))) {
                for &u in &lists[value] {
                    if (u ^ v).count_ones() < self.sep && !near.contains(&u) {
                        near.push(u);
                    }
                }
            }
        }
        near
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Policy;

    #[test]
    fn key_packing_is_msb_first() {
        let kb = KeyBytes::from_pdq_key(1, 48);
        assert_eq!(kb.as_bytes(), &[0, 0, 0, 0, 0, 1]);
        let kb = KeyBytes::from_pdq_key(1, 51);
        // 51 bits → 7 bytes, value shifted to the top: the last used bit is bit 5 of byte 6.
        assert_eq!(kb.as_bytes(), &[0, 0, 0, 0, 0, 0, 0b0010_0000]);
        let p = Params::v1(Policy::Intervene);
        let mut h = Hash256::ZERO;
        h.set_bit(usize::from(p.key_positions()[0]), true);
        assert_eq!(pdq_key(&h, &p), 1u64 << 47);
    }

    #[test]
    fn probe_keys_flip_the_weakest_bits() {
        let p = Params::v1(Policy::Intervene);
        let h = Hash256::from_words([0x1234_5678_9abc_def0, 0xffff_0000_ffff_0000, 7, 9]);
        let mut margins = [100.0f32; 256];
        // Make key bits 3 and 40 the two weakest.
        margins[usize::from(p.key_positions()[40])] = 0.5;
        margins[usize::from(p.key_positions()[3])] = 0.25;
        let probes = probe_keys(&h, &margins, &p);
        assert_eq!(probes.len(), 79);
        let k0 = pdq_key(&h, &p);
        assert_eq!(probes[0], k0);
        assert_eq!(probes[1], k0 ^ (1 << (47 - 3)));
        assert_eq!(probes[2], k0 ^ (1 << (47 - 40)));
        let mut d: Vec<u64> = probes.to_vec();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), 79, "probes are distinct");
        assert!(probes.iter().all(|&q| (q ^ k0).count_ones() <= 2));
        assert!(probes.contains(&(k0 ^ (1 << (47 - 3)) ^ (1 << (47 - 40)))));
    }

    /// The separation walks trust `KeptKeys` to find every kept key closer than sep; checked
    /// against a full scan on clustered keys (many pairs at every distance up to sep and
    /// beyond) for the v1 and lite settings and for widths and separations that exercise each
    /// way of cutting the key (exact chunks, radius 1, clamped chunk counts).
    #[test]
    fn the_kept_key_index_finds_exactly_the_keys_closer_than_sep() {
        use rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        for (k, sep) in [
            (48u8, 5u8),
            (48, 3),
            (51, 5),
            (48, 7),
            (48, 2),
            (48, 1),
            (64, 5),
            (64, 9),
            (16, 5),
            (4, 5),
            (3, 9),
            (8, 6),
            (1, 2),
            (2, 3),
            (1, 1),
        ] {
            let mask = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
            let bases: Vec<u64> = (0..12).map(|_| rng.next_u64() & mask).collect();
            let keys: Vec<u64> = (0..400)
                .map(|i| {
                    let mut v = bases[i % bases.len()];
                    for _ in 0..rng.next_u64() % (u64::from(sep) + 3) {
                        v ^= 1u64 << (rng.next_u64() % u64::from(k));
                    }
                    v
                })
                .collect();
            let mut index = KeptKeys::new(k, sep);
            let mut kept = Vec::new();
            for (i, &v) in keys.iter().enumerate() {
                let mut expect: Vec<u64> = kept
                    .iter()
                    .copied()
                    .filter(|&u: &u64| (u ^ v).count_ones() < u32::from(sep))
                    .collect();
                expect.sort_unstable();
                expect.dedup();
                let mut got = index.within(v);
                got.sort_unstable();
                assert_eq!(got, expect, "k {k} sep {sep} key {i}");
                if i % 2 == 0 {
                    index.insert(v);
                    kept.push(v);
                }
            }
        }
    }

    /// The walk in blocks on several threads decides like the one-by-one walk: the same
    /// `Separation` for clustered entries (near-variants within 31 and unrelated entries whose
    /// keys collide) at every thread count and block length, including blocks of one key and
    /// blocks shorter than a cluster; and `prune_separated` keeps exactly what a walk that
    /// scans every kept key keeps.
    #[test]
    fn the_walk_in_blocks_and_threads_decides_like_the_one_by_one_walk() {
        use rand_core::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
        for policy in [Policy::Intervene, Policy::Silent] {
            let params = Params::v1(policy);
            let positions = params.key_positions().to_vec();
            let bases: Vec<Hash256> = (0..40)
                .map(|_| {
                    Hash256::from_words([
                        rng.next_u64(),
                        rng.next_u64(),
                        rng.next_u64(),
                        rng.next_u64(),
                    ])
                })
                .collect();
            // Entries near a base: up to 4 key bits flipped (keys closer than sep), and either
            // a few other bits (related, PDQ <= 31) or many (unrelated).
            let entries: Vec<Hash256> = (0..1500)
                .map(|i| {
                    let mut h = bases[i % bases.len()];
                    for _ in 0..rng.next_u64() % 5 {
                        let at = positions[(rng.next_u64() % 48) as usize];
                        h = h.with_bit_flipped(usize::from(at));
                    }
                    let others = if rng.next_u64() % 2 == 0 { 6 } else { 60 };
                    for _ in 0..rng.next_u64() % others {
                        h = h.with_bit_flipped((rng.next_u64() % 256) as usize);
                    }
                    h
                })
                .collect();
            let one_by_one = separate_related(&entries, &params);
            assert!(one_by_one.removed() > 100 && one_by_one.kept.len() > 40);
            if policy == Policy::Intervene {
                assert!(one_by_one.kept_close > 0 && !one_by_one.pruned_related.is_empty());
            }
            for (threads, block) in [(1, 1), (1, 7), (2, 1), (2, 7), (3, 64), (2, WALK_BLOCK)] {
                assert_eq!(
                    separate_in_blocks(&entries, &params, threads, block),
                    one_by_one,
                    "{policy:?}, {threads} threads, blocks of {block}"
                );
            }
            assert_eq!(
                separate_related_with_threads(&entries, &params, 2),
                one_by_one
            );

            let keys: Vec<u64> = entries.iter().map(|h| pdq_key(h, &params)).collect();
            let mut scanned: Vec<u64> = Vec::new();
            for v in walk_order(keys.iter().copied(), 48) {
                if scanned.iter().all(|&u| (u ^ v).count_ones() >= 5) {
                    scanned.push(v);
                }
            }
            scanned.sort_unstable();
            for (threads, block) in [(1, usize::MAX), (2, 1), (2, 7), (3, 64)] {
                assert_eq!(prune_in_blocks(&keys, 48, 5, threads, block).kept, scanned);
            }
        }
    }

    #[test]
    fn pruning_enforces_separation_exactly() {
        let keys = [0u64, 1, 3, 0b1111, 0b11111, 1 << 40, (1 << 40) | 0b1111];
        let pr = prune_separated(&keys, 48, 5);
        for (i, a) in pr.kept.iter().enumerate() {
            for b in &pr.kept[i + 1..] {
                assert!((a ^ b).count_ones() >= 5);
            }
        }
        for r in &pr.removed {
            assert!(pr.kept.iter().any(|k| (k ^ r).count_ones() < 5));
        }
        assert_eq!(pr.kept.len() + pr.removed.len(), keys.len());
    }
}

//! The 3-wise binary-fuse OKVS (protocol.md R/E2 steps 5-6): layout, position hashing and the
//! deterministic peeling solver, independent of the group so it can be tested on its own.
//!
//! Every key maps to three positions, one in each of three consecutive segments, so the three are
//! always distinct. Positions come from SHA-512 keyed by the build id and the OKVS seed, so no
//! list entry can be chosen to break peeling and two builds place keys independently.

use sha2::{Digest, Sha512};

use crate::keys::KeyBytes;
use crate::suite::dst;

/// Largest segment length (Graf & Lemire's cap).
pub const MAX_SEGMENT_LENGTH: u32 = 1 << 18;

/// The size and segment structure of one shard's OKVS, a pure function of its key count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Segment length (a power of two).
    pub segment_length: u32,
    /// Number of segments a key's first position may start in.
    pub segment_count: u32,
    /// Table length m = (segment_count + 2) · segment_length.
    pub m: u32,
}

impl Layout {
    /// `binary_fuse_size(n)`: the reference sizing of Graf & Lemire's 3-wise binary fuse filter
    /// (`xor_singleheader/binaryfusefilter.h`), with n < 2 sized as n = 2 so that empty and
    /// one-key shards still have a well-defined, non-empty table.
    ///
    /// Returns `None` if the table would not fit in `u32` positions.
    ///
    /// ```
    /// use hashguard_protocol::okvs::Layout;
    /// let l = Layout::for_keys(1_000_000).expect("fits");
    /// assert_eq!(l.segment_length, 1 << 13);
    /// assert_eq!(l.m, (l.segment_count + 2) * l.segment_length);
    /// assert!(f64::from(l.m) < 1.14e6); // ≈ 1.125 n at a million keys
    /// ```
    pub fn for_keys(n: usize) -> Option<Layout> {
        let n_eff = n.max(2) as f64;
        let seg_exp = (n_eff.ln() / 3.33f64.ln() + 2.25).floor();
        let mut seg: u64 = 1u64 << (seg_exp.clamp(0.0, 62.0) as u32);
        if seg > u64::from(MAX_SEGMENT_LENGTH) {
            seg = u64::from(MAX_SEGMENT_LENGTH);
        }
        let size_factor = f64::max(1.125, 0.875 + 0.25 * 1e6f64.ln() / n_eff.ln());
        let capacity = (n_eff * size_factor).round() as u64;
        let init_segment_count = capacity.div_ceil(seg).saturating_sub(2);
        let array_len = (init_segment_count + 2) * seg;
        let mut segment_count = array_len.div_ceil(seg);
        segment_count = if segment_count <= 2 {
            1
        } else {
            segment_count - 2
        };
        let m = (segment_count + 2) * seg;
        Some(Layout {
            segment_length: u32::try_from(seg).ok()?,
            segment_count: u32::try_from(segment_count).ok()?,
            m: u32::try_from(m).ok()?,
        })
    }

    /// The three positions of `key` under `build_id` and `okvs_seed`.
    ///
    /// Client note (protocol-review.md m8): these indexes depend on the client's key, so an
    /// observer of the client device's cache could learn bits of it; this is the one documented
    /// exception to "no secret-dependent table indexes".
    pub fn positions(
        &self,
        build_id: &[u8; 32],
        okvs_seed: &[u8; 32],
        key: &KeyBytes,
    ) -> [usize; 3] {
        let mut h = Sha512::new();
        h.update(dst::POS);
        h.update(build_id);
        h.update(okvs_seed);
        h.update(key.as_bytes());
        let d: [u8; 64] = h.finalize().into();
        let le = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let seg = u64::from(self.segment_length);
        let s0 = le(0) % u64::from(self.segment_count.max(1));
        let mut out = [0usize; 3];
        for (i, o) in out.iter_mut().enumerate() {
            let off = le(8 + 8 * i) & (seg - 1);
            *o = ((s0 + i as u64) * seg + off) as usize;
        }
        out
    }
}

/// One step of the peeling order: key `key_index` is solved at position `free`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeelStep {
    /// Index into the (sorted) key slice.
    pub key_index: u32,
    /// The key's free position.
    pub free: u32,
}

/// Peels the 3-hypergraph of `keys` (which must be sorted ascending and distinct), fully
/// deterministically: degree-1 positions are queued FIFO, seeded in increasing index order.
/// Returns the peel order, or `None` if the hypergraph has a 2-core (retry with a new seed).
pub fn peel(
    layout: &Layout,
    build_id: &[u8; 32],
    okvs_seed: &[u8; 32],
    keys: &[KeyBytes],
) -> Option<Vec<PeelStep>> {
    let m = layout.m as usize;
    let mut count = vec![0u32; m];
    let mut xor = vec![0u32; m];
    let pos: Vec<[usize; 3]> = keys
        .iter()
        .map(|k| layout.positions(build_id, okvs_seed, k))
        .collect();
    for (i, p) in pos.iter().enumerate() {
        for &j in p {
            count[j] += 1;
            xor[j] ^= i as u32;
        }
    }
    let mut queue: std::collections::VecDeque<usize> = (0..m).filter(|&j| count[j] == 1).collect();
    let mut order = Vec::with_capacity(keys.len());
    while let Some(j) = queue.pop_front() {
        if count[j] != 1 {
            continue;
        }
        let i = xor[j] as usize;
        order.push(PeelStep {
            key_index: i as u32,
            free: j as u32,
        });
        for &q in &pos[i] {
            count[q] -= 1;
            xor[q] ^= i as u32;
            if count[q] == 1 {
                queue.push_back(q);
            }
        }
    }
    if order.len() == keys.len() {
        Some(order)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_reference_formulas() {
        // n = 1e6: segment 2^⌊ln 1e6/ln 3.33 + 2.25⌋ = 2^13; factor 1.125.
        let l = Layout::for_keys(1_000_000).expect("fits");
        assert_eq!(l.segment_length, 8192);
        assert!(f64::from(l.m) / 1e6 > 1.12 && f64::from(l.m) / 1e6 < 1.14);
        for n in [0usize, 1, 2, 3, 10, 100, 1000, 15_625] {
            let l = Layout::for_keys(n).expect("fits");
            assert_eq!(l.m, (l.segment_count + 2) * l.segment_length);
            assert!(l.m as usize >= n);
            assert!(l.segment_length.is_power_of_two());
        }
    }

    #[test]
    fn positions_are_in_three_consecutive_segments() {
        let l = Layout::for_keys(500).expect("fits");
        for i in 0u32..200 {
            let k = KeyBytes::new(&i.to_le_bytes()).expect("short");
            let p = l.positions(&[1; 32], &[2; 32], &k);
            let s: Vec<usize> = p.iter().map(|&x| x / l.segment_length as usize).collect();
            assert_eq!(s[1], s[0] + 1);
            assert_eq!(s[2], s[0] + 2);
            assert!(p.iter().all(|&x| x < l.m as usize));
        }
    }

    #[test]
    fn peeling_solves_typical_sets() {
        for n in [1usize, 2, 5, 50, 2000] {
            let mut keys: Vec<KeyBytes> = (0..n as u64)
                .map(|i| KeyBytes::new(&(i * 7919).to_be_bytes()).expect("short"))
                .collect();
            keys.sort();
            let l = Layout::for_keys(n).expect("fits");
            let ok = (0u8..8).any(|a| peel(&l, &[3; 32], &[a; 32], &keys).is_some());
            assert!(ok, "n = {n}");
        }
    }
}

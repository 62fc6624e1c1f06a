//! All `unsafe` code of the crate lives here: run-time dispatched SIMD kernels
//! (popcount verification, posting filters, linear scans) and the memory map.
//!
//! Every kernel has a safe entry point taking a [`Level`]; a `Level` can only be
//! obtained from [`Level::detect`] (or [`Level::portable`], which needs no CPU
//! feature), so holding one proves the CPU supports the instructions it selects.

use crate::layout::MAX_SLOTS;
use crate::Code;

/// Which instruction set the kernels use, chosen once by CPU feature detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// x86-64 with AVX-512F + AVX-512 VPOPCNTDQ (+ POPCNT).
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// x86-64 with AVX2 (+ POPCNT).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// x86-64 with POPCNT only.
    #[cfg(target_arch = "x86_64")]
    Popcnt,
    /// Portable code (`count_ones`, hardware popcount wherever the target has it).
    Portable,
}

impl Level {
    /// Detects the best level the running CPU supports (cached after the first call).
    pub fn detect() -> Level {
        static LEVEL: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            let forced = std::env::var("HASHGUARD_INDEX_SIMD").ok();
            Self::detect_uncached(forced.as_deref())
        })
    }

    /// Detection honouring an optional cap ("portable", "popcnt", "avx2", "avx512"):
    /// a cap can only lower the level, never enable unsupported instructions.
    pub fn detect_uncached(cap: Option<&str>) -> Level {
        #[cfg(target_arch = "x86_64")]
        {
            let rank = match cap {
                Some("portable") => 0,
                Some("popcnt") => 1,
                Some("avx2") => 2,
                _ => 3,
            };
            let popcnt = std::arch::is_x86_feature_detected!("popcnt");
            let avx2 = popcnt && std::arch::is_x86_feature_detected!("avx2");
            let avx512 = avx2
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vpopcntdq");
            if rank >= 3 && avx512 {
                return Level(Kind::Avx512);
            }
            if rank >= 2 && avx2 {
                return Level(Kind::Avx2);
            }
            if rank >= 1 && popcnt {
                return Level(Kind::Popcnt);
            }
        }
        let _ = cap;
        Level(Kind::Portable)
    }

    /// A short name: "avx512", "avx2", "popcnt" or "portable".
    pub fn name(self) -> &'static str {
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kind::Popcnt => "popcnt",
            Kind::Portable => "portable",
        }
    }
}

/// Hamming distance of two codes.
#[inline(always)]
pub(crate) fn dist_body(a: &Code, b: &Code) -> u32 {
    (a[0] ^ b[0]).count_ones()
        + (a[1] ^ b[1]).count_ones()
        + (a[2] ^ b[2]).count_ones()
        + (a[3] ^ b[3]).count_ones()
}

/// How many candidates ahead the verification loop prefetches.
const PREFETCH_AHEAD: usize = 16;

#[inline(always)]
fn verify_body(codes: &[Code], cands: &[u32], q: &Code, r: u32, out: &mut Vec<(u32, u32)>) {
    let ahead = PREFETCH_AHEAD;
    for &p in cands.iter().take(ahead) {
        prefetch(codes, p as usize);
    }
    for (i, &p) in cands.iter().enumerate() {
        if let Some(&a) = cands.get(i + ahead) {
            prefetch(codes, a as usize);
        }
        if let Some(c) = codes.get(p as usize) {
            let d = dist_body(c, q);
            if d <= r {
                out.push((p, d));
            }
        }
    }
}

#[inline(always)]
fn scan_body(codes: &[Code], base: u32, q: &Code, r: u32, out: &mut Vec<(u32, u32)>) {
    for (i, c) in codes.iter().enumerate() {
        let d = dist_body(c, q);
        if d <= r {
            out.push((base.wrapping_add(i as u32), d));
        }
    }
}

#[inline(always)]
fn filter_body(postings: &[u32], qkey: u32, pos_bits: u32, maxd: u32, out: &mut Vec<u32>) {
    let mask = crate::layout::low_mask(pos_bits) as u32;
    let shift = pos_bits.min(31);
    let full = pos_bits >= 32;
    for &p in postings {
        let key = if full { 0 } else { p >> shift };
        if (key ^ qkey).count_ones() <= maxd {
            out.push(p & mask);
        }
    }
}

/// A query's bucket plan: `(slot, key radius left, start, end)` runs, in slot
/// order; slot 0 runs index `codes`, other slots' runs index `posts[slot]`.
pub(crate) struct Plan<'a> {
    pub buckets: &'a [(u32, u32, u32, u32)],
    pub posts: &'a [&'a [u32]; MAX_SLOTS],
    pub qkeys: &'a [u32; MAX_SLOTS],
    pub kbits: &'a [u32; MAX_SLOTS],
    pub pos_bits: u32,
    pub codes: &'a [Code],
    pub q: &'a Code,
    pub r: u32,
    pub ahead: usize,
}

#[inline(always)]
fn run_body(
    plan: &Plan<'_>,
    cands: &mut Vec<u32>,
    hits: &mut Vec<(u32, u32)>,
    mut filter: impl FnMut(&[u32], u32, u32, u32, &mut Vec<u32>),
    mut scan: impl FnMut(&[Code], u32, &Code, u32, &mut Vec<(u32, u32)>),
) -> u64 {
    let buckets = plan.buckets;
    let fetch = |i: usize| {
        if let Some(&(j, _, a, e)) = buckets.get(i) {
            if j == 0 {
                prefetch(plan.codes, a as usize);
                prefetch(plan.codes, a as usize + 2);
            } else {
                let p = plan.posts[j as usize % MAX_SLOTS];
                prefetch(p, a as usize);
                if e - a > 16 {
                    prefetch(p, a as usize + 16);
                }
            }
        }
    };
    for i in 0..plan.ahead {
        fetch(i);
    }
    let mut scanned = 0u64;
    for (i, &(j, left, a, e)) in buckets.iter().enumerate() {
        fetch(i + plan.ahead);
        scanned += u64::from(e.saturating_sub(a));
        let j = j as usize % MAX_SLOTS;
        if j == 0 {
            if let Some(cs) = plan.codes.get(a as usize..e as usize) {
                scan(cs, a, plan.q, plan.r, hits);
            }
        } else if let Some(ps) = plan.posts[j].get(a as usize..e as usize) {
            let maxd = if left >= plan.kbits[j] { 32 } else { left };
            filter(ps, plan.qkeys[j], plan.pos_bits, maxd, cands);
        }
    }
    scanned
}

/// Runs a bucket plan: slot-0 runs are verified in place into `hits`; posting
/// runs are key-filtered into `cands`. Returns the number of entries scanned.
pub(crate) fn run_plan(
    level: Level,
    plan: &Plan<'_>,
    cands: &mut Vec<u32>,
    hits: &mut Vec<(u32, u32)>,
) -> u64 {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512 => {
            // SAFETY: Avx512 is only constructed after detecting AVX-512F,
            // AVX-512 VPOPCNTDQ, AVX2 and POPCNT.
            unsafe { x86::run_avx512(plan, cands, hits) }
        }
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => {
            // SAFETY: Avx2 is only constructed after detecting AVX2 and POPCNT.
            unsafe { x86::run_avx2(plan, cands, hits) }
        }
        #[cfg(target_arch = "x86_64")]
        Kind::Popcnt => {
            // SAFETY: Popcnt is only constructed after detecting POPCNT.
            unsafe { x86::run_popcnt(plan, cands, hits) }
        }
        Kind::Portable => run_body(plan, cands, hits, filter_body, scan_body),
    }
}

/// Keeps the codes among `codes[cands[i]]` within distance `r` of `q`, pushing
/// `(position, distance)`. Positions out of range are skipped.
#[inline]
pub(crate) fn verify(
    level: Level,
    codes: &[Code],
    cands: &[u32],
    q: &Code,
    r: u32,
    out: &mut Vec<(u32, u32)>,
) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512 | Kind::Avx2 | Kind::Popcnt => {
            // SAFETY: these levels are only constructed after detecting POPCNT.
            unsafe { x86::verify_popcnt(codes, cands, q, r, out) }
        }
        Kind::Portable => verify_body(codes, cands, q, r, out),
    }
}

/// Linear scan: pushes `(base + i, distance)` for every `codes[i]` within `r` of `q`.
#[inline]
pub(crate) fn scan(
    level: Level,
    codes: &[Code],
    base: u32,
    q: &Code,
    r: u32,
    out: &mut Vec<(u32, u32)>,
) {
    match level.0 {
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512 => {
            // SAFETY: Avx512 is only constructed after detecting AVX-512F,
            // AVX-512 VPOPCNTDQ, AVX2 and POPCNT.
            unsafe { x86::scan_avx512(codes, base, q, r, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => {
            // SAFETY: Avx2 is only constructed after detecting AVX2 and POPCNT.
            unsafe { x86::scan_avx2(codes, base, q, r, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Kind::Popcnt => {
            // SAFETY: Popcnt is only constructed after detecting POPCNT.
            unsafe { x86::scan_popcnt(codes, base, q, r, out) }
        }
        Kind::Portable => scan_body(codes, base, q, r, out),
    }
}

/// Hints the CPU to fetch the cache line holding `data[i]` (no-op if out of range
/// or on targets without a prefetch instruction).
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = data.get(i) {
        // SAFETY: PREFETCHT0 is part of SSE (baseline on x86-64); it is a hint
        // that never faults, and the address is that of a live element.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                x as *const T as *const i8,
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, i);
}

/// Maps a file read-only.
pub(crate) fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the mapping is read-only and the crate never writes through it.
    // Another process truncating or rewriting the file while it is mapped is
    // outside Rust's model (documented on `FrozenIndex::open`); all reads of the
    // mapped bytes are bounds-checked slices, and the checksum is verified after
    // mapping.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{filter_body, run_body, scan_body, verify_body, Plan};
    use crate::Code;
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx512vpopcntdq,avx2,popcnt")]
    pub(super) unsafe fn run_avx512(
        plan: &Plan<'_>,
        cands: &mut Vec<u32>,
        hits: &mut Vec<(u32, u32)>,
    ) -> u64 {
        run_body(
            plan,
            cands,
            hits,
            // SAFETY: this function's own target features are the kernels'.
            |p, k, b, m, o| unsafe { filter_avx512(p, k, b, m, o) },
            // SAFETY: as above.
            |c, b, q, r, o| unsafe { scan_avx512(c, b, q, r, o) },
        )
    }

    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn run_avx2(
        plan: &Plan<'_>,
        cands: &mut Vec<u32>,
        hits: &mut Vec<(u32, u32)>,
    ) -> u64 {
        run_body(
            plan,
            cands,
            hits,
            filter_body,
            // SAFETY: this function's own target features are the kernel's.
            |c, b, q, r, o| unsafe { scan_avx2(c, b, q, r, o) },
        )
    }

    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn run_popcnt(
        plan: &Plan<'_>,
        cands: &mut Vec<u32>,
        hits: &mut Vec<(u32, u32)>,
    ) -> u64 {
        run_body(plan, cands, hits, filter_body, scan_body)
    }

    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn verify_popcnt(
        codes: &[Code],
        cands: &[u32],
        q: &Code,
        r: u32,
        out: &mut Vec<(u32, u32)>,
    ) {
        verify_body(codes, cands, q, r, out)
    }

    #[target_feature(enable = "popcnt")]
    pub(super) unsafe fn scan_popcnt(
        codes: &[Code],
        base: u32,
        q: &Code,
        r: u32,
        out: &mut Vec<(u32, u32)>,
    ) {
        scan_body(codes, base, q, r, out)
    }

    /// AVX-512: 16 postings per step, masked load for the tail, compress to a
    /// register and a full-width store into spare capacity.
    #[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
    pub(super) unsafe fn filter_avx512(
        postings: &[u32],
        qkey: u32,
        pos_bits: u32,
        maxd: u32,
        out: &mut Vec<u32>,
    ) {
        if pos_bits >= 32 {
            return filter_body(postings, qkey, pos_bits, maxd, out);
        }
        let n = postings.len();
        // Room for every posting plus one full vector store past the last kept one.
        out.reserve(n + 16);
        let shift = _mm_cvtsi32_si128(pos_bits as i32);
        let qk = _mm512_set1_epi32(qkey as i32);
        let md = _mm512_set1_epi32(maxd as i32);
        let pm = _mm512_set1_epi32(((1u64 << pos_bits) - 1) as u32 as i32);
        let mut len = out.len();
        let dst = out.as_mut_ptr();
        let src = postings.as_ptr();
        let mut i = 0usize;
        while i < n {
            let rem = n - i;
            let lm: __mmask16 = if rem >= 16 {
                0xffff
            } else {
                ((1u32 << rem) - 1) as u16
            };
            // SAFETY: lanes outside `lm` are not read (masked load does not fault
            // on masked-off lanes); lanes inside are < n. The store writes 16
            // lanes at `len`, and len + 16 <= old_len + n + 16 <= capacity.
            unsafe {
                let v = _mm512_maskz_loadu_epi32(lm, src.add(i) as *const i32);
                let k = _mm512_srl_epi32(v, shift);
                let pc = _mm512_popcnt_epi32(_mm512_xor_si512(k, qk));
                let m = _mm512_mask_cmple_epu32_mask(lm, pc, md);
                let pos = _mm512_maskz_compress_epi32(m, _mm512_and_si512(v, pm));
                _mm512_storeu_si512(dst.add(len) as *mut _, pos);
                len += m.count_ones() as usize;
            }
            i += 16;
        }
        // SAFETY: the first `len` elements were initialised (old elements, then
        // the kept lanes of each compressed store), and len <= capacity.
        unsafe { out.set_len(len) }
    }

    /// AVX-512: two codes per 512-bit vector, VPOPCNTQ, in-register reduction of
    /// the four 64-bit counts of each code.
    #[target_feature(enable = "avx512f,avx512vpopcntdq,popcnt")]
    pub(super) unsafe fn scan_avx512(
        codes: &[Code],
        base: u32,
        q: &Code,
        r: u32,
        out: &mut Vec<(u32, u32)>,
    ) {
        let pairs = codes.len() / 2;
        // SAFETY: `q` is 32 readable bytes.
        let qv = unsafe { _mm256_loadu_si256(q.as_ptr() as *const __m256i) };
        let qq = _mm512_inserti64x4(_mm512_castsi256_si512(qv), qv, 1);
        let rr = _mm512_set1_epi64(r as i64);
        let src = codes.as_ptr() as *const u64;
        let mut i = 0usize;
        while i + 4 <= pairs {
            // SAFETY: pairs i..i+4 cover codes 2i..2i+8 <= codes.len(); each code
            // is 32 bytes of u64s, read unaligned.
            let (m0, m1, m2, m3) = unsafe {
                let p = src.add(i * 8);
                (
                    pair_mask(_mm512_loadu_si512(p as *const _), qq, rr),
                    pair_mask(_mm512_loadu_si512(p.add(8) as *const _), qq, rr),
                    pair_mask(_mm512_loadu_si512(p.add(16) as *const _), qq, rr),
                    pair_mask(_mm512_loadu_si512(p.add(24) as *const _), qq, rr),
                )
            };
            if (m0 | m1 | m2 | m3) != 0 {
                for (k, m) in [m0, m1, m2, m3].into_iter().enumerate() {
                    if m != 0 {
                        let j = 2 * (i + k);
                        scan_body(&codes[j..j + 2], base.wrapping_add(j as u32), q, r, out);
                    }
                }
            }
            i += 4;
        }
        let j = 2 * i;
        scan_body(&codes[j..], base.wrapping_add(j as u32), q, r, out);
    }

    /// Which of two codes (one 512-bit vector) lie within `rr` of the query `qq`: bit 0 for
    /// the first, bit 4 for the second. A `#[target_feature]` function, so the compiler
    /// proves its callers enable the features (no `unsafe`, no comment to trust).
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    #[inline]
    fn pair_mask(v: __m512i, qq: __m512i, rr: __m512i) -> u8 {
        let p = _mm512_popcnt_epi64(_mm512_xor_si512(v, qq));
        // Swap 64-bit halves within each 128-bit lane, add; then swap 128-bit
        // lanes pairwise, add: lanes 0..4 hold code A's total, 4..8 code B's.
        let s = _mm512_add_epi64(p, _mm512_shuffle_epi32(p, _MM_PERM_BADC));
        let s = _mm512_add_epi64(s, _mm512_shuffle_i64x2(s, s, 0xB1));
        _mm512_cmple_epu64_mask(s, rr) & 0x11
    }

    /// Per-u64 popcounts of a 256-bit vector (nibble lookup, then byte sums). A
    /// `#[target_feature]` function: only callers that enable AVX2 can call it without
    /// `unsafe`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn count4(x: __m256i, lut: __m256i, low: __m256i, zero: __m256i) -> __m256i {
        let lo = _mm256_and_si256(x, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
        let c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
        _mm256_sad_epu8(c, zero)
    }

    /// AVX2: nibble-table popcount (Mula), four codes per step, transposed sums.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn scan_avx2(
        codes: &[Code],
        base: u32,
        q: &Code,
        r: u32,
        out: &mut Vec<(u32, u32)>,
    ) {
        let n = codes.len();
        let src = codes.as_ptr() as *const __m256i;
        // SAFETY: `q` is 32 readable bytes.
        let qv = unsafe { _mm256_loadu_si256(q.as_ptr() as *const __m256i) };
        let lut = _mm256_setr_epi8(
            0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2,
            3, 3, 4,
        );
        let low = _mm256_set1_epi8(0x0f);
        let zero = _mm256_setzero_si256();
        let lim = _mm256_set1_epi64x(r as i64 + 1);
        let cnt = |x: __m256i| count4(x, lut, low, zero);
        let mut i = 0usize;
        while i + 4 <= n {
            // SAFETY: codes i..i+4 are in bounds; each is 32 bytes, read unaligned.
            let (a, b, c, d) = unsafe {
                (
                    cnt(_mm256_xor_si256(_mm256_loadu_si256(src.add(i)), qv)),
                    cnt(_mm256_xor_si256(_mm256_loadu_si256(src.add(i + 1)), qv)),
                    cnt(_mm256_xor_si256(_mm256_loadu_si256(src.add(i + 2)), qv)),
                    cnt(_mm256_xor_si256(_mm256_loadu_si256(src.add(i + 3)), qv)),
                )
            };
            // [a0+a1, b0+b1, a2+a3, b2+b3], [c01, d01, c23, d23]
            let ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
            let cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
            let tot = _mm256_add_epi64(
                _mm256_permute2x128_si256(ab, cd, 0x20),
                _mm256_permute2x128_si256(ab, cd, 0x31),
            );
            let hit = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(lim, tot)));
            if hit != 0 {
                scan_body(&codes[i..i + 4], base.wrapping_add(i as u32), q, r, out);
            }
            i += 4;
        }
        scan_body(&codes[i..], base.wrapping_add(i as u32), q, r, out);
    }
}

//! Exact Hamming range search over 256-bit codes (PDQ hashes) by multi-index
//! hashing (MIH), with a memory-mappable, checksummed file format.
//!
//! Given a query `q` and a radius `r` (0..=255; the PDQ match threshold is 31),
//! [`FrozenIndex::search`] and [`Index::search`] return exactly the entries whose
//! Hamming distance to `q` is at most `r`: never an approximation.
//!
//! ```
//! use hashguard_index::{FrozenIndex, Index};
//! let codes: Vec<[u64; 4]> = (0..1000u64)
//!     .map(|i| [i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i << 7, !i, i ^ 0xdead_beef])
//!     .collect();
//! let idx = FrozenIndex::build(&codes, None, None).unwrap();
//! let mut q = codes[42];
//! q[1] ^= 0b1011; // three bits away
//! let hits = idx.search(&q, 31);
//! assert_eq!(hits[0].id, 42);
//! assert_eq!(hits[0].distance, 3);
//!
//! // Round trip through the file format.
//! let again = FrozenIndex::from_bytes(idx.as_bytes()).unwrap();
//! assert_eq!(again.search(&q, 31), hits);
//!
//! // A flipped byte is refused with a typed error.
//! let mut bad = idx.as_bytes().to_vec();
//! bad[300] ^= 1;
//! assert!(FrozenIndex::from_bytes(&bad).is_err());
//! # let _ = Index::new();
//! ```
//!
//! # Codes
//! A code is `[u64; 4]`: bit k of the PDQ hash is bit `k % 64` of word `k / 64`
//! (the pdq crate's `Hash256::to_words()`).
//!
//! # Design, and why
//! All figures below were measured on the project machine (Intel Xeon with
//! AVX-512 VPOPCNTDQ, 2 vCPUs in a VM, 24 GB), one query thread, shared with
//! other jobs; `docs/index.md` has the full tables and the faiss comparison.
//!
//! **Multi-index hashing with the refined pigeonhole rule.** The 256 bits are
//! cut into `m` disjoint slots. If `d(q, c) <= r` and `r = m*s + a` (`0 <= a < m`),
//! then at least one slot of `c` is within `s` of the query's slot among any
//! `a + 1` chosen slots, or within `s - 1` among the others (otherwise the slot
//! distances would sum to more than `r`). So `a + 1` slots are searched at radius
//! `s` and the rest at `s - 1` (radius -1 = not searched), and the `a + 1` are
//! picked per query where the extra radius costs least. Every code within `r`
//! is found through at least one slot, then verified on all 256 bits: exact.
//!
//! **Layout: 11 slots of 23-24 bits at 10 million codes, chosen by measurement.**
//! The reference MIH uses 16 slots of 16 bits. At radius 31 that means radius 1
//! in every slot, 17 probes per slot, and at 10 million codes about 150 codes
//! per bucket: ~39,000 candidates per query, each a random fetch of a 32-byte
//! code. Wider slots cut candidates (each extra bit halves a bucket) but raise
//! the probes per slot; 11 slots of 23-24 bits (radius 2 in 10 slots, 1 in
//! one) give ~3,000 candidates for ~1,900 probed buckets. [`Layout::for_len`]
//! picks about `256 / log2(n)` slots: at 10 million uniform codes and radius 31 that layout
//! answered about three times the queries per second of the reference layout, with a thirteenth
//! of its candidates (the measured sweep of layouts is in `docs/index.md`, "Slot layout").
//! Fewer slots need fewer candidates but many more probed buckets (8 slots: radius 3 in
//! 32-bit slots); more slots, the reverse.
//!
//! **Buckets: a direct table on the slot's top bits, keys in the postings.** A
//! 23-bit slot cannot have a direct table per value at this memory budget, so
//! each slot has an offset table on its top `t` bits (`t = log2(n) - 5`, about
//! 32 codes per bucket; 18-19 at 10 million) and the postings are sorted into
//! those buckets by a counting sort (CSR: one `u32` offset array plus one `u32`
//! posting array per slot, built in two sequential passes, no per-entry maps).
//! Each posting packs the entry's position (`ceil(log2 n)` bits) with as many
//! of the slot's remaining low bits as fit (8 bits at 10 million, i.e. all of
//! them). To probe a slot at radius `k`, the query enumerates top-bit variants
//! with `f <= k` flips and keeps the postings whose key is within `k - f`: a
//! single SIMD pass over a contiguous run (AVX-512: 16 postings per step,
//! VPOPCNTD, compress), so a candidate's code is only fetched when its whole
//! slot is within radius.
//!
//! **Slot 0 costs no postings.** The code array itself is sorted by slot 0's
//! top bits, so slot 0's buckets are runs of the code array, verified in place
//! (sequential reads); the ids array (4 bytes per code) maps positions back to
//! the caller's ids. Duplicates across slots are removed by sorting the (few)
//! hits by position, so no visited set or bitmap is needed.
//!
//! **Verification uses the vector units, chosen at run time.** `fast` detects
//! AVX-512F + AVX-512 VPOPCNTDQ, AVX2 or POPCNT with `is_x86_feature_detected!`
//! and runs the posting filter, the bucket loop and the linear scans compiled
//! for that level (`#[target_feature]`), so a default build (x86-64 baseline,
//! which has no POPCNT instruction) never falls back to software bit counting
//! on a CPU that has it. `HASHGUARD_INDEX_SIMD=portable|popcnt|avx2` caps it.
//!
//! The AVX-512 posting filter is the measured win in slot search, and in linear scans
//! AVX-512 beats scalar POPCNT by about 1.4-2.5x (`docs/index.md`, "SIMD level").
//!
//! **Memory access is the cost, so: huge pages, prefetch, one pass.** A query
//! touches ~1,900 buckets and ~3,000 codes at random in ~770 MB. Images built
//! in memory (and [`FrozenIndex::load`]) use anonymous memory advised for
//! transparent huge pages; the bucket loop prefetches the postings 16 buckets
//! ahead and the verification prefetches codes 16 candidates ahead.
//! Measured at 10M: an index read into huge-page memory with
//! [`FrozenIndex::load`] (0.37 s for 783 MB from the page cache, checksum
//! included) answered 6,561 / 6,404 q/s (near / random, per CPU-second); the
//! same file memory-mapped with [`FrozenIndex::open`] (0.18 s) answered
//! 6,364 / 6,286 q/s. A fresh mapping first pays page faults on touched pages.
//!
//! **Giant buckets fall back to a linear scan.** Clustered lists (one image
//! re-encoded many times) and adversarial lists (many codes sharing one slot
//! value) make some buckets huge. Each query first prices its bucket plan from
//! the offset tables (bucket visits, postings, slot-0 codes); if the plan, or
//! after the key filter the candidate count, costs more than a sequential scan
//! of the code array, the query does that scan instead (AVX-512 VPOPCNTQ, two
//! codes per register). So a query never costs much more than one linear scan,
//! whatever the data. Measured: on a 2M-code list whose quarter shares
//! bits 0..64 (206,486 candidates per near query), slot search ran 1,096 near
//! queries/s and a forced linear scan 276; on a 1M-code list that is one giant
//! cluster (every near query matches ~913,000 codes), forced slot search ran 4
//! queries/s, the default 129 (every such query fell back, after its posting
//! filter), a pure scan 253. The default fraction (2.0 x a scan, with a
//! candidate costing 16 posting units) was set from these runs: with 1.0 the
//! 2M list sent 56 of 300 near queries to the slower scan.
//!
//! **Updates: delta buffer plus tombstones.** [`Index`] wraps a frozen index
//! with a small vector of added codes (scanned linearly with the SIMD kernel)
//! and a set of removed ids (filtering the frozen part's results);
//! [`Index::compact`] rebuilds (a bulk build of 10 million codes takes 2-4 s on this machine, single thread).
//!
//! **File format (version 1, little-endian), queried in place.** A 128-byte
//! header (magic `HGMIH\0\r\n`, version, header length, file length, entry count,
//! slot count, position bits, xxh3-64 checksum of the whole file with the
//! checksum field zeroed, section offsets, zero reserved bytes), then one
//! 32-byte descriptor per slot (start bit, width, table bits, key bits, offsets
//! and postings section offsets), then 64-byte-aligned sections: codes
//! (`n x [u64; 4]`), ids (`n x u32`), and per slot the offset table
//! (`(2^t + 1) x u32`) and postings (`n x u32`, none for slot 0). Every offset in
//! the header must equal the one computed from the counts and layout, so the
//! loader accepts exactly one byte layout per (n, layout). Loading checks magic,
//! version, length, checksum, header consistency and the offset tables
//! (monotone, ending at n), then casts the mapped bytes to `&[u32]` and
//! `&[[u64; 4]]` (`bytemuck`, alignment checked): no per-entry deserialization.
//! A flipped bit or a truncation is refused with a [`LoadError`]; all reads of
//! the image are bounds-checked, so even a crafted file with a valid checksum
//! cannot cause a panic or out-of-bounds access (it can only give wrong
//! answers; [`FrozenIndex::verify_deep`] checks every posting).
//!
//! **Memory: 78.3 bytes per code at 10 million (measured image size),
//! above the 48-byte goal.** Per code: 32 (the code) + 4 (id) + 10 x 4
//! (postings of slots 1-10) + 2.3 (11 offset tables of 2^19 + 1 `u32`). A
//! posting must name a position (`log2 n` = 24 bits at 10M), so every indexed
//! slot beyond slot 0 costs at least 3 bytes; 48 bytes would allow about three
//! posting arrays, i.e. slots of 64 bits searched at radius 7 at r = 31, which
//! is far slower than a linear scan (the measured trade-off between slots,
//! speed and bytes per code, and faiss's memory in the same run, are in
//! `docs/index.md`).**
//!
//! **Unsafe code** is confined to the private `fast` module: the SIMD kernels
//! (each call justified by the detected CPU level), a prefetch hint and the
//! `memmap2` mapping. The rest of the crate denies `unsafe_code`.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]

mod error;
#[allow(unsafe_code)]
mod fast;
mod frozen;
mod layout;
mod mutable;

pub use error::{BuildError, LayoutError, LoadError};
pub use frozen::{
    reseal, FrozenIndex, QueryStats, Scratch, DEFAULT_LINEAR_FRACTION, HEADER_LEN, MAGIC, VERSION,
};
pub use layout::{Layout, Slot, MAX_SLOTS, MAX_SLOT_BITS, MAX_TABLE_BITS};
pub use mutable::Index;

/// A 256-bit code: word `k / 64` holds bit `k` at position `k % 64`.
pub type Code = [u64; 4];

/// One search result. Orders by distance, then id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    /// Hamming distance to the query.
    pub distance: u32,
    /// The entry's id (the caller's id, or its position at build time).
    pub id: u32,
}

/// Hamming distance of two codes (hardware popcount where the build target has it).
///
/// ```
/// assert_eq!(hashguard_index::distance(&[0; 4], &[u64::MAX, 0, 0, 1]), 65);
/// ```
pub fn distance(a: &Code, b: &Code) -> u32 {
    fast::dist_body(a, b)
}

/// Name of the SIMD level the kernels use on this CPU ("avx512", "avx2",
/// "popcnt" or "portable"); `HASHGUARD_INDEX_SIMD` can cap it.
pub fn simd_level() -> &'static str {
    fast::Level::detect().name()
}

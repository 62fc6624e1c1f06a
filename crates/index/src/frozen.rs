//! The immutable, memory-mappable multi-index: bulk build, file format, search.

use std::ops::Range;
use std::path::Path;

use crate::error::{BuildError, LoadError};
use crate::fast::{self, Level};
use crate::layout::{low_mask, Layout, Slot};
use crate::{Code, Match};

/// File magic: "HGMIH", a NUL, then CR LF so that text-mode transfers are caught.
pub const MAGIC: [u8; 8] = *b"HGMIH\0\r\n";
/// The only format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Length of the fixed header, in bytes.
pub const HEADER_LEN: usize = 128;
/// Length of one slot descriptor, in bytes.
pub const SLOT_DESC_LEN: usize = 32;
/// Alignment of every section, in bytes (a cache line).
pub const SECTION_ALIGN: u64 = 64;
const CHECKSUM_AT: usize = 40;

/// Weight of scanning one code of slot 0 (32 bytes, read in place) relative to one
/// 4-byte posting; also the weight of one code in a linear scan.
const CODE_WEIGHT: u64 = 6;
/// Cost of visiting one bucket (offset lookup, cache misses), in posting units.
const BUCKET_WEIGHT: u64 = 16;
/// Cost of fetching one candidate code at a random position, in posting units.
const FETCH_WEIGHT: u64 = 16;
/// How many buckets ahead the posting scan prefetches.
const BUCKET_AHEAD: usize = 16;
/// A query whose bucket plan costs more than this fraction of a linear scan is
/// answered by a linear scan instead (see the crate docs for the measurement).
pub const DEFAULT_LINEAR_FRACTION: f64 = 2.0;

#[derive(Debug)]
enum Backing {
    /// Small images: a vector of words (8-byte aligned).
    Owned { words: Vec<u64>, len: usize },
    /// Large images: anonymous memory advised to use transparent huge pages
    /// (random probes into hundreds of MB otherwise miss the TLB on every access).
    Anon(memmap2::MmapMut),
    /// A memory-mapped file.
    Mapped(memmap2::Mmap),
}

/// Images from this size up use huge-page-advised anonymous memory.
const ANON_MIN: usize = 4 << 20;

impl Backing {
    /// Zeroed, page- or word-aligned memory of `len` bytes.
    fn zeroed(len: usize) -> Backing {
        if len >= ANON_MIN {
            if let Ok(m) = memmap2::MmapMut::map_anon(len) {
                #[cfg(target_os = "linux")]
                let _ = m.advise(memmap2::Advice::HugePage);
                return Backing::Anon(m);
            }
        }
        Backing::Owned {
            words: vec![0u64; len.div_ceil(8)],
            len,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Owned { words, len } => {
                let all: &[u8] = bytemuck::cast_slice(words);
                all.get(..*len).unwrap_or(all)
            }
            Backing::Anon(m) => m,
            Backing::Mapped(m) => m,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            Backing::Owned { words, len } => {
                let all: &mut [u8] = bytemuck::cast_slice_mut(words);
                let l = (*len).min(all.len());
                &mut all[..l]
            }
            Backing::Anon(m) => m,
            Backing::Mapped(_) => &mut [],
        }
    }
}

/// Byte ranges of every section, computed from (n, layout); the file must match them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sections {
    codes: Range<usize>,
    ids: Range<usize>,
    offsets: Vec<Range<usize>>,
    postings: Vec<Range<usize>>,
    total: usize,
}

fn align_up(x: u64) -> Option<u64> {
    x.checked_add(SECTION_ALIGN - 1)
        .map(|v| v / SECTION_ALIGN * SECTION_ALIGN)
}

fn plan(n: u64, slots: &[Slot]) -> Option<Sections> {
    let rng = |start: u64, len: u64| -> Option<(Range<usize>, u64)> {
        let end = start.checked_add(len)?;
        let r = usize::try_from(start).ok()?..usize::try_from(end).ok()?;
        Some((r, align_up(end)?))
    };
    let mut off = align_up((HEADER_LEN + SLOT_DESC_LEN * slots.len()) as u64)?;
    let (codes, o) = rng(off, n.checked_mul(32)?)?;
    off = o;
    let (ids, o) = rng(off, n.checked_mul(4)?)?;
    off = o;
    let mut offsets = Vec::with_capacity(slots.len());
    let mut postings = Vec::with_capacity(slots.len());
    for (j, s) in slots.iter().enumerate() {
        let (r, o) = rng(off, ((1u64 << s.table_bits) + 1) * 4)?;
        offsets.push(r);
        off = o;
        let plen = if j == 0 { 0 } else { n.checked_mul(4)? };
        let (r, o) = rng(off, plen)?;
        postings.push(r);
        off = o;
    }
    Some(Sections {
        codes,
        ids,
        offsets,
        postings,
        total: usize::try_from(off).ok()?,
    })
}

/// Bits needed for a position in an index of `n` codes (at least 1).
fn pos_bits_for(n: u64) -> u32 {
    if n <= 1 {
        1
    } else {
        64 - (n - 1).leading_zeros()
    }
}

/// Key bits stored in the postings of slot `j`.
fn key_bits(j: usize, s: &Slot, pos_bits: u32) -> u32 {
    if j == 0 {
        0
    } else {
        s.low_bits().min(32u32.saturating_sub(pos_bits))
    }
}

/// `sum_{i <= k} C(t, i)`: the number of t-bit values within distance k.
fn ball(t: u32, k: i64) -> u64 {
    if k < 0 {
        return 0;
    }
    let k = (k as u64).min(t as u64);
    let mut c = 1u64;
    let mut s = 1u64;
    for i in 1..=k {
        c = c * (t as u64 - i + 1) / i;
        s += c;
    }
    s
}

/// Reusable buffers for [`FrozenIndex::search_into`]; keep one per thread.
#[derive(Debug, Default)]
pub struct Scratch {
    buckets: Vec<(u32, u32, u32, u32)>,
    cands: Vec<u32>,
    hits: Vec<(u32, u32)>,
}

impl Scratch {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Per-query statistics, for benchmarks and tuning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    /// True if the query was answered by a linear scan.
    pub linear: bool,
    /// Buckets visited.
    pub buckets: u64,
    /// Postings (or slot-0 codes) scanned in those buckets.
    pub scanned: u64,
    /// Candidate codes fetched for full verification.
    pub candidates: u64,
}

/// An immutable multi-index over 256-bit codes, held in one little-endian byte
/// image that is either owned or memory-mapped from a file. Queries read the
/// image in place.
#[derive(Debug)]
pub struct FrozenIndex {
    backing: Backing,
    n: usize,
    pos_bits: u32,
    layout: Layout,
    sections: Sections,
    level: Level,
    linear_fraction: f64,
}

impl FrozenIndex {
    /// Builds an index over `codes`. Entry `i` gets id `ids[i]`, or `i` when `ids`
    /// is `None`. Ids need not be unique. Uses `layout`, or [`Layout::for_len`].
    ///
    /// ```
    /// use hashguard_index::FrozenIndex;
    /// let codes = [[0u64; 4], [u64::MAX; 4], [1, 0, 0, 0]];
    /// let idx = FrozenIndex::build(&codes, Some(&[10, 11, 12]), None).unwrap();
    /// let mut hits = idx.search(&[0; 4], 1);
    /// hits.sort();
    /// assert_eq!(hits.iter().map(|m| (m.distance, m.id)).collect::<Vec<_>>(), [(0, 10), (1, 12)]);
    /// ```
    pub fn build(
        codes: &[Code],
        ids: Option<&[u32]>,
        layout: Option<&Layout>,
    ) -> Result<Self, BuildError> {
        let n = codes.len();
        if let Some(ids) = ids {
            if ids.len() != n {
                return Err(BuildError::IdCount {
                    codes: n,
                    ids: ids.len(),
                });
            }
        }
        if n > u32::MAX as usize {
            return Err(BuildError::TooMany(n));
        }
        let layout = match layout {
            Some(l) => l.clone(),
            None => Layout::for_len(n),
        };
        let slots = layout.slots();
        let pos_bits = pos_bits_for(n as u64);
        let sec = plan(n as u64, slots).ok_or(BuildError::TooMany(n))?;
        let mut backing = Backing::zeroed(sec.total);
        {
            let bytes = backing.bytes_mut();
            write_header(bytes, n as u64, pos_bits, &layout, &sec);
            let (head, tail) = bytes.split_at_mut(sec.ids.end);
            let (head, ids_bytes) = head.split_at_mut(sec.ids.start);
            let sorted: &mut [Code] = bytemuck::cast_slice_mut(&mut head[sec.codes.clone()]);
            let sorted_ids: &mut [u32] = bytemuck::cast_slice_mut(ids_bytes);
            let base = sec.ids.end;
            // Slot 0: counting sort of the codes themselves by the slot's table bits.
            let s0 = slots[0];
            let off0 = &mut tail[sec.offsets[0].start - base..sec.offsets[0].end - base];
            let off0: &mut [u32] = bytemuck::cast_slice_mut(off0);
            let mut cursor = histogram(codes.iter().map(|c| s0.top(c)), off0);
            for (i, c) in codes.iter().enumerate() {
                let b = (s0.top(c)) as usize;
                let at = cursor[b] as usize;
                cursor[b] += 1;
                sorted[at] = *c;
                sorted_ids[at] = ids.map_or(i as u32, |v| v[i]);
            }
            // Other slots: CSR postings (key << pos_bits | position), in position order.
            for (j, s) in slots.iter().enumerate().skip(1) {
                let kb = key_bits(j, s, pos_bits);
                let shift = s.low_bits();
                let (off_r, post_r) = (sec.offsets[j].clone(), sec.postings[j].clone());
                let (a, b) = tail.split_at_mut(post_r.start - base);
                let offs: &mut [u32] = bytemuck::cast_slice_mut(&mut a[off_r.start - base..]);
                let offs = &mut offs[..(1usize << s.table_bits) + 1];
                let post: &mut [u32] = bytemuck::cast_slice_mut(&mut b[..post_r.len()]);
                let mut cursor = histogram(sorted.iter().map(|c| s.top(c)), offs);
                for (p, c) in sorted.iter().enumerate() {
                    let v = s.value(c);
                    let b = ((v as u64) >> shift) as usize;
                    let key = (v as u64 & low_mask(shift)) >> (shift - kb);
                    post[cursor[b] as usize] = ((key << pos_bits) as u32) | p as u32;
                    cursor[b] += 1;
                }
            }
            let sum = checksum(bytes);
            bytes[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
        }
        Ok(FrozenIndex {
            backing,
            n,
            pos_bits,
            layout,
            sections: sec,
            level: Level::detect(),
            linear_fraction: DEFAULT_LINEAR_FRACTION,
        })
    }

    /// Loads an index from bytes (copied into an aligned buffer), verifying the
    /// header, the checksum and the offset tables. Never panics on bad input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LoadError> {
        let mut backing = Backing::zeroed(bytes.len());
        let dst = backing.bytes_mut();
        if dst.len() == bytes.len() {
            dst.copy_from_slice(bytes);
        }
        Self::from_backing(backing)
    }

    /// Reads an index file into memory (huge-page-advised when large) and
    /// verifies it like [`FrozenIndex::from_bytes`]. Costs a copy, but random
    /// probes then run faster than on a file mapping, which the kernel backs
    /// with 4 KiB pages (see the crate docs for measurements).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let len = usize::try_from(len).map_err(|_| LoadError::Header("file too large"))?;
        let mut backing = Backing::zeroed(len);
        let dst = backing.bytes_mut();
        file.read_exact(dst)?;
        Self::from_backing(backing)
    }

    /// Memory-maps an index file and verifies it like [`FrozenIndex::from_bytes`];
    /// queries then run on the mapped pages. The file must not be modified while
    /// it is mapped (write new versions to a new file and rename).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len < HEADER_LEN as u64 {
            return Err(LoadError::Truncated {
                len,
                expected: HEADER_LEN as u64,
            });
        }
        let map = fast::map_file(&file)?;
        Self::from_backing(Backing::Mapped(map))
    }

    fn from_backing(backing: Backing) -> Result<Self, LoadError> {
        if cfg!(target_endian = "big") {
            return Err(LoadError::BigEndian);
        }
        let b = backing.bytes();
        let (n, pos_bits, layout, sections) = parse(b)?;
        let idx = FrozenIndex {
            n,
            pos_bits,
            layout,
            sections,
            level: Level::detect(),
            linear_fraction: DEFAULT_LINEAR_FRACTION,
            backing,
        };
        // Structural checks that are cheap (offset tables only).
        for j in 0..idx.layout.slots().len() {
            let o = idx.offsets(j);
            let ok = o.first() == Some(&0)
                && o.last().map(|&x| x as usize) == Some(n)
                && o.windows(2).all(|w| w[0] <= w[1]);
            if !ok {
                return Err(LoadError::Offsets(j));
            }
        }
        Ok(idx)
    }

    /// The file image (header, sections, checksum) of this index.
    pub fn as_bytes(&self) -> &[u8] {
        self.backing.bytes()
    }

    /// Writes the file image to `path` (through a temporary file and a rename).
    pub fn save(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.as_bytes())?;
        std::fs::rename(&tmp, path)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True if the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The slot layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Bytes of the index image (owned memory or mapped file).
    pub fn size_bytes(&self) -> usize {
        self.as_bytes().len()
    }

    /// The SIMD level used for verification ("avx512", "avx2", "popcnt", "portable").
    pub fn simd_level(&self) -> &'static str {
        self.level.name()
    }

    /// Uses another SIMD level, capped by what the CPU supports (for benchmarks).
    pub fn set_simd_cap(&mut self, cap: &str) {
        self.level = Level::detect_uncached(Some(cap));
    }

    /// Sets when a query falls back to a linear scan: when its bucket plan is
    /// estimated to cost more than `fraction` times a full scan (default
    /// [`DEFAULT_LINEAR_FRACTION`]). `f64::INFINITY` disables the fallback except
    /// for radii too large for slot search (tests use this to exercise the slot
    /// path on small indexes). Results are exact either way.
    pub fn set_linear_fraction(&mut self, fraction: f64) {
        self.linear_fraction = if fraction.is_nan() {
            DEFAULT_LINEAR_FRACTION
        } else {
            fraction.max(0.0)
        };
    }

    /// The codes in index order (sorted by slot 0).
    pub fn codes(&self) -> &[Code] {
        self.section(&self.sections.codes)
    }

    /// The ids, parallel to [`FrozenIndex::codes`].
    pub fn ids(&self) -> &[u32] {
        self.section(&self.sections.ids)
    }

    fn offsets(&self, j: usize) -> &[u32] {
        self.sections
            .offsets
            .get(j)
            .map_or(&[][..], |r| self.section(r))
    }

    fn postings(&self, j: usize) -> &[u32] {
        self.sections
            .postings
            .get(j)
            .map_or(&[][..], |r| self.section(r))
    }

    fn section<T: bytemuck::Pod>(&self, r: &Range<usize>) -> &[T] {
        self.as_bytes()
            .get(r.clone())
            .and_then(|b| bytemuck::try_cast_slice(b).ok())
            .unwrap_or(&[])
    }

    /// Checks every posting against the codes (each position once per slot, in
    /// the right bucket with the right key). O(n * slots); `open` and `from_bytes`
    /// do not run it, since the checksum already covers accidental damage.
    pub fn verify_deep(&self) -> Result<(), LoadError> {
        let codes = self.codes();
        if codes.len() != self.n || self.ids().len() != self.n {
            return Err(LoadError::Header("section sizes"));
        }
        for (j, s) in self.layout.slots().iter().enumerate() {
            let offs = self.offsets(j);
            let shift = s.low_bits();
            if j == 0 {
                for (b, w) in offs.windows(2).enumerate() {
                    for c in codes.get(w[0] as usize..w[1] as usize).unwrap_or(&[]) {
                        if (s.top(c)) as usize != b {
                            return Err(LoadError::Postings(0));
                        }
                    }
                }
                continue;
            }
            let kb = key_bits(j, s, self.pos_bits);
            let post = self.postings(j);
            let mut seen = vec![false; self.n];
            let pmask = low_mask(self.pos_bits) as u32;
            for (b, w) in offs.windows(2).enumerate() {
                for &p in post.get(w[0] as usize..w[1] as usize).unwrap_or(&[]) {
                    let pos = (p & pmask) as usize;
                    let key = (p as u64) >> self.pos_bits.min(63);
                    let Some(c) = codes.get(pos) else {
                        return Err(LoadError::Postings(j));
                    };
                    let v = s.value(c);
                    let want = (v as u64 & low_mask(shift)) >> (shift - kb);
                    if ((v as u64) >> shift) as usize != b || key != want || seen[pos] {
                        return Err(LoadError::Postings(j));
                    }
                    seen[pos] = true;
                }
            }
            if seen.iter().any(|&x| !x) {
                return Err(LoadError::Postings(j));
            }
        }
        Ok(())
    }

    /// All entries within Hamming distance `r` of `q`, sorted by (distance, id).
    pub fn search(&self, q: &Code, r: u32) -> Vec<Match> {
        let mut out = Vec::new();
        self.search_into(q, r, &mut Scratch::new(), &mut out);
        out.sort_unstable();
        out
    }

    /// Appends every entry within distance `r` of `q` to `out` (unordered, each
    /// entry once) and returns statistics. Reuse `scratch` across queries.
    pub fn search_into(
        &self,
        q: &Code,
        r: u32,
        scratch: &mut Scratch,
        out: &mut Vec<Match>,
    ) -> QueryStats {
        let ids = self.ids();
        let st = self.search_positions(q, r, scratch);
        out.extend(scratch.hits.iter().map(|&(p, d)| Match {
            distance: d,
            id: ids.get(p as usize).copied().unwrap_or(u32::MAX),
        }));
        st
    }

    /// Core search: leaves `(position, distance)` pairs in `scratch.hits`.
    pub(crate) fn search_positions(&self, q: &Code, r: u32, scratch: &mut Scratch) -> QueryStats {
        scratch.hits.clear();
        let mut st = QueryStats::default();
        if self.n == 0 {
            return st;
        }
        let codes = self.codes();
        let slots = self.layout.slots();
        let m = slots.len();
        let linear_cost = self.n as u64 * CODE_WEIGHT;
        let budget = if self.linear_fraction.is_infinite() {
            u64::MAX
        } else {
            (linear_cost as f64 * self.linear_fraction) as u64
        };
        let Some(radii) = self.radii(r) else {
            st.linear = true;
            fast::scan(self.level, codes, 0, q, r, &mut scratch.hits);
            return st;
        };
        // Plan: the buckets of every slot, with the key radius left for each.
        let est: u64 = (0..m).map(|j| self.slot_cost(j, radii[j] as i64)).sum();
        if est > budget {
            st.linear = true;
            fast::scan(self.level, codes, 0, q, r, &mut scratch.hits);
            return st;
        }
        scratch.buckets.clear();
        let mut cost = 0u64;
        for (j, s) in slots.iter().enumerate() {
            let k = radii[j];
            if k < 0 {
                continue;
            }
            let offs = self.offsets(j);
            let t = s.table_bits;
            let top = s.top(q);
            let w = if j == 0 { CODE_WEIGHT } else { 1 };
            for f in 0..=(k as u32).min(t) {
                let left = k as u32 - f;
                for_each_mask(t, f, |mask| {
                    let b = (top ^ mask) as usize;
                    if let (Some(&a), Some(&e)) = (offs.get(b), offs.get(b + 1)) {
                        if e > a {
                            scratch.buckets.push((j as u32, left, a, e));
                            cost += (e - a) as u64 * w;
                        }
                    }
                    cost += BUCKET_WEIGHT;
                });
            }
        }
        if cost > budget {
            st.linear = true;
            fast::scan(self.level, codes, 0, q, r, &mut scratch.hits);
            return st;
        }
        st.buckets = scratch.buckets.len() as u64;

        // Execute: one pass over all buckets, prefetching BUCKET_AHEAD ahead.
        // Slot 0 buckets are runs of codes, verified in place; other buckets are
        // posting runs whose keys are filtered before the codes are fetched.
        let mut qkeys = [0u32; crate::layout::MAX_SLOTS];
        let mut posts: [&[u32]; crate::layout::MAX_SLOTS] = [&[]; crate::layout::MAX_SLOTS];
        let mut kbits = [0u32; crate::layout::MAX_SLOTS];
        for (j, s) in slots.iter().enumerate().skip(1) {
            let kb = key_bits(j, s, self.pos_bits);
            let shift = s.low_bits();
            qkeys[j] = ((s.value(q) as u64 & low_mask(shift)) >> (shift - kb)) as u32;
            posts[j] = self.postings(j);
            kbits[j] = kb;
        }
        scratch.cands.clear();
        let plan = fast::Plan {
            buckets: &scratch.buckets,
            posts: &posts,
            qkeys: &qkeys,
            kbits: &kbits,
            pos_bits: self.pos_bits,
            codes,
            q,
            r,
            ahead: BUCKET_AHEAD,
        };
        st.scanned = fast::run_plan(self.level, &plan, &mut scratch.cands, &mut scratch.hits);
        st.candidates = scratch.cands.len() as u64;
        // Guard against giant buckets whose keys all pass (adversarial or heavily
        // clustered data): fetching that many codes at random costs more than
        // one sequential scan.
        if st.candidates.saturating_mul(FETCH_WEIGHT) > budget {
            st.linear = true;
            scratch.hits.clear();
            fast::scan(self.level, codes, 0, q, r, &mut scratch.hits);
            return st;
        }
        fast::verify(self.level, codes, &scratch.cands, q, r, &mut scratch.hits);
        // A code within r may be found through several slots: keep one.
        if scratch.hits.len() > 1 {
            scratch.hits.sort_unstable_by_key(|h| h.0);
            scratch.hits.dedup_by_key(|h| h.0);
        }
        st
    }

    /// Estimated cost of searching slot `j` at radius `k` on uniform data.
    fn slot_cost(&self, j: usize, k: i64) -> u64 {
        let Some(s) = self.layout.slots().get(j) else {
            return 0;
        };
        let buckets = ball(s.table_bits, k) as u128;
        let w = if j == 0 { CODE_WEIGHT } else { 1 } as u128;
        let scanned = (buckets * self.n as u128 * w) >> s.table_bits;
        u64::try_from(buckets * BUCKET_WEIGHT as u128 + scanned).unwrap_or(u64::MAX)
    }

    /// Per-slot radii from the refined pigeonhole principle: with r = m*q + a,
    /// a+1 slots are searched at radius q and the others at q-1 (-1 = skipped).
    /// The a+1 slots are those where the extra radius costs least. `None` when
    /// the radius is too large for slot search to beat a linear scan.
    fn radii(&self, r: u32) -> Option<Vec<i32>> {
        let m = self.layout.slots().len() as u32;
        if r >= 256 {
            return None;
        }
        let qr = (r / m) as i64;
        let a = (r % m) as usize;
        if qr > 8 {
            return None;
        }
        let mut delta: Vec<(u64, usize)> = (0..m as usize)
            .map(|j| (self.slot_cost(j, qr) - self.slot_cost(j, qr - 1), j))
            .collect();
        delta.sort_unstable();
        let mut radii = vec![(qr - 1) as i32; m as usize];
        for &(_, j) in delta.iter().take(a + 1) {
            radii[j] = qr as i32;
        }
        Some(radii)
    }
}

/// Calls `f` for every `t`-bit mask with exactly `k` bits set (Gosper's hack).
#[inline]
fn for_each_mask(t: u32, k: u32, mut f: impl FnMut(u32)) {
    if k > t {
        return;
    }
    if k == 0 {
        f(0);
        return;
    }
    let limit = 1u64 << t;
    let mut v: u64 = (1u64 << k) - 1;
    while v < limit {
        f(v as u32);
        let c = v & v.wrapping_neg();
        let r = v + c;
        v = (((r ^ v) >> 2) / c) | r;
    }
}

/// Fills `offs` (2^t + 1 entries) with bucket starts; returns the write cursors.
fn histogram(keys: impl Iterator<Item = u32>, offs: &mut [u32]) -> Vec<u32> {
    for o in offs.iter_mut() {
        *o = 0;
    }
    let nb = offs.len() - 1;
    for k in keys {
        offs[k as usize + 1] += 1;
    }
    for i in 0..nb {
        offs[i + 1] += offs[i];
    }
    offs[..nb].to_vec()
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn write_header(b: &mut [u8], n: u64, pos_bits: u32, layout: &Layout, sec: &Sections) {
    b[..8].copy_from_slice(&MAGIC);
    put_u32(b, 8, VERSION);
    put_u32(b, 12, HEADER_LEN as u32);
    put_u64(b, 16, sec.total as u64);
    put_u64(b, 24, n);
    put_u32(b, 32, layout.slots().len() as u32);
    put_u32(b, 36, pos_bits);
    put_u64(b, 48, sec.codes.start as u64);
    put_u64(b, 56, sec.ids.start as u64);
    for (j, s) in layout.slots().iter().enumerate() {
        let at = HEADER_LEN + j * SLOT_DESC_LEN;
        put_u32(b, at, s.start);
        put_u32(b, at + 4, s.width);
        put_u32(b, at + 8, s.table_bits);
        put_u32(b, at + 12, key_bits(j, s, pos_bits));
        put_u64(b, at + 16, sec.offsets[j].start as u64);
        put_u64(b, at + 24, sec.postings[j].start as u64);
    }
}

/// xxh3-64 of the image with the checksum field read as zeros.
fn checksum(b: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b.get(..CHECKSUM_AT).unwrap_or(b));
    h.update(&[0u8; 8]);
    h.update(b.get(CHECKSUM_AT + 8..).unwrap_or(&[]));
    h.digest()
}

/// Recomputes and stores the checksum of an index image in place (for tools and
/// fuzzing that need to exercise the structural checks behind the checksum).
/// Does nothing if `bytes` is shorter than the header.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let sum = checksum(bytes);
        bytes[CHECKSUM_AT..CHECKSUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
    }
}

type Parsed = (usize, u32, Layout, Sections);

fn parse(b: &[u8]) -> Result<Parsed, LoadError> {
    let len = b.len() as u64;
    if b.len() < HEADER_LEN {
        return Err(LoadError::Truncated {
            len,
            expected: HEADER_LEN as u64,
        });
    }
    if b[..8] != MAGIC {
        return Err(LoadError::BadMagic);
    }
    let hdr = |at| get_u32(b, at).ok_or(LoadError::Header("short"));
    let hdr64 = |at| get_u64(b, at).ok_or(LoadError::Header("short"));
    let version = hdr(8)?;
    if version != VERSION {
        return Err(LoadError::UnsupportedVersion(version));
    }
    let file_len = hdr64(16)?;
    if len < file_len {
        return Err(LoadError::Truncated {
            len,
            expected: file_len,
        });
    }
    if len > file_len {
        return Err(LoadError::TrailingBytes {
            len,
            expected: file_len,
        });
    }
    let stored = hdr64(CHECKSUM_AT)?;
    let computed = checksum(b);
    if stored != computed {
        return Err(LoadError::Checksum { stored, computed });
    }
    if hdr(12)? as usize != HEADER_LEN {
        return Err(LoadError::Header("header length"));
    }
    if b[64..HEADER_LEN].iter().any(|&x| x != 0) {
        return Err(LoadError::Header("reserved bytes not zero"));
    }
    let n = hdr64(24)?;
    if n > u32::MAX as u64 {
        return Err(LoadError::Header("entry count exceeds u32"));
    }
    let m = hdr(32)? as usize;
    if m == 0 || m > crate::layout::MAX_SLOTS {
        return Err(LoadError::Header("slot count"));
    }
    let pos_bits = hdr(36)?;
    if pos_bits != pos_bits_for(n) {
        return Err(LoadError::Header("position bits"));
    }
    let mut slots = Vec::with_capacity(m);
    for j in 0..m {
        let at = HEADER_LEN + j * SLOT_DESC_LEN;
        slots.push(Slot {
            start: hdr(at)?,
            width: hdr(at + 4)?,
            table_bits: hdr(at + 8)?,
        });
    }
    let layout = Layout::from_slots(slots)?;
    let sec = plan(n, layout.slots()).ok_or(LoadError::Header("sizes overflow"))?;
    if sec.total as u64 != file_len {
        return Err(LoadError::Header("file length does not match counts"));
    }
    if hdr64(48)? != sec.codes.start as u64 || hdr64(56)? != sec.ids.start as u64 {
        return Err(LoadError::Header("section offsets"));
    }
    for (j, s) in layout.slots().iter().enumerate() {
        let at = HEADER_LEN + j * SLOT_DESC_LEN;
        if hdr(at + 12)? != key_bits(j, s, pos_bits)
            || hdr64(at + 16)? != sec.offsets[j].start as u64
            || hdr64(at + 24)? != sec.postings[j].start as u64
        {
            return Err(LoadError::Header("slot descriptor"));
        }
    }
    let end = HEADER_LEN + m * SLOT_DESC_LEN;
    if b.get(end..sec.codes.start)
        .is_some_and(|p| p.iter().any(|&x| x != 0))
    {
        return Err(LoadError::Header("padding not zero"));
    }
    Ok((n as usize, pos_bits, layout, sec))
}

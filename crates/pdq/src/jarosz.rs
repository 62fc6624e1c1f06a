//! The Jarosz tent filter (two passes of 1-D box filters along rows, then columns) and the
//! decimation to 64x64, computed in streaming strips.
//!
//! The reference filters the whole image four times in place (rows, columns, rows, columns) and
//! then samples 64x64 pixels. Each box filter is a running float sum whose exact sequence of
//! additions, subtractions and divisions must be kept, because float addition is not associative.
//! That fixes the order of operations along each row or column, but not how many rows or columns
//! are processed at once, nor which outputs that are never sampled are computed. So:
//!
//! - Horizontal passes run on strips of [`STRIP`] rows stored column-major, so that one step
//!   advances the running sums of [`STRIP`] rows together (one vector instruction per step).
//! - Vertical passes advance one running sum per column together, a whole row at a time, and keep
//!   only the last `window` rows they must subtract later in a ring.
//! - The stages are chained row by row, so the full-size intermediate images of the reference are
//!   never materialised: the working set is a few strips and stays in cache.
//! - The second horizontal pass divides only at the 64 sampled columns, the second vertical pass
//!   runs only on those 64 columns and divides only at the 64 sampled rows.

/// Rows processed together in a horizontal pass: the vector width of the running sums.
pub(crate) const STRIP: usize = 16;

/// One step's worth of running sums for a strip of rows.
pub(crate) type Lanes = [f32; STRIP];

/// Window size of the box filter for a dimension scaled down to 64: `ceil(old / 128)`.
pub(crate) fn window_size(old: usize) -> usize {
    // The reference's integer form, (old + 2*64 - 1) / (2*64).
    old.div_ceil(2 * 64)
}

/// The sample positions of the decimation: `floor((i + 0.5) * old / 64)` for i in 0..64.
pub(crate) fn sample_positions(old: usize) -> [usize; 64] {
    let mut out = [0usize; 64];
    for (i, o) in out.iter_mut().enumerate() {
        *o = ((2 * i + 1) * old) / 128;
    }
    out
}

/// A source of float luma, read one strip of rows at a time, transposed.
pub(crate) trait LumaSource {
    /// Image width in pixels.
    fn width(&self) -> usize;
    /// Image height in pixels.
    fn height(&self) -> usize;
    /// Writes rows `first..first + count` (count <= STRIP) into `out[column][row - first]`.
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes], t: impl Transpose);
}

/// Interleaved 8-bit RGB, converted to luma as the reference's `fillFloatLumaFromRGB`.
pub(crate) struct RgbSource<'a> {
    pub(crate) pixels: &'a [u8],
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) row_stride: usize,
}

/// The reference's luma weights, as float32 constants.
pub(crate) const LUMA_R: f32 = 0.299;
pub(crate) const LUMA_G: f32 = 0.587;
pub(crate) const LUMA_B: f32 = 0.114;

/// Luma of one RGB pixel: each product rounded to float, then added left to right.
#[inline(always)]
pub(crate) fn luma(r: u8, g: u8, b: u8) -> f32 {
    (LUMA_R * r as f32 + LUMA_G * g as f32) + LUMA_B * b as f32
}

impl LumaSource for RgbSource<'_> {
    fn width(&self) -> usize {
        self.width
    }
    fn height(&self) -> usize {
        self.height
    }
    #[inline(always)]
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes], t: impl Transpose) {
        // Blocks of STRIP columns: each row's pixels are read contiguously and each column's
        // lanes are written whole, so both sides stay in L1.
        let mut block = [[0.0f32; STRIP]; STRIP];
        let mut col = 0;
        while col < self.width {
            let cols = STRIP.min(self.width - col);
            for (k, block_row) in block.iter_mut().enumerate().take(count) {
                let start = (first + k) * self.row_stride + 3 * col;
                let px = &self.pixels[start..start + 3 * cols];
                for (v, p) in block_row.iter_mut().zip(px.chunks_exact(3)) {
                    *v = luma(p[0], p[1], p[2]);
                }
            }
            transpose_block(t, &block, &mut out[col..col + cols]);
            col += cols;
        }
    }
}

/// An RGB image seen rotated or mirrored (one of the seven dihedral variants), converted to luma
/// as [`RgbSource`] does, read straight from the source pixels: the variant's luma plane is never
/// materialised, so hashing a variant costs one streaming pass like the image itself.
///
/// A variant either keeps the axes (rot180, flipx, flipy: a variant row is a source row, maybe
/// reversed) or swaps them (rot90, rot270, transpose, anti-transpose: a variant row is a source
/// column). In the swapped case a strip of [`STRIP`] variant rows is [`STRIP`] adjacent source
/// columns, so each variant column's lanes are [`STRIP`] adjacent pixels of one source row:
/// read contiguously and written without a transpose. Reading a column per variant row instead
/// (the per-pixel copy this replaces) touched a new cache line for every pixel.
pub(crate) struct DihedralRgbSource<'a> {
    pub(crate) rgb: RgbSource<'a>,
    /// Variant rows are source columns (and variant columns source rows).
    pub(crate) swap: bool,
    /// The source row index runs backwards (`height - 1 - i`).
    pub(crate) reverse_rows: bool,
    /// The source column index runs backwards (`width - 1 - j`).
    pub(crate) reverse_cols: bool,
    /// Swapped variants: the luma of [`BAND`] variant rows (several strips) read in one sweep
    /// down the source rows, `[x][row - first]`, so each sweep pays the cache and TLB misses of
    /// touching every source row once for several strips.
    band: std::cell::RefCell<Band>,
}

/// Variant rows per sweep of a swapped variant: 4 strips (768 KB of luma for a source 3000
/// rows high). Measured on rot90 of a 12 MP photo (busy 2-core VM): one strip at a time
/// 21.5 ms, 2 strips 17-21 ms, 4 strips 15.8 ms, 8 strips 38-44 ms (the band no longer stays
/// in cache).
const BAND: usize = 4 * STRIP;

#[derive(Default)]
struct Band {
    /// The first variant row held, and how many (0: empty).
    first: usize,
    rows: usize,
    luma: Vec<[f32; BAND]>,
}

impl<'a> DihedralRgbSource<'a> {
    /// Variant `index` in `DihedralHashes::named_variants` order (rot90 = 90 degrees
    /// counter-clockwise, rot180, rot270, flipx, flipy, flipplus1, flipminus1), or `None`.
    pub(crate) fn new(rgb: RgbSource<'a>, index: usize) -> Option<Self> {
        // (swap, reverse_rows, reverse_cols): variant pixel (x, y) is source pixel
        // (row, col) = swap ? (x', y') : (y', x'), primed indices reversed as flagged.
        let (swap, reverse_rows, reverse_cols) = match index {
            0 => (true, false, true),  // rot90: (x, w-1-y)
            1 => (false, true, true),  // rot180: (h-1-y, w-1-x)
            2 => (true, true, false),  // rot270: (h-1-x, y)
            3 => (false, true, false), // flipx: (h-1-y, x)
            4 => (false, false, true), // flipy: (y, w-1-x)
            5 => (true, false, false), // flipplus1: (x, y)
            6 => (true, true, true),   // flipminus1: (h-1-x, w-1-y)
            _ => return None,
        };
        Some(DihedralRgbSource {
            rgb,
            swap,
            reverse_rows,
            reverse_cols,
            band: Default::default(),
        })
    }

    /// The source row index of `i`.
    #[inline(always)]
    fn src_row(&self, i: usize) -> usize {
        if self.reverse_rows {
            self.rgb.height - 1 - i
        } else {
            i
        }
    }

    /// The pixels of source row `row`, columns `first..first + count` in variant order (the
    /// source columns `width - first - count..width - first` when columns run backwards), as
    /// luma into `out[0..count]`.
    #[inline(always)]
    fn row_run(&self, row: usize, first: usize, count: usize, out: &mut [f32]) {
        let w = self.rgb.width;
        let start_col = if self.reverse_cols {
            w - first - count
        } else {
            first
        };
        let start = row * self.rgb.row_stride + 3 * start_col;
        let px = &self.rgb.pixels[start..start + 3 * count];
        if self.reverse_cols {
            for (v, p) in out[..count].iter_mut().rev().zip(px.chunks_exact(3)) {
                *v = luma(p[0], p[1], p[2]);
            }
        } else {
            for (v, p) in out[..count].iter_mut().zip(px.chunks_exact(3)) {
                *v = luma(p[0], p[1], p[2]);
            }
        }
    }
}

impl LumaSource for DihedralRgbSource<'_> {
    fn width(&self) -> usize {
        if self.swap {
            self.rgb.height
        } else {
            self.rgb.width
        }
    }
    fn height(&self) -> usize {
        if self.swap {
            self.rgb.width
        } else {
            self.rgb.height
        }
    }
    #[inline(always)]
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes], t: impl Transpose) {
        if self.swap {
            // Variant column x is source row src_row(x); its lanes are the variant rows
            // first..first + count, i.e. `count` adjacent pixels of that source row, read
            // BAND rows at a time.
            let mut band = self.band.borrow_mut();
            if first < band.first || first + count > band.first + band.rows {
                let rows = BAND.min(self.rgb.width - first);
                band.luma.resize(self.rgb.height, [0.0; BAND]);
                for x in 0..self.rgb.height {
                    let row = self.src_row(x);
                    self.row_run(row, first, rows, &mut band.luma[x]);
                }
                band.first = first;
                band.rows = rows;
            }
            let offset = first - band.first;
            for (lanes, held) in out.iter_mut().zip(&band.luma) {
                lanes[..count].copy_from_slice(&held[offset..offset + count]);
            }
        } else {
            // As RgbSource: blocks of STRIP variant columns from each (maybe reversed) source
            // row, transposed into lanes.
            let width = self.rgb.width;
            let mut block = [[0.0f32; STRIP]; STRIP];
            let mut col = 0;
            while col < width {
                let cols = STRIP.min(width - col);
                for (k, block_row) in block.iter_mut().enumerate().take(count) {
                    self.row_run(self.src_row(first + k), col, cols, block_row);
                }
                transpose_block(t, &block, &mut out[col..col + cols]);
                col += cols;
            }
        }
    }
}

/// A 16x16 float transpose, `out[c][k] = block[k][c]`.
///
/// The strips switch between rows (vertical passes) and column lanes (horizontal passes) three
/// times per pixel; done element by element that was about 4 of the ~19 instructions per pixel.
pub(crate) trait Transpose: Copy {
    /// Transposes one block.
    fn transpose(self, block: &[[f32; STRIP]; STRIP], out: &mut [[f32; STRIP]; STRIP]);
}

/// The transpose in portable code.
#[derive(Clone, Copy)]
pub(crate) struct Portable;

impl Transpose for Portable {
    #[inline(always)]
    fn transpose(self, block: &[[f32; STRIP]; STRIP], out: &mut [[f32; STRIP]; STRIP]) {
        for (c, lanes) in out.iter_mut().enumerate() {
            for (k, v) in lanes.iter_mut().enumerate() {
                *v = block[k][c];
            }
        }
    }
}

/// Proof that the CPU has AVX2: only [`Avx2::detect`] makes one.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    /// `Some` if and only if this CPU supports AVX2.
    pub(crate) fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Transpose for Avx2 {
    /// Four 8x8 transposes with the standard AVX sequence (unpack, shuffle, permute). Always
    /// inlined, so that it lands in `Downscaler::downscale_avx2`, where the intrinsics inline.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn transpose(self, block: &[[f32; STRIP]; STRIP], out: &mut [[f32; STRIP]; STRIP]) {
        use std::arch::x86_64::*;
        // SAFETY: an `Avx2` value exists only if `is_x86_feature_detected!("avx2")` returned
        // true, so the instructions are supported. Every load and store addresses 8 floats at
        // offset 0 or 8 of a `[f32; 16]` row borrowed for this call; `loadu`/`storeu` need no
        // alignment.
        unsafe {
            for (row_half, out_base) in [(0usize, 0usize), (1, 8)] {
                for (col_half, row_base) in [(0usize, 0usize), (1, 8)] {
                    let r =
                        |i: usize| _mm256_loadu_ps(block[row_base + i].as_ptr().add(8 * row_half));
                    let t0 = _mm256_unpacklo_ps(r(0), r(1));
                    let t1 = _mm256_unpackhi_ps(r(0), r(1));
                    let t2 = _mm256_unpacklo_ps(r(2), r(3));
                    let t3 = _mm256_unpackhi_ps(r(2), r(3));
                    let t4 = _mm256_unpacklo_ps(r(4), r(5));
                    let t5 = _mm256_unpackhi_ps(r(4), r(5));
                    let t6 = _mm256_unpacklo_ps(r(6), r(7));
                    let t7 = _mm256_unpackhi_ps(r(6), r(7));
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let rows = [
                        _mm256_permute2f128_ps::<0x20>(u0, u4),
                        _mm256_permute2f128_ps::<0x20>(u1, u5),
                        _mm256_permute2f128_ps::<0x20>(u2, u6),
                        _mm256_permute2f128_ps::<0x20>(u3, u7),
                        _mm256_permute2f128_ps::<0x31>(u0, u4),
                        _mm256_permute2f128_ps::<0x31>(u1, u5),
                        _mm256_permute2f128_ps::<0x31>(u2, u6),
                        _mm256_permute2f128_ps::<0x31>(u3, u7),
                    ];
                    for (i, v) in rows.into_iter().enumerate() {
                        _mm256_storeu_ps(out[out_base + i].as_mut_ptr().add(8 * col_half), v);
                    }
                }
            }
        }
    }
}

/// Writes `block[k][c]` to `out[c][k]` for the columns `out` covers (at most [`STRIP`]).
#[inline(always)]
fn transpose_block(t: impl Transpose, block: &[[f32; STRIP]; STRIP], out: &mut [Lanes]) {
    if let Ok(full) = <&mut [Lanes; STRIP]>::try_from(&mut *out) {
        t.transpose(block, full);
    } else {
        let mut transposed = [[0.0f32; STRIP]; STRIP];
        t.transpose(block, &mut transposed);
        let n = out.len();
        out.copy_from_slice(&transposed[..n]);
    }
}

/// Rows `0..STRIP` of a row-major strip (`width` floats per row) into column lanes.
#[inline(always)]
fn rows_to_lanes(t: impl Transpose, rows: &[f32], width: usize, out: &mut [Lanes]) {
    let mut block = [[0.0f32; STRIP]; STRIP];
    let mut col = 0;
    while col < width {
        let cols = STRIP.min(width - col);
        for (k, block_row) in block.iter_mut().enumerate() {
            let src = &rows[k * width + col..k * width + col + cols];
            // Fixed-size copies compile to a few vector moves; slice copies of run-time length
            // were calls to memmove (a fifth of the time).
            match <&[f32; STRIP]>::try_from(src) {
                Ok(full) => *block_row = *full,
                Err(_) => block_row[..cols].copy_from_slice(src),
            }
        }
        transpose_block(t, &block, &mut out[col..col + cols]);
        col += cols;
    }
}

/// Column lanes into rows `0..STRIP` of a row-major strip (`width` floats per row).
#[inline(always)]
fn lanes_to_rows(t: impl Transpose, lanes: &[Lanes], width: usize, rows: &mut [f32]) {
    let mut block = [[0.0f32; STRIP]; STRIP];
    let mut transposed = [[0.0f32; STRIP]; STRIP];
    let mut col = 0;
    while col < width {
        let cols = STRIP.min(width - col);
        let source = match <&[Lanes; STRIP]>::try_from(&lanes[col..col + cols]) {
            Ok(full) => full,
            Err(_) => {
                block[..cols].copy_from_slice(&lanes[col..col + cols]);
                &block
            }
        };
        t.transpose(source, &mut transposed);
        for (k, row) in transposed.iter().enumerate() {
            let dst = &mut rows[k * width + col..k * width + col + cols];
            match <&mut [f32; STRIP]>::try_from(&mut *dst) {
                Ok(full) => *full = *row,
                Err(_) => dst.copy_from_slice(&row[..cols]),
            }
        }
        col += cols;
    }
}

/// A float luma buffer, row-major.
pub(crate) struct FloatSource<'a> {
    pub(crate) luma: &'a [f32],
    pub(crate) width: usize,
    pub(crate) height: usize,
}

impl LumaSource for FloatSource<'_> {
    fn width(&self) -> usize {
        self.width
    }
    fn height(&self) -> usize {
        self.height
    }
    #[inline(always)]
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes], _t: impl Transpose) {
        for k in 0..count {
            let row = &self.luma[(first + k) * self.width..(first + k + 1) * self.width];
            for (&v, lanes) in row.iter().zip(out.iter_mut()) {
                lanes[k] = v;
            }
        }
    }
}

/// Where the outputs of a horizontal box filter go.
trait Sink {
    /// Takes output `index`: `sum / count` per lane (the caller divides only where it keeps).
    fn emit(&mut self, index: usize, sum: &Lanes, count: f32);
}

/// Keeps every output, one `Lanes` per column.
struct AllColumns<'a>(&'a mut [Lanes]);

impl Sink for AllColumns<'_> {
    #[inline(always)]
    fn emit(&mut self, index: usize, sum: &Lanes, count: f32) {
        for (o, s) in self.0[index].iter_mut().zip(sum) {
            *o = *s / count;
        }
    }
}

/// Keeps only the sampled columns, as 64-wide rows.
struct SampledColumns<'a> {
    /// (column, output index) pairs in column order.
    columns: &'a [(usize, usize)],
    next: usize,
    /// The column of `columns[next]`, or `usize::MAX` when all are taken.
    next_column: usize,
    rows: &'a mut [[f32; 64]],
}

impl Sink for SampledColumns<'_> {
    #[inline(always)]
    fn emit(&mut self, index: usize, sum: &Lanes, count: f32) {
        // The common case, a column nobody samples, is one compare.
        while index == self.next_column {
            let j = self.columns[self.next].1;
            for (row, s) in self.rows.iter_mut().zip(sum) {
                row[j] = *s / count;
            }
            self.next += 1;
            self.next_column = self.columns.get(self.next).map_or(usize::MAX, |c| c.0);
        }
    }
}

/// A 1-D box filter along a sequence of [`Lanes`] that is entirely in memory: one step per
/// element, `STRIP` independent running sums, in the reference's exact order of operations.
#[inline(always)]
fn box_along_strip(input: &[Lanes], window: usize, sink: &mut impl Sink) {
    let len = input.len();
    let half = (window + 2) / 2;
    let mut sum: Lanes = [0.0; STRIP];
    let mut count = 0u32;
    let mut out = 0usize;
    let mut right = 0usize;
    for _ in 0..half - 1 {
        add(&mut sum, &input[right]);
        count += 1;
        right += 1;
    }
    for _ in 0..window - half + 1 {
        add(&mut sum, &input[right]);
        count += 1;
        sink.emit(out, &sum, count as f32);
        right += 1;
        out += 1;
    }
    let full = count as f32;
    for left in 0..len - window {
        add_sub(&mut sum, &input[right], &input[left]);
        sink.emit(out, &sum, full);
        right += 1;
        out += 1;
    }
    for leaving in &input[len - window..len - window + half - 1] {
        sub(&mut sum, leaving);
        count -= 1;
        sink.emit(out, &sum, count as f32);
        out += 1;
    }
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add(sum: &mut Lanes, x: &Lanes) {
    for i in 0..STRIP {
        sum[i] += x[i];
    }
}

#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn sub(sum: &mut Lanes, x: &Lanes) {
    for i in 0..STRIP {
        sum[i] -= x[i];
    }
}

/// `sum += x; sum -= y` as two roundings, the reference's phase-3 order.
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn add_sub(sum: &mut Lanes, x: &Lanes, y: &Lanes) {
    // Index loops over the fixed lane count: LLVM turns these into whole-vector operations,
    // where the zipped iterators were left as scalar code.
    for i in 0..STRIP {
        sum[i] += x[i];
        sum[i] -= y[i];
    }
}

/// A 1-D box filter fed one input vector at a time (a vertical pass: each lane is a column).
#[derive(Default)]
struct RunningBox {
    lanes: usize,
    window: usize,
    half: usize,
    len: usize,
    received: usize,
    count: u32,
    sum: Vec<f32>,
    /// The last `window` inputs, slot `index % window`.
    ring: Vec<f32>,
}

impl RunningBox {
    fn reset(&mut self, lanes: usize, window: usize, len: usize) {
        self.lanes = lanes;
        self.window = window;
        self.half = (window + 2) / 2;
        self.len = len;
        self.received = 0;
        self.count = 0;
        self.sum.clear();
        self.sum.resize(lanes, 0.0);
        self.ring.resize(window * lanes, 0.0);
    }

    /// Feeds input `received`; returns the index of the output now ready, if one is.
    #[inline]
    fn push(&mut self, x: &[f32]) -> Option<usize> {
        let index = self.received;
        let slot = index % self.window;
        let old = &mut self.ring[slot * self.lanes..(slot + 1) * self.lanes];
        if index >= self.window {
            for ((s, a), o) in self.sum.iter_mut().zip(x).zip(old.iter_mut()) {
                *s += *a;
                *s -= *o;
                *o = *a;
            }
        } else {
            for ((s, a), o) in self.sum.iter_mut().zip(x).zip(old.iter_mut()) {
                *s += *a;
                *o = *a;
            }
            self.count += 1;
        }
        self.received += 1;
        (index + 1 >= self.half).then(|| index + 1 - self.half)
    }

    /// After all inputs: the trailing outputs, `half - 1` of them; step `t` returns its index.
    fn drain_step(&mut self, t: usize) -> usize {
        let left = self.len - self.window + t;
        let slot = left % self.window;
        let old = &self.ring[slot * self.lanes..(slot + 1) * self.lanes];
        for (s, o) in self.sum.iter_mut().zip(old) {
            *s -= *o;
        }
        self.count -= 1;
        self.len - (self.half - 1) + t
    }

    fn trailing_outputs(&self) -> usize {
        self.half - 1
    }

    /// The current output: `sum / count` per lane.
    #[inline]
    fn output_into(&self, out: &mut [f32]) {
        let count = self.count as f32;
        for (o, s) in out.iter_mut().zip(&self.sum) {
            *o = *s / count;
        }
    }
}

/// Reusable buffers for downscaling images to 64x64; one per thread.
#[derive(Default)]
pub(crate) struct Downscaler {
    /// The current strip's luma, one `Lanes` per column.
    luma_t: Vec<Lanes>,
    /// Horizontal pass 1 output for the strip, one `Lanes` per column.
    pass1_t: Vec<Lanes>,
    /// The same, row-major, as the vertical pass consumes it.
    pass1_rows: Vec<f32>,
    pass2: RunningBox,
    /// Vertical pass 1 outputs collected row-major until a strip is full.
    pass2_rows: Vec<f32>,
    pass2_rows_filled: usize,
    /// The full strip of vertical pass 1 outputs, one `Lanes` per column.
    pass2_t: Vec<Lanes>,
    pass3_rows: Vec<[f32; 64]>,
    pass4: RunningBox,
    pass4_rows_emitted: usize,
    sample_cols: Vec<(usize, usize)>,
    sample_rows: Vec<(usize, usize)>,
}

impl Downscaler {
    /// Filters and decimates `source` (at least 1x1) into `out` (64x64 row-major), with the
    /// widest vector instructions this CPU has. The result is the same bits on every path.
    pub(crate) fn run(&mut self, source: &impl LumaSource, out: &mut [f32; 64 * 64]) {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = Avx2::detect() {
            // SAFETY: `downscale_avx2` only lets the compiler use AVX2 instructions for the
            // same code; the CPU supports AVX2, as the `Avx2` token proves.
            #[allow(unsafe_code)]
            unsafe {
                return self.downscale_avx2(source, out, avx2);
            }
        }
        self.downscale(source, out, Portable)
    }

    /// [`Downscaler::downscale`] compiled for AVX2: 8-lane float operations, so the 16 running
    /// sums of a strip take two instructions instead of four, and the strip transposes use
    /// register shuffles ([`Avx2`]). Measured per 1600x1000 image on one core: 6.3 ms portable
    /// (SSE2), 4.1 ms with AVX2 code generation, 3.0 ms with the shuffle transposes and
    /// fixed-size block copies. AVX-512 code generation measured slower here.
    /// FMA is not enabled: Rust never contracts `a * b + c`, and leaving it off makes that
    /// independent of the compiler.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn downscale_avx2(&mut self, source: &impl LumaSource, out: &mut [f32; 64 * 64], t: Avx2) {
        self.downscale(source, out, t)
    }

    /// Filters and decimates `source` (at least 1x1) into `out` (64x64 row-major), exactly as
    /// the reference's `jaroszFilterFloat` with 2 passes followed by `decimateFloat`.
    #[inline(always)]
    pub(crate) fn downscale(
        &mut self,
        source: &impl LumaSource,
        out: &mut [f32; 64 * 64],
        t: impl Transpose,
    ) {
        let width = source.width();
        let height = source.height();
        let window_along_rows = window_size(width);
        let window_along_cols = window_size(height);

        self.sample_cols = pairs(&sample_positions(width));
        self.sample_rows = pairs(&sample_positions(height));
        self.luma_t.resize(width, [0.0; STRIP]);
        self.pass1_t.resize(width, [0.0; STRIP]);
        self.pass1_rows.resize(STRIP * width, 0.0);
        self.pass2.reset(width, window_along_cols, height);
        self.pass2_rows.resize(STRIP * width, 0.0);
        self.pass2_rows_filled = 0;
        self.pass2_t.resize(width, [0.0; STRIP]);
        self.pass3_rows.resize(STRIP, [0.0; 64]);
        self.pass4.reset(64, window_along_cols, height);
        self.pass4_rows_emitted = 0;

        let mut first = 0;
        while first < height {
            let count = STRIP.min(height - first);
            source.fill_strip(first, count, &mut self.luma_t, t);
            // Horizontal pass 1: every output, divided in place of the sums.
            box_along_strip(
                &self.luma_t,
                window_along_rows,
                &mut AllColumns(&mut self.pass1_t),
            );
            lanes_to_rows(t, &self.pass1_t, width, &mut self.pass1_rows);
            for k in 0..count {
                let row = &self.pass1_rows[k * width..(k + 1) * width];
                if self.pass2.push(row).is_some() {
                    self.pass2_output(width, window_along_rows, out, t);
                }
            }
            first += count;
        }
        for step in 0..self.pass2.trailing_outputs() {
            self.pass2.drain_step(step);
            self.pass2_output(width, window_along_rows, out, t);
        }
        if self.pass2_rows_filled > 0 {
            self.flush_pass3(width, window_along_rows, out, t);
        }
        for step in 0..self.pass4.trailing_outputs() {
            let index = self.pass4.drain_step(step);
            self.pass4_output(index, out);
        }
    }

    /// Collects the vertical pass 1 output now ready; runs pass 2 when a strip is full.
    #[inline(always)]
    fn pass2_output(
        &mut self,
        width: usize,
        window_along_rows: usize,
        out: &mut [f32; 4096],
        t: impl Transpose,
    ) {
        let k = self.pass2_rows_filled;
        self.pass2
            .output_into(&mut self.pass2_rows[k * width..(k + 1) * width]);
        self.pass2_rows_filled += 1;
        if self.pass2_rows_filled == STRIP {
            self.flush_pass3(width, window_along_rows, out, t);
        }
    }

    /// Horizontal pass 2 on the collected rows, at the sampled columns only, then vertical pass 2.
    #[inline(always)]
    fn flush_pass3(
        &mut self,
        width: usize,
        window_along_rows: usize,
        out: &mut [f32; 4096],
        t: impl Transpose,
    ) {
        rows_to_lanes(t, &self.pass2_rows, width, &mut self.pass2_t);
        let mut sink = SampledColumns {
            columns: &self.sample_cols,
            next: 0,
            next_column: self.sample_cols[0].0,
            rows: &mut self.pass3_rows,
        };
        box_along_strip(&self.pass2_t, window_along_rows, &mut sink);
        let filled = self.pass2_rows_filled;
        self.pass2_rows_filled = 0;
        for k in 0..filled {
            let row = self.pass3_rows[k];
            if let Some(index) = self.pass4.push(&row) {
                self.pass4_output(index, out);
            }
        }
    }

    /// Keeps the vertical pass 2 output `index` if it is a sampled row.
    #[inline(always)]
    fn pass4_output(&mut self, index: usize, out: &mut [f32; 4096]) {
        while self.pass4_rows_emitted < self.sample_rows.len()
            && self.sample_rows[self.pass4_rows_emitted].0 == index
        {
            let i = self.sample_rows[self.pass4_rows_emitted].1;
            self.pass4.output_into(&mut out[i * 64..(i + 1) * 64]);
            self.pass4_rows_emitted += 1;
        }
    }
}

/// (position, output index) pairs in position order; a position repeats when old < 64.
fn pairs(positions: &[usize; 64]) -> Vec<(usize, usize)> {
    positions.iter().enumerate().map(|(i, &p)| (p, i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_transpose_equals_portable() {
        let Some(avx2) = Avx2::detect() else {
            hashguard_testsupport::skipped("avx2_transpose_equals_portable", "no AVX2 on this CPU");
            return;
        };
        let mut block = [[0.0f32; STRIP]; STRIP];
        for (k, row) in block.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = (k * 100 + c) as f32;
            }
        }
        let mut a = [[0.0f32; STRIP]; STRIP];
        let mut b = [[0.0f32; STRIP]; STRIP];
        Portable.transpose(&block, &mut a);
        avx2.transpose(&block, &mut b);
        assert_eq!(a[3][5], 503.0);
        assert_eq!(a, b);
    }

    /// The dispatched path (AVX2 where the CPU has it) and the portable path give the same bits.
    #[test]
    fn simd_and_portable_paths_agree() {
        for (width, height) in [(5usize, 5usize), (17, 300), (640, 481), (1001, 77)] {
            let pixels: Vec<u8> = (0..width * height * 3)
                .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
                .collect();
            let source = RgbSource {
                pixels: &pixels,
                width,
                height,
                row_stride: 3 * width,
            };
            let mut a = [0.0f32; 4096];
            let mut b = [0.0f32; 4096];
            Downscaler::default().run(&source, &mut a);
            Downscaler::default().downscale(&source, &mut b, Portable);
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{width}x{height}"
            );
        }
    }
}

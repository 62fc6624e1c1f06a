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
    (old + 2 * 64 - 1) / (2 * 64)
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
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes]);
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
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes]) {
        for k in 0..count {
            let start = (first + k) * self.row_stride;
            let row = &self.pixels[start..start + 3 * self.width];
            for (px, lanes) in row.chunks_exact(3).zip(out.iter_mut()) {
                lanes[k] = luma(px[0], px[1], px[2]);
            }
        }
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
    fn fill_strip(&self, first: usize, count: usize, out: &mut [Lanes]) {
        for k in 0..count {
            let row = &self.luma[(first + k) * self.width..(first + k + 1) * self.width];
            for (&v, lanes) in row.iter().zip(out.iter_mut()) {
                lanes[k] = v;
            }
        }
    }
}

/// A 1-D box filter along a sequence of [`Lanes`] that is entirely in memory: one step per
/// element, `STRIP` independent running sums. Calls `emit(output_index, sums, window_count)` for
/// every output; the caller divides where it needs the value.
#[inline(always)]
fn box_along_strip(input: &[Lanes], window: usize, mut emit: impl FnMut(usize, &Lanes, f32)) {
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
        emit(out, &sum, count as f32);
        right += 1;
        out += 1;
    }
    let full = count as f32;
    for left in 0..len - window {
        add_sub(&mut sum, &input[right], &input[left]);
        emit(out, &sum, full);
        right += 1;
        out += 1;
    }
    for left in len - window..len - window + half - 1 {
        sub(&mut sum, &input[left]);
        count -= 1;
        emit(out, &sum, count as f32);
        out += 1;
    }
}

#[inline(always)]
fn add(sum: &mut Lanes, x: &Lanes) {
    for (s, v) in sum.iter_mut().zip(x) {
        *s += *v;
    }
}

#[inline(always)]
fn sub(sum: &mut Lanes, x: &Lanes) {
    for (s, v) in sum.iter_mut().zip(x) {
        *s -= *v;
    }
}

/// `sum += x; sum -= y` as two roundings, the reference's phase-3 order.
#[inline(always)]
fn add_sub(sum: &mut Lanes, x: &Lanes, y: &Lanes) {
    for ((s, a), b) in sum.iter_mut().zip(x).zip(y) {
        *s += *a;
        *s -= *b;
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
    luma_t: Vec<Lanes>,
    pass1_rows: Vec<f32>,
    pass2: RunningBox,
    pass2_row: Vec<f32>,
    pass2_t: Vec<Lanes>,
    pass2_rows_filled: usize,
    pass3_rows: Vec<[f32; 64]>,
    pass4: RunningBox,
    pass4_rows_emitted: usize,
    sample_cols: Vec<(usize, usize)>,
    sample_rows: Vec<(usize, usize)>,
}

impl Downscaler {
    /// Filters and decimates `source` (at least 1x1) into `out` (64x64 row-major), exactly as
    /// the reference's `jaroszFilterFloat` with 2 passes followed by `decimateFloat`.
    pub(crate) fn downscale(&mut self, source: &impl LumaSource, out: &mut [f32; 64 * 64]) {
        let width = source.width();
        let height = source.height();
        let window_along_rows = window_size(width);
        let window_along_cols = window_size(height);

        self.sample_cols = pairs(&sample_positions(width));
        self.sample_rows = pairs(&sample_positions(height));
        self.luma_t.resize(width, [0.0; STRIP]);
        self.pass1_rows.resize(STRIP * width, 0.0);
        self.pass2.reset(width, window_along_cols, height);
        self.pass2_row.resize(width, 0.0);
        self.pass2_t.resize(width, [0.0; STRIP]);
        self.pass2_rows_filled = 0;
        self.pass3_rows.resize(STRIP, [0.0; 64]);
        self.pass4.reset(64, window_along_cols, height);
        self.pass4_rows_emitted = 0;

        let mut first = 0;
        while first < height {
            let count = STRIP.min(height - first);
            source.fill_strip(first, count, &mut self.luma_t);
            // Pass 1 (rows): all outputs, written back row-major for the vertical pass.
            let rows = &mut self.pass1_rows;
            box_along_strip(&self.luma_t, window_along_rows, |col, sum, n| {
                for k in 0..STRIP {
                    rows[k * width + col] = sum[k] / n;
                }
            });
            for k in 0..count {
                let row = &self.pass1_rows[k * width..(k + 1) * width];
                if self.pass2.push(row).is_some() {
                    self.pass2_output(width, window_along_rows, out);
                }
            }
            first += count;
        }
        for t in 0..self.pass2.trailing_outputs() {
            self.pass2.drain_step(t);
            self.pass2_output(width, window_along_rows, out);
        }
        if self.pass2_rows_filled > 0 {
            self.flush_pass3(window_along_rows, out);
        }
        for t in 0..self.pass4.trailing_outputs() {
            let index = self.pass4.drain_step(t);
            self.pass4_output(index, out);
        }
    }

    /// Takes the vertical pass 1 output now ready into the strip for horizontal pass 2.
    fn pass2_output(&mut self, width: usize, window_along_rows: usize, out: &mut [f32; 4096]) {
        self.pass2.output_into(&mut self.pass2_row);
        let k = self.pass2_rows_filled;
        for (lanes, v) in self.pass2_t[..width].iter_mut().zip(&self.pass2_row) {
            lanes[k] = *v;
        }
        self.pass2_rows_filled += 1;
        if self.pass2_rows_filled == STRIP {
            self.flush_pass3(window_along_rows, out);
        }
    }

    /// Horizontal pass 2 on the filled strip, at the sampled columns only, then vertical pass 2.
    fn flush_pass3(&mut self, window_along_rows: usize, out: &mut [f32; 4096]) {
        let rows = &mut self.pass3_rows;
        let cols = &self.sample_cols;
        let mut next = 0usize;
        box_along_strip(&self.pass2_t, window_along_rows, |col, sum, n| {
            while next < cols.len() && cols[next].0 == col {
                let j = cols[next].1;
                for k in 0..STRIP {
                    rows[k][j] = sum[k] / n;
                }
                next += 1;
            }
        });
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

//! A direct transcription of the reference's whole-image filter, kept as the oracle that the
//! streaming implementation in this crate is tested and benchmarked against. It allocates two
//! full-size float buffers and runs the four passes one after the other, as the C++ does.

/// The reference's `box1DFloat`: a running-sum box filter of `len` elements `stride` apart.
fn box_1d(input: &[f32], output: &mut [f32], len: usize, stride: usize, window: usize) {
    let half = (window + 2) / 2;
    let (mut li, mut ri, mut oi) = (0usize, 0usize, 0usize);
    let mut sum = 0.0f32;
    let mut count = 0u32;
    for _ in 0..half - 1 {
        sum += input[ri];
        count += 1;
        ri += stride;
    }
    for _ in 0..window - half + 1 {
        sum += input[ri];
        count += 1;
        output[oi] = sum / count as f32;
        ri += stride;
        oi += stride;
    }
    for _ in 0..len - window {
        sum += input[ri];
        sum -= input[li];
        output[oi] = sum / count as f32;
        li += stride;
        ri += stride;
        oi += stride;
    }
    for _ in 0..half - 1 {
        sum -= input[li];
        count -= 1;
        output[oi] = sum / count as f32;
        li += stride;
        oi += stride;
    }
}

/// Filters `luma` (height x width, row-major; modified in place) with the reference's two
/// Jarosz passes and decimates it to 64x64 (`jaroszFilterFloat` + `decimateFloat`).
///
/// Panics if `luma.len() != width * height` or a dimension is 0: this is test code.
pub fn downscale(luma: &mut [f32], width: usize, height: usize) -> [f32; 4096] {
    assert_eq!(luma.len(), width * height);
    assert!(width > 0 && height > 0);
    let window_along_rows = crate::jarosz::window_size(width);
    let window_along_cols = crate::jarosz::window_size(height);
    let mut other = vec![0.0f32; luma.len()];
    for _ in 0..2 {
        for r in 0..height {
            box_1d(
                &luma[r * width..],
                &mut other[r * width..],
                width,
                1,
                window_along_rows,
            );
        }
        for c in 0..width {
            box_1d(
                &other[c..],
                &mut luma[c..],
                height,
                width,
                window_along_cols,
            );
        }
    }
    let rows = crate::jarosz::sample_positions(height);
    let cols = crate::jarosz::sample_positions(width);
    let mut out = [0.0f32; 4096];
    for (i, &r) in rows.iter().enumerate() {
        for (j, &c) in cols.iter().enumerate() {
            out[i * 64 + j] = luma[r * width + c];
        }
    }
    out
}

/// Float luma of interleaved RGB, row-major, as `fillFloatLumaFromRGB`.
pub fn luma_from_rgb(rgb: &[u8]) -> Vec<f32> {
    rgb.chunks_exact(3)
        .map(|p| crate::jarosz::luma(p[0], p[1], p[2]))
        .collect()
}

//! The 64x64 -> 16x16 DCT, the quality metric, the median and the bits (pdq.md 2.4-2.8).

use crate::dct_table::DCT_MATRIX_BITS;
use crate::Hash256;

/// The DCT matrix D (16x64), row-major.
const D: [[f32; 64]; 16] = {
    let mut d = [[0.0f32; 64]; 16];
    let mut i = 0;
    while i < 16 {
        let mut j = 0;
        while j < 64 {
            d[i][j] = f32::from_bits(DCT_MATRIX_BITS[i][j]);
            j += 1;
        }
        i += 1;
    }
    d
};

/// Dᵀ (64x16), so the second product reads contiguous rows.
const D_T: [[f32; 16]; 64] = {
    let mut t = [[0.0f32; 16]; 64];
    let mut i = 0;
    while i < 16 {
        let mut j = 0;
        while j < 64 {
            t[j][i] = D[i][j];
            j += 1;
        }
        i += 1;
    }
    t
};

/// `B = D·A·Dᵀ` with each sum accumulated in float from k = 0 upwards, as `dct64To16`.
/// Returns B row-major: `B[i][j]` at `i * 16 + j`.
pub(crate) fn dct64_to_16(a: &[f32; 4096]) -> [f32; 256] {
    let mut t = [[0.0f32; 64]; 16];
    for (d_row, t_row) in D.iter().zip(t.iter_mut()) {
        for (k, &d) in d_row.iter().enumerate() {
            let a_row = &a[k * 64..(k + 1) * 64];
            for (acc, &v) in t_row.iter_mut().zip(a_row) {
                *acc += d * v;
            }
        }
    }
    let mut b = [0.0f32; 256];
    for (t_row, b_row) in t.iter().zip(b.chunks_exact_mut(16)) {
        let mut acc = [0.0f32; 16];
        for (&tv, dt_row) in t_row.iter().zip(D_T.iter()) {
            for (s, &d) in acc.iter_mut().zip(dt_row) {
                *s += tv * d;
            }
        }
        b_row.copy_from_slice(&acc);
    }
    b
}

/// The reference's image-domain quality metric on the 64x64 buffer, 0..=100.
pub(crate) fn quality(a: &[f32; 4096]) -> u8 {
    let mut gradient_sum: i64 = 0;
    for i in 0..63 {
        for j in 0..64 {
            gradient_sum += step(a[i * 64 + j], a[(i + 1) * 64 + j]);
        }
    }
    for i in 0..64 {
        for j in 0..63 {
            gradient_sum += step(a[i * 64 + j], a[i * 64 + j + 1]);
        }
    }
    (gradient_sum / 90).min(100) as u8
}

#[inline(always)]
fn step(u: f32, v: f32) -> i64 {
    // `as i32` truncates toward zero like the C++ conversion for every value this can produce.
    ((((u - v) * 100.0f32) / 255.0f32) as i32 as i64).abs()
}

/// The lower median of 256 floats by Torben Mogensen's method, exactly as the reference's
/// `torben`, including which value it returns when several are equal.
pub(crate) fn torben_median(m: &[f32; 256]) -> f32 {
    let half = m.len().div_ceil(2);
    let mut min = m[0];
    let mut max = m[0];
    for &v in &m[1..] {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    loop {
        let guess = (min + max) / 2.0;
        let (mut less, mut greater, mut equal) = (0usize, 0usize, 0usize);
        let mut max_lt_guess = min;
        let mut min_gt_guess = max;
        for &v in m {
            if v < guess {
                less += 1;
                if v > max_lt_guess {
                    max_lt_guess = v;
                }
            } else if v > guess {
                greater += 1;
                if v < min_gt_guess {
                    min_gt_guess = v;
                }
            } else {
                equal += 1;
            }
        }
        if less <= half && greater <= half {
            return if less >= half {
                max_lt_guess
            } else if less + equal >= half {
                guess
            } else {
                min_gt_guess
            };
        } else if less > greater {
            max = max_lt_guess;
        } else {
            min = min_gt_guess;
        }
    }
}

/// Bit k = i*16+j is set iff `B[i][j] > median`.
pub(crate) fn bits(b: &[f32; 256]) -> Hash256 {
    let median = torben_median(b);
    bits_with_median(b, median)
}

pub(crate) fn bits_with_median(b: &[f32; 256], median: f32) -> Hash256 {
    let mut words = [0u64; 4];
    for (k, &v) in b.iter().enumerate() {
        if v > median {
            words[k / 64] |= 1 << (k % 64);
        }
    }
    Hash256::from_words(words)
}

/// The seven dihedral transforms of B in the DCT domain (pdq.md 2.8), in the order
/// rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1.
pub(crate) fn dihedral_transforms(a: &[f32; 256]) -> [[f32; 256]; 7] {
    let mut out = [[0.0f32; 256]; 7];
    for i in 0..16 {
        for j in 0..16 {
            let v = a[i * 16 + j];
            let odd_i = i & 1 == 1;
            let odd_j = j & 1 == 1;
            let odd_sum = (i + j) & 1 == 1;
            out[0][j * 16 + i] = if odd_j { v } else { -v };
            out[1][i * 16 + j] = if odd_sum { -v } else { v };
            out[2][j * 16 + i] = if odd_i { v } else { -v };
            out[3][i * 16 + j] = if odd_i { v } else { -v };
            out[4][i * 16 + j] = if odd_j { v } else { -v };
            out[5][j * 16 + i] = v;
            out[6][j * 16 + i] = if odd_sum { -v } else { v };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_table_matches_formula() {
        // The reference's construction; libm's cos could differ by an ulp in double, which only
        // matters if a value is within an ulp of a float rounding boundary: this test would say.
        let scale = (2.0f64 / 64.0).sqrt() as f32 as f64;
        for (i, row) in D.iter().enumerate() {
            for (j, &d) in row.iter().enumerate() {
                let expected = (scale
                    * ((std::f64::consts::PI / 2.0 / 64.0) * (i + 1) as f64 * (2 * j + 1) as f64)
                        .cos()) as f32;
                assert_eq!(d.to_bits(), expected.to_bits(), "D[{i}][{j}]");
            }
        }
        assert_eq!((2.0f64 / 64.0).sqrt() as f32, f32::from_bits(0x3e3504f3));
    }

    #[test]
    fn torben_returns_lower_median() {
        let mut m = [0.0f32; 256];
        for (i, v) in m.iter_mut().enumerate() {
            *v = ((i * 97) % 256) as f32;
        }
        assert_eq!(torben_median(&m), 127.0);
        let flat = [3.5f32; 256];
        assert_eq!(torben_median(&flat), 3.5);
        assert_eq!(bits(&flat), Hash256::ZERO);
    }

    #[test]
    fn quality_of_flat_and_striped() {
        assert_eq!(quality(&[17.0; 4096]), 0);
        let mut a = [0.0f32; 4096];
        for (k, v) in a.iter_mut().enumerate() {
            *v = if (k / 64 + k % 64) % 2 == 0 {
                255.0
            } else {
                0.0
            };
        }
        assert_eq!(quality(&a), 100);
    }
}

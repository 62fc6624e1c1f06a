//! The (s, T)-detectable hash function of the Apple PSI paper (§4.3) over F_ℓ, ℓ = 2^64 − 59, used only under
//! the `silent` policy to tell real shares from synthetic ones at the threshold.
//!
//! The key is `s` polynomials of degree ≤ T − 2 (weak (T−1)-wise independent), derived from
//! `dhf_seed`. A real voucher carries `(x', p_1(x'), …, p_s(x'))`; a synthetic one carries
//! random field elements. Each value expands to the column `(1, x', …, x'^{T−2}, r_1, …, r_s)`:
//! real columns lie in a (T−1)-dimensional subspace, so any T of them are linearly dependent,
//! while up to `s` random columns are independent of it with overwhelming probability. The union
//! of the supports of the right-kernel vectors is therefore exactly the real set once there are
//! at least T real columns and at most s synthetic ones.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::params::DHF_PRIME;
use crate::suite::hkdf;

const P: u128 = DHF_PRIME as u128;

fn mul(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % P) as u64
}
fn add(a: u64, b: u64) -> u64 {
    ((u128::from(a) + u128::from(b)) % P) as u64
}
fn sub(a: u64, b: u64) -> u64 {
    ((u128::from(a) + P - u128::from(b)) % P) as u64
}
fn pow(mut a: u64, mut e: u64) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = mul(r, a);
        }
        a = mul(a, a);
        e >>= 1;
    }
    r
}
fn inv(a: u64) -> u64 {
    pow(a, DHF_PRIME - 2)
}

/// Reduces 16 uniform bytes to a field element (bias ≤ 2^-64).
pub(crate) fn field_from_bytes(b: &[u8]) -> u64 {
    let mut x = [0u8; 16];
    x.copy_from_slice(&b[..16]);
    (u128::from_le_bytes(x) % P) as u64
}

/// The DHF key: `s` polynomials of degree ≤ T − 2.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct DhfKey {
    /// Row-major: polynomial i has coefficients `coeffs[i*(T-1)..(i+1)*(T-1)]`.
    coeffs: Vec<u64>,
    s: usize,
    deg1: usize,
}

impl DhfKey {
    pub(crate) fn derive(dhf_seed: &[u8; 32], t: u16, s: u16) -> Self {
        let deg1 = usize::from(t.saturating_sub(1)).max(1);
        let mut coeffs = Vec::with_capacity(usize::from(s) * deg1);
        for i in 0..s {
            let mut j = 0usize;
            let mut block = 0u32;
            while j < deg1 {
                // 16 coefficients (256 bytes) per HKDF call.
                let bytes = hkdf::<256>(
                    dhf_seed,
                    &[
                        b"dhf",
                        &t.to_le_bytes(),
                        &i.to_le_bytes(),
                        &block.to_le_bytes(),
                    ],
                );
                for c in bytes.chunks_exact(16) {
                    if j < deg1 {
                        coeffs.push(field_from_bytes(c));
                        j += 1;
                    }
                }
                block += 1;
            }
        }
        DhfKey {
            coeffs,
            s: usize::from(s),
            deg1,
        }
    }

    /// `(x', p_1(x'), …, p_s(x'))`.
    pub(crate) fn eval(&self, x: u64) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.s + 1);
        out.push(x);
        for i in 0..self.s {
            let c = &self.coeffs[i * self.deg1..(i + 1) * self.deg1];
            let mut acc = 0u64;
            for &a in c.iter().rev() {
                acc = add(mul(acc, x), a);
            }
            out.push(acc);
        }
        out
    }
}

/// Rank of a matrix over F_ℓ (rows of equal length), by Gaussian elimination.
fn rref(mat: &mut [Vec<u64>], cols: usize) -> Vec<(usize, usize)> {
    let rows = mat.len();
    let mut pivots = Vec::new();
    let mut r = 0usize;
    for c in 0..cols {
        if r == rows {
            break;
        }
        let Some(p) = (r..rows).find(|&i| mat[i][c] != 0) else {
            continue;
        };
        mat.swap(r, p);
        let iv = inv(mat[r][c]);
        for v in mat[r].iter_mut() {
            *v = mul(*v, iv);
        }
        for i in 0..rows {
            if i != r && mat[i][c] != 0 {
                let f = mat[i][c];
                let (a, b) = if i < r {
                    let (lo, hi) = mat.split_at_mut(r);
                    (&mut lo[i], &hi[0])
                } else {
                    let (lo, hi) = mat.split_at_mut(i);
                    (&mut hi[0], &lo[r])
                };
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = sub(*x, mul(f, *y));
                }
            }
        }
        pivots.push((r, c));
        r += 1;
    }
    pivots
}

fn columns_matrix(values: &[&[u64]], t: u16, s: usize) -> Vec<Vec<u64>> {
    let deg1 = usize::from(t.saturating_sub(1)).max(1);
    let rows = deg1 + s;
    let mut mat = vec![vec![0u64; values.len()]; rows];
    for (j, v) in values.iter().enumerate() {
        let x = v[0];
        let mut p = 1u64;
        for row in mat.iter_mut().take(deg1) {
            row[j] = p;
            p = mul(p, x);
        }
        for i in 0..s {
            mat[deg1 + i][j] = v[1 + i];
        }
    }
    mat
}

/// DHF detection: given the DHF values of the distinct opened shares (each `s + 1` field
/// elements, first `x'`), returns the indexes of the real ones, or `None` if fewer than T real
/// values are present or the candidate set is inconsistent (too many synthetics).
///
/// Cost: one Gaussian elimination of a `(T − 1 + s) × n` matrix.
pub fn detect(values: &[&[u64]], t: u16, s: usize) -> Option<Vec<usize>> {
    if values.iter().any(|v| v.len() != s + 1) {
        return None;
    }
    let n = values.len();
    let mut mat = columns_matrix(values, t, s);
    let pivots = rref(&mut mat, n);
    let mut is_pivot = vec![None; n];
    for &(r, c) in &pivots {
        is_pivot[c] = Some(r);
    }
    let mut support = vec![false; n];
    for f in 0..n {
        if is_pivot[f].is_some() {
            continue;
        }
        // Kernel vector of free column f: v_f = 1, v_{pivot c} = -A[r][f].
        let mut any = false;
        for &(r, c) in &pivots {
            if mat[r][f] != 0 {
                support[c] = true;
                any = true;
            }
        }
        // A free column equal to zero would be a zero column (impossible: row 0 is all ones).
        if any {
            support[f] = true;
        }
    }
    let cand: Vec<usize> = (0..n).filter(|&i| support[i]).collect();
    if cand.len() < usize::from(t) {
        return None;
    }
    // Consistency: the candidates must span exactly the (T−1)-dimensional real subspace.
    let sub: Vec<&[u64]> = cand.iter().map(|&i| values[i]).collect();
    let mut m2 = columns_matrix(&sub, t, s);
    let rank = rref(&mut m2, sub.len()).len();
    if rank == usize::from(t.saturating_sub(1)).max(1) {
        Some(cand)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ops() {
        assert_eq!(mul(inv(12345), 12345), 1);
        assert_eq!(sub(0, 1), DHF_PRIME - 1);
    }
}

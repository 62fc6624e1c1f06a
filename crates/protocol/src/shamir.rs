//! Shamir sharing of the account key over the ristretto255 scalar field with 128-bit
//! x-coordinates (protocol.md 3.6; R/E4: coefficients and adkey bound to T).

use curve25519_dalek::scalar::Scalar;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::suite::hkdf;

/// The account polynomial f(X) = Σ_{i<T} a_i X^i, `a_i = HKDF(poly_seed, "coef" ‖ T ‖ i)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Polynomial {
    coeffs: Vec<Scalar>,
}

impl Polynomial {
    pub(crate) fn derive(poly_seed: &[u8; 32], t: u16) -> Self {
        let coeffs = (0..t)
            .map(|i| {
                let wide = hkdf::<64>(poly_seed, &[b"coef", &t.to_le_bytes(), &i.to_le_bytes()]);
                Scalar::from_bytes_mod_order_wide(&wide)
            })
            .collect();
        Polynomial { coeffs }
    }

    pub(crate) fn eval(&self, x: &Scalar) -> Scalar {
        let mut acc = Scalar::ZERO;
        for c in self.coeffs.iter().rev() {
            acc = acc * x + c;
        }
        acc
    }

    pub(crate) fn secret(&self) -> Scalar {
        self.coeffs.first().copied().unwrap_or(Scalar::ZERO)
    }
}

/// `adkey = HKDF(a_0, "adkey" ‖ T)`.
pub(crate) fn adkey_from_secret(a0: &Scalar, t: u16) -> Zeroizing<[u8; 32]> {
    hkdf::<32>(a0.as_bytes(), &[b"adkey", &t.to_le_bytes()])
}

/// A share x-coordinate: 16 bytes, little-endian, as a scalar (< 2^128 < q, so canonical).
pub fn x_scalar(x: &[u8; 16]) -> Scalar {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(x);
    Scalar::from_bytes_mod_order(b)
}

/// Lagrange interpolation of f(0) from shares with distinct, non-zero x. Returns `None` if two x
/// coincide or one is zero (the caller groups shares by x first).
pub fn interpolate_at_zero(shares: &[(Scalar, Scalar)]) -> Option<Scalar> {
    let mut acc = Scalar::ZERO;
    for (i, (xi, yi)) in shares.iter().enumerate() {
        if *xi == Scalar::ZERO {
            return None;
        }
        let mut num = Scalar::ONE;
        let mut den = Scalar::ONE;
        for (j, (xj, _)) in shares.iter().enumerate() {
            if i != j {
                if xi == xj {
                    return None;
                }
                num *= xj;
                den *= xj - xi;
            }
        }
        acc += yi * num * den.invert();
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_recovers_the_secret_from_any_t_shares() {
        let p = Polynomial::derive(&[7; 32], 4);
        let shares: Vec<(Scalar, Scalar)> = (1u8..=6)
            .map(|i| {
                let x = x_scalar(&[i; 16]);
                (x, p.eval(&x))
            })
            .collect();
        for w in shares.windows(4) {
            assert_eq!(interpolate_at_zero(w), Some(p.secret()));
        }
        // T-1 shares give a different value (with overwhelming probability).
        assert_ne!(interpolate_at_zero(&shares[..3]), Some(p.secret()));
        let dup = [shares[0], shares[0]];
        assert_eq!(interpolate_at_zero(&dup), None);
    }
}

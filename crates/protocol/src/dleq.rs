//! The batched Chaum–Pedersen proof that a shard is `T = α·M` for `L = α·G`
//! (protocol.md R/E2 step 8; protocol-review.md m6).
//!
//! Weights `c_j = HashToScalar(DST_DLEQ_W, ctx ‖ LE32 j)` come from a context that commits to
//! both Merkle roots, so the prover cannot choose the table after the weights. The challenge
//! hashes the whole statement `(G, L, A, B)` and both commitments (no weak Fiat–Shamir), and the
//! nonce is hedged: `r = HashToScalar(DST_NONCE, α ‖ ctx ‖ 32 random bytes)`.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::suite::{dst, hash_to_scalar};
use crate::wire::DecodeError;

/// A 64-byte batched DLEQ proof `(c, s)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DleqProof {
    c: Scalar,
    s: Scalar,
}

/// Why a DLEQ proof does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DleqError {
    /// `M` and `T` have different lengths.
    #[error("M and T differ in length")]
    LengthMismatch,
    /// A combined point `A` or `B` is the identity: the statement is degenerate.
    #[error("degenerate statement (identity combination)")]
    Degenerate,
    /// The challenge does not match.
    #[error("proof does not verify")]
    Invalid,
}

impl DleqProof {
    /// Encoding length.
    pub const LEN: usize = 64;

    /// `c ‖ s`, each a canonical little-endian scalar.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(self.c.as_bytes());
        out[32..].copy_from_slice(self.s.as_bytes());
        out
    }

    /// Strict decoding: both scalars must be canonical.
    pub fn from_bytes(b: &[u8; 64]) -> Result<Self, DecodeError> {
        let mut c = [0u8; 32];
        let mut s = [0u8; 32];
        c.copy_from_slice(&b[..32]);
        s.copy_from_slice(&b[32..]);
        let c = Option::<Scalar>::from(Scalar::from_canonical_bytes(c))
            .ok_or(DecodeError::NonCanonical("dleq c"))?;
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s))
            .ok_or(DecodeError::NonCanonical("dleq s"))?;
        Ok(DleqProof { c, s })
    }
}

fn weights(ctx: &[u8; 64], n: usize) -> Vec<Scalar> {
    // Shards hold at most u32::MAX points (m is a u32), so the index never wraps.
    (0u32..)
        .take(n)
        .map(|j| hash_to_scalar(dst::DLEQ_W, &[ctx, &j.to_le_bytes()]))
        .collect()
}

fn weighted_sum(ctx: &[u8; 64], m: &[RistrettoPoint]) -> RistrettoPoint {
    RistrettoPoint::vartime_multiscalar_mul(weights(ctx, m.len()).iter(), m.iter())
}

fn combine(
    ctx: &[u8; 64],
    m: &[RistrettoPoint],
    t: &[RistrettoPoint],
) -> (RistrettoPoint, RistrettoPoint) {
    let w = weights(ctx, m.len());
    let a = RistrettoPoint::vartime_multiscalar_mul(w.iter(), m.iter());
    let b = RistrettoPoint::vartime_multiscalar_mul(w.iter(), t.iter());
    (a, b)
}

fn challenge(
    ctx: &[u8; 64],
    l: &RistrettoPoint,
    a: &RistrettoPoint,
    b: &RistrettoPoint,
    r1: &RistrettoPoint,
    r2: &RistrettoPoint,
) -> Scalar {
    hash_to_scalar(
        dst::DLEQ_C,
        &[
            ctx,
            RISTRETTO_BASEPOINT_POINT.compress().as_bytes(),
            l.compress().as_bytes(),
            a.compress().as_bytes(),
            b.compress().as_bytes(),
            r1.compress().as_bytes(),
            r2.compress().as_bytes(),
        ],
    )
}

/// Proves `t[j] = α·m[j]` for all j and `L = α·G`.
pub fn prove<R: CryptoRng + ?Sized>(
    alpha: &Scalar,
    ctx: &[u8; 64],
    m: &[RistrettoPoint],
    t: &[RistrettoPoint],
    rng: &mut R,
) -> Result<DleqProof, DleqError> {
    if m.len() != t.len() {
        return Err(DleqError::LengthMismatch);
    }
    // The prover knows α and built t = α·m, so B = Σ c_j t_j = α·A: one multiscalar
    // multiplication instead of two. A wrong t makes the proof fail verification.
    let a = weighted_sum(ctx, m);
    let b = alpha * a;
    if a.is_identity() || b.is_identity() {
        return Err(DleqError::Degenerate);
    }
    let l = RistrettoPoint::mul_base(alpha);
    let mut rand = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut rand[..]);
    let r = Zeroizing::new(hash_to_scalar(
        dst::NONCE,
        &[alpha.as_bytes(), ctx, &rand[..]],
    ));
    let r1 = RistrettoPoint::mul_base(&r);
    let r2 = *r * a;
    let c = challenge(ctx, &l, &a, &b, &r1, &r2);
    let s = *r - c * alpha;
    Ok(DleqProof { c, s })
}

/// Verifies a proof from [`prove`] against `L`.
pub fn verify(
    l: &RistrettoPoint,
    ctx: &[u8; 64],
    m: &[RistrettoPoint],
    t: &[RistrettoPoint],
    proof: &DleqProof,
) -> Result<(), DleqError> {
    if m.len() != t.len() {
        return Err(DleqError::LengthMismatch);
    }
    let (a, b) = combine(ctx, m, t);
    if a.is_identity() || b.is_identity() || l.is_identity() {
        return Err(DleqError::Degenerate);
    }
    let r1 = RistrettoPoint::vartime_multiscalar_mul(
        [proof.s, proof.c],
        [RISTRETTO_BASEPOINT_POINT, *l],
    );
    let r2 = RistrettoPoint::vartime_multiscalar_mul([proof.s, proof.c], [a, b]);
    if challenge(ctx, l, &a, &b, &r1, &r2) == proof.c {
        Ok(())
    } else {
        Err(DleqError::Invalid)
    }
}

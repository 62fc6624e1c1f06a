//! The opening key α and its public key L = α·G.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;

use rand_core::CryptoRng;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::DecodeError;

/// The opening service's secret α (protocol.md R/E2 step 3). Zeroized on drop; never leaves the
/// opening service.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct OpeningKey {
    alpha: Scalar,
}

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpeningKey(..)")
    }
}

impl OpeningKey {
    /// Draws α uniformly from F_q* (the OS CSPRNG in production).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            let alpha = Scalar::random(rng);
            if alpha != Scalar::ZERO {
                return OpeningKey { alpha };
            }
        }
    }

    /// The canonical 32-byte encoding of α, for the opening service's key store. Zeroized when
    /// dropped.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<[u8; 32]> {
        zeroize::Zeroizing::new(self.alpha.to_bytes())
    }

    /// Reads α back; refuses a non-canonical encoding and zero.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, DecodeError> {
        let alpha: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        match alpha {
            Some(alpha) if alpha != Scalar::ZERO => Ok(OpeningKey { alpha }),
            _ => Err(DecodeError::NonCanonical("opening key")),
        }
    }

    /// The public key `L = α·G`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(RistrettoPoint::mul_base(&self.alpha))
    }

    /// `α·P`, constant time: what the opening service computes for each probe's Q.
    pub fn blind(&self, p: &RistrettoPoint) -> RistrettoPoint {
        self.alpha * p
    }

    pub(crate) fn alpha(&self) -> &Scalar {
        &self.alpha
    }
}

/// The published `L = α·G`, never the identity (checked at construction and decoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(RistrettoPoint);

impl PublicKey {
    /// Decodes a canonical, non-identity ristretto255 point.
    pub fn from_bytes(b: &[u8; 32]) -> Result<Self, DecodeError> {
        let p = CompressedRistretto(*b)
            .decompress()
            .ok_or(DecodeError::InvalidPoint("L"))?;
        if p.is_identity() {
            return Err(DecodeError::IdentityPoint("L"));
        }
        Ok(PublicKey(p))
    }
    /// Canonical encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.compress().to_bytes()
    }
    pub(crate) fn point(&self) -> &RistrettoPoint {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn opening_key_bytes_round_trip_and_refuse_zero_and_non_canonical() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = OpeningKey::generate(&mut rng);
        let back = OpeningKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(OpeningKey::from_bytes(&[0u8; 32]).is_err());
        // ℓ itself (the group order) is not a canonical scalar encoding.
        let ell = Scalar::ZERO - Scalar::ONE;
        let mut bytes = ell.to_bytes();
        bytes[0] = bytes[0].wrapping_add(1);
        assert!(OpeningKey::from_bytes(&bytes).is_err());
        assert!(OpeningKey::from_bytes(&[0xff; 32]).is_err());
    }
}

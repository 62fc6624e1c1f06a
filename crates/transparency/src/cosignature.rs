//! Witness cosignatures `cosignature/v1` (c2sp.org/tlog-cosignature), Ed25519, key type 0x04.
//!
//! A cosignature is a note signature line on a checkpoint. Its bytes are an 8-byte big-endian
//! timestamp followed by an Ed25519 signature of
//!
//! ```text
//! cosignature/v1
//! time <timestamp, decimal>
//! <the checkpoint body>
//! ```
//!
//! and it states that, at that time, this was the largest tree the witness had seen for the log
//! and consistent with everything it saw before. Only witnesses make them: a cosigner signs
//! only a checkpoint whose log signature it verified, which is why [`CosignatureSigner::cosign`]
//! takes a [`LogSignedCheckpoint`]. A cosigning key must not be reused by another cosigner or for
//! note signatures: the message does not commit to the cosigner's name (spec requirement).

use crate::checkpoint::{CheckpointError, LogSignedCheckpoint};
use crate::note::{
    ed25519_public, ed25519_verify, format_vkey, key_id, parse_key_text, Ed25519Secret, NoteError,
    NoteSignature, NoteVerifier,
};
use ed25519_dalek::VerifyingKey;
use std::fmt;
use zeroize::Zeroizing;

/// The signature type byte of `cosignature/v1` Ed25519 cosignatures.
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;

/// The largest timestamp a cosignature may carry (2^63 - 1, spec requirement).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Length of a cosignature's bytes after the key ID: timestamp and Ed25519 signature.
const COSIGNATURE_LEN: usize = 8 + 64;

/// Why a cosignature could not be made or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// A key could not be parsed or built.
    #[error(transparent)]
    Key(#[from] NoteError),
    /// The checkpoint note could not be extended.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The timestamp is above [`MAX_TIMESTAMP`].
    #[error("timestamp {0} is above 2^63 - 1")]
    TimestampTooLarge(u64),
    /// The signature line is not by this cosigner (name or key ID differ).
    #[error("the signature line is not by this cosigner")]
    WrongKey,
    /// The cosignature is not 72 bytes, or does not verify.
    #[error("the cosignature of {0} does not verify")]
    Invalid(String),
}

/// The message a `cosignature/v1` signs over a checkpoint body at `timestamp`.
pub fn signed_message(checkpoint_body: &str, timestamp: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_body}").into_bytes()
}

/// A witness's cosigning key.
///
/// The secret is zeroized when dropped; not `Clone`; `Debug` shows only the name and key ID.
pub struct CosignatureSigner(Ed25519Secret);

impl CosignatureSigner {
    /// A new key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        Ed25519Secret::generate(name, COSIGNATURE_V1_TYPE).map(CosignatureSigner)
    }

    /// The key with this 32-byte Ed25519 seed. For tests and key import.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        Ed25519Secret::from_seed(name, COSIGNATURE_V1_TYPE, seed).map(CosignatureSigner)
    }

    /// Parses an skey `PRIVATE+KEY+name+hex8+base64(0x04 || seed)`, checking the key ID.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        Ed25519Secret::from_skey(skey, COSIGNATURE_V1_TYPE).map(CosignatureSigner)
    }

    /// The skey text form; zeroized when dropped.
    pub fn to_skey(&self) -> Zeroizing<String> {
        self.0.to_skey()
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// The key ID (`SHA-256(name || "\n" || 0x04 || key)[:4]`).
    pub fn key_id(&self) -> u32 {
        self.0.key_id()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignatureVerifier {
        CosignatureVerifier {
            name: self.0.name().to_string(),
            key_id: self.0.key_id(),
            key: self.0.public(),
        }
    }

    /// Cosigns a checkpoint whose log signature has been verified, at `timestamp` (POSIX
    /// seconds). Returns the signature line to add to the checkpoint note.
    ///
    /// Consistency with earlier checkpoints is the caller's (the witness's) duty: check it, and
    /// persist the new size and root, before releasing the cosignature.
    pub fn cosign(
        &self,
        checkpoint: &LogSignedCheckpoint,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge(timestamp));
        }
        let msg = signed_message(&checkpoint.checkpoint().to_body(), timestamp);
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.0.sign(&msg));
        Ok(NoteSignature::new(self.name(), self.key_id(), bytes)?)
    }
}

impl fmt::Debug for CosignatureSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CosignatureSigner({}+{:08x})",
            self.name(),
            self.key_id()
        )
    }
}

/// A witness's public cosigning key (vkey type 0x04).
#[derive(Clone, PartialEq, Eq)]
pub struct CosignatureVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignatureVerifier {
    /// The verifier of `public_key` under `name`; the key ID is derived.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        if !crate::text::is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let key = ed25519_public(public_key)?;
        Ok(CosignatureVerifier {
            name: name.to_string(),
            key_id: key_id(name, COSIGNATURE_V1_TYPE, public_key),
            key,
        })
    }

    /// Parses a vkey `name+hex8+base64(0x04 || key)`, checking the type and the key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_key_text(vkey, COSIGNATURE_V1_TYPE)?;
        let v = Self::new(&name, &key)?;
        if id != v.key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(v)
    }

    /// The vkey text form.
    pub fn to_vkey(&self) -> String {
        format_vkey(
            &self.name,
            COSIGNATURE_V1_TYPE,
            self.key_id,
            self.key.as_bytes(),
        )
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The timestamp, if `signature` (bytes after the key ID) is this key's valid cosignature
    /// of the checkpoint body `text`.
    fn check(&self, text: &str, signature: &[u8]) -> Option<u64> {
        if signature.len() != COSIGNATURE_LEN {
            return None;
        }
        let (ts, sig) = signature.split_at(8);
        let ts = u64::from_be_bytes(ts.try_into().ok()?);
        if ts > MAX_TIMESTAMP {
            return None;
        }
        ed25519_verify(&self.key, &signed_message(text, ts), sig).then_some(ts)
    }

    /// Verifies this witness's cosignature line on a checkpoint body and returns its timestamp.
    pub fn verify_cosignature(
        &self,
        checkpoint_body: &str,
        signature: &NoteSignature,
    ) -> Result<u64, CosignatureError> {
        if signature.name() != self.name || signature.key_id() != self.key_id {
            return Err(CosignatureError::WrongKey);
        }
        self.check(checkpoint_body, signature.signature())
            .ok_or_else(|| CosignatureError::Invalid(self.name.clone()))
    }
}

impl NoteVerifier for CosignatureVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, text: &str, signature: &[u8]) -> bool {
        self.check(text, signature).is_some()
    }
}

impl fmt::Debug for CosignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignatureVerifier({})", self.to_vkey())
    }
}

impl LogSignedCheckpoint {
    /// Cosigns with `cosigner` at `timestamp` and adds the line to this checkpoint's note.
    pub fn add_cosignature(
        &mut self,
        cosigner: &CosignatureSigner,
        timestamp: u64,
    ) -> Result<(), CosignatureError> {
        let sig = cosigner.cosign(self, timestamp)?;
        self.signed_mut().add_signature(sig)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::merkle::EMPTY_ROOT;
    use crate::note::Ed25519Signer;

    #[test]
    fn the_spec_message() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            signed_message(body, 1679315147),
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn cosign_and_verify() {
        let log = Ed25519Signer::from_seed("log", &[1; 32]).unwrap();
        let w = CosignatureSigner::from_seed("w", &[2; 32]).unwrap();
        let mut c = Checkpoint::new("log", 3, EMPTY_ROOT)
            .unwrap()
            .sign(&log)
            .unwrap()
            .open(&log.verifier())
            .unwrap();
        c.add_cosignature(&w, 1_700_000_000).unwrap();
        let body = c.checkpoint().to_body();
        let line = &c.signed().note().signatures()[1];
        assert_eq!(
            w.verifier().verify_cosignature(&body, line),
            Ok(1_700_000_000)
        );
        // Another body, another key, a too large timestamp.
        assert!(w
            .verifier()
            .verify_cosignature(&body.replace('3', "4"), line)
            .is_err());
        let w2 = CosignatureSigner::from_seed("w", &[3; 32]).unwrap();
        assert_eq!(
            w2.verifier().verify_cosignature(&body, line),
            Err(CosignatureError::WrongKey)
        );
        assert_eq!(
            w.cosign(&c, MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampTooLarge(MAX_TIMESTAMP + 1))
        );
        // A cosigning key is not a note key: same seed, different type, different ID.
        let as_note = Ed25519Signer::from_seed("w", &[2; 32]).unwrap();
        assert_ne!(as_note.verifier().to_vkey(), w.verifier().to_vkey());
        assert_eq!(
            CosignatureVerifier::from_vkey(&w.verifier().to_vkey()).unwrap(),
            w.verifier()
        );
        assert!(CosignatureVerifier::from_vkey(&as_note.verifier().to_vkey()).is_err());
        let again = CosignatureSigner::from_skey(&w.to_skey()).unwrap();
        assert_eq!(again.verifier(), w.verifier());
    }
}

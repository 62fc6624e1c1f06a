//! Offline proof bundles (c2sp.org/tlog-proof): an entry's inclusion, checkable without the log.
//!
//! hashguard ships one with each manifest, so a client checks that the manifest is logged, and
//! that the log's checkpoint is witnessed, without any request to the log:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64 opaque data>]
//! index <leaf index, decimal>
//! <inclusion proof hash, base64>      (zero or more, from the leaf's sibling up)
//!
//! <the signed checkpoint note, verbatim, with its cosignatures>
//! ```
//!
//! The extra data is not authenticated by anything; this crate only carries it.

use crate::checkpoint::{Checkpoint, CheckpointError, LogSignedCheckpoint, SignedCheckpoint};
use crate::merkle::{self, Hash, MerkleError, MAX_PROOF_LEN};
use crate::note::{Ed25519Verifier, MAX_NOTE_SIZE};
use crate::policy::{Policy, PolicyError, VerifiedCheckpoint};
use crate::text::{b64_decode, b64_encode, parse_decimal};

/// The first line of every proof bundle.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The largest proof bundle parsed: a maximal checkpoint note plus the proof lines and some
/// extra data.
pub const MAX_PROOF_SIZE: usize = MAX_NOTE_SIZE + 16 * 1024;

/// Why a proof bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The bundle does not follow c2sp.org/tlog-proof.
    #[error("malformed proof bundle: {0}")]
    Malformed(&'static str),
    /// The checkpoint inside is malformed, or its log signature does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint does not satisfy the policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The inclusion proof does not prove the entry in the checkpoint's tree.
    #[error("the entry is not proved in the checkpoint: {0}")]
    NotIncluded(#[from] MerkleError),
}

/// A parsed proof bundle; nothing in it is verified until [`ProofBundle::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    extra: Option<Vec<u8>>,
    index: u64,
    proof: Vec<Hash>,
    checkpoint: SignedCheckpoint,
}

/// Splits off one newline-terminated line.
fn next_line(s: &str) -> Result<(&str, &str), ProofError> {
    s.split_once('\n')
        .ok_or(ProofError::Malformed("a line does not end in a newline"))
}

impl ProofBundle {
    /// A bundle proving leaf `index` in `checkpoint`'s tree with `proof`. `extra`, if any, must
    /// be non-empty. The proof itself is checked by [`ProofBundle::verify`], not here.
    pub fn new(
        index: u64,
        proof: Vec<Hash>,
        checkpoint: SignedCheckpoint,
        extra: Option<Vec<u8>>,
    ) -> Result<Self, ProofError> {
        if index >= checkpoint.unverified_checkpoint().size() {
            return Err(ProofError::Malformed(
                "the index is not in the checkpoint's tree",
            ));
        }
        if proof.len() > MAX_PROOF_LEN {
            return Err(ProofError::Malformed("too many proof hashes"));
        }
        if extra.as_ref().is_some_and(|e| e.is_empty()) {
            return Err(ProofError::Malformed("empty extra data"));
        }
        Ok(ProofBundle {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// Parses a bundle strictly (header, optional non-empty `extra`, canonical `index`, at most
    /// 64 canonical base64 hashes, one blank line, a well-formed checkpoint note whose tree
    /// holds the index). Verifies no signature and no proof.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProofError> {
        if bytes.len() > MAX_PROOF_SIZE {
            return Err(ProofError::Malformed("too large"));
        }
        let s = std::str::from_utf8(bytes).map_err(|_| ProofError::Malformed("not UTF-8"))?;
        let (header, rest) = next_line(s)?;
        if header != PROOF_HEADER {
            return Err(ProofError::Malformed(
                "the first line is not c2sp.org/tlog-proof@v1",
            ));
        }
        let (mut line, mut rest) = next_line(rest)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            let data = b64_decode(b64).ok_or(ProofError::Malformed("invalid extra data"))?;
            if data.is_empty() {
                return Err(ProofError::Malformed("empty extra data"));
            }
            extra = Some(data);
            (line, rest) = next_line(rest)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or(ProofError::Malformed("invalid index line"))?;
        let mut proof = Vec::new();
        loop {
            let (line, tail) = next_line(rest)?;
            rest = tail;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LEN {
                return Err(ProofError::Malformed("too many proof hashes"));
            }
            proof.push(Hash::from_base64(line).ok_or(ProofError::Malformed("invalid proof hash"))?);
        }
        let checkpoint = SignedCheckpoint::parse(rest.as_bytes())?;
        Self::new(index, proof, checkpoint, extra)
    }

    /// The serialized bundle; [`ProofBundle::parse`] gives back `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", b64_encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for h in &self.proof {
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push('\n');
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.checkpoint.to_bytes());
        bytes
    }

    /// The entry's index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof hashes, from the leaf's sibling up.
    pub fn inclusion_proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The unauthenticated extra data, if any.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The checkpoint note as shipped (not verified).
    pub fn signed_checkpoint(&self) -> &SignedCheckpoint {
        &self.checkpoint
    }

    /// Checks only the inclusion proof: that `leaf` (a leaf hash) is at this bundle's index in
    /// `checkpoint`'s tree. Use it with a checkpoint verified elsewhere; [`ProofBundle::verify`]
    /// does everything.
    pub fn verify_inclusion(&self, leaf: &Hash, checkpoint: &Checkpoint) -> Result<(), ProofError> {
        merkle::verify_inclusion(
            leaf,
            self.index,
            checkpoint.size(),
            &self.proof,
            checkpoint.root_hash(),
        )?;
        Ok(())
    }

    /// Verifies the whole bundle for `entry` (the logged bytes): the checkpoint satisfies the
    /// policy (log signature and witness quorum), and the entry is at the index in its tree.
    pub fn verify(&self, entry: &[u8], policy: &Policy) -> Result<VerifiedCheckpoint, ProofError> {
        let verified = policy.verify_checkpoint(&self.checkpoint)?;
        self.verify_inclusion(&merkle::leaf_hash(entry), verified.checkpoint())?;
        Ok(verified)
    }

    /// Like [`ProofBundle::verify`] with only the log's key and no witnesses, for tools that
    /// trust the log itself (an auditor comparing what it downloaded).
    pub fn verify_with_log_key(
        &self,
        entry: &[u8],
        log: &Ed25519Verifier,
    ) -> Result<LogSignedCheckpoint, ProofError> {
        let opened = self.checkpoint.open(log)?;
        self.verify_inclusion(&merkle::leaf_hash(entry), opened.checkpoint())?;
        Ok(opened)
    }
}

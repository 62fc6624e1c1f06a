//! C2SP checkpoints (c2sp.org/tlog-checkpoint): a log's signed tree head.
//!
//! The body is the text of a signed note:
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, base64>
//! [<extension line>...]
//! ```
//!
//! A [`Checkpoint`] is the parsed body; a [`SignedCheckpoint`] is a parsed, unverified note
//! carrying one; a [`LogSignedCheckpoint`] is one whose log signature has been verified, and is
//! only obtainable by [`SignedCheckpoint::open`]. This crate requires the log's key name to equal
//! the origin line (the spec's SHOULD, and tlog-policy's MUST), so that a key for one log can
//! never vouch for a checkpoint of another.

use crate::merkle::Hash;
use crate::note::{Ed25519Signer, Ed25519Verifier, Note, NoteError, NoteSignature, NoteVerifier};
use crate::text::parse_decimal;
use std::fmt;

/// Why a checkpoint could not be parsed, built or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note around it is malformed or does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body does not follow c2sp.org/tlog-checkpoint.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// The log key's name is not the checkpoint's origin.
    #[error("the checkpoint's origin {origin:?} is not the log key's name {key_name:?}")]
    OriginMismatch {
        /// The origin line.
        origin: String,
        /// The log key's name.
        key_name: String,
    },
}

/// A checkpoint body: origin, tree size, root hash and optional extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: Hash,
    extensions: Vec<String>,
}

/// Whether a line can appear in a checkpoint body: non-empty, no newline or control character.
fn is_valid_line(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c < ' ')
}

impl Checkpoint {
    /// A checkpoint without extension lines (the spec does not recommend them).
    pub fn new(origin: &str, size: u64, root: Hash) -> Result<Self, CheckpointError> {
        Self::with_extensions(origin, size, root, Vec::new())
    }

    /// A checkpoint with extension lines, each non-empty and without control characters.
    /// Witnesses cosign them but vouch for nothing in them.
    pub fn with_extensions(
        origin: &str,
        size: u64,
        root: Hash,
        extensions: Vec<String>,
    ) -> Result<Self, CheckpointError> {
        if !is_valid_line(origin) {
            return Err(CheckpointError::Malformed("invalid origin line"));
        }
        if !extensions.iter().all(|e| is_valid_line(e)) {
            return Err(CheckpointError::Malformed("invalid extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// Parses a checkpoint body (a note text) strictly: at least three newline-terminated
    /// lines, a non-empty origin, a canonical decimal size, a canonical base64 32-byte root hash,
    /// non-empty extension lines.
    pub fn parse(body: &str) -> Result<Self, CheckpointError> {
        let lines = body.strip_suffix('\n').ok_or(CheckpointError::Malformed(
            "the body does not end in a newline",
        ))?;
        let mut it = lines.split('\n');
        let (Some(origin), Some(size), Some(root)) = (it.next(), it.next(), it.next()) else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        let size = parse_decimal(size).ok_or(CheckpointError::Malformed("invalid tree size"))?;
        let root =
            Hash::from_base64(root).ok_or(CheckpointError::Malformed("invalid root hash"))?;
        Self::with_extensions(origin, size, root, it.map(str::to_string).collect())
    }

    /// The body text, ending in a newline; [`Checkpoint::parse`] gives back `self`.
    pub fn to_body(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.root);
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// The origin line: the log's identity.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The number of entries in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root hash of the tree.
    pub fn root_hash(&self) -> &Hash {
        &self.root
    }

    /// The extension lines (usually none).
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// Signs the checkpoint as a note with the log's key, whose name must be the origin.
    pub fn sign(&self, log: &Ed25519Signer) -> Result<SignedCheckpoint, CheckpointError> {
        use crate::note::NoteSigner as _;
        if log.name() != self.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.origin.clone(),
                key_name: log.name().to_string(),
            });
        }
        let mut note = Note::new(&self.to_body())?;
        note.sign(log)?;
        Ok(SignedCheckpoint {
            note,
            checkpoint: self.clone(),
        })
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_body())
    }
}

/// A checkpoint note as received: parsed, with signatures, **not verified**.
///
/// Open it with the log's key ([`SignedCheckpoint::open`]) or a policy
/// ([`crate::policy::Policy::verify_checkpoint`]) before using what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    note: Note,
    checkpoint: Checkpoint,
}

impl SignedCheckpoint {
    /// Parses a checkpoint note (note format and body format); verifies no signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let note = Note::parse(bytes)?;
        let checkpoint = Checkpoint::parse(note.text())?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// The note, with every signature line.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The body, not yet vouched for by anyone.
    pub fn unverified_checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The serialized note.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.note.to_bytes()
    }

    /// Adds a signature line (e.g. a cosignature a witness returned); replaces one by the same
    /// key. Nothing is verified here.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), CheckpointError> {
        Ok(self.note.add_signature(signature)?)
    }

    /// Verifies the log's signature: the key's name must be the origin and its signature must be
    /// on the note and valid. Signatures of other keys are ignored (see
    /// [`crate::policy`] for witnesses).
    pub fn open(&self, log: &Ed25519Verifier) -> Result<LogSignedCheckpoint, CheckpointError> {
        if log.name() != self.checkpoint.origin {
            return Err(CheckpointError::OriginMismatch {
                origin: self.checkpoint.origin.clone(),
                key_name: log.name().to_string(),
            });
        }
        self.note.verify(std::slice::from_ref(log))?;
        Ok(LogSignedCheckpoint {
            signed: self.clone(),
            log: log.clone(),
        })
    }
}

/// A checkpoint whose log signature has been verified; only [`SignedCheckpoint::open`] makes
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSignedCheckpoint {
    signed: SignedCheckpoint,
    log: Ed25519Verifier,
}

impl LogSignedCheckpoint {
    /// Parses and opens in one step.
    pub fn open(bytes: &[u8], log: &Ed25519Verifier) -> Result<Self, CheckpointError> {
        SignedCheckpoint::parse(bytes)?.open(log)
    }

    /// The verified checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.signed.checkpoint
    }

    /// The note as received, with all its signature lines (cosignatures included).
    pub fn signed(&self) -> &SignedCheckpoint {
        &self.signed
    }

    /// The log key that verified it.
    pub fn log_key(&self) -> &Ed25519Verifier {
        &self.log
    }

    /// The serialized note, e.g. to persist it or to gossip it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.signed.to_bytes()
    }

    /// The note, to add signature lines (which cannot undo the log's verified signature).
    pub(crate) fn signed_mut(&mut self) -> &mut SignedCheckpoint {
        &mut self.signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::EMPTY_ROOT;

    #[test]
    fn parse_format_round_trip() {
        let body =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = Checkpoint::parse(body).unwrap();
        assert_eq!(c.origin(), "example.com/behind-the-sofa");
        assert_eq!(c.size(), 20852163);
        assert_eq!(c.to_body(), body);
        let ext = format!("{body}ext one\nx\n");
        let c = Checkpoint::parse(&ext).unwrap();
        assert_eq!(c.extensions(), ["ext one", "x"]);
        assert_eq!(c.to_body(), ext);
    }

    #[test]
    fn malformed_bodies() {
        let h = EMPTY_ROOT.to_base64();
        for bad in [
            format!("o\n0\n{h}"),
            format!("\n0\n{h}\n"),
            format!("o\n00\n{h}\n"),
            format!("o\n01\n{h}\n"),
            format!("o\n-1\n{h}\n"),
            format!("o\n18446744073709551616\n{h}\n"),
            format!("o\n1\n{}\n", &h[..43]),
            format!("o\n1\n{}\n", crate::text::b64_encode(&[0; 31])),
            format!("o\n1\n{h}\n\n"),
            format!("o\n1\n{h}\next\n\n"),
            "o\n1\n".to_string(),
        ] {
            assert!(Checkpoint::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(Checkpoint::new("a\nb", 1, EMPTY_ROOT).is_err());
        assert!(Checkpoint::with_extensions("o", 1, EMPTY_ROOT, vec![String::new()]).is_err());
    }

    #[test]
    fn sign_and_open() {
        let log = Ed25519Signer::from_seed("example.com/log", &[7; 32]).unwrap();
        let c = Checkpoint::new("example.com/log", 0, EMPTY_ROOT).unwrap();
        let signed = c.sign(&log).unwrap();
        let opened = LogSignedCheckpoint::open(&signed.to_bytes(), &log.verifier()).unwrap();
        assert_eq!(opened.checkpoint(), &c);
        // The origin must be the key's name, when signing and when opening.
        let other = Ed25519Signer::from_seed("example.com/other", &[7; 32]).unwrap();
        assert!(matches!(
            c.sign(&other),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        assert!(matches!(
            signed.open(&other.verifier()),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        // A different key with the log's name is not the log.
        let impostor = Ed25519Signer::from_seed("example.com/log", &[8; 32]).unwrap();
        assert_eq!(
            signed.open(&impostor.verifier()),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        );
    }
}

//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.
//!
//! A note is a UTF-8 text ending in a newline, then a blank line, then one or more signature
//! lines `— <key name> base64(key ID || signature)`. A key is identified by its name and a 4-byte
//! key ID, `SHA-256(name || "\n" || type || public key)[:4]`.
//!
//! Keys travel in the text forms of Go's `sumdb/note`, which the C2SP ecosystem (tlog-policy,
//! witnesses, logs) uses: a *vkey* `name+hex(key ID)+base64(type || public key)` for a verifier
//! and an *skey* `PRIVATE+KEY+name+hex(key ID)+base64(type || 32-byte seed)` for a signer.
//!
//! Verification follows the spec's rules: signatures from unknown keys are ignored (they may be
//! witnesses this client does not trust, or a rotated log key); a signature from a known key
//! that fails is an error for the whole note; a note with no verified known signature is an
//! error. Ed25519 uses `verify_strict`, which refuses non-canonical and small-order encodings,
//! so one signature cannot be re-encoded into another valid one.

use crate::text::{b64_decode, b64_encode, is_valid_key_name};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;
use zeroize::Zeroizing;

/// The largest note this crate parses or builds, in bytes. Generous for checkpoints with many
/// cosignatures (the spec asks to accept at least 16 signatures, and post-quantum ones are up to
/// about 5 kB each), small enough that a witness cannot be made to buffer much.
pub const MAX_NOTE_SIZE: usize = 256 * 1024;

/// The most signature lines a note may carry (the spec's minimum is 16; Go allows 100).
pub const MAX_SIGNATURES: usize = 100;

/// The signature type byte of plain Ed25519 note signatures (c2sp.org/signed-note).
pub const ED25519_TYPE: u8 = 0x01;

/// Why a note or key could not be parsed, built or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_SIZE`].
    #[error("the note is larger than {MAX_NOTE_SIZE} bytes")]
    TooLarge,
    /// The note is not valid UTF-8.
    #[error("the note is not valid UTF-8")]
    NotUtf8,
    /// The note holds an ASCII control character other than newline.
    #[error("the note holds a control character other than newline")]
    ControlCharacter,
    /// The note text does not end with a newline.
    #[error("the note text does not end with a newline")]
    MissingNewline,
    /// There is no blank line followed by signature lines.
    #[error("the note has no signatures")]
    NoSignatures,
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("the note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature line does not have the form `— <name> <base64>`.
    #[error("malformed signature line {line}")]
    MalformedSignature {
        /// 1-based position of the line in the signature block.
        line: usize,
    },
    /// A key name is empty or holds a space or `+`.
    #[error("invalid key name {0:?}")]
    InvalidKeyName(String),
    /// A vkey or skey string is malformed.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// The key's type byte is not the one expected here.
    #[error("key type 0x{found:02x} where 0x{expected:02x} was expected")]
    WrongKeyType {
        /// The type this place accepts.
        expected: u8,
        /// The type the key has.
        found: u8,
    },
    /// The key ID written in a key string is not the one its name and key give.
    #[error("the key ID does not match the key")]
    KeyIdMismatch,
    /// The public key is not a valid Ed25519 point, or is a weak (small-order) one.
    #[error("invalid Ed25519 public key")]
    InvalidPublicKey,
    /// Two known verifiers share a name and key ID, so a signature cannot be attributed.
    #[error("two known keys are both named {name} with key ID {key_id:08x}")]
    AmbiguousKey {
        /// The shared name.
        name: String,
        /// The shared key ID.
        key_id: u32,
    },
    /// A signature by a known key does not verify: the whole note is rejected.
    #[error("the signature of known key {name} ({key_id:08x}) does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
        /// The key's ID.
        key_id: u32,
    },
    /// No signature of a known key is on the note.
    #[error("the note carries no signature of a known key")]
    NoKnownSignature,
    /// The operating system gave no randomness for a new key.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// The key ID of a key: the first 4 bytes, big-endian, of
/// `SHA-256(name || "\n" || sig_type || public_key)`.
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([sig_type]);
    h.update(public_key);
    let d: [u8; 32] = h.finalize().into();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// One signature line of a note, not verified.
#[derive(Clone, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    /// A signature by the key `name`/`key_id`; `signature` is what follows the key ID.
    pub fn new(name: &str, key_id: u32, signature: Vec<u8>) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        if signature.is_empty() {
            return Err(NoteError::MalformedSignature { line: 0 });
        }
        Ok(NoteSignature {
            name: name.to_string(),
            key_id,
            signature,
        })
    }

    /// The signing key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signing key's ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key ID (for Ed25519, 64 bytes; for a cosignature, the
    /// 8-byte timestamp and 64 bytes).
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// Parses one line without its newline; `line` numbers errors.
    fn parse_line(s: &str, line: usize) -> Result<Self, NoteError> {
        let bad = NoteError::MalformedSignature { line };
        let rest = s.strip_prefix("\u{2014} ").ok_or(bad.clone())?;
        let (name, b64) = rest.split_once(' ').ok_or(bad.clone())?;
        if !is_valid_key_name(name) {
            return Err(bad);
        }
        let raw = b64_decode(b64).ok_or(bad.clone())?;
        if raw.len() < 5 {
            return Err(bad);
        }
        let key_id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        Ok(NoteSignature {
            name: name.to_string(),
            key_id,
            signature: raw[4..].to_vec(),
        })
    }

    /// The signature line, with its newline.
    pub fn to_line(&self) -> String {
        let mut raw = Vec::with_capacity(4 + self.signature.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, b64_encode(&raw))
    }
}

impl fmt::Debug for NoteSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NoteSignature({}", self.to_line().trim_end())?;
        f.write_str(")")
    }
}

/// Checks a note text: UTF-8 is given by `&str`; it ends in a newline, holds no control
/// character but newline, and fits the size limit.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_SIZE {
        return Err(NoteError::TooLarge);
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::ControlCharacter);
    }
    if !text.ends_with('\n') {
        return Err(NoteError::MissingNewline);
    }
    Ok(())
}

/// A parsed note: its text and its signature lines, none of them verified yet.
///
/// The text is only to be trusted after [`Note::verify`] succeeded with the keys that vouch for
/// it; the typed openers ([`crate::checkpoint::SignedCheckpoint::open`],
/// [`crate::policy::Policy::verify_checkpoint`]) do that and are what callers should use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// An unsigned note with `text` (which must end in a newline and hold no control character
    /// other than newline). It needs a signature before it can be serialized.
    pub fn new(text: &str) -> Result<Self, NoteError> {
        check_text(text)?;
        Ok(Note {
            text: text.to_string(),
            signatures: Vec::new(),
        })
    }

    /// Parses a signed note strictly: UTF-8, no control character but newline, text ending in a
    /// newline, the last blank line separating it from at least one well-formed signature line,
    /// at most [`MAX_SIGNATURES`] signatures and [`MAX_NOTE_SIZE`] bytes. Verifies nothing.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        if bytes.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge);
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::NotUtf8)?;
        if s.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        if !s.ends_with('\n') {
            return Err(NoteError::MissingNewline);
        }
        // The text is separated from the signatures by the last empty line.
        let split = s.rfind("\n\n").ok_or(NoteError::NoSignatures)?;
        let (text, block) = (&s[..split + 1], &s[split + 2..]);
        let lines = block.strip_suffix('\n').ok_or(NoteError::NoSignatures)?;
        if lines.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let mut signatures = Vec::new();
        for (i, line) in lines.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(NoteSignature::parse_line(line, i + 1)?);
        }
        Ok(Note {
            text: text.to_string(),
            signatures,
        })
    }

    /// The note text, with its final newline. Unauthenticated until [`Note::verify`] succeeds.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature line. A signature by the same key (name and key ID) is replaced, so
    /// re-signing never leaves two lines for one key.
    pub fn add_signature(&mut self, signature: NoteSignature) -> Result<(), NoteError> {
        self.signatures
            .retain(|s| !(s.name == signature.name && s.key_id == signature.key_id));
        if self.signatures.len() >= MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        let size = self.to_bytes().len() + signature.to_line().len();
        if size > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge);
        }
        self.signatures.push(signature);
        Ok(())
    }

    /// Signs the text with `signer` and adds the signature (see [`Note::add_signature`]).
    pub fn sign(&mut self, signer: &dyn NoteSigner) -> Result<(), NoteError> {
        let sig = NoteSignature::new(signer.name(), signer.key_id(), signer.sign(&self.text))?;
        self.add_signature(sig)
    }

    /// The serialized note: text, blank line, signature lines. Parsing it gives back `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out.into_bytes()
    }

    /// Verifies the note against the `known` keys and returns those whose signature is on it and
    /// verifies (each once, in `known` order).
    ///
    /// Signature lines whose name and key ID match no known key are ignored. A line that matches
    /// a known key and fails makes the whole note fail ([`NoteError::BadSignature`]), and so does
    /// a note with no verified known signature ([`NoteError::NoKnownSignature`]) or two known
    /// keys sharing a name and key ID ([`NoteError::AmbiguousKey`]).
    pub fn verify<'k, V: NoteVerifier>(&self, known: &'k [V]) -> Result<Vec<&'k V>, NoteError> {
        let mut verified: Vec<usize> = Vec::new();
        for sig in &self.signatures {
            let mut matching = known
                .iter()
                .enumerate()
                .filter(|(_, k)| k.name() == sig.name && k.key_id() == sig.key_id);
            let Some((i, key)) = matching.next() else {
                continue;
            };
            if matching.next().is_some() {
                return Err(NoteError::AmbiguousKey {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !key.verify(&self.text, &sig.signature) {
                return Err(NoteError::BadSignature {
                    name: sig.name.clone(),
                    key_id: sig.key_id,
                });
            }
            if !verified.contains(&i) {
                verified.push(i);
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoKnownSignature);
        }
        verified.sort_unstable();
        Ok(verified.into_iter().map(|i| &known[i]).collect())
    }
}

/// A key that can check note signatures: Ed25519 note keys ([`Ed25519Verifier`]) and witness
/// cosigning keys ([`crate::cosignature::CosignatureVerifier`]).
pub trait NoteVerifier {
    /// The key name signature lines carry.
    fn name(&self) -> &str;
    /// The key ID signature lines carry.
    fn key_id(&self) -> u32;
    /// Whether `signature` (the bytes after the key ID) is this key's valid signature of the
    /// note `text`.
    fn verify(&self, text: &str, signature: &[u8]) -> bool;
}

impl<T: NoteVerifier + ?Sized> NoteVerifier for &T {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn key_id(&self) -> u32 {
        (**self).key_id()
    }
    fn verify(&self, text: &str, signature: &[u8]) -> bool {
        (**self).verify(text, signature)
    }
}

/// A key that signs note texts.
pub trait NoteSigner {
    /// The key name written in the signature line.
    fn name(&self) -> &str;
    /// The key ID written in the signature line.
    fn key_id(&self) -> u32;
    /// The signature of `text` (the bytes after the key ID).
    fn sign(&self, text: &str) -> Vec<u8>;
}

/// Parses `name+hex8+base64(type || 32 bytes)` and checks the type; returns the name, the
/// written key ID (which the caller checks against the derived one) and the 32 key bytes.
pub(crate) fn parse_key_text(
    s: &str,
    expected_type: u8,
) -> Result<(String, u32, Zeroizing<[u8; 32]>), NoteError> {
    // The name holds no '+', so the first two '+' end the name and the ID; base64 may hold more.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::MalformedKey("expected name+keyid+key"));
    };
    if !is_valid_key_name(name) {
        return Err(NoteError::InvalidKeyName(name.to_string()));
    }
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("the key ID is not 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16)
        .map_err(|_| NoteError::MalformedKey("the key ID is not 8 hex digits"))?;
    let raw = Zeroizing::new(b64_decode(b64).ok_or(NoteError::MalformedKey("bad base64"))?);
    let (&ty, key) = raw
        .split_first()
        .ok_or(NoteError::MalformedKey("empty key"))?;
    if ty != expected_type {
        return Err(NoteError::WrongKeyType {
            expected: expected_type,
            found: ty,
        });
    }
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| NoteError::MalformedKey("the key is not 32 bytes"))?;
    Ok((name.to_string(), id, Zeroizing::new(key)))
}

/// An Ed25519 public key from 32 bytes, refusing invalid and weak (small-order) points.
pub(crate) fn ed25519_public(bytes: &[u8; 32]) -> Result<VerifyingKey, NoteError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| NoteError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(NoteError::InvalidPublicKey);
    }
    Ok(key)
}

/// `verify_strict` of a 64-byte signature; anything else is not a signature.
pub(crate) fn ed25519_verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    key.verify_strict(msg, &sig).is_ok()
}

/// The private part of both signer kinds: a name, a type byte, a key ID and an Ed25519 key
/// (whose secret ed25519-dalek zeroizes on drop).
pub(crate) struct Ed25519Secret {
    name: String,
    sig_type: u8,
    key_id: u32,
    key: SigningKey,
}

impl Ed25519Secret {
    pub(crate) fn from_seed(name: &str, sig_type: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let key = SigningKey::from_bytes(seed);
        let key_id = key_id(name, sig_type, key.verifying_key().as_bytes());
        Ok(Ed25519Secret {
            name: name.to_string(),
            sig_type,
            key_id,
            key,
        })
    }

    pub(crate) fn generate(name: &str, sig_type: u8) -> Result<Self, NoteError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| NoteError::Random(e.to_string()))?;
        Self::from_seed(name, sig_type, &seed)
    }

    pub(crate) fn from_skey(s: &str, sig_type: u8) -> Result<Self, NoteError> {
        let rest = s
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::MalformedKey("an skey starts with PRIVATE+KEY+"))?;
        let (name, id, seed) = parse_key_text(rest, sig_type)?;
        let secret = Self::from_seed(&name, sig_type, &seed)?;
        if id != secret.key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(secret)
    }

    pub(crate) fn to_skey(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![self.sig_type]);
        raw.extend_from_slice(self.key.as_bytes());
        let b64 = Zeroizing::new(b64_encode(&raw));
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id,
            b64.as_str()
        ))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key_id(&self) -> u32 {
        self.key_id
    }

    pub(crate) fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// Formats a vkey `name+hex(key ID)+base64(type || key)`.
pub(crate) fn format_vkey(name: &str, sig_type: u8, key_id: u32, key: &[u8; 32]) -> String {
    let mut raw = vec![sig_type];
    raw.extend_from_slice(key);
    format!("{name}+{key_id:08x}+{}", b64_encode(&raw))
}

/// An Ed25519 note-signature verifier key (type 0x01): a log's key, or any note signer's.
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Verifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl Ed25519Verifier {
    /// The verifier of `public_key` under `name`; the key ID is derived.
    pub fn new(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        if !is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName(name.to_string()));
        }
        let key = ed25519_public(public_key)?;
        Ok(Ed25519Verifier {
            name: name.to_string(),
            key_id: key_id(name, ED25519_TYPE, public_key),
            key,
        })
    }

    /// Parses a vkey `name+hex8+base64(0x01 || key)`, checking the type and the key ID.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_key_text(vkey, ED25519_TYPE)?;
        let v = Self::new(&name, &key)?;
        if id != v.key_id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(v)
    }

    /// The vkey text form (lowercase hex key ID).
    pub fn to_vkey(&self) -> String {
        format_vkey(&self.name, ED25519_TYPE, self.key_id, self.key.as_bytes())
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }
}

impl NoteVerifier for Ed25519Verifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.key_id
    }
    fn verify(&self, text: &str, signature: &[u8]) -> bool {
        ed25519_verify(&self.key, text.as_bytes(), signature)
    }
}

impl fmt::Debug for Ed25519Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Verifier({})", self.to_vkey())
    }
}

/// An Ed25519 note signer (type 0x01), e.g. the log's checkpoint key.
///
/// The secret is zeroized when the signer is dropped; the signer is deliberately not `Clone`
/// and its `Debug` shows only the name and key ID.
pub struct Ed25519Signer(Ed25519Secret);

impl Ed25519Signer {
    /// A new key from the operating system's randomness.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        Ed25519Secret::generate(name, ED25519_TYPE).map(Ed25519Signer)
    }

    /// The key with this 32-byte seed (RFC 8032 secret key). For tests and key import.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        Ed25519Secret::from_seed(name, ED25519_TYPE, seed).map(Ed25519Signer)
    }

    /// Parses an skey `PRIVATE+KEY+name+hex8+base64(0x01 || seed)`, checking the key ID.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        Ed25519Secret::from_skey(skey, ED25519_TYPE).map(Ed25519Signer)
    }

    /// The skey text form; the returned string is zeroized when dropped.
    pub fn to_skey(&self) -> Zeroizing<String> {
        self.0.to_skey()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Ed25519Verifier {
        Ed25519Verifier {
            name: self.0.name.clone(),
            key_id: self.0.key_id,
            key: self.0.public(),
        }
    }
}

impl NoteSigner for Ed25519Signer {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn key_id(&self) -> u32 {
        self.0.key_id()
    }
    fn sign(&self, text: &str) -> Vec<u8> {
        self.0.sign(text.as_bytes()).to_vec()
    }
}

impl fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ed25519Signer({}+{:08x})", self.0.name, self.0.key_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify_round_trip() {
        let a = Ed25519Signer::from_seed("a.example", &[1; 32]).unwrap();
        let b = Ed25519Signer::from_seed("b.example", &[2; 32]).unwrap();
        let mut note = Note::new("hello\n\nworld\n").unwrap();
        note.sign(&a).unwrap();
        note.sign(&b).unwrap();
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(parsed, note);
        let known = [b.verifier()];
        let ok = parsed.verify(&known).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].name(), "b.example");
        // Re-signing replaces the line of the same key.
        note.sign(&a).unwrap();
        assert_eq!(note.signatures().len(), 2);
    }

    #[test]
    fn unknown_keys_are_ignored_and_bad_known_ones_fail() {
        let a = Ed25519Signer::from_seed("a.example", &[1; 32]).unwrap();
        let other = Ed25519Signer::from_seed("a.example", &[3; 32]).unwrap();
        let mut note = Note::new("text\n").unwrap();
        note.sign(&a).unwrap();
        // Only an unknown key: no known signature.
        assert_eq!(
            note.verify(&[other.verifier()]),
            Err(NoteError::NoKnownSignature)
        );
        // A forged line claiming a's name and ID fails the whole note.
        let mut forged = note.clone();
        forged.signatures[0].signature[0] ^= 1;
        assert!(matches!(
            forged.verify(&[a.verifier()]),
            Err(NoteError::BadSignature { .. })
        ));
        // Two known keys with one name and ID are ambiguous.
        assert!(matches!(
            note.verify(&[a.verifier(), a.verifier()]),
            Err(NoteError::AmbiguousKey { .. })
        ));
    }

    #[test]
    fn keys_round_trip_and_are_checked() {
        let s = Ed25519Signer::generate("example.com/log").unwrap();
        let skey = s.to_skey();
        let again = Ed25519Signer::from_skey(&skey).unwrap();
        assert_eq!(again.verifier(), s.verifier());
        let vkey = s.verifier().to_vkey();
        assert_eq!(Ed25519Verifier::from_vkey(&vkey).unwrap(), s.verifier());
        // Go accepts an upper-case key ID; so do we (we write lower case).
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        let upper = format!("{}+{}+{}", parts[0], parts[1].to_uppercase(), parts[2]);
        assert_eq!(Ed25519Verifier::from_vkey(&upper).unwrap(), s.verifier());
        // A wrong key ID, a wrong type, a truncated key, a bad name.
        let wrong_id = format!("{}+{:08x}+{}", parts[0], s.verifier().key_id ^ 1, parts[2]);
        assert_eq!(
            Ed25519Verifier::from_vkey(&wrong_id),
            Err(NoteError::KeyIdMismatch)
        );
        let mut raw = b64_decode(parts[2]).unwrap();
        raw[0] = 0x04;
        let wrong_type = format!("{}+{}+{}", parts[0], parts[1], b64_encode(&raw));
        assert!(matches!(
            Ed25519Verifier::from_vkey(&wrong_type),
            Err(NoteError::WrongKeyType { .. })
        ));
        raw[0] = 0x01;
        let short = format!("{}+{}+{}", parts[0], parts[1], b64_encode(&raw[..32]));
        assert!(Ed25519Verifier::from_vkey(&short).is_err());
        assert!(Ed25519Verifier::from_vkey(&format!("a b+{}+{}", parts[1], parts[2])).is_err());
        assert!(format!("{s:?}").contains("example.com/log"));
        assert!(!format!("{s:?}").contains(&skey[12..]));
    }

    #[test]
    fn weak_public_keys_are_refused() {
        // The identity point (small order).
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            Ed25519Verifier::new("x", &identity),
            Err(NoteError::InvalidPublicKey)
        );
    }

    #[test]
    fn malformed_notes() {
        let s = Ed25519Signer::from_seed("k", &[9; 32]).unwrap();
        let mut n = Note::new("t\n").unwrap();
        n.sign(&s).unwrap();
        let good = String::from_utf8(n.to_bytes()).unwrap();
        assert!(Note::parse(good.as_bytes()).is_ok());
        let cases: Vec<(String, NoteError)> = vec![
            (good.trim_end().to_string(), NoteError::MissingNewline),
            (good.replace("\n\n", "\n"), NoteError::NoSignatures),
            (format!("{good}\n"), NoteError::NoSignatures),
            (good.replace('t', "t\r"), NoteError::ControlCharacter),
            (
                good.replace("\u{2014} ", "- "),
                NoteError::MalformedSignature { line: 1 },
            ),
            (
                good.replace("k ", "k  "),
                NoteError::MalformedSignature { line: 1 },
            ),
            (
                format!("{good}\u{2014} k AAAA\n"),
                NoteError::MalformedSignature { line: 2 },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Note::parse(text.as_bytes()), Err(want), "{text:?}");
        }
        assert_eq!(Note::parse(&[0xff, b'\n']), Err(NoteError::NotUtf8));
        assert_eq!(
            Note::parse(&vec![b'a'; MAX_NOTE_SIZE + 1]),
            Err(NoteError::TooLarge)
        );
        let many = format!(
            "t\n\n{}",
            n.signatures()[0].to_line().repeat(MAX_SIGNATURES + 1)
        );
        assert_eq!(
            Note::parse(many.as_bytes()),
            Err(NoteError::TooManySignatures)
        );
        assert_eq!(Note::new("no newline"), Err(NoteError::MissingNewline));
    }
}

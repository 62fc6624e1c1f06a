//! Signed manifests (protocol.md 4.2 as revised by R/E9-E11): the organisations' co-signatures
//! over one manifest, the service's signature over the manifest and those co-signatures, and
//! the organisations' stateful co-signing rule.
//!
//! The service appends a [`LogEntry`] per manifest to the manifest log: the manifest's hash
//! and identity, its revocations and every co-signature, so auditors see them all. The service
//! signs `SHA-256("PDQTPSI-v1/sign" ‖ entry)`, so no byte of an entry can change without
//! breaking its signature, while organisations sign only `SHA-256("PDQTPSI-v1/cosign" ‖
//! manifest_core)` (R/E9), before the service publishes.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::manifest::{read_revokes, write_revokes, Manifest};
use crate::suite::sha256;
use crate::wire::{DecodeError, Reader, Writer};

/// Magic bytes at the start of a log entry.
pub const LOG_ENTRY_MAGIC: [u8; 8] = *b"PDQTPSL\0";
/// Log entry format version.
pub const LOG_ENTRY_VERSION: u16 = 1;
/// Most co-signatures one entry carries: far more organisations than any deployment pins.
pub const MAX_COSIGNATURES: u8 = 32;
/// Largest log entry: the C2SP tiles' entry bundles carry at most 65,535 bytes per entry.
/// [`MAX_REVOKES`](crate::manifest::MAX_REVOKES) and [`MAX_COSIGNATURES`] keep every entry below it.
pub const MAX_LOG_ENTRY: usize = u16::MAX as usize;

/// Domain separator of the service's signature.
const SIGN_CONTEXT: &[u8] = b"PDQTPSI-v1/sign";

/// An organisation's Ed25519 signature over [`Manifest::cosign_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The organisation's identifier, as pinned in clients.
    pub org_id: u16,
    /// The signature bytes.
    pub signature: [u8; 64],
}

/// An organisation as a client pins it: identifier, display name, ISO 3166-1 alpha-2
/// jurisdiction and co-signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organisation {
    /// Identifier used in [`Cosignature::org_id`].
    pub id: u16,
    /// Name shown to auditors and users.
    pub name: String,
    /// Jurisdiction (two upper-case letters).
    pub jurisdiction: [u8; 2],
    /// Co-signing key.
    pub key: VerifyingKey,
}

/// Why a manifest could not be signed or co-signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// Two co-signatures of one organisation, or more than [`MAX_COSIGNATURES`].
    #[error("co-signatures: {0}")]
    Cosignatures(&'static str),
    /// The co-signer's rule (R/E11 step 3) forbids this signature.
    #[error("refusing to co-sign: {0}")]
    CosignRefused(String),
}

/// The service's manifest-signing key. The secret is zeroized on drop.
pub struct ServiceSigningKey(SigningKey);

impl ServiceSigningKey {
    /// Wraps an Ed25519 signing key.
    pub fn new(key: SigningKey) -> Self {
        ServiceSigningKey(key)
    }
    /// The public key clients pin.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
}

impl std::fmt::Debug for ServiceSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceSigningKey({:?})", self.0.verifying_key())
    }
}

/// What the service appends to the manifest log for one manifest: the manifest's identity
/// (deployment, epoch, validity window, chain link, hash), the epochs it revokes, the
/// organisations' co-signatures and the service's signature over all of it. It is small (the
/// manifest itself is served beside it and checked against `manifest_hash`), so every entry
/// fits a C2SP tile entry bundle and a client can read later entries cheaply (rules 5 and 9).
/// Decoding checks only the format; signatures are checked by the acceptance rules
/// ([`crate::acceptance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    deployment_id: [u8; 16],
    epoch: u32,
    not_before: u64,
    not_after: u64,
    prev_manifest_hash: [u8; 32],
    manifest_hash: [u8; 32],
    revokes: Vec<u32>,
    cosignatures: Vec<Cosignature>,
    service_signature: [u8; 64],
}

impl LogEntry {
    /// Deployment identifier.
    pub fn deployment_id(&self) -> &[u8; 16] {
        &self.deployment_id
    }
    /// List epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// Not valid before (Unix seconds).
    pub fn not_before(&self) -> u64 {
        self.not_before
    }
    /// Not valid at or after (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.not_after
    }
    /// The previous manifest's hash.
    pub fn prev_manifest_hash(&self) -> &[u8; 32] {
        &self.prev_manifest_hash
    }
    /// SHA-256 of the manifest's encoding.
    pub fn manifest_hash(&self) -> &[u8; 32] {
        &self.manifest_hash
    }
    /// Epochs this manifest revokes.
    pub fn revokes(&self) -> &[u32] {
        &self.revokes
    }
    /// The co-signatures, by organisation id.
    pub fn cosignatures(&self) -> &[Cosignature] {
        &self.cosignatures
    }

    /// Whether the service's signature verifies under `key` (`verify_strict`: no malleable
    /// or small-order encodings).
    pub fn service_signature_valid(&self, key: &VerifyingKey) -> bool {
        let message = sha256(&[SIGN_CONTEXT, &self.signed_part()]);
        key.verify_strict(&message, &Signature::from_bytes(&self.service_signature))
            .is_ok()
    }

    /// Everything but the service signature, as encoded.
    fn signed_part(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(150 + 4 * self.revokes.len() + 66 * self.cosignatures.len());
        w.bytes(&LOG_ENTRY_MAGIC);
        w.u16(LOG_ENTRY_VERSION);
        w.bytes(&self.deployment_id);
        w.u32(self.epoch);
        w.u64(self.not_before);
        w.u64(self.not_after);
        w.bytes(&self.prev_manifest_hash);
        w.bytes(&self.manifest_hash);
        write_revokes(&mut w, &self.revokes);
        // Bounded by MAX_COSIGNATURES on every path that builds an entry.
        w.u8(u8::try_from(self.cosignatures.len()).unwrap_or(u8::MAX));
        for c in &self.cosignatures {
            w.u16(c.org_id);
            w.bytes(&c.signature);
        }
        w.buf
    }

    /// Canonical encoding (the log's leaf data).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.signed_part();
        out.extend_from_slice(&self.service_signature);
        out
    }

    /// Strict decoding: magic, version, at most [`MAX_LOG_ENTRY`] bytes, epoch ≥ 1 with a
    /// zero previous hash exactly at epoch 1, `not_before < not_after`, at most
    /// [`MAX_REVOKES`](crate::manifest::MAX_REVOKES) revoked epochs and [`MAX_COSIGNATURES`] co-signatures in strictly
    /// ascending organisation order, no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_LOG_ENTRY {
            return Err(DecodeError::TooLarge {
                what: "log entry",
                got: bytes.len() as u64,
                limit: MAX_LOG_ENTRY as u64,
            });
        }
        let mut r = Reader::new(bytes);
        if r.array::<8>("log entry magic")? != LOG_ENTRY_MAGIC {
            return Err(DecodeError::InvalidValue("log entry magic"));
        }
        let version = r.u16("log entry version")?;
        if version != LOG_ENTRY_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "log entry",
                got: version,
            });
        }
        let deployment_id = r.array("deployment_id")?;
        let epoch = r.u32("epoch")?;
        let not_before = r.u64("not_before")?;
        let not_after = r.u64("not_after")?;
        let prev_manifest_hash: [u8; 32] = r.array("prev_manifest_hash")?;
        let manifest_hash = r.array("manifest_hash")?;
        if epoch == 0 || (epoch == 1) != (prev_manifest_hash == [0; 32]) {
            return Err(DecodeError::InvalidValue("epoch and prev_manifest_hash"));
        }
        if not_after <= not_before {
            return Err(DecodeError::InvalidValue("validity window"));
        }
        let revokes = read_revokes(&mut r)?;
        let n = r.u8("co-signature count")?;
        if n > MAX_COSIGNATURES {
            return Err(DecodeError::TooLarge {
                what: "co-signature count",
                got: u64::from(n),
                limit: u64::from(MAX_COSIGNATURES),
            });
        }
        let mut cosignatures: Vec<Cosignature> = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let org_id = r.u16("co-signer id")?;
            if cosignatures.last().is_some_and(|c| c.org_id >= org_id) {
                return Err(DecodeError::InvalidValue(
                    "co-signer ids (not strictly ascending)",
                ));
            }
            let signature = r.array("co-signature")?;
            cosignatures.push(Cosignature { org_id, signature });
        }
        let service_signature = r.array("service signature")?;
        r.finish()?;
        Ok(LogEntry {
            deployment_id,
            epoch,
            not_before,
            not_after,
            prev_manifest_hash,
            manifest_hash,
            revokes,
            cosignatures,
            service_signature,
        })
    }
}

/// A manifest with its log entry, the entry checked to describe exactly this manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedManifest {
    manifest: Manifest,
    entry: LogEntry,
}

impl SignedManifest {
    /// Signs `manifest` with the co-signatures collected for it (sorted by organisation; one
    /// per organisation, at most [`MAX_COSIGNATURES`]).
    pub fn sign(
        manifest: Manifest,
        mut cosignatures: Vec<Cosignature>,
        key: &ServiceSigningKey,
    ) -> Result<Self, SignError> {
        cosignatures.sort_by_key(|c| c.org_id);
        if cosignatures.windows(2).any(|w| w[0].org_id == w[1].org_id) {
            return Err(SignError::Cosignatures("two from one organisation"));
        }
        if cosignatures.len() > usize::from(MAX_COSIGNATURES) {
            return Err(SignError::Cosignatures("too many"));
        }
        let mut entry = LogEntry {
            deployment_id: *manifest.deployment_id(),
            epoch: manifest.epoch(),
            not_before: manifest.not_before(),
            not_after: manifest.not_after(),
            prev_manifest_hash: *manifest.prev_manifest_hash(),
            manifest_hash: manifest.hash(),
            revokes: manifest.revokes().to_vec(),
            cosignatures,
            service_signature: [0; 64],
        };
        let message = sha256(&[SIGN_CONTEXT, &entry.signed_part()]);
        entry.service_signature = key.0.sign(&message).to_bytes();
        Ok(SignedManifest { manifest, entry })
    }

    /// Pairs a manifest's encoding with its log entry, refusing an entry that describes
    /// another manifest (hash, deployment, epoch, window, chain link or revocations differ).
    pub fn open(manifest: &[u8], entry: &[u8]) -> Result<Self, DecodeError> {
        let entry = LogEntry::decode(entry)?;
        let m = Manifest::decode(manifest)?;
        let same = entry.manifest_hash == sha256(&[manifest])
            && &entry.deployment_id == m.deployment_id()
            && entry.epoch == m.epoch()
            && entry.not_before == m.not_before()
            && entry.not_after == m.not_after()
            && &entry.prev_manifest_hash == m.prev_manifest_hash()
            && entry.revokes == m.revokes();
        if !same {
            return Err(DecodeError::InvalidValue(
                "log entry (it describes another manifest)",
            ));
        }
        Ok(SignedManifest { manifest: m, entry })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The log entry.
    pub fn entry(&self) -> &LogEntry {
        &self.entry
    }

    /// The pinned organisations whose co-signature verifies. A co-signature from an
    /// organisation that is not pinned is ignored (a newer app may know it); an invalid one
    /// from a pinned organisation is an error naming it.
    pub fn verified_cosigners<'a>(
        &self,
        pinned: &'a [Organisation],
    ) -> Result<Vec<&'a Organisation>, u16> {
        let message = self.manifest.cosign_message();
        let mut out = Vec::new();
        for c in &self.entry.cosignatures {
            let Some(org) = pinned.iter().find(|o| o.id == c.org_id) else {
                continue;
            };
            org.key
                .verify_strict(&message, &Signature::from_bytes(&c.signature))
                .map_err(|_| c.org_id)?;
            out.push(org);
        }
        Ok(out)
    }
}

/// What an organisation's co-signer remembers between manifests (R/E11 step 3): the last
/// manifest it co-signed. Persist it (with [`CosignerState::encode`]) before releasing a
/// signature, or a restarted co-signer could sign two manifests for one epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CosignerState {
    last: Option<(u32, [u8; 32])>,
}

impl CosignerState {
    /// A co-signer that has signed nothing yet.
    pub fn new() -> Self {
        CosignerState::default()
    }
    /// The last co-signed manifest's epoch and hash.
    pub fn last(&self) -> Option<(u32, [u8; 32])> {
        self.last
    }

    /// Co-signs `manifest` under the rule of R/E11 step 3, after the caller's checks of step 2
    /// passed: it never co-signs two manifests for one epoch, and only one whose
    /// `prev_manifest_hash` is the last manifest it co-signed (or, for its first signature,
    /// any manifest). Signing the same manifest again returns the same signature. The state is
    /// updated; persist it before handing out the signature.
    pub fn cosign(
        &mut self,
        org_id: u16,
        key: &SigningKey,
        manifest: &Manifest,
    ) -> Result<Cosignature, SignError> {
        let hash = manifest.hash();
        if let Some((epoch, last_hash)) = self.last {
            let same = hash == last_hash;
            if manifest.epoch() == epoch && !same {
                return Err(SignError::CosignRefused(format!(
                    "already co-signed another manifest for epoch {epoch}"
                )));
            }
            if !same && manifest.prev_manifest_hash() != &last_hash {
                return Err(SignError::CosignRefused(format!(
                    "epoch {} does not continue the last co-signed manifest (epoch {epoch})",
                    manifest.epoch()
                )));
            }
        }
        let signature = key.sign(&manifest.cosign_message()).to_bytes();
        self.last = Some((manifest.epoch(), hash));
        Ok(Cosignature { org_id, signature })
    }

    /// Encoding: one line, `none` or `epoch <n> <hex hash>`.
    pub fn encode(&self) -> String {
        match self.last {
            None => "none\n".to_string(),
            Some((epoch, hash)) => format!("epoch {epoch} {}\n", crate::hex_string(&hash)),
        }
    }

    /// Strict decoding of [`CosignerState::encode`].
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let line = text
            .strip_suffix('\n')
            .ok_or(DecodeError::InvalidValue("co-signer state"))?;
        if line == "none" {
            return Ok(CosignerState::new());
        }
        let mut parts = line.split(' ');
        let (Some("epoch"), Some(epoch), Some(hash), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DecodeError::InvalidValue("co-signer state"));
        };
        let epoch: u32 = epoch
            .parse()
            .ok()
            .filter(|e: &u32| e.to_string() == epoch)
            .ok_or(DecodeError::InvalidValue("co-signer state epoch"))?;
        let hash = crate::parse_hex32(hash).ok_or(DecodeError::InvalidValue("co-signer hash"))?;
        Ok(CosignerState {
            last: Some((epoch, hash)),
        })
    }
}

//! The client's acceptance rules for a manifest (protocol.md 4.3 as revised by R/E10), all in
//! one function, [`accept_manifest`], which is the only way to obtain the
//! [`VerifiedManifest`] that [`ClientTable::load`](crate::table::ClientTable::load) requires.
//!
//! A manifest is accepted only with all of:
//! 1. a valid service signature (`verify_strict`);
//! 2. valid co-signatures of at least two pinned organisations from at least two distinct
//!    jurisdictions;
//! 3. an inclusion proof of the signed manifest in the manifest log against a checkpoint signed
//!    by the log and co-signed by a quorum of witnesses (the pinned witness policy), the quorum
//!    met by co-signatures no older than 72 hours;
//! 4. a consistency proof from the last checkpoint this client accepted (a fork is kept as
//!    evidence);
//! 5. it is the newest leaf of the log whose `not_before ≤ now`;
//! 6. `now < not_after`;
//! 7. its epoch is newer than the last accepted one, continues its hash chain, and is at least
//!    the floor pinned in this build;
//! 8. its parameters equal the pinned ones (T at least the floor);
//! 9. no later manifest in the log revokes its epoch.
//!
//! If no manifest passes, the client builds no vouchers; it never falls back to an older table.

use ed25519_dalek::VerifyingKey;
use hashguard_transparency::follower::{Follower, FollowerError, ForkEvidence, Update};
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::policy::{Policy, VerifiedCheckpoint};
use hashguard_transparency::proof::ProofBundle;

use crate::manifest::{ManifestError, VerifiedManifest};
use crate::params::PinnedParams;
use crate::signed::{LogEntry, Organisation, SignedManifest, MAX_LOG_ENTRY};
use crate::wire::{DecodeError, Reader, Writer};

/// Checkpoints older than this do not count (R/E10 rule 3).
pub const MAX_CHECKPOINT_AGE: u64 = 72 * 3600;
/// Magic bytes at the start of a manifest bundle.
pub const BUNDLE_MAGIC: [u8; 8] = *b"PDQTPSB\0";
/// Manifest bundle format version.
pub const BUNDLE_VERSION: u16 = 1;
/// Most later log entries a bundle carries (rules 5 and 9): manifests are published at most a
/// few epochs ahead of their validity.
pub const MAX_LATER_ENTRIES: u16 = 64;
/// Largest proof in a bundle (a checkpoint note with its co-signatures and 64 hashes).
const MAX_PROOF: u32 = hashguard_transparency::proof::MAX_PROOF_SIZE as u32;
/// Largest manifest in a bundle: about 200 bytes plus 180 per shard.
const MAX_MANIFEST: u32 = 4 << 20;

/// What a client pins in its build: who may sign, co-sign and witness, and the parameters.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    /// The deployment this client belongs to.
    pub deployment_id: [u8; 16],
    /// The service's manifest-signing key.
    pub service_key: VerifyingKey,
    /// The organisations that may co-sign, with their jurisdictions.
    pub organisations: Vec<Organisation>,
    /// Fewest valid organisation co-signatures (2).
    pub min_cosigners: usize,
    /// Fewest distinct jurisdictions among them (2).
    pub min_jurisdictions: usize,
    /// The manifest log's key, its witnesses and their quorum (C2SP tlog-policy).
    pub log_policy: Policy,
    /// How old the witnesses' co-signatures may be, in seconds ([`MAX_CHECKPOINT_AGE`]).
    pub max_checkpoint_age: u64,
    /// The parameters this build speaks.
    pub pinned: PinnedParams,
    /// The lowest epoch this build accepts (stops a rollback to before the build).
    pub epoch_floor: u32,
}

/// Why a trust file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust file line {line}: {reason}")]
pub struct TrustFileError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl TrustAnchors {
    /// Parses a trust file: hashguard's own lines, then the witness policy in C2SP tlog-policy
    /// syntax (`log`, `witness`, `group`, `quorum`), in any order, with `#` comments:
    ///
    /// ```text
    /// deployment <32 hex digits>
    /// service-key <64 hex digits: the Ed25519 public key that signs manifests>
    /// organisation <id> <jurisdiction, e.g. GB> <64 hex digits> <display name…>
    /// min-cosigners <n>            (default 2)
    /// min-jurisdictions <n>        (default 2)
    /// max-checkpoint-age <seconds> (default 259200: 72 hours)
    /// epoch-floor <epoch>          (default 1)
    /// ```
    ///
    /// The parameters are the app's own (`pinned`), not the file's. Refused: a missing
    /// deployment, service key or policy, an organisation id or key given twice, a
    /// jurisdiction that is not two upper-case letters, minimums below 2, a
    /// `max-checkpoint-age` above 72 hours.
    pub fn parse(text: &str, pinned: PinnedParams) -> Result<Self, TrustFileError> {
        let err = |line: usize, reason: &str| TrustFileError {
            line,
            reason: reason.to_string(),
        };
        let mut deployment_id = None;
        let mut service_key = None;
        let mut organisations: Vec<Organisation> = Vec::new();
        let (mut min_cosigners, mut min_jurisdictions) = (2usize, 2usize);
        let mut max_checkpoint_age = MAX_CHECKPOINT_AGE;
        let mut epoch_floor = 1u32;
        let mut policy = String::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.split('#').next().unwrap_or("").trim();
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let rest: Vec<&str> = words.collect();
            let one = |what: &str| -> Result<&str, TrustFileError> {
                match rest.as_slice() {
                    [v] => Ok(*v),
                    _ => Err(err(n, &format!("{what} takes one value"))),
                }
            };
            let number = |what: &str| -> Result<u64, TrustFileError> {
                one(what)?
                    .parse::<u64>()
                    .map_err(|_| err(n, &format!("{what} is not a number")))
            };
            match keyword {
                "deployment" => {
                    let v = one("deployment")?;
                    let bytes = hex_bytes(v)
                        .filter(|b| b.len() == 16)
                        .ok_or_else(|| err(n, "deployment is not 32 hex digits"))?;
                    let mut id = [0u8; 16];
                    id.copy_from_slice(&bytes);
                    deployment_id = Some(id);
                }
                "service-key" => {
                    service_key = Some(
                        verifying_key(one("service-key")?)
                            .ok_or_else(|| err(n, "service-key is not an Ed25519 public key"))?,
                    );
                }
                "organisation" => {
                    let [id, jurisdiction, key, name @ ..] = rest.as_slice() else {
                        return Err(err(n, "organisation <id> <jurisdiction> <key> <name>"));
                    };
                    let id: u16 = id
                        .parse()
                        .map_err(|_| err(n, "organisation id is not a number below 65536"))?;
                    let j = jurisdiction.as_bytes();
                    if j.len() != 2 || !j.iter().all(u8::is_ascii_uppercase) {
                        return Err(err(n, "jurisdiction is not two upper-case letters"));
                    }
                    let key = verifying_key(key)
                        .ok_or_else(|| err(n, "organisation key is not an Ed25519 public key"))?;
                    if name.is_empty() {
                        return Err(err(n, "organisation has no name"));
                    }
                    if organisations.iter().any(|o| o.id == id || o.key == key) {
                        return Err(err(n, "organisation id or key given twice"));
                    }
                    organisations.push(Organisation {
                        id,
                        name: name.join(" "),
                        jurisdiction: [j[0], j[1]],
                        key,
                    });
                }
                "min-cosigners" => min_cosigners = number("min-cosigners")? as usize,
                "min-jurisdictions" => min_jurisdictions = number("min-jurisdictions")? as usize,
                "max-checkpoint-age" => max_checkpoint_age = number("max-checkpoint-age")?,
                "epoch-floor" => {
                    epoch_floor = u32::try_from(number("epoch-floor")?)
                        .map_err(|_| err(n, "epoch-floor is too large"))?
                }
                "log" | "witness" | "group" | "quorum" => {
                    policy.push_str(line);
                    policy.push('\n');
                }
                other => return Err(err(n, &format!("unknown keyword {other:?}"))),
            }
        }
        if min_cosigners < 2 || min_jurisdictions < 2 {
            return Err(err(
                0,
                "min-cosigners and min-jurisdictions are at least 2 (G5)",
            ));
        }
        if max_checkpoint_age > MAX_CHECKPOINT_AGE {
            return Err(err(0, "max-checkpoint-age is at most 72 hours (R/E10)"));
        }
        let log_policy =
            Policy::parse(&policy).map_err(|e| err(0, &format!("witness policy: {e}")))?;
        if log_policy.logs().is_empty() {
            return Err(err(0, "no log key"));
        }
        Ok(TrustAnchors {
            deployment_id: deployment_id.ok_or_else(|| err(0, "no deployment"))?,
            service_key: service_key.ok_or_else(|| err(0, "no service-key"))?,
            organisations,
            min_cosigners,
            min_jurisdictions,
            log_policy,
            max_checkpoint_age,
            pinned,
            epoch_floor,
        })
    }

    /// The trust file [`TrustAnchors::parse`] reads back to these anchors.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# hashguard trust anchors: pinned in the app, changed only by an app update\n",
        );
        out.push_str(&format!(
            "deployment {}\n",
            crate::hex_string(&self.deployment_id)
        ));
        out.push_str(&format!(
            "service-key {}\n",
            crate::hex_string(self.service_key.as_bytes())
        ));
        for o in &self.organisations {
            out.push_str(&format!(
                "organisation {} {} {} {}\n",
                o.id,
                String::from_utf8_lossy(&o.jurisdiction),
                crate::hex_string(o.key.as_bytes()),
                o.name
            ));
        }
        out.push_str(&format!("min-cosigners {}\n", self.min_cosigners));
        out.push_str(&format!("min-jurisdictions {}\n", self.min_jurisdictions));
        out.push_str(&format!("max-checkpoint-age {}\n", self.max_checkpoint_age));
        out.push_str(&format!("epoch-floor {}\n", self.epoch_floor));
        out.push_str("# the manifest log and its witnesses (c2sp.org/tlog-policy)\n");
        out.push_str(&self.log_policy.to_text());
        out
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

fn verifying_key(hex: &str) -> Option<VerifyingKey> {
    let bytes = crate::parse_hex32(hex)?;
    let key = VerifyingKey::from_bytes(&bytes).ok()?;
    // A small-order key would let anyone forge signatures that verify loosely.
    (!key.is_weak()).then_some(key)
}

/// A manifest with what proves it is the log's: its encoding, its log entry
/// ([`LogEntry`]), the entry's C2SP tlog-proof, and every later entry of the log with its
/// proof against the same checkpoint (for rules 5 and 9). The service ships one with each
/// manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestBundle {
    /// The manifest's canonical encoding (`manifest_core`).
    pub manifest: Vec<u8>,
    /// Its log entry.
    pub entry: Vec<u8>,
    /// The entry's inclusion proof and checkpoint (C2SP tlog-proof).
    pub proof: Vec<u8>,
    /// The entries after it, in log order, each with its proof.
    pub later: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ManifestBundle {
    /// Encoding: magic, version, then the manifest, entry and proof each with a u32 length,
    /// and the later entries and proofs after a u16 count.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(self.manifest.len() + self.entry.len() + self.proof.len() + 64);
        w.bytes(&BUNDLE_MAGIC);
        w.u16(BUNDLE_VERSION);
        let field = |w: &mut Writer, b: &[u8]| {
            w.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
            w.bytes(b);
        };
        field(&mut w, &self.manifest);
        field(&mut w, &self.entry);
        field(&mut w, &self.proof);
        w.u16(u16::try_from(self.later.len()).unwrap_or(u16::MAX));
        for (entry, proof) in &self.later {
            field(&mut w, entry);
            field(&mut w, proof);
        }
        w.buf
    }

    /// Strict decoding (sizes bounded, proofs UTF-8, no trailing bytes). The contents are
    /// checked by [`accept_manifest`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<8>("bundle magic")? != BUNDLE_MAGIC {
            return Err(DecodeError::InvalidValue("bundle magic"));
        }
        let v = r.u16("bundle version")?;
        if v != BUNDLE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "manifest bundle",
                got: v,
            });
        }
        let manifest = read_field(&mut r, "manifest", MAX_MANIFEST)?.to_vec();
        let entry = read_field(&mut r, "entry", MAX_LOG_ENTRY as u32)?.to_vec();
        let proof = read_field(&mut r, "proof", MAX_PROOF)?.to_vec();
        let n = r.u16("later count")?;
        if n > MAX_LATER_ENTRIES {
            return Err(DecodeError::TooLarge {
                what: "later entries",
                got: u64::from(n),
                limit: u64::from(MAX_LATER_ENTRIES),
            });
        }
        let mut later = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let e = read_field(&mut r, "later entry", MAX_LOG_ENTRY as u32)?.to_vec();
            later.push((e, read_field(&mut r, "later proof", MAX_PROOF)?.to_vec()));
        }
        r.finish()?;
        Ok(ManifestBundle {
            manifest,
            entry,
            proof,
            later,
        })
    }
}

fn read_field<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
    limit: u32,
) -> Result<&'a [u8], DecodeError> {
    let len = r.u32(what)?;
    if len > limit {
        return Err(DecodeError::TooLarge {
            what,
            got: u64::from(len),
            limit: u64::from(limit),
        });
    }
    r.take(len as usize, what)
}

/// What a client keeps between acceptances: the last checkpoint it accepted (for consistency)
/// and the last manifest's epoch and hash (for the chain).
#[derive(Debug, Clone)]
pub struct AcceptedState {
    checkpoint: VerifiedCheckpoint,
    epoch: u32,
    manifest_hash: [u8; 32],
}

impl AcceptedState {
    /// The last accepted checkpoint.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }
    /// The last accepted epoch.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The last accepted manifest's hash.
    pub fn manifest_hash(&self) -> &[u8; 32] {
        &self.manifest_hash
    }

    /// Encoding for the client's storage: epoch (u32), manifest hash, then the checkpoint note.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(600);
        w.u32(self.epoch);
        w.bytes(&self.manifest_hash);
        w.bytes(&self.checkpoint.to_bytes());
        w.buf
    }

    /// Reads what [`AcceptedState::to_bytes`] wrote, verifying the checkpoint again under the
    /// pinned policy (stored state is trusted no more than the network; its age does not
    /// matter here, only that the log and witnesses signed it).
    pub fn from_bytes(bytes: &[u8], anchors: &TrustAnchors) -> Result<Self, AcceptError> {
        let mut r = Reader::new(bytes);
        let fmt = |e: DecodeError| AcceptError::Format(e.to_string());
        let epoch = r.u32("epoch").map_err(fmt)?;
        let manifest_hash = r.array("manifest hash").map_err(fmt)?;
        let rest = r.take(r.remaining(), "checkpoint").map_err(fmt)?;
        let checkpoint = anchors
            .log_policy
            .verify_checkpoint_bytes(rest)
            .map_err(|e| AcceptError::Checkpoint(e.to_string()))?;
        Ok(AcceptedState {
            checkpoint,
            epoch,
            manifest_hash,
        })
    }
}

/// An accepted manifest and the state to keep for the next acceptance.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The manifest, usable to load a client table.
    pub manifest: VerifiedManifest,
    /// The signed manifest as logged (for display: co-signers).
    pub signed: SignedManifest,
    /// Keep this and pass it to the next [`accept_manifest`].
    pub state: AcceptedState,
}

/// Why a manifest was refused, one variant per rule.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcceptError {
    /// The bundle, entry or proof is malformed.
    #[error("malformed manifest bundle: {0}")]
    Format(String),
    /// Rule 1.
    #[error("the service's signature on the manifest is not valid")]
    ServiceSignature,
    /// The manifest belongs to another deployment.
    #[error("the manifest belongs to another deployment")]
    Deployment,
    /// Rule 2: a pinned organisation's co-signature is invalid.
    #[error("organisation {0}'s co-signature is not valid")]
    BadCosignature(u16),
    /// Rule 2: too few co-signers or jurisdictions.
    #[error("co-signed by {organisations} pinned organisations from {jurisdictions} jurisdictions; at least {need_organisations} from {need_jurisdictions} are required")]
    Cosigners {
        /// Valid pinned co-signers.
        organisations: usize,
        /// Distinct jurisdictions among them.
        jurisdictions: usize,
        /// Required co-signers.
        need_organisations: usize,
        /// Required jurisdictions.
        need_jurisdictions: usize,
    },
    /// Rule 3: the checkpoint's log signature or witness quorum fails.
    #[error("the log checkpoint is not valid: {0}")]
    Checkpoint(String),
    /// Rule 3: the witness quorum is met only by co-signatures older than the limit.
    #[error("the log checkpoint's witness co-signatures are older than {max_age_hours} hours")]
    StaleCheckpoint {
        /// The limit.
        max_age_hours: u64,
    },
    /// Rule 3: the manifest is not in the log.
    #[error("the manifest is not in the log: {0}")]
    NotLogged(String),
    /// Rule 4: the log is not an extension of the one accepted before.
    #[error("the log does not extend the checkpoint accepted before: {0}")]
    Inconsistent(String),
    /// Rule 4: two views of the log; the evidence is for auditors.
    #[error("the log forked: two signed checkpoints disagree")]
    Fork(Box<ForkEvidence>),
    /// Rule 5: a newer manifest is in force.
    #[error("a newer manifest (epoch {0}) is in force")]
    NotNewest(u32),
    /// Rules 6-8 (window, epoch, chain, parameters).
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Rule 7: below the floor pinned in this build.
    #[error("epoch {got} is below this app's floor {floor}")]
    BelowFloor {
        /// The manifest's epoch.
        got: u32,
        /// The pinned floor.
        floor: u32,
    },
    /// Rule 9.
    #[error("epoch {epoch} was revoked by the manifest of epoch {by}")]
    Revoked {
        /// The refused epoch.
        epoch: u32,
        /// The revoking manifest's epoch.
        by: u32,
    },
}

/// Applies every rule of R/E10 to `bundle` at time `now` (Unix seconds). `previous` is what the
/// last acceptance returned; `consistency` proves its checkpoint's tree is a prefix of this
/// bundle's (empty when there is no previous state or the sizes are equal; the client computes
/// it from the log's tiles).
pub fn accept_manifest(
    bundle: &ManifestBundle,
    consistency: &[Hash],
    anchors: &TrustAnchors,
    previous: Option<&AcceptedState>,
    now: u64,
) -> Result<Accepted, AcceptError> {
    let fmt = |e: &dyn std::fmt::Display| AcceptError::Format(e.to_string());
    // Rule 3: the checkpoint's log signature, its witness quorum and its age; the entry's
    // inclusion.
    let proof = ProofBundle::parse(&bundle.proof).map_err(|e| fmt(&e))?;
    let checkpoint = anchors
        .log_policy
        .verify_checkpoint(proof.signed_checkpoint())
        .map_err(|e| AcceptError::Checkpoint(e.to_string()))?;
    if !checkpoint.quorum_fresh(now, anchors.max_checkpoint_age) {
        return Err(AcceptError::StaleCheckpoint {
            max_age_hours: anchors.max_checkpoint_age / 3600,
        });
    }
    let cp = checkpoint.checkpoint();
    proof
        .verify_inclusion(&merkle::leaf_hash(&bundle.entry), cp)
        .map_err(|e| AcceptError::NotLogged(e.to_string()))?;
    let index = proof.index();

    // Rule 4: the log extends the last checkpoint accepted (an older one would hide entries
    // this client knows exist, so it is refused too).
    if let Some(prev) = previous {
        let mut follower = Follower::new(prev.checkpoint.log_signed().clone());
        match follower.update(checkpoint.log_signed(), consistency) {
            Ok(Update::Advanced { .. } | Update::Unchanged) => {}
            Ok(Update::Older) => {
                return Err(AcceptError::Inconsistent(format!(
                    "the checkpoint ({} entries) is older than one accepted before ({})",
                    cp.size(),
                    prev.checkpoint.checkpoint().size()
                )))
            }
            Err(FollowerError::Fork(evidence)) => return Err(AcceptError::Fork(evidence)),
            Err(e) => return Err(AcceptError::Inconsistent(e.to_string())),
        }
    }

    // Rules 1 and 2: the service's signature and the organisations' co-signatures, on an
    // entry that describes exactly this manifest.
    let signed = SignedManifest::open(&bundle.manifest, &bundle.entry).map_err(|e| fmt(&e))?;
    if !signed.entry().service_signature_valid(&anchors.service_key) {
        return Err(AcceptError::ServiceSignature);
    }
    let manifest = signed.manifest();
    if manifest.deployment_id() != &anchors.deployment_id {
        return Err(AcceptError::Deployment);
    }
    let cosigners = signed
        .verified_cosigners(&anchors.organisations)
        .map_err(AcceptError::BadCosignature)?;
    let mut jurisdictions: Vec<[u8; 2]> = cosigners.iter().map(|o| o.jurisdiction).collect();
    jurisdictions.sort_unstable();
    jurisdictions.dedup();
    if cosigners.len() < anchors.min_cosigners || jurisdictions.len() < anchors.min_jurisdictions {
        return Err(AcceptError::Cosigners {
            organisations: cosigners.len(),
            jurisdictions: jurisdictions.len(),
            need_organisations: anchors.min_cosigners,
            need_jurisdictions: anchors.min_jurisdictions,
        });
    }

    // Rules 5 and 9: every later entry of the log is here, proved against the same
    // checkpoint; none of this deployment's is in force, none revokes this epoch.
    let expected_later = cp.size().saturating_sub(index + 1);
    if bundle.later.len() as u64 != expected_later {
        return Err(AcceptError::NotLogged(format!(
            "the bundle carries {} of the {expected_later} later log entries",
            bundle.later.len()
        )));
    }
    for (i, (entry, text)) in (index + 1..).zip(&bundle.later) {
        let p = ProofBundle::parse(text).map_err(|e| fmt(&e))?;
        if p.index() != i || p.signed_checkpoint() != proof.signed_checkpoint() {
            return Err(AcceptError::NotLogged(format!(
                "later entry {i} is proved at another position or checkpoint"
            )));
        }
        p.verify_inclusion(&merkle::leaf_hash(entry), cp)
            .map_err(|e| AcceptError::NotLogged(e.to_string()))?;
        // An entry the service did not sign for this deployment can neither supersede nor
        // revoke; it is still in the log for auditors to see.
        let Ok(later) = LogEntry::decode(entry) else {
            continue;
        };
        if !later.service_signature_valid(&anchors.service_key)
            || later.deployment_id() != &anchors.deployment_id
        {
            continue;
        }
        if later.revokes().contains(&manifest.epoch()) {
            return Err(AcceptError::Revoked {
                epoch: manifest.epoch(),
                by: later.epoch(),
            });
        }
        if later.not_before() <= now && later.epoch() > manifest.epoch() {
            return Err(AcceptError::NotNewest(later.epoch()));
        }
    }

    // Rules 6-8 and the floor of rule 7. The same manifest accepted again (a fresher
    // checkpoint for an unchanged epoch) is checked without the chain, which it already
    // passed; another manifest for an accepted epoch is a rollback.
    if manifest.epoch() < anchors.epoch_floor {
        return Err(AcceptError::BelowFloor {
            got: manifest.epoch(),
            floor: anchors.epoch_floor,
        });
    }
    let manifest_hash = *signed.entry().manifest_hash();
    let last = previous
        .filter(|p| !(p.epoch == manifest.epoch() && p.manifest_hash == manifest_hash))
        .map(|p| (p.epoch, p.manifest_hash));
    let verified = manifest.clone().check_client(&anchors.pinned, now, last)?;
    let state = AcceptedState {
        checkpoint,
        epoch: manifest.epoch(),
        manifest_hash,
    };
    Ok(Accepted {
        manifest: verified,
        signed,
        state,
    })
}

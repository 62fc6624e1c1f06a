//! The table manifest (protocol.md 4.2 as revised by R/E9): header, pinned parameters, public
//! key and per-shard entries of every table. This is the unsigned `manifest_core`; service and
//! organisation signatures, the append-only log and witnesses belong to the `transparency` part.

use crate::dleq::DleqProof;
use crate::keys::TableKind;
use crate::merkle;
use crate::okvs::Layout;
use crate::params::{Params, ParamsError, PinnedParams};
use crate::suite::{sha256, SUITE_ID};
use crate::table::{PublicKey, ShardEntry, TableSpec};
use crate::wire::{DecodeError, Reader, Writer};

/// Magic bytes at the start of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"PDQTPSI\0";
/// Manifest format version.
pub const MANIFEST_VERSION: u16 = 1;
/// Most shards per table a manifest may describe.
pub const MAX_SHARDS: u16 = 4096;
/// Most revoked epochs a manifest may list.
pub const MAX_REVOKES: u16 = 4096;

/// One table of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescriptor {
    /// Key space.
    pub kind: TableKind,
    /// Shard count S.
    pub shard_count: u16,
    /// Deployment-constant shard salt.
    pub shard_salt: [u8; 32],
    /// Per-shard entries, in shard order (length S).
    pub shards: Vec<ShardEntry>,
}

impl TableDescriptor {
    /// Σ n_s (exact; never rounded: R/E9).
    pub fn n_keys(&self) -> u64 {
        self.shards.iter().map(|s| u64::from(s.n_keys)).sum()
    }
    /// Merkle root over the shard roots.
    pub fn table_root(&self) -> [u8; 32] {
        let roots: Vec<[u8; 32]> = self.shards.iter().map(|s| s.root).collect();
        merkle::table_root(&roots)
    }
}

/// Why a client refuses a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Parameters differ from the pinned values.
    #[error(transparent)]
    Params(#[from] ParamsError),
    /// `now` is outside `[not_before, not_after)`.
    #[error("manifest is not valid at this time")]
    NotCurrent,
    /// The epoch is not newer than the last accepted one.
    #[error("epoch {got} is not newer than the last accepted {last}")]
    Rollback {
        /// This manifest's epoch.
        got: u32,
        /// The last accepted epoch.
        last: u32,
    },
    /// The manifest revokes its own epoch or its chain does not continue the last one.
    #[error("manifest chain broken: {0}")]
    Chain(&'static str),
}

/// The unsigned manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Deployment identifier.
    pub deployment_id: [u8; 16],
    /// List epoch.
    pub epoch: u32,
    /// Not valid before (Unix seconds).
    pub not_before: u64,
    /// Not valid at or after (Unix seconds).
    pub not_after: u64,
    /// SHA-256 of the previous manifest's encoding (zeros for the first).
    pub prev_manifest_hash: [u8; 32],
    /// Public parameters, including the policy.
    pub params: Params,
    /// L = α·G.
    pub public_key: PublicKey,
    /// The tables (at most one per kind; the PDQ table first if present).
    pub tables: Vec<TableDescriptor>,
    /// Epochs revoked by this manifest.
    pub revokes: Vec<u32>,
}

impl Manifest {
    /// Canonical encoding (`manifest_core`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(512);
        w.bytes(&MANIFEST_MAGIC);
        w.u16(MANIFEST_VERSION);
        w.bytes(&self.deployment_id);
        w.u32(self.epoch);
        w.u64(self.not_before);
        w.u64(self.not_after);
        w.bytes(&self.prev_manifest_hash);
        w.u8(SUITE_ID);
        w.u8(3);
        self.params.write(&mut w);
        w.bytes(&self.public_key.to_bytes());
        w.u8(self.tables.len() as u8);
        for t in &self.tables {
            w.u8(t.kind.to_byte());
            w.u16(t.shard_count);
            w.bytes(&t.shard_salt);
            w.u64(t.n_keys());
            w.bytes(&t.table_root());
            for s in &t.shards {
                w.u32(s.shard_version);
                w.u32(s.n_keys);
                w.u32(s.m);
                w.u32(s.segment_length);
                w.bytes(&s.build_id);
                w.bytes(&s.root);
                w.bytes(&s.proof.to_bytes());
            }
        }
        w.u16(self.revokes.len() as u16);
        for &e in &self.revokes {
            w.u32(e);
        }
        w.buf
    }

    /// Strict decoding: magic, version, epoch >= 1 with a zero `prev_manifest_hash` exactly at
    /// epoch 1, `not_before < not_after`, suite, arity, parameter invariants, layouts equal to
    /// `binary_fuse_size(n_s)`, n_keys and table_root consistent with the entries, at most one
    /// table per kind, no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        if r.array::<8>("magic")? != MANIFEST_MAGIC {
            return Err(DecodeError::InvalidValue("magic"));
        }
        let v = r.u16("version")?;
        if v != MANIFEST_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "manifest",
                got: v,
            });
        }
        let deployment_id = r.array("deployment_id")?;
        let epoch = r.u32("epoch")?;
        let not_before = r.u64("not_before")?;
        let not_after = r.u64("not_after")?;
        let prev_manifest_hash: [u8; 32] = r.array("prev_manifest_hash")?;
        // Epochs count from 1; the first has no predecessor and every later one names its own.
        if epoch == 0 {
            return Err(DecodeError::InvalidValue("epoch 0 (epochs start at 1)"));
        }
        if (epoch == 1) != (prev_manifest_hash == [0u8; 32]) {
            return Err(DecodeError::InvalidValue(if epoch == 1 {
                "prev_manifest_hash of epoch 1 (the first epoch has no predecessor)"
            } else {
                "prev_manifest_hash (zero after epoch 1)"
            }));
        }
        if not_after <= not_before {
            return Err(DecodeError::InvalidValue(
                "validity window (not_after is not after not_before)",
            ));
        }
        let suite = r.u8("suite")?;
        if suite != SUITE_ID {
            return Err(DecodeError::UnsupportedSuite(suite));
        }
        if r.u8("arity")? != 3 {
            return Err(DecodeError::InvalidValue("arity"));
        }
        let params = Params::read(&mut r)?;
        let public_key = PublicKey::from_bytes(&r.array("L")?)?;
        let n_tables = r.u8("table count")?;
        if n_tables > 3 {
            return Err(DecodeError::TooLarge {
                what: "table count",
                got: u64::from(n_tables),
                limit: 3,
            });
        }
        let mut tables: Vec<TableDescriptor> = Vec::with_capacity(usize::from(n_tables));
        for _ in 0..n_tables {
            let kind =
                TableKind::from_byte(r.u8("kind")?).ok_or(DecodeError::InvalidValue("kind"))?;
            if tables.iter().any(|t| t.kind == kind) {
                return Err(DecodeError::InvalidValue("duplicate table kind"));
            }
            let shard_count = r.u16("shard_count")?;
            if shard_count == 0 || shard_count > MAX_SHARDS {
                return Err(DecodeError::InvalidValue("shard_count"));
            }
            let shard_salt = r.array("shard_salt")?;
            let n_keys = r.u64("n_keys")?;
            let table_root: [u8; 32] = r.array("table_root")?;
            let mut shards = Vec::with_capacity(usize::from(shard_count));
            for _ in 0..shard_count {
                let shard_version = r.u32("shard_version")?;
                let n = r.u32("n_s")?;
                let m = r.u32("m_s")?;
                let segment_length = r.u32("segment_length")?;
                let layout =
                    Layout::for_keys(n as usize).ok_or(DecodeError::InvalidValue("n_s"))?;
                if layout.m != m || layout.segment_length != segment_length {
                    return Err(DecodeError::InvalidValue("shard layout"));
                }
                let build_id = r.array("build_id")?;
                let root = r.array("root")?;
                let proof = DleqProof::from_bytes(&r.array("dleq_proof")?)?;
                shards.push(ShardEntry {
                    shard_version,
                    n_keys: n,
                    m,
                    segment_length,
                    build_id,
                    root,
                    proof,
                });
            }
            let t = TableDescriptor {
                kind,
                shard_count,
                shard_salt,
                shards,
            };
            if t.n_keys() != n_keys {
                return Err(DecodeError::InvalidValue("n_keys"));
            }
            if t.table_root() != table_root {
                return Err(DecodeError::InvalidValue("table_root"));
            }
            tables.push(t);
        }
        let n_rev = r.u16("revokes count")?;
        if n_rev > MAX_REVOKES {
            return Err(DecodeError::TooLarge {
                what: "revokes",
                got: u64::from(n_rev),
                limit: u64::from(MAX_REVOKES),
            });
        }
        let mut revokes = Vec::with_capacity(usize::from(n_rev));
        for _ in 0..n_rev {
            revokes.push(r.u32("revoked epoch")?);
        }
        r.finish()?;
        Ok(Manifest {
            deployment_id,
            epoch,
            not_before,
            not_after,
            prev_manifest_hash,
            params,
            public_key,
            tables,
            revokes,
        })
    }

    /// SHA-256 of the encoding (the next manifest's `prev_manifest_hash`).
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[&self.encode()])
    }

    /// The message organisations co-sign: `SHA-256("PDQTPSI-v1/cosign" ‖ manifest_core)`.
    pub fn cosign_message(&self) -> [u8; 32] {
        sha256(&[b"PDQTPSI-v1/cosign", &self.encode()])
    }

    /// The table of a kind, if present.
    pub fn table(&self, kind: TableKind) -> Option<&TableDescriptor> {
        self.tables.iter().find(|t| t.kind == kind)
    }

    /// The [`TableSpec`] of a table, if present.
    pub fn table_spec(&self, kind: TableKind) -> Option<TableSpec> {
        self.table(kind).map(|t| TableSpec {
            deployment_id: self.deployment_id,
            kind,
            params: self.params.clone(),
            public_key: self.public_key,
            shard_count: t.shard_count,
            shard_salt: t.shard_salt,
        })
    }

    /// The client-side checks of this crate's share of R/E10: parameters equal the pinned
    /// values (items 8), `not_before ≤ now < not_after` (5-6), the epoch is newer than the last
    /// accepted one and continues its hash chain (7), and the manifest does not revoke its own
    /// epoch (9). Signatures, co-signatures and log proofs (1-4) are checked by the
    /// transparency part before this.
    pub fn check_client(
        &self,
        pinned: &PinnedParams,
        now: u64,
        last: Option<(u32, [u8; 32])>,
    ) -> Result<(), ManifestError> {
        pinned.check(&self.params)?;
        if now < self.not_before || now >= self.not_after {
            return Err(ManifestError::NotCurrent);
        }
        if let Some((last_epoch, last_hash)) = last {
            if self.epoch <= last_epoch {
                return Err(ManifestError::Rollback {
                    got: self.epoch,
                    last: last_epoch,
                });
            }
            if self.epoch == last_epoch + 1 && self.prev_manifest_hash != last_hash {
                return Err(ManifestError::Chain("prev_manifest_hash"));
            }
        }
        if self.revokes.contains(&self.epoch) {
            return Err(ManifestError::Chain("manifest revokes its own epoch"));
        }
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A human-readable summary (for `hashguard table verify`): epoch, validity, policy and
/// parameters, and per table its kind, shard count, key count and root.
impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.params;
        writeln!(f, "deployment {}", hex(&self.deployment_id))?;
        writeln!(
            f,
            "epoch {} valid [{}, {}) prev {}",
            self.epoch,
            self.not_before,
            self.not_after,
            hex(&self.prev_manifest_hash)
        )?;
        writeln!(
            f,
            "policy {:?}: k {} f {} w {} P {} T {} s_max {} q_min {} sep {}",
            p.policy(),
            p.k(),
            p.f(),
            p.w(),
            p.probes(),
            p.threshold(),
            p.s_max(),
            p.q_min(),
            p.sep()
        )?;
        writeln!(f, "L {}", hex(&self.public_key.to_bytes()))?;
        for t in &self.tables {
            writeln!(
                f,
                "table {:?}: {} shards, {} keys, root {}",
                t.kind,
                t.shard_count,
                t.n_keys(),
                hex(&t.table_root())
            )?;
        }
        if !self.revokes.is_empty() {
            writeln!(f, "revokes epochs {:?}", self.revokes)?;
        }
        Ok(())
    }
}

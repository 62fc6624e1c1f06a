//! The table manifest (protocol.md 4.2 as revised by R/E9): header, pinned parameters, public
//! key and per-shard entries of every table. This is the unsigned `manifest_core`; service and
//! organisation signatures, the append-only log and witnesses belong to the `transparency` part.

use crate::dleq::DleqProof;
use crate::keys::TableKind;
use crate::merkle;
use crate::okvs::Layout;
use crate::params::{Params, ParamsError, PinnedParams};
use crate::suite::{sha256, SUITE_ID};
use crate::table::{BuiltTable, EpochInput, PublicKey, ShardEntry, TableSpec};
use crate::wire::{DecodeError, Reader, Writer};

/// Magic bytes at the start of every manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"PDQTPSI\0";
/// Manifest format version.
pub const MANIFEST_VERSION: u16 = 1;
pub use crate::table::MAX_SHARDS;
/// Most revoked epochs a manifest may list.
pub const MAX_REVOKES: u16 = 4096;

/// Most tables a manifest may describe: one per [`TableKind`].
pub const MAX_TABLES: usize = 3;

/// One table of the manifest: its key space, shard salt and one entry per shard. The shard
/// count S is the number of entries (1..=[`MAX_SHARDS`]); every entry's layout is the one its
/// key count gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescriptor {
    kind: TableKind,
    shard_salt: [u8; 32],
    shards: Vec<ShardEntry>,
}

impl TableDescriptor {
    /// A table of `kind` with `shards` in shard order; refuses no shards, more than
    /// [`MAX_SHARDS`], or an entry whose `m` or segment length is not the layout of its `n_keys`.
    pub fn new(
        kind: TableKind,
        shard_salt: [u8; 32],
        shards: Vec<ShardEntry>,
    ) -> Result<Self, ManifestError> {
        if shards.is_empty() || shards.len() > usize::from(MAX_SHARDS) {
            return Err(ManifestError::Invalid("shard_count"));
        }
        for e in &shards {
            let layout = usize::try_from(e.n_keys)
                .ok()
                .and_then(Layout::for_keys)
                .ok_or(ManifestError::Invalid("n_s"))?;
            if layout.m != e.m || layout.segment_length != e.segment_length {
                return Err(ManifestError::Invalid("shard layout"));
            }
        }
        Ok(TableDescriptor {
            kind,
            shard_salt,
            shards,
        })
    }
    /// Key space.
    pub fn kind(&self) -> TableKind {
        self.kind
    }
    /// Shard count S (the number of entries).
    pub fn shard_count(&self) -> u16 {
        // The constructor bounds the count by MAX_SHARDS, so this never saturates.
        u16::try_from(self.shards.len()).unwrap_or(u16::MAX)
    }
    /// Deployment-constant shard salt.
    pub fn shard_salt(&self) -> &[u8; 32] {
        &self.shard_salt
    }
    /// Per-shard entries, in shard order.
    pub fn shards(&self) -> &[ShardEntry] {
        &self.shards
    }
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
    /// A field is out of its range (see [`Manifest::new`]).
    #[error("invalid manifest: {0}")]
    Invalid(&'static str),
}

/// The fields of a manifest, for [`Manifest::new`] (which checks them) and from
/// [`Manifest::into_fields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFields {
    /// Deployment identifier.
    pub deployment_id: [u8; 16],
    /// List epoch (from 1).
    pub epoch: u32,
    /// Not valid before (Unix seconds).
    pub not_before: u64,
    /// Not valid at or after (Unix seconds).
    pub not_after: u64,
    /// SHA-256 of the previous manifest's encoding (zeros for epoch 1 only).
    pub prev_manifest_hash: [u8; 32],
    /// Public parameters, including the policy.
    pub params: Params,
    /// L = α·G.
    pub public_key: PublicKey,
    /// The tables (at most one per kind).
    pub tables: Vec<TableDescriptor>,
    /// Epochs revoked by this manifest.
    pub revokes: Vec<u32>,
}

/// The unsigned manifest. Every value of this type satisfies [`Manifest::new`]'s checks, so
/// its encoding always decodes back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    f: ManifestFields,
}

/// A manifest that passed every acceptance rule of R/E10
/// ([`accept_manifest`](crate::acceptance::accept_manifest) is the only way to get one), and
/// the only manifest [`ClientTable::load`](crate::table::ClientTable::load) accepts, so a
/// voucher can never be built from an unchecked table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedManifest(Manifest);

impl VerifiedManifest {
    /// The checked manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.0
    }
}

impl std::ops::Deref for VerifiedManifest {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.0
    }
}

impl Manifest {
    /// Checks the fields: epochs count from 1 and the previous hash is zero exactly for epoch
    /// 1; `not_before < not_after`; at most one table per kind; at most [`MAX_REVOKES`]
    /// revoked epochs.
    pub fn new(f: ManifestFields) -> Result<Self, ManifestError> {
        if f.epoch == 0 {
            return Err(ManifestError::Invalid("epoch 0 (epochs start at 1)"));
        }
        if (f.epoch == 1) != (f.prev_manifest_hash == [0u8; 32]) {
            return Err(ManifestError::Invalid(if f.epoch == 1 {
                "prev_manifest_hash of epoch 1 (the first epoch has no predecessor)"
            } else {
                "prev_manifest_hash (zero after epoch 1)"
            }));
        }
        if f.not_after <= f.not_before {
            return Err(ManifestError::Invalid(
                "validity window (not_after is not after not_before)",
            ));
        }
        if f.tables.len() > MAX_TABLES {
            return Err(ManifestError::Invalid("table count"));
        }
        for (i, t) in f.tables.iter().enumerate() {
            if f.tables[..i].iter().any(|u| u.kind == t.kind) {
                return Err(ManifestError::Invalid("duplicate table kind"));
            }
        }
        if f.revokes.len() > usize::from(MAX_REVOKES) {
            return Err(ManifestError::Invalid("revokes"));
        }
        Ok(Manifest { f })
    }

    /// The manifest of one freshly built table: its spec's deployment, parameters and key,
    /// the epoch's number and chain link, the validity window `[not_before, not_after)`, one
    /// entry per shard and no revocations.
    pub fn for_table(
        built: &BuiltTable,
        epoch: &EpochInput,
        not_before: u64,
        not_after: u64,
    ) -> Result<Self, ManifestError> {
        let spec = &built.spec;
        Manifest::new(ManifestFields {
            deployment_id: *spec.deployment_id(),
            epoch: epoch.epoch,
            not_before,
            not_after,
            prev_manifest_hash: epoch.prev_manifest_hash,
            params: spec.params().clone(),
            public_key: *spec.public_key(),
            tables: vec![TableDescriptor::new(
                spec.kind(),
                *spec.shard_salt(),
                built.entries(),
            )?],
            revokes: Vec::new(),
        })
    }

    /// The fields (to derive another manifest from this one).
    pub fn into_fields(self) -> ManifestFields {
        self.f
    }
    /// Deployment identifier.
    pub fn deployment_id(&self) -> &[u8; 16] {
        &self.f.deployment_id
    }
    /// List epoch.
    pub fn epoch(&self) -> u32 {
        self.f.epoch
    }
    /// Not valid before (Unix seconds).
    pub fn not_before(&self) -> u64 {
        self.f.not_before
    }
    /// Not valid at or after (Unix seconds).
    pub fn not_after(&self) -> u64 {
        self.f.not_after
    }
    /// SHA-256 of the previous manifest's encoding (zeros for epoch 1).
    pub fn prev_manifest_hash(&self) -> &[u8; 32] {
        &self.f.prev_manifest_hash
    }
    /// Public parameters.
    pub fn params(&self) -> &Params {
        &self.f.params
    }
    /// L = α·G.
    pub fn public_key(&self) -> &PublicKey {
        &self.f.public_key
    }
    /// The tables.
    pub fn tables(&self) -> &[TableDescriptor] {
        &self.f.tables
    }
    /// Epochs revoked by this manifest.
    pub fn revokes(&self) -> &[u32] {
        &self.f.revokes
    }

    /// Canonical encoding (`manifest_core`).
    pub fn encode(&self) -> Vec<u8> {
        let f = &self.f;
        let mut w = Writer::with_capacity(512);
        w.bytes(&MANIFEST_MAGIC);
        w.u16(MANIFEST_VERSION);
        w.bytes(&f.deployment_id);
        w.u32(f.epoch);
        w.u64(f.not_before);
        w.u64(f.not_after);
        w.bytes(&f.prev_manifest_hash);
        w.u8(SUITE_ID);
        w.u8(3);
        f.params.write(&mut w);
        w.bytes(&f.public_key.to_bytes());
        // Manifest::new bounds both counts (MAX_TABLES, MAX_REVOKES), so neither saturates.
        w.u8(u8::try_from(f.tables.len()).unwrap_or(u8::MAX));
        for t in &f.tables {
            w.u8(t.kind.to_byte());
            w.u16(t.shard_count());
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
        write_revokes(&mut w, &f.revokes);
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
        if usize::from(n_tables) > MAX_TABLES {
            return Err(DecodeError::TooLarge {
                what: "table count",
                got: u64::from(n_tables),
                limit: MAX_TABLES as u64,
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
            let t = TableDescriptor::new(kind, shard_salt, shards).map_err(invalid)?;
            if t.n_keys() != n_keys {
                return Err(DecodeError::InvalidValue("n_keys"));
            }
            if t.table_root() != table_root {
                return Err(DecodeError::InvalidValue("table_root"));
            }
            tables.push(t);
        }
        let revokes = read_revokes(&mut r)?;
        r.finish()?;
        Manifest::new(ManifestFields {
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
        .map_err(invalid)
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
        self.f.tables.iter().find(|t| t.kind == kind)
    }

    /// The [`TableSpec`] of a table, if present.
    pub fn table_spec(&self, kind: TableKind) -> Option<TableSpec> {
        let t = self.table(kind)?;
        TableSpec::new(
            self.f.deployment_id,
            kind,
            self.f.params.clone(),
            self.f.public_key,
            t.shard_count(),
            t.shard_salt,
        )
        .ok()
    }

    /// The client-side checks of this crate's share of R/E10: parameters equal the pinned
    /// values (items 8), `not_before ≤ now < not_after` (5-6), the epoch is newer than the last
    /// accepted one and continues its hash chain (7), and the manifest does not revoke its own
    /// epoch (9). Signatures, co-signatures and log proofs (1-4) are checked by the
    /// transparency part before this.
    pub(crate) fn check_client(
        self,
        pinned: &PinnedParams,
        now: u64,
        last: Option<(u32, [u8; 32])>,
    ) -> Result<VerifiedManifest, ManifestError> {
        let f = &self.f;
        pinned.check(&f.params)?;
        if now < f.not_before || now >= f.not_after {
            return Err(ManifestError::NotCurrent);
        }
        if let Some((last_epoch, last_hash)) = last {
            if f.epoch <= last_epoch {
                return Err(ManifestError::Rollback {
                    got: f.epoch,
                    last: last_epoch,
                });
            }
            if f.epoch == last_epoch + 1 && f.prev_manifest_hash != last_hash {
                return Err(ManifestError::Chain("prev_manifest_hash"));
            }
        }
        if f.revokes.contains(&f.epoch) {
            return Err(ManifestError::Chain("manifest revokes its own epoch"));
        }
        Ok(VerifiedManifest(self))
    }
}

/// The revoked epochs as manifests and log entries encode them: a u16 count (at most
/// [`MAX_REVOKES`]; every path that builds either bounds it), then each epoch.
pub(crate) fn write_revokes(w: &mut Writer, revokes: &[u32]) {
    w.u16(u16::try_from(revokes.len()).unwrap_or(u16::MAX));
    for &e in revokes {
        w.u32(e);
    }
}

/// Reads what [`write_revokes`] wrote, refusing more than [`MAX_REVOKES`] epochs.
pub(crate) fn read_revokes(r: &mut Reader<'_>) -> Result<Vec<u32>, DecodeError> {
    let n = r.u16("revokes count")?;
    if n > MAX_REVOKES {
        return Err(DecodeError::TooLarge {
            what: "revokes",
            got: u64::from(n),
            limit: u64::from(MAX_REVOKES),
        });
    }
    (0..n).map(|_| r.u32("revoked epoch")).collect()
}

/// A constructor's refusal as a decoding error.
fn invalid(e: ManifestError) -> DecodeError {
    match e {
        ManifestError::Invalid(what) => DecodeError::InvalidValue(what),
        _ => DecodeError::InvalidValue("manifest"),
    }
}

use crate::hex_string as hex;

/// A human-readable summary (for `hashguard table verify`): epoch, validity, policy and
/// parameters, and per table its kind, shard count, key count and root.
impl std::fmt::Display for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = &self.f;
        let p = &m.params;
        writeln!(f, "deployment {}", hex(&m.deployment_id))?;
        writeln!(
            f,
            "epoch {} valid [{}, {}) prev {}",
            m.epoch,
            m.not_before,
            m.not_after,
            hex(&m.prev_manifest_hash)
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
        writeln!(f, "L {}", hex(&m.public_key.to_bytes()))?;
        for t in &m.tables {
            writeln!(
                f,
                "table {:?}: {} shards, {} keys, root {}",
                t.kind,
                t.shard_count(),
                t.n_keys(),
                hex(&t.table_root())
            )?;
        }
        if !m.revokes.is_empty() {
            writeln!(f, "revokes epochs {:?}", m.revokes)?;
        }
        Ok(())
    }
}

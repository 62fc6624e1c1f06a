//! The table spec and the per-build derivations (R/E2 step 4): build ids, fill seeds, OKVS
//! seeds, key and fill points.

use curve25519_dalek::ristretto::RistrettoPoint;
use sha2::Digest;

use sha2::Sha512;

use crate::keys::{KeyBytes, TableKind};

use crate::params::Params;
use crate::suite::{dst, hash_to_group, sha256, SUITE_ID};
use crate::wire::Writer;

use super::{PublicKey, TableError};

/// Most shards a table may have.
pub const MAX_SHARDS: u16 = 4096;

/// Everything that identifies a table apart from its contents: the deployment, the key space,
/// the parameters, the public key and the shard function. Stable across epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    deployment_id: [u8; 16],
    kind: TableKind,
    params: Params,
    public_key: PublicKey,
    shard_count: u16,
    shard_salt: [u8; 32],
}

impl TableSpec {
    /// A spec; refuses a shard count outside `1..=MAX_SHARDS`.
    pub fn new(
        deployment_id: [u8; 16],
        kind: TableKind,
        params: Params,
        public_key: PublicKey,
        shard_count: u16,
        shard_salt: [u8; 32],
    ) -> Result<Self, TableError> {
        if shard_count == 0 || shard_count > MAX_SHARDS {
            return Err(TableError::ShardCount(shard_count));
        }
        Ok(TableSpec {
            deployment_id,
            kind,
            params,
            public_key,
            shard_count,
            shard_salt,
        })
    }
    /// Deployment identifier.
    pub fn deployment_id(&self) -> &[u8; 16] {
        &self.deployment_id
    }
    /// Key space.
    pub fn kind(&self) -> TableKind {
        self.kind
    }
    /// Public parameters (k for PDQ keys; the whole set binds the proofs).
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// `L = α·G`.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    /// Number of shards S (1..=[`MAX_SHARDS`]).
    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }
    /// Deployment-constant shard salt.
    pub fn shard_salt(&self) -> &[u8; 32] {
        &self.shard_salt
    }
    /// Key length in bytes for this table.
    pub fn key_len(&self) -> usize {
        self.kind.key_len(self.params.k())
    }

    /// `shard(κ) = LE64(SHA-256("PDQTPSI-v1/shard" ‖ salt ‖ κ)) mod S`.
    pub fn shard_of(&self, key: &KeyBytes) -> u16 {
        let h = sha256(&[dst::SHARD, &self.shard_salt, key.as_bytes()]);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        let s = u64::from_le_bytes(b) % u64::from(self.shard_count);
        // s < shard_count ≤ u16::MAX.
        u16::try_from(s).unwrap_or(0)
    }

    /// The 2-byte table id inside every build id: kind and k.
    pub fn table_id(&self) -> [u8; 2] {
        [self.kind.to_byte(), self.params.k()]
    }

    /// The epoch-independent part of every DLEQ context ("manifest_core" of E2 step 8
    /// restricted to what a shard's proof must bind; see the crate docs for why).
    pub fn proof_core(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(160);
        w.bytes(&self.deployment_id);
        w.u8(SUITE_ID);
        w.u8(3); // arity
        w.u8(self.kind.to_byte());
        self.params.write(&mut w);
        w.bytes(&self.public_key.to_bytes());
        w.u16(self.shard_count);
        w.bytes(&self.shard_salt);
        w.buf
    }

    /// `ctx_s = SHA-512("PDQTPSI-v1/dleq" ‖ core ‖ build_id ‖ LE32 m ‖ root(T) ‖ root(M))`.
    pub fn dleq_context(
        &self,
        build_id: &[u8; 32],
        m: u32,
        t_root: &[u8; 32],
        m_root: &[u8; 32],
    ) -> [u8; 64] {
        let core = self.proof_core();
        let mut h = Sha512::new();
        h.update(dst::DLEQ_CTX);
        h.update(u32::try_from(core.len()).unwrap_or(u32::MAX).to_le_bytes());
        h.update(&core);
        h.update(build_id);
        h.update(m.to_le_bytes());
        h.update(t_root);
        h.update(m_root);
        h.finalize().into()
    }
}

/// `fill_seed_s = SHA-256("fill" ‖ prev_manifest_hash ‖ LE32 epoch ‖ LE16 s ‖ beacon)`.
pub fn fill_seed(
    prev_manifest_hash: &[u8; 32],
    epoch: u32,
    shard: u16,
    beacon: &[u8; 32],
) -> [u8; 32] {
    sha256(&[
        dst::FILL_SEED,
        prev_manifest_hash,
        &epoch.to_le_bytes(),
        &shard.to_le_bytes(),
        beacon,
    ])
}

/// `build_id_s = SHA-256("PDQTPSI-v1/build" ‖ deployment_id ‖ table_id ‖ LE16 s ‖
/// LE32 shard_version ‖ fill_seed)`. Every rebuild has a new shard_version, hence a new build id.
pub fn build_id(
    spec: &TableSpec,
    shard: u16,
    shard_version: u32,
    fill_seed: &[u8; 32],
) -> [u8; 32] {
    sha256(&[
        dst::BUILD,
        &spec.deployment_id,
        &spec.table_id(),
        &shard.to_le_bytes(),
        &shard_version.to_le_bytes(),
        fill_seed,
    ])
}

/// `okvs_seed = SHA-256(build_id ‖ u8 attempt)`.
pub fn okvs_seed(build_id: &[u8; 32], attempt: u8) -> [u8; 32] {
    sha256(&[build_id, &[attempt]])
}

/// `Hk_s(κ) = H2G(DST_KEY or DST_EXACT, build_id ‖ κ)`.
pub fn key_point(kind: TableKind, build_id: &[u8; 32], key: &KeyBytes) -> RistrettoPoint {
    hash_to_group(kind.h2g_dst(), &[build_id, key.as_bytes()])
}

/// `F_s(j) = H2G(DST_FILL, build_id ‖ LE32 j)`.
pub fn fill_point(build_id: &[u8; 32], j: u32) -> RistrettoPoint {
    hash_to_group(dst::FILL, &[build_id, &j.to_le_bytes()])
}

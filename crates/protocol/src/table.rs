//! The server's blinded table (protocol.md R/E2): shard assignment, per-build ids, the OKVS in
//! H-space, blinding with α, Merkle roots, the batched DLEQ proof, the `TableShard` wire format,
//! the organisations' re-derivation check (4.4 / E11) and the client's verified view (E3).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, IsIdentity};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::dleq::{self, DleqError, DleqProof};
use crate::keys::{KeyBytes, TableKind};
use crate::merkle;
use crate::okvs::{self, Layout};
use crate::params::Params;
use crate::suite::{dst, hash_to_group, hkdf, sha256, SUITE_ID};
use crate::wire::{DecodeError, Reader, Writer};

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

/// Why building, loading or verifying a table failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A wire format is malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Peeling failed for 256 seeds (never happens for distinct keys in practice).
    #[error("OKVS peeling failed for shard {0}")]
    PeelFailed(u16),
    /// Keys have the wrong length for the table kind.
    #[error("a key has the wrong length for this table kind")]
    KeyLength,
    /// A shard does not match its manifest entry or its layout rule.
    #[error("shard {shard}: {what}")]
    ShardMismatch {
        /// Shard index.
        shard: u16,
        /// What did not match.
        what: &'static str,
    },
    /// The DLEQ proof of a shard does not verify.
    #[error("shard {0}: DLEQ proof does not verify ({1})")]
    Proof(u16, DleqError),
    /// The table is larger than the client accepts.
    #[error("table has {got} keys, above the limit {limit}")]
    TooManyKeys {
        /// Σ n_s.
        got: u64,
        /// N_MAX.
        limit: u64,
    },
}

/// Everything that identifies a table apart from its contents: the deployment, the key space,
/// the parameters, the public key and the shard function. Stable across epochs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Deployment identifier.
    pub deployment_id: [u8; 16],
    /// Key space.
    pub kind: TableKind,
    /// Public parameters (k for PDQ keys; the whole set binds the proofs).
    pub params: Params,
    /// `L = α·G`.
    pub public_key: PublicKey,
    /// Number of shards S (≥ 1).
    pub shard_count: u16,
    /// Deployment-constant shard salt.
    pub shard_salt: [u8; 32],
}

impl TableSpec {
    /// Key length in bytes for this table.
    pub fn key_len(&self) -> usize {
        self.kind.key_len(self.params.k())
    }

    /// `shard(κ) = LE64(SHA-256("PDQTPSI-v1/shard" ‖ salt ‖ κ)) mod S`.
    pub fn shard_of(&self, key: &KeyBytes) -> u16 {
        let h = sha256(&[dst::SHARD, &self.shard_salt, key.as_bytes()]);
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[..8]);
        (u64::from_le_bytes(b) % u64::from(self.shard_count.max(1))) as u16
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
        h.update((core.len() as u32).to_le_bytes());
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

/// Header of one shard: everything but the points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardHeader {
    /// Key space.
    pub kind: TableKind,
    /// Shard index s.
    pub shard: u16,
    /// Shard count S.
    pub shard_count: u16,
    /// Incremented on every rebuild of this shard.
    pub shard_version: u32,
    /// n_s, keys encoded.
    pub n_keys: u32,
    /// The OKVS layout (a function of n_s).
    pub layout: Layout,
    /// Fill seed of the epoch in which this shard was built.
    pub fill_seed: [u8; 32],
    /// Build id.
    pub build_id: [u8; 32],
    /// OKVS seed (first attempt that peels).
    pub okvs_seed: [u8; 32],
}

/// Version of the `TableShard` wire format.
pub const TABLE_SHARD_VERSION: u16 = 1;

/// A published shard: header plus `m_s` compressed points `T_s[j] = α·M_s[j]`.
///
/// Wire format (little-endian): `u16 version | u8 suite | u8 kind | u16 shard | u16 shard_count |
/// u32 shard_version | u32 n_s | u32 m_s | u32 segment_length | u32 segment_count |
/// [32] fill_seed | [32] build_id | [32] okvs_seed | [32]×m_s points`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableShard {
    /// Header.
    pub header: ShardHeader,
    /// The blinded points.
    pub points: Vec<CompressedRistretto>,
}

/// Size of the fixed part of a `TableShard` encoding.
pub const TABLE_SHARD_HEADER_LEN: usize = 2 + 1 + 1 + 2 + 2 + 4 * 5 + 32 * 3;

impl TableShard {
    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.header;
        let mut w = Writer::with_capacity(TABLE_SHARD_HEADER_LEN + 32 * self.points.len());
        w.u16(TABLE_SHARD_VERSION);
        w.u8(SUITE_ID);
        w.u8(h.kind.to_byte());
        w.u16(h.shard);
        w.u16(h.shard_count);
        w.u32(h.shard_version);
        w.u32(h.n_keys);
        w.u32(h.layout.m);
        w.u32(h.layout.segment_length);
        w.u32(h.layout.segment_count);
        w.bytes(&h.fill_seed);
        w.bytes(&h.build_id);
        w.bytes(&h.okvs_seed);
        for p in &self.points {
            w.bytes(p.as_bytes());
        }
        w.buf
    }

    /// Strict decoding. Checks the format and that the layout equals `binary_fuse_size(n_s)`;
    /// point validity is checked by [`ClientTable::load`] (every point, once).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u16("version")?;
        if version != TABLE_SHARD_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "TableShard",
                got: version,
            });
        }
        let suite = r.u8("suite")?;
        if suite != SUITE_ID {
            return Err(DecodeError::UnsupportedSuite(suite));
        }
        let kind = TableKind::from_byte(r.u8("kind")?).ok_or(DecodeError::InvalidValue("kind"))?;
        let shard = r.u16("shard")?;
        let shard_count = r.u16("shard_count")?;
        if shard_count == 0 || shard >= shard_count {
            return Err(DecodeError::InvalidValue("shard index"));
        }
        let shard_version = r.u32("shard_version")?;
        let n_keys = r.u32("n_s")?;
        let m = r.u32("m_s")?;
        let segment_length = r.u32("segment_length")?;
        let segment_count = r.u32("segment_count")?;
        let layout = Layout::for_keys(n_keys as usize).ok_or(DecodeError::InvalidValue("n_s"))?;
        if layout.m != m
            || layout.segment_length != segment_length
            || layout.segment_count != segment_count
        {
            return Err(DecodeError::InvalidValue("layout"));
        }
        let fill_seed = r.array("fill_seed")?;
        let build_id = r.array("build_id")?;
        let okvs_seed = r.array("okvs_seed")?;
        let expected = 32usize
            .checked_mul(m as usize)
            .ok_or(DecodeError::InvalidValue("m_s"))?;
        if r.remaining() != expected {
            return Err(DecodeError::WrongLength {
                what: "TableShard points",
                expected,
                got: r.remaining(),
            });
        }
        let mut points = Vec::with_capacity(m as usize);
        for _ in 0..m {
            points.push(CompressedRistretto(r.array("point")?));
        }
        r.finish()?;
        Ok(TableShard {
            header: ShardHeader {
                kind,
                shard,
                shard_count,
                shard_version,
                n_keys,
                layout,
                fill_seed,
                build_id,
                okvs_seed,
            },
            points,
        })
    }

    /// Merkle root of the points.
    pub fn root(&self) -> [u8; 32] {
        let pts: Vec<[u8; 32]> = self.points.iter().map(|p| p.to_bytes()).collect();
        merkle::shard_root(self.header.shard, &pts)
    }
}

/// A shard's public manifest entry (R/E9): what the manifest says about each shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardEntry {
    /// Shard version.
    pub shard_version: u32,
    /// n_s.
    pub n_keys: u32,
    /// m_s.
    pub m: u32,
    /// Segment length.
    pub segment_length: u32,
    /// Build id.
    pub build_id: [u8; 32],
    /// Merkle root of T_s.
    pub root: [u8; 32],
    /// DLEQ proof that T_s = α·M_s.
    pub proof: DleqProof,
}

/// One shard as built by the server: the public shard and proof, plus the private key set and
/// root(M) (never published: M unblinded is as sensitive as K).
#[derive(Debug, Clone)]
pub struct BuiltShard {
    /// The published shard.
    pub shard: TableShard,
    /// Its manifest entry.
    pub entry: ShardEntry,
    keys: Vec<KeyBytes>,
    key_digest: [u8; 32],
}

impl BuiltShard {
    /// The keys this shard encodes, sorted (server-private).
    pub fn keys(&self) -> &[KeyBytes] {
        &self.keys
    }

    /// [`key_set_digest`] of [`BuiltShard::keys`] under the key and spec it was built with:
    /// what a builder records to recognise the shard as unchanged next epoch.
    pub fn key_digest(&self) -> [u8; 32] {
        self.key_digest
    }

    /// What the next epoch's build needs of this shard when the keys are not kept.
    pub fn to_previous(&self) -> PreviousShard {
        PreviousShard {
            shard: self.shard.clone(),
            entry: self.entry,
            key_digest: self.key_digest,
        }
    }
}

/// A previous epoch's shard as a builder that does not keep key sets knows it: the published
/// shard and manifest entry, and the [`key_set_digest`] recorded when it was built. Enough for
/// [`build_table_after`] to keep an unchanged shard as it is (so clients need not fetch it
/// again) and to give a changed one the next version.
#[derive(Debug, Clone)]
pub struct PreviousShard {
    /// The published shard.
    pub shard: TableShard,
    /// Its manifest entry.
    pub entry: ShardEntry,
    /// The digest of the key set it encodes.
    pub key_digest: [u8; 32],
}

/// A digest of one shard's key set, keyed by the opening key: HKDF-SHA-256 with α as input
/// keying material and the spec, the shard index and the sorted, distinct keys as info, i.e. an
/// HMAC under a key derived from α. Without α it is a random-looking string that says nothing
/// about the keys, so a builder may store it beside the public files; with α, equal digests
/// mean equal key sets.
pub fn key_set_digest(
    secret: &OpeningKey,
    spec: &TableSpec,
    shard: u16,
    keys: &[KeyBytes],
) -> [u8; 32] {
    let mut sorted: Vec<&[u8]> = keys.iter().map(KeyBytes::as_bytes).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let params = spec.params.encode();
    let public_key = spec.public_key.to_bytes();
    let kind = [spec.kind.to_byte()];
    let count = spec.shard_count.to_le_bytes();
    let index = shard.to_le_bytes();
    let n = (sorted.len() as u64).to_le_bytes();
    let mut info: Vec<&[u8]> = vec![
        dst::KEY_SET,
        &spec.deployment_id,
        &kind,
        &params,
        &public_key,
        &count,
        &spec.shard_salt,
        &index,
        &n,
    ];
    info.extend(sorted);
    *hkdf::<32>(secret.alpha().as_bytes(), &info)
}

/// A whole table: all shards of one key space.
#[derive(Debug, Clone)]
pub struct BuiltTable {
    /// The spec it was built under.
    pub spec: TableSpec,
    /// Shards in index order.
    pub shards: Vec<BuiltShard>,
}

impl BuiltTable {
    /// Σ n_s.
    pub fn n_keys(&self) -> u64 {
        self.shards.iter().map(|s| u64::from(s.entry.n_keys)).sum()
    }
    /// Merkle root over the shard roots.
    pub fn table_root(&self) -> [u8; 32] {
        let roots: Vec<[u8; 32]> = self.shards.iter().map(|s| s.entry.root).collect();
        merkle::table_root(&roots)
    }
    /// The shard entries, in order (for the manifest).
    pub fn entries(&self) -> Vec<ShardEntry> {
        self.shards.iter().map(|s| s.entry).collect()
    }
}

/// Per-epoch inputs of a build (R/E2 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochInput {
    /// The epoch being built.
    pub epoch: u32,
    /// Hash of the previous manifest.
    pub prev_manifest_hash: [u8; 32],
    /// A public beacon value fixed after the list was frozen.
    pub beacon: [u8; 32],
}

/// Computes M_s (in H-space) for the sorted, distinct `keys` of one shard: fills everywhere,
/// then the free position of each key in reverse peel order. Deterministic, so organisations
/// can recompute it (E11). Returns the okvs seed used and M.
pub fn solve_shard(
    spec: &TableSpec,
    shard: u16,
    build_id: &[u8; 32],
    keys: &[KeyBytes],
) -> Result<([u8; 32], Layout, Vec<RistrettoPoint>), TableError> {
    let layout = Layout::for_keys(keys.len()).ok_or(TableError::PeelFailed(shard))?;
    for attempt in 0..=255u8 {
        let seed = okvs_seed(build_id, attempt);
        let Some(order) = okvs::peel(&layout, build_id, &seed, keys) else {
            continue;
        };
        let m = layout.m as usize;
        let mut is_free = vec![false; m];
        for st in &order {
            is_free[st.free as usize] = true;
        }
        let mut mpts: Vec<RistrettoPoint> = (0..m as u32)
            .map(|j| {
                if is_free[j as usize] {
                    RistrettoPoint::identity()
                } else {
                    fill_point(build_id, j)
                }
            })
            .collect();
        for st in order.iter().rev() {
            let key = &keys[st.key_index as usize];
            let pos = layout.positions(build_id, &seed, key);
            let mut acc = key_point(spec.kind, build_id, key);
            for &p in &pos {
                if p != st.free as usize {
                    acc -= mpts[p];
                }
            }
            mpts[st.free as usize] = acc;
        }
        return Ok((seed, layout, mpts));
    }
    Err(TableError::PeelFailed(shard))
}

fn compress_all(points: &[RistrettoPoint]) -> Vec<CompressedRistretto> {
    points.iter().map(|p| p.compress()).collect()
}

/// Builds one shard under α.
#[allow(clippy::too_many_arguments)]
pub fn build_shard<R: CryptoRng + ?Sized>(
    spec: &TableSpec,
    secret: &OpeningKey,
    shard: u16,
    shard_version: u32,
    fill_seed: [u8; 32],
    mut keys: Vec<KeyBytes>,
    rng: &mut R,
) -> Result<BuiltShard, TableError> {
    if keys.iter().any(|k| k.as_bytes().len() != spec.key_len()) {
        return Err(TableError::KeyLength);
    }
    keys.sort();
    keys.dedup();
    let bid = build_id(spec, shard, shard_version, &fill_seed);
    let (seed, layout, mpts) = solve_shard(spec, shard, &bid, &keys)?;
    // T = α·M. Multiply by α/2 and let the batched double-and-compress produce compress(α·M).
    let half = Scalar::from(2u64).invert() * secret.alpha();
    let halves: Vec<RistrettoPoint> = mpts.iter().map(|p| half * p).collect();
    let tc = RistrettoPoint::double_and_compress_batch(halves.iter());
    let tpts: Vec<RistrettoPoint> = halves.iter().map(|h| h + h).collect();
    let t_bytes: Vec<[u8; 32]> = tc.iter().map(|c| c.to_bytes()).collect();
    let m_bytes: Vec<[u8; 32]> = compress_all(&mpts).iter().map(|c| c.to_bytes()).collect();
    let t_root = merkle::shard_root(shard, &t_bytes);
    let m_root = merkle::shard_root(shard, &m_bytes);
    let ctx = spec.dleq_context(&bid, layout.m, &t_root, &m_root);
    let proof = dleq::prove(secret.alpha(), &ctx, &mpts, &tpts, rng)
        .map_err(|e| TableError::Proof(shard, e))?;
    let header = ShardHeader {
        kind: spec.kind,
        shard,
        shard_count: spec.shard_count,
        shard_version,
        n_keys: keys.len() as u32,
        layout,
        fill_seed,
        build_id: bid,
        okvs_seed: seed,
    };
    let entry = ShardEntry {
        shard_version,
        n_keys: header.n_keys,
        m: layout.m,
        segment_length: layout.segment_length,
        build_id: bid,
        root: t_root,
        proof,
    };
    let key_digest = key_set_digest(secret, spec, shard, &keys);
    Ok(BuiltShard {
        shard: TableShard { header, points: tc },
        entry,
        keys,
        key_digest,
    })
}

/// Builds a whole table for `keys` (already separated for PDQ tables; see
/// [`crate::keys::prune_separated`]). If `previous` is given, shards whose key set is unchanged
/// are kept as they are (same build id, points and proof); changed shards get
/// `shard_version + 1` and a fresh build id (R/E2 step 4).
pub fn build_table<R: CryptoRng + ?Sized>(
    spec: &TableSpec,
    secret: &OpeningKey,
    keys: &[KeyBytes],
    epoch: &EpochInput,
    previous: Option<&BuiltTable>,
    rng: &mut R,
) -> Result<BuiltTable, TableError> {
    let previous = previous.map(|p| {
        let shards: Vec<PreviousShard> = p.shards.iter().map(BuiltShard::to_previous).collect();
        (p.spec.clone(), shards)
    });
    build_table_after(
        spec,
        secret,
        keys,
        epoch,
        previous.as_ref().map(|(spec, shards)| (spec, &shards[..])),
        1,
        rng,
    )
}

/// As [`build_table`], with the previous epoch given by its spec and its shards in index
/// order as a builder that keeps no key sets knows them ([`PreviousShard`]). A previous shard
/// is kept only if the spec is unchanged, its key digest equals that of the new key set, and
/// it is intact (its points have the entry's Merkle root); otherwise it is rebuilt with the
/// next version.
///
/// Shards are built on up to `threads` threads (shards are independent). Each rebuilt shard's
/// proof nonce comes from its own generator, seeded from `rng` in shard order, so the output
/// depends on `rng` but not on `threads`.
pub fn build_table_after<R: CryptoRng + ?Sized>(
    spec: &TableSpec,
    secret: &OpeningKey,
    keys: &[KeyBytes],
    epoch: &EpochInput,
    previous: Option<(&TableSpec, &[PreviousShard])>,
    threads: usize,
    rng: &mut R,
) -> Result<BuiltTable, TableError> {
    let s_count = spec.shard_count.max(1);
    let mut per: Vec<Vec<KeyBytes>> = vec![Vec::new(); usize::from(s_count)];
    for k in keys {
        if k.as_bytes().len() != spec.key_len() {
            return Err(TableError::KeyLength);
        }
        per[usize::from(spec.shard_of(k))].push(k.clone());
    }
    // Decide every shard first (keep, or rebuild with which version and nonce seed), in shard
    // order, then do the expensive part in parallel.
    enum Work {
        Keep(Box<BuiltShard>),
        Build {
            shard: u16,
            version: u32,
            fill: [u8; 32],
            keys: Vec<KeyBytes>,
            nonce_seed: Zeroizing<[u8; 32]>,
        },
    }
    let mut work = Vec::with_capacity(per.len());
    for (s, mut ks) in per.into_iter().enumerate() {
        let s = s as u16;
        ks.sort();
        ks.dedup();
        let prev = previous
            .filter(|(p, _)| *p == spec)
            .and_then(|(_, p)| p.get(usize::from(s)));
        if let Some(p) = prev {
            let intact = p.shard.header.shard == s && p.shard.root() == p.entry.root;
            if intact && p.key_digest == key_set_digest(secret, spec, s, &ks) {
                work.push(Work::Keep(Box::new(BuiltShard {
                    shard: p.shard.clone(),
                    entry: p.entry,
                    keys: ks,
                    key_digest: p.key_digest,
                })));
                continue;
            }
        }
        let mut nonce_seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut nonce_seed[..]);
        work.push(Work::Build {
            shard: s,
            version: prev.map_or(0, |p| p.entry.shard_version.wrapping_add(1)),
            fill: fill_seed(&epoch.prev_manifest_hash, epoch.epoch, s, &epoch.beacon),
            keys: ks,
            nonce_seed,
        });
    }
    let shards = map_in_threads(work, threads, |w| match w {
        Work::Keep(b) => Ok(*b),
        Work::Build {
            shard,
            version,
            fill,
            keys,
            nonce_seed,
        } => {
            let mut nonce_rng = ChaCha20Rng::from_seed(*nonce_seed);
            build_shard(spec, secret, shard, version, fill, keys, &mut nonce_rng)
        }
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(BuiltTable {
        spec: spec.clone(),
        shards,
    })
}

/// `items.map(f)` on up to `threads` scoped threads, results in input order. A panic in `f`
/// is passed on to the caller.
fn map_in_threads<T: Send, U: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.into_iter().map(f).collect();
    }
    let n = items.len();
    let queue = std::sync::Mutex::new(items.into_iter().enumerate());
    // Nothing can panic while the lock is held; taking the queue back from a poisoned lock
    // anyway means no item is ever dropped.
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let mut done: Vec<(usize, U)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    while let Some((i, item)) = next() {
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    debug_assert_eq!(done.len(), n);
    done.sort_unstable_by_key(|d| d.0);
    done.into_iter().map(|d| d.1).collect()
}

/// What an organisation checks for one shard before co-signing (R/E11 step 2), given the key
/// set K_s it rebuilt by rule R: every key belongs to the shard, the build id is derived from
/// the shard's version and fill seed, M_s recomputed by the reference builder has the published
/// layout and seed, every point is a valid non-identity encoding, the Merkle root matches the
/// entry, and the DLEQ proof verifies.
pub fn verify_shard_for_org(
    spec: &TableSpec,
    shard: &TableShard,
    entry: &ShardEntry,
    keys: &[KeyBytes],
) -> Result<(), TableError> {
    let h = &shard.header;
    let s = h.shard;
    let mism = |what| TableError::ShardMismatch { shard: s, what };
    if h.kind != spec.kind || h.shard_count != spec.shard_count {
        return Err(mism("kind or shard count"));
    }
    let mut ks: Vec<KeyBytes> = keys.to_vec();
    ks.sort();
    ks.dedup();
    if ks
        .iter()
        .any(|k| k.as_bytes().len() != spec.key_len() || spec.shard_of(k) != s)
    {
        return Err(mism("a key does not belong to this shard"));
    }
    if h.n_keys as usize != ks.len() || entry.n_keys != h.n_keys {
        return Err(mism("key count"));
    }
    if build_id(spec, s, h.shard_version, &h.fill_seed) != h.build_id
        || entry.build_id != h.build_id
    {
        return Err(mism("build id"));
    }
    let (seed, layout, mpts) = solve_shard(spec, s, &h.build_id, &ks)?;
    if seed != h.okvs_seed || layout != h.layout || entry.m != layout.m {
        return Err(mism("okvs seed or layout"));
    }
    let tpts = decompress_all(shard)?;
    if shard.root() != entry.root {
        return Err(mism("root"));
    }
    let m_bytes: Vec<[u8; 32]> = compress_all(&mpts).iter().map(|c| c.to_bytes()).collect();
    let m_root = merkle::shard_root(s, &m_bytes);
    let ctx = spec.dleq_context(&h.build_id, layout.m, &entry.root, &m_root);
    dleq::verify(spec.public_key.point(), &ctx, &mpts, &tpts, &entry.proof)
        .map_err(|e| TableError::Proof(s, e))
}

fn decompress_all(shard: &TableShard) -> Result<Vec<RistrettoPoint>, TableError> {
    let s = shard.header.shard;
    let mut out = Vec::with_capacity(shard.points.len());
    for p in &shard.points {
        let q = p.decompress().ok_or(TableError::ShardMismatch {
            shard: s,
            what: "invalid point encoding",
        })?;
        if q.is_identity() {
            return Err(TableError::ShardMismatch {
                shard: s,
                what: "identity point",
            });
        }
        out.push(q);
    }
    Ok(out)
}

/// One verified shard held by a client: decompressed points.
#[derive(Debug, Clone)]
struct ClientShard {
    build_id: [u8; 32],
    okvs_seed: [u8; 32],
    layout: Layout,
    points: Vec<RistrettoPoint>,
}

/// A fully verified table on the client (R/E3): every shard's root equals the manifest entry,
/// its layout equals `binary_fuse_size(n_s)`, Σ n_s ≤ N_MAX, every point decompressed once and
/// none is the identity, and L is not the identity. Vouchers are only ever built from this type,
/// so a partially verified table cannot be used.
#[derive(Clone)]
pub struct ClientTable {
    spec: TableSpec,
    epoch: u32,
    shards: Vec<ClientShard>,
    l_table: RistrettoBasepointTable,
}

impl std::fmt::Debug for ClientTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTable")
            .field("kind", &self.spec.kind)
            .field("epoch", &self.epoch)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl ClientTable {
    /// Verifies `shards` against the manifest's `entries` and builds the client view.
    /// `n_max` bounds Σ n_s.
    pub fn load(
        spec: TableSpec,
        epoch: u32,
        entries: &[ShardEntry],
        shards: &[TableShard],
        n_max: u64,
    ) -> Result<Self, TableError> {
        if spec.public_key.point().is_identity() {
            return Err(DecodeError::IdentityPoint("L").into());
        }
        if entries.len() != usize::from(spec.shard_count) || shards.len() != entries.len() {
            return Err(TableError::ShardMismatch {
                shard: 0,
                what: "shard count",
            });
        }
        let total: u64 = entries.iter().map(|e| u64::from(e.n_keys)).sum();
        if total > n_max {
            return Err(TableError::TooManyKeys {
                got: total,
                limit: n_max,
            });
        }
        let mut out = Vec::with_capacity(shards.len());
        for (i, (e, sh)) in entries.iter().zip(shards).enumerate() {
            let h = &sh.header;
            let s = i as u16;
            let mism = |what| TableError::ShardMismatch { shard: s, what };
            if h.shard != s || h.kind != spec.kind || h.shard_count != spec.shard_count {
                return Err(mism("header"));
            }
            let layout = Layout::for_keys(e.n_keys as usize).ok_or(mism("layout"))?;
            if h.n_keys != e.n_keys
                || h.layout != layout
                || e.m != layout.m
                || e.segment_length != layout.segment_length
                || h.shard_version != e.shard_version
                || h.build_id != e.build_id
            {
                return Err(mism("header differs from manifest entry"));
            }
            if sh.root() != e.root {
                return Err(mism("root"));
            }
            let points = decompress_all(sh)?;
            out.push(ClientShard {
                build_id: h.build_id,
                okvs_seed: h.okvs_seed,
                layout,
                points,
            });
        }
        let l_table = RistrettoBasepointTable::create(spec.public_key.point());
        Ok(ClientTable {
            spec,
            epoch,
            shards: out,
            l_table,
        })
    }

    /// The spec.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }
    /// The table epoch vouchers built from it carry.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// For a key: `(H, D)` with `H = H2G(build_id_{shard(κ)} ‖ κ)` and `D = Σ T[pos(κ)]`.
    /// Reads the three positions with no early exit (the OKVS lookup is the one documented
    /// secret-indexed access; protocol-review.md m8).
    pub(crate) fn probe_points(&self, key: &KeyBytes) -> (RistrettoPoint, RistrettoPoint) {
        let s = usize::from(self.spec.shard_of(key));
        let sh = &self.shards[s];
        let h = key_point(self.spec.kind, &sh.build_id, key);
        let pos = sh.layout.positions(&sh.build_id, &sh.okvs_seed, key);
        debug_assert!(pos[0] != pos[1] && pos[1] != pos[2] && pos[0] != pos[2]);
        let d = sh.points[pos[0]] + sh.points[pos[1]] + sh.points[pos[2]];
        (h, d)
    }

    /// The public decoding `decode(κ) = Σ_{i∈pos(κ)} T_s[i]` in κ's shard. For κ ∈ K it equals
    /// `α·H(κ)`; for other keys it is unrelated (audit and test helper).
    pub fn decode(&self, key: &KeyBytes) -> CompressedRistretto {
        self.probe_points(key).1.compress()
    }

    /// `L`.
    pub(crate) fn l(&self) -> &RistrettoPoint {
        self.spec.public_key.point()
    }

    /// Precomputed multiples of `L`.
    pub(crate) fn l_table(&self) -> &RistrettoBasepointTable {
        &self.l_table
    }
}

/// Test and audit helper: does `key` decode to `α·H(key)` in this table, given α?
/// (The membership test a holder of α can run; used by property tests PT5/PT14/PT16.)
pub fn decodes_with_secret(table: &ClientTable, secret: &OpeningKey, key: &KeyBytes) -> bool {
    let (h, d) = table.probe_points(key);
    secret.alpha() * h == d
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

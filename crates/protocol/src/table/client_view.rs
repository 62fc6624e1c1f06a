//! The client's fully verified view of a table (R/E3).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoBasepointTable, RistrettoPoint};
use curve25519_dalek::traits::IsIdentity;

use crate::keys::{KeyBytes, TableKind};

use crate::okvs::Layout;

use crate::manifest::{Manifest, VerifiedManifest};
use crate::wire::DecodeError;

use super::org::decompress_all;
use super::{build_id, key_point, okvs_seed, OpeningKey, TableError, TableShard, TableSpec};

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
            .field("kind", &self.spec.kind())
            .field("epoch", &self.epoch)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl ClientTable {
    /// Verifies `shards` (in shard order) against the entries of the `kind` table of a
    /// manifest the client checked, and builds the client view. `n_max` bounds Σ n_s.
    pub fn load(
        manifest: &VerifiedManifest,
        kind: TableKind,
        shards: &[TableShard],
        n_max: u64,
    ) -> Result<Self, TableError> {
        ClientTable::build(manifest.manifest(), kind, shards, n_max)
    }

    /// Every check [`ClientTable::load`] makes of `shards` against a manifest, for the
    /// publisher and auditors, who check a table before it is signed: no table is returned,
    /// so nothing can build a voucher from a manifest that did not pass the acceptance rules.
    pub fn check_shards(
        manifest: &Manifest,
        kind: TableKind,
        shards: &[TableShard],
        n_max: u64,
    ) -> Result<(), TableError> {
        ClientTable::build(manifest, kind, shards, n_max).map(|_| ())
    }

    fn build(
        manifest: &Manifest,
        kind: TableKind,
        shards: &[TableShard],
        n_max: u64,
    ) -> Result<Self, TableError> {
        let spec = manifest.table_spec(kind).ok_or(TableError::NoTable(kind))?;
        let entries = manifest.table(kind).map(|t| t.shards()).unwrap_or_default();
        let epoch = manifest.epoch();
        if spec.public_key().point().is_identity() {
            return Err(DecodeError::IdentityPoint("L").into());
        }
        if entries.len() != usize::from(spec.shard_count()) || shards.len() != entries.len() {
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
        for (s, (e, sh)) in (0u16..).zip(entries.iter().zip(shards)) {
            let h = &sh.header;
            let mism = |what| TableError::ShardMismatch { shard: s, what };
            if h.shard != s || h.kind != spec.kind() || h.shard_count != spec.shard_count() {
                return Err(mism("header"));
            }
            let layout = usize::try_from(e.n_keys)
                .ok()
                .and_then(Layout::for_keys)
                .ok_or(mism("layout"))?;
            if h.n_keys != e.n_keys
                || h.layout != layout
                || e.m != layout.m
                || e.segment_length != layout.segment_length
                || h.shard_version != e.shard_version
                || h.build_id != e.build_id
            {
                return Err(mism("header differs from manifest entry"));
            }
            // The root covers the points only; the seeds that say where a key's points are
            // must derive from the build id the manifest names (R/E2 steps 2 and 5), or a
            // changed seed would make every probe of the shard decode to nothing.
            if build_id(&spec, s, h.shard_version, &h.fill_seed) != h.build_id {
                return Err(mism("build_id is not derived from the shard's fill seed"));
            }
            if !(0..=u8::MAX).any(|attempt| okvs_seed(&h.build_id, attempt) == h.okvs_seed) {
                return Err(mism("okvs_seed is not derived from the build id"));
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
        let l_table = RistrettoBasepointTable::create(spec.public_key().point());
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
        let h = key_point(self.spec.kind(), &sh.build_id, key);
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
        self.spec.public_key().point()
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

//! The organisations' re-derivation check before co-signing (R/E11 step 2).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::traits::IsIdentity;

use crate::dleq::{self};
use crate::keys::KeyBytes;
use crate::merkle;

use super::build::compress_all;
use super::{build_id, solve_shard, ShardEntry, TableError, TableShard, TableSpec};

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
    if h.kind != spec.kind() || h.shard_count != spec.shard_count() {
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
    dleq::verify(spec.public_key().point(), &ctx, &mpts, &tpts, &entry.proof)
        .map_err(|e| TableError::Proof(s, e))
}

pub(super) fn decompress_all(shard: &TableShard) -> Result<Vec<RistrettoPoint>, TableError> {
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

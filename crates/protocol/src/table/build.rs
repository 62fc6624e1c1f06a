//! The server's build: solving M_s, blinding with α, proofs, and the reuse of unchanged
//! shards across epochs (R/E2).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::SeedableRng;

use rand_chacha::ChaCha20Rng;
use rand_core::CryptoRng;

use zeroize::Zeroizing;

use crate::dleq::{self};
use crate::keys::KeyBytes;
use crate::merkle;
use crate::okvs::{self, Layout};

use crate::suite::{dst, hkdf};

use super::{
    build_id, fill_point, fill_seed, key_point, okvs_seed, OpeningKey, ShardEntry, ShardHeader,
    TableError, TableShard, TableSpec,
};

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
    let params = spec.params().encode();
    let public_key = spec.public_key().to_bytes();
    let kind = [spec.kind().to_byte()];
    let count = spec.shard_count().to_le_bytes();
    let index = shard.to_le_bytes();
    let n = (sorted.len() as u64).to_le_bytes();
    let mut info: Vec<&[u8]> = vec![
        dst::KEY_SET,
        spec.deployment_id(),
        &kind,
        &params,
        &public_key,
        &count,
        spec.shard_salt(),
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
        let mut mpts: Vec<RistrettoPoint> = (0..layout.m)
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
            let mut acc = key_point(spec.kind(), build_id, key);
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

pub(super) fn compress_all(points: &[RistrettoPoint]) -> Vec<CompressedRistretto> {
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
        kind: spec.kind(),
        shard,
        shard_count: spec.shard_count(),
        shard_version,
        n_keys: u32::try_from(keys.len()).map_err(|_| TableError::ShardTooLarge(shard))?,
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
    let s_count = spec.shard_count();
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
    for (s, mut ks) in (0u16..).zip(per) {
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

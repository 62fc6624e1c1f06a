//! Shared fixtures for the property tests: small parameters so the suite stays fast in debug.
#![allow(dead_code)]

use hashguard_protocol::acceptance::AcceptError;
use hashguard_protocol::manifest::{
    Manifest, ManifestError, ManifestFields, TableDescriptor, VerifiedManifest,
};
use hashguard_protocol::params::PinnedParams;
use hashguard_protocol::prelude::*;
use hashguard_protocol::table::{ShardEntry, TableError, TableSpec};
use hashguard_protocol::trust_sandbox::accept_alone;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub const K: u8 = 24;
pub const VD_LEN: u32 = 128;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// k = 24, f = 1 over w = 4 (P = 5), sep = 3, T = `t`.
pub fn params(policy: Policy, t: u16) -> Params {
    let (s_max, a, b) = match policy {
        Policy::Intervene => (0, 0, 0),
        // a = b + 1: the first distinct items are synthetic until the cap s_max − 10 = 4.
        Policy::Silent => (14, 3, 2),
    };
    Params::new(ParamsSpec {
        policy,
        key_positions: low_frequency_positions(K),
        f: 1,
        w: 4,
        threshold: t,
        s_max,
        q_min: 50,
        r_dedup: 8,
        sep: 3,
        synth_a: a,
        synth_b: b,
        vd_len: VD_LEN,
        // Strict: one opened probe, no dihedral probes (related keys and dihedral probes have
        // their own tests with their own parameters).
        max_opens: 1,
        dihedral: 0,
        dihedral_f: 0,
    })
    .expect("valid test params")
}

pub fn random_hash(rng: &mut ChaCha20Rng) -> Hash256 {
    Hash256::from_words([
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
    ])
}

pub fn random_margins(rng: &mut ChaCha20Rng) -> [f32; 256] {
    let mut m = [0f32; 256];
    for x in m.iter_mut() {
        *x = (rng.next_u32() % 10_000) as f32 + 1.0;
    }
    m
}

pub struct World {
    pub params: Params,
    pub secret: OpeningKey,
    pub spec: TableSpec,
    pub built: BuiltTable,
    pub table: ClientTable,
    /// Listed images (hash) whose keys survived pruning.
    pub listed: Vec<Hash256>,
    pub keys: Vec<u64>,
}

pub fn spec_for(params: &Params, secret: &OpeningKey, kind: TableKind, shards: u16) -> TableSpec {
    TableSpec::new(
        [0xd1; 16],
        kind,
        params.clone(),
        secret.public_key(),
        shards,
        [0x5a; 32],
    )
    .expect("valid test spec")
}

/// Epoch `e`'s input: epoch 1 has no predecessor, a later one names one.
pub fn epoch(e: u32) -> EpochInput {
    EpochInput {
        epoch: e,
        prev_manifest_hash: if e == 1 { [0; 32] } else { [e as u8; 32] },
        beacon: [0xbe; 32],
    }
}

/// The manifest of `spec`'s table with `entries` at epoch `e`, valid from 0 on, checked as a
/// client checks it against `spec`'s parameters.
pub fn verified_with(
    spec: &TableSpec,
    entries: Vec<ShardEntry>,
    e: u32,
) -> Result<VerifiedManifest, ManifestError> {
    let manifest = Manifest::new(ManifestFields {
        deployment_id: *spec.deployment_id(),
        epoch: e,
        not_before: 0,
        not_after: u64::MAX,
        prev_manifest_hash: epoch(e).prev_manifest_hash,
        params: spec.params().clone(),
        public_key: *spec.public_key(),
        tables: vec![TableDescriptor::new(
            spec.kind(),
            *spec.shard_salt(),
            entries,
        )?],
        revokes: vec![],
    })?;
    // Through the client's acceptance rules, in a throwaway sandbox that trusts it.
    match accept_alone(manifest, PinnedParams::exactly(spec.params().clone()), 0) {
        Ok(verified) => Ok(verified),
        Err(AcceptError::Manifest(e)) => Err(e),
        Err(other) => panic!("the sandbox accepts the manifest it signed: {other}"),
    }
}

/// Loads `shards` through a checked manifest that lists `entries`.
pub fn load_entries(
    spec: &TableSpec,
    entries: Vec<ShardEntry>,
    shards: &[TableShard],
    e: u32,
    n_max: u64,
) -> Result<ClientTable, TableError> {
    let manifest = verified_with(spec, entries, e).expect("a valid manifest");
    ClientTable::load(&manifest, spec.kind(), shards, n_max)
}

pub fn load(spec: &TableSpec, built: &BuiltTable, e: u32) -> ClientTable {
    let shards: Vec<TableShard> = built.shards.iter().map(|s| s.shard.clone()).collect();
    load_entries(spec, built.entries(), &shards, e, 1 << 30).expect("honest table loads")
}

pub fn key_bytes(params: &Params, v: u64) -> KeyBytes {
    KeyBytes::from_pdq_key(v, params.k())
}

/// A world with `n` listed random images (keys pruned to separation).
pub fn world(policy: Policy, t: u16, n: usize, seed: u64) -> World {
    let mut r = rng(seed);
    let params = params(policy, t);
    let secret = OpeningKey::generate(&mut r);
    let spec = spec_for(&params, &secret, TableKind::Pdq, 2);
    let all: Vec<Hash256> = (0..n).map(|_| random_hash(&mut r)).collect();
    let raw: Vec<u64> = all.iter().map(|h| pdq_key(h, &params)).collect();
    let pruned = prune_separated(&raw, params.k(), params.sep());
    let listed: Vec<Hash256> = all
        .into_iter()
        .filter(|h| pruned.kept.binary_search(&pdq_key(h, &params)).is_ok())
        .collect();
    let kb: Vec<KeyBytes> = pruned.kept.iter().map(|&v| key_bytes(&params, v)).collect();
    let built = build_table(&spec, &secret, &kb, &epoch(1), None, &mut r).expect("build");
    let table = load(&spec, &built, 1);
    World {
        params,
        secret,
        spec,
        built,
        table,
        listed,
        keys: pruned.kept,
    }
}

impl World {
    /// Whether any probe key of (hash, margins) is in K (the ideal functionality's view).
    pub fn ideal_match(&self, p: &PdqInput) -> bool {
        if p.quality < self.params.q_min() {
            return false;
        }
        let probes = probe_keys(&p.hash, &p.margins, &self.params);
        probes.iter().any(|k| self.keys.binary_search(k).is_ok())
    }

    /// A random image none of whose probes is listed.
    pub fn non_member(&self, r: &mut ChaCha20Rng) -> PdqInput {
        loop {
            let p = PdqInput {
                hash: random_hash(r),
                margins: random_margins(r),
                quality: 90,
            };
            if !self.ideal_match(&p) {
                return p;
            }
        }
    }

    pub fn opener(&self) -> Opener {
        Opener::new(self.secret.clone(), self.params.clone())
    }
}

pub fn item<'a>(pdq: Option<PdqInput>, cid: [u8; 32], thumb: &'a [u8]) -> Item<'a> {
    Item {
        pdq,
        content_sha256: cid,
        media_kind: MediaKind::Image,
        frame_idx: 0,
        thumbnail: thumb,
    }
}

pub fn cid(r: &mut ChaCha20Rng) -> [u8; 32] {
    let mut c = [0u8; 32];
    r.fill_bytes(&mut c);
    c
}

pub fn binding(account: u8, attachment: &[u8]) -> UploadBinding {
    UploadBinding::new([account; 16], attachment)
}

/// Builds, encodes, decodes and opens one voucher.
pub fn roundtrip_open(
    w: &World,
    opener: &Opener,
    client: &mut Client,
    it: &Item<'_>,
    b: &UploadBinding,
    r: &mut ChaCha20Rng,
) -> (BuiltVoucher, OpenOutcome) {
    let bv = client
        .build_pdq_voucher(&w.table, it, b, r)
        .expect("voucher");
    let layout = VoucherLayout::pdq(&w.params);
    let v = Voucher::decode(&bv.voucher.encode(), &layout).expect("decodes");
    let out = opener.open(&v, &layout, b);
    (bv, out)
}

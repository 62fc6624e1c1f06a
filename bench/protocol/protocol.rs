//! Client voucher time (v1 and lite under `intervene`: P = 237 and 39 with the dihedral probes,
//! named `P79` and `P13` after their own-orientation probes; `_dihedral` with every probe
//! real, as the SDK builds them), server opening time per voucher, table build time per key,
//! and the primitives they are made of, on one core.
//! Run: `cargo bench -p hashguard-protocol --bench protocol`.
//!
//! For instruction counts (stable on a shared, noisy machine), set `HASHGUARD_FIXED_WORK` to
//! `client`, `server` or `build` and run the bench binary under callgrind: it then does a fixed
//! amount of that work (8 client vouchers at P = 79; 8 server openings at P = 79, of which one
//! opens; one shard of 16,384 keys; `HASHGUARD_FIXED_N` changes the count) instead of
//! criterion, for example
//! `HASHGUARD_FIXED_WORK=client valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*fixed_work_client*' target/release/deps/protocol-<hash> --bench`.
//! Run without valgrind, the same mode prints CPU time per operation (`prims` times the
//! primitives; `HASHGUARD_PRIMS=1` adds them to the other modes).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use hashguard_protocol::prelude::*;
use hashguard_protocol::table::build_shard;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn random_hash(r: &mut ChaCha20Rng) -> Hash256 {
    Hash256::from_words([r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64()])
}

fn margins(r: &mut ChaCha20Rng) -> [f32; 256] {
    let mut m = [0f32; 256];
    for x in m.iter_mut() {
        *x = (r.next_u32() % 10_000) as f32;
    }
    m
}

/// Random PDQ floats: coefficients spread around 0, thresholded at their lower median as PDQ
/// does, quality 90 (the dihedral bench takes its variants' hashes and margins from these).
fn random_floats(r: &mut ChaCha20Rng) -> hashguard_pdq::PdqFloats {
    let mut coefficients = [0f32; 256];
    for c in coefficients.iter_mut() {
        *c = (r.next_u32() % 20_001) as f32 - 10_000.0;
    }
    let mut sorted = coefficients;
    sorted.sort_by(f32::total_cmp);
    hashguard_pdq::PdqFloats {
        coefficients,
        median: sorted[127],
        quality: 90,
    }
}

/// An upload of an image with this PDQ hash and these margins (quality 90).
fn image_item<'a>(
    hash: Hash256,
    margins: [f32; 256],
    content_sha256: [u8; 32],
    thumbnail: &'a [u8],
) -> Item<'a> {
    Item {
        pdq: Some(PdqInput {
            hash,
            margins,
            quality: 90,
        }),
        content_sha256,
        media_kind: MediaKind::Image,
        frame_idx: 0,
        thumbnail,
    }
}

struct Fixture {
    params: Params,
    secret: OpeningKey,
    table: ClientTable,
    listed: Vec<Hash256>,
}

/// The benchmarks' table spec: one deployment and salt, `shards` shards.
fn bench_spec(params: &Params, secret: &OpeningKey, shards: u16) -> TableSpec {
    TableSpec::new(
        [1; 16],
        TableKind::Pdq,
        params.clone(),
        secret.public_key(),
        shards,
        [2; 32],
    )
    .expect("spec")
}

fn fixture(params: Params, n_keys: usize, shards: u16) -> Fixture {
    let mut r = ChaCha20Rng::seed_from_u64(1);
    let secret = OpeningKey::generate(&mut r);
    let spec = bench_spec(&params, &secret, shards);
    let listed: Vec<Hash256> = (0..n_keys).map(|_| random_hash(&mut r)).collect();
    let raw: Vec<u64> = listed.iter().map(|h| pdq_key(h, &params)).collect();
    let kept = prune_separated(&raw, params.k(), params.sep()).kept;
    let keys: Vec<KeyBytes> = kept
        .iter()
        .map(|&v| KeyBytes::from_pdq_key(v, params.k()))
        .collect();
    let epoch = EpochInput {
        epoch: 1,
        prev_manifest_hash: [0; 32],
        beacon: [3; 32],
    };
    let built = build_table(&spec, &secret, &keys, &epoch, None, &mut r).expect("build");
    let shards: Vec<TableShard> = built.shards.iter().map(|s| s.shard.clone()).collect();
    // The client loads a table only through a manifest that passed the acceptance rules
    // (here under a throwaway sandbox's keys).
    let manifest = hashguard_protocol::trust_sandbox::accept_alone(
        Manifest::for_table(&built, &epoch, 0, u64::MAX).expect("manifest"),
        PinnedParams::exactly(params.clone()),
        0,
    )
    .expect("accepted");
    let table = ClientTable::load(&manifest, TableKind::Pdq, &shards, u64::MAX).expect("load");
    let listed = listed
        .into_iter()
        .filter(|h| kept.binary_search(&pdq_key(h, &params)).is_ok())
        .collect();
    Fixture {
        params,
        secret,
        table,
        listed,
    }
}

fn bench_client_and_server(c: &mut Criterion) {
    for (name, params) in [
        ("P79", Params::v1(Policy::Intervene)),
        ("P13", Params::lite(Policy::Intervene)),
    ] {
        let fx = fixture(params.clone(), 4096, 4);
        let layout = VoucherLayout::pdq(&fx.params);
        eprintln!(
            "sizes {name}: voucher {} B (intervene), {} B (silent, s_max 90); VD blob {} B",
            layout.voucher_len(),
            VoucherLayout::pdq(&Params::v1(Policy::Silent)).voucher_len()
                - 64 * (79 - usize::from(fx.params.probes())),
            fx.params.vd_len()
        );
        let mut r = ChaCha20Rng::seed_from_u64(2);
        let mut client = Client::new(AccountState::generate(&mut r), fx.params.clone());
        let binding = UploadBinding::new([7; 16], b"ciphertext");
        let thumb = vec![0u8; 1024];
        let mut inputs = ChaCha20Rng::seed_from_u64(5);
        c.bench_function(&format!("client_voucher_{name}"), |b| {
            b.iter_batched(
                || {
                    let mut cid = [0u8; 32];
                    inputs.fill_bytes(&mut cid);
                    (random_hash(&mut inputs), margins(&mut inputs), cid)
                },
                |(hash, m, cid)| {
                    let it = image_item(hash, m, cid, &thumb);
                    client
                        .build_pdq_voucher(&fx.table, &it, &binding, &mut r)
                        .expect("voucher")
                },
                BatchSize::SmallInput,
            )
        });
        // What the SDK builds for an image: every probe real (the image's own keys and its
        // dihedral variants' keys, deduplicated), where `client_voucher_*` above probes only
        // the own orientation and fills the variants' probes with cheap dummies.
        if fx.params.dihedral() != 0 {
            c.bench_function(&format!("client_voucher_{name}_dihedral"), |b| {
                b.iter_batched(
                    || {
                        let fl = random_floats(&mut inputs);
                        let mut cid = [0u8; 32];
                        inputs.fill_bytes(&mut cid);
                        (
                            PdqInput::from_floats(&fl),
                            DihedralInput::from_floats(&fl),
                            cid,
                        )
                    },
                    |(p, d, cid)| {
                        let it = image_item(p.hash, p.margins, cid, &thumb);
                        client
                            .build_pdq_voucher_dihedral(&fx.table, &it, &d, &binding, &mut r)
                            .expect("voucher")
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        let opener = Opener::new(fx.secret.clone(), fx.params.clone());
        // A non-matching and a matching voucher (the server's work is the same).
        for (kind, hash) in [("nomatch", random_hash(&mut r)), ("match", fx.listed[0])] {
            let mut cid = [0u8; 32];
            r.fill_bytes(&mut cid);
            let it = image_item(hash, margins(&mut r), cid, &thumb);
            let bytes = client
                .build_pdq_voucher(&fx.table, &it, &binding, &mut r)
                .expect("v")
                .voucher
                .encode();
            c.bench_function(&format!("server_open_{name}_{kind}"), |b| {
                b.iter(|| {
                    let v = Voucher::decode(&bytes, &layout).expect("decode");
                    opener.open(&v, &layout, &binding)
                })
            });
        }
    }
}

fn bench_build(c: &mut Criterion) {
    let params = Params::v1(Policy::Intervene);
    let mut r = ChaCha20Rng::seed_from_u64(3);
    let secret = OpeningKey::generate(&mut r);
    let spec = bench_spec(&params, &secret, 1);
    let n = 16_384usize;
    let keys: Vec<KeyBytes> = (0..n)
        .map(|_| KeyBytes::from_pdq_key(r.next_u64() >> 16, params.k()))
        .collect();
    let layout = hashguard_protocol::okvs::Layout::for_keys(n).expect("layout");
    eprintln!(
        "table: {n} keys -> m = {} points, {} B ({:.1} B/key)",
        layout.m,
        32 * layout.m,
        32.0 * f64::from(layout.m) / n as f64
    );
    let mut g = c.benchmark_group("table_build");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("shard_16384_keys", |b| {
        b.iter(|| build_shard(&spec, &secret, 0, 0, [4; 32], keys.clone(), &mut r).expect("build"))
    });
    g.finish();
}

fn bench_primitives(c: &mut Criterion) {
    use curve25519_dalek::ristretto::RistrettoPoint;
    use curve25519_dalek::scalar::Scalar;
    let mut r = ChaCha20Rng::seed_from_u64(9);
    let s = Scalar::random(&mut r);
    let p = RistrettoPoint::random(&mut r);
    let pc = p.compress();
    c.bench_function("prim_hash_to_group", |b| {
        b.iter(|| {
            hashguard_protocol::suite::hash_to_group(b"PDQTPSI-V1-KEY", &[&[1u8; 32], &[2u8; 6]])
        })
    });
    c.bench_function("prim_var_base_mul_ct", |b| b.iter(|| s * p));
    let s2 = Scalar::random(&mut r);
    c.bench_function("prim_msm2_ct", |b| {
        b.iter(|| {
            use curve25519_dalek::traits::MultiscalarMul;
            RistrettoPoint::multiscalar_mul(
                [s, s2],
                [p, curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT],
            )
        })
    });
    c.bench_function("prim_fixed_base_mul", |b| {
        b.iter(|| RistrettoPoint::mul_base(&s))
    });
    c.bench_function("prim_compress", |b| b.iter(|| p.compress()));
    c.bench_function("prim_decompress", |b| b.iter(|| pc.decompress()));
}

/// The work measured under callgrind; `#[inline(never)]` so `--toggle-collect` can find it.
#[inline(never)]
fn fixed_work_client(fx: &Fixture, client: &mut Client, items: &[(Hash256, [f32; 256])]) -> usize {
    let mut r = ChaCha20Rng::seed_from_u64(11);
    let binding = UploadBinding::new([7; 16], b"ciphertext");
    let mut total = 0;
    for (i, (hash, m)) in items.iter().enumerate() {
        let it = image_item(*hash, *m, [i as u8; 32], b"");
        let v = client
            .build_pdq_voucher(&fx.table, &it, &binding, &mut r)
            .expect("voucher");
        total += v.voucher.encode().len();
    }
    total
}

#[inline(never)]
fn fixed_work_server(
    opener: &Opener,
    layout: &VoucherLayout,
    vouchers: &[Vec<u8>],
    n: usize,
) -> usize {
    let binding = UploadBinding::new([7; 16], b"ciphertext");
    vouchers
        .iter()
        .cycle()
        .take(n)
        .map(|b| {
            let v = Voucher::decode(b, layout).expect("decode");
            usize::from(matches!(
                opener.open(&v, layout, &binding),
                OpenOutcome::Opened(_)
            ))
        })
        .sum()
}

#[inline(never)]
fn fixed_work_build(
    spec: &TableSpec,
    secret: &OpeningKey,
    keys: Vec<KeyBytes>,
    r: &mut ChaCha20Rng,
) -> u32 {
    build_shard(spec, secret, 0, 0, [4; 32], keys, r)
        .expect("build")
        .entry
        .m
}

/// 1,000 of each primitive, each in its own function so callgrind reports them separately.
fn fixed_work_prims() {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use curve25519_dalek::ristretto::{RistrettoBasepointTable, RistrettoPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::MultiscalarMul;
    use std::hint::black_box;
    let mut r = ChaCha20Rng::seed_from_u64(9);
    let s: Vec<Scalar> = (0..1000).map(|_| Scalar::random(&mut r)).collect();
    let p = RistrettoPoint::random(&mut r);
    let l = RistrettoPoint::random(&mut r);
    let l_table = RistrettoBasepointTable::create(&l);
    #[inline(never)]
    fn prim_var_base(s: &[Scalar], p: RistrettoPoint) -> RistrettoPoint {
        s.iter().map(|x| x * p).sum()
    }
    #[inline(never)]
    fn prim_msm2(s: &[Scalar], p: RistrettoPoint, q: RistrettoPoint) -> RistrettoPoint {
        s.iter()
            .map(|x| RistrettoPoint::multiscalar_mul([*x, *x], [p, q]))
            .sum()
    }
    #[inline(never)]
    fn prim_table_g(s: &[Scalar]) -> RistrettoPoint {
        s.iter().map(RistrettoPoint::mul_base).sum()
    }
    #[inline(never)]
    fn prim_table_l(s: &[Scalar], t: &RistrettoBasepointTable) -> RistrettoPoint {
        s.iter().map(|x| t * x).sum()
    }
    #[inline(never)]
    fn prim_h2g(n: u32) -> RistrettoPoint {
        (0..n)
            .map(|i| {
                hashguard_protocol::suite::hash_to_group(b"PDQTPSI-V1-KEY", &[&i.to_le_bytes()])
            })
            .sum()
    }
    #[inline(never)]
    fn prim_compress(p: RistrettoPoint, n: u32) -> u8 {
        let mut x = p;
        let mut acc = 0u8;
        for _ in 0..n {
            acc ^= x.compress().as_bytes()[0];
            x += RISTRETTO_BASEPOINT_POINT;
        }
        acc
    }
    #[inline(never)]
    fn prim_decompress(c: &[[u8; 32]]) -> usize {
        c.iter()
            .filter(|b| {
                curve25519_dalek::ristretto::CompressedRistretto(**b)
                    .decompress()
                    .is_some()
            })
            .count()
    }
    let enc: Vec<[u8; 32]> = s
        .iter()
        .map(|x| RistrettoPoint::mul_base(x).compress().to_bytes())
        .collect();
    let t = Clock::start();
    black_box(prim_var_base(&s, p));
    t.report("prim constant-time variable-base mul", s.len());
    let t = Clock::start();
    black_box(prim_msm2(&s, p, l));
    t.report("prim constant-time 2-term multiscalar mul", s.len());
    let t = Clock::start();
    black_box(prim_table_g(&s));
    t.report("prim fixed-base mul (G table)", s.len());
    let t = Clock::start();
    black_box(prim_table_l(&s, &l_table));
    t.report("prim fixed-base mul (L table)", s.len());
    let t = Clock::start();
    black_box(prim_h2g(1000));
    t.report("prim hash-to-group", 1000);
    let t = Clock::start();
    black_box(prim_compress(p, 1000));
    t.report("prim compress (+ one addition)", 1000);
    let t = Clock::start();
    black_box(prim_decompress(&enc));
    t.report("prim decompress", enc.len());
}

/// Wall time and, on Linux, this thread's CPU time (`/proc/thread-self/schedstat`, which
/// excludes time spent waiting for a core: the machine these figures come from is shared).
struct Clock {
    wall: std::time::Instant,
    cpu_ns: Option<u64>,
}

impl Clock {
    fn cpu_ns() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
    fn start() -> Self {
        Clock {
            cpu_ns: Self::cpu_ns(),
            wall: std::time::Instant::now(),
        }
    }
    fn report(&self, what: &str, n: usize) {
        let wall = self.wall.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
        let cpu = match (self.cpu_ns, Self::cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / 1e3 / n.max(1) as f64),
            _ => "n/a".into(),
        };
        eprintln!("{what}: {cpu} µs CPU, {wall:.1} µs wall per operation over {n}");
    }
}

/// `HASHGUARD_FIXED_N`: how many vouchers, openings or shard builds (default 8, 8, 1); run
/// with two values under `perf stat -e task-clock` and take the difference for CPU time per
/// operation that is independent of the fixture's setup.
fn fixed_n() -> usize {
    let default = match std::env::var("HASHGUARD_FIXED_WORK").as_deref() {
        Ok("build") => 1,
        _ => 8,
    };
    std::env::var("HASHGUARD_FIXED_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `HASHGUARD_FIXED_WORK` mode (see the module documentation). Returns `true` if it ran.
fn fixed_work() -> bool {
    let Ok(mode) = std::env::var("HASHGUARD_FIXED_WORK") else {
        return false;
    };
    let params = Params::v1(Policy::Intervene);
    match mode.as_str() {
        "client" | "server" => {
            let fx = fixture(params.clone(), 4096, 4);
            let mut r = ChaCha20Rng::seed_from_u64(2);
            let mut client = Client::new(AccountState::generate(&mut r), params.clone());
            // The server opens 8 vouchers (one of them matching) round-robin.
            let n_items = if mode == "client" { fixed_n() } else { 8 };
            let items: Vec<(Hash256, [f32; 256])> = (0..n_items)
                .map(|i| {
                    let h = if i == 0 {
                        fx.listed[0]
                    } else {
                        random_hash(&mut r)
                    };
                    (h, margins(&mut r))
                })
                .collect();
            if mode == "client" {
                let t = Clock::start();
                let n = fixed_work_client(&fx, &mut client, &items);
                t.report("client voucher P=79", items.len());
                eprintln!("fixed work: {} client vouchers, {n} bytes", items.len());
            } else {
                let layout = VoucherLayout::pdq(&params);
                let binding = UploadBinding::new([7; 16], b"ciphertext");
                let vouchers: Vec<Vec<u8>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, (h, m))| {
                        let it = image_item(*h, *m, [i as u8; 32], b"");
                        client
                            .build_pdq_voucher(&fx.table, &it, &binding, &mut r)
                            .expect("voucher")
                            .voucher
                            .encode()
                    })
                    .collect();
                let opener = Opener::new(fx.secret.clone(), params.clone());
                let total = fixed_n();
                let t = Clock::start();
                let n = fixed_work_server(&opener, &layout, &vouchers, total);
                t.report("server open P=79", total);
                assert_eq!(n, total.div_ceil(8), "only the listed item opens");
                eprintln!("fixed work: {total} server openings, {n} opened");
            }
        }
        "build" => {
            let mut r = ChaCha20Rng::seed_from_u64(3);
            let secret = OpeningKey::generate(&mut r);
            let spec = bench_spec(&params, &secret, 1);
            let keys: Vec<KeyBytes> = (0..16_384)
                .map(|_| KeyBytes::from_pdq_key(r.next_u64() >> 16, params.k()))
                .collect();
            for _ in 0..fixed_n() {
                let t = Clock::start();
                let m = fixed_work_build(&spec, &secret, keys.clone(), &mut r);
                t.report("table build per key (16384 keys)", 16_384);
                eprintln!("fixed work: one shard of 16384 keys, m = {m}");
            }
        }
        "prims" => {}
        other => panic!("HASHGUARD_FIXED_WORK={other}: expected client, server, build or prims"),
    }
    // With HASHGUARD_PRIMS=1 (or in `prims` mode) also time the primitives in the same
    // process, so that operations and their floors are measured under the same load.
    if mode == "prims" || std::env::var_os("HASHGUARD_PRIMS").is_some() {
        fixed_work_prims();
    }
    true
}

criterion_group!(
    benches,
    bench_primitives,
    bench_client_and_server,
    bench_build
);
fn main() {
    eprintln!(
        "curve25519-dalek field backend: {}",
        hashguard_protocol::suite::field_backend()
    );
    if fixed_work() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

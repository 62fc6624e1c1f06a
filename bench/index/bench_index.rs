//! Benchmark of the index on deterministic synthetic data, shared with the faiss
//! peer (`bench/index/faiss_peer.py`) through files in a data directory.
//!
//! ```text
//! cargo run --release -p hashguard-index --example bench_index -- \
//!     --n 10000000 --dataset uniform --queries 5000 --radius 31 [--layout 11:18,16:16]
//!     [--simd avx512|avx2|popcnt|portable] [--linear] [--fraction F]
//!     [--via mmap|load] [--reps 5] [--check 100] [--seed 42] [--dir /tmp/hashguard-bench]
//! ```
//! Writes `<dir>/<dataset>-<n>.codes` (32 bytes per code, the words little-endian),
//! `<dir>/<dataset>-<n>.{near,rand}.q` (queries) if missing, and
//! `<dir>/<dataset>-<n>-r<radius>.{near,rand}.ids` (sorted result ids of the first
//! `--check` queries, one line per query) for the exactness check. Prints one
//! tab-separated row per (layout, query kind, radius).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hashguard_index::{Code, FrozenIndex, Layout, Match, Scratch};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn code(&mut self) -> Code {
        [self.next(), self.next(), self.next(), self.next()]
    }
    fn flips(&mut self, mut c: Code, k: u64) -> Code {
        for _ in 0..k {
            let b = self.next() % 256;
            c[(b / 64) as usize] ^= 1 << (b % 64);
        }
        c
    }
}

/// uniform: n random codes. clustered: n/16 random centres, each code a centre
/// with 0..=16 random bit flips (clusters of near-duplicates, as in real lists
/// where one image appears re-encoded, resized and cropped).
/// adversarial: like uniform, but 1/4 of the codes share bits 0..64 (one value
/// of every slot covering them). onecluster: every code is one centre with
/// 0..=16 random flips (the worst case: every query near it matches everything).
fn generate(dataset: &str, n: usize, seed: u64) -> Vec<Code> {
    let mut rng = Rng(seed);
    match dataset {
        "uniform" => (0..n).map(|_| rng.code()).collect(),
        "clustered" => {
            let centres: Vec<Code> = (0..(n / 16).max(1)).map(|_| rng.code()).collect();
            (0..n)
                .map(|_| {
                    let c = centres[(rng.next() % centres.len() as u64) as usize];
                    let k = rng.next() % 17;
                    rng.flips(c, k)
                })
                .collect()
        }
        "onecluster" => {
            let c = rng.code();
            (0..n)
                .map(|_| {
                    let k = rng.next() % 17;
                    rng.flips(c, k)
                })
                .collect()
        }
        "adversarial" => {
            let common = rng.next();
            (0..n)
                .map(|i| {
                    let mut c = rng.code();
                    if i % 4 == 0 {
                        c[0] = common;
                    }
                    c
                })
                .collect()
        }
        _ => panic!("unknown dataset {dataset}"),
    }
}

fn write_codes(path: &Path, codes: &[Code]) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for c in codes {
        for x in c {
            w.write_all(&x.to_le_bytes()).expect("write");
        }
    }
}

fn read_codes(path: &Path) -> Vec<Code> {
    let b = std::fs::read(path).expect("read");
    b.chunks_exact(32)
        .map(|c| {
            let mut x = [0u64; 4];
            for (i, w) in x.iter_mut().enumerate() {
                *w = u64::from_le_bytes(c[i * 8..i * 8 + 8].try_into().expect("8"));
            }
            x
        })
        .collect()
}

/// CPU time of this thread in seconds (Linux schedstat), to report throughput
/// per CPU-second beside wall-clock throughput when the machine is shared.
fn cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |ns| ns / 1e9)
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|s| s.as_str())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n").map_or(1_000_000, |s| s.parse().expect("--n"));
    let dataset = arg(&args, "--dataset").unwrap_or("uniform").to_string();
    let nq: usize = arg(&args, "--queries").map_or(2000, |s| s.parse().expect("--queries"));
    let check: usize = arg(&args, "--check").map_or(100, |s| s.parse().expect("--check"));
    let radii: Vec<u32> = arg(&args, "--radius")
        .unwrap_or("31")
        .split(',')
        .map(|s| s.parse().expect("--radius"))
        .collect();
    let seed: u64 = arg(&args, "--seed").map_or(42, |s| s.parse().expect("--seed"));
    let dir = PathBuf::from(arg(&args, "--dir").unwrap_or("/tmp/hashguard-bench"));
    let linear = args.iter().any(|a| a == "--linear");
    let reps: usize = arg(&args, "--reps").map_or(3, |s| s.parse().expect("--reps"));
    let simd = arg(&args, "--simd");
    let via = arg(&args, "--via");
    let fraction: Option<f64> = arg(&args, "--fraction").map(|s| s.parse().expect("--fraction"));
    let layouts: Vec<Option<Layout>> = match arg(&args, "--layout") {
        None => vec![None],
        Some(s) => s
            .split(',')
            .map(|l| {
                let (m, t) = l.split_once(':').expect("--layout m:t");
                Some(Layout::uniform(m.parse().expect("m"), t.parse().expect("t")).expect("layout"))
            })
            .collect(),
    };
    std::fs::create_dir_all(&dir).expect("mkdir");
    let base = dir.join(format!("{dataset}-{n}"));
    let codes_path = base.with_extension("codes");
    let codes = if codes_path.exists() {
        read_codes(&codes_path)
    } else {
        let c = generate(&dataset, n, seed);
        write_codes(&codes_path, &c);
        c
    };
    assert_eq!(codes.len(), n, "stale {}", codes_path.display());
    let mut qsets = Vec::new();
    for kind in ["near", "rand"] {
        let p = PathBuf::from(format!("{}.{kind}.q", base.display()));
        let qs = if p.exists() {
            read_codes(&p)
        } else {
            let mut rng = Rng(seed ^ 0xabcdef ^ kind.len() as u64);
            let qs: Vec<Code> = (0..nq.max(check))
                .map(|_| {
                    if kind == "near" {
                        let c = codes[(rng.next() % n as u64) as usize];
                        let k = rng.next() % 17;
                        rng.flips(c, k)
                    } else {
                        rng.code()
                    }
                })
                .collect();
            write_codes(&p, &qs);
            qs
        };
        qsets.push((kind, qs));
    }
    for layout in &layouts {
        let t0 = Instant::now();
        let mut idx = FrozenIndex::build(&codes, None, layout.as_ref()).expect("build");
        let build_s = t0.elapsed().as_secs_f64();
        if let Ok(s) = std::fs::read_to_string("/proc/self/smaps_rollup") {
            for l in s.lines().filter(|l| l.starts_with("AnonHugePages")) {
                eprintln!("after build: {l}");
            }
        }
        let mut via_desc = String::new();
        if let Some(via) = via {
            let path = dir.join(format!("bench-{dataset}-{n}.idx"));
            idx.save(&path).expect("save");
            drop(idx);
            let t = Instant::now();
            idx = match via {
                "mmap" => FrozenIndex::open(&path).expect("open"),
                "load" => FrozenIndex::load(&path).expect("load"),
                _ => panic!("--via mmap|load"),
            };
            via_desc = format!(" {via} (open {:.2} s)", t.elapsed().as_secs_f64());
        }
        if linear {
            idx.set_linear_fraction(0.0);
        }
        if let Some(f) = fraction {
            idx.set_linear_fraction(f);
        }
        if let Some(cap) = simd {
            idx.set_simd_cap(cap);
        }
        let desc = {
            let s = idx.layout().slots();
            let lin = if linear { " linear-scan" } else { "" };
            format!("m={} t={}{lin}{via_desc}", s.len(), s[0].table_bits)
        };
        let bph = idx.size_bytes() as f64 / n as f64;
        let mut scratch = Scratch::new();
        let mut out: Vec<Match> = Vec::new();
        for &r in &radii {
            for (kind, qs) in &qsets {
                // Exactness file: sorted ids of the first `check` queries.
                let mut ids_txt = String::new();
                for q in qs.iter().take(check) {
                    let mut v: Vec<u32> = idx.search(q, r).iter().map(|m| m.id).collect();
                    v.sort_unstable();
                    let line: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    ids_txt.push_str(&line.join(" "));
                    ids_txt.push('\n');
                }
                std::fs::write(format!("{}-r{r}.{kind}.ids", base.display()), ids_txt)
                    .expect("write ids");
                // Warm-up, then timing.
                for q in qs.iter().take(50) {
                    out.clear();
                    idx.search_into(q, r, &mut scratch, &mut out);
                }
                let (mut results, mut cands, mut lin) = (0usize, 0u64, 0usize);
                let take = nq.min(qs.len());
                // `reps` timed passes over the queries; report the median pass.
                let mut times = Vec::new();
                let mut cpu = Vec::new();
                for _ in 0..reps {
                    let c0 = cpu_secs();
                    let t = Instant::now();
                    (results, cands, lin) = (0, 0, 0);
                    for q in qs.iter().take(take) {
                        out.clear();
                        let st = idx.search_into(q, r, &mut scratch, &mut out);
                        results += out.len();
                        cands += st.candidates;
                        lin += usize::from(st.linear);
                    }
                    times.push(t.elapsed().as_secs_f64());
                    cpu.push(cpu_secs() - c0);
                }
                times.sort_by(f64::total_cmp);
                cpu.sort_by(f64::total_cmp);
                let secs = times[times.len() / 2];
                let cpu_s = cpu[cpu.len() / 2];
                println!(
                    "hashguard\t{desc}\t{}\t{dataset}\t{n}\t{kind}\t{r}\t{:.0}\t{:.0}\t{:.1}\t{:.2}\t{bph:.1}\t{:.2}\t{:.0} cand, {lin} linear",
                    idx.simd_level(),
                    take as f64 / secs,
                    take as f64 / cpu_s,
                    1e6 * secs / take as f64,
                    build_s,
                    results as f64 / take as f64,
                    cands as f64 / take as f64,
                );
            }
        }
    }
}

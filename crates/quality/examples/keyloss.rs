//! Why copies fail to open (issue 17 item 5): for each listed original and transformed copy,
//! the key distance between the copy's and the original's 48-bit keys, and whether the client's
//! weak-bit choice covers the differing bits. Compares weak-bit rankings at the same probe
//! budget: the deployed one (smallest `|coefficient - median|`), the margin divided by a
//! per-key-position spread learned on a disjoint training half, and the oracle bound (any
//! copy within f key bits opens).
//!
//! An analysis tool, not the deployed opener: `hashguard-quality measure` is the end-to-end
//! measurement. Run:
//!
//! ```sh
//! cargo run --release -p hashguard-quality --example keyloss -- \
//!     --corpus ~/.cache/hashguard-corpus/extract --packages <list> --limit 600
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hashguard_pdq::PdqFloats;
use hashguard_protocol::prelude::*;
use hashguard_quality::{corpus, measure, transforms};
use image::RgbImage;
use rayon::prelude::*;
use transforms::Transform;

struct Args {
    corpus: PathBuf,
    manifest: PathBuf,
    packages: Vec<String>,
    limit: usize,
    min_long: u32,
    small: Option<u32>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: PathBuf::new(),
        manifest: PathBuf::from("bench/quality/corpus.csv"),
        packages: Vec::new(),
        limit: 600,
        min_long: 512,
        small: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--corpus" => a.corpus = v.into(),
            "--manifest" => a.manifest = v.into(),
            "--packages" => a.packages = v.split(',').map(str::to_owned).collect(),
            "--limit" => a.limit = v.parse()?,
            "--min-long" => a.min_long = v.parse()?,
            "--small" => a.small = Some(v.parse()?),
            _ => anyhow::bail!("unknown flag {k}"),
        }
    }
    Ok(a)
}

/// One (original, copy) pair, reduced to what the analysis needs.
struct Pair {
    transform: usize,
    orig_key: u64,
    copy_key: u64,
    /// Signed distance from the median per key position (positive: bit 1), original and copy.
    orig_signed: Vec<f32>,
    copy_signed: Vec<f32>,
    copy_quality: u8,
    full_distance: u32,
    train: bool,
    orig_hash: hashguard_pdq::Hash256,
    copy_hash: hashguard_pdq::Hash256,
    copy_margins: Vec<f32>,
}

fn key_at(h: &hashguard_pdq::Hash256, positions: &[u8]) -> u64 {
    positions
        .iter()
        .fold(0u64, |v, &p| (v << 1) | u64::from(h.bit(usize::from(p))))
}

/// Opens under positions `pos` with the deployed rule (w weakest by margin, <= f flips).
fn opens_at(p: &Pair, pos: &[u8], w: usize, f: usize) -> bool {
    let k = pos.len();
    let diff = key_at(&p.orig_hash, pos) ^ key_at(&p.copy_hash, pos);
    if diff.count_ones() as usize > f {
        return false;
    }
    let mut order: Vec<(f32, usize)> = pos
        .iter()
        .enumerate()
        .map(|(i, &b)| (p.copy_margins[usize::from(b)], i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let weak: u64 = order[..w]
        .iter()
        .fold(0, |m, &(_, i)| m | (1u64 << (k - 1 - i)));
    diff & !weak == 0
}

fn signed(f: &PdqFloats, params: &Params) -> Vec<f32> {
    params
        .key_positions()
        .iter()
        .map(|&p| f.coefficients[usize::from(p)] - f.median)
        .collect()
}

/// Whether a copy opens under a ranking `score` (smaller = weaker) with `w` weak bits and at
/// most `f` flips: the differing key bits must all be among the copy's `w` weakest.
fn opens(pair: &Pair, score: &dyn Fn(usize, f32) -> f32, w: usize, f: usize, k: usize) -> bool {
    let diff = pair.orig_key ^ pair.copy_key;
    if diff.count_ones() as usize > f {
        return false;
    }
    let mut order: Vec<(f32, usize)> = (0..k)
        .map(|i| (score(i, pair.copy_signed[i].abs()), i))
        .collect();
    order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let weak: u64 = order[..w]
        .iter()
        .fold(0, |m, &(_, i)| m | (1u64 << (k - 1 - i)));
    diff & !weak == 0
}

fn main() -> Result<()> {
    let a = args()?;
    let params = Params::v1(Policy::Intervene);
    let k = usize::from(params.k());
    let entries = corpus::hashed_order_sample(
        corpus::read_manifest(&a.manifest)?,
        a.min_long,
        &a.packages,
        a.limit,
    );
    let suite = [
        Transform::Jpeg(75),
        Transform::Jpeg(40),
        Transform::Messenger(1024),
        Transform::Messenger(800),
        Transform::Messenger(512),
        Transform::Messenger(256),
        Transform::Screenshot,
        Transform::Brightness,
    ];
    let pairs: Vec<Pair> = entries
        .par_iter()
        .enumerate()
        .filter_map(|(n, e)| {
            let bytes = std::fs::read(a.corpus.join(&e.package).join(&e.path)).ok()?;
            let mut img: RgbImage = transforms::decode(&bytes).ok()?;
            if let Some(l) = a.small {
                img = transforms::resize_long_side(&img, l);
            }
            let of = measure::floats(&img).ok()?;
            if of.quality < params.q_min() {
                return None;
            }
            let mut out = Vec::new();
            for (t, tr) in suite.iter().enumerate() {
                let copy = tr.apply(&img, n as u64 * 31 + t as u64).ok()?;
                let cf = measure::floats(&copy).ok()?;
                out.push(Pair {
                    transform: t,
                    orig_key: pdq_key(&of.hash(), &params),
                    copy_key: pdq_key(&cf.hash(), &params),
                    orig_signed: signed(&of, &params),
                    copy_signed: signed(&cf, &params),
                    copy_quality: cf.quality,
                    full_distance: of.hash().distance(&cf.hash()),
                    train: n % 2 == 0,
                    orig_hash: of.hash(),
                    copy_hash: cf.hash(),
                    copy_margins: cf.margins().to_vec(),
                });
            }
            Some(out)
        })
        .flatten()
        .collect();

    // Per key position: the spread of the signed coefficient change (normalised by the
    // original's median absolute margin, so contrast does not dominate), training half only.
    let mut spread = vec![0f64; k];
    let mut count = 0f64;
    for p in pairs.iter().filter(|p| p.train) {
        let mut scale: Vec<f32> = p.orig_signed.iter().map(|v| v.abs()).collect();
        scale.sort_by(f32::total_cmp);
        let s = f64::from(scale[k / 2]).max(1e-6);
        for (acc, (c, o)) in spread
            .iter_mut()
            .zip(p.copy_signed.iter().zip(&p.orig_signed))
        {
            let d = f64::from(c - o) / s;
            *acc += d * d;
        }
        count += 1.0;
    }
    let sigma: Vec<f32> = spread
        .iter()
        .map(|v| ((v / count.max(1.0)).sqrt()) as f32)
        .collect();
    println!("per-position spread (training half, {count} pairs):");
    for (i, s) in sigma.iter().enumerate() {
        let pos = params.key_positions()[i];
        print!("{}:{:.2} ", format_args!("({},{})", pos / 16, pos % 16), s);
    }
    println!();

    let deployed = |_: usize, m: f32| m;
    let scaled = |i: usize, m: f32| m / sigma[i].max(1e-6);
    let q_min = params.q_min();
    let mut rows: BTreeMap<usize, [usize; 8]> = BTreeMap::new();
    let mut dk_hist: BTreeMap<(usize, u32), usize> = BTreeMap::new();
    for p in pairs.iter().filter(|p| !p.train) {
        let r = rows.entry(p.transform).or_default();
        let ok_q = p.copy_quality >= q_min;
        let dk = (p.orig_key ^ p.copy_key).count_ones();
        r[0] += 1;
        r[1] += usize::from(ok_q && p.full_distance <= 31);
        r[2] += usize::from(ok_q && dk <= 2);
        r[3] += usize::from(ok_q && opens(p, &deployed, 12, 2, k));
        r[4] += usize::from(ok_q && opens(p, &scaled, 12, 2, k));
        r[5] += usize::from(ok_q && opens(p, &deployed, 16, 2, k));
        r[6] += usize::from(ok_q && opens(p, &scaled, 16, 2, k));
        r[7] += usize::from(!ok_q);
        *dk_hist.entry((p.transform, dk.min(6))).or_default() += 1;
    }
    println!(
        "\n| transform | copies (test half) | plain PDQ <= 31 | key within 2 bits (oracle, any P) | deployed w=12 (P=79) | scaled w=12 (P=79) | deployed w=16 (P=137) | scaled w=16 (P=137) | below q_min |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (t, r) in &rows {
        let n = r[0].max(1) as f64;
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
            suite[*t].name(),
            r[0],
            r[1] as f64 / n,
            r[2] as f64 / n,
            r[3] as f64 / n,
            r[4] as f64 / n,
            r[5] as f64 / n,
            r[6] as f64 / n,
            r[7]
        );
    }
    println!("\nkey distance histogram (test half; 6 = 6 or more):");
    for (t, tr) in suite.iter().enumerate() {
        let h: Vec<String> = (0..=6)
            .map(|d| format!("{}", dk_hist.get(&(t, d)).copied().unwrap_or(0)))
            .collect();
        println!("{}: {}", tr.name(), h.join(" "));
    }
    positions_study(&pairs, &params, &a)?;
    Ok(())
}

/// Which 48 PDQ bits make the most stable key: flip rates of all 256 bits on the training
/// half, candidate position sets evaluated on the test half (recall with the deployed weak-bit
/// rule) and on the whole manifest (share of cross-package pairs whose keys are within 2 bits:
/// the chance-match side).
fn positions_study(pairs: &[Pair], params: &Params, a: &Args) -> Result<()> {
    let mut flips = [0f64; 256];
    let mut n = 0f64;
    for p in pairs.iter().filter(|p| p.train) {
        for (b, f) in flips.iter_mut().enumerate() {
            *f += f64::from(u8::from(p.orig_hash.bit(b) != p.copy_hash.bit(b)));
        }
        n += 1.0;
    }
    for f in flips.iter_mut() {
        *f /= n.max(1.0);
    }
    let deployed: Vec<u8> = params.key_positions().to_vec();
    println!("\nflip rate per bit (row i = vertical frequency; training half):");
    for i in 0..16 {
        let row: Vec<String> = (0..16)
            .map(|j| format!("{:.3}", flips[i * 16 + j]))
            .collect();
        println!("{i:2}: {}", row.join(" "));
    }
    let mut by_rate: Vec<u8> = (0..=255u8).collect();
    by_rate.sort_by(|&x, &y| flips[usize::from(x)].total_cmp(&flips[usize::from(y)]));
    let stable: Vec<u8> = by_rate[..48].to_vec();
    // Deployed minus its 8 least stable bits, plus the 8 most stable bits outside it.
    let mut swap8: Vec<u8> = deployed.clone();
    swap8.sort_by(|&x, &y| flips[usize::from(x)].total_cmp(&flips[usize::from(y)]));
    swap8.truncate(40);
    swap8.extend(by_rate.iter().filter(|b| !deployed.contains(b)).take(8));
    let entries = corpus::read_manifest(&a.manifest)?;
    let sets = [
        ("deployed low-frequency, f=2 (P=79)", deployed.clone(), 2),
        ("deployed low-frequency, f=3 (P=299)", deployed, 3),
        (
            "low-frequency k=40, f=2 (P=79)",
            low_frequency_positions(40),
            2,
        ),
        ("swap 8 least stable, f=2", swap8, 2),
        ("48 most stable, f=2", stable, 2),
    ];
    println!("\n| key positions | mean flip rate | recall messenger-512 | messenger-256 | screenshot | brightness | all test copies | cross-package pairs key dist 0 | <= 1 | <= 2 |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, pos, f) in &sets {
        let f = *f;
        let kk = pos.len() as f64;
        let mean: f64 = pos.iter().map(|&b| flips[usize::from(b)]).sum::<f64>() / kk;
        let rec = |t: Option<usize>| {
            let sel: Vec<&Pair> = pairs
                .iter()
                .filter(|p| {
                    !p.train
                        && p.copy_quality >= params.q_min()
                        && t.is_none_or(|t| p.transform == t)
                })
                .collect();
            let tot = pairs
                .iter()
                .filter(|p| !p.train && t.is_none_or(|t| p.transform == t))
                .count()
                .max(1);
            sel.iter().filter(|p| opens_at(p, pos, 12, f)).count() as f64 / tot as f64
        };
        let keys: Vec<(u64, &str)> = entries
            .iter()
            .map(|e| (key_at(&e.pdq, pos), e.package.as_str()))
            .collect();
        let counts: Vec<[u64; 3]> = keys
            .par_iter()
            .enumerate()
            .map(|(i, (ki, pi))| {
                let mut c = [0u64; 3];
                for (kj, pj) in &keys[i + 1..] {
                    if pi != pj {
                        let d = (ki ^ kj).count_ones();
                        if d <= f as u32 && d <= 2 {
                            c[d as usize] += 1;
                        }
                    }
                }
                c
            })
            .collect();
        let mut c = [0u64; 3];
        for x in counts {
            for (acc, v) in c.iter_mut().zip(x) {
                *acc += v;
            }
        }
        let mut cross = 0f64;
        let mut per_pkg: BTreeMap<&str, f64> = BTreeMap::new();
        for e in &entries {
            *per_pkg.entry(e.package.as_str()).or_default() += 1.0;
        }
        let total: f64 = per_pkg.values().sum();
        for v in per_pkg.values() {
            cross += v * (total - v);
        }
        cross /= 2.0;
        println!(
            "| {name} | {mean:.4} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.2e} | {:.2e} | {:.2e} |",
            rec(Some(4)), rec(Some(5)), rec(Some(6)), rec(Some(7)), rec(None),
            c[0] as f64 / cross, (c[0] + c[1]) as f64 / cross, (c[0] + c[1] + c[2]) as f64 / cross
        );
        let mut sorted = pos.clone();
        sorted.sort();
        println!(
            "  positions: {:?}",
            sorted.iter().map(|b| (b / 16, b % 16)).collect::<Vec<_>>()
        );
    }
    Ok(())
}

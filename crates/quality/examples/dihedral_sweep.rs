//! Which dihedral variants, and how many flips per variant, reach the recall goal on mirrored
//! and rotated copies, at what probe count P (issue 17 item 4), and what keeping related keys
//! costs and gains (item 7).
//!
//! For every configuration the recall is computed on the ideal functionality (some probe key of
//! the copy is a kept listed key), which the real opener equals on every upload (checked by
//! `hashguard-quality measure` and its `ideal_mismatches`), so many configurations are cheap.
//! With `--opener` it then runs the real client and opener (`measure::run`) on the same sample
//! and seed at the old parameters (m = 1, no dihedral probes) and at `Params::v1(intervene)`.
//!
//! ```sh
//! cargo run --release -p hashguard-quality --example dihedral_sweep -- \
//!     --corpus ~/.cache/hashguard-corpus/extract --limit 1000 [--min-long 512] [--opener]
//! cargo run --release -p hashguard-quality --example dihedral_sweep -- --generated 200
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use hashguard_pdq::{PdqFloats, PdqHasher, RgbImage as PdqRgb};
use hashguard_protocol::params::{ParamsSpec, DIHEDRAL_ALL, DIHEDRAL_NAMES};
use hashguard_protocol::prelude::*;
use hashguard_quality::measure::{floats, run, Original};
use hashguard_quality::transforms::{decode, Transform};
use hashguard_quality::{corpus, generated};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rayon::prelude::*;

struct Args {
    corpus: Option<PathBuf>,
    manifest: PathBuf,
    generated: Option<u64>,
    limit: Option<usize>,
    seed: u64,
    min_long: u32,
    packages: Vec<String>,
    opener: bool,
    pixel: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: None,
        manifest: PathBuf::from("bench/quality/corpus.csv"),
        generated: None,
        limit: None,
        seed: 17,
        min_long: 0,
        packages: Vec::new(),
        opener: false,
        pixel: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => a.corpus = Some(PathBuf::from(val()?)),
            "--manifest" => a.manifest = PathBuf::from(val()?),
            "--generated" => a.generated = Some(val()?.parse()?),
            "--limit" => a.limit = Some(val()?.parse()?),
            "--seed" => a.seed = val()?.parse()?,
            "--min-long" => a.min_long = val()?.parse()?,
            "--packages" => a.packages = val()?.split(',').map(str::to_owned).collect(),
            "--opener" => a.opener = true,
            "--pixel" => a.pixel = true,
            other => return Err(anyhow!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// The same seeded sample as `hashguard-quality measure --limit`.
fn originals(a: &Args) -> Result<Vec<Original>> {
    let mut out = Vec::new();
    if let Some(n) = a.generated {
        for s in 0..n {
            out.push(Original {
                name: format!("generated/{s}"),
                load: Box::new(move || Ok(generated::generated(s, 1024, 768))),
            });
        }
        return Ok(out);
    }
    let dir = Arc::new(a.corpus.clone().context("--corpus DIR or --generated N")?);
    let mut entries = corpus::read_manifest(&a.manifest)?;
    entries.retain(|e| {
        e.width.max(e.height) >= a.min_long
            && (a.packages.is_empty() || a.packages.contains(&e.package))
    });
    if let Some(l) = a.limit {
        let seed = a.seed;
        entries.sort_by_key(|e| {
            let mut h: u64 = seed ^ 0xcbf2_9ce4_8422_2325;
            for b in e.package.bytes().chain(e.path.bytes()) {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
            h
        });
        entries.truncate(l);
    }
    for e in entries {
        let dir = Arc::clone(&dir);
        let name = format!("{}/{}", e.package, e.path);
        out.push(Original {
            name: name.clone(),
            load: Box::new(move || {
                let bytes =
                    std::fs::read(dir.join(&name)).with_context(|| format!("reading {name}"))?;
                decode(&bytes)
            }),
        });
    }
    Ok(out)
}

/// The old deployed parameters: v1 with strict separation and no dihedral probes.
fn old_v1() -> Result<Params> {
    Params::new(ParamsSpec {
        max_opens: 1,
        dihedral: 0,
        dihedral_f: 0,
        ..Params::v1(Policy::Intervene).to_spec()
    })
    .map_err(|e| anyhow!("{e}"))
}

fn config(m_per_orientation: u8, dihedral: u8, dihedral_f: u8) -> Result<Params> {
    let orientations = 1 + dihedral.count_ones() as u8;
    Params::new(ParamsSpec {
        max_opens: m_per_orientation * orientations,
        dihedral,
        dihedral_f,
        ..Params::v1(Policy::Intervene).to_spec()
    })
    .map_err(|e| anyhow!("{e}"))
}

fn mask_name(mask: u8) -> String {
    if mask == 0 {
        return "none".into();
    }
    if mask == DIHEDRAL_ALL {
        return "all 7".into();
    }
    (0..7)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| DIHEDRAL_NAMES[b])
        .collect::<Vec<_>>()
        .join("+")
}

/// A copy's floats and, with `--pixel`, the floats of its pixel-domain dihedral variants.
struct Hashed {
    floats: PdqFloats,
    pixel: Option<[PdqFloats; 7]>,
}

fn hashed(img: &image::RgbImage, pixel: bool) -> Result<Hashed> {
    let floats = floats(img)?;
    let pixel = if pixel {
        let (w, h) = img.dimensions();
        let rgb = PdqRgb::new(img.as_raw(), w as usize, h as usize)
            .map_err(|e| anyhow!("image {w}x{h}: {e}"))?;
        Some(PdqHasher::new().dihedral_pixel_floats_rgb(&rgb))
    } else {
        None
    };
    Ok(Hashed { floats, pixel })
}

fn main() -> Result<()> {
    let a = args()?;
    let originals = originals(&a)?;
    let mut r = ChaCha20Rng::seed_from_u64(a.seed ^ 0xd1d1);
    let mut order: Vec<usize> = (0..originals.len()).collect();
    for i in (1..order.len()).rev() {
        let j = (r.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let transforms = [
        Transform::Identity,
        Transform::Jpeg(75),
        Transform::Messenger(512),
        Transform::Mirror,
        Transform::Rot90,
        Transform::Rot180,
        Transform::Rot270,
        Transform::MirrorMessenger512,
    ];
    let half = originals.len() / 2;
    let started = std::time::Instant::now();
    // (original floats, copies' floats) of listed originals; floats of the others.
    let listed: Vec<(PdqFloats, Vec<Hashed>)> = order[..half]
        .par_iter()
        .filter_map(|&i| {
            let img = (originals[i].load)().ok()?;
            let f = floats(&img).ok()?;
            let copies = transforms
                .iter()
                .enumerate()
                .map(|(t_i, t)| {
                    let c = t.apply(&img, a.seed ^ ((i as u64) << 8) ^ t_i as u64)?;
                    hashed(&c, a.pixel)
                })
                .collect::<Result<Vec<_>>>()
                .ok()?;
            Some((f, copies))
        })
        .collect();
    let others: Vec<Hashed> = order[half..]
        .par_iter()
        .filter_map(|&i| hashed(&(originals[i].load)().ok()?, a.pixel).ok())
        .collect();
    if a.pixel {
        // How far each pixel-domain variant of an original is from its DCT-domain variant.
        let mut sums = [0u64; 7];
        for o in &others {
            if let Some(p) = &o.pixel {
                for (k, (pv, dv)) in p
                    .iter()
                    .zip(o.floats.dihedral_variants().iter())
                    .enumerate()
                {
                    sums[k] += u64::from(pv.hash().distance(&dv.hash()));
                }
            }
        }
        eprintln!(
            "mean PDQ distance pixel-domain vs DCT-domain variant ({}): {:?}",
            DIHEDRAL_NAMES.join(", "),
            sums.map(|s| s as f64 / others.len().max(1) as f64)
        );
    }
    eprintln!(
        "{} listed, {} others hashed with {} transforms in {:.0} s",
        listed.len(),
        others.len(),
        transforms.len(),
        started.elapsed().as_secs_f64()
    );
    let hashes: Vec<Hash256> = listed.iter().map(|(f, _)| f.hash()).collect();
    let q_min = Params::v1(Policy::Intervene).q_min();

    const MIRROR: u8 = 1 << 4;
    const ROT90: u8 = 1;
    const ROT180: u8 = 1 << 1;
    const ROT270: u8 = 1 << 2;
    let mut configs: Vec<(String, Params)> = vec![("old v1 (m = 1)".into(), old_v1()?)];
    for (mask, fs) in [
        (0u8, &[0u8][..]),
        (MIRROR, &[0, 1, 2][..]),
        (MIRROR | ROT90, &[1, 2][..]),
        (MIRROR | ROT270, &[1, 2][..]),
        (MIRROR | ROT90 | ROT270, &[0, 1, 2][..]),
        (MIRROR | ROT90 | ROT180 | ROT270, &[0, 1][..]),
        (DIHEDRAL_ALL, &[0, 1, 2][..]),
    ] {
        for &df in fs {
            configs.push((
                format!("{} f_d={df}", mask_name(mask)),
                config(2, mask, df)?,
            ));
        }
    }
    configs.push(("v1 (this build)".into(), Params::v1(Policy::Intervene)));
    print!("| dihedral variants | P | m | pruned (rel/unrel) | kept close |");
    for t in &transforms {
        print!(" {} |", t.name());
    }
    println!(" false opens | max opens |");
    print!("|---|---|---|---|---|");
    for _ in &transforms {
        print!("---|");
    }
    println!("---|---|");
    let modes: &[bool] = if a.pixel { &[false, true] } else { &[false] };
    for ((name, params), &pixel) in configs
        .iter()
        .flat_map(|c| modes.iter().map(move |m| (c, m)))
    {
        if pixel && params.dihedral() == 0 {
            continue;
        }
        let name = if pixel {
            format!("{name} (pixel)")
        } else {
            name.clone()
        };
        let sep = separate_related(&hashes, params);
        let count = |h: &Hashed| -> usize {
            let f = &h.floats;
            if f.quality < q_min {
                return 0;
            }
            let dihedral = match (&h.pixel, pixel) {
                (Some(p), true) => DihedralInput::from_variant_floats(p),
                _ => DihedralInput::from_floats(f),
            };
            let keys = all_probe_keys(&PdqInput::from_floats(f), Some(&dihedral), params);
            keys.iter()
                .filter(|k| sep.kept.binary_search(k).is_ok())
                .count()
        };
        let per: Vec<(usize, usize)> = (0..transforms.len())
            .map(|t| {
                let opens: Vec<usize> = listed.par_iter().map(|(_, c)| count(&c[t])).collect();
                (
                    opens.iter().filter(|&&n| n > 0).count(),
                    opens.into_iter().max().unwrap_or(0),
                )
            })
            .collect();
        let false_opens: Vec<usize> = others.par_iter().map(count).collect();
        let max_open = per
            .iter()
            .map(|p| p.1)
            .chain(false_opens.iter().copied())
            .max()
            .unwrap_or(0);
        print!(
            "| {name} | {} | {} | {} ({}/{}) | {} |",
            params.probes(),
            params.max_opens(),
            sep.removed(),
            sep.pruned_related.len(),
            sep.pruned_unrelated.len(),
            sep.kept_close
        );
        for (opened, _) in &per {
            print!(" {:.3} |", *opened as f64 / listed.len().max(1) as f64);
        }
        println!(
            " {}/{} | {max_open} |",
            false_opens.iter().filter(|&&n| n > 0).count(),
            others.len()
        );
    }
    println!(
        "\n{} listed originals, {} non-listed; seed {}.",
        listed.len(),
        others.len(),
        a.seed
    );
    for (name, params) in &configs[..1] {
        let sep = separate_related(&hashes, params);
        println!(
            "{name}: pruned keys by PDQ distance to the close kept entry (0-15, 16-31, 32-63, 64-95, 96-127, 128+): {:?}",
            sep.pruned_histogram
        );
    }
    if a.opener {
        let suite = Transform::suite();
        for params in [old_v1()?, Params::v1(Policy::Intervene)] {
            let t0 = std::time::Instant::now();
            let report = run(&originals, &suite, &params, a.seed, None)?;
            println!("{}", report.markdown());
            eprintln!("measured in {:.0} s", t0.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

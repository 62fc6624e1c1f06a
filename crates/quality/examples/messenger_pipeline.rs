//! Is the messenger gap to calibration.md the corpus or the transform? (issue 17, "Which of the
//! two explains the messenger gap to the simulation ... is not yet known".)
//!
//! calibration.md's simulation resized with Pillow (whose `resize` defaults to bicubic) and saved
//! JPEG q80 with Pillow's libjpeg-turbo defaults (IJG tables, 4:2:0 chroma); the suite's
//! `messenger-N` resizes bilinearly and encodes with the `image` crate (4:4:4) at a seeded
//! q75-85. This runs the same originals through several pipelines at the same long sides and
//! reports, per pipeline, the PDQ distance of the copy to its original (median, p90, p99,
//! share <= 31: calibration.md's table) and the share of copies whose own probe keys hold their
//! original's key (the ideal functionality of the deployed parameters, which the real opener
//! equalled on every upload `measure` made; separation pruning is a property of a list and is
//! left out, so every original counts as listed).
//!
//! ```sh
//! cargo run --release -p hashguard-quality --example messenger_pipeline -- \
//!     --corpus ~/.cache/hashguard-corpus/extract --packages <list> --limit 600
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hashguard_protocol::prelude::*;
use hashguard_quality::{corpus, measure, transforms};
use image::imageops::FilterType;
use image::RgbImage;
use rayon::prelude::*;
use transforms::Transform;

struct Args {
    corpus: PathBuf,
    manifest: PathBuf,
    packages: Vec<String>,
    limit: usize,
    min_long: u32,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: PathBuf::new(),
        manifest: PathBuf::from("bench/quality/corpus.csv"),
        packages: Vec::new(),
        limit: 600,
        min_long: 512,
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
            _ => anyhow::bail!("unknown flag {k}"),
        }
    }
    Ok(a)
}

/// How a copy is made from an original at one long side.
#[derive(Clone, Copy)]
enum Pipeline {
    /// The suite's `messenger-N` exactly (bilinear, `image` JPEG 4:4:4, seeded q75-85).
    Suite,
    /// A resize filter, then JPEG q80 by libjpeg-turbo's defaults (what Pillow writes).
    Turbo(FilterType),
    /// A resize filter, then the `image` crate's JPEG encoder (4:4:4) at q80.
    ImageCrate(FilterType),
}

impl Pipeline {
    fn name(self) -> String {
        let f = |f: FilterType| match f {
            FilterType::Triangle => "bilinear",
            FilterType::CatmullRom => "bicubic",
            FilterType::Lanczos3 => "lanczos3",
            FilterType::Nearest => "nearest",
            FilterType::Gaussian => "gaussian",
        };
        match self {
            Pipeline::Suite => "suite messenger-N (bilinear, image-rs JPEG 4:4:4 q75-85)".into(),
            Pipeline::Turbo(x) => format!("{}, libjpeg-turbo q80 4:2:0", f(x)),
            Pipeline::ImageCrate(x) => format!("{}, image-rs JPEG 4:4:4 q80", f(x)),
        }
    }

    fn apply(self, img: &RgbImage, long: u32, seed: u64) -> Result<RgbImage> {
        let resized = |filter| transforms::resize_long_side_with(img, long, filter);
        match self {
            Pipeline::Suite => Transform::Messenger(long).apply(img, seed),
            Pipeline::Turbo(f) => turbo_roundtrip(&resized(f), 80),
            Pipeline::ImageCrate(f) => transforms::jpeg_roundtrip(&resized(f), 80),
        }
    }
}

/// JPEG at `quality` with libjpeg-turbo's default settings (mozjpeg's "fastest" profile gives
/// files identical to libjpeg-turbo's: IJG tables, 4:2:0, no trellis), decoded by crates/media.
fn turbo_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    let bytes = std::panic::catch_unwind(|| -> std::io::Result<Vec<u8>> {
        let mut c = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(w as usize, h as usize);
        c.set_quality(f32::from(quality));
        let mut s = c.start_compress(Vec::new())?;
        s.write_scanlines(img.as_raw())?;
        s.finish()
    })
    .map_err(|_| anyhow::anyhow!("libjpeg-turbo encode of {w}x{h} panicked"))??;
    transforms::decode(&bytes)
}

/// One copy's outcome.
struct Outcome {
    pipeline: usize,
    side: usize,
    /// PDQ distance to the original.
    distance: u32,
    /// Some own-orientation probe key equals the original's key (quality >= q_min).
    opened: bool,
    /// Quality >= q_min.
    quality_ok: bool,
}

fn main() -> Result<()> {
    let a = args()?;
    let params = Params::v1(Policy::Intervene);
    // The keyloss example's sample, so samples of one --limit coincide.
    let entries = corpus::hashed_order_sample(
        corpus::read_manifest(&a.manifest)?,
        a.min_long,
        &a.packages,
        a.limit,
    );
    let pipelines = [
        Pipeline::Suite,
        Pipeline::ImageCrate(FilterType::Triangle),
        Pipeline::Turbo(FilterType::Triangle),
        Pipeline::Turbo(FilterType::CatmullRom),
        Pipeline::Turbo(FilterType::Lanczos3),
    ];
    let sides = [1600u32, 1280, 1024, 800, 512];
    let start = std::time::Instant::now();
    let rows: Vec<Vec<Outcome>> = entries
        .par_iter()
        .enumerate()
        .filter_map(|(n, e)| {
            let bytes = std::fs::read(a.corpus.join(&e.package).join(&e.path)).ok()?;
            let img: RgbImage = transforms::decode(&bytes).ok()?;
            let of = measure::floats(&img).ok()?;
            if of.quality < params.q_min() {
                return None;
            }
            let key = pdq_key(&of.hash(), &params);
            let mut out = Vec::new();
            for (p, pipe) in pipelines.iter().enumerate() {
                for (s, &long) in sides.iter().enumerate() {
                    let Ok(copy) = pipe.apply(&img, long, n as u64 * 31 + s as u64) else {
                        continue;
                    };
                    let Ok(cf) = measure::floats(&copy) else {
                        continue;
                    };
                    let ok_q = cf.quality >= params.q_min();
                    let probes = all_probe_keys(&PdqInput::from_floats(&cf), None, &params);
                    let opened = ok_q && probes.contains(&key);
                    out.push(Outcome {
                        pipeline: p,
                        side: s,
                        distance: of.hash().distance(&cf.hash()),
                        opened,
                        quality_ok: ok_q,
                    });
                }
            }
            Some(out)
        })
        .collect();
    let originals = rows.len();
    let mut by: BTreeMap<(usize, usize), Vec<Outcome>> = BTreeMap::new();
    for o in rows.into_iter().flatten() {
        by.entry((o.pipeline, o.side)).or_default().push(o);
    }
    println!(
        "{originals} originals (long side >= {}), {:.0} s\n",
        a.min_long,
        start.elapsed().as_secs_f64()
    );
    println!("| pipeline | sides | copies | PDQ median | p90 | p99 | share <= 31 | key recall (ideal, own orientation) | per side 1600/1280/1024/800/512 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (p, pipe) in pipelines.iter().enumerate() {
        for (label, which) in [("1600..512", &sides[..]), ("512", &sides[4..])] {
            let mut d: Vec<u32> = Vec::new();
            let mut opened = 0usize;
            let mut plain = 0usize;
            for (s, long) in sides.iter().enumerate() {
                if !which.contains(long) {
                    continue;
                }
                for o in by.get(&(p, s)).map(Vec::as_slice).unwrap_or(&[]) {
                    d.push(o.distance);
                    opened += usize::from(o.opened);
                    plain += usize::from(o.quality_ok && o.distance <= 31);
                }
            }
            d.sort_unstable();
            let n = d.len().max(1);
            let pct = |q: f64| d.get(((n as f64 - 1.0) * q).round() as usize).copied();
            let per_side: Vec<String> = sides
                .iter()
                .enumerate()
                .map(|(s, _)| {
                    let v = by.get(&(p, s)).map(Vec::as_slice).unwrap_or(&[]);
                    let o = v.iter().filter(|x| x.opened).count();
                    format!("{:.3}", o as f64 / v.len().max(1) as f64)
                })
                .collect();
            println!(
                "| {} | {label} | {} | {} | {} | {} | {:.3} | {:.3} ({opened}) | {} |",
                pipe.name(),
                d.len(),
                pct(0.5).unwrap_or(0),
                pct(0.9).unwrap_or(0),
                pct(0.99).unwrap_or(0),
                plain as f64 / n as f64,
                opened as f64 / n as f64,
                if label == "512" {
                    String::new()
                } else {
                    per_side.join(" / ")
                }
            );
        }
    }
    Ok(())
}

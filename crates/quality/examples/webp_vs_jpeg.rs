//! Lossy WebP against JPEG copies of the same originals (issue 17 item 2): how far each copy's
//! PDQ hash and 48-bit key move from the original's, and how large the re-encoded files are.
//! The copies are exactly those `hashguard-quality measure` uploads for the same sample and
//! seed (same sample order, same per-copy seeds), for every original of the sample, listed or
//! not. An analysis tool beside `measure`, which gives the recall through the real opener.
//! It also decodes every lossy WebP re-encode with libwebp itself (what Pillow, and so the PDQ
//! reference pipeline, uses) and counts files whose pixels differ from the client's decoder's.
//!
//! ```sh
//! cargo run --release -p hashguard-quality --example webp_vs_jpeg -- \
//!     --corpus ~/.cache/hashguard-corpus/extract --limit 600 --min-long 512 --packages <list>
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use hashguard_protocol::prelude::*;
use hashguard_quality::corpus;
use hashguard_quality::measure::floats;
use hashguard_quality::transforms::{self, Transform};
use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;

/// Pairs compared: (JPEG-side transform, WebP-side transform).
const PAIRS: [(Transform, Transform); 3] = [
    (Transform::Jpeg(75), Transform::WebP(75)),
    (Transform::Jpeg(40), Transform::WebP(50)),
    (Transform::Messenger(1024), Transform::MessengerWebP(1024)),
];

struct Args {
    corpus: PathBuf,
    manifest: PathBuf,
    packages: Vec<String>,
    limit: usize,
    min_long: u32,
    seed: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: PathBuf::new(),
        manifest: PathBuf::from("bench/quality/corpus.csv"),
        packages: Vec::new(),
        limit: 600,
        min_long: 0,
        seed: 17,
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
            "--seed" => a.seed = v.parse()?,
            _ => anyhow::bail!("unknown flag {k}"),
        }
    }
    Ok(a)
}

/// One copy: PDQ distance and key distance to the original, encoded bytes (re-encodes only:
/// the messenger copies' sizes depend on the resize, not just the codec).
#[derive(Clone, Copy)]
struct Copy {
    pdq: u32,
    key: u32,
    bytes: Option<usize>,
    /// For a WebP re-encode: whether libwebp's own decode differs from the client's.
    decoders_differ: bool,
}

/// The file a re-encode transform uploads (`None` for the others), and for WebP whether
/// libwebp decodes it to other pixels than crates/media does.
fn encoded(t: Transform, img: &image::RgbImage) -> Result<(Option<usize>, bool)> {
    Ok(match t {
        Transform::Jpeg(q) => {
            let mut buf = Vec::new();
            JpegEncoder::new_with_quality(&mut buf, q).encode_image(img)?;
            (Some(buf.len()), false)
        }
        Transform::WebP(q) => {
            let file = transforms::webp_encode(img, q)?;
            let ours = transforms::decode(&file)?;
            let theirs = webp::Decoder::new(&file)
                .decode()
                .context("libwebp cannot decode its own file")?;
            let theirs: &[u8] = &theirs;
            (Some(file.len()), ours.as_raw().as_slice() != theirs)
        }
        _ => (None, false),
    })
}

fn main() -> Result<()> {
    let a = args()?;
    let mut entries = corpus::read_manifest(&a.manifest)?;
    entries.retain(|e| {
        e.width.max(e.height) >= a.min_long
            && (a.packages.is_empty() || a.packages.contains(&e.package))
    });
    // The sample `measure --limit` takes: a keyed hash of the name, the first `limit`.
    entries.sort_by_key(|e| {
        let mut h: u64 = a.seed ^ 0xcbf2_9ce4_8422_2325;
        for b in e.package.bytes().chain(e.path.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h
    });
    entries.truncate(a.limit);
    let suite = Transform::suite();
    let ts: Vec<(usize, Transform)> = PAIRS
        .iter()
        .flat_map(|&(j, w)| [j, w])
        .map(|t| {
            let i = suite
                .iter()
                .position(|s| *s == t)
                .context("transform not in the suite")?;
            Ok((i, t))
        })
        .collect::<Result<_>>()?;
    let params = Params::v1(Policy::Intervene);
    let rows: Vec<Result<Vec<Copy>>> = entries
        .par_iter()
        .enumerate()
        .map(|(i, e)| {
            let name = format!("{}/{}", e.package, e.path);
            let bytes = std::fs::read(a.corpus.join(&name)).with_context(|| name.clone())?;
            let img = transforms::decode(&bytes).with_context(|| name.clone())?;
            let h0 = floats(&img)?.hash();
            let k0 = pdq_key(&h0, &params);
            ts.iter()
                .map(|&(s, t)| {
                    // The per-copy seed of `measure::run_indexed`.
                    let copy = t.apply(&img, a.seed ^ ((i as u64) << 8) ^ s as u64)?;
                    let h = floats(&copy)?.hash();
                    let (bytes, decoders_differ) = encoded(t, &img)?;
                    Ok(Copy {
                        pdq: h.distance(&h0),
                        key: (pdq_key(&h, &params) ^ k0).count_ones(),
                        bytes,
                        decoders_differ,
                    })
                })
                .collect()
        })
        .collect();
    let failed = rows.iter().filter(|r| r.is_err()).count();
    let rows: Vec<Vec<Copy>> = rows.into_iter().filter_map(Result::ok).collect();
    println!(
        "{} originals ({failed} could not be loaded or transformed)\n",
        rows.len()
    );
    println!("| transform | mean PDQ distance | PDQ > 8 | key > 2 bits (cannot open) | key unchanged | bytes (re-encodes) |");
    println!("|---|---|---|---|---|---|");
    for (c, (_, t)) in ts.iter().enumerate() {
        let n = rows.len().max(1) as f64;
        let mean = rows.iter().map(|r| f64::from(r[c].pdq)).sum::<f64>() / n;
        let bytes: Option<usize> = rows.iter().map(|r| r[c].bytes).sum();
        println!(
            "| {} | {mean:.2} | {} | {} | {} | {} |",
            t.name(),
            rows.iter().filter(|r| r[c].pdq > 8).count(),
            rows.iter().filter(|r| r[c].key > 2).count(),
            rows.iter().filter(|r| r[c].key == 0).count(),
            bytes.map_or("-".into(), |b| b.to_string()),
        );
    }
    println!();
    println!(
        "WebP re-encodes that libwebp decodes to other pixels than crates/media: {} of {}",
        rows.iter().flatten().filter(|c| c.decoders_differ).count(),
        rows.len()
            * ts.iter()
                .filter(|(_, t)| matches!(t, Transform::WebP(_)))
                .count()
    );
    for p in 0..PAIRS.len() {
        let (j, w) = (2 * p, 2 * p + 1);
        println!(
            "{} vs {}: WebP copy farther in PDQ for {}, nearer for {}; key beyond 2 bits for WebP only {}, JPEG only {}",
            ts[w].1.name(),
            ts[j].1.name(),
            rows.iter().filter(|r| r[w].pdq > r[j].pdq).count(),
            rows.iter().filter(|r| r[w].pdq < r[j].pdq).count(),
            rows.iter().filter(|r| r[w].key > 2 && r[j].key <= 2).count(),
            rows.iter().filter(|r| r[j].key > 2 && r[w].key <= 2).count(),
        );
    }
    Ok(())
}

//! `hashguard hash`: PDQ hashes of image files, in the PDQ CLI's CSV convention or JSON lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hashguard_media::{DecodeOptions, DEFAULT_MAX_PIXELS};
use hashguard_pdq::{DihedralHashes, PdqHasher, RgbImage};
use rayon::prelude::*;

use crate::inputs::{expand, Input};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `hash,quality,path` per image (the PDQ CLI convention).
    Csv,
    /// One JSON object per line: `{"path","pdq","quality"}` (+ `"dihedral"`).
    Json,
}

/// Arguments of `hashguard hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Image files, directories (walked recursively) or `-` for standard input.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Also output the 7 dihedral variants (rotations and mirrors), JSON only.
    #[arg(long, requires = "format")]
    dihedral: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Apply the EXIF orientation before hashing (the reference does not).
    #[arg(long)]
    exif_orient: bool,
    /// Refuse images with more pixels than this (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
}

/// One input's result.
struct Outcome {
    name: String,
    result: Result<Hashed, String>,
}

struct Hashed {
    hash: hashguard_pdq::PdqOutput,
    dihedral: Option<DihedralHashes>,
}

thread_local! {
    static HASHER: std::cell::RefCell<PdqHasher> = std::cell::RefCell::new(PdqHasher::new());
}

fn hash_one(input: &Input, options: &DecodeOptions, dihedral: bool) -> Result<Hashed, String> {
    let bytes = input.read()?;
    let image = hashguard_media::decode(&bytes, options).map_err(|e| e.to_string())?;
    let view = RgbImage::new(&image.rgb, image.width, image.height).map_err(|e| e.to_string())?;
    HASHER.with(|hasher| {
        let mut hasher = hasher.borrow_mut();
        let hash = hasher.hash_rgb(&view);
        let dihedral = dihedral.then(|| hasher.dihedral_rgb(&view));
        Ok(Hashed { hash, dihedral })
    })
}

fn format_line(format: Format, outcome: &Outcome, hashed: &Hashed) -> String {
    match format {
        Format::Csv => format!(
            "{},{},{}",
            hashed.hash.hash, hashed.hash.quality, outcome.name
        ),
        Format::Json => {
            let mut obj = serde_json::json!({
                "path": outcome.name,
                "pdq": hashed.hash.hash.to_string(),
                "quality": hashed.hash.quality,
            });
            if let Some(d) = &hashed.dihedral {
                let variants: serde_json::Map<String, serde_json::Value> = d
                    .named_variants()
                    .iter()
                    .map(|(name, h)| (name.to_string(), serde_json::Value::String(h.to_string())))
                    .collect();
                obj["dihedral"] = serde_json::Value::Object(variants);
            }
            obj.to_string()
        }
    }
}

/// Runs `hashguard hash`; exits 1 if any input failed.
pub fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    if args.dihedral && args.format != Format::Json {
        anyhow::bail!("--dihedral needs --format json (the CSV format has one hash per line)");
    }
    let inputs = expand(&args.paths);
    if inputs.iter().filter(|i| **i == Input::Stdin).count() > 1 {
        anyhow::bail!("`-` (standard input) can be given only once");
    }
    let options = DecodeOptions {
        max_pixels: args.max_pixels,
        apply_exif_orientation: args.exif_orient,
    };
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        pool = pool.num_threads(n);
    }
    let pool = pool.build().context("cannot start worker threads")?;

    let progress = if std::io::stderr().is_terminal() && inputs.len() >= 64 {
        let bar = indicatif::ProgressBar::new(inputs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} images, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failures = 0usize;
    // Chunks keep the output in input order while bounding what is held in memory.
    for chunk in inputs.chunks(256) {
        let outcomes: Vec<Outcome> = pool.install(|| {
            chunk
                .par_iter()
                .map(|input| {
                    let result = hash_one(input, &options, args.dihedral);
                    progress.inc(1);
                    Outcome {
                        name: input.display_name(),
                        result,
                    }
                })
                .collect()
        });
        for outcome in &outcomes {
            match &outcome.result {
                Ok(hashed) => {
                    writeln!(out, "{}", format_line(args.format, outcome, hashed))
                        .context("cannot write output")?;
                }
                Err(reason) => {
                    failures += 1;
                    out.flush().context("cannot write output")?;
                    progress.suspend(|| eprintln!("hashguard: {}: {reason}", outcome.name));
                }
            }
        }
    }
    out.flush().context("cannot write output")?;
    progress.finish_and_clear();
    if failures > 0 {
        eprintln!("hashguard: {failures} of {} inputs failed", inputs.len());
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

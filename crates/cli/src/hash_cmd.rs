//! `hashguard hash`: PDQ hashes of images and vPDQ hashes of videos, in the PDQ CLI's CSV
//! convention or JSON lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hashguard_media::{DecodeOptions, DEFAULT_MAX_PIXELS};
use hashguard_pdq::{DihedralHashes, PdqHasher, RgbImage};
use hashguard_vpdq::{hash_video_file, Feature, VideoOptions};
use rayon::prelude::*;

use crate::inputs::{expand, Input};

/// How many leading bytes are enough to tell a video container from an image.
const SNIFF_BYTES: usize = 512;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `hash,quality,path` per image (the PDQ CLI convention); per hashed video frame the vPDQ
    /// line `frame,quality,hash,timestamp` followed by `,path`.
    Csv,
    /// One JSON object per line: `{"path","pdq","quality"}` (+ `"dihedral"`) for an image,
    /// `{"path","vpdq":[{"frame","quality","pdq","timestamp"}...]}` for a video.
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
    /// Videos: seconds between hashed frames; 0 hashes every frame.
    #[arg(long, default_value_t = 1.0)]
    seconds_per_hash: f64,
    /// Videos: scale frames to NxN before hashing (the reference's `-s N`).
    #[arg(long, value_name = "N")]
    video_resize: Option<u32>,
    /// Videos: refuse frames with more pixels than this.
    #[arg(long, default_value_t = VideoOptions::default().max_frame_pixels)]
    max_frame_pixels: u64,
    /// Videos: refuse videos longer than this many seconds.
    #[arg(long, default_value_t = VideoOptions::default().max_duration_seconds)]
    max_duration: f64,
}

/// One input's result.
struct Outcome {
    name: String,
    result: Result<Hashed, String>,
}

enum Hashed {
    Image {
        hash: hashguard_pdq::PdqOutput,
        dihedral: Option<Box<DihedralHashes>>,
    },
    Video(Vec<Feature>),
}

/// What every worker needs to know.
struct Settings {
    decode: DecodeOptions,
    video: VideoOptions,
    dihedral: bool,
}

thread_local! {
    static HASHER: std::cell::RefCell<PdqHasher> = std::cell::RefCell::new(PdqHasher::new());
}

fn hash_one(input: &Input, settings: &Settings) -> Result<Hashed, String> {
    let bytes = match input {
        Input::File(path) => {
            // Videos stream from the file; only images are read whole.
            if hashguard_vpdq::is_video(&Input::read_head(path, SNIFF_BYTES)?) {
                return hash_video(path, settings);
            }
            input.read()?
        }
        _ => input.read()?,
    };
    if hashguard_vpdq::is_video(&bytes) {
        // libav reads files; standard input is spooled to a private temporary file.
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| format!("cannot create a temporary file: {e}"))?;
        std::io::Write::write_all(&mut file, &bytes)
            .map_err(|e| format!("cannot write a temporary file: {e}"))?;
        return hash_video(file.path(), settings);
    }
    hash_image(&bytes, settings)
}

fn hash_video(path: &std::path::Path, settings: &Settings) -> Result<Hashed, String> {
    hash_video_file(path, &settings.video)
        .map(Hashed::Video)
        .map_err(|e| e.to_string())
}

fn hash_image(bytes: &[u8], settings: &Settings) -> Result<Hashed, String> {
    let image = hashguard_media::decode(bytes, &settings.decode).map_err(|e| e.to_string())?;
    let view = RgbImage::new(&image.rgb, image.width, image.height).map_err(|e| e.to_string())?;
    HASHER.with(|hasher| {
        let mut hasher = hasher.borrow_mut();
        let hash = hasher.hash_rgb(&view);
        let dihedral = settings
            .dihedral
            .then(|| Box::new(hasher.dihedral_rgb(&view)));
        Ok(Hashed::Image { hash, dihedral })
    })
}

fn format_lines(format: Format, name: &str, hashed: &Hashed) -> String {
    match (format, hashed) {
        (Format::Csv, Hashed::Image { hash, .. }) => {
            format!("{},{},{name}\n", hash.hash, hash.quality)
        }
        (Format::Csv, Hashed::Video(features)) => {
            features.iter().map(|f| format!("{f},{name}\n")).collect()
        }
        (Format::Json, Hashed::Image { hash, dihedral }) => {
            let mut obj = serde_json::json!({
                "path": name,
                "pdq": hash.hash.to_string(),
                "quality": hash.quality,
            });
            if let Some(d) = dihedral {
                let variants: serde_json::Map<String, serde_json::Value> = d
                    .named_variants()
                    .iter()
                    .map(|(name, h)| (name.to_string(), serde_json::Value::String(h.to_string())))
                    .collect();
                obj["dihedral"] = serde_json::Value::Object(variants);
            }
            format!("{obj}\n")
        }
        (Format::Json, Hashed::Video(features)) => {
            let frames: Vec<serde_json::Value> = features
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "frame": f.frame,
                        "quality": f.quality,
                        "pdq": f.hash.to_string(),
                        "timestamp": format!("{:.3}", f.timestamp).parse::<f64>().unwrap_or(0.0),
                    })
                })
                .collect();
            format!("{}\n", serde_json::json!({ "path": name, "vpdq": frames }))
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
    let settings = Settings {
        decode: DecodeOptions {
            max_pixels: args.max_pixels,
            apply_exif_orientation: args.exif_orient,
        },
        video: VideoOptions {
            seconds_per_hash: args.seconds_per_hash,
            resize_to: args.video_resize,
            max_frame_pixels: args.max_frame_pixels,
            max_duration_seconds: args.max_duration,
        },
        dihedral: args.dihedral,
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
                    let result = hash_one(input, &settings);
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
                    out.write_all(format_lines(args.format, &outcome.name, hashed).as_bytes())
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

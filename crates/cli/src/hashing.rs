//! Turning one input into its hashes, shared by `hash` and `match`: PDQ (+ dihedral variants)
//! for images, vPDQ for videos, and on request the MD5 and SHA-256 of the bytes for exact banks.
//! Videos are recognised by content and streamed from their file; only images are read whole.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context;
use clap::Args;
use hashguard_media::{DecodeOptions, DEFAULT_MAX_PIXELS};
use hashguard_pdq::{DihedralHashes, PdqHasher, PdqOutput, RgbImage};
use hashguard_vpdq::{hash_video_file, Feature, VideoOptions};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::inputs::Input;

/// How many leading bytes are enough to tell a video container from an image.
const SNIFF_BYTES: usize = 512;

/// Decoding and video options common to every command that hashes media.
#[derive(Debug, Args)]
pub struct MediaArgs {
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

impl MediaArgs {
    /// The settings every worker uses.
    pub fn settings(&self, dihedral: bool, digests: bool) -> Settings {
        Settings {
            decode: DecodeOptions {
                max_pixels: self.max_pixels,
                apply_exif_orientation: self.exif_orient,
            },
            video: VideoOptions {
                seconds_per_hash: self.seconds_per_hash,
                resize_to: self.video_resize,
                max_frame_pixels: self.max_frame_pixels,
                max_duration_seconds: self.max_duration,
            },
            dihedral,
            digests,
        }
    }
}

/// What every worker needs to know.
pub struct Settings {
    decode: DecodeOptions,
    video: VideoOptions,
    dihedral: bool,
    digests: bool,
}

/// The MD5 and SHA-256 of an input's bytes, for exact-match banks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

impl Digests {
    fn of(bytes: &[u8]) -> Digests {
        Digests {
            md5: Md5::digest(bytes).into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// Streams a file through both digests without holding it in memory.
    fn of_file(path: &Path) -> Result<Digests, String> {
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
        let (mut md5, mut sha256) = (Md5::new(), Sha256::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("cannot read: {e}"))?;
            if n == 0 {
                break;
            }
            md5.update(&buf[..n]);
            sha256.update(&buf[..n]);
        }
        Ok(Digests {
            md5: md5.finalize().into(),
            sha256: sha256.finalize().into(),
        })
    }
}

/// An input's hashes.
pub enum Hashed {
    /// A still image.
    Image {
        /// PDQ hash and quality.
        hash: PdqOutput,
        /// The 8 dihedral hashes, when asked for.
        dihedral: Option<Box<DihedralHashes>>,
        /// MD5 and SHA-256 of the file, when asked for.
        digests: Option<Digests>,
    },
    /// A video: its vPDQ frame features.
    Video {
        /// One feature per hashed frame.
        features: Vec<Feature>,
        /// MD5 and SHA-256 of the file, when asked for.
        digests: Option<Digests>,
    },
}

thread_local! {
    static HASHER: std::cell::RefCell<PdqHasher> = std::cell::RefCell::new(PdqHasher::new());
}

/// Hashes one input; the error is a one-line reason for that input alone.
pub fn hash_input(input: &Input, settings: &Settings) -> Result<Hashed, String> {
    let bytes = match input {
        Input::File(path) => {
            // Videos stream from the file; only images are read whole.
            if hashguard_vpdq::is_video(&Input::read_head(path, SNIFF_BYTES)?) {
                let digests = settings
                    .digests
                    .then(|| Digests::of_file(path))
                    .transpose()?;
                return hash_video(path, settings, digests);
            }
            input.read()?
        }
        _ => input.read()?,
    };
    let digests = settings.digests.then(|| Digests::of(&bytes));
    if hashguard_vpdq::is_video(&bytes) {
        // libav reads files; standard input is spooled to a private temporary file.
        let mut file = tempfile::NamedTempFile::new()
            .map_err(|e| format!("cannot create a temporary file: {e}"))?;
        std::io::Write::write_all(&mut file, &bytes)
            .map_err(|e| format!("cannot write a temporary file: {e}"))?;
        return hash_video(file.path(), settings, digests);
    }
    hash_image(&bytes, settings, digests)
}

fn hash_video(
    path: &Path,
    settings: &Settings,
    digests: Option<Digests>,
) -> Result<Hashed, String> {
    hash_video_file(path, &settings.video)
        .map(|features| Hashed::Video { features, digests })
        .map_err(|e| e.to_string())
}

fn hash_image(
    bytes: &[u8],
    settings: &Settings,
    digests: Option<Digests>,
) -> Result<Hashed, String> {
    let image = hashguard_media::decode(bytes, &settings.decode).map_err(|e| e.to_string())?;
    let view = RgbImage::new(&image.rgb, image.width, image.height).map_err(|e| e.to_string())?;
    HASHER.with(|hasher| {
        let mut hasher = hasher.borrow_mut();
        let hash = hasher.hash_rgb(&view);
        let dihedral = settings
            .dihedral
            .then(|| Box::new(hasher.dihedral_rgb(&view)));
        Ok(Hashed::Image {
            hash,
            dihedral,
            digests,
        })
    })
}

/// Runs `work` on every input on `pool` and hands each success to `emit` in input order, 256
/// inputs at a time, so output keeps the order of the inputs while memory stays bounded. Each
/// worker thread keeps one `init()` value (a search scratch, say). A failed input is reported
/// on standard error as `hashguard: NAME: REASON`, after `out` is flushed so the two streams
/// stay in order. Returns how many inputs failed.
pub fn for_each_in_order<S, T: Send, W: Write>(
    pool: &rayon::ThreadPool,
    progress: &indicatif::ProgressBar,
    inputs: &[Input],
    out: &mut W,
    init: impl Fn() -> S + Sync + Send,
    work: impl Fn(&mut S, &Input) -> Result<T, String> + Sync + Send,
    mut emit: impl FnMut(&mut W, &str, T) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    use rayon::prelude::*;
    let mut failures = 0usize;
    for chunk in inputs.chunks(256) {
        let outcomes: Vec<(String, Result<T, String>)> = pool.install(|| {
            chunk
                .par_iter()
                .map_init(&init, |state, input| {
                    let result = work(state, input);
                    progress.inc(1);
                    (input.display_name(), result)
                })
                .collect()
        });
        for (name, result) in outcomes {
            match result {
                Ok(value) => emit(out, &name, value)?,
                Err(reason) => {
                    failures += 1;
                    out.flush().context("cannot write output")?;
                    progress.suspend(|| eprintln!("hashguard: {name}: {reason}"));
                }
            }
        }
    }
    Ok(failures)
}

/// The number of worker threads for a `--threads` option: the number given (at least 1), or
/// one per core.
pub fn thread_count(threads: Option<usize>) -> anyhow::Result<usize> {
    match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A thread pool of `threads` workers (default: rayon's, one per core unless
/// `RAYON_NUM_THREADS` says otherwise).
pub fn worker_pool(threads: Option<usize>) -> anyhow::Result<rayon::ThreadPool> {
    let mut pool = rayon::ThreadPoolBuilder::new();
    if threads.is_some() {
        pool = pool.num_threads(thread_count(threads)?);
    }
    pool.build().context("cannot start worker threads")
}

/// A progress bar on standard error for long runs on a terminal; hidden otherwise, so scripts
/// and tests see clean output.
pub fn progress_bar(len: usize) -> indicatif::ProgressBar {
    if std::io::stderr().is_terminal() && len >= 64 {
        let bar = indicatif::ProgressBar::new(len as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} inputs, {per_sec}, eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    }
}

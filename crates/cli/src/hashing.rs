//! Turning one input into its hashes, shared by `hash` and `match`: PDQ (+ dihedral variants)
//! for images, vPDQ for videos, and on request the MD5 and SHA-256 of the bytes for exact banks.
//! Videos are recognised by content and streamed from their file; only images are read whole,
//! and only after their first bytes say they are an image, up to `--max-file-bytes`.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context;
use clap::Args;
use hashguard_media::{DecodeOptions, DEFAULT_MAX_PIXELS};
use hashguard_pdq::{DihedralHashes, PdqHasher, PdqOutput, RgbImage};
use hashguard_vpdq::{hash_video_file, Feature, VideoOptions};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::inputs::{Input, Opened};

/// The default `--max-file-bytes`: far above any image within the default pixel limit (100
/// megapixels of uncompressed 32-bit BMP are 400 MB), far below what would exhaust memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// The most worker threads `--threads` accepts: more than any machine's cores gain nothing,
/// and each costs a stack and a decoder's buffers.
pub const MAX_THREADS: usize = 1024;

/// Decoding and video options common to every command that hashes media.
#[derive(Debug, Args)]
pub struct MediaArgs {
    /// Apply the EXIF orientation before hashing (the reference does not).
    #[arg(long)]
    exif_orient: bool,
    /// Refuse images with more pixels than this (decompression-bomb guard).
    #[arg(long, default_value_t = DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Refuse image files (and standard input or streams) larger than this many bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_FILE_BYTES, value_name = "BYTES")]
    max_file_bytes: u64,
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
            max_file_bytes: self.max_file_bytes,
            dihedral,
            digests,
        }
    }
}

/// What every worker needs to know.
pub struct Settings {
    decode: DecodeOptions,
    video: VideoOptions,
    max_file_bytes: u64,
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

/// Hashes one input; the error is a one-line reason for that input alone. The first bytes
/// decide what it is: a video is streamed from its file (standard input and other streams are
/// spooled to a private temporary file for libav), an image is read whole up to the size
/// limit, and anything else is refused without reading further.
pub fn hash_input(input: &Input, settings: &Settings) -> Result<Hashed, String> {
    let opened = input.open()?;
    let is_video = hashguard_vpdq::is_video(&opened.head);
    if !is_video && hashguard_media::sniff(&opened.head).is_none() {
        // The decoder's own words: "empty file" or "not a supported image (first bytes ...)".
        return Err(
            match hashguard_media::decode(&opened.head, &settings.decode) {
                Err(e) => format!("{e}; nor a supported video"),
                Ok(_) => "not a supported image or video".to_string(),
            },
        );
    }
    if is_video {
        if let Some((path, _)) = &opened.regular_file {
            let digests = settings
                .digests
                .then(|| Digests::of_file(path))
                .transpose()?;
            return hash_video(path, settings, digests);
        }
        return hash_video_stream(opened, settings);
    }
    let bytes = opened.read_all(settings.max_file_bytes)?;
    let digests = settings.digests.then(|| Digests::of(&bytes));
    hash_image(&bytes, settings, digests)
}

/// A video from a stream (standard input, a FIFO): libav reads files, so it is spooled to a
/// private temporary file first, up to the size limit.
fn hash_video_stream(opened: Opened, settings: &Settings) -> Result<Hashed, String> {
    let bytes = opened.read_all(settings.max_file_bytes)?;
    let digests = settings.digests.then(|| Digests::of(&bytes));
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    file.write_all(&bytes)
        .map_err(|e| format!("cannot write a temporary file: {e}"))?;
    hash_video(file.path(), settings, digests)
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
    mut emit: impl FnMut(&mut W, &Input, T) -> anyhow::Result<()>,
) -> anyhow::Result<usize> {
    use rayon::prelude::*;
    let mut failures = 0usize;
    for chunk in inputs.chunks(256) {
        let outcomes: Vec<Result<T, String>> = pool.install(|| {
            chunk
                .par_iter()
                .map_init(&init, |state, input| {
                    let result = work(state, input);
                    progress.inc(1);
                    result
                })
                .collect()
        });
        for (input, result) in chunk.iter().zip(outcomes) {
            match result {
                Ok(value) => emit(out, input, value)?,
                Err(reason) => {
                    failures += 1;
                    out.flush().context("cannot write output")?;
                    let name = input.display_name();
                    progress.suspend(|| eprintln!("hashguard: {name}: {reason}"));
                }
            }
        }
    }
    Ok(failures)
}

/// The number of worker threads for a `--threads` option: the number given (1 to
/// [`MAX_THREADS`]), or one per core.
pub fn thread_count(threads: Option<usize>) -> anyhow::Result<usize> {
    match threads {
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) if n > MAX_THREADS => anyhow::bail!(
            "--threads {n} is more than the maximum of {MAX_THREADS} (this machine has {} cores)",
            std::thread::available_parallelism().map_or(1, |c| c.get())
        ),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// A thread pool for `work` items: `threads` workers (see [`thread_count`]), but never more
/// than there are items, since an idle worker only costs.
pub fn worker_pool(threads: Option<usize>, work: usize) -> anyhow::Result<rayon::ThreadPool> {
    let threads = thread_count(threads)?.min(work.max(1));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("cannot start worker threads")
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

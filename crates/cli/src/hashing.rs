//! The media options and the parallel loop shared by `hash` and `match`: flags become
//! `hashguard_hashing::Options`, and every input is hashed on a worker pool with the results
//! handed back in input order. The hashing itself is the `hashguard-hashing` crate's.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::Args;
use hashguard_hashing::{Hashed, Hasher, Options, Source, DEFAULT_MAX_FILE_BYTES};
use hashguard_media::{DecodeOptions, DEFAULT_MAX_PIXELS};
use hashguard_vpdq::VideoOptions;

use crate::inputs::Input;

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
    /// The hashing options every worker uses.
    pub fn options(&self, dihedral: bool, digests: bool) -> Options {
        Options {
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
            floats: false,
            digests,
        }
    }
}

/// Hashes one input; the error is a one-line reason for that input alone.
pub fn hash_input(hasher: &mut Hasher, input: &Input) -> Result<Hashed, String> {
    let hashed = match input {
        Input::File(path) => hasher.hash_path(path),
        Input::Stdin => {
            Source::from_reader(std::io::stdin()).and_then(|source| hasher.hash_source(source))
        }
        Input::Refused(_, reason) => return Err(reason.clone()),
    };
    hashed.map_err(|e| e.to_string())
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

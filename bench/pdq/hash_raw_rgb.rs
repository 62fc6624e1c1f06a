//! Times the hashing stage (RGB in, hash out, one thread) on a raw RGB file; used by
//! `bench/pdq/pdq_vs_reference.py`, which times the C++ reference on the same pixels.
//!
//! Usage: hash_raw_rgb FILE WIDTH HEIGHT SECONDS
//! Prints: `hash,quality,images,seconds` (the hash of the last run, how many runs in how long).

use std::time::{Duration, Instant};

use hashguard_pdq::{PdqHasher, RgbImage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: hash_raw_rgb FILE WIDTH HEIGHT SECONDS".into());
    }
    let pixels = std::fs::read(&args[1])?;
    let width: usize = args[2].parse()?;
    let height: usize = args[3].parse()?;
    let budget = Duration::from_secs_f64(args[4].parse()?);
    let image = RgbImage::new(&pixels, width, height)?;
    let mut hasher = PdqHasher::new();
    let mut out = hasher.hash_rgb(&image); // warm-up: scratch buffers grow once
    let start = Instant::now();
    let mut runs = 0u64;
    while runs < 3 || start.elapsed() < budget {
        out = hasher.hash_rgb(std::hint::black_box(&image));
        runs += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{},{},{},{:.6}", out.hash, out.quality, runs, seconds);
    Ok(())
}

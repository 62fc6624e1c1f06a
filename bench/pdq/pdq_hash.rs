//! Criterion benchmark of the hashing stage (RGB in, hash out, one thread): this crate's
//! streaming filter against the literal transcription of the reference's whole-image filter
//! (`hashguard_pdq::naive`), both in Rust. The comparison with Meta's C++ reference itself, in
//! the same run on the same pixels, is `bench/pdq/pdq_vs_reference.py`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hashguard_pdq::{naive, PdqHasher, RgbImage};

fn photo_like(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let base = ((x as f32 / width as f32 * 7.0).sin()
                * (y as f32 / height as f32 * 5.0).cos()
                * 100.0) as i32;
            let noise = (state % 24) as i32 - 12;
            out.extend_from_slice(&[
                (128 + base + noise).clamp(0, 255) as u8,
                (100 + base * 4 / 5 + noise).clamp(0, 255) as u8,
                (120 - base * 9 / 10 + noise).clamp(0, 255) as u8,
            ]);
        }
    }
    out
}

fn hashing_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("pdq_hash_rgb");
    group.sample_size(10);
    for (width, height) in [(1600usize, 1000usize), (4000, 3000)] {
        let pixels = photo_like(width, height);
        let image = RgbImage::new(&pixels, width, height).expect("valid buffer");
        group.throughput(Throughput::Elements((width * height) as u64));
        let mut hasher = PdqHasher::new();
        let label = format!("{width}x{height}");
        group.bench_with_input(BenchmarkId::new("streaming", &label), &image, |b, image| {
            b.iter(|| hasher.hash_rgb(image))
        });
        group.bench_with_input(BenchmarkId::new("naive", &label), &pixels, |b, pixels| {
            b.iter(|| {
                let mut luma = naive::luma_from_rgb(pixels);
                naive::downscale(&mut luma, width, height)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, hashing_stage);
criterion_main!(benches);

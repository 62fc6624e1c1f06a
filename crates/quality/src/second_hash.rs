//! The second hash for the automatic check (issue 17, item 6; protocol.md R/E12 step 2): which
//! perceptual hash of the visual derivative (VD) the server should compare against the listed
//! entry that the full PDQ distance matched, measured.
//!
//! The server has only the VD: the client's greyscale thumbnail, at most 96 pixels on its long
//! side, JPEG q60 (crates/client `media::thumbnail`). A list's value is computed from the listed
//! original. So every candidate is measured as the server would use it: the listed side is the
//! candidate of the original's derivative (thumbnail and greyscale, no JPEG), the query side the
//! candidate of a transformed copy's VD (thumbnail, greyscale, JPEG q60, decoded).
//!
//! Candidates (each computed from the greyscale derivative):
//! - `phash`: imagehash's phash (32x32 Lanczos, 2-D DCT-II, the 8x8 low block against its median);
//! - `whash`: imagehash's whash, Haar, at image_scale 32 (the DC removed, the 8x8 LL band of two
//!   Haar levels against its median);
//! - `dhash`: imagehash's dhash (9x8 Lanczos, each pixel against its right neighbour);
//! - `dhash-hv`: dhash and imagehash's dhash_vertical (8x9, each pixel against the one below),
//!   128 bits (the hash shipped before the profiles were added);
//! - `dhash16`: imagehash's dhash at hash_size 16 (17x16), 256 bits;
//! - `eoh`: an edge-orientation histogram (64x64, Sobel, 8 unsigned orientations in 4x4 cells,
//!   magnitude-weighted; 128 bits, each bin against the median bin);
//! - `pdq-l2`: PDQ's float coefficients of the derivative, centred on their median and normalised,
//!   compared by L2 distance;
//! - `profiles`: the signs of the low frequencies of the derivative's column and row profiles,
//!   32 bits (`hashguard_hashing::SecondHash::profiles`): the part of the picture PDQ's band
//!   leaves out by construction;
//! - combinations of a gradient hash with the profiles, the distance being the gradient bits
//!   plus the profile bits (once, twice, three times) or the larger of the two (`max`);
//!   `dhash-hv+2profiles` is the winner, measured here as the hashing library ships it
//!   (`hashguard_hashing::SecondHash`, at its `SECOND_MATCH_THRESHOLD`);
//! - an experiment: the shipped distance plus once or twice the bits of [`profiles_hi`] (the
//!   profiles' frequencies 17..32).
//!
//! Measured for each: recall on the transform suite (among copies whose PDQ still matches the
//! original within 31, as the automatic check only runs then), false matches over random pairs,
//! and independence from PDQ: its match rate among the closest PDQ pairs of the corpus, among
//! pairs whose exact PDQ keys collide, and among crafted PDQ collisions ([`craft_collision`]).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use hashguard_pdq::{Hash256, LumaImage, PdqHasher, RgbImage as PdqRgb};
use hashguard_protocol::prelude::*;
use image::imageops::{self, FilterType};
use image::{GrayImage, ImageBuffer, Luma, RgbImage};
use rayon::prelude::*;
use serde::Serialize;

use crate::collisions::wilson;
use crate::corpus::Entry;
use crate::transforms::{self, Transform};

/// The VD's long side (crates/client `THUMBNAIL_SIDE`).
pub const VD_SIDE: u32 = 96;
/// The VD's JPEG quality (the first step of crates/client `media::thumbnail`).
pub const VD_QUALITY: u8 = 60;

/// The candidates, in report order.
pub const CANDIDATES: [&str; 15] = [
    "phash",
    "whash",
    "dhash",
    "eoh",
    "pdq-l2",
    "dhash-hv",
    "dhash16",
    "profiles",
    "dhash-hv+profiles",
    "dhash-hv+2profiles",
    "dhash-hv+3profiles",
    "max(dhash-hv,3profiles)",
    "dhash16+2profiles",
    "dhash-hv+2profiles+profiles-hi",
    "dhash-hv+2profiles+2profiles-hi",
];

/// The index in [`CANDIDATES`] of the hash the library ships.
pub const SHIPPED: usize = 9;

/// The greyscale derivative of an image as the client makes it, before JPEG: `image`'s
/// thumbnail to [`VD_SIDE`] on the long side (never up), then `image`'s luma (the hashing
/// library's [`hashguard_hashing::second::derivative`], which the list side uses).
pub fn derivative(img: &RgbImage) -> GrayImage {
    hashguard_hashing::second::derivative(img.as_raw(), img.width() as usize, img.height() as usize)
        .expect("an RgbImage's buffer covers its dimensions")
}

/// The VD the server decrypts: the derivative as a JPEG at [`VD_QUALITY`], decoded.
pub fn vd(img: &RgbImage) -> Result<GrayImage> {
    let grey = derivative(img);
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, VD_QUALITY)
        .encode_image(&grey)
        .context("VD JPEG encode")?;
    Ok(image::DynamicImage::ImageRgb8(transforms::decode(&buf)?).into_luma8())
}

/// The 64 bits of an 8x8 boolean grid, row-major, the first bit the most significant (the
/// order of imagehash's hex strings).
fn pack64(bits: impl Iterator<Item = bool>) -> u64 {
    bits.fold(0u64, |acc, b| (acc << 1) | u64::from(b))
}

/// numpy's median (the mean of the two middle values of an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// imagehash's phash of 32x32 greyscale pixels (row-major): unnormalised DCT-II along columns
/// then rows (scipy.fftpack), the 8x8 low block, bit = coefficient > its median.
pub fn phash_32(px: &[u8; 1024]) -> u64 {
    let n = 32usize;
    let cos: Vec<f64> = (0..8 * n)
        .map(|i| {
            let (k, x) = (i / n, i % n);
            (std::f64::consts::PI * k as f64 * (2 * x + 1) as f64 / (2 * n) as f64).cos()
        })
        .collect();
    // Along axis 0 (down the columns), only the 8 lowest frequencies are needed.
    let mut t = [[0.0f64; 32]; 8];
    for (k, row) in t.iter_mut().enumerate() {
        for (x, out) in row.iter_mut().enumerate() {
            *out = 2.0
                * (0..n)
                    .map(|y| f64::from(px[y * n + x]) * cos[k * n + y])
                    .sum::<f64>();
        }
    }
    let mut low = [0.0f64; 64];
    for k in 0..8 {
        for l in 0..8 {
            low[k * 8 + l] = 2.0 * (0..n).map(|x| t[k][x] * cos[l * n + x]).sum::<f64>();
        }
    }
    let med = median(&low);
    pack64(low.iter().map(|&c| c > med))
}

/// imagehash's whash (Haar, hash_size 8) of 32x32 greyscale pixels, image_scale 32: the
/// pixels / 255 with their top-level Haar LL (the mean) removed, then the LL band of two Haar
/// levels (each 4x4 block's sum / 4), bit = value > its median.
pub fn whash_32(px: &[u8; 1024]) -> u64 {
    let p: Vec<f64> = px.iter().map(|&v| f64::from(v) / 255.0).collect();
    let mean = p.iter().sum::<f64>() / 1024.0;
    let mut ll = [0.0f64; 64];
    for by in 0..8 {
        for bx in 0..8 {
            let mut s = 0.0;
            for y in 0..4 {
                for x in 0..4 {
                    s += p[(by * 4 + y) * 32 + bx * 4 + x] - mean;
                }
            }
            ll[by * 8 + bx] = s / 4.0;
        }
    }
    let med = median(&ll);
    pack64(ll.iter().map(|&c| c > med))
}

/// imagehash's dhash of 9x8 greyscale pixels (9 wide, row-major): bit = right neighbour
/// brighter.
pub fn dhash_9x8(px: &[u8; 72]) -> u64 {
    pack64((0..8).flat_map(|y| (0..8).map(move |x| px[y * 9 + x + 1] > px[y * 9 + x])))
}

/// imagehash's dhash_vertical of 8x9 greyscale pixels (8 wide, 9 rows): bit = the pixel
/// below brighter.
pub fn dhash_vertical_8x9(px: &[u8; 72]) -> u64 {
    pack64((0..8).flat_map(|y| (0..8).map(move |x| px[(y + 1) * 8 + x] > px[y * 8 + x])))
}

/// imagehash's dhash at hash_size 16 of 17x16 greyscale pixels: 256 bits in four words, the
/// first bit the most significant of the first word.
pub fn dhash16_17x16(px: &[u8; 272]) -> [u64; 4] {
    let bits: Vec<bool> = (0..16)
        .flat_map(|y| (0..16).map(move |x| px[y * 17 + x + 1] > px[y * 17 + x]))
        .collect();
    let mut out = [0u64; 4];
    for (w, chunk) in out.iter_mut().zip(bits.chunks(64)) {
        *w = pack64(chunk.iter().copied());
    }
    out
}

/// `grey` resized to `w` x `h` with `filter`, as a flat row-major buffer.
fn resized(grey: &GrayImage, w: u32, h: u32, filter: FilterType) -> Vec<u8> {
    imageops::resize(grey, w, h, filter).into_raw()
}

/// phash of a greyscale image (32x32 Lanczos3 resize first).
pub fn phash(grey: &GrayImage) -> u64 {
    let v = resized(grey, 32, 32, FilterType::Lanczos3);
    phash_32(v.as_slice().try_into().expect("32x32"))
}

/// whash of a greyscale image (32x32 Lanczos3 resize first).
pub fn whash(grey: &GrayImage) -> u64 {
    let v = resized(grey, 32, 32, FilterType::Lanczos3);
    whash_32(v.as_slice().try_into().expect("32x32"))
}

/// dhash of a greyscale image (9x8 Lanczos3 resize first).
pub fn dhash(grey: &GrayImage) -> u64 {
    let v = resized(grey, 9, 8, FilterType::Lanczos3);
    dhash_9x8(v.as_slice().try_into().expect("9x8"))
}

/// dhash_vertical of a greyscale image (8x9 Lanczos3 resize first).
pub fn dhash_vertical(grey: &GrayImage) -> u64 {
    let v = resized(grey, 8, 9, FilterType::Lanczos3);
    dhash_vertical_8x9(v.as_slice().try_into().expect("8x9"))
}

/// dhash at hash_size 16 of a greyscale image (17x16 Lanczos3 resize first).
pub fn dhash16(grey: &GrayImage) -> [u64; 4] {
    let v = resized(grey, 17, 16, FilterType::Lanczos3);
    dhash16_17x16(v.as_slice().try_into().expect("17x16"))
}

/// The edge-orientation histogram: 64x64 (Triangle), Sobel gradients, unsigned orientation in
/// 8 bins, magnitude-weighted, in a 4x4 grid of cells; bit = bin > the median of the 128 bins.
pub fn eoh(grey: &GrayImage) -> u128 {
    let p = resized(grey, 64, 64, FilterType::Triangle);
    let at = |x: usize, y: usize| f64::from(p[y * 64 + x]);
    let mut bins = [0.0f64; 128];
    for y in 1..63 {
        for x in 1..63 {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            let mag = (gx * gx + gy * gy).sqrt();
            if mag == 0.0 {
                continue;
            }
            let angle = gy.atan2(gx).rem_euclid(std::f64::consts::PI);
            let bin = ((angle / std::f64::consts::PI * 8.0) as usize).min(7);
            let cell = (y / 16) * 4 + x / 16;
            bins[cell * 8 + bin] += mag;
        }
    }
    let med = median(&bins);
    bins.iter()
        .fold(0u128, |acc, &b| (acc << 1) | u128::from(b > med))
}

/// The signs of DCT frequencies 17..=32 of the column and row sums of the 64x64 Triangle
/// resize (the shipped profiles use 1..=16): also invisible to PDQ's band, whose basis images
/// sum to zero along every row and column; an experiment (issue 17), not shipped.
pub fn profiles_hi(grey: &GrayImage) -> u32 {
    let p = imageops::resize(grey, 64, 64, FilterType::Triangle);
    let mut columns = [0.0f64; 64];
    let mut rows = [0.0f64; 64];
    for (x, y, px) in p.enumerate_pixels() {
        columns[x as usize] += f64::from(px.0[0]);
        rows[y as usize] += f64::from(px.0[0]);
    }
    let coefficient = |profile: &[f64; 64], frequency: usize| -> f64 {
        profile
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let angle = std::f64::consts::PI / 128.0 * frequency as f64 * (2 * j + 1) as f64;
                (2.0f64 / 64.0).sqrt() * angle.cos() * v
            })
            .sum()
    };
    (17..=32)
        .map(|f| coefficient(&columns, f))
        .chain((17..=32).map(|f| coefficient(&rows, f)))
        .fold(0u32, |acc, c| (acc << 1) | u32::from(c > 1e-6))
}

/// PDQ's float coefficients of the greyscale derivative, centred on their median and scaled to
/// unit length (all zero for a flat image).
pub fn pdq_l2(grey: &GrayImage, pdq: &mut PdqHasher) -> Vec<f32> {
    let luma: Vec<f32> = grey.as_raw().iter().map(|&v| f32::from(v)).collect();
    let Ok(view) = LumaImage::new(&luma, grey.width() as usize, grey.height() as usize) else {
        return vec![0.0; 256];
    };
    let f = pdq.floats_luma(&view);
    let mut v: Vec<f32> = f.coefficients.iter().map(|c| c - f.median).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// Every candidate of one greyscale image.
#[derive(Debug, Clone)]
pub struct Codes {
    phash: u64,
    whash: u64,
    dhash: u64,
    eoh: u128,
    pdq: Vec<f32>,
    dhash_vertical: u64,
    dhash16: [u64; 4],
    shipped: hashguard_hashing::SecondHash,
    profiles_hi: u32,
}

impl Codes {
    /// Computes every candidate of `grey`.
    pub fn of(grey: &GrayImage, pdq: &mut PdqHasher) -> Codes {
        Codes {
            phash: phash(grey),
            whash: whash(grey),
            dhash: dhash(grey),
            eoh: eoh(grey),
            pdq: pdq_l2(grey, pdq),
            dhash_vertical: dhash_vertical(grey),
            dhash16: dhash16(grey),
            shipped: hashguard_hashing::SecondHash::of_derivative(grey),
            profiles_hi: profiles_hi(grey),
        }
    }

    /// The distance of candidate `c` (index into [`CANDIDATES`]): Hamming bits (for the
    /// combinations as their names say), or for `pdq-l2` the L2 distance times 100 (0..=200).
    pub fn distance(&self, other: &Codes, c: usize) -> f64 {
        let profiles = || (self.shipped.profiles ^ other.shipped.profiles).count_ones();
        let dhash_hv = || {
            (self.dhash ^ other.dhash).count_ones()
                + (self.dhash_vertical ^ other.dhash_vertical).count_ones()
        };
        match c {
            0 => f64::from((self.phash ^ other.phash).count_ones()),
            1 => f64::from((self.whash ^ other.whash).count_ones()),
            2 => f64::from((self.dhash ^ other.dhash).count_ones()),
            3 => f64::from((self.eoh ^ other.eoh).count_ones()),
            5 => f64::from(dhash_hv()),
            6 => f64::from(
                self.dhash16
                    .iter()
                    .zip(&other.dhash16)
                    .map(|(a, b)| (a ^ b).count_ones())
                    .sum::<u32>(),
            ),
            7 => f64::from(profiles()),
            8 => f64::from(dhash_hv() + profiles()),
            SHIPPED => f64::from(self.shipped.distance(&other.shipped)),
            10 => f64::from(dhash_hv() + 3 * profiles()),
            11 => f64::from(dhash_hv().max(3 * profiles())),
            12 => self.distance(other, 6) + 2.0 * f64::from(profiles()),
            13 | 14 => {
                let hi = (self.profiles_hi ^ other.profiles_hi).count_ones();
                f64::from(self.shipped.distance(&other.shipped) + (c as u32 - 12) * hi)
            }
            _ => {
                100.0
                    * f64::from(
                        self.pdq
                            .iter()
                            .zip(&other.pdq)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f32>()
                            .sqrt(),
                    )
            }
        }
    }
}

/// The PDQ DCT matrix (16x64): `sqrt(2/64) cos(pi/128 (i+1)(2j+1))`, pdq.md 2.5.
fn dct_matrix() -> Vec<[f64; 64]> {
    (0..16)
        .map(|i| {
            let mut row = [0.0f64; 64];
            for (j, v) in row.iter_mut().enumerate() {
                *v = (2.0f64 / 64.0).sqrt()
                    * (std::f64::consts::PI / 128.0 * (i + 1) as f64 * (2 * j + 1) as f64).cos();
            }
            row
        })
        .collect()
}

/// A crafted PDQ collision, in the spirit of the published attacks on PDQ (gradient-free here
/// because PDQ is linear after its downscale): starting from `source`, repeatedly compute its
/// PDQ coefficients, choose new coefficients, map the change back through the DCT to the 64x64
/// buffer, upsample it smoothly to the image and add it to every channel.
/// - [`Attack::Bits`]: the nearest coefficients on the target bit's side of the median (by 0.3
///   times the median absolute deviation): the smallest change that gives the target's hash.
/// - [`Attack::Floats`]: the target's own coefficients, centred and scaled to the source's
///   spread (the attacks that minimise a loss on PDQ's floats end there): the image's whole
///   PDQ band becomes the target's up to scale.
///
/// Returns the crafted image and its PDQ distance to the target (bits: the best of up to 150
/// rounds, stopping at 0; floats: after 40 rounds).
pub fn craft_collision(
    source: &RgbImage,
    target: &hashguard_pdq::PdqFloats,
    attack: Attack,
) -> (RgbImage, u32) {
    let target_floats = target;
    let target_hash = target.hash();
    let target = &target_hash;
    let d = dct_matrix();
    let mut pdq = PdqHasher::new();
    let (w, h) = source.dimensions();
    let mut cur: Vec<f32> = source.as_raw().iter().map(|&v| f32::from(v)).collect();
    let to_u8 = |v: &[f32]| -> RgbImage {
        RgbImage::from_raw(
            w,
            h,
            v.iter()
                .map(|x| x.round().clamp(0.0, 255.0) as u8)
                .collect(),
        )
        .expect("same size")
    };
    let mut best = (source.clone(), u32::MAX);
    let rounds = match attack {
        Attack::Bits => 150,
        Attack::Floats => 40,
    };
    let mut source_spread: Option<f64> = None;
    for round in 0..rounds {
        let img = to_u8(&cur);
        let Ok(view) = PdqRgb::new(img.as_raw(), w as usize, h as usize) else {
            break;
        };
        let f = pdq.floats_rgb(&view);
        let dist = f.hash().distance(target);
        if attack == Attack::Floats {
            if round + 1 == rounds {
                return (img, dist);
            }
            // PDQ's bits, and a normalised float distance, ignore the band's scale and
            // offset: aim at the target's centred band scaled to the source's spread, which
            // needs the smallest change.
            let mad = |v: &[f32; 256], m: f32| {
                let mut d: Vec<f32> = v.iter().map(|c| (c - m).abs()).collect();
                d.sort_by(f32::total_cmp);
                f64::from(d[128])
            };
            let scale = *source_spread.get_or_insert_with(|| mad(&f.coefficients, f.median))
                / mad(&target_floats.coefficients, target_floats.median).max(1e-3);
            let mut delta_b = [0.0f64; 256];
            for (k, db) in delta_b.iter_mut().enumerate() {
                let want = f64::from(f.median)
                    + scale * f64::from(target_floats.coefficients[k] - target_floats.median);
                *db = want - f64::from(f.coefficients[k]);
            }
            add_band_change(&mut cur, &delta_b, &d, w, h);
            continue;
        }
        if dist < best.1 {
            best = (img, dist);
        }
        if dist == 0 {
            break;
        }
        let mut dev: Vec<f64> = f
            .coefficients
            .iter()
            .map(|c| f64::from((c - f.median).abs()))
            .collect();
        dev.sort_by(f64::total_cmp);
        let margin = dev[128].max(1.0) * 0.3;
        let m = f64::from(f.median);
        let mut delta_b = [0.0f64; 256];
        for (k, db) in delta_b.iter_mut().enumerate() {
            let c = f64::from(f.coefficients[k]);
            let want = if target.bit(k) {
                m + margin
            } else {
                m - margin
            };
            let ok = if target.bit(k) { c >= want } else { c <= want };
            if !ok {
                *db = want - c;
            }
        }
        add_band_change(&mut cur, &delta_b, &d, w, h);
    }
    best
}

/// Which crafted collision (see [`craft_collision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// The smallest change to the target's hash bits.
    Bits,
    /// The target's whole float band.
    Floats,
}

/// Adds the pixel change whose PDQ band change is `delta_b` (16x16, row-major) to the RGB
/// floats `cur` (`w` x `h`): delta_A = Dᵀ delta_B D in the 64x64 buffer (D's rows are
/// orthonormal), upsampled bilinearly, the same on every channel (PDQ's luma weights sum to 1).
fn add_band_change(cur: &mut [f32], delta_b: &[f64; 256], d: &[[f64; 64]], w: u32, h: u32) {
    {
        let mut tmp = [[0.0f64; 64]; 16]; // delta_B D : 16x64
        for i in 0..16 {
            for x in 0..64 {
                tmp[i][x] = (0..16).map(|j| delta_b[i * 16 + j] * d[j][x]).sum();
            }
        }
        let mut values = vec![0.0f64; 4096];
        for y in 0..64 {
            for x in 0..64 {
                values[y * 64 + x] = (0..16).map(|i| d[i][y] * tmp[i][x]).sum();
            }
        }
        // `image` clamps float pixels to 0..=1 when resizing: resize the values mapped there.
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = (hi - lo).max(1e-9);
        let delta_a: ImageBuffer<Luma<f32>, Vec<f32>> = ImageBuffer::from_raw(
            64,
            64,
            values.iter().map(|v| ((v - lo) / span) as f32).collect(),
        )
        .expect("64x64");
        let up = imageops::resize(&delta_a, w, h, FilterType::Triangle);
        for (i, px) in cur.chunks_exact_mut(3).enumerate() {
            let dv = (f64::from(up.as_raw()[i]) * span + lo) as f32;
            for c in px {
                *c = (*c + dv).clamp(0.0, 255.0);
            }
        }
    }
}

/// One candidate's results.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateResult {
    /// The candidate's name.
    pub name: String,
    /// The threshold: the smallest distance at which at least 99 % of the copies that PDQ
    /// matches (<= 31) also match, mirrored and rotated copies left out; for the shipped hash the
    /// shipped `SECOND_MATCH_THRESHOLD`.
    pub threshold: f64,
    /// Recall per transform at the threshold, among copies whose PDQ matches: (name, matched,
    /// of).
    pub recall: Vec<(String, usize, usize)>,
    /// Recall over all non-dihedral transforms at the threshold.
    pub recall_all: (usize, usize),
    /// False matches among random pairs of distinct images: (matched, pairs, Wilson 95 %).
    pub random_pairs: (usize, usize, (f64, f64, f64)),
    /// Matches among the closest PDQ pairs of the corpus.
    pub close_pairs: (usize, usize, (f64, f64, f64)),
    /// Matches among pairs whose exact PDQ keys collide.
    pub key_pairs: (usize, usize, (f64, f64, f64)),
    /// Matches among crafted PDQ collisions, bits attack (those that reached PDQ <= 31).
    pub crafted: (usize, usize, (f64, f64, f64)),
    /// Matches among crafted PDQ collisions, floats attack (those that reached PDQ <= 31).
    pub crafted_floats: (usize, usize, (f64, f64, f64)),
    /// Microseconds per hash of a VD (this candidate alone, one thread).
    pub micros_per_hash: f64,
    /// Distance quantiles (50, 90, 99, 99.9 %) of the PDQ-matched non-dihedral copies.
    pub copy_quantiles: [f64; 4],
    /// Distance quantiles (0.01, 0.1, 1, 50 %) of the random pairs.
    pub random_quantiles: [f64; 4],
    /// Close and key-colliding pairs split: matches among pairs from different packages
    /// (unrelated artwork), (matched, pairs) for close then key pairs.
    pub cross_package: [(usize, usize); 2],
    /// The sweep: (threshold, recall of PDQ-matched copies, random-pair false-match rate,
    /// crafted-collision match rate for the bits then the floats attack).
    pub sweep: Vec<(f64, f64, f64, f64, f64)>,
}

/// The whole measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Originals whose transformed copies were measured.
    pub originals: usize,
    /// Images in the random-pair sample.
    pub pair_images: usize,
    /// Close PDQ pairs: the largest PDQ distance included.
    pub close_max_distance: u32,
    /// Crafted collisions attempted and reached (PDQ <= 31).
    pub crafted_attempted: usize,
    /// Per attack (bits, floats): how many reached PDQ <= 31, the mean PDQ distance to the
    /// target, the mean absolute pixel change (0..255).
    pub crafted_stats: [(usize, f64, f64); 2],
    /// Per candidate.
    pub candidates: Vec<CandidateResult>,
    /// The shipped hash over the same random pairs when, as the service does for an item whose
    /// voucher probed dihedral variants, each VD is also turned into every variant of
    /// `V1_DIHEDRAL` and a match in any orientation counts: (matched, pairs, Wilson 95 %).
    pub shipped_random_pairs_oriented: (usize, usize, (f64, f64, f64)),
}

/// What [`run`] measures on.
pub struct Setup<'a> {
    /// The corpus folder.
    pub dir: &'a std::path::Path,
    /// The manifest's entries whose files exist.
    pub entries: Vec<Entry>,
    /// Originals for the transform suite.
    pub originals: usize,
    /// Images for random pairs.
    pub pair_images: usize,
    /// Closest PDQ pairs of the corpus to measure.
    pub close_pairs: usize,
    /// Crafted collisions to attempt.
    pub crafted: usize,
    /// Seed of the samples and transforms.
    pub seed: u64,
}

fn keyed(seed: u64, e: &Entry) -> u64 {
    let mut h: u64 = seed ^ 0xcbf2_9ce4_8422_2325;
    for b in e.package.bytes().chain(e.path.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn load(dir: &std::path::Path, e: &Entry) -> Result<RgbImage> {
    let name = format!("{}/{}", e.package, e.path);
    let bytes = std::fs::read(dir.join(&name)).with_context(|| format!("reading {name}"))?;
    transforms::decode(&bytes)
}

/// Runs the measurement.
pub fn run(setup: Setup<'_>) -> Result<Report> {
    let Setup {
        dir,
        mut entries,
        originals,
        pair_images,
        close_pairs,
        crafted,
        seed,
    } = setup;
    entries.sort_by_key(|e| keyed(seed, e));
    let suite: Vec<Transform> = Transform::suite();
    let nc = CANDIDATES.len();

    // 1. Transform suite: (transform index, PDQ distance, per-candidate distance).
    eprintln!("second-hash: transforms of {originals} originals");
    let rows: Vec<(usize, u32, Vec<f64>)> = entries
        .par_iter()
        .take(originals)
        .enumerate()
        .map_init(PdqHasher::new, |pdq, (n, e)| -> Result<Vec<_>> {
            let img = load(dir, e)?;
            let listed = Codes::of(&derivative(&img), pdq);
            let h0 = pdq_hash(&img, pdq)?;
            let mut out = Vec::new();
            for (t, tr) in suite.iter().enumerate() {
                let copy = tr.apply(&img, seed ^ (n as u64) ^ ((t as u64) << 32))?;
                let d = pdq_hash(&copy, pdq)?.distance(&h0);
                let q = Codes::of(&vd(&copy)?, pdq);
                out.push((t, d, (0..nc).map(|c| listed.distance(&q, c)).collect()));
            }
            Ok(out)
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();

    // 2. Random pairs: listed codes of i against VD codes of j.
    eprintln!("second-hash: {pair_images} images for random pairs");
    let variants: Vec<usize> = (0..7)
        .filter(|v| hashguard_protocol::params::V1_DIHEDRAL & (1 << v) != 0)
        .collect();
    let (pair_codes, turned): (Vec<(Codes, Codes)>, Vec<Vec<hashguard_hashing::SecondHash>>) =
        entries
            .par_iter()
            .take(pair_images)
            .map_init(PdqHasher::new, |pdq, e| -> Result<_> {
                let img = load(dir, e)?;
                let sent = vd(&img)?;
                let turned = variants
                    .iter()
                    .filter_map(|&v| hashguard_hashing::second::oriented(&sent, v))
                    .map(|t| hashguard_hashing::SecondHash::of_derivative(&t))
                    .collect();
                Ok((
                    (Codes::of(&derivative(&img), pdq), Codes::of(&sent, pdq)),
                    turned,
                ))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .unzip();
    let n = pair_codes.len();
    let oriented_hits: usize = (0..n)
        .into_par_iter()
        .map(|i| {
            let on_file = &pair_codes[i].0.shipped;
            (0..n)
                .filter(|&j| {
                    j != i
                        && (on_file.matches(&pair_codes[j].1.shipped)
                            || turned[j].iter().any(|t| on_file.matches(t)))
                })
                .count()
        })
        .sum();
    let pairs = n * n.saturating_sub(1);
    let shipped_random_pairs_oriented = (
        oriented_hits,
        pairs,
        wilson(oriented_hits as f64, pairs as f64),
    );

    // 3. The closest PDQ pairs and exact key collisions over the whole (present) corpus.
    eprintln!("second-hash: closest PDQ pairs and key collisions");
    let params = Params::v1(Policy::Intervene);
    let mut close: Vec<(u32, usize, usize)> = (0..entries.len())
        .into_par_iter()
        .flat_map_iter(|i| {
            let entries = &entries;
            (i + 1..entries.len()).filter_map(move |j| {
                let d = entries[i].pdq.distance(&entries[j].pdq);
                (d <= 64 && entries[i].package != entries[j].package).then_some((d, i, j))
            })
        })
        .collect();
    close.sort_unstable();
    close.truncate(close_pairs);
    let close_max_distance = close.last().map_or(0, |c| c.0);
    let mut by_key: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        by_key.entry(pdq_key(&e.pdq, &params)).or_default().push(i);
    }
    let key_pairs: Vec<(usize, usize)> = by_key
        .values()
        .flat_map(|v| {
            v.iter()
                .enumerate()
                .flat_map(move |(a, &i)| v[a + 1..].iter().map(move |&j| (i, j)))
        })
        .take(5000)
        .collect();
    let mut needed: Vec<usize> = close
        .iter()
        .flat_map(|&(_, i, j)| [i, j])
        .chain(key_pairs.iter().flat_map(|&(i, j)| [i, j]))
        .collect();
    needed.sort_unstable();
    needed.dedup();
    let codes: HashMap<usize, (Codes, Codes)> = needed
        .par_iter()
        .map_init(PdqHasher::new, |pdq, &i| -> Result<_> {
            let img = load(dir, &entries[i])?;
            Ok((
                i,
                (
                    Codes::of(&derivative(&img), pdq),
                    Codes::of(&vd(&img)?, pdq),
                ),
            ))
        })
        .collect::<Result<_>>()?;
    let pair_dist = |i: usize, j: usize, c: usize| codes[&i].0.distance(&codes[&j].1, c);

    // 4. Crafted collisions: a source pushed onto a target's PDQ hash.
    eprintln!("second-hash: {crafted} crafted collisions");
    let pool = pair_images.min(entries.len());
    let attempts: Vec<[(u32, f64, Vec<f64>); 2]> = (0..crafted)
        .into_par_iter()
        .map_init(PdqHasher::new, |pdq, a| -> Result<_> {
            // Source and target from the sample, seeded, never the same image.
            let s = (keyed(seed ^ a as u64, &entries[a % pool]) as usize) % pool;
            let t = (s + 1 + a * 7919 % (pool - 1).max(1)) % pool;
            let src = transforms::resize_long_side(&load(dir, &entries[s])?, 512);
            let tgt = load(dir, &entries[t])?;
            let view = PdqRgb::new(tgt.as_raw(), tgt.width() as usize, tgt.height() as usize)
                .map_err(|e| anyhow!("{e}"))?;
            let target = pdq.floats_rgb(&view);
            let listed = Codes::of(&derivative(&tgt), pdq);
            let mut one = |attack| -> Result<(u32, f64, Vec<f64>)> {
                let (img, dist) = craft_collision(&src, &target, attack);
                let change = img
                    .as_raw()
                    .iter()
                    .zip(src.as_raw())
                    .map(|(a, b)| f64::from(a.abs_diff(*b)))
                    .sum::<f64>()
                    / img.as_raw().len() as f64;
                let q = Codes::of(&vd(&img)?, pdq);
                Ok((
                    dist,
                    change,
                    (0..nc).map(|c| listed.distance(&q, c)).collect(),
                ))
            };
            Ok([one(Attack::Bits)?, one(Attack::Floats)?])
        })
        .collect::<Result<_>>()?;
    let reached: [Vec<&(u32, f64, Vec<f64>)>; 2] = [0, 1].map(|k| {
        attempts
            .iter()
            .map(|a| &a[k])
            .filter(|a| a.0 <= 31)
            .collect()
    });
    let attack_stats = [0, 1].map(|k| {
        let n = attempts.len().max(1) as f64;
        (
            reached[k].len(),
            attempts.iter().map(|a| f64::from(a[k].0)).sum::<f64>() / n,
            attempts.iter().map(|a| a[k].1).sum::<f64>() / n,
        )
    });

    // 5. Per candidate: threshold, rates, speed.
    let sample_vd = vd(&load(dir, &entries[0])?)?;
    let mut candidates = Vec::new();
    for (c, name) in CANDIDATES.iter().enumerate() {
        // Mirrored and rotated copies are left out of the threshold: PDQ itself does not match
        // them (the dihedral probes of item 4 would), and they are reported per transform.
        let usable = |t: usize| suite[t].family() != "dihedral";
        let mut matched_d: Vec<f64> = rows
            .iter()
            .filter(|r| r.1 <= 31 && usable(r.0))
            .map(|r| r.2[c])
            .collect();
        matched_d.sort_by(f64::total_cmp);
        // The shipped hash is measured at its shipped threshold; the others by the rule.
        let threshold = if c == SHIPPED {
            f64::from(hashguard_hashing::SECOND_MATCH_THRESHOLD)
        } else if matched_d.is_empty() {
            0.0
        } else {
            matched_d
                [((matched_d.len() as f64 * 0.99).ceil() as usize).clamp(1, matched_d.len()) - 1]
        };
        let hit = |d: f64| d <= threshold;
        let recall: Vec<(String, usize, usize)> = suite
            .iter()
            .enumerate()
            .map(|(t, tr)| {
                let of: Vec<&(usize, u32, Vec<f64>)> =
                    rows.iter().filter(|r| r.0 == t && r.1 <= 31).collect();
                (
                    tr.name(),
                    of.iter().filter(|r| hit(r.2[c])).count(),
                    of.len(),
                )
            })
            .collect();
        let recall_all = (
            matched_d.iter().filter(|&&d| hit(d)).count(),
            matched_d.len(),
        );
        let n = pair_codes.len();
        let random_hits: usize = (0..n)
            .into_par_iter()
            .map(|i| {
                (0..n)
                    .filter(|&j| j != i && hit(pair_codes[i].0.distance(&pair_codes[j].1, c)))
                    .count()
            })
            .sum();
        let rate = |k: usize, n: usize| (k, n, wilson(k as f64, n as f64));
        let close_hits = close
            .iter()
            .filter(|&&(_, i, j)| hit(pair_dist(i, j, c)) || hit(pair_dist(j, i, c)))
            .count();
        let key_hits = key_pairs
            .iter()
            .filter(|&&(i, j)| hit(pair_dist(i, j, c)) || hit(pair_dist(j, i, c)))
            .count();
        let crafted_hits = reached[0].iter().filter(|a| hit(a.2[c])).count();
        let floats_hits = reached[1].iter().filter(|a| hit(a.2[c])).count();
        let q = |v: &[f64], p: f64| {
            if v.is_empty() {
                0.0
            } else {
                v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
            }
        };
        let mut random_d: Vec<f64> = (0..n)
            .into_par_iter()
            .flat_map_iter(|i| {
                let pc = &pair_codes;
                (0..n)
                    .filter(move |&j| j != i)
                    .map(move |j| pc[i].0.distance(&pc[j].1, c))
            })
            .collect();
        random_d.sort_by(f64::total_cmp);
        let copy_quantiles = [0.5, 0.9, 0.99, 0.999].map(|p| q(&matched_d, p));
        let random_quantiles = [0.0001, 0.001, 0.01, 0.5].map(|p| q(&random_d, p));
        let cross = |i: usize, j: usize| entries[i].package != entries[j].package;
        let cross_package = [
            (
                close
                    .iter()
                    .filter(|&&(_, i, j)| {
                        cross(i, j) && (hit(pair_dist(i, j, c)) || hit(pair_dist(j, i, c)))
                    })
                    .count(),
                close.iter().filter(|&&(_, i, j)| cross(i, j)).count(),
            ),
            (
                key_pairs
                    .iter()
                    .filter(|&&(i, j)| {
                        cross(i, j) && (hit(pair_dist(i, j, c)) || hit(pair_dist(j, i, c)))
                    })
                    .count(),
                key_pairs.iter().filter(|&&(i, j)| cross(i, j)).count(),
            ),
        ];
        let step = if c == 4 || c == 6 || c == 12 {
            2.0
        } else {
            1.0
        };
        let sweep: Vec<(f64, f64, f64, f64, f64)> = (0..=40)
            .map(|k| {
                let t = k as f64 * step;
                let frac =
                    |v: &[f64]| v.partition_point(|&d| d <= t) as f64 / v.len().max(1) as f64;
                let crafted_rate = |k: usize| {
                    reached[k].iter().filter(|a| a.2[c] <= t).count() as f64
                        / reached[k].len().max(1) as f64
                };
                (
                    t,
                    frac(&matched_d),
                    frac(&random_d),
                    crafted_rate(0),
                    crafted_rate(1),
                )
            })
            .collect();
        let mut pdq = PdqHasher::new();
        let started = Instant::now();
        let reps = 200;
        for _ in 0..reps {
            std::hint::black_box(match c {
                0 => u128::from(phash(&sample_vd)),
                1 => u128::from(whash(&sample_vd)),
                2 => u128::from(dhash(&sample_vd)),
                3 => eoh(&sample_vd),
                5 => u128::from(dhash(&sample_vd)) ^ u128::from(dhash_vertical(&sample_vd)),
                6 => u128::from(dhash16(&sample_vd)[0]),
                7..=12 => {
                    u128::from(hashguard_hashing::SecondHash::of_derivative(&sample_vd).profiles)
                }
                13 | 14 => {
                    u128::from(hashguard_hashing::SecondHash::of_derivative(&sample_vd).profiles)
                        ^ u128::from(profiles_hi(&sample_vd))
                }
                _ => pdq_l2(&sample_vd, &mut pdq).len() as u128,
            });
        }
        candidates.push(CandidateResult {
            name: name.to_string(),
            threshold,
            recall,
            recall_all,
            random_pairs: rate(random_hits, n * (n.saturating_sub(1))),
            close_pairs: rate(close_hits, close.len()),
            key_pairs: rate(key_hits, key_pairs.len()),
            crafted: rate(crafted_hits, reached[0].len()),
            crafted_floats: rate(floats_hits, reached[1].len()),
            micros_per_hash: started.elapsed().as_secs_f64() * 1e6 / f64::from(reps),
            copy_quantiles,
            random_quantiles,
            cross_package,
            sweep,
        });
    }
    Ok(Report {
        originals: originals.min(entries.len()),
        pair_images: pair_codes.len(),
        close_max_distance,
        crafted_attempted: attempts.len(),
        crafted_stats: attack_stats,
        candidates,
        shipped_random_pairs_oriented,
    })
}

fn pdq_hash(img: &RgbImage, pdq: &mut PdqHasher) -> Result<Hash256> {
    let view = PdqRgb::new(img.as_raw(), img.width() as usize, img.height() as usize)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(pdq.hash_rgb(&view).hash)
}

impl Report {
    /// The results as markdown tables.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "originals {}, random-pair images {}, closest cross-package PDQ pairs up to \
             distance {}, crafted collisions {} attempted per attack; bits attack: {} reached \
             PDQ <= 31 (mean distance {:.1}, mean pixel change {:.1}); floats attack: {} \
             reached (mean distance {:.1}, mean pixel change {:.1})\n\n",
            self.originals,
            self.pair_images,
            self.close_max_distance,
            self.crafted_attempted,
            self.crafted_stats[0].0,
            self.crafted_stats[0].1,
            self.crafted_stats[0].2,
            self.crafted_stats[1].0,
            self.crafted_stats[1].1,
            self.crafted_stats[1].2,
        );
        let pct = |r: &(usize, usize, (f64, f64, f64))| {
            format!(
                "{}/{} = {:.2e} [{:.1e}, {:.1e}]",
                r.0, r.1, r.2 .0, r.2 .1, r.2 .2
            )
        };
        s.push_str(&format!(
            "The shipped hash over the random pairs with each VD also turned into the v1 dihedral \
             variants (a match in any orientation counts, as the service checks): {}\n\n",
            pct(&self.shipped_random_pairs_oriented)
        ));
        s.push_str("| candidate | threshold | recall (PDQ-matched copies) | random pairs | closest PDQ pairs | key-colliding pairs | crafted (bits) | crafted (floats) | µs/hash |\n|---|---|---|---|---|---|---|---|---|\n");
        for c in &self.candidates {
            s.push_str(&format!(
                "| {} | {} | {}/{} = {:.4} | {} | {} | {} | {} | {} | {:.1} |\n",
                c.name,
                c.threshold,
                c.recall_all.0,
                c.recall_all.1,
                c.recall_all.0 as f64 / c.recall_all.1.max(1) as f64,
                pct(&c.random_pairs),
                pct(&c.close_pairs),
                pct(&c.key_pairs),
                pct(&c.crafted),
                pct(&c.crafted_floats),
                c.micros_per_hash
            ));
        }
        s.push_str("\n| candidate | copies p50/p90/p99/p99.9 | random pairs p0.01/p0.1/p1/p50 | closest pairs, other package | key pairs, other package |\n|---|---|---|---|---|\n");
        for c in &self.candidates {
            let [a, b, cc, d] = c.copy_quantiles;
            let [e, f, g, h] = c.random_quantiles;
            s.push_str(&format!(
                "| {} | {a:.1}/{b:.1}/{cc:.1}/{d:.1} | {e:.1}/{f:.1}/{g:.1}/{h:.1} | {}/{} | {}/{} |\n",
                c.name,
                c.cross_package[0].0,
                c.cross_package[0].1,
                c.cross_package[1].0,
                c.cross_package[1].1
            ));
        }
        s.push_str(
            "\nRecall per transform at each threshold (copies whose PDQ matches):\n\n| transform |",
        );
        for c in &self.candidates {
            s.push_str(&format!(" {} |", c.name));
        }
        s.push_str("\n|---|");
        s.push_str(&"---|".repeat(self.candidates.len()));
        s.push('\n');
        if let Some(first) = self.candidates.first() {
            for (t, (name, _, _)) in first.recall.iter().enumerate() {
                s.push_str(&format!("| {name} |"));
                for c in &self.candidates {
                    let (_, k, n) = &c.recall[t];
                    s.push_str(&format!(" {k}/{n} |"));
                }
                s.push('\n');
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generated::generated;

    #[test]
    fn a_crafted_collision_reaches_the_target_pdq() {
        let src = generated(1, 256, 192);
        let tgt = generated(2, 256, 192);
        let mut pdq = PdqHasher::new();
        let view = PdqRgb::new(tgt.as_raw(), 256, 192).unwrap();
        let target = pdq.floats_rgb(&view);
        let th = target.hash();
        let before = pdq_hash(&src, &mut pdq).unwrap().distance(&th);
        assert!(before > 31, "the two generated images already collide");
        for attack in [Attack::Bits, Attack::Floats] {
            let (img, d) = craft_collision(&src, &target, attack);
            assert!(d <= 31, "{attack:?} got only to {d} (from {before})");
            assert_eq!(pdq_hash(&img, &mut pdq).unwrap().distance(&th), d);
        }
    }

    #[test]
    fn a_crafted_collision_keeps_the_sources_profiles() {
        // A float-band collision moves PDQ all the way to the target; the profiles of the
        // crafted image stay near the source's and far from the target's.
        let src = generated(5, 384, 288);
        let tgt = generated(6, 384, 288);
        let mut pdq = PdqHasher::new();
        let view = PdqRgb::new(tgt.as_raw(), 384, 288).unwrap();
        let target = pdq.floats_rgb(&view);
        let (img, d) = craft_collision(&src, &target, Attack::Floats);
        assert!(d <= 31, "the attack got only to {d}");
        let of =
            |i: &RgbImage| hashguard_hashing::SecondHash::of_derivative(&derivative(i)).profiles;
        let to_source = (of(&img) ^ of(&src)).count_ones();
        let to_target = (of(&img) ^ of(&tgt)).count_ones();
        assert!(
            to_source + 8 <= to_target,
            "crafted vs source {to_source} bits, vs target {to_target}"
        );
    }

    #[test]
    fn candidates_are_stable_under_the_vd_and_tell_images_apart() {
        let a = generated(3, 640, 480);
        let b = generated(4, 640, 480);
        let mut pdq = PdqHasher::new();
        let la = Codes::of(&derivative(&a), &mut pdq);
        let qa = Codes::of(&vd(&a).unwrap(), &mut pdq);
        let qb = Codes::of(&vd(&b).unwrap(), &mut pdq);
        for (c, name) in CANDIDATES.iter().enumerate() {
            assert!(
                la.distance(&qa, c) < la.distance(&qb, c),
                "{name}: same {} vs other {}",
                la.distance(&qa, c),
                la.distance(&qb, c)
            );
        }
    }

    #[test]
    fn the_shipped_second_hash_is_dhash_hv_and_the_profiles() {
        for seed in 0..8 {
            let grey = derivative(&generated(seed, 500, 400));
            let s = hashguard_hashing::SecondHash::of_derivative(&grey);
            assert_eq!(
                (s.horizontal, s.vertical),
                (dhash(&grey), dhash_vertical(&grey))
            );
        }
        assert_eq!(CANDIDATES[SHIPPED], "dhash-hv+2profiles");
        assert_eq!(hashguard_hashing::second::PROFILE_WEIGHT, 2);
    }

    #[test]
    fn median_is_numpys() {
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}

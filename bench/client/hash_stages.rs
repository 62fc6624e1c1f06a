//! Where the client's hashing time goes for one photo (issue 17, the preparation cost after
//! dihedral probes), one thread: decode, the luma conversion alone, the PDQ of the image, the
//! PDQ of its rot90 and flipy variants (v1's dihedral probes) as the SDK computes them now
//! (streamed from the RGB pixels) and as it did before (a float luma plane, a rotated copy, then
//! the filter: each sub-stage timed), the visual derivative, and variants hashed from a
//! downscaled luma plane with how far their hashes land from the exact variants (bits).
//!
//! ```text
//! cargo run --release -p hashguard-hashing --example hash_stages -- [--runs N] [--scale S] [FILE...]
//! ```
//!
//! Without files, the 12-megapixel JPEG of `bench/client/prepare.rs` is made from the shared
//! test data. `--scale S` (default 4) is the box-average factor of the downscaled luma.
//! Prints a Markdown table (median and minimum over the runs, ms) per file, then the distances.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hashguard_media::DecodeOptions;
use hashguard_pdq::{LumaImage, PdqFloats, PdqHasher, RgbImage};

/// v1's dihedral variants (rot90 = bit 0, flipy = bit 4), as `hashguard_protocol::params`.
const VARIANTS: [(usize, &str); 2] = [(0, "rot90"), (4, "flipy")];

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `f` `runs` times; (median, minimum) in ms and the last result.
fn timed<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(t.elapsed());
    }
    times.sort();
    let out = last.expect("at least one run");
    (ms(times[times.len() / 2]), ms(times[0]), out)
}

fn luma(r: u8, g: u8, b: u8) -> f32 {
    (0.299f32 * r as f32 + 0.587f32 * g as f32) + 0.114f32 * b as f32
}

fn luma_plane(rgb: &[u8], w: usize, h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(w * h);
    out.extend(
        rgb[..3 * w * h]
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2])),
    );
    out
}

/// The old SDK path's copy: variant `i`'s luma plane from the image's (per-pixel source map).
fn turned_plane(l: &[f32], w: usize, h: usize, i: usize) -> (Vec<f32>, usize, usize) {
    type Map = fn(usize, usize, usize, usize) -> usize;
    let maps: [(bool, Map); 7] = [
        (true, |x, y, w, _h| x * w + (w - 1 - y)),
        (false, |x, y, w, h| (h - 1 - y) * w + (w - 1 - x)),
        (true, |x, y, w, h| (h - 1 - x) * w + y),
        (false, |x, y, w, h| (h - 1 - y) * w + x),
        (false, |x, y, w, _h| y * w + (w - 1 - x)),
        (true, |x, y, w, _h| x * w + y),
        (true, |x, y, w, h| (h - 1 - x) * w + (w - 1 - y)),
    ];
    let (swap, map) = maps[i];
    let (nw, nh) = if swap { (h, w) } else { (w, h) };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..nh {
        for x in 0..nw {
            out.push(l[map(x, y, w, h)]);
        }
    }
    (out, nw, nh)
}

/// The luma plane averaged over `s` x `s` blocks (the last partial blocks dropped).
fn downscaled(l: &[f32], w: usize, h: usize, s: usize) -> (Vec<f32>, usize, usize) {
    let (dw, dh) = (w / s, h / s);
    let mut out = vec![0f32; dw * dh];
    for y in 0..dh * s {
        let row = &l[y * w..y * w + dw * s];
        let o = &mut out[(y / s) * dw..(y / s + 1) * dw];
        for (acc, block) in o.iter_mut().zip(row.chunks_exact(s)) {
            *acc += block.iter().sum::<f32>();
        }
    }
    let n = (s * s) as f32;
    for v in out.iter_mut() {
        *v /= n;
    }
    (out, dw, dh)
}

/// The 12 MP JPEG of bench/client/prepare.rs (same source photograph, size, noise, quality).
fn twelve_megapixels() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let source =
        hashguard_testsupport_root().join("pdq/images/reg-test-input/dih/bridge-1-original.jpg");
    let base = image::open(&source)
        .unwrap_or_else(|e| panic!("{}: {e}", source.display()))
        .to_rgb8();
    let base = image::imageops::resize(&base, w, h, image::imageops::FilterType::Triangle);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 15) as f32 - 8.0;
        let pixel = base.get_pixel(x, y).0.map(f32::from);
        image::Rgb(pixel.map(|c| (c + noise).clamp(0.0, 255.0) as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode the photo");
    out
}

/// The shared test data (`$HASHGUARD_TESTDATA`, else `../shared/testdata` next to the checkout).
fn hashguard_testsupport_root() -> PathBuf {
    std::env::var_os("HASHGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        })
}

fn row(stage: &str, (median, min): (f64, f64)) {
    println!("| {stage} | {median:.1} | {min:.1} |");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 7usize;
    let mut scale = 4usize;
    let mut files = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|n| n.parse().ok()).unwrap_or(7).max(1),
            "--scale" => scale = it.next().and_then(|n| n.parse().ok()).unwrap_or(4).max(1),
            f => files.push(PathBuf::from(f)),
        }
    }
    let inputs: Vec<(String, Vec<u8>)> = if files.is_empty() {
        vec![("12 MP (prepare.rs)".into(), twelve_megapixels())]
    } else {
        files
            .iter()
            .map(|f| Ok((f.display().to_string(), std::fs::read(f)?)))
            .collect::<std::io::Result<_>>()?
    };
    let detailed = inputs.len() == 1;
    // (file, variant, bits between the downscaled-luma variant and the exact one).
    let mut distances: Vec<(String, &str, u32, u8)> = Vec::new();
    let mut hasher = PdqHasher::new();
    for (name, bytes) in &inputs {
        let d = match hashguard_media::decode(bytes, &DecodeOptions::default()) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{name}: {e}");
                continue;
            }
        };
        let (w, h) = (d.width, d.height);
        let img = RgbImage::new(&d.rgb, w, h)?;
        let exact: Vec<PdqFloats> = VARIANTS
            .iter()
            .map(|&(i, _)| hasher.dihedral_pixel_floats_rgb_selected(&img, 1 << i)[i].clone())
            .collect();
        if detailed {
            println!("{name}: {w} x {h}, {runs} runs, one thread");
            println!();
            println!("| stage | median ms | min ms |");
            println!("|---|---|---|");
            let (a, b, _) = timed(runs, || {
                hashguard_media::decode(bytes, &DecodeOptions::default())
            });
            row("decode (SDK decoder)", (a, b));
            let (a, b, _) = timed(runs, || luma_plane(&d.rgb, w, h));
            row("luma plane alone (RGB to float, 12 M writes)", (a, b));
            let (a, b, _) = timed(runs, || hasher.floats_rgb(&img));
            row("PDQ of the image (streamed luma + Jarosz + DCT)", (a, b));
            for &(i, v) in &VARIANTS {
                let (a, b, _) = timed(runs, || {
                    hasher.dihedral_pixel_floats_rgb_selected(&img, 1 << i)
                });
                row(&format!("PDQ of {v}, streamed from RGB (now)"), (a, b));
            }
            let plane = luma_plane(&d.rgb, w, h);
            for &(i, v) in &VARIANTS {
                let (a, b, (t, nw, nh)) = timed(runs, || turned_plane(&plane, w, h, i));
                row(&format!("before: {v} copy of the luma plane"), (a, b));
                let (a, b, _) = timed(runs, || {
                    hasher.floats_luma(&LumaImage::new(&t, nw, nh).expect("fits"))
                });
                row(&format!("before: PDQ of the {v} luma plane"), (a, b));
            }
            let (a, b, _) = timed(runs, || {
                let plane = luma_plane(&d.rgb, w, h);
                VARIANTS
                    .iter()
                    .map(|&(i, _)| {
                        let (t, nw, nh) = turned_plane(&plane, w, h, i);
                        hasher.floats_luma(&LumaImage::new(&t, nw, nh).expect("fits"))
                    })
                    .collect::<Vec<_>>()
            });
            row("before: both variants (plane + copies + PDQ)", (a, b));
            let (a, b, _) = timed(runs, || {
                hasher.dihedral_pixel_floats_rgb_selected(&img, 0x11)
            });
            row("now: both variants (streamed)", (a, b));
            let rgb_img = image::RgbImage::from_raw(w as u32, h as u32, d.rgb.clone())
                .ok_or("image buffer")?;
            let (a, b, _) = timed(runs, || {
                let scale = 96.0 / f64::from(rgb_img.width().max(rgb_img.height()));
                let tw = ((f64::from(rgb_img.width()) * scale).round() as u32).max(1);
                let th = ((f64::from(rgb_img.height()) * scale).round() as u32).max(1);
                let small = image::imageops::thumbnail(&rgb_img, tw, th);
                let grey = image::DynamicImage::ImageRgb8(small).into_luma8();
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 60)
                    .encode_image(&grey)
                    .map(|()| out)
            });
            row(
                "visual derivative with `image`'s thumbnail (96 px greyscale JPEG; the SDK now sums the same windows faster)",
                (a, b),
            );
            let (a, b, _) = timed(runs, || {
                let plane = luma_plane(&d.rgb, w, h);
                let (small, sw, sh) = downscaled(&plane, w, h, scale);
                VARIANTS
                    .iter()
                    .map(|&(i, _)| {
                        let (t, nw, nh) = turned_plane(&small, sw, sh, i);
                        hasher.floats_luma(&LumaImage::new(&t, nw, nh).expect("fits"))
                    })
                    .collect::<Vec<_>>()
            });
            row(
                &format!("both variants from a 1/{scale} luma plane"),
                (a, b),
            );
            println!();
        }
        let plane = luma_plane(&d.rgb, w, h);
        if w / scale < 5 || h / scale < 5 {
            continue;
        }
        let (small, sw, sh) = downscaled(&plane, w, h, scale);
        for (k, &(i, v)) in VARIANTS.iter().enumerate() {
            let (t, nw, nh) = turned_plane(&small, sw, sh, i);
            let approx = hasher.floats_luma(&LumaImage::new(&t, nw, nh)?);
            distances.push((
                name.clone(),
                v,
                approx.hash().distance(&exact[k].hash()),
                exact[k].quality,
            ));
        }
    }
    if !distances.is_empty() {
        println!("Variant hashed from a 1/{scale} luma plane vs the exact variant (bits):");
        println!();
        println!("| file | variant | bits | exact quality |");
        println!("|---|---|---|---|");
        for (f, v, bits, q) in &distances {
            println!("| {f} | {v} | {bits} | {q} |");
        }
        let n = distances.len() as f64;
        let mean = distances.iter().map(|d| f64::from(d.2)).sum::<f64>() / n;
        let max = distances.iter().map(|d| d.2).max().unwrap_or(0);
        println!();
        println!(
            "{} variants: mean {mean:.2} bits, max {max}",
            distances.len()
        );
    }
    Ok(())
}

//! Benign generated images: smooth random colour fields with a few sharp-edged shapes, so that
//! CI can measure recall without the corpus cache. They are not photos; their numbers are a
//! regression guard, not the corpus measurement.

use image::imageops::FilterType;
use image::{DynamicImage, Rgb, RgbImage};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn unit(r: &mut ChaCha20Rng) -> f32 {
    (r.next_u32() >> 8) as f32 / (1u32 << 24) as f32
}

/// A generated image of `width` x `height` pixels, a pure function of `seed`.
///
/// It is drawn at 1/8 of the size (at least 16 x 16) and upscaled with Catmull-Rom, which keeps
/// the work small in debug builds; the shapes are drawn at full size so the image has edges.
pub fn generated(seed: u64, width: u32, height: u32) -> RgbImage {
    let mut r = ChaCha20Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let (sw, sh) = ((width / 8).max(16), (height / 8).max(16));
    let waves: Vec<[f32; 6]> = (0..8)
        .map(|_| {
            [
                (unit(&mut r) - 0.5) * 0.6,
                (unit(&mut r) - 0.5) * 0.6,
                unit(&mut r) * std::f32::consts::TAU,
                30.0 * unit(&mut r) + 10.0,
                unit(&mut r),
                unit(&mut r),
            ]
        })
        .collect();
    let base = [unit(&mut r), unit(&mut r), unit(&mut r)].map(|v| 60.0 + 130.0 * v);
    let small = RgbImage::from_fn(sw, sh, |x, y| {
        let mut c = base;
        for w in &waves {
            let v = w[3] * (w[0] * x as f32 + w[1] * y as f32 + w[2]).sin();
            c[0] += v * w[4];
            c[1] += v * w[5];
            c[2] += v * (1.0 - w[4]);
        }
        Rgb(c.map(|v| v.clamp(0.0, 255.0) as u8))
    });
    let mut img = DynamicImage::ImageRgb8(small)
        .resize_exact(width, height, FilterType::CatmullRom)
        .to_rgb8();
    // A few filled rectangles and discs in random colours.
    for _ in 0..6 {
        let cx = unit(&mut r) * width as f32;
        let cy = unit(&mut r) * height as f32;
        let rad = (0.05 + 0.2 * unit(&mut r)) * width.min(height) as f32;
        let colour = Rgb([r.next_u32() as u8, r.next_u32() as u8, r.next_u32() as u8]);
        let disc = r.next_u32() % 2 == 0;
        let x0 = (cx - rad).max(0.0) as u32;
        let x1 = ((cx + rad) as u32).min(width);
        let y0 = (cy - rad).max(0.0) as u32;
        let y1 = ((cy + rad) as u32).min(height);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                if !disc || dx * dx + dy * dy <= rad * rad {
                    img.put_pixel(x, y, colour);
                }
            }
        }
    }
    img
}

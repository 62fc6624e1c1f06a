//! The re-share transform suite: how messengers and people pass images on.
//!
//! Every transform is a pure function of the image and a seed. Lossy encodings are encoded with
//! the `image` crate (JPEG) or libwebp (lossy WebP, through the `webp` crate: the `image` crate
//! only encodes lossless WebP) and decoded again with the project's decoder (crates/media:
//! libjpeg-turbo for JPEG, `image`'s WebP decoder for WebP), as a receiving client would decode
//! them. Lossless outputs (the PNG of a screenshot) are not round-tripped: PNG returns the same
//! pixels.

use anyhow::{anyhow, Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// One re-share transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The original, unchanged (a byte-identical re-share).
    Identity,
    /// JPEG re-encode at this quality.
    Jpeg(u8),
    /// A messenger's resize: the long side scaled down to this many pixels (never up), then
    /// JPEG at a quality drawn from 75..=85 per image (seeded).
    Messenger(u32),
    /// Screenshot-like: rescaled by 0.9 (Catmull-Rom), saved as PNG (lossless).
    Screenshot,
    /// Brightness +10 % (each channel times 1.1, clamped), then JPEG q90.
    Brightness,
    /// Gamma 0.9 on each channel, then JPEG q90.
    Gamma,
    /// Crop of about this many percent per border (each border drawn from 0.5x..1.5x of it,
    /// seeded), then JPEG q90.
    Crop(u8),
    /// Letterbox: black bars of 5 % of the height above and below, then JPEG q90.
    Letterbox,
    /// Mirror (left-right flip), then JPEG q90.
    Mirror,
    /// Rotation by 90 degrees clockwise, then JPEG q90.
    Rot90,
    /// Rotation by 180 degrees, then JPEG q90.
    Rot180,
    /// Rotation by 270 degrees clockwise (90 counter-clockwise), then JPEG q90.
    Rot270,
    /// Mirror and a messenger resize (long side 512, JPEG q75-85).
    MirrorMessenger512,
    /// Lossy WebP re-encode at this quality (libwebp's default configuration).
    WebP(u8),
    /// A messenger's resize to WebP: the long side scaled down to this many pixels (never up),
    /// then lossy WebP at q 75.
    MessengerWebP(u32),
}

impl Transform {
    /// The suite measured by default, in report order.
    pub fn suite() -> Vec<Transform> {
        use Transform::*;
        vec![
            Identity,
            Jpeg(95),
            Jpeg(85),
            Jpeg(75),
            Jpeg(60),
            Jpeg(40),
            Messenger(1600),
            Messenger(1280),
            Messenger(1024),
            Messenger(800),
            Messenger(512),
            Messenger(256),
            Screenshot,
            Brightness,
            Gamma,
            Crop(2),
            Crop(5),
            Letterbox,
            Mirror,
            Rot90,
            Rot180,
            Rot270,
            MirrorMessenger512,
            // Appended, not grouped with JPEG: the seed of each transform is its index in the
            // suite, so inserting would change the copies (and numbers) of every later one.
            WebP(75),
            WebP(50),
            MessengerWebP(1024),
        ]
    }

    /// A short stable name (`jpeg-q80`, `messenger-512`, ...).
    pub fn name(&self) -> String {
        match self {
            Transform::Identity => "identity".into(),
            Transform::Jpeg(q) => format!("jpeg-q{q}"),
            Transform::Messenger(l) => format!("messenger-{l}"),
            Transform::Screenshot => "screenshot-x0.9-png".into(),
            Transform::Brightness => "brightness+10%".into(),
            Transform::Gamma => "gamma-0.9".into(),
            Transform::Crop(p) => format!("crop-{p}%"),
            Transform::Letterbox => "letterbox-5%".into(),
            Transform::Mirror => "mirror".into(),
            Transform::Rot90 => "rot90".into(),
            Transform::Rot180 => "rot180".into(),
            Transform::Rot270 => "rot270".into(),
            Transform::MirrorMessenger512 => "mirror+messenger-512".into(),
            Transform::WebP(q) => format!("webp-q{q}"),
            Transform::MessengerWebP(l) => format!("messenger-webp-{l}"),
        }
    }

    /// The family the goals are stated for (`jpeg`, `messenger`, ...).
    pub fn family(&self) -> &'static str {
        match self {
            Transform::Identity => "identity",
            Transform::Jpeg(_) => "jpeg",
            Transform::Messenger(_) => "messenger",
            Transform::Screenshot => "screenshot",
            Transform::Brightness | Transform::Gamma => "brightness-gamma",
            Transform::Crop(_) => "crop",
            Transform::Letterbox => "letterbox",
            Transform::Mirror
            | Transform::Rot90
            | Transform::Rot180
            | Transform::Rot270
            | Transform::MirrorMessenger512 => "dihedral",
            // Its own family, so that the JPEG and messenger rows stay comparable with runs
            // made before WebP was in the suite.
            Transform::WebP(_) | Transform::MessengerWebP(_) => "webp",
        }
    }

    /// The transformed copy of `img`; `seed` fixes every random choice.
    pub fn apply(&self, img: &RgbImage, seed: u64) -> Result<RgbImage> {
        let mut r = ChaCha20Rng::seed_from_u64(seed);
        Ok(match *self {
            Transform::Identity => img.clone(),
            Transform::Jpeg(q) => jpeg_roundtrip(img, q)?,
            Transform::Messenger(long) => {
                let q = 75 + (r.next_u32() % 11) as u8;
                jpeg_roundtrip(&resize_long_side(img, long), q)?
            }
            Transform::Screenshot => scale(img, 0.9, FilterType::CatmullRom),
            Transform::Brightness => {
                jpeg_roundtrip(&map_channels(img, |v| (v as f32 * 1.1).min(255.0)), 90)?
            }
            Transform::Gamma => jpeg_roundtrip(
                &map_channels(img, |v| 255.0 * (v as f32 / 255.0).powf(0.9)),
                90,
            )?,
            Transform::Crop(p) => {
                let (w, h) = img.dimensions();
                let mut frac = || p as f32 / 100.0 * (0.5 + (r.next_u32() % 1001) as f32 / 1000.0);
                let (l, rt, t, b) = (frac(), frac(), frac(), frac());
                let x0 = (w as f32 * l) as u32;
                let y0 = (h as f32 * t) as u32;
                let x1 = w.saturating_sub((w as f32 * rt) as u32).max(x0 + 1);
                let y1 = h.saturating_sub((h as f32 * b) as u32).max(y0 + 1);
                let c = imageops::crop_imm(img, x0, y0, x1 - x0, y1 - y0).to_image();
                jpeg_roundtrip(&c, 90)?
            }
            Transform::Letterbox => {
                let (w, h) = img.dimensions();
                let bar = (h as f32 * 0.05).round() as u32;
                let mut out = RgbImage::from_pixel(w, h + 2 * bar, Rgb([0, 0, 0]));
                imageops::replace(&mut out, img, 0, i64::from(bar));
                jpeg_roundtrip(&out, 90)?
            }
            Transform::Mirror => jpeg_roundtrip(&imageops::flip_horizontal(img), 90)?,
            Transform::Rot90 => jpeg_roundtrip(&imageops::rotate90(img), 90)?,
            Transform::Rot180 => jpeg_roundtrip(&imageops::rotate180(img), 90)?,
            Transform::Rot270 => jpeg_roundtrip(&imageops::rotate270(img), 90)?,
            Transform::MirrorMessenger512 => {
                let q = 75 + (r.next_u32() % 11) as u8;
                jpeg_roundtrip(&resize_long_side(&imageops::flip_horizontal(img), 512), q)?
            }
            Transform::WebP(q) => webp_roundtrip(img, q)?,
            Transform::MessengerWebP(long) => webp_roundtrip(&resize_long_side(img, long), 75)?,
        })
    }
}

/// `img` with every channel value mapped by `f` (rounded, clamped to 0..=255).
fn map_channels(img: &RgbImage, f: impl Fn(u8) -> f32) -> RgbImage {
    let lut: Vec<u8> = (0..=255u8)
        .map(|v| f(v).round().clamp(0.0, 255.0) as u8)
        .collect();
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = lut[usize::from(*c)];
        }
    }
    out
}

/// `img` scaled by `factor` (each side at least 1 pixel).
pub fn scale(img: &RgbImage, factor: f32, filter: FilterType) -> RgbImage {
    let (w, h) = img.dimensions();
    let nw = ((w as f32 * factor).round() as u32).max(1);
    let nh = ((h as f32 * factor).round() as u32).max(1);
    imageops::resize(img, nw, nh, filter)
}

/// `img` with its long side scaled down to `long` pixels (bilinear, as messengers do); an image
/// already that small is returned unchanged (messengers do not upscale).
pub fn resize_long_side(img: &RgbImage, long: u32) -> RgbImage {
    resize_long_side_with(img, long, FilterType::Triangle)
}

/// [`resize_long_side`] with another resize filter.
pub fn resize_long_side_with(img: &RgbImage, long: u32, filter: FilterType) -> RgbImage {
    let (w, h) = img.dimensions();
    let cur = w.max(h);
    if cur <= long {
        return img.clone();
    }
    scale(img, long as f32 / cur as f32, filter)
}

/// JPEG-encode `img` at `quality` and decode it with the project's decoder.
pub fn jpeg_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage> {
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode_image(img)
        .context("JPEG encode")?;
    decode(&buf)
}

/// Lossy WebP of `img` at `quality` (0..=100; more is taken as 100), encoded by libwebp with its
/// default configuration (method 4, no sharp YUV). Fails, instead of panicking, for sides libwebp
/// cannot encode (0 or above 16,383 px).
pub fn webp_encode(img: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let (w, h) = img.dimensions();
    let mem = webp::Encoder::from_rgb(img.as_raw(), w, h)
        .encode_simple(false, f32::from(quality.min(100)))
        .map_err(|e| anyhow!("WebP encode of {w}x{h} at q{quality}: {e:?}"))?;
    Ok(mem.to_vec())
}

/// Lossy-WebP-encode `img` at `quality` and decode it with the project's decoder.
pub fn webp_roundtrip(img: &RgbImage, quality: u8) -> Result<RgbImage> {
    decode(&webp_encode(img, quality)?)
}

/// Decodes image bytes with crates/media (the client's decoder) to an RGB image.
pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
    let d = hashguard_media::decode(bytes, &hashguard_media::DecodeOptions::default())?;
    let (w, h) = (u32::try_from(d.width)?, u32::try_from(d.height)?);
    RgbImage::from_raw(w, h, d.rgb).ok_or_else(|| anyhow!("decoded buffer has the wrong size"))
}

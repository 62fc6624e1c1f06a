//! What the client computes from a file before it is encrypted: its kind and dimensions, the
//! perceptual hash inputs of its items (one for an image, up to 16 keyframes for a video), the
//! SHA-256 of its bytes, and the visual derivative a reviewer would see if, and only if, the
//! account crosses the threshold or the sender consents to the automatic check.

use std::io::Write;
use std::time::{Duration, Instant};

use hashguard_media::{DecodeOptions, ImageFormat};
use hashguard_pdq::{PdqHasher, RgbImage, MATCH_THRESHOLD, QUALITY_THRESHOLD};
use hashguard_protocol::params::V1_DIHEDRAL;
use hashguard_protocol::sender::{DihedralInput, PdqInput, MAX_KEYFRAMES};
use hashguard_vpdq::{hash_video_file, select_keyframes, VideoOptions};
use sha2::{Digest, Sha256};

use crate::attachment::MediaType;
use crate::error::SdkError;

/// The longest side of the visual derivative, in pixels. Small enough to fit the protocol's
/// fixed VD blob as a greyscale JPEG and to show a reviewer only the gist of the picture.
pub const THUMBNAIL_SIDE: u32 = 96;

/// A file, understood.
#[derive(Debug)]
pub struct Analysed {
    /// Image or video.
    pub media: MediaType,
    /// Its MIME type.
    pub content_type: &'static str,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// SHA-256 of the file (the protocol's `cid`).
    pub content_sha256: [u8; 32],
    /// The PDQ inputs: one per image, one per keyframe of a video (1 to 16). `None` for an
    /// image too small to hash: its voucher then has no opening probe.
    pub frames: Vec<Option<PdqInput>>,
    /// An image's dihedral variants (PDQ of its rotated and mirrored pixels), so its voucher also probes the keys
    /// of its mirrored and rotated versions when the parameters ask for it. `None` for videos
    /// (vPDQ gives no floats) and images too small to hash.
    pub dihedral: Option<DihedralInput>,
    /// The visual derivative (greyscale JPEG), empty for videos.
    pub thumbnail: Vec<u8>,
    /// Time spent decoding.
    pub decode_time: Duration,
    /// Time spent hashing (and, for images, making the thumbnail).
    pub hash_time: Duration,
}

/// Recognises `bytes` as an image or a video and computes what the vouchers need.
/// `vd_capacity` is how many bytes the table's VD blob holds.
pub fn analyse(bytes: &[u8], vd_capacity: usize) -> Result<Analysed, SdkError> {
    if let Some(format) = hashguard_media::sniff(bytes) {
        return analyse_image(bytes, format, vd_capacity);
    }
    if hashguard_vpdq::is_video(bytes) {
        return analyse_video(bytes);
    }
    Err(SdkError::UnsupportedFile(
        "not an image (JPEG, PNG, GIF, WebP, BMP, TIFF) or a video this app can send".into(),
    ))
}

/// Refuses parameters that probe a dihedral variant the SDK does not hash: an image is hashed
/// at preparation, before any table is known, in the variants of [`V1_DIHEDRAL`] only, and a
/// probe of a variant never hashed would probe a meaningless key.
pub fn check_dihedral_supported(
    params: &hashguard_protocol::params::Params,
) -> Result<(), SdkError> {
    let missing = params.dihedral() & !V1_DIHEDRAL;
    if missing == 0 {
        return Ok(());
    }
    let names: Vec<&str> = hashguard_protocol::params::DIHEDRAL_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| missing & (1 << bit) != 0)
        .map(|(_, name)| *name)
        .collect();
    Err(SdkError::UnsupportedParameters(format!(
        "the table probes the dihedral variants {} that this SDK does not hash (it hashes rot90 and flipy)",
        names.join(", ")
    )))
}

fn image_mime(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::Gif => "image/gif",
        ImageFormat::WebP => "image/webp",
        ImageFormat::Bmp => "image/bmp",
        ImageFormat::Tiff => "image/tiff",
    }
}

fn analyse_image(
    bytes: &[u8],
    format: ImageFormat,
    vd_capacity: usize,
) -> Result<Analysed, SdkError> {
    let started = Instant::now();
    let decoded = hashguard_media::decode(bytes, &DecodeOptions::default())
        .map_err(|e| SdkError::UnsupportedFile(format!("the image cannot be read: {e}")))?;
    let content_sha256 = Sha256::digest(bytes).into();
    let decode_time = started.elapsed();

    let started = Instant::now();
    let (width, height) = (decoded.width, decoded.height);
    // Images under PDQ's minimum size have no hash: their voucher never opens.
    let (pdq, dihedral) = match RgbImage::new(&decoded.rgb, width, height) {
        Ok(view) => {
            let mut hasher = PdqHasher::new();
            let pdq = PdqInput::from_floats(&hasher.floats_rgb(&view));
            // The rotated and mirrored pixels hashed again: a mirrored re-share's hash
            // follows these much more closely than the DCT-domain variants (docs/quality.md
            // "Dihedral probes"). Only the variants the pinned v1 parameters probe are hashed
            // (each is a full pass over the pixels); the others are never read.
            let dihedral = DihedralInput::from_variant_floats(
                &hasher.dihedral_pixel_floats_rgb_selected(&view, V1_DIHEDRAL),
            );
            (Some(pdq), Some(dihedral))
        }
        Err(_) => (None, None),
    };
    let thumbnail = thumbnail(decoded.rgb, width, height, vd_capacity)?;
    Ok(Analysed {
        media: MediaType::Image,
        content_type: image_mime(format),
        width: u32::try_from(width).ok(),
        height: u32::try_from(height).ok(),
        content_sha256,
        frames: vec![pdq],
        dihedral,
        thumbnail,
        decode_time,
        hash_time: started.elapsed(),
    })
}

/// A greyscale JPEG at most [`THUMBNAIL_SIDE`] pixels on its longer side that fits
/// `capacity` bytes (smaller and coarser until it does).
fn thumbnail(
    rgb: Vec<u8>,
    width: usize,
    height: usize,
    capacity: usize,
) -> Result<Vec<u8>, SdkError> {
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Ok(Vec::new());
    };
    let Some(image) = image::RgbImage::from_raw(w, h, rgb) else {
        return Ok(Vec::new());
    };
    for (side, quality) in [(THUMBNAIL_SIDE, 60), (72, 50), (48, 40), (32, 30)] {
        let scale = f64::from(side) / f64::from(w.max(h));
        let (tw, th) = if scale >= 1.0 {
            (w, h)
        } else {
            (
                ((f64::from(w) * scale).round() as u32).max(1),
                ((f64::from(h) * scale).round() as u32).max(1),
            )
        };
        let small = thumbnail_rgb(&image, tw, th);
        let grey = image::DynamicImage::ImageRgb8(small).into_luma8();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&grey)
            .map_err(|e| SdkError::UnsupportedFile(format!("cannot make the thumbnail: {e}")))?;
        if out.len() <= capacity {
            return Ok(out);
        }
    }
    // Even 32 pixels at quality 30 did not fit a tiny VD blob: the reviewer sees nothing
    // rather than the upload failing.
    Ok(Vec::new())
}

/// `image::imageops::thumbnail(image, tw, th)`, pixel for pixel, in a few milliseconds for a
/// 12 MP photo instead of about 28. The visual derivative must stay exactly `image`'s (the
/// server's second hash of a listed entry is computed from `image`'s thumbnail of the entry,
/// `hashguard_hashing::second::derivative`), so this only computes the same thing faster:
/// `image` reads each pixel through its generic per-pixel accessor; here every output pixel's
/// window (the same f32 bounds `image` computes) is summed from per-column sums of its rows,
/// in integers, with `image`'s rounding. Any window narrower than one pixel (an enlargement,
/// where `image` interpolates fractions) falls back to `image` itself.
fn thumbnail_rgb(image: &image::RgbImage, tw: u32, th: u32) -> image::RgbImage {
    summed_thumbnail(image, tw, th).unwrap_or_else(|| image::imageops::thumbnail(image, tw, th))
}

/// The windowed sums of [`thumbnail_rgb`], or `None` where `image` would not sum whole-pixel
/// windows (an empty image or output, or a window narrower than one pixel).
fn summed_thumbnail(image: &image::RgbImage, tw: u32, th: u32) -> Option<image::RgbImage> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 || tw == 0 || th == 0 {
        return None;
    }
    // image 0.25 `thumbnail`: window [left, right) x [bottom, top) of output (x, y).
    let x_ratio = width as f32 / tw as f32;
    let y_ratio = height as f32 / th as f32;
    let span = |i: u32, ratio: f32, len: u32| {
        let lowf = i as f32 * ratio;
        let highf = lowf + ratio;
        let low = (lowf.ceil() as u32).clamp(0, len - 1);
        let high = (highf.ceil() as u32).max(low).min(len);
        (low as usize, high as usize)
    };
    let cols: Vec<(usize, usize)> = (0..tw).map(|x| span(x, x_ratio, width)).collect();
    let rows: Vec<(usize, usize)> = (0..th).map(|y| span(y, y_ratio, height)).collect();
    if cols.iter().chain(&rows).any(|&(a, b)| a == b) {
        return None;
    }
    let (w, raw) = (width as usize, image.as_raw());
    let mut out = image::RgbImage::new(tw, th);
    let mut column_sums = vec![0u32; 3 * w];
    for (oy, &(bottom, top)) in rows.iter().enumerate() {
        column_sums.iter_mut().for_each(|s| *s = 0);
        for y in bottom..top {
            for (s, &v) in column_sums.iter_mut().zip(&raw[3 * w * y..3 * w * (y + 1)]) {
                *s += u32::from(v);
            }
        }
        for (ox, &(left, right)) in cols.iter().enumerate() {
            let mut sum = [0u32; 3];
            for px in column_sums[3 * left..3 * right].chunks_exact(3) {
                sum[0] += px[0];
                sum[1] += px[1];
                sum[2] += px[2];
            }
            // At most 2^32 / 255 pixels per window: image sizes are bounded far below by the
            // decoder's pixel limit, and `image` sums in u32 too.
            let n = ((right - left) * (top - bottom)) as u32;
            let avg = sum.map(|c| ((c + n / 2) / n).min(255) as u8);
            out.put_pixel(ox as u32, oy as u32, image::Rgb(avg));
        }
    }
    Some(out)
}

fn analyse_video(bytes: &[u8]) -> Result<Analysed, SdkError> {
    let started = Instant::now();
    let content_sha256 = Sha256::digest(bytes).into();
    // libav reads from a path; the file is private to this process and deleted on drop.
    let mut file = tempfile::NamedTempFile::new().map_err(SdkError::Io)?;
    file.write_all(bytes).map_err(SdkError::Io)?;
    file.flush().map_err(SdkError::Io)?;
    let features = hash_video_file(file.path(), &VideoOptions::default())
        .map_err(|e| SdkError::UnsupportedFile(format!("the video cannot be read: {e}")))?;
    let elapsed = started.elapsed();
    let keyframes = select_keyframes(&features, MAX_KEYFRAMES, QUALITY_THRESHOLD, MATCH_THRESHOLD);
    // vPDQ gives each frame's hash and quality but not its float coefficients, so the probes'
    // weak-bit flips cannot be ranked by margin: every margin is equal and the flipped bits
    // are the first of the key positions. The exact key of every keyframe is always probed.
    let mut frames: Vec<Option<PdqInput>> = keyframes
        .iter()
        .map(|f| {
            Some(PdqInput {
                hash: f.hash,
                margins: [1.0; 256],
                quality: f.quality,
            })
        })
        .collect();
    if frames.is_empty() {
        // No frame good enough to hash (a black video, say): one voucher that never opens.
        frames.push(None);
    }
    Ok(Analysed {
        media: MediaType::Video,
        content_type: video_mime(bytes),
        width: None,
        height: None,
        content_sha256,
        frames,
        dihedral: None,
        thumbnail: Vec::new(),
        // Decoding and hashing are interleaved frame by frame in libav's loop.
        decode_time: elapsed,
        hash_time: Duration::ZERO,
    })
}

fn video_mime(bytes: &[u8]) -> &'static str {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(4, b"ftyp") && at(8, b"qt  ") {
        "video/quicktime"
    } else if at(4, b"ftyp") {
        "video/mp4"
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        "video/webm"
    } else if at(0, b"RIFF") {
        "video/x-msvideo"
    } else if at(0, b"OggS") {
        "video/ogg"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast thumbnail is `image`'s, pixel for pixel: noise (every pixel counts), sizes
    /// whose ratios are not integers, thin images, a 1-pixel output, and enlargements (the
    /// fallback).
    #[test]
    fn thumbnail_equals_image_crate() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        // (size, thumbnail size, whether the summed path applies rather than the fallback).
        for (w, h, tw, th, summed) in [
            (4000u32, 3000u32, 96u32, 72u32, true),
            (1999, 1333, 96, 64, true),
            (97, 95, 96, 94, true),
            (1001, 7, 96, 1, true),
            (7, 1001, 1, 96, true),
            (300, 200, 1, 1, true),
            (96, 72, 96, 72, true),
            (50, 40, 96, 77, false),
        ] {
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
            });
            let want = image::imageops::thumbnail(&img, tw, th);
            assert_eq!(summed_thumbnail(&img, tw, th).is_some(), summed, "{w}x{h}");
            assert!(thumbnail_rgb(&img, tw, th) == want, "{w}x{h} to {tw}x{th}");
        }
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x ^ y) * 7) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn an_image_gives_one_hash_and_a_small_greyscale_thumbnail() {
        let bytes = png(640, 480);
        let a = analyse(&bytes, 4076).expect("analyse");
        assert_eq!(a.media, MediaType::Image);
        assert_eq!(a.content_type, "image/png");
        assert_eq!((a.width, a.height), (Some(640), Some(480)));
        assert_eq!(a.frames.len(), 1);
        assert!(a.frames[0].is_some());
        assert_eq!(a.content_sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        assert!(!a.thumbnail.is_empty() && a.thumbnail.len() <= 4076);
        let thumb = image::load_from_memory(&a.thumbnail).expect("a JPEG");
        assert_eq!((thumb.width(), thumb.height()), (96, 72));
        assert_eq!(thumb.color(), image::ColorType::L8);
        // A tiny blob gets a smaller thumbnail, or none, never an error.
        let small = analyse(&bytes, 700).expect("analyse");
        assert!(small.thumbnail.len() <= 700);
    }

    #[test]
    fn too_small_to_hash_still_sends_and_other_files_are_refused_in_words() {
        // Too small for a reliable hash: no hash, or one under the quality floor (its voucher
        // then has no opening probe), and the file is still sent.
        let a = analyse(&png(3, 3), 4076).expect("analyse");
        assert!(a.frames[0]
            .as_ref()
            .is_none_or(|p| p.quality < QUALITY_THRESHOLD));
        let e = analyse(b"%PDF-1.7 not a picture", 4076).expect_err("a PDF");
        assert!(e.to_string().contains("not an image"), "{e}");
        let e = analyse(&png(64, 64)[..60], 4076).expect_err("truncated");
        assert!(e.to_string().contains("cannot be read"), "{e}");
    }

    /// Parameters within the hashed variants pass; one that probes another variant is refused
    /// with its name.
    #[test]
    fn parameters_probing_unhashed_variants_are_refused() {
        use hashguard_protocol::params::{Params, ParamsSpec, Policy};
        for policy in [Policy::Intervene, Policy::Silent] {
            assert!(check_dihedral_supported(&Params::v1(policy)).is_ok());
        }
        let other = Params::new(ParamsSpec {
            dihedral: 1 << 1 | 1 << 4,
            ..Params::v1(Policy::Intervene).to_spec()
        })
        .expect("params");
        let e = check_dihedral_supported(&other).expect_err("rot180 is not hashed");
        assert!(e.to_string().contains("rot180"), "{e}");
        assert!(!e.to_string().contains("flipy,"), "{e}");
    }
}

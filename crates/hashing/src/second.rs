//! The second hash of the automatic check (protocol.md R/E12 step 2, docs/second-hash.md): a
//! perceptual hash of the *visual derivative* computed differently from PDQ, so that an image
//! crafted to collide with a listed entry in PDQ does not also collide in it.
//!
//! It has two parts, both of the greyscale derivative:
//! - **gradients**, 128 bits: imagehash's `dhash` and `dhash_vertical`, the derivative resized
//!   (Lanczos3) to 9x8, each pixel against its right neighbour (64 bits), and to 8x9, each
//!   pixel against the one below (64 bits);
//! - **profiles**, 32 bits: the derivative resized (Triangle) to 64x64, its column sums and its
//!   row sums, and of each of those two profiles the signs of the DCT-II coefficients at
//!   frequencies 1..=16 (PDQ's own basis).
//!
//! The distance is the gradient bits that differ plus twice the profile bits that differ
//! (0..=[`SECOND_HASH_MAX_DISTANCE`]). Chosen by measurement over PDQ-DCT hashes (pHash, PDQ's
//! floats), a Haar wavelet hash, an edge-orientation histogram and other dhash variants
//! (docs/second-hash.md has the numbers). The profiles are the part of a picture PDQ cannot
//! see: PDQ's band holds frequencies 1..=16 on *both* axes, and every one of its basis images
//! sums to zero along each row and column, so pushing an image onto a listed PDQ hash leaves
//! its profiles where they were; the gradients depend on sign changes between neighbouring
//! cells, which PDQ's bits do not constrain.
//!
//! Both sides hash the same kind of picture:
//! - a list's value is [`SecondHash::of_rgb`] of the listed original, decoded by the same
//!   decoder as its PDQ ([`crate::Hasher::second_hash_bytes`]): the original is reduced to the
//!   derivative first ([`derivative`]: `image`'s thumbnail to [`DERIVATIVE_SIDE`] pixels on the
//!   long side, then `image`'s luma), exactly as the client reduces an attachment before it
//!   seals the JPEG of it into the voucher's VD blob;
//! - the server's value is [`SecondHash::of_rgb`] of the decrypted VD (already that small and
//!   grey, so reducing it again changes nothing).
//!
//! Its text form is 40 lowercase hex digits (the horizontal and the vertical gradients as
//! imagehash prints them, then the profiles), parsed strictly by [`SecondHash::from_hex`].

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

/// The derivative's long side: the client's thumbnail (`THUMBNAIL_SIDE` of crates/client).
pub const DERIVATIVE_SIDE: u32 = 96;

/// Two second hashes at most this far apart ([`SecondHash::distance`]) match. The smallest
/// threshold that keeps 99 % of the re-shared copies (JPEG, WebP, messenger resizes,
/// screenshots, brightness, gamma, crops, letterbox) whose PDQ still matches their original
/// within 31, both over the whole benign corpus (which needs 23) and over its photo-like part
/// (22 would do there): a copy the second hash misses is released by the check
/// (docs/second-hash.md).
pub const SECOND_MATCH_THRESHOLD: u32 = 23;

/// How much one differing profile bit weighs against one gradient bit.
pub const PROFILE_WEIGHT: u32 = 2;

/// The largest [`SecondHash::distance`]: every gradient and every profile bit differs.
pub const SECOND_HASH_MAX_DISTANCE: u32 = 128 + PROFILE_WEIGHT * 32;

/// The length of [`SecondHash::to_hex`].
pub const SECOND_HASH_HEX_LEN: usize = 40;

/// The length of the text form before the profiles were added (the gradients alone), which
/// [`SecondHash::from_hex`] names in its error.
const OLD_HEX_LEN: usize = 32;

/// The side of the square the profiles are summed over (PDQ's buffer size).
const PROFILE_GRID: u32 = 64;

/// A DCT coefficient of a profile counts as positive above this: a flat or symmetric profile
/// gives coefficients that are zero up to rounding, and those must not flip with it.
const PROFILE_EPSILON: f64 = 1e-6;

/// A second hash: 128 gradient-sign bits and 32 profile bits of the derivative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecondHash {
    /// imagehash's `dhash`: row-major over 8x8 cells, the first bit the most significant.
    pub horizontal: u64,
    /// imagehash's `dhash_vertical`, in the same order.
    pub vertical: u64,
    /// The signs of the column profile's DCT coefficients 1..=16, then the row profile's, the
    /// first the most significant bit.
    pub profiles: u32,
}

/// Why an image or a text has no second hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecondHashError {
    /// The pixel buffer does not hold `width x height` pixels, or a side is zero.
    #[error("a {width}x{height} image needs {needed} bytes of pixels, got {actual}")]
    Pixels {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The text is not 40 lowercase or uppercase hex digits.
    #[error("a second hash is {SECOND_HASH_HEX_LEN} hex digits; got {0}")]
    Text(String),
    /// The text is a second hash in the 32-digit form of an earlier version (gradients only),
    /// which cannot be compared with this one.
    #[error(
        "{0:?} is a second hash in the earlier 32-digit form (before the profiles were added); \
         compute it again from the listed original (`hashguard list second-hash`)"
    )]
    OldForm(String),
}

/// The derivative of an RGB image (`3 * width * height` bytes, rows tightly packed), as the
/// client makes it before the JPEG: `image`'s thumbnail to [`DERIVATIVE_SIDE`] pixels on the
/// long side (never up), then `image`'s luma (Rec. 709 weights).
pub fn derivative(rgb: &[u8], width: usize, height: usize) -> Result<GrayImage, SecondHashError> {
    let bad = || SecondHashError::Pixels {
        width,
        height,
        needed: width.saturating_mul(height).saturating_mul(3),
        actual: rgb.len(),
    };
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(bad());
    };
    if w == 0
        || h == 0
        || width.checked_mul(height).and_then(|n| n.checked_mul(3)) != Some(rgb.len())
    {
        return Err(bad());
    }
    let image = RgbImage::from_raw(w, h, rgb.to_vec()).ok_or_else(bad)?;
    let scale = f64::from(DERIVATIVE_SIDE) / f64::from(w.max(h));
    let small = if scale >= 1.0 {
        image
    } else {
        // The client's rounding (crates/client media::thumbnail).
        let tw = ((f64::from(w) * scale).round() as u32).max(1);
        let th = ((f64::from(h) * scale).round() as u32).max(1);
        imageops::thumbnail(&image, tw, th)
    };
    Ok(image::DynamicImage::ImageRgb8(small).into_luma8())
}

/// `image` turned into dihedral variant `variant` (0..7, in the order of the protocol's
/// `DIHEDRAL_NAMES`: rot90, rot180, rot270, flipx, flipy, flipplus1, flipminus1), by exactly
/// the pixel maps PDQ's dihedral hashes use (`hashguard_pdq::PdqHasher::dihedral_pixel_floats_rgb`),
/// so that the server turns a derivative the way the client turned the image whose variant
/// key opened. `None` for a variant outside 0..7.
pub fn oriented<P: image::Pixel>(
    image: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    variant: usize,
) -> Option<image::ImageBuffer<P, Vec<P::Subpixel>>> {
    let (w, h) = image.dimensions();
    // (swaps the sides, source (column, row) of new pixel (x, y)).
    type Map = fn(u32, u32, u32, u32) -> (u32, u32);
    let maps: [(bool, Map); 7] = [
        (true, |x, y, w, _h| (w - 1 - y, x)),
        (false, |x, y, w, h| (w - 1 - x, h - 1 - y)),
        (true, |x, y, _w, h| (y, h - 1 - x)),
        (false, |x, y, _w, h| (x, h - 1 - y)),
        (false, |x, y, w, _h| (w - 1 - x, y)),
        (true, |x, y, _w, _h| (y, x)),
        (true, |x, y, w, h| (w - 1 - y, h - 1 - x)),
    ];
    let (swap, map) = *maps.get(variant)?;
    let (nw, nh) = if swap { (h, w) } else { (w, h) };
    Some(image::ImageBuffer::from_fn(nw, nh, |x, y| {
        let (col, row) = map(x, y, w, h);
        *image.get_pixel(col, row)
    }))
}

/// Decodes a visual derivative (the JPEG the client sealed into the VD blob) to the greyscale
/// picture [`SecondHash::of_derivative`] hashes. `None` if it does not decode or is larger than
/// a derivative can be (a client that sends something else gets no second-hash match).
pub fn decode_derivative(bytes: &[u8]) -> Option<GrayImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(4 * DERIVATIVE_SIDE);
    limits.max_image_height = Some(4 * DERIVATIVE_SIDE);
    limits.max_alloc = Some(4 << 20);
    reader.limits(limits);
    Some(reader.decode().ok()?.into_luma8())
}

/// The first bit the most significant, as imagehash prints its grids.
fn pack(bits: impl Iterator<Item = bool>) -> u64 {
    bits.fold(0u64, |acc, b| (acc << 1) | u64::from(b))
}

/// A 64-sample profile's DCT-II coefficients at frequencies 1..=16, by PDQ's basis
/// `sqrt(2/64) cos(pi/128 k (2j+1))` (pdq.md 2.5): the frequencies PDQ's band spans, on the
/// one axis that band leaves out.
fn profile_coefficients(profile: &[f64; 64]) -> [f64; 16] {
    static BASIS: std::sync::OnceLock<[[f64; 64]; 16]> = std::sync::OnceLock::new();
    let basis = BASIS.get_or_init(|| {
        std::array::from_fn(|i| {
            std::array::from_fn(|j| {
                let angle = std::f64::consts::PI / 128.0 * (i + 1) as f64 * (2 * j + 1) as f64;
                (2.0f64 / 64.0).sqrt() * angle.cos()
            })
        })
    });
    std::array::from_fn(|i| basis[i].iter().zip(profile).map(|(b, v)| b * v).sum())
}

/// The column and row sums of a 64x64 picture (row-major; missing pixels read as 0).
fn profiles_of(pixels: &[u8]) -> ([f64; 64], [f64; 64]) {
    let side = PROFILE_GRID as usize;
    let mut columns = [0.0f64; 64];
    let mut rows = [0.0f64; 64];
    for (y, row_sum) in rows.iter_mut().enumerate() {
        for (x, column_sum) in columns.iter_mut().enumerate() {
            let v = f64::from(pixels.get(y * side + x).copied().unwrap_or(0));
            *column_sum += v;
            *row_sum += v;
        }
    }
    (columns, rows)
}

impl SecondHash {
    /// The second hash of an RGB image (`3 * width * height` bytes): of its [`derivative`].
    pub fn of_rgb(rgb: &[u8], width: usize, height: usize) -> Result<SecondHash, SecondHashError> {
        Ok(SecondHash::of_derivative(&derivative(rgb, width, height)?))
    }

    /// The second hash of a greyscale derivative (what [`derivative`] returns, or a decoded VD).
    pub fn of_derivative(grey: &GrayImage) -> SecondHash {
        let h = imageops::resize(grey, 9, 8, FilterType::Lanczos3);
        let v = imageops::resize(grey, 8, 9, FilterType::Lanczos3);
        let p = imageops::resize(grey, PROFILE_GRID, PROFILE_GRID, FilterType::Triangle);
        SecondHash::from_resized(h.as_raw(), v.as_raw(), p.as_raw())
    }

    /// The hash of pixels already resized: `h` 9 wide and 8 high, `v` 8 wide and 9 high,
    /// `p` 64x64 (row-major). Exposed so that tests can feed a reference implementation the
    /// same pixels. Missing pixels of a short buffer read as 0.
    pub fn from_resized(h: &[u8], v: &[u8], p: &[u8]) -> SecondHash {
        let px = |buf: &[u8], i: usize| buf.get(i).copied().unwrap_or(0);
        let (columns, rows) = profiles_of(p);
        let coefficients = profile_coefficients(&columns)
            .into_iter()
            .chain(profile_coefficients(&rows));
        SecondHash {
            horizontal: pack(
                (0..8).flat_map(|y| (0..8).map(move |x| px(h, y * 9 + x + 1) > px(h, y * 9 + x))),
            ),
            vertical: pack(
                (0..8).flat_map(|y| (0..8).map(move |x| px(v, (y + 1) * 8 + x) > px(v, y * 8 + x))),
            ),
            profiles: coefficients.fold(0u32, |acc, c| (acc << 1) | u32::from(c > PROFILE_EPSILON)),
        }
    }

    /// The gradient bits that differ plus [`PROFILE_WEIGHT`] times the profile bits that differ
    /// (0..=[`SECOND_HASH_MAX_DISTANCE`]).
    pub fn distance(&self, other: &SecondHash) -> u32 {
        (self.horizontal ^ other.horizontal).count_ones()
            + (self.vertical ^ other.vertical).count_ones()
            + PROFILE_WEIGHT * (self.profiles ^ other.profiles).count_ones()
    }

    /// Whether the two are within [`SECOND_MATCH_THRESHOLD`].
    pub fn matches(&self, other: &SecondHash) -> bool {
        self.distance(other) <= SECOND_MATCH_THRESHOLD
    }

    /// 40 lowercase hex digits: the horizontal and the vertical gradients as imagehash prints
    /// them (16 each), then the profiles (8).
    pub fn to_hex(&self) -> String {
        format!(
            "{:016x}{:016x}{:08x}",
            self.horizontal, self.vertical, self.profiles
        )
    }

    /// Parses [`SecondHash::to_hex`]'s form: exactly 40 ASCII hex digits (either case), nothing
    /// else (no sign, prefix or whitespace); the earlier 32-digit form is refused with its own
    /// error. Never panics, whatever the input.
    pub fn from_hex(text: &str) -> Result<SecondHash, SecondHashError> {
        let shown = || {
            let shown: String = text.chars().take(80).collect();
            format!("{shown:?}")
        };
        let bad = || SecondHashError::Text(shown());
        let bytes = text.as_bytes();
        if !bytes.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        if bytes.len() == OLD_HEX_LEN {
            return Err(SecondHashError::OldForm(text.to_string()));
        }
        if bytes.len() != SECOND_HASH_HEX_LEN {
            return Err(bad());
        }
        // All ASCII hex digits, so every slice is a valid `str` and a valid number.
        let horizontal = u64::from_str_radix(&text[..16], 16).map_err(|_| bad())?;
        let vertical = u64::from_str_radix(&text[16..32], 16).map_err(|_| bad())?;
        let profiles = u32::from_str_radix(&text[32..], 16).map_err(|_| bad())?;
        Ok(SecondHash {
            horizontal,
            vertical,
            profiles,
        })
    }
}

impl std::fmt::Display for SecondHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for SecondHash {
    type Err = SecondHashError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecondHash::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A benign photo-like test image: smooth gradients, a few shapes, some texture.
    fn picture(seed: u32, w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let s = seed as f32;
            let wave = ((fx * (3.0 + s) + fy * 2.0).sin() * 60.0) as i32;
            let disc = ((fx - 0.3 - 0.05 * s).powi(2) + (fy - 0.6).powi(2) < 0.04) as i32 * 90;
            let tex = ((x * 7 + y * 13 + seed * 31) % 23) as i32;
            let v = |c: i32| (c + wave + disc + tex).clamp(0, 255) as u8;
            image::Rgb([v(90 + seed as i32 * 20), v(110), v(140 - seed as i32 * 10)])
        })
    }

    fn jpeg(img: &RgbImage, q: u8) -> RgbImage {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, q)
            .encode_image(img)
            .unwrap();
        image::load_from_memory(&buf).unwrap().into_rgb8()
    }

    fn hash(img: &RgbImage) -> SecondHash {
        SecondHash::of_rgb(img.as_raw(), img.width() as usize, img.height() as usize).unwrap()
    }

    /// What the server does: the derivative sealed as a greyscale JPEG q60 (the client's VD),
    /// decoded, hashed.
    fn of_vd(img: &RgbImage) -> SecondHash {
        let grey = derivative(img.as_raw(), img.width() as usize, img.height() as usize).unwrap();
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 60)
            .encode_image(&grey)
            .unwrap();
        let vd = image::load_from_memory(&buf).unwrap().into_rgb8();
        hash(&vd)
    }

    #[test]
    fn copies_match_and_other_pictures_do_not() {
        let a = picture(1, 800, 600);
        let b = picture(4, 800, 600);
        let listed = hash(&a);
        assert_eq!(listed, hash(&a), "deterministic");
        for (what, copy) in [
            ("vd", a.clone()),
            ("jpeg q40", jpeg(&a, 40)),
            (
                "resized to 400",
                imageops::resize(&a, 400, 300, FilterType::Triangle),
            ),
        ] {
            let d = listed.distance(&of_vd(&copy));
            assert!(d <= SECOND_MATCH_THRESHOLD, "{what}: {d} bits");
        }
        let d = listed.distance(&of_vd(&b));
        assert!(d > SECOND_MATCH_THRESHOLD, "another picture: only {d} bits");
        assert!(!listed.matches(&of_vd(&b)));
    }

    #[test]
    fn a_small_grey_vd_is_its_own_derivative() {
        let a = picture(2, 1200, 700);
        let grey = derivative(a.as_raw(), 1200, 700).unwrap();
        assert_eq!(grey.dimensions(), (96, 56));
        // Hashing the derivative again as RGB (a decoded greyscale VD) changes nothing.
        let rgb = image::DynamicImage::ImageLuma8(grey.clone()).into_rgb8();
        assert_eq!(hash(&rgb), SecondHash::of_derivative(&grey));
        assert_eq!(
            derivative(rgb.as_raw(), 96, 56).unwrap().as_raw(),
            grey.as_raw()
        );
    }

    #[test]
    fn from_resized_follows_imagehash_bit_order() {
        // Row 0 of the 9x8 grid rises left to right: its 8 bits (the top bits) are set.
        let mut h = [0u8; 72];
        for (x, p) in h.iter_mut().take(9).enumerate() {
            *p = x as u8 * 10;
        }
        // Column 0 of the 8x9 grid rises top to bottom: the first bit of every row is set.
        let mut v = [0u8; 72];
        for y in 0..9 {
            v[y * 8] = y as u8 * 10;
        }
        let flat = [100u8; 4096];
        let s = SecondHash::from_resized(&h, &v, &flat);
        assert_eq!(s.horizontal, 0xff00_0000_0000_0000);
        assert_eq!(s.vertical, 0x8080_8080_8080_8080);
        // A flat picture has flat profiles: no coefficient is positive.
        assert_eq!(s.profiles, 0);
        // Short buffers read as zeros rather than panicking.
        let empty = SecondHash::from_resized(&[], &[], &[]);
        assert_eq!(empty.distance(&empty), 0);
    }

    #[test]
    fn profiles_read_the_lowest_frequency_first() {
        // Brighter on the left: the column profile falls, so its frequency-1 coefficient
        // (cos falls over the first half-period) is positive: the most significant bit. The
        // rows are all alike: no row bit.
        let left = GrayImage::from_fn(64, 64, |x, _| image::Luma([if x < 32 { 200 } else { 50 }]));
        let s = SecondHash::from_resized(&[], &[], left.as_raw());
        assert_eq!(s.profiles >> 31, 1);
        assert_eq!(s.profiles & 0xffff, 0);
        // The same picture turned by 90 degrees moves the bits to the row profile.
        let top = GrayImage::from_fn(64, 64, |_, y| image::Luma([if y < 32 { 200 } else { 50 }]));
        let t = SecondHash::from_resized(&[], &[], top.as_raw());
        assert_eq!(t.profiles, s.profiles >> 16);
    }

    /// The reason for the profiles: a change made only of PDQ's band (frequencies 1..=16 on
    /// both axes), whatever its size, leaves them as they were.
    #[test]
    fn a_change_in_pdqs_band_leaves_the_profiles() {
        let base = GrayImage::from_fn(64, 64, |x, y| {
            let (x, y) = (f64::from(x), f64::from(y));
            // 50..=176, so the change below (at most 45 either way) never clips.
            image::Luma([(80.0 + 30.0 * (x / 9.0).sin() + y * y / 80.0 + x / 4.0) as u8])
        });
        // No coefficient of the base is near zero, where rounding the changed pixels to
        // integers could flip its sign.
        let (columns, rows) = profiles_of(base.as_raw());
        let smallest = profile_coefficients(&columns)
            .into_iter()
            .chain(profile_coefficients(&rows))
            .map(f64::abs)
            .fold(f64::INFINITY, f64::min);
        assert!(smallest > 10.0, "{smallest}");
        let basis = |k: u32, j: u32| {
            (std::f64::consts::PI / 128.0 * f64::from(k) * f64::from(2 * j + 1)).cos()
        };
        let mut changed = base.clone();
        for (x, y, p) in changed.enumerate_pixels_mut() {
            let delta = 25.0 * basis(3, x) * basis(5, y) - 20.0 * basis(1, x) * basis(16, y);
            p.0[0] = (f64::from(p.0[0]) + delta).round().clamp(0.0, 255.0) as u8;
        }
        assert_ne!(base, changed);
        let a = SecondHash::from_resized(&[], &[], base.as_raw());
        let b = SecondHash::from_resized(&[], &[], changed.as_raw());
        assert_eq!(a.profiles, b.profiles);
    }

    #[test]
    fn bad_pixels_are_an_error() {
        for (buf, w, h) in [(vec![0u8; 11], 2, 2), (vec![], 0, 0), (vec![0u8; 3], 1, 0)] {
            assert!(matches!(
                SecondHash::of_rgb(&buf, w, h),
                Err(SecondHashError::Pixels { .. })
            ));
        }
        assert!(SecondHash::of_rgb(&[0u8; 3], usize::MAX, 3).is_err());
    }

    #[test]
    fn text_round_trips_and_refuses_everything_else() {
        let s = SecondHash {
            horizontal: 0x0123_4567_89ab_cdef,
            vertical: 0xfedc_ba98_7654_3210,
            profiles: 0x8000_0001,
        };
        let text = "0123456789abcdeffedcba987654321080000001";
        assert_eq!(s.to_hex(), text);
        assert_eq!(SecondHash::from_hex(&s.to_hex()), Ok(s));
        assert_eq!(s.to_string().parse::<SecondHash>(), Ok(s));
        assert_eq!(SecondHash::from_hex(&text.to_ascii_uppercase()), Ok(s));
        for bad in [
            "",
            &text[1..],
            &format!("{text}0"),
            &format!("+{}", &text[1..]),
            &format!(" {}", &text[1..]),
            &format!("0x{}", &text[2..]),
            &format!("{}g", &text[1..]),
            &format!("{}é", &text[2..]),
        ] {
            assert!(
                matches!(SecondHash::from_hex(bad), Err(SecondHashError::Text(_))),
                "{bad:?}"
            );
        }
        // The earlier 128-bit form gets an error that says what to do.
        let old = SecondHash::from_hex("042c2c4bb333354dfffff9f9d1802426").unwrap_err();
        assert!(matches!(old, SecondHashError::OldForm(_)));
        assert!(
            old.to_string().contains("hashguard list second-hash"),
            "{old}"
        );
    }

    /// What fuzz/fuzz_targets/parse_second_hash.rs checks, on bounded seeded random inputs
    /// (mostly near-valid hex strings and small pixel buffers of claimed sizes).
    #[test]
    fn random_text_and_pixels_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789abcdefABCDEFxg -+\xc3\xa9";
        for _ in 0..20_000 {
            let len = if next() % 2 == 0 {
                SECOND_HASH_HEX_LEN
            } else {
                (next() % 80) as usize
            };
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if let Ok(text) = std::str::from_utf8(&bytes) {
                if let Ok(h) = text.parse::<SecondHash>() {
                    assert_eq!(text.len(), SECOND_HASH_HEX_LEN);
                    assert_eq!(h.to_hex(), text.to_ascii_lowercase());
                }
            }
        }
        for _ in 0..300 {
            let (w, h) = ((next() % 40) as usize, (next() % 40) as usize);
            let len = if next() % 2 == 0 {
                w * h * 3
            } else {
                (next() % 5000) as usize
            };
            let pixels: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Ok(s) = SecondHash::of_rgb(&pixels, w, h) {
                assert_eq!(pixels.len(), w * h * 3);
                assert_eq!(s.distance(&s), 0);
            }
        }
    }

    #[test]
    fn distance_counts_gradients_once_and_profiles_twice() {
        let a = SecondHash {
            horizontal: 0,
            vertical: 0,
            profiles: 0,
        };
        let b = SecondHash {
            horizontal: 0b111,
            vertical: u64::MAX,
            profiles: 0b11,
        };
        assert_eq!(a.distance(&b), 3 + 64 + 2 * 2);
        assert_eq!(b.distance(&a), a.distance(&b));
        let all = SecondHash {
            horizontal: u64::MAX,
            vertical: u64::MAX,
            profiles: u32::MAX,
        };
        assert_eq!(a.distance(&all), SECOND_HASH_MAX_DISTANCE);
        let near = SecondHash {
            horizontal: (1 << (SECOND_MATCH_THRESHOLD - 2)) - 1,
            vertical: 0,
            profiles: 1,
        };
        assert_eq!(a.distance(&near), SECOND_MATCH_THRESHOLD);
        assert!(a.matches(&near));
        let far = SecondHash {
            horizontal: (1 << (SECOND_MATCH_THRESHOLD - 1)) - 1,
            vertical: 0,
            profiles: 1,
        };
        assert!(!a.matches(&far));
    }
}

#[cfg(test)]
mod orientation_tests {
    use super::*;
    use hashguard_pdq::{PdqHasher, RgbImage as PdqRgb};

    /// The server's turn of a derivative is the client's turn of the image: for every variant,
    /// PDQ of `oriented` pixels equals PDQ's own dihedral variant of the same pixels.
    #[test]
    fn oriented_is_the_turn_pdq_dihedral_hashes_use() {
        let (w, h) = (83u32, 61u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * y * 3 + (x * y) % 17) as u8;
            image::Rgb([v, v.wrapping_mul(3), (x * 2 + y) as u8])
        });
        let mut hasher = PdqHasher::new();
        let view = PdqRgb::new(img.as_raw(), w as usize, h as usize).expect("image");
        let variants = hasher.dihedral_pixel_floats_rgb(&view);
        for (variant, expected) in variants.iter().enumerate() {
            let turned = oriented(&img, variant).expect("variant");
            let (tw, th) = turned.dimensions();
            let tv = PdqRgb::new(turned.as_raw(), tw as usize, th as usize).expect("turned");
            let got = hasher.floats_rgb(&tv);
            assert_eq!(got.hash(), expected.hash(), "variant {variant}");
        }
        assert!(oriented(&img, 7).is_none());
    }

    /// A derivative decodes; anything else, or a picture far larger than a derivative, does not.
    #[test]
    fn derivatives_decode_and_other_bytes_do_not() {
        let grey = GrayImage::from_fn(96, 64, |x, y| image::Luma([(x + 2 * y) as u8]));
        let mut jpeg = std::io::Cursor::new(Vec::new());
        grey.write_to(&mut jpeg, image::ImageFormat::Jpeg)
            .expect("jpeg");
        let back = decode_derivative(jpeg.get_ref()).expect("decodes");
        assert_eq!(back.dimensions(), (96, 64));
        assert!(decode_derivative(b"not an image").is_none());
        assert!(decode_derivative(&jpeg.get_ref()[..40]).is_none());
        let big = GrayImage::new(2000, 10);
        let mut png = std::io::Cursor::new(Vec::new());
        big.write_to(&mut png, image::ImageFormat::Png)
            .expect("png");
        assert!(decode_derivative(png.get_ref()).is_none());
    }
}

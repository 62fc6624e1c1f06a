//! Image files to the exact RGB pixels the PDQ reference pipeline hashes.
//!
//! PDQ is bit-exact only if the pixels are. The reference values (`../shared/testdata/pdq`) were
//! made by decoding with Pillow (libjpeg-turbo for JPEG) and `Image.convert("RGB")`, so this crate
//! reproduces that pipeline:
//!
//! - **JPEG** through libjpeg-turbo (the `mozjpeg` crate), which decodes byte-identically to
//!   Pillow. Pure-Rust JPEG decoders differ by up to 5 per channel, which moves hashes of small
//!   images by several bits. CMYK JPEGs are read as Pillow does: Adobe files are inverted, then
//!   Pillow's integer CMYK to RGB formula is applied.
//! - **PNG, WebP, GIF (first frame), BMP, TIFF** through the `image` crate, which decodes these
//!   identically to Pillow for the supported modes.
//! - `convert("RGB")` semantics: alpha is dropped without compositing; grey is replicated;
//!   palettes are resolved. 16-bit grey (Pillow's `I;16`) is **clamped** to 0..255, as Pillow's
//!   conversion does (so a 16-bit grey value of 300 becomes 255, not 1); 16-bit colour and
//!   grey-with-alpha keep the high byte, as Pillow's `;16B` raw modes do. Float images are refused.
//! - EXIF orientation is **not** applied unless asked for: the reference and every PDQ list
//!   producer hash the stored pixels.
//! - The format is recognised by content, never by file extension.
//! - **Decompression bombs**: the dimensions are read from the header and checked against a pixel
//!   limit (default 100 megapixels) before any pixel buffer is allocated.
//!
//! Errors are values: corrupt, truncated and unsupported files give a [`MediaError`] naming the
//! reason; no input makes this crate panic (libjpeg's fatal errors unwind out of the C code and
//! are caught at this crate's boundary, as the `mozjpeg` crate requires).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod jpeg;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder};

/// The default pixel limit: 100 megapixels.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// How to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Refuse images with more pixels than this (checked from the header, before allocating).
    pub max_pixels: u64,
    /// Rotate and flip by the EXIF orientation tag (off by default: the reference doesn't).
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: DEFAULT_MAX_PIXELS,
            apply_exif_orientation: false,
        }
    }
}

/// The image formats this crate decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG (JFIF/EXIF), decoded with libjpeg-turbo.
    Jpeg,
    /// PNG.
    Png,
    /// GIF, first frame.
    Gif,
    /// WebP (lossy or lossless).
    WebP,
    /// Windows bitmap.
    Bmp,
    /// TIFF.
    Tiff,
}

impl ImageFormat {
    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::Gif => "gif",
            ImageFormat::WebP => "webp",
            ImageFormat::Bmp => "bmp",
            ImageFormat::Tiff => "tiff",
        }
    }

    fn to_image(self) -> image::ImageFormat {
        match self {
            ImageFormat::Jpeg => image::ImageFormat::Jpeg,
            ImageFormat::Png => image::ImageFormat::Png,
            ImageFormat::Gif => image::ImageFormat::Gif,
            ImageFormat::WebP => image::ImageFormat::WebP,
            ImageFormat::Bmp => image::ImageFormat::Bmp,
            ImageFormat::Tiff => image::ImageFormat::Tiff,
        }
    }
}

impl std::fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The input has no bytes.
    #[error("empty file")]
    Empty,
    /// The first bytes match no supported image format.
    #[error(
        "not a supported image (first bytes {magic}); supported: JPEG, PNG, GIF, WebP, BMP, TIFF"
    )]
    UnknownFormat {
        /// The first bytes, in hex.
        magic: String,
    },
    /// The header declares more pixels than allowed.
    #[error("{format} image of {width}x{height} pixels exceeds the limit of {limit} pixels")]
    TooManyPixels {
        /// The format.
        format: ImageFormat,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The header declares a zero width or height.
    #[error("{format} image has no pixels ({width}x{height})")]
    NoPixels {
        /// The format.
        format: ImageFormat,
        /// Declared width.
        width: u64,
        /// Declared height.
        height: u64,
    },
    /// The data ends before the image does.
    #[error("truncated {format} data")]
    Truncated {
        /// The format.
        format: ImageFormat,
    },
    /// The data is malformed.
    #[error("corrupt {format} data: {reason}")]
    Corrupt {
        /// The format.
        format: ImageFormat,
        /// The decoder's explanation.
        reason: String,
    },
    /// A valid file in a variant this crate does not convert (e.g. float samples).
    #[error("unsupported {format} image: {reason}")]
    Unsupported {
        /// The format.
        format: ImageFormat,
        /// What is unsupported.
        reason: String,
    },
}

/// A decoded image as tightly packed 8-bit RGB rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedImage {
    /// Width in pixels (at least 1).
    pub width: usize,
    /// Height in pixels (at least 1).
    pub height: usize,
    /// `width * height * 3` bytes, row-major, RGB.
    pub rgb: Vec<u8>,
    /// The format it was decoded from.
    pub format: ImageFormat,
}

/// Recognises the format from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(ImageFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(ImageFormat::Png);
    }
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Some(ImageFormat::Gif);
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(ImageFormat::WebP);
    }
    if bytes.starts_with(b"BM") {
        return Some(ImageFormat::Bmp);
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Some(ImageFormat::Tiff);
    }
    None
}

/// Decodes an image file's bytes to RGB, as the reference pipeline does.
pub fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<DecodedImage, MediaError> {
    if bytes.is_empty() {
        return Err(MediaError::Empty);
    }
    let format = sniff(bytes).ok_or_else(|| MediaError::UnknownFormat {
        magic: bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    match format {
        ImageFormat::Jpeg => jpeg::decode(bytes, options),
        _ => decode_with_image(bytes, format, options),
    }
}

/// Checks declared dimensions against the limit; called before any pixel buffer exists.
fn check_dimensions(
    format: ImageFormat,
    width: u64,
    height: u64,
    options: &DecodeOptions,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 {
        return Err(MediaError::NoPixels {
            format,
            width,
            height,
        });
    }
    if width.saturating_mul(height) > options.max_pixels {
        return Err(MediaError::TooManyPixels {
            format,
            width,
            height,
            limit: options.max_pixels,
        });
    }
    Ok(())
}

fn image_error(format: ImageFormat, err: image::ImageError) -> MediaError {
    use image::error::ImageError as E;
    match err {
        E::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            MediaError::Truncated { format }
        }
        E::Unsupported(e) => MediaError::Unsupported {
            format,
            reason: e.to_string(),
        },
        E::Limits(e) => MediaError::Corrupt {
            format,
            reason: format!("decoder memory limit: {e}"),
        },
        other => {
            let reason = other.to_string();
            // The png and gif decoders report running out of data in their own words.
            let lower = reason.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of") || lower.contains("truncat") {
                MediaError::Truncated { format }
            } else {
                MediaError::Corrupt { format, reason }
            }
        }
    }
}

fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    options: &DecodeOptions,
) -> Result<DecodedImage, MediaError> {
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.to_image());
    // The decoders' own allocation limit backs up the pixel check below (e.g. for huge
    // intermediate buffers); 16 bytes per pixel covers RGBA with 32-bit float samples.
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(options.max_pixels.saturating_mul(16).max(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| image_error(format, e))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(format, width as u64, height as u64, options)?;
    let orientation = if options.apply_exif_orientation {
        decoder.orientation().ok()
    } else {
        None
    };
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| image_error(format, e))?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let rgb = to_rgb_like_pillow(&image, format)?;
    Ok(DecodedImage {
        width: image.width() as usize,
        height: image.height() as usize,
        rgb,
        format,
    })
}

/// Pillow's `convert("RGB")` for each sample layout the `image` crate produces.
fn to_rgb_like_pillow(image: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, MediaError> {
    let grey = |v: u8| [v, v, v];
    let out: Vec<u8> = match image {
        DynamicImage::ImageRgb8(buf) => buf.as_raw().clone(),
        DynamicImage::ImageRgba8(buf) => buf
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        DynamicImage::ImageLuma8(buf) => buf.as_raw().iter().flat_map(|&v| grey(v)).collect(),
        DynamicImage::ImageLumaA8(buf) => buf
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| grey(p[0]))
            .collect(),
        // Pillow's I;16 -> RGB conversion clamps; it does not scale.
        DynamicImage::ImageLuma16(buf) => buf
            .as_raw()
            .iter()
            .flat_map(|&v| grey(v.min(255) as u8))
            .collect(),
        // Pillow reads these through ";16B" raw modes, which keep the high byte.
        DynamicImage::ImageLumaA16(buf) => buf
            .as_raw()
            .chunks_exact(2)
            .flat_map(|p| grey((p[0] >> 8) as u8))
            .collect(),
        DynamicImage::ImageRgb16(buf) => buf.as_raw().iter().map(|&v| (v >> 8) as u8).collect(),
        DynamicImage::ImageRgba16(buf) => buf
            .as_raw()
            .chunks_exact(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        other => {
            return Err(MediaError::Unsupported {
                format,
                reason: format!("sample layout {:?}", other.color()),
            })
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe0rest"), Some(ImageFormat::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nxxxx"), Some(ImageFormat::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::WebP));
        assert_eq!(sniff(b"GIF89a"), Some(ImageFormat::Gif));
        assert_eq!(sniff(b"hello world"), None);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let o = DecodeOptions::default();
        assert_eq!(decode(b"", &o), Err(MediaError::Empty));
        assert!(matches!(
            decode(b"just some text\n", &o),
            Err(MediaError::UnknownFormat { .. })
        ));
        // A JPEG start marker and nothing else.
        assert!(decode(b"\xff\xd8\xff", &o).is_err());
        assert!(decode(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", &o).is_err());
    }
}

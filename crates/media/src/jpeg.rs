//! JPEG through libjpeg-turbo (the `mozjpeg` crate), byte-identical to Pillow's decoding.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use image::metadata::Orientation;
use mozjpeg::{ColorSpace, Decompress, Marker};

use crate::{check_dimensions, DecodeOptions, DecodedImage, ImageFormat, MediaError};

const FORMAT: ImageFormat = ImageFormat::Jpeg;

/// A reader over the file's bytes that remembers whether libjpeg asked for data past the end.
///
/// libjpeg does not fail on truncated data: it warns, inserts an end-of-image marker and fills
/// the missing rows with grey. Pillow refuses such files ("image file is truncated"), and a
/// half-grey image would hash to something no list contains, so we refuse them too.
struct EofTrackingReader<'a> {
    data: &'a [u8],
    ran_out: Rc<Cell<bool>>,
}

impl Read for EofTrackingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.data.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ran_out.set(true);
        }
        Ok(n)
    }
}

impl BufRead for EofTrackingReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.data.is_empty() {
            self.ran_out.set(true);
        }
        Ok(self.data)
    }
    fn consume(&mut self, amt: usize) {
        self.data = &self.data[amt.min(self.data.len())..];
    }
}

/// Decodes a JPEG, turning libjpeg's unwinding fatal errors into [`MediaError`]s.
pub(crate) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<DecodedImage, MediaError> {
    let ran_out = Rc::new(Cell::new(false));
    let reader = EofTrackingReader {
        data: bytes,
        ran_out: Rc::clone(&ran_out),
    };
    let result = catch_unwind(AssertUnwindSafe(|| decode_inner(reader, options)));
    let truncated = ran_out.get();
    match result {
        Ok(Ok(_)) if truncated => Err(MediaError::Truncated { format: FORMAT }),
        Ok(Ok(image)) => Ok(image),
        Ok(Err(e)) => Err(e),
        Err(_) if truncated => Err(MediaError::Truncated { format: FORMAT }),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<String>()
                .map(|s| s.trim_start_matches("libjpeg fatal error: ").to_string())
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg failed".to_string());
            Err(MediaError::Corrupt {
                format: FORMAT,
                reason,
            })
        }
    }
}

fn io_error(err: std::io::Error) -> MediaError {
    if err.kind() == std::io::ErrorKind::UnexpectedEof {
        MediaError::Truncated { format: FORMAT }
    } else {
        MediaError::Corrupt {
            format: FORMAT,
            reason: err.to_string(),
        }
    }
}

fn decode_inner(
    reader: EofTrackingReader<'_>,
    options: &DecodeOptions,
) -> Result<DecodedImage, MediaError> {
    let decompress = Decompress::with_markers(&[Marker::APP(1), Marker::APP(14)])
        .from_reader(reader)
        .map_err(io_error)?;
    let (width, height) = decompress.size();
    check_dimensions(FORMAT, width as u64, height as u64, options)?;

    let mut adobe = false;
    let mut orientation = None;
    for marker in decompress.markers() {
        match marker.marker {
            Marker::APP(14) if marker.data.starts_with(b"Adobe") => adobe = true,
            Marker::APP(1) if marker.data.starts_with(b"Exif\0\0") => {
                orientation = Orientation::from_exif_chunk(&marker.data[6..]);
            }
            _ => {}
        }
    }

    let source_space = decompress.color_space();
    let (rgb, width, height) = match source_space {
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
            let mut started = decompress
                .to_colorspace(ColorSpace::JCS_CMYK)
                .map_err(io_error)?;
            let (w, h) = (started.width(), started.height());
            let cmyk: Vec<u8> = started.read_scanlines().map_err(io_error)?;
            started.finish().map_err(io_error)?;
            (cmyk_to_rgb_like_pillow(&cmyk, adobe), w, h)
        }
        ColorSpace::JCS_GRAYSCALE => {
            let mut started = decompress.grayscale().map_err(io_error)?;
            let (w, h) = (started.width(), started.height());
            let grey: Vec<u8> = started.read_scanlines().map_err(io_error)?;
            started.finish().map_err(io_error)?;
            (grey.iter().flat_map(|&v| [v, v, v]).collect(), w, h)
        }
        _ => {
            let mut started = decompress.rgb().map_err(io_error)?;
            let (w, h) = (started.width(), started.height());
            let rgb: Vec<u8> = started.read_scanlines().map_err(io_error)?;
            started.finish().map_err(io_error)?;
            (rgb, w, h)
        }
    };
    if rgb.len() != width * height * 3 {
        return Err(MediaError::Truncated { format: FORMAT });
    }
    let mut image = DecodedImage {
        width,
        height,
        rgb,
        format: FORMAT,
    };
    if options.apply_exif_orientation {
        if let Some(orientation) = orientation {
            image = orient(image, orientation)?;
        }
    }
    Ok(image)
}

/// Pillow's JPEG CMYK handling: Adobe files store inverted CMYK (raw mode `CMYK;I`), then
/// `cmyk2rgb`: `nk = 255 - k; channel = nk - round(c * nk / 255)` in integer arithmetic.
fn cmyk_to_rgb_like_pillow(cmyk: &[u8], adobe: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let [c, m, y, k] = if adobe {
            [255 - p[0], 255 - p[1], 255 - p[2], 255 - p[3]]
        } else {
            [p[0], p[1], p[2], p[3]]
        };
        let nk = 255 - k as i32;
        for v in [c, m, y] {
            let tmp = v as i32 * nk + 128;
            let scaled = ((tmp >> 8) + tmp) >> 8;
            out.push((nk - scaled).clamp(0, 255) as u8);
        }
    }
    out
}

fn orient(image: DecodedImage, orientation: Orientation) -> Result<DecodedImage, MediaError> {
    let buffer = image::RgbImage::from_raw(image.width as u32, image.height as u32, image.rgb)
        .ok_or_else(|| MediaError::Corrupt {
            format: FORMAT,
            reason: "decoded buffer does not match its dimensions".to_string(),
        })?;
    let mut dynamic = image::DynamicImage::ImageRgb8(buffer);
    dynamic.apply_orientation(orientation);
    Ok(DecodedImage {
        width: dynamic.width() as usize,
        height: dynamic.height() as usize,
        rgb: dynamic.into_rgb8().into_raw(),
        format: FORMAT,
    })
}

//! What a reviewer's browser receives of a visual derivative: a PNG made on the server,
//! greyscale and blurred by default (a CSS blur would still send the original to the
//! browser), or, during a reveal the reviewer asked for, unblurred.

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};

use crate::ReviewError;

/// The width, in pixels, derivatives are shown at (they are at most 96 pixels on a side: the
/// sender's client made them small).
pub const SHOWN_WIDTH: u32 = 288;

/// Largest side of a derivative the server agrees to decode.
const MAX_SIDE: u32 = 1024;

/// How to show one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Gaussian blur sigma in shown pixels (`None`: unblurred, during a reveal).
    pub blur: Option<f32>,
    /// Whether to drop colour.
    pub greyscale: bool,
}

/// The blur sigma of a reviewer's blur level (1 light, 2 medium, 3 strong; anything else is
/// strong).
pub fn blur_sigma(level: i64) -> f32 {
    match level {
        1 => 6.0,
        2 => 10.0,
        _ => 16.0,
    }
}

/// The derivative `bytes` (a JPEG or PNG) as a PNG shown `view`'s way, [`SHOWN_WIDTH`] wide.
pub fn render(bytes: &[u8], view: View) -> Result<Vec<u8>, ReviewError> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ReviewError::internal(format!("derivative: {e}")))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ReviewError::internal(format!("derivative: {e}")))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(ReviewError::internal("derivative of an unexpected size"));
    }
    let image = image::load_from_memory(bytes)
        .map_err(|e| ReviewError::internal(format!("derivative: {e}")))?;
    let shown_h = ((u64::from(h) * u64::from(SHOWN_WIDTH)) / u64::from(w)).clamp(1, 4096);
    let shown_h = u32::try_from(shown_h).unwrap_or(SHOWN_WIDTH);
    let mut shown = image.resize_exact(SHOWN_WIDTH, shown_h, FilterType::Triangle);
    if view.greyscale {
        shown = DynamicImage::ImageLuma8(shown.to_luma8());
    }
    if let Some(sigma) = view.blur {
        shown = shown.blur(sigma);
    }
    let mut out = Vec::new();
    shown
        .write_to(&mut std::io::Cursor::new(&mut out), ImageFormat::Png)
        .map_err(|e| ReviewError::internal(format!("png: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sharp checkerboard: blurred, its neighbouring pixels come close; unblurred they stay
    /// far apart.
    #[test]
    fn blur_is_applied_by_the_server() {
        let img = image::RgbImage::from_fn(96, 96, |x, y| {
            if (x / 8 + y / 8) % 2 == 0 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let mut jpeg = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpeg), ImageFormat::Png)
            .unwrap();
        let contrast = |png: &[u8]| {
            let i = image::load_from_memory(png).unwrap().to_luma8();
            let (w, h) = i.dimensions();
            let mut max = 0i32;
            for y in 0..h {
                for x in 1..w {
                    let d = i32::from(i.get_pixel(x, y)[0]) - i32::from(i.get_pixel(x - 1, y)[0]);
                    max = max.max(d.abs());
                }
            }
            max
        };
        let sharp = render(
            &jpeg,
            View {
                blur: None,
                greyscale: true,
            },
        )
        .unwrap();
        let blurred = render(
            &jpeg,
            View {
                blur: Some(blur_sigma(2)),
                greyscale: true,
            },
        )
        .unwrap();
        assert!(contrast(&sharp) > 20, "sharp {}", contrast(&sharp));
        assert!(
            contrast(&blurred) * 4 < contrast(&sharp),
            "blurred {} sharp {}",
            contrast(&blurred),
            contrast(&sharp)
        );
        let colour = image::load_from_memory(
            &render(
                &jpeg,
                View {
                    blur: None,
                    greyscale: false,
                },
            )
            .unwrap(),
        )
        .unwrap();
        assert!(colour.color().has_color());
        let grey = image::load_from_memory(&blurred).unwrap();
        assert!(!grey.color().has_color());
        assert_eq!(grey.width(), SHOWN_WIDTH);
        assert!(render(
            b"not an image",
            View {
                blur: None,
                greyscale: true
            }
        )
        .is_err());
    }
}

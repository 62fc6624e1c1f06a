//! Image helpers shared by the tests that hash real or generated images: the PDQ floats of an
//! image, and the benign transformations (JPEG re-encoding, resizing) that copies go through.
#![allow(dead_code)]

use hashguard_pdq::{PdqFloats, PdqHasher, RgbImage as PdqRgb};
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};

/// The PDQ floats (hash, quality and per-bit margins come from these).
pub fn floats(img: &RgbImage) -> PdqFloats {
    let (w, h) = img.dimensions();
    let rgb = PdqRgb::new(img.as_raw(), w as usize, h as usize).expect("valid image");
    PdqHasher::new().floats_rgb(&rgb)
}

/// The image after a JPEG round trip at quality `q`.
pub fn jpeg(img: &RgbImage, q: u8) -> RgbImage {
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, q)
        .encode_image(img)
        .expect("encode");
    image::load_from_memory(&buf).expect("decode").to_rgb8()
}

/// The image scaled by `scale` (each side at least 8 pixels) with `filter`.
pub fn resize(img: &RgbImage, scale: f32, filter: FilterType) -> RgbImage {
    let (w, h) = img.dimensions();
    let nw = ((w as f32 * scale).round() as u32).max(8);
    let nh = ((h as f32 * scale).round() as u32).max(8);
    DynamicImage::ImageRgb8(img.clone())
        .resize_exact(nw, nh, filter)
        .to_rgb8()
}

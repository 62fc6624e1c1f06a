//! Any bytes through the image decoders and PDQ: an error is fine, a panic or crash is a bug.
#![no_main]

use hashguard_media::{decode, DecodeOptions};
use hashguard_pdq::{PdqHasher, RgbImage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A small pixel limit keeps each run fast; the limit logic itself is what is under test.
    let options = DecodeOptions {
        max_pixels: 4_000_000,
        apply_exif_orientation: data.first().is_some_and(|b| b & 1 == 1),
    };
    if let Ok(image) = decode(data, &options) {
        assert_eq!(image.rgb.len(), image.width * image.height * 3);
        let view =
            RgbImage::new(&image.rgb, image.width, image.height).expect("decoder output fits");
        let mut hasher = PdqHasher::new();
        let out = hasher.hash_rgb(&view);
        assert!(out.quality <= 100);
    }
});

//! The second hash's text form and pixel entry point: any string through the hex parser (it
//! accepts exactly 40 hex digits and round-trips), and any bytes as an RGB buffer of any
//! claimed size (a clear error or a hash, never a panic).
#![no_main]

use hashguard_hashing::second::{SecondHash, SECOND_HASH_HEX_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = s.parse::<SecondHash>() {
            assert_eq!(s.len(), SECOND_HASH_HEX_LEN);
            assert_eq!(h.to_hex(), s.to_ascii_lowercase());
            assert_eq!(SecondHash::from_hex(&h.to_hex()), Ok(h));
        }
    }
    // The first four bytes claim a size (each side up to 255), the rest are pixels.
    if let [w, h, _, _, pixels @ ..] = data {
        if let Ok(s) = SecondHash::of_rgb(pixels, usize::from(*w), usize::from(*h)) {
            assert_eq!(pixels.len(), usize::from(*w) * usize::from(*h) * 3);
            assert_eq!(s.distance(&s), 0);
        }
    }
});

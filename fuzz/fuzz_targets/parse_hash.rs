//! Any string through the PDQ hex parser: it accepts exactly 64 hex digits and round-trips.
#![no_main]

use hashguard_pdq::Hash256;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(h) = s.parse::<Hash256>() {
            assert_eq!(s.len(), 64);
            assert_eq!(h.to_string(), s.to_ascii_lowercase());
        }
    }
});

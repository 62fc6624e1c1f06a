#![no_main]
//! Manifest and parameter parsing: never panics; round-trips.
use hashguard_protocol::prelude::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::decode(data) {
        assert_eq!(m.encode(), data);
    }
    if let Ok(p) = Params::decode(data) {
        assert_eq!(p.encode(), data);
    }
});

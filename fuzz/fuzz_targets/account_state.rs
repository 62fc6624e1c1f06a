#![no_main]
//! Account state parsing: never panics; round-trips.
use hashguard_protocol::prelude::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = AccountState::decode(data) {
        assert_eq!(&s.encode()[..], data);
    }
});

#![no_main]
//! The witness's inputs: an add-checkpoint request body and a known-logs file never panic.
use hashguard_witness::{AddCheckpointRequest, KnownLogs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = AddCheckpointRequest::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = KnownLogs::parse(text);
    }
});

#![no_main]
//! The opener's stored state (an opened record, an account's share store), as a database
//! holds it: never panic; what decodes encodes back to the same bytes.
use hashguard_protocol::prelude::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Both policies: intervene has no DHF field, silent's record is longer.
    for params in [Params::v1(Policy::Intervene), Params::v1(Policy::Silent)] {
        if let Ok(r) = OpenedRecord::decode(data, &params) {
            assert_eq!(r.encode(), data);
        }
        if let Ok(s) = AccountShares::decode(data, &params) {
            assert_eq!(s.encode(), data);
            let rebuilt = AccountShares::rebuild(params.clone(), s.records().to_vec(), s.is_frozen());
            assert_eq!(rebuilt.as_ref(), Ok(&s));
        }
    }
});

#![no_main]
//! A pending opening's file (`pending-<attachment>` in the blob store under `silent`), as the
//! server reads it back at start after a crash: never panic; what decodes encodes back to the
//! same bytes.
use hashguard_protocol::prelude::*;
use hashguard_service::intake::PendingOpen;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for params in [Params::v1(Policy::Silent), Params::lite(Policy::Silent)] {
        let layout = VoucherLayout::pdq(&params);
        if let Ok(pending) = PendingOpen::decode(data, &layout) {
            assert_eq!(pending.encode(), data);
        }
    }
});

#![no_main]
//! Voucher parsing for the P = 79 and P = 13 layouts (intervene and silent) and one-probe exact
//! vouchers: never panics; anything that parses re-encodes to the same bytes.
use hashguard_protocol::prelude::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let layouts = [
        VoucherLayout::pdq(&Params::v1(Policy::Intervene)),
        VoucherLayout::pdq(&Params::v1(Policy::Silent)),
        VoucherLayout::pdq(&Params::lite(Policy::Intervene)),
        VoucherLayout { probes: 1, s_max: 0 },
        VoucherLayout { probes: 2, s_max: 3 },
        // The layouts of the seed corpus (the test parameters: P = 5, s_max 0 or 14).
        VoucherLayout { probes: 5, s_max: 0 },
        VoucherLayout { probes: 5, s_max: 14 },
    ];
    for l in &layouts {
        if let Ok(v) = Voucher::decode(data, l) {
            assert_eq!(v.encode(), data);
        }
    }
});

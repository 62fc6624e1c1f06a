#![no_main]
//! The server-side inner formats (L1Plain, Payload, consent reveal, DLEQ proof): never panic;
//! round-trip.
use hashguard_protocol::dleq::DleqProof;
use hashguard_protocol::prelude::*;
use hashguard_protocol::voucher::{L1Plain, Payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for l in [VoucherLayout { probes: 1, s_max: 0 }, VoucherLayout { probes: 1, s_max: 90 }] {
        if let Ok(p) = L1Plain::decode(data, &l) {
            assert_eq!(p.encode(), data);
        }
    }
    if let Ok(p) = Payload::decode(data) {
        assert_eq!(&p.encode()[..], data);
    }
    if let Ok(c) = ConsentReveal::decode(data) {
        assert_eq!(&c.encode()[..], data);
    }
    if let Ok(b) = <&[u8; 64]>::try_from(data) {
        if let Ok(p) = DleqProof::from_bytes(b) {
            assert_eq!(&p.to_bytes(), b);
        }
    }
});

#![no_main]
//! The transparency wire formats of the protocol crate: log entries, manifest bundles, the
//! co-signer's state and the trust file never panic and round-trip; a decoded bundle goes
//! through every acceptance rule (against a fixed sandbox's anchors) without panicking.
use std::sync::OnceLock;

use hashguard_protocol::acceptance::{accept_manifest, ManifestBundle, TrustAnchors};
use hashguard_protocol::params::{Params, PinnedParams, Policy};
use hashguard_protocol::signed::{CosignerState, LogEntry};
use hashguard_protocol::trust_sandbox::TrustSandbox;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fn anchors() -> &'static TrustAnchors {
    static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let pinned = PinnedParams::exactly(Params::v1(Policy::Intervene));
        TrustSandbox::generate(&mut rng, [1; 16], pinned).anchors()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = LogEntry::decode(data) {
        assert_eq!(entry.encode(), data);
    }
    if let Ok(bundle) = ManifestBundle::decode(data) {
        assert_eq!(bundle.encode(), data);
        let _ = accept_manifest(&bundle, &[], anchors(), None, 1_800_000_000);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(state) = CosignerState::decode(text) {
            assert_eq!(state.encode(), text);
        }
        let pinned = PinnedParams::exactly(Params::v1(Policy::Intervene));
        if let Ok(parsed) = TrustAnchors::parse(text, pinned.clone()) {
            let again = TrustAnchors::parse(&parsed.to_text(), pinned).expect("its own text");
            assert_eq!(again.to_text(), parsed.to_text());
        }
    }
});

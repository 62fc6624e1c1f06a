//! Shared fixtures of the service's tests.
#![allow(dead_code)]

use hashguard_protocol::prelude::*;
use hashguard_protocol::trust_sandbox::TrustSandbox;
use rand_chacha::rand_core::SeedableRng;

/// "Now" in these tests.
pub const NOW: u64 = 1_800_000_000;

/// Manifests for epochs 1..=n, chained, valid from NOW - 100, and the sandbox trusting them.
pub fn manifests(n: u32, seed: u64) -> (Vec<Manifest>, TrustSandbox) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let params = Params::lite(Policy::Intervene);
    let secret = OpeningKey::generate(&mut rng);
    let spec = TableSpec::new(
        [4; 16],
        TableKind::Pdq,
        params.clone(),
        secret.public_key(),
        1,
        [1; 32],
    )
    .expect("spec");
    let key = KeyBytes::from_pdq_key(0x1234_5678, params.k());
    let mut out: Vec<Manifest> = Vec::new();
    for e in 1..=n {
        let input = EpochInput {
            epoch: e,
            prev_manifest_hash: out.last().map_or([0; 32], Manifest::hash),
            beacon: [e as u8; 32],
        };
        let built = build_table(
            &spec,
            &secret,
            std::slice::from_ref(&key),
            &input,
            None,
            &mut rng,
        )
        .expect("table");
        out.push(Manifest::for_table(&built, &input, NOW - 100, NOW + 86_400).expect("manifest"));
    }
    let sandbox = TrustSandbox::generate(&mut rng, [4; 16], PinnedParams::exactly(params));
    (out, sandbox)
}

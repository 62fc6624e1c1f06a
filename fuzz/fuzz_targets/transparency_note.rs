//! Any bytes through every parser of the transparency-log formats (signed notes, checkpoints,
//! proof bundles, policies, tile paths, keys, entry bundles, fork evidence): never a panic, and
//! whatever is accepted serializes back to the same bytes (one spelling per value, so a
//! signature cannot be carried over to a re-encoded text).
#![no_main]

use hashguard_transparency::checkpoint::{Checkpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::{CosignatureSigner, CosignatureVerifier};
use hashguard_transparency::follower::ForkEvidence;
use hashguard_transparency::note::{Ed25519Signer, Ed25519Verifier, Note};
use hashguard_transparency::policy::Policy;
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{parse_entry_bundle, TilePath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = Note::parse(data) {
        assert_eq!(n.to_bytes(), data);
    }
    if let Ok(c) = SignedCheckpoint::parse(data) {
        assert_eq!(c.to_bytes(), data);
    }
    if let Ok(p) = ProofBundle::parse(data) {
        assert_eq!(p.to_bytes(), data);
    }
    for width in [1, 7, 256] {
        if let Ok(path) = TilePath::entries(0, width) {
            let _ = parse_entry_bundle(&path, data);
        }
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Checkpoint::parse(s) {
        assert_eq!(c.to_body(), s);
    }
    if let Ok(p) = Policy::parse(s) {
        assert_eq!(Policy::parse(&p.to_text()).ok(), Some(p));
    }
    if let Ok(t) = TilePath::parse(s) {
        assert_eq!(t.to_string(), s);
    }
    if let Ok(v) = Ed25519Verifier::from_vkey(s) {
        assert_eq!(Ed25519Verifier::from_vkey(&v.to_vkey()).ok(), Some(v));
    }
    if let Ok(v) = CosignatureVerifier::from_vkey(s) {
        assert_eq!(CosignatureVerifier::from_vkey(&v.to_vkey()).ok(), Some(v));
    }
    let _ = Ed25519Signer::from_skey(s);
    let _ = CosignatureSigner::from_skey(s);
    if let Ok(e) = ForkEvidence::parse(s) {
        assert_eq!(ForkEvidence::parse(&e.to_text()).ok(), Some(e));
    }
});

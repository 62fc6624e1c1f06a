//! The manifest log on disk: appended manifests are served as bundles that the client's
//! acceptance rules (R/E10) accept, the files are C2SP tiles an auditor can recompute, and a
//! changed file is noticed.

use hashguard_protocol::acceptance::{accept_manifest, AcceptError};
use hashguard_protocol::prelude::*;
use hashguard_protocol::signed::SignedManifest;
use hashguard_protocol::trust_sandbox::TrustSandbox;
use hashguard_service::manifest_log::ManifestLog;
use hashguard_transparency::tiles::TilePath;

mod common;

use common::{manifests, NOW};

fn publish(log: &ManifestLog, sandbox: &mut TrustSandbox, m: &Manifest, at: u64) {
    let cosigs = sandbox.cosign(&[0, 1], m).expect("co-signed");
    let signed = SignedManifest::sign(m.clone(), cosigs, sandbox.service_key()).expect("signed");
    let mut checkpoint = log.append(&signed, sandbox.log_signer()).expect("appended");
    for (_, w) in sandbox.witnesses() {
        checkpoint.add_cosignature(w, at).expect("cosigned");
    }
    log.store_checkpoint(checkpoint.signed()).expect("stored");
}

#[test]
fn appended_manifests_are_served_as_bundles_clients_accept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = ManifestLog::new(dir.path().join("log"));
    let (ms, mut sandbox) = manifests(2, 5);
    let verifier = sandbox.log_signer().verifier();
    assert!(log.bundle(&verifier, NOW).expect("reads").is_none());

    publish(&log, &mut sandbox, &ms[0], NOW);
    let anchors = sandbox.anchors();
    let bundle = log
        .bundle(&verifier, NOW)
        .expect("reads")
        .expect("a bundle");
    let first = accept_manifest(&bundle, &[], &anchors, None, NOW).expect("accepted");
    assert_eq!(first.manifest.manifest(), &ms[0]);
    // The wire form round-trips.
    let decoded =
        hashguard_protocol::acceptance::ManifestBundle::decode(&bundle.encode()).expect("decodes");
    assert_eq!(decoded, bundle);

    publish(&log, &mut sandbox, &ms[1], NOW);
    let bundle = log
        .bundle(&verifier, NOW)
        .expect("reads")
        .expect("a bundle");
    let proof = log.consistency(1, 2).expect("consistency");
    let second =
        accept_manifest(&bundle, &proof, &anchors, Some(&first.state), NOW).expect("epoch 2");
    assert_eq!(second.manifest.epoch(), 2);

    // An epoch that does not follow the last is refused by the log itself.
    let cosigs = vec![];
    let stale = SignedManifest::sign(ms[0].clone(), cosigs, sandbox.service_key()).expect("s");
    assert!(log.append(&stale, sandbox.log_signer()).is_err());

    // The files are the tiles the checkpoint commits to.
    let checkpoint = log
        .open_checkpoint(&verifier)
        .expect("reads")
        .expect("exists");
    assert_eq!(
        log.entries(checkpoint.checkpoint()).expect("audit").len(),
        2
    );
    let tile = log.tile_path(&TilePath::parse("tile/entries/000.p/2").expect("path"));
    let mut bytes = std::fs::read(&tile).expect("entry bundle");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&tile, &bytes).expect("tamper");
    assert!(log.entries(checkpoint.checkpoint()).is_err());
    assert!(log.bundle(&verifier, NOW).is_err());
}

#[test]
fn a_checkpoint_without_fresh_witnesses_is_served_but_not_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = ManifestLog::new(dir.path().join("log"));
    let (ms, mut sandbox) = manifests(1, 5);
    publish(&log, &mut sandbox, &ms[0], NOW - 80 * 3600);
    let verifier = sandbox.log_signer().verifier();
    let bundle = log
        .bundle(&verifier, NOW)
        .expect("reads")
        .expect("a bundle");
    let err = accept_manifest(&bundle, &[], &sandbox.anchors(), None, NOW).expect_err("stale");
    assert!(matches!(err, AcceptError::StaleCheckpoint { .. }), "{err}");
}

//! The client's acceptance rules (R/E10), one test per rule: a manifest that breaks only that
//! rule is refused, for the reason that rule gives; and any byte flipped anywhere in a bundle
//! is refused. The organisations' stateful co-signing rule (R/E11) is tested here too.

mod common;

use common::{rng, world, World};
use ed25519_dalek::SigningKey;
use hashguard_protocol::acceptance::{
    accept_manifest, AcceptError, Accepted, AcceptedState, ManifestBundle, TrustAnchors,
};
use hashguard_protocol::manifest::{Manifest, ManifestError, ManifestFields, TableDescriptor};
use hashguard_protocol::params::PinnedParams;
use hashguard_protocol::prelude::*;
use hashguard_protocol::signed::{CosignerState, ServiceSigningKey, SignError, SignedManifest};
use hashguard_protocol::trust_sandbox::TrustSandbox;

/// "Now" in these tests; manifests are valid over [NOW - 1000, NOW + 1000).
const NOW: u64 = 1_800_000_000;
const HOUR: u64 = 3600;

struct Fixture {
    w: World,
    sandbox: TrustSandbox,
}

fn fixture(seed: u64) -> Fixture {
    let w = world(Policy::Intervene, 3, 20, seed);
    let sandbox = TrustSandbox::generate(
        &mut rng(seed + 1),
        *w.spec.deployment_id(),
        PinnedParams::exactly(w.params.clone()),
    );
    Fixture { w, sandbox }
}

impl Fixture {
    /// Epoch `e`'s manifest, chained to `prev` (None for epoch 1), valid from `not_before`.
    fn manifest(&self, e: u32, prev: Option<&Manifest>, not_before: u64) -> Manifest {
        Manifest::new(ManifestFields {
            deployment_id: *self.w.spec.deployment_id(),
            epoch: e,
            not_before,
            not_after: NOW + 1000,
            prev_manifest_hash: prev.map_or([0; 32], Manifest::hash),
            params: self.w.params.clone(),
            public_key: *self.w.spec.public_key(),
            tables: vec![TableDescriptor::new(
                TableKind::Pdq,
                *self.w.spec.shard_salt(),
                self.w.built.entries(),
            )
            .expect("descriptor")],
            revokes: vec![],
        })
        .expect("valid manifest")
    }

    fn anchors(&self) -> TrustAnchors {
        self.sandbox.anchors()
    }

    /// Publishes epochs 1..=n, each valid from NOW - 1000; returns them.
    fn publish_chain(&mut self, n: u32) -> Vec<Manifest> {
        let mut out: Vec<Manifest> = Vec::new();
        for e in 1..=n {
            let m = self.manifest(e, out.last(), NOW - 1000);
            self.sandbox.publish(m.clone()).expect("publish");
            out.push(m);
        }
        out
    }
}

fn accept(
    f: &Fixture,
    bundle: &ManifestBundle,
    previous: Option<&AcceptedState>,
) -> Result<Accepted, AcceptError> {
    let consistency = previous
        .map(|p| {
            f.sandbox
                .consistency(p.checkpoint().checkpoint().size(), f.sandbox.size())
        })
        .unwrap_or_default();
    accept_manifest(bundle, &consistency, &f.anchors(), previous, NOW)
}

#[test]
fn a_valid_manifest_and_its_successor_are_accepted_and_load() {
    let mut f = fixture(1);
    let ms = f.publish_chain(1);
    let first = accept(&f, &f.sandbox.bundle(0, NOW), None).expect("epoch 1 accepted");
    assert_eq!(first.manifest.epoch(), 1);
    assert_eq!(first.manifest.manifest(), &ms[0]);
    let shards: Vec<TableShard> = f.w.built.shards.iter().map(|s| s.shard.clone()).collect();
    ClientTable::load(&first.manifest, TableKind::Pdq, &shards, 1 << 20).expect("loads");

    // The state survives storage, re-verified.
    let stored = first.state.to_bytes();
    let restored = AcceptedState::from_bytes(&stored, &f.anchors()).expect("restores");
    assert_eq!(restored.epoch(), 1);
    let mut tampered = stored.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 1;
    assert!(AcceptedState::from_bytes(&tampered, &f.anchors()).is_err());

    let m2 = f.manifest(2, Some(&ms[0]), NOW - 10);
    f.sandbox.publish(m2).expect("publish 2");
    let second = accept(&f, &f.sandbox.bundle(1, NOW), Some(&restored)).expect("epoch 2");
    assert_eq!(second.manifest.epoch(), 2);
    assert_eq!(second.state.checkpoint().checkpoint().size(), 2);
    // The same manifest under a fresher checkpoint is accepted again (a refresh).
    let again = accept(&f, &f.sandbox.bundle(1, NOW + 60), Some(&second.state))
        .expect("the same epoch under a fresher checkpoint");
    assert_eq!(again.manifest.epoch(), 2);
}

#[test]
fn rule_1_a_bad_service_signature_is_refused() {
    let mut f = fixture(2);
    let m = f.manifest(1, None, NOW - 1000);
    let cosigs = f.sandbox.cosign(&[0, 1], &m).expect("co-signed");
    let impostor = ServiceSigningKey::new(SigningKey::from_bytes(&[7; 32]));
    let signed = SignedManifest::sign(m, cosigs, &impostor).expect("signed");
    f.sandbox
        .append(signed.manifest().encode(), signed.entry().encode());
    let err = accept(&f, &f.sandbox.bundle(0, NOW), None).expect_err("refused");
    assert!(matches!(err, AcceptError::ServiceSignature), "{err}");
}

fn publish_with(f: &mut Fixture, orgs: &[usize]) {
    let m = f.manifest(1, None, NOW - 1000);
    let cosigs = f.sandbox.cosign(orgs, &m).expect("co-signed");
    let signed = SignedManifest::sign(m, cosigs, f.sandbox.service_key()).expect("signed");
    f.sandbox
        .append(signed.manifest().encode(), signed.entry().encode());
}

#[test]
fn rule_2_one_cosigner_is_not_enough() {
    let mut f = fixture(3);
    publish_with(&mut f, &[0]);
    let err = accept(&f, &f.sandbox.bundle(0, NOW), None).expect_err("refused");
    assert!(
        matches!(
            err,
            AcceptError::Cosigners {
                organisations: 1,
                jurisdictions: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rule_2_two_cosigners_of_one_jurisdiction_are_not_enough() {
    let mut f = fixture(4);
    publish_with(&mut f, &[0, 1]);
    let mut anchors = f.anchors();
    anchors.organisations[1].jurisdiction = anchors.organisations[0].jurisdiction;
    let err =
        accept_manifest(&f.sandbox.bundle(0, NOW), &[], &anchors, None, NOW).expect_err("refused");
    assert!(
        matches!(
            err,
            AcceptError::Cosigners {
                organisations: 2,
                jurisdictions: 1,
                ..
            }
        ),
        "{err}"
    );
    // The same bundle passes with the jurisdictions as pinned.
    accept(&f, &f.sandbox.bundle(0, NOW), None).expect("two jurisdictions");
}

#[test]
fn rule_2_an_invalid_cosignature_of_a_pinned_organisation_is_refused() {
    let mut f = fixture(5);
    let m = f.manifest(1, None, NOW - 1000);
    let mut cosigs = f.sandbox.cosign(&[0, 1], &m).expect("co-signed");
    // Organisation 1's slot carries organisation 2's signature.
    cosigs[0].signature = cosigs[1].signature;
    let signed = SignedManifest::sign(m, cosigs, f.sandbox.service_key()).expect("signed");
    f.sandbox
        .append(signed.manifest().encode(), signed.entry().encode());
    let err = accept(&f, &f.sandbox.bundle(0, NOW), None).expect_err("refused");
    assert!(matches!(err, AcceptError::BadCosignature(1)), "{err}");
}

#[test]
fn rule_3_an_unlogged_manifest_is_refused() {
    let mut f = fixture(6);
    let ms = f.publish_chain(1);
    // A correctly signed and co-signed manifest that is not in the log, shipped with the
    // logged one's proof.
    let other = f.manifest(1, None, NOW - 999);
    let cosigs = f.sandbox.cosign(&[], &other).expect("none");
    let signed = SignedManifest::sign(other, cosigs, f.sandbox.service_key()).expect("signed");
    let mut bundle = f.sandbox.bundle(0, NOW);
    bundle.manifest = signed.manifest().encode();
    bundle.entry = signed.entry().encode();
    let err = accept(&f, &bundle, None).expect_err("refused");
    assert!(matches!(err, AcceptError::NotLogged(_)), "{err}");
    // A later entry left out of the bundle is also refused.
    let m2 = f.manifest(2, Some(&ms[0]), NOW + 500);
    f.sandbox.publish(m2).expect("publish");
    let mut bundle = f.sandbox.bundle(0, NOW);
    bundle.later.clear();
    let err = accept(&f, &bundle, None).expect_err("refused");
    assert!(matches!(err, AcceptError::NotLogged(_)), "{err}");
}

#[test]
fn rule_3_a_stale_checkpoint_is_refused() {
    let mut f = fixture(7);
    f.publish_chain(1);
    let err = accept(&f, &f.sandbox.bundle(0, NOW - 73 * HOUR), None).expect_err("refused");
    assert!(
        matches!(err, AcceptError::StaleCheckpoint { max_age_hours: 72 }),
        "{err}"
    );
    accept(&f, &f.sandbox.bundle(0, NOW - 71 * HOUR), None).expect("71 hours is fresh");
}

#[test]
fn rule_3_one_witness_is_not_enough() {
    let mut f = fixture(8);
    f.publish_chain(1);
    for witnesses in [&[0usize][..], &[1], &[]] {
        let cp = f.sandbox.checkpoint(1, witnesses, NOW);
        let err = accept(&f, &f.sandbox.bundle_at(0, &cp), None).expect_err("refused");
        assert!(matches!(err, AcceptError::Checkpoint(_)), "{err}");
    }
}

#[test]
fn rule_4_a_log_that_rewrote_its_history_is_refused_with_fork_evidence() {
    let mut f = fixture(9);
    let ms = f.publish_chain(1);
    let first = accept(&f, &f.sandbox.bundle(0, NOW), None).expect("epoch 1");
    let original = (ms[0].encode(), f.sandbox.bundle(0, NOW).entry);

    // Same size, another root: entry 0 replaced by another valid manifest of epoch 1.
    let other = f.manifest(1, None, NOW - 999);
    let cosigs = vec![];
    let signed = SignedManifest::sign(other, cosigs, f.sandbox.service_key()).expect("signed");
    f.sandbox
        .rewrite(0, signed.manifest().encode(), signed.entry().encode());
    let err = accept(&f, &f.sandbox.bundle(0, NOW), Some(&first.state)).expect_err("fork");
    let AcceptError::Fork(evidence) = err else {
        panic!("expected fork evidence, got {err}");
    };
    assert!(evidence.to_text().contains("hashguard fork evidence"));

    // A longer log whose prefix differs: the consistency proof cannot verify.
    let m2 = f.manifest(2, Some(&ms[0]), NOW - 10);
    f.sandbox.publish(m2).expect("publish 2");
    let err = accept(&f, &f.sandbox.bundle(1, NOW), Some(&first.state)).expect_err("refused");
    assert!(
        matches!(err, AcceptError::Fork(_) | AcceptError::Inconsistent(_)),
        "{err}"
    );

    // Restored history: accepted; then a shorter log is refused.
    f.sandbox.rewrite(0, original.0, original.1);
    let second = accept(&f, &f.sandbox.bundle(1, NOW), Some(&first.state)).expect("epoch 2");
    f.sandbox.truncate(1);
    let err = accept(&f, &f.sandbox.bundle(0, NOW), Some(&second.state)).expect_err("older");
    assert!(matches!(err, AcceptError::Inconsistent(_)), "{err}");
}

#[test]
fn rule_5_a_manifest_superseded_by_one_in_force_is_refused() {
    let mut f = fixture(10);
    let ms = f.publish_chain(1);
    // Epoch 2 comes into force at NOW - 10: epoch 1 is no longer the newest.
    f.sandbox
        .publish(f.manifest(2, Some(&ms[0]), NOW - 10))
        .expect("publish");
    let err = accept(&f, &f.sandbox.bundle(0, NOW), None).expect_err("refused");
    assert!(matches!(err, AcceptError::NotNewest(2)), "{err}");
    // Before epoch 2's not_before, epoch 1 is still the one in force.
    let early = accept_manifest(
        &f.sandbox.bundle(0, NOW - 20),
        &[],
        &f.anchors(),
        None,
        NOW - 20,
    )
    .expect("epoch 1 before epoch 2 starts");
    assert_eq!(early.manifest.epoch(), 1);
}

#[test]
fn rule_6_an_expired_manifest_is_refused() {
    let mut f = fixture(11);
    f.publish_chain(1);
    let later = NOW + 1000;
    let err = accept_manifest(&f.sandbox.bundle(0, later), &[], &f.anchors(), None, later)
        .expect_err("expired");
    assert!(
        matches!(err, AcceptError::Manifest(ManifestError::NotCurrent)),
        "{err}"
    );
}

#[test]
fn rule_7_a_rolled_back_epoch_a_broken_chain_and_the_floor_are_refused() {
    let mut f = fixture(12);
    let ms = f.publish_chain(2);
    let first_bundle = f.sandbox.checkpoint(1, &[0, 1], NOW);
    // Epoch 1 accepted when the log had one entry.
    let first = accept_manifest(
        &f.sandbox.bundle_at(0, &first_bundle),
        &[],
        &f.anchors(),
        None,
        NOW,
    )
    .expect("epoch 1");
    let state = first.state.to_bytes();

    // A client that had accepted epoch 5 (state edited to say so) refuses epoch 2.
    let mut rolled = state.clone();
    rolled[..4].copy_from_slice(&5u32.to_le_bytes());
    let rolled = AcceptedState::from_bytes(&rolled, &f.anchors()).expect("state");
    let err = accept(&f, &f.sandbox.bundle(1, NOW), Some(&rolled)).expect_err("rollback");
    assert!(
        matches!(
            err,
            AcceptError::Manifest(ManifestError::Rollback { got: 2, last: 5 })
        ),
        "{err}"
    );

    // A client whose epoch 1 was another manifest refuses an epoch 2 that does not chain.
    let mut other = state.clone();
    other[4] ^= 1;
    let other = AcceptedState::from_bytes(&other, &f.anchors()).expect("state");
    let err = accept(&f, &f.sandbox.bundle(1, NOW), Some(&other)).expect_err("chain");
    assert!(
        matches!(err, AcceptError::Manifest(ManifestError::Chain(_))),
        "{err}"
    );
    // The honest state accepts it.
    accept(&f, &f.sandbox.bundle(1, NOW), Some(&first.state)).expect("epoch 2 chains");

    let mut anchors = f.anchors();
    anchors.epoch_floor = 3;
    let err = accept_manifest(&f.sandbox.bundle(1, NOW), &[], &anchors, None, NOW)
        .expect_err("below floor");
    assert!(
        matches!(err, AcceptError::BelowFloor { got: 2, floor: 3 }),
        "{err}"
    );
    assert_eq!(ms.len(), 2);
}

#[test]
fn rule_8_a_changed_parameter_and_another_deployment_are_refused() {
    let mut f = fixture(13);
    f.publish_chain(1);
    let bundle = f.sandbox.bundle(0, NOW);
    let mut anchors = f.anchors();
    anchors.pinned = PinnedParams::exactly(common::params(Policy::Silent, 3));
    let err = accept_manifest(&bundle, &[], &anchors, None, NOW).expect_err("params");
    assert!(
        matches!(err, AcceptError::Manifest(ManifestError::Params(_))),
        "{err}"
    );
    let mut anchors = f.anchors();
    anchors.pinned.t_floor = f.w.params.threshold() + 1;
    let err = accept_manifest(&bundle, &[], &anchors, None, NOW).expect_err("T floor");
    assert!(
        matches!(err, AcceptError::Manifest(ManifestError::Params(_))),
        "{err}"
    );
    let mut anchors = f.anchors();
    anchors.deployment_id[0] ^= 1;
    let err = accept_manifest(&bundle, &[], &anchors, None, NOW).expect_err("deployment");
    assert!(matches!(err, AcceptError::Deployment), "{err}");
}

#[test]
fn rule_9_an_epoch_revoked_by_a_later_manifest_is_refused() {
    let mut f = fixture(14);
    let ms = f.publish_chain(1);
    // Epoch 2 is not in force yet, but it already revokes epoch 1.
    let mut fields = f.manifest(2, Some(&ms[0]), NOW + 500).into_fields();
    fields.revokes = vec![1];
    f.sandbox
        .publish(Manifest::new(fields).expect("valid"))
        .expect("publish");
    let err = accept(&f, &f.sandbox.bundle(0, NOW), None).expect_err("revoked");
    assert!(
        matches!(err, AcceptError::Revoked { epoch: 1, by: 2 }),
        "{err}"
    );
}

#[test]
fn any_flipped_byte_of_a_bundle_is_refused() {
    let mut f = fixture(15);
    let ms = f.publish_chain(1);
    // A later entry not yet in force, so the bundle has every section.
    f.sandbox
        .publish(f.manifest(2, Some(&ms[0]), NOW + 500))
        .expect("publish");
    let bundle = f.sandbox.bundle(0, NOW).encode();
    let anchors = f.anchors();
    let check = |bytes: &[u8]| {
        ManifestBundle::decode(bytes)
            .ok()
            .and_then(|b| accept_manifest(&b, &[], &anchors, None, NOW).ok())
    };
    assert!(check(&bundle).is_some(), "the honest bundle is accepted");
    let mut accepted = Vec::new();
    for i in 0..bundle.len() {
        let mut b = bundle.clone();
        b[i] ^= 0x01;
        if check(&b).is_some() {
            accepted.push(i);
        }
    }
    assert!(
        accepted.is_empty(),
        "accepted with a flipped byte at {accepted:?} of {}",
        bundle.len()
    );
}

#[test]
fn cosigners_never_sign_two_manifests_for_one_epoch_nor_a_broken_chain() {
    let f = fixture(16);
    let key = SigningKey::from_bytes(&[9; 32]);
    let mut state = CosignerState::new();
    let m1 = f.manifest(1, None, NOW - 1000);
    let sig = state.cosign(7, &key, &m1).expect("first");
    assert_eq!(state.cosign(7, &key, &m1).expect("again"), sig);
    let other1 = f.manifest(1, None, NOW - 999);
    assert!(matches!(
        state.cosign(7, &key, &other1),
        Err(SignError::CosignRefused(_))
    ));
    // Epoch 2 must continue m1, not another manifest.
    let unchained = f.manifest(2, Some(&other1), NOW - 10);
    assert!(matches!(
        state.cosign(7, &key, &unchained),
        Err(SignError::CosignRefused(_))
    ));
    let m2 = f.manifest(2, Some(&m1), NOW - 10);
    state.cosign(7, &key, &m2).expect("chained");
    // The state survives storage exactly.
    let text = state.encode();
    assert_eq!(CosignerState::decode(&text).expect("decodes"), state);
    for bad in ["", "none", "epoch 1\n", "epoch 01 00\n", "epoch x y\n"] {
        assert!(CosignerState::decode(bad).is_err(), "{bad:?}");
    }
    // After a restart from the stored state, the rule still holds.
    let mut restored = CosignerState::decode(&text).expect("decodes");
    let other2 = f.manifest(2, Some(&m1), NOW - 9);
    assert!(restored.cosign(7, &key, &other2).is_err());
}

#[test]
fn the_trust_file_round_trips_and_refuses_weak_settings() {
    let mut f = fixture(17);
    f.publish_chain(1);
    let pinned = PinnedParams::exactly(f.w.params.clone());
    let text = f.anchors().to_text();
    let parsed = TrustAnchors::parse(&text, pinned.clone()).expect("parses");
    assert_eq!(parsed.to_text(), text);
    accept_manifest(&f.sandbox.bundle(0, NOW), &[], &parsed, None, NOW)
        .expect("the parsed anchors accept the sandbox's manifest");

    let without = |keyword: &str| -> String {
        text.lines()
            .filter(|l| !l.starts_with(keyword))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for (bad, why) in [
        (without("deployment"), "no deployment"),
        (without("service-key"), "no service-key"),
        (without("log "), "no log"),
        (format!("{text}min-cosigners 1\n"), "one co-signer"),
        (format!("{text}min-jurisdictions 1\n"), "one jurisdiction"),
        (
            format!("{text}max-checkpoint-age 300000\n"),
            "over 72 hours",
        ),
        (format!("{text}colour blue\n"), "unknown keyword"),
        (
            text.replace("organisation 2 DE", "organisation 2 de"),
            "lower-case jurisdiction",
        ),
        (
            text.replace("organisation 2 DE", "organisation 1 DE"),
            "an id twice",
        ),
        (
            // The identity point's encoding: a small-order (weak) key.
            format!(
                "{}service-key 0100000000000000000000000000000000000000000000000000000000000000\n",
                without("service-key")
            ),
            "a weak service key",
        ),
    ] {
        assert!(
            TrustAnchors::parse(&bad, pinned.clone()).is_err(),
            "accepted a trust file with {why}"
        );
    }
}

//! Throwaway trust anchors and an in-memory manifest log, for tests, examples and the demo:
//! a service key, two organisations in two jurisdictions that co-sign (with the stateful rule of
//! R/E11), a log key and two witnesses, one per jurisdiction, whose quorum needs both.
//!
//! Every key is generated here, so nothing a sandbox signs is accepted by a client that pins a
//! real deployment's keys: this is the real acceptance path with made-up trust, not a way
//! around it. It is compiled only with the `trust-sandbox` feature, which the client SDK does
//! not enable, so an app's build does not contain it.

use ed25519_dalek::SigningKey;
use hashguard_transparency::checkpoint::{Checkpoint, LogSignedCheckpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::Ed25519Signer;
use hashguard_transparency::policy::Policy;
use hashguard_transparency::proof::ProofBundle;
use rand_core::CryptoRng;

use crate::acceptance::{
    accept_manifest, AcceptError, ManifestBundle, TrustAnchors, MAX_CHECKPOINT_AGE,
};
use crate::manifest::{Manifest, VerifiedManifest};
use crate::params::PinnedParams;
use crate::signed::{
    Cosignature, CosignerState, Organisation, ServiceSigningKey, SignError, SignedManifest,
};

/// A throwaway sandbox for one manifest: generated from a fixed seed, it co-signs, signs,
/// logs and witnesses `manifest` at `now` and accepts it under its own anchors (with
/// `pinned`). For tests that need a [`VerifiedManifest`] of a manifest they built: the real
/// acceptance path, with trust made up for the test.
pub fn accept_alone(
    manifest: Manifest,
    pinned: PinnedParams,
    now: u64,
) -> Result<VerifiedManifest, AcceptError> {
    use rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(0x5a4d_b0c5);
    let mut sandbox = TrustSandbox::generate(&mut rng, *manifest.deployment_id(), pinned);
    sandbox
        .publish(manifest)
        .map_err(|e| AcceptError::Format(e.to_string()))?;
    accept_manifest(&sandbox.bundle(0, now), &[], &sandbox.anchors(), None, now).map(|a| a.manifest)
}

/// The log origin of every sandbox.
pub const SANDBOX_ORIGIN: &str = "sandbox.hashguard.invalid/manifests";

/// One organisation of the sandbox with its secret key and co-signer state.
pub struct SandboxOrganisation {
    /// As clients pin it.
    pub organisation: Organisation,
    key: SigningKey,
    state: CosignerState,
}

/// See the module documentation.
pub struct TrustSandbox {
    deployment_id: [u8; 16],
    pinned: PinnedParams,
    service: ServiceSigningKey,
    organisations: Vec<SandboxOrganisation>,
    log: Ed25519Signer,
    witnesses: Vec<(String, CosignatureSigner)>,
    /// Log leaves and, for each, the manifest it describes (empty for raw entries).
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

fn seed<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}

impl TrustSandbox {
    /// Fresh keys from `rng` for a deployment whose clients pin `pinned`: organisations
    /// 1 ("Sandbox Org GB", GB) and 2 ("Sandbox Org DE", DE), witnesses `witness-gb` and
    /// `witness-de` in one group per jurisdiction with a quorum of both groups.
    pub fn generate<R: CryptoRng + ?Sized>(
        rng: &mut R,
        deployment_id: [u8; 16],
        pinned: PinnedParams,
    ) -> Self {
        let service = ServiceSigningKey::new(SigningKey::from_bytes(&seed(rng)));
        let organisations = [
            (1u16, "Sandbox Org GB", *b"GB"),
            (2, "Sandbox Org DE", *b"DE"),
        ]
        .into_iter()
        .map(|(id, name, jurisdiction)| {
            let key = SigningKey::from_bytes(&seed(rng));
            SandboxOrganisation {
                organisation: Organisation {
                    id,
                    name: name.to_string(),
                    jurisdiction,
                    key: key.verifying_key(),
                },
                key,
                state: CosignerState::new(),
            }
        })
        .collect();
        // Names are fixed valid note key names, so these constructors cannot fail.
        let log = Ed25519Signer::from_seed(SANDBOX_ORIGIN, &seed(rng))
            .unwrap_or_else(|_| unreachable!("fixed valid key name"));
        let witnesses = ["gb", "de"]
            .into_iter()
            .map(|j| {
                let name = format!("witness-{j}.sandbox.hashguard.invalid");
                let signer = CosignatureSigner::from_seed(&name, &seed(rng))
                    .unwrap_or_else(|_| unreachable!("fixed valid key name"));
                (format!("witness-{j}"), signer)
            })
            .collect();
        TrustSandbox {
            deployment_id,
            pinned,
            service,
            organisations,
            log,
            witnesses,
            entries: Vec::new(),
        }
    }

    /// The witness policy clients pin (C2SP tlog-policy text).
    pub fn policy_text(&self) -> String {
        let mut text = format!("log {}\n", self.log.verifier().to_vkey());
        for (name, w) in &self.witnesses {
            text.push_str(&format!("witness {name} {}\n", w.verifier().to_vkey()));
        }
        for (name, _) in &self.witnesses {
            text.push_str(&format!("group {name}-jurisdiction any {name}\n"));
        }
        let groups: Vec<String> = self
            .witnesses
            .iter()
            .map(|(n, _)| format!("{n}-jurisdiction"))
            .collect();
        text.push_str(&format!("group jurisdictions all {}\n", groups.join(" ")));
        text.push_str("quorum jurisdictions\n");
        text
    }

    /// What a client of this sandbox pins.
    pub fn anchors(&self) -> TrustAnchors {
        TrustAnchors {
            deployment_id: self.deployment_id,
            service_key: self.service.verifying_key(),
            organisations: self
                .organisations
                .iter()
                .map(|o| o.organisation.clone())
                .collect(),
            min_cosigners: 2,
            min_jurisdictions: 2,
            log_policy: Policy::parse(&self.policy_text())
                .unwrap_or_else(|e| unreachable!("the sandbox's own policy parses: {e}")),
            max_checkpoint_age: MAX_CHECKPOINT_AGE,
            pinned: self.pinned.clone(),
            epoch_floor: 1,
        }
    }

    /// The service's signing key.
    pub fn service_key(&self) -> &ServiceSigningKey {
        &self.service
    }

    /// The log's signing key (its name is [`SANDBOX_ORIGIN`]), for a service that keeps the log
    /// itself.
    pub fn log_signer(&self) -> &Ed25519Signer {
        &self.log
    }

    /// The witnesses' policy names and cosigning keys.
    pub fn witnesses(&self) -> &[(String, CosignatureSigner)] {
        &self.witnesses
    }

    /// The organisations.
    pub fn organisations(&self) -> &[SandboxOrganisation] {
        &self.organisations
    }

    /// Co-signatures of the organisations at `which` (indices), each under its stateful rule.
    pub fn cosign(
        &mut self,
        which: &[usize],
        manifest: &Manifest,
    ) -> Result<Vec<Cosignature>, SignError> {
        let mut out = Vec::new();
        for &i in which {
            let o = self
                .organisations
                .get_mut(i)
                .ok_or(SignError::Cosignatures("no such sandbox organisation"))?;
            out.push(o.state.cosign(o.organisation.id, &o.key, manifest)?);
        }
        Ok(out)
    }

    /// Has every organisation co-sign `manifest`, signs it and appends its entry to the log.
    pub fn publish(&mut self, manifest: Manifest) -> Result<SignedManifest, SignError> {
        let all: Vec<usize> = (0..self.organisations.len()).collect();
        let cosignatures = self.cosign(&all, &manifest)?;
        let signed = SignedManifest::sign(manifest, cosignatures, &self.service)?;
        self.append(signed.manifest().encode(), signed.entry().encode());
        Ok(signed)
    }

    /// Appends a raw log entry (for tests of what clients refuse), with the manifest a bundle
    /// for it should carry.
    pub fn append(&mut self, manifest: Vec<u8>, entry: Vec<u8>) {
        self.entries.push((entry, manifest));
    }

    /// Replaces entry `index` (a log that rewrites its history, for tests of fork detection).
    /// Does nothing if there is no such entry.
    pub fn rewrite(&mut self, index: u64, manifest: Vec<u8>, entry: Vec<u8>) {
        if let Some(e) = self.entries.get_mut(index as usize) {
            *e = (entry, manifest);
        }
    }

    /// Drops every entry from `size` on (a log that forgets, for tests).
    pub fn truncate(&mut self, size: u64) {
        self.entries.truncate(size as usize);
    }

    /// Entries in the log.
    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    fn leaves(&self, size: u64) -> Vec<Hash> {
        self.entries
            .iter()
            .take(size as usize)
            .map(|(e, _)| merkle::leaf_hash(e))
            .collect()
    }

    /// The log's checkpoint of its first `size` entries, signed by the log and co-signed at
    /// `at` by the witnesses at `witnesses` (indices).
    pub fn checkpoint(&self, size: u64, witnesses: &[usize], at: u64) -> SignedCheckpoint {
        let root = merkle::root(&self.leaves(size));
        let signed = Checkpoint::new(SANDBOX_ORIGIN, size, root)
            .and_then(|c| c.sign(&self.log))
            .unwrap_or_else(|e| unreachable!("the sandbox signs its own checkpoint: {e}"));
        let mut opened: LogSignedCheckpoint = signed
            .open(&self.log.verifier())
            .unwrap_or_else(|e| unreachable!("its own signature verifies: {e}"));
        for &w in witnesses {
            if let Some((_, signer)) = self.witnesses.get(w) {
                opened
                    .add_cosignature(signer, at)
                    .unwrap_or_else(|e| unreachable!("a valid timestamp: {e}"));
            }
        }
        opened.signed().clone()
    }

    /// The bundle of entry `index` against `checkpoint` (whose size says which later entries
    /// it carries).
    ///
    /// # Panics
    /// If `index` is not below the checkpoint's size, or that size exceeds the log's.
    pub fn bundle_at(&self, index: u64, checkpoint: &SignedCheckpoint) -> ManifestBundle {
        let size = checkpoint.unverified_checkpoint().size();
        let leaves = self.leaves(size);
        let proof = |i: u64| {
            let path = merkle::inclusion_proof(&leaves, i)
                .unwrap_or_else(|e| unreachable!("index within the tree: {e}"));
            ProofBundle::new(i, path, checkpoint.clone(), None)
                .unwrap_or_else(|e| unreachable!("index within the tree: {e}"))
                .to_bytes()
        };
        let (entry, manifest) = self.entries[index as usize].clone();
        ManifestBundle {
            manifest,
            entry,
            proof: proof(index),
            later: (index + 1..size)
                .map(|i| (self.entries[i as usize].0.clone(), proof(i)))
                .collect(),
        }
    }

    /// The bundle of entry `index` against the whole log, witnessed by both witnesses at `at`.
    pub fn bundle(&self, index: u64, at: u64) -> ManifestBundle {
        let all: Vec<usize> = (0..self.witnesses.len()).collect();
        self.bundle_at(index, &self.checkpoint(self.size(), &all, at))
    }

    /// The consistency proof from the first `old_size` entries to the first `new_size`; empty
    /// when there is none (`old_size` is not below `new_size`).
    pub fn consistency(&self, old_size: u64, new_size: u64) -> Vec<Hash> {
        merkle::consistency_proof(&self.leaves(new_size), old_size).unwrap_or_default()
    }
}

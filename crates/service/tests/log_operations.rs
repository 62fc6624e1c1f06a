//! Operating the manifest log (`hashguard_service::transparency`) against witnesses that follow
//! c2sp.org/tlog-witness: cosignatures collected from the size each witness knows (409 with its
//! size, retried once), verified against the pinned policy before they are stored, refreshed
//! for the same tree; the stored log then passes the client's acceptance rules and the audit.

use hashguard_protocol::prelude::*;
use hashguard_protocol::signed::SignedManifest;
use hashguard_protocol::trust_sandbox::TrustSandbox;
use hashguard_service::manifest_log::ManifestLog;
use hashguard_service::publish::TableDir;
use hashguard_service::transparency::{
    audit_log, collect_cosignatures, verify_as_client, DirSource, WitnessReply, WitnessTransport,
};
use hashguard_transparency::checkpoint::SignedCheckpoint;
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::merkle::{self, Hash, EMPTY_ROOT};
use hashguard_transparency::note::Ed25519Verifier;

mod common;

use common::{manifests, NOW};

/// One witness as c2sp.org/tlog-witness describes it: it knows one log, keeps the latest size
/// and root it cosigned, answers 409 with its size when `old` is not that size, 422 for a bad
/// consistency proof, 403 for a checkpoint the log did not sign.
struct SpecWitness {
    signer: CosignatureSigner,
    log: Ed25519Verifier,
    size: u64,
    root: Hash,
    time: u64,
    requests: usize,
    /// Answers 409 with this size whatever the request (a witness ahead of the log).
    always_409: Option<u64>,
}

impl SpecWitness {
    fn new(signer: CosignatureSigner, log: Ed25519Verifier) -> Self {
        SpecWitness {
            signer,
            log,
            size: 0,
            root: EMPTY_ROOT,
            time: NOW - 10,
            requests: 0,
            always_409: None,
        }
    }

    fn answer(&mut self, body: &[u8]) -> WitnessReply {
        self.requests += 1;
        let reply = |status: u16, content_type: &str, body: String| WitnessReply {
            status,
            content_type: content_type.to_string(),
            body: body.into_bytes(),
        };
        if let Some(size) = self.always_409 {
            return reply(409, "text/x.tlog.size", format!("{size}\n"));
        }
        let text = std::str::from_utf8(body).expect("a text body");
        let (head, note) = text.split_once("\n\n").expect("a blank line");
        let mut lines = head.lines();
        let old: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse().ok())
            .expect("old <size>");
        let proof: Vec<Hash> = lines
            .map(|l| Hash::from_base64(l).expect("a base64 hash"))
            .collect();
        let Ok(opened) = SignedCheckpoint::parse(note.as_bytes()).and_then(|c| c.open(&self.log))
        else {
            return reply(403, "text/plain", "not signed by the log\n".into());
        };
        if old != self.size {
            return reply(409, "text/x.tlog.size", format!("{}\n", self.size));
        }
        let cp = opened.checkpoint();
        if merkle::verify_consistency(old, cp.size(), &self.root, cp.root_hash(), &proof).is_err() {
            return reply(422, "text/plain", "bad proof\n".into());
        }
        self.size = cp.size();
        self.root = *cp.root_hash();
        self.time += 1;
        let line = self.signer.cosign(&opened, self.time).expect("cosigns");
        reply(200, "text/plain", line.to_line())
    }
}

/// Witnesses by URL.
struct Witnesses(Vec<(String, SpecWitness)>);

impl WitnessTransport for Witnesses {
    fn add_checkpoint(&mut self, url: &str, body: &[u8]) -> Result<WitnessReply, String> {
        let w = self
            .0
            .iter_mut()
            .find(|(u, _)| u == url)
            .ok_or("connection refused")?;
        Ok(w.1.answer(body))
    }
}

fn append(log: &ManifestLog, sandbox: &mut TrustSandbox, m: &Manifest) {
    let cosigs = sandbox.cosign(&[0, 1], m).expect("co-signed");
    let signed = SignedManifest::sign(m.clone(), cosigs, sandbox.service_key()).expect("signed");
    log.append(&signed, sandbox.log_signer()).expect("appended");
}

#[test]
fn witnesses_cosign_from_the_size_they_know_and_the_log_then_verifies_and_audits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = TableDir::new(dir.path());
    let log = ManifestLog::new(dir.path().join("log"));
    let (ms, mut sandbox) = manifests(3, 11);
    let anchors = sandbox.anchors();
    let policy = &anchors.log_policy;
    let verifier = sandbox.log_signer().verifier();
    // The sandbox's log key, reloaded (signers are not Clone).
    let log_signer =
        hashguard_transparency::note::Ed25519Signer::from_skey(&sandbox.log_signer().to_skey())
            .expect("skey");
    let signer = || &log_signer;
    let mut witnesses = Witnesses(
        sandbox
            .witnesses()
            .iter()
            .map(|(name, w)| {
                let w = CosignatureSigner::from_skey(&w.to_skey()).expect("skey");
                (
                    format!("http://{name}"),
                    SpecWitness::new(w, verifier.clone()),
                )
            })
            .collect(),
    );
    let urls: Vec<String> = witnesses.0.iter().map(|(u, _)| u.clone()).collect();

    // Epoch 1: both witnesses start from the empty tree.
    append(&log, &mut sandbox, &ms[0]);
    let (stored, results) =
        collect_cosignatures(&table, signer(), &urls, 0, Some(policy), &mut witnesses)
            .expect("collected");
    for r in &results {
        assert!(r.outcome.is_ok(), "{r:?}");
    }
    let names: Vec<String> = results
        .iter()
        .map(|r| r.outcome.clone().expect("ok").0)
        .collect();
    assert_eq!(names, ["witness-gb", "witness-de"]);
    let verified = policy.verify_checkpoint(&stored).expect("quorum met");
    assert_eq!(verified.cosignatures().len(), 2);
    assert_eq!(log.read_checkpoint().expect("reads"), Some(stored));

    // Epoch 2: the publisher says the witnesses know size 1; a fresh third view of witness-de
    // (it lost its state: knows 0) answers 409 with 0 and is asked again from 0.
    append(&log, &mut sandbox, &ms[1]);
    witnesses.0[1].1.size = 0;
    witnesses.0[1].1.root = EMPTY_ROOT;
    let before = witnesses.0[1].1.requests;
    let (stored, results) =
        collect_cosignatures(&table, signer(), &urls, 1, Some(policy), &mut witnesses)
            .expect("collected");
    assert!(results.iter().all(|r| r.outcome.is_ok()), "{results:?}");
    assert_eq!(witnesses.0[1].1.requests - before, 2, "one 409, one retry");
    policy.verify_checkpoint(&stored).expect("quorum met");

    // Epoch 3, then a refresh of the same tree (old size = size): newer timestamps.
    append(&log, &mut sandbox, &ms[2]);
    collect_cosignatures(&table, signer(), &urls, 2, Some(policy), &mut witnesses)
        .expect("collected");
    let old_times: Vec<u64> = policy
        .verify_checkpoint(&log.read_checkpoint().expect("reads").expect("some"))
        .expect("quorum")
        .cosignatures()
        .iter()
        .map(|c| c.timestamp)
        .collect();
    let (refreshed, results) =
        collect_cosignatures(&table, signer(), &urls, 3, Some(policy), &mut witnesses)
            .expect("collected");
    assert!(results.iter().all(|r| r.outcome.is_ok()), "{results:?}");
    let new_times: Vec<u64> = policy
        .verify_checkpoint(&refreshed)
        .expect("quorum")
        .cosignatures()
        .iter()
        .map(|c| c.timestamp)
        .collect();
    assert!(new_times.iter().zip(&old_times).all(|(n, o)| n > o));
    // One line per witness and the log's: refreshing replaces, never piles up.
    assert_eq!(refreshed.note().signatures().len(), 3);

    // A client accepts the newest manifest from the stored files, and the audit passes.
    let view = verify_as_client(
        &mut DirSource(log.path().to_path_buf()),
        &anchors,
        None,
        NOW,
    )
    .expect("accepted");
    assert_eq!(view.accepted.signed.manifest(), &ms[2]);
    assert_eq!(view.index, 2);
    let report = audit_log(
        &mut DirSource(log.path().to_path_buf()),
        &anchors,
        None,
        NOW,
    )
    .expect("audit passes");
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("3 manifests, epochs 1 to 3")),
        "{report:?}"
    );
    assert!(!report.lines.iter().any(|l| l.starts_with("warning")));
    // A year later the archived log still audits, with a warning that clients would refuse
    // its checkpoint until it is witnessed again; a client refuses it.
    let later = NOW + 365 * 86_400;
    let archived = audit_log(
        &mut DirSource(log.path().to_path_buf()),
        &anchors,
        None,
        later,
    )
    .expect("an archived log audits");
    assert!(
        archived
            .lines
            .iter()
            .any(|l| l.starts_with("warning: the witnesses' quorum is older")),
        "{archived:?}"
    );
    assert!(verify_as_client(
        &mut DirSource(log.path().to_path_buf()),
        &anchors,
        None,
        later
    )
    .is_err());
}

#[test]
fn a_witness_answer_is_stored_only_if_it_verifies_and_409_is_retried_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = TableDir::new(dir.path());
    let log = ManifestLog::new(dir.path().join("log"));
    let (ms, mut sandbox) = manifests(1, 11);
    let anchors = sandbox.anchors();
    let verifier = sandbox.log_signer().verifier();
    let signer =
        hashguard_transparency::note::Ed25519Signer::from_skey(&sandbox.log_signer().to_skey())
            .expect("skey");
    append(&log, &mut sandbox, &ms[0]);
    // A witness the trust file does not pin (its key is not witness-gb's, though its name is).
    let impostor = CosignatureSigner::from_seed("witness-gb.sandbox.hashguard.invalid", &[7; 32])
        .expect("key");
    let mut behind = SpecWitness::new(
        CosignatureSigner::from_seed("w2", &[8; 32]).expect("key"),
        verifier.clone(),
    );
    behind.always_409 = Some(0);
    let mut witnesses = Witnesses(vec![
        (
            "http://impostor".into(),
            SpecWitness::new(impostor, verifier.clone()),
        ),
        ("http://stuck".into(), behind),
    ]);
    let urls = vec![
        "http://impostor".to_string(),
        "http://stuck".to_string(),
        "http://down".to_string(),
    ];
    let (stored, results) = collect_cosignatures(
        &table,
        &signer,
        &urls,
        0,
        Some(&anchors.log_policy),
        &mut witnesses,
    )
    .expect("runs");
    let errors: Vec<String> = results
        .iter()
        .map(|r| r.outcome.clone().expect_err("every witness fails"))
        .collect();
    assert!(errors[0].contains("does not pin"), "{errors:?}");
    assert!(errors[1].contains("answered 409"), "{errors:?}");
    assert_eq!(witnesses.0[1].1.requests, 2, "retried exactly once");
    assert!(errors[2].contains("connection refused"), "{errors:?}");
    // Nothing unverified was stored: the checkpoint carries the log's signature only.
    assert_eq!(stored.note().signatures().len(), 1);
    assert_eq!(log.read_checkpoint().expect("reads"), Some(stored));
}

//! Flipping any single byte of a note, a cosigned checkpoint, a proof bundle, a tile or an
//! entry bundle is detected: every position is tried, with two different flips.

use hashguard_transparency::checkpoint::Checkpoint;
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::{Ed25519Signer, Note};
use hashguard_transparency::policy::Policy;
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TilePath};

const FLIPS: [u8; 2] = [0x01, 0x80];

fn for_each_flip(bytes: &[u8], mut check: impl FnMut(usize, &[u8])) {
    for i in 0..bytes.len() {
        for f in FLIPS {
            let mut b = bytes.to_vec();
            b[i] ^= f;
            check(i, &b);
        }
    }
}

struct World {
    log: Ed25519Signer,
    witnesses: [CosignatureSigner; 2],
    entries: Vec<Vec<u8>>,
    leaves: Vec<Hash>,
    policy: Policy,
}

fn world() -> World {
    let log = Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap();
    let witnesses = [
        CosignatureSigner::from_seed("w1.example", &[2; 32]).unwrap(),
        CosignatureSigner::from_seed("w2.example", &[3; 32]).unwrap(),
    ];
    let entries: Vec<Vec<u8>> = (0..300u32)
        .map(|i| format!("manifest {i}").into_bytes())
        .collect();
    let leaves = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    let policy = Policy::parse(&format!(
        "log {}\nwitness a {}\nwitness b {}\ngroup both all a b\nquorum both\n",
        log.verifier().to_vkey(),
        witnesses[0].verifier().to_vkey(),
        witnesses[1].verifier().to_vkey()
    ))
    .unwrap();
    World {
        log,
        witnesses,
        entries,
        leaves,
        policy,
    }
}

fn cosigned_checkpoint(w: &World, size: usize) -> Vec<u8> {
    let cp = Checkpoint::new(
        "example.com/log",
        size as u64,
        merkle::root(&w.leaves[..size]),
    )
    .unwrap();
    let mut opened = cp.sign(&w.log).unwrap().open(&w.log.verifier()).unwrap();
    opened
        .add_cosignature(&w.witnesses[0], 1_700_000_000)
        .unwrap();
    opened
        .add_cosignature(&w.witnesses[1], 1_700_000_100)
        .unwrap();
    opened.to_bytes()
}

#[test]
fn every_byte_of_a_note_matters() {
    let w = world();
    let mut note = Note::new("epoch 7\nroot abc\n\nmore text\n").unwrap();
    note.sign(&w.log).unwrap();
    let bytes = note.to_bytes();
    let known = [w.log.verifier()];
    assert!(Note::parse(&bytes).unwrap().verify(&known).is_ok());
    for_each_flip(&bytes, |i, b| {
        let ok = Note::parse(b).is_ok_and(|n| n.verify(&known).is_ok());
        assert!(!ok, "flip at byte {i} not detected");
    });
}

#[test]
fn every_byte_of_a_cosigned_checkpoint_matters() {
    let w = world();
    let bytes = cosigned_checkpoint(&w, 300);
    assert!(w.policy.verify_checkpoint_bytes(&bytes).is_ok());
    for_each_flip(&bytes, |i, b| {
        assert!(
            w.policy.verify_checkpoint_bytes(b).is_err(),
            "flip at byte {i} not detected"
        );
    });
}

#[test]
fn every_byte_of_a_proof_bundle_matters() {
    let w = world();
    let checkpoint =
        hashguard_transparency::checkpoint::SignedCheckpoint::parse(&cosigned_checkpoint(&w, 300))
            .unwrap();
    for index in [0u64, 137, 299] {
        let proof = merkle::inclusion_proof(&w.leaves, index).unwrap();
        // No extra data: the spec leaves it unauthenticated, so flipping it is not detectable
        // by design (and it is carried, never trusted).
        let bundle = ProofBundle::new(index, proof, checkpoint.clone(), None).unwrap();
        let bytes = bundle.to_bytes();
        let entry = &w.entries[index as usize];
        assert!(ProofBundle::parse(&bytes)
            .unwrap()
            .verify(entry, &w.policy)
            .is_ok());
        for_each_flip(&bytes, |i, b| {
            let ok = ProofBundle::parse(b).is_ok_and(|p| p.verify(entry, &w.policy).is_ok());
            assert!(!ok, "index {index}: flip at byte {i} not detected");
        });
        // The right bundle for another entry fails too.
        assert!(bundle
            .verify(&w.entries[(index as usize + 1) % 300], &w.policy)
            .is_err());
    }
}

#[test]
fn every_byte_of_every_tile_and_bundle_matters() {
    let w = world();
    let size = 300;
    let built = tiles::build_tiles(&w.entries[..size]).unwrap();
    let cp = Checkpoint::new(
        "example.com/log",
        size as u64,
        merkle::root(&w.leaves[..size]),
    )
    .unwrap();
    let audit = |tampered: Option<(TilePath, &[u8])>| {
        tiles::audit(&cp, |p: &TilePath| match tampered {
            Some((t, bytes)) if t == *p => Ok(bytes.to_vec()),
            _ => built.get(p).cloned().ok_or("missing"),
        })
    };
    assert_eq!(audit(None).unwrap(), w.entries[..size]);
    let mut flips = 0;
    for (path, bytes) in &built {
        for_each_flip(bytes, |i, b| {
            flips += 1;
            assert!(
                audit(Some((*path, b))).is_err(),
                "{path}: flip at byte {i} not detected"
            );
        });
        // A byte more or less is detected too.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(audit(Some((*path, &longer))).is_err(), "{path}: longer");
        assert!(
            audit(Some((*path, &bytes[..bytes.len() - 1]))).is_err(),
            "{path}: shorter"
        );
    }
    assert!(flips > 20_000, "{flips} flips tried");
}

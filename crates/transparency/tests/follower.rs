//! The follower: it advances only along consistency proofs, and turns a proven split view into
//! fork evidence that a third party can check.

use hashguard_transparency::checkpoint::{Checkpoint, LogSignedCheckpoint};
use hashguard_transparency::follower::{Follower, FollowerError, ForkEvidence, Update};
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::Ed25519Signer;

fn log() -> Ed25519Signer {
    Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap()
}

fn leaves(tag: &str, n: usize) -> Vec<Hash> {
    (0..n)
        .map(|i| merkle::leaf_hash(format!("{tag}{i}").as_bytes()))
        .collect()
}

fn signed(log: &Ed25519Signer, ls: &[Hash]) -> LogSignedCheckpoint {
    Checkpoint::new("example.com/log", ls.len() as u64, merkle::root(ls))
        .unwrap()
        .sign(log)
        .unwrap()
        .open(&log.verifier())
        .unwrap()
}

#[test]
fn advances_along_consistency_proofs() {
    let log = log();
    let ls = leaves("e", 40);
    let mut f = Follower::new(signed(&log, &ls[..10]));
    let to_25 = merkle::consistency_proof(&ls[..25], 10).unwrap();
    assert_eq!(
        f.update(&signed(&log, &ls[..25]), &to_25),
        Ok(Update::Advanced { from: 10, to: 25 })
    );
    assert_eq!(f.last().checkpoint().size(), 25);
    assert_eq!(
        f.update(&signed(&log, &ls[..25]), &[]),
        Ok(Update::Unchanged)
    );
    // An older checkpoint with its proof is consistent and changes nothing.
    let from_12 = merkle::consistency_proof(&ls[..25], 12).unwrap();
    assert_eq!(
        f.update(&signed(&log, &ls[..12]), &from_12),
        Ok(Update::Older)
    );
    assert_eq!(f.last().checkpoint().size(), 25);
    // Persisted and restored, re-verified with the log key.
    let restored = Follower::restore(&f.last().to_bytes(), &log.verifier()).unwrap();
    assert_eq!(restored, f);
    let other = Ed25519Signer::from_seed("example.com/log", &[2; 32]).unwrap();
    assert!(Follower::restore(&f.last().to_bytes(), &other.verifier()).is_err());
    // A checkpoint of another log (another key, same name) is refused.
    assert_eq!(
        f.update(
            &signed(&other, &ls[..30]),
            &merkle::consistency_proof(&ls[..30], 25).unwrap()
        ),
        Err(FollowerError::DifferentLog)
    );
}

#[test]
fn a_garbled_proof_is_refused_without_evidence() {
    let log = log();
    let ls = leaves("e", 40);
    let mut f = Follower::new(signed(&log, &ls[..10]));
    let mut proof = merkle::consistency_proof(&ls[..25], 10).unwrap();
    proof[1] = proof[0];
    assert!(matches!(
        f.update(&signed(&log, &ls[..25]), &proof),
        Err(FollowerError::InvalidProof(_))
    ));
    assert!(matches!(
        f.update(&signed(&log, &ls[..25]), &[]),
        Err(FollowerError::InvalidProof(_))
    ));
    assert_eq!(f.last().checkpoint().size(), 10);
}

#[test]
fn a_split_view_of_equal_size_is_evidence() {
    let log = log();
    let mut f = Follower::new(signed(&log, &leaves("a", 7)));
    let fork = signed(&log, &leaves("b", 7));
    let Err(FollowerError::Fork(evidence)) = f.update(&fork, &[]) else {
        panic!("a fork expected")
    };
    assert_eq!(f.last().checkpoint().size(), 7);
    let text = evidence.to_text();
    let parsed = ForkEvidence::parse(&text).unwrap();
    assert_eq!(&parsed, evidence.as_ref());
    parsed.verify(&log.verifier()).unwrap();
    let other = Ed25519Signer::from_seed("example.com/log", &[2; 32]).unwrap();
    assert!(parsed.verify(&other.verifier()).is_err());
    // Two equal checkpoints are not evidence, in any form.
    let same = signed(&log, &leaves("a", 7));
    assert!(ForkEvidence::from_checkpoints(&same, &same, &[]).is_none());
    let consistent = text.replace(
        &String::from_utf8(fork.to_bytes())
            .unwrap()
            .trim_end()
            .replace('\n', "\n\t"),
        &String::from_utf8(same.to_bytes())
            .unwrap()
            .trim_end()
            .replace('\n', "\n\t"),
    );
    assert_ne!(consistent, text);
    assert!(ForkEvidence::parse(&consistent).is_err());
}

#[test]
fn a_proof_from_a_forked_tree_is_evidence() {
    let log = log();
    // The client saw 10 entries; the log then serves a tree of 13 whose first 10 differ at
    // entry 3, with an honest proof for *that* tree.
    let seen = leaves("e", 10);
    let mut forked = leaves("e", 13);
    forked[3] = merkle::leaf_hash(b"swapped");
    let mut f = Follower::new(signed(&log, &seen));
    let proof = merkle::consistency_proof(&forked, 10).unwrap();
    let newer = signed(&log, &forked);
    let Err(FollowerError::Fork(evidence)) = f.update(&newer, &proof) else {
        panic!("a fork expected")
    };
    assert_eq!(evidence.proof(), proof.as_slice());
    let parsed = ForkEvidence::parse(&evidence.to_text()).unwrap();
    parsed.verify(&log.verifier()).unwrap();
    assert_eq!(f.last().checkpoint().size(), 10);
    // The same proof against the honest history is no evidence.
    let honest = leaves("e", 13);
    let honest_proof = merkle::consistency_proof(&honest, 10).unwrap();
    assert!(
        ForkEvidence::from_checkpoints(f.last(), &signed(&log, &honest), &honest_proof).is_none()
    );
    assert!(f.update(&signed(&log, &honest), &honest_proof).is_ok());
}

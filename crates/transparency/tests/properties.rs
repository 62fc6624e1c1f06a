//! Property tests: every generated Merkle proof verifies and every altered one fails; every
//! parser returns an error, never panics, on hostile input, and what it accepts re-serializes
//! to the same bytes (one spelling per value).

use hashguard_transparency::checkpoint::{Checkpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::{CosignatureSigner, CosignatureVerifier};
use hashguard_transparency::follower::ForkEvidence;
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::{Ed25519Signer, Ed25519Verifier, Note};
use hashguard_transparency::policy::Policy;
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TilePath};
use proptest::prelude::*;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut b = *h.as_bytes();
    b[bit / 8 % 32] ^= 1 << (bit % 8);
    Hash::from_bytes(b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn inclusion_proofs_verify_and_alterations_fail(n in 1u64..600, i in any::<u64>(), bit in 0usize..256, k in any::<usize>()) {
        let ls = leaves(n);
        let i = i % n;
        let root = merkle::root(&ls);
        let proof = merkle::inclusion_proof(&ls, i).unwrap();
        prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, n, &proof, &root).is_ok());
        // Any flipped bit of the leaf, of any proof hash, or of the root.
        prop_assert!(merkle::verify_inclusion(&flip(&ls[i as usize], bit), i, n, &proof, &root).is_err());
        prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, n, &proof, &flip(&root, bit)).is_err());
        if !proof.is_empty() {
            let mut p = proof.clone();
            let j = k % p.len();
            p[j] = flip(&p[j], bit);
            prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, n, &p, &root).is_err());
            // A hash dropped or repeated.
            prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, n, &proof[1..], &root).is_err());
        }
        let mut longer = proof.clone();
        longer.push(root);
        prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, n, &longer, &root).is_err());
        // Another index of the same tree, another leaf.
        let other = (i + 1 + k as u64 % n.max(2)) % n;
        if other != i {
            prop_assert!(merkle::verify_inclusion(&ls[i as usize], other, n, &proof, &root).is_err());
            prop_assert!(merkle::verify_inclusion(&ls[other as usize], i, n, &proof, &root).is_err());
        }
        // The root of another size.
        let m = 1 + k as u64 % n;
        if m != n && i < m {
            let p = merkle::inclusion_proof(&ls[..m as usize], i).unwrap();
            prop_assert!(merkle::verify_inclusion(&ls[i as usize], i, m, &p, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_alterations_fail(n in 2u64..600, m in any::<u64>(), bit in 0usize..256, k in any::<usize>()) {
        let ls = leaves(n);
        let m = 1 + m % (n - 1);
        let (old, new) = (merkle::root(&ls[..m as usize]), merkle::root(&ls));
        let proof = merkle::consistency_proof(&ls, m).unwrap();
        prop_assert!(merkle::verify_consistency(m, n, &old, &new, &proof).is_ok());
        prop_assert!(merkle::verify_consistency(m, n, &flip(&old, bit), &new, &proof).is_err());
        prop_assert!(merkle::verify_consistency(m, n, &old, &flip(&new, bit), &proof).is_err());
        let j = k % proof.len();
        let mut p = proof.clone();
        p[j] = flip(&p[j], bit);
        prop_assert!(merkle::verify_consistency(m, n, &old, &new, &p).is_err());
        prop_assert!(merkle::verify_consistency(m, n, &old, &new, &proof[1..]).is_err());
        let mut longer = proof.clone();
        longer.push(new);
        prop_assert!(merkle::verify_consistency(m, n, &old, &new, &longer).is_err());
        // Swapped roots, and the roots of other sizes.
        prop_assert!(merkle::verify_consistency(m, n, &new, &old, &proof).is_err());
        let m2 = 1 + k as u64 % (n - 1);
        if m2 != m {
            prop_assert!(merkle::verify_consistency(m2, n, &merkle::root(&ls[..m2 as usize]), &new, &proof).is_err());
        }
    }
}

/// Exhaustively for small trees: a proof never verifies for another index of the same size,
/// nor with the leaf of another index.
#[test]
fn inclusion_proofs_bind_the_index() {
    for n in 1..=40u64 {
        let ls = leaves(n);
        let root = merkle::root(&ls);
        for i in 0..n {
            let p = merkle::inclusion_proof(&ls, i).unwrap();
            for j in (0..n).filter(|&j| j != i) {
                assert!(merkle::verify_inclusion(&ls[i as usize], j, n, &p, &root).is_err());
                assert!(merkle::verify_inclusion(&ls[j as usize], i, n, &p, &root).is_err());
            }
        }
    }
}

/// A few valid inputs of each format, for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let log = Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap();
    let w = CosignatureSigner::from_seed("w.example", &[2; 32]).unwrap();
    let ls = leaves(9);
    let cp =
        Checkpoint::with_extensions("example.com/log", 9, merkle::root(&ls), vec!["ext".into()])
            .unwrap();
    let mut opened = cp.sign(&log).unwrap().open(&log.verifier()).unwrap();
    opened.add_cosignature(&w, 1234).unwrap();
    let bundle = ProofBundle::new(
        4,
        merkle::inclusion_proof(&ls, 4).unwrap(),
        opened.signed().clone(),
        Some(vec![1, 2]),
    )
    .unwrap();
    let policy = format!(
        "log {}\nwitness w {}\ngroup g any w\nquorum g\n",
        log.verifier().to_vkey(),
        w.verifier().to_vkey()
    );
    vec![
        opened.to_bytes(),
        bundle.to_bytes(),
        policy.into_bytes(),
        b"tile/1/x001/x234/067.p/7".to_vec(),
        log.verifier().to_vkey().into_bytes(),
        w.to_skey().as_bytes().to_vec(),
    ]
}

/// Feeds one input to every parser. Whatever a parser accepts must serialize back to the same
/// bytes and reparse to the same value.
fn parse_everything(data: &[u8]) {
    if let Ok(n) = Note::parse(data) {
        assert_eq!(n.to_bytes(), data);
    }
    if let Ok(c) = SignedCheckpoint::parse(data) {
        assert_eq!(c.to_bytes(), data);
    }
    if let Ok(p) = ProofBundle::parse(data) {
        assert_eq!(p.to_bytes(), data);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = Checkpoint::parse(s) {
        assert_eq!(c.to_body(), s);
    }
    if let Ok(p) = Policy::parse(s) {
        assert_eq!(Policy::parse(&p.to_text()).unwrap(), p);
    }
    if let Ok(t) = TilePath::parse(s) {
        assert_eq!(t.to_string(), s);
    }
    if let Ok(v) = Ed25519Verifier::from_vkey(s) {
        assert_eq!(Ed25519Verifier::from_vkey(&v.to_vkey()).unwrap(), v);
    }
    if let Ok(v) = CosignatureVerifier::from_vkey(s) {
        assert_eq!(CosignatureVerifier::from_vkey(&v.to_vkey()).unwrap(), v);
    }
    let _ = Ed25519Signer::from_skey(s);
    let _ = CosignatureSigner::from_skey(s);
    let _ = ForkEvidence::parse(s);
    for w in [1u16, 2, 255, 256] {
        let _ = tiles::parse_entry_bundle(&TilePath::entries(0, w).unwrap(), data);
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                b'\n', b' ', b'+', b'0', b'x', b'/', 0xe2, 0x80, 0x94, b'=', b'A'
            ])
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic_on_random_bytes(data in prop::collection::vec(any::<u8>(), 0..400)) {
        parse_everything(&data);
    }

    #[test]
    fn parsers_never_panic_on_mutated_valid_inputs(which in 0usize..6, edits in prop::collection::vec(edit(), 1..6)) {
        let mut data = seeds()[which].clone();
        for e in edits {
            let len = data.len().max(1);
            match e {
                Edit::Set(i, b) => { if !data.is_empty() { let i = i % data.len(); data[i] = b; } }
                Edit::Insert(i, b) => data.insert(i % (len + 1).min(data.len() + 1), b),
                Edit::Remove(i) => { if !data.is_empty() { let i = i % data.len(); data.remove(i); } }
                Edit::Truncate(i) => data.truncate(i % len),
            }
        }
        parse_everything(&data);
    }

    #[test]
    fn the_auditor_never_panics_on_hostile_tiles(size in 0u64..700, junk in prop::collection::vec(any::<u8>(), 0..600), which in any::<usize>()) {
        let entries: Vec<Vec<u8>> = (0..size).map(|i| vec![i as u8; (i % 5) as usize]).collect();
        let built = tiles::build_tiles(&entries).unwrap();
        let cp = Checkpoint::new("o", size, merkle::root(&entries.iter().map(|e| merkle::leaf_hash(e)).collect::<Vec<_>>())).unwrap();
        let victim = built.keys().nth(which % built.len().max(1)).copied();
        let r = tiles::audit(&cp, |p: &TilePath| {
            if Some(*p) == victim { Ok(junk.clone()) } else { built.get(p).cloned().ok_or("missing") }
        });
        if let Some(v) = victim {
            if built[&v] != junk {
                prop_assert!(r.is_err());
            }
        }
        // Proofs from hostile tiles: an error or a proof, never a panic.
        if size > 0 {
            let _ = tiles::inclusion_proof_from_tiles(size, which as u64 % size, |p: &TilePath| {
                if Some(*p) == victim { Ok(junk.clone()) } else { built.get(p).cloned().ok_or("missing") }
            });
        }
    }
}

#[test]
fn the_seeds_are_valid() {
    for s in seeds() {
        parse_everything(&s);
    }
    let s = seeds();
    assert!(SignedCheckpoint::parse(&s[0]).is_ok());
    assert!(ProofBundle::parse(&s[1]).is_ok());
    assert!(Policy::parse(std::str::from_utf8(&s[2]).unwrap()).is_ok());
    assert!(TilePath::parse(std::str::from_utf8(&s[3]).unwrap()).is_ok());
}

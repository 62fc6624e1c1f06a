//! Interoperability with independent implementations, used only here: Cloudflare azul's
//! `signed_note` and `tlog_tiles` crates (ports of Go's `sumdb/note` and `sumdb/tlog`).
//!
//! Each test writes with one implementation and reads with the other, both ways where the other
//! implementation has the feature: notes and keys, checkpoints, cosignatures (the signed message
//! rebuilt here from the spec's text, since neither crate has cosignatures), tile paths and
//! tiles, inclusion and consistency proofs, and the parts of a proof bundle.

use hashguard_transparency::checkpoint::Checkpoint;
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::{Ed25519Signer, Ed25519Verifier, Note, NoteVerifier as _};
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TileKind, TilePath};
use std::collections::{BTreeMap, BTreeSet};

use signed_note::{Signer as _, VerifierList};

fn their_verifiers(vkeys: &[&str]) -> VerifierList {
    VerifierList::new(
        vkeys
            .iter()
            .map(|v| {
                Box::new(signed_note::StandardVerifier::new(v).unwrap())
                    as Box<dyn signed_note::Verifier>
            })
            .collect(),
    )
}

/// A deterministic RNG for `signed_note::generate_key` (rand_core 0.6 traits).
struct CountingRng(u8);
impl rand_core_06::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        rand_core_06::impls::next_u32_via_fill(self)
    }
    fn next_u64(&mut self) -> u64 {
        rand_core_06::impls::next_u64_via_fill(self)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_mul(31).wrapping_add(7);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl rand_core_06::CryptoRng for CountingRng {}

#[test]
fn signed_note_reads_our_notes_and_keys() {
    let a = Ed25519Signer::generate("example.com/a").unwrap();
    let b = Ed25519Signer::generate("example.com/b").unwrap();
    let mut note = Note::new("a text\n\nwith a blank line\n").unwrap();
    note.sign(&a).unwrap();
    note.sign(&b).unwrap();
    let bytes = note.to_bytes();

    let theirs = signed_note::Note::from_bytes(&bytes).unwrap();
    assert_eq!(theirs.text(), note.text().as_bytes());
    let (verified, unverified) = theirs
        .verify(&their_verifiers(&[&a.verifier().to_vkey()]))
        .unwrap();
    assert_eq!((verified.len(), unverified.len()), (1, 1));
    assert_eq!(verified[0].id(), a.verifier().key_id());
    // Our skey is their skey: their signer reproduces our signature line byte for byte.
    let their_signer = signed_note::StandardSigner::new(&b.to_skey()).unwrap();
    assert_eq!(their_signer.key_id(), b.verifier().key_id());
    let mut theirs = signed_note::Note::new(note.text().as_bytes(), &[]).unwrap();
    theirs.add_sigs(&[&their_signer]).unwrap();
    assert_eq!(
        String::from_utf8(theirs.to_bytes()).unwrap(),
        format!("{}\n{}", note.text(), note.signatures()[1].to_line())
    );
    // A byte flipped in our note's text makes their verification fail.
    let tampered = String::from_utf8(bytes).unwrap().replace("blank", "blanc");
    assert!(signed_note::Note::from_bytes(tampered.as_bytes())
        .unwrap()
        .verify(&their_verifiers(&[&a.verifier().to_vkey()]))
        .is_err());
}

#[test]
fn we_read_signed_note_notes_and_keys() {
    for seed in 0..8u8 {
        let name = format!("example.org/k{seed}");
        let (skey, vkey) = signed_note::generate_key(&mut CountingRng(seed), &name);
        let ours = Ed25519Verifier::from_vkey(&vkey).unwrap();
        assert_eq!(ours.to_vkey(), vkey);
        assert_eq!(Ed25519Signer::from_skey(&skey).unwrap().verifier(), ours);

        let signer = signed_note::StandardSigner::new(&skey).unwrap();
        let mut n = signed_note::Note::new(format!("note {seed}\n").as_bytes(), &[]).unwrap();
        n.add_sigs(&[&signer]).unwrap();
        let parsed = Note::parse(&n.to_bytes()).unwrap();
        assert_eq!(parsed.verify(&[&ours]).unwrap()[0].name(), name);
        assert_eq!(parsed.to_bytes(), n.to_bytes());
    }
}

/// A verifier of `cosignature/v1` written from the spec text alone, plugged into signed_note.
struct SpecCosigVerifier {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl signed_note::Verifier for SpecCosigVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 72 {
            return false;
        }
        let ts = u64::from_be_bytes(sig[..8].try_into().unwrap());
        let mut m = format!("cosignature/v1\ntime {ts}\n").into_bytes();
        m.extend_from_slice(msg);
        let s = ed25519_dalek::Signature::from_slice(&sig[8..]).unwrap();
        self.key.verify_strict(&m, &s).is_ok()
    }
}

#[test]
fn our_checkpoints_and_cosignatures_read_with_signed_note_and_tlog_tiles() {
    let log = Ed25519Signer::generate("example.com/log").unwrap();
    let witness = CosignatureSigner::generate("example.com/witness").unwrap();
    let entries: Vec<Vec<u8>> = (0..300u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    let cp = Checkpoint::new("example.com/log", 300, merkle::root(&leaves)).unwrap();
    let mut opened = cp.sign(&log).unwrap().open(&log.verifier()).unwrap();
    opened.add_cosignature(&witness, 1_750_000_000).unwrap();
    let bytes = opened.to_bytes();

    // tlog_tiles parses our checkpoint body to the same values, and formats it identically.
    let theirs = tlog_tiles::Checkpoint::from_bytes(cp.to_body().as_bytes()).unwrap();
    assert_eq!(theirs.origin(), "example.com/log");
    assert_eq!(theirs.size(), 300);
    assert_eq!(theirs.hash().0, *cp.root_hash().as_bytes());
    assert_eq!(theirs.to_bytes(), cp.to_body().as_bytes());

    // signed_note verifies the log signature and, with the spec-text verifier, the cosignature;
    // its key ID function agrees with ours for type 0x04.
    let wv = witness.verifier();
    let mut typed_key = vec![0x04];
    typed_key.extend_from_slice(&wv.public_key());
    assert_eq!(signed_note::key_id(wv.name(), &typed_key), wv.key_id());
    let spec_verifier = SpecCosigVerifier {
        name: wv.name().to_string(),
        id: wv.key_id(),
        key: ed25519_dalek::VerifyingKey::from_bytes(&wv.public_key()).unwrap(),
    };
    let list = VerifierList::new(vec![
        Box::new(signed_note::StandardVerifier::new(&log.verifier().to_vkey()).unwrap()),
        Box::new(spec_verifier),
    ]);
    let (verified, unverified) = signed_note::Note::from_bytes(&bytes)
        .unwrap()
        .verify(&list)
        .unwrap();
    assert_eq!((verified.len(), unverified.len()), (2, 0));

    // And the other way: a checkpoint body formatted by tlog_tiles parses to the same checkpoint.
    let theirs = tlog_tiles::Checkpoint::new(
        "example.com/log",
        300,
        tlog_tiles::Hash(*cp.root_hash().as_bytes()),
        "",
    )
    .unwrap();
    let theirs_text = String::from_utf8(theirs.to_bytes()).unwrap();
    assert_eq!(Checkpoint::parse(&theirs_text).unwrap(), cp);
}

/// Serves our tiles to tlog_tiles, translating its Go-style paths (`tile/8/L/N`) to C2SP ones.
struct OurTiles(BTreeMap<TilePath, Vec<u8>>);

impl tlog_tiles::TileReader for OurTiles {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        tiles
            .iter()
            .map(|t| {
                let go_path = t.path();
                let c2sp = go_path.replacen("tile/8/", "tile/", 1);
                let path = TilePath::parse(&c2sp).map_err(|_| tlog_tiles::Error::InvalidTile)?;
                self.0
                    .get(&path)
                    .cloned()
                    .ok_or(tlog_tiles::Error::InvalidTile)
            })
            .collect()
    }
    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

fn th(h: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(*h.as_bytes())
}

#[test]
fn tlog_tiles_reads_our_tiles_and_proofs_and_we_read_its_proofs() {
    let entries: Vec<Vec<u8>> = (0..70_000u32)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    for size in [1u64, 2, 255, 256, 257, 513, 65_536, 65_537, 70_000] {
        let es = &entries[..size as usize];
        let ls = &leaves[..size as usize];
        let root = merkle::root(ls);
        let built = tiles::build_tiles(es).unwrap();

        // The same set of hash tiles as Go's tile plan, every path in both spellings.
        let go: BTreeSet<TilePath> = tlog_tiles::Tile::new_tiles(8, 0, size)
            .iter()
            .map(|t| TilePath::parse(&t.path().replacen("tile/8/", "tile/", 1)).unwrap())
            .collect();
        let ours: BTreeSet<TilePath> = built
            .keys()
            .filter(|p| p.kind() != TileKind::Entries)
            .copied()
            .collect();
        assert_eq!(go, ours, "size {size}");

        // Entry bundles, decoded here independently, hash (tlog_tiles::record_hash) to the
        // level-0 tiles.
        for (path, bytes) in built.iter().filter(|(p, _)| p.kind() == TileKind::Entries) {
            let mut rest = &bytes[..];
            let mut i = 0usize;
            let tile = &built[&TilePath::hashes(0, path.index(), path.width()).unwrap()];
            while !rest.is_empty() {
                let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
                let h = tlog_tiles::record_hash(&rest[2..2 + len]);
                assert_eq!(&tile[i * 32..i * 32 + 32], &h.0[..]);
                rest = &rest[2 + len..];
                i += 1;
            }
            assert_eq!(i, path.width() as usize);
        }

        // tlog_tiles authenticates our tiles against the root while reading them.
        let reader = OurTiles(built.clone());
        let thr = tlog_tiles::TileHashReader::new(size, th(&root), &reader);
        assert_eq!(tlog_tiles::tree_hash(size, &thr).unwrap(), th(&root));

        for index in [0, size / 3, size - 1] {
            // Their proof, from our tiles, verifies with our code; ours verifies with theirs.
            let theirs = tlog_tiles::prove_record(size, index, &thr).unwrap();
            let theirs: Vec<Hash> = theirs.iter().map(|h| Hash::from_bytes(h.0)).collect();
            merkle::verify_inclusion(&ls[index as usize], index, size, &theirs, &root).unwrap();
            let ours = merkle::inclusion_proof(ls, index).unwrap();
            assert_eq!(ours, theirs);
            let from_tiles = tiles::inclusion_proof_from_tiles(size, index, |p: &TilePath| {
                built.get(p).cloned().ok_or("missing")
            })
            .unwrap();
            assert_eq!(from_tiles, ours);
            tlog_tiles::check_record(
                &ours.iter().map(th).collect(),
                size,
                th(&root),
                index,
                th(&ls[index as usize]),
            )
            .unwrap();
        }
        for old in [1, size / 2, size - 1].into_iter().filter(|&o| o >= 1) {
            let old_root = merkle::root(&ls[..old as usize]);
            let theirs = tlog_tiles::prove_tree(size, old, &thr).unwrap();
            let theirs: Vec<Hash> = theirs.iter().map(|h| Hash::from_bytes(h.0)).collect();
            merkle::verify_consistency(old, size, &old_root, &root, &theirs).unwrap();
            let ours = merkle::consistency_proof(ls, old).unwrap();
            assert_eq!(ours, theirs);
            let from_tiles = tiles::consistency_proof_from_tiles(old, size, |p: &TilePath| {
                built.get(p).cloned().ok_or("missing")
            })
            .unwrap();
            assert_eq!(from_tiles, ours);
            tlog_tiles::check_tree(
                &ours.iter().map(th).collect(),
                size,
                th(&root),
                old,
                th(&old_root),
            )
            .unwrap();
        }
    }
}

#[test]
fn the_parts_of_our_proof_bundle_read_with_the_other_implementations() {
    let log = Ed25519Signer::generate("example.com/log").unwrap();
    let entries: Vec<Vec<u8>> = (0..11u8).map(|i| vec![i; 3]).collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
    let root = merkle::root(&leaves);
    let signed = Checkpoint::new("example.com/log", 11, root)
        .unwrap()
        .sign(&log)
        .unwrap();
    let bundle = ProofBundle::new(
        6,
        merkle::inclusion_proof(&leaves, 6).unwrap(),
        signed,
        Some(b"ctx".to_vec()),
    )
    .unwrap();
    let text = String::from_utf8(bundle.to_bytes()).unwrap();

    // Split by the spec's grammar, independently of our parser.
    let (head, note) = text.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("c2sp.org/tlog-proof@v1"));
    assert_eq!(lines.next(), Some("extra Y3R4"));
    assert_eq!(lines.next(), Some("index 6"));
    let proof: tlog_tiles::RecordProof = lines
        .map(|l| tlog_tiles::Hash::parse_hash(l).unwrap())
        .collect();
    tlog_tiles::check_record(
        &proof,
        11,
        th(&root),
        6,
        tlog_tiles::record_hash(&entries[6]),
    )
    .unwrap();
    let n = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
    n.verify(&their_verifiers(&[&log.verifier().to_vkey()]))
        .unwrap();
    let cp = tlog_tiles::Checkpoint::from_bytes(n.text()).unwrap();
    assert_eq!((cp.size(), cp.hash().0), (11, *root.as_bytes()));
}

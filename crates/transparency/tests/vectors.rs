//! Published examples, byte for byte: the specs' own texts and keys, Go's `sumdb/note` example
//! (the origin of the signed-note format) and a checkpoint of a public log cosigned by a witness
//! of the public witness network.

use hashguard_transparency::checkpoint::{LogSignedCheckpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::{signed_message, CosignatureVerifier};
use hashguard_transparency::note::{
    Ed25519Signer, Ed25519Verifier, Note, NoteError, NoteVerifier as _,
};
use hashguard_transparency::policy::Policy;

/// The example of c2sp.org/signed-note. The spec publishes no key for it, so only its form is
/// checked: it parses, has one Ed25519-sized signature, and serializes back to the same bytes.
const SPEC_NOTE: &str = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";

/// Go's `golang.org/x/mod/sumdb/note` package documentation example.
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const GO_ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// A checkpoint of the staging Certificate Transparency log arche2025h1 with its Ed25519 note
/// signature (0x01), its RFC 6962 signature (0x05, unknown to us, so ignored) and cosignatures of
/// four public witnesses, among them remora.n621.de, whose `cosignature/v1` key is published.
const REAL_CHECKPOINT: &str = "arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
";
const REAL_LOG_VKEY: &str =
    "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f";
const REAL_WITNESS_VKEY: &str =
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";

/// The examples of c2sp.org/tlog-checkpoint and c2sp.org/tlog-cosignature (no keys published).
const SPEC_COSIGNED: &str = "example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==
";

#[test]
fn the_signed_note_spec_example_parses_and_round_trips() {
    let note = Note::parse(SPEC_NOTE.as_bytes()).unwrap();
    assert_eq!(
        note.text(),
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    );
    let [sig] = note.signatures() else {
        panic!("one signature expected")
    };
    assert_eq!(sig.name(), "quasimodo.example/salvatore");
    assert_eq!(sig.signature().len(), 64);
    assert_eq!(note.to_bytes(), SPEC_NOTE.as_bytes());
}

#[test]
fn go_sumdb_note_example_verifies_and_is_reproduced() {
    let peter = Ed25519Verifier::from_vkey(GO_VKEY).unwrap();
    assert_eq!(peter.key_id(), 0xc74f20a3);
    assert_eq!(peter.to_vkey(), GO_VKEY);
    let msg = format!("{GO_TEXT}\n{GO_SIG}");
    let note = Note::parse(msg.as_bytes()).unwrap();
    assert_eq!(note.verify(&[&peter]).unwrap().len(), 1);

    // Signing the text with the published skey gives exactly the published note (Ed25519 is
    // deterministic), and the skey round-trips.
    let signer = Ed25519Signer::from_skey(GO_SKEY).unwrap();
    assert_eq!(signer.to_skey().as_str(), GO_SKEY);
    let mut ours = Note::new(GO_TEXT).unwrap();
    ours.sign(&signer).unwrap();
    assert_eq!(ours.to_bytes(), msg.as_bytes());

    // The doubly-signed note of Go's documentation: both verify; each alone is enough; an
    // unknown third key is ignored.
    let enoch = Ed25519Verifier::from_vkey(GO_ENOCH_VKEY).unwrap();
    let double = format!("{GO_TEXT}\n{GO_SIG}{GO_ENOCH_SIG}");
    let note = Note::parse(double.as_bytes()).unwrap();
    assert_eq!(note.verify(&[&peter, &enoch]).unwrap().len(), 2);
    assert_eq!(note.verify(&[&enoch]).unwrap()[0].name(), "EnochRoot");
    let stranger = Ed25519Signer::from_seed("Stranger", &[5; 32]).unwrap();
    assert_eq!(
        note.verify(&[&stranger.verifier()]),
        Err(NoteError::NoKnownSignature)
    );
    // A wrong message fails under the known key.
    let wrong = format!("{}\n{GO_SIG}", GO_TEXT.replace("answer", "answers"));
    assert!(matches!(
        Note::parse(wrong.as_bytes()).unwrap().verify(&[&peter]),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn a_real_witnessed_checkpoint_verifies() {
    let log = Ed25519Verifier::from_vkey(REAL_LOG_VKEY).unwrap();
    let witness = CosignatureVerifier::from_vkey(REAL_WITNESS_VKEY).unwrap();
    assert_eq!(witness.to_vkey(), REAL_WITNESS_VKEY);
    let opened = LogSignedCheckpoint::open(REAL_CHECKPOINT.as_bytes(), &log).unwrap();
    assert_eq!(opened.checkpoint().size(), 1432088532);
    assert_eq!(opened.to_bytes(), REAL_CHECKPOINT.as_bytes());

    // The witness's cosignature, checked through a policy requiring it.
    let policy = Policy::parse(&format!(
        "log {REAL_LOG_VKEY}\nwitness remora {REAL_WITNESS_VKEY}\nquorum remora\n"
    ))
    .unwrap();
    let verified = policy
        .verify_checkpoint_bytes(REAL_CHECKPOINT.as_bytes())
        .unwrap();
    let [c] = verified.cosignatures() else {
        panic!("one cosignature expected")
    };
    assert_eq!(c.witness, "remora");
    // 0x6a122120, the timestamp the cosignature's bytes carry.
    assert_eq!(c.timestamp, 0x6a12_2120);

    // The same bytes with the size changed verify under neither key.
    let forged = REAL_CHECKPOINT.replace("1432088532", "1432088533");
    assert!(LogSignedCheckpoint::open(forged.as_bytes(), &log).is_err());
    assert!(policy.verify_checkpoint_bytes(forged.as_bytes()).is_err());
}

#[test]
fn the_checkpoint_and_cosignature_spec_examples_parse() {
    let signed = SignedCheckpoint::parse(SPEC_COSIGNED.as_bytes()).unwrap();
    let c = signed.unverified_checkpoint();
    assert_eq!(c.origin(), "example.com/behind-the-sofa");
    assert_eq!(c.size(), 20852163);
    assert_eq!(
        c.root_hash().to_base64(),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    // The cosignature's bytes: 8-byte timestamp 1679315147 (the spec's message example) and a
    // 64-byte Ed25519 signature.
    let cosig = &signed.note().signatures()[1];
    assert_eq!(cosig.signature().len(), 72);
    let ts = u64::from_be_bytes(cosig.signature()[..8].try_into().unwrap());
    assert_eq!(ts, 1679315147);
    assert_eq!(
        signed_message(&c.to_body(), ts),
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
    assert_eq!(signed.to_bytes(), SPEC_COSIGNED.as_bytes());
}

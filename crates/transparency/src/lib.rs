//! The transparency-log formats of the C2SP specifications, for hashguard's manifest log (G5).
//!
//! hashguard publishes one manifest per list epoch into an append-only log. Clients, witnesses
//! and auditors must be able to check that log with the tools the transparency community already
//! has, so this crate implements the community's formats rather than inventing new ones:
//!
//! | module | specification | what it gives |
//! |---|---|---|
//! | [`note`] | c2sp.org/signed-note | notes, Ed25519 signers and verifiers (`vkey`/`skey` text forms) |
//! | [`checkpoint`] | c2sp.org/tlog-checkpoint | the log's signed tree head |
//! | [`cosignature`] | c2sp.org/tlog-cosignature | witness cosignatures `cosignature/v1` (key type 0x04) |
//! | [`merkle`] | RFC 6962 / RFC 9162 | tree hashing, inclusion and consistency proofs |
//! | [`tiles`] | c2sp.org/tlog-tiles | tile paths, building every tile, the auditor |
//! | [`proof`] | c2sp.org/tlog-proof | the offline proof bundle shipped with each manifest |
//! | [`policy`] | c2sp.org/tlog-policy | the witness quorum a client pins, giving a [`policy::VerifiedCheckpoint`] |
//! | [`follower`] | Go's sumdb client | keep the last checkpoint, accept only consistent newer ones, keep fork evidence |
//!
//! The crate does no I/O and holds no database: fetching is the caller's closure, persistence is
//! the caller's bytes. It depends on no other hashguard crate, so the client SDK, the witness and
//! the service can all share it. The manifests themselves (E9-E11) are built on top of it, in the
//! protocol crate.
//!
//! Every parser here takes untrusted input: it is strict (one accepted encoding per value, so
//! signatures cannot be replayed over a re-encoded text), bounded in size and count, and returns
//! errors instead of panicking.
//!
//! A typical client flow:
//!
//! ```
//! use hashguard_transparency::{checkpoint::Checkpoint, cosignature::CosignatureSigner,
//!     merkle, note::Ed25519Signer, policy::Policy, proof::ProofBundle};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The log and one witness (in production their keys come from configuration).
//! let log = Ed25519Signer::generate("example.com/log")?;
//! let witness = CosignatureSigner::generate("example.com/witness")?;
//! let entries: Vec<Vec<u8>> = vec![b"manifest 1".to_vec(), b"manifest 2".to_vec()];
//! let leaves: Vec<merkle::Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
//!
//! // The log signs a checkpoint; the witness checks the log's signature and cosigns.
//! let checkpoint = Checkpoint::new("example.com/log", 2, merkle::root(&leaves))?;
//! let mut signed = checkpoint.sign(&log)?.open(&log.verifier())?;
//! signed.add_cosignature(&witness, 1_700_000_000)?;
//!
//! // The log ships a proof bundle with entry 1.
//! let proof = merkle::inclusion_proof(&leaves, 1)?;
//! let bundle = ProofBundle::new(1, proof, signed.signed().clone(), None)?;
//! let text = bundle.to_bytes();
//!
//! // The client pins a policy and checks the bundle against the entry it received.
//! let policy = Policy::parse(&format!(
//!     "log {}\nwitness w1 {}\nquorum w1\n",
//!     log.verifier().to_vkey(),
//!     witness.verifier().to_vkey()
//! ))?;
//! let verified = ProofBundle::parse(&text)?.verify(&entries[1], &policy)?;
//! assert_eq!(verified.checkpoint().size(), 2);
//! assert_eq!(verified.oldest_cosignature(), Some(1_700_000_000));
//! # Ok(())
//! # }
//! ```

pub mod checkpoint;
pub mod cosignature;
pub mod follower;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod proof;
pub mod tiles;

mod text;

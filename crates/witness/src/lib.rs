//! A witness for hashguard's manifest log, as c2sp.org/tlog-witness specifies, cosigning with
//! c2sp.org/tlog-cosignature (`cosignature/v1`, Ed25519).
//!
//! A witness knows some logs (origin and public key, [`KnownLogs`]) and, for each, the latest
//! tree it cosigned. A log (or anyone) submits a new checkpoint with a consistency proof from
//! that tree ([`Witness::add_checkpoint`]); the witness checks the log's signature, the old size,
//! the proof and that it never cosigned another tree of that size, persists the new tree in the
//! same atomic step that checked the old one ([`WitnessDb::advance`]), and only then returns its
//! timestamped cosignature. It keeps every checkpoint it cosigned (the manifest log has one
//! entry per list epoch, so the history is small), which lets it answer clients' gossip
//! ([`Witness::gossip`]): a client that was shown a checkpoint of a size the witness cosigned
//! with another root learns of the split view, and the witness keeps the two signed checkpoints
//! as [`ForkEvidence`].
//!
//! The HTTP side is [`http::router`]; `hashguard witness serve` runs it. docs/witness.md has
//! the endpoints, the status codes and the statement.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hashguard_transparency::cosignature::CosignatureSigner;
//! use hashguard_witness::{KnownLogs, Witness, WitnessDb};
//!
//! let signer = CosignatureSigner::generate("witness.example/w1")?;
//! let logs = KnownLogs::parse("log example.com/log+0123abcd+AQ...\n")?;
//! let db = WitnessDb::open("sqlite://witness.db?mode=rwc").await?;
//! let witness = std::sync::Arc::new(Witness::new(signer, logs, db));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8650").await?;
//! hashguard_witness::http::serve(listener, witness, std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod db;
pub mod http;
pub mod logs;
pub mod request;
mod statement;
pub mod witness;

pub use db::{Advance, CosignedCheckpoint, DbError, ForkEvidence, ForkSource, Tree, WitnessDb};
pub use logs::{KnownLogs, LogsError};
pub use request::{AddCheckpointRequest, MalformedRequest, MAX_PROOF_LINES};
pub use witness::{Cosigned, GossipAnswer, Refusal, Witness};

//! The server's blinded table (protocol.md R/E2): shard assignment, per-build ids, the OKVS in
//! H-space, blinding with α, Merkle roots, the batched DLEQ proof, the `TableShard` wire format,
//! the organisations' re-derivation check (4.4 / E11) and the client's verified view (E3).

mod build;
mod client_view;
mod opening_key;
mod org;
mod shard;
mod spec;

pub(crate) use build::solve_shard;
pub use build::{
    build_shard, build_table, build_table_after, key_set_digest, BuiltShard, BuiltTable,
    EpochInput, PreviousShard,
};
pub use client_view::{decodes_with_secret, ClientTable};
pub use opening_key::{OpeningKey, PublicKey};
pub use org::verify_shard_for_org;
pub use shard::{ShardEntry, ShardHeader, TableShard, TABLE_SHARD_HEADER_LEN, TABLE_SHARD_VERSION};
pub use spec::{build_id, fill_seed, TableSpec, MAX_SHARDS};
pub(crate) use spec::{fill_point, key_point, okvs_seed};

use crate::dleq::DleqError;
use crate::wire::DecodeError;

/// Why building, loading or verifying a table failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A wire format is malformed.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Peeling failed for 256 seeds (never happens for distinct keys in practice).
    #[error("OKVS peeling failed for shard {0}")]
    PeelFailed(u16),
    /// A shard count outside `1..=MAX_SHARDS`.
    #[error("shard count {0} is outside 1..={MAX_SHARDS}")]
    ShardCount(u16),
    /// The manifest has no table of this kind.
    #[error("the manifest has no {0:?} table")]
    NoTable(crate::keys::TableKind),
    /// More keys in one shard than the format can count.
    #[error("shard {0} has more keys than the format can count")]
    ShardTooLarge(u16),
    /// Keys have the wrong length for the table kind.
    #[error("a key has the wrong length for this table kind")]
    KeyLength,
    /// A shard does not match its manifest entry or its layout rule.
    #[error("shard {shard}: {what}")]
    ShardMismatch {
        /// Shard index.
        shard: u16,
        /// What did not match.
        what: &'static str,
    },
    /// The DLEQ proof of a shard does not verify.
    #[error("shard {0}: DLEQ proof does not verify ({1})")]
    Proof(u16, DleqError),
    /// The table is larger than the client accepts.
    #[error("table has {got} keys, above the limit {limit}")]
    TooManyKeys {
        /// Σ n_s.
        got: u64,
        /// N_MAX.
        limit: u64,
    },
}

//! Detection quality of the deployed protocol (issue 17).
//!
//! - [`corpus`]: the benign corpus manifest (`bench/quality/corpus.csv`): every image decoded by
//!   the project's decoder, PDQ-hashed, filtered by quality and size, deduplicated at PDQ
//!   distance 31.
//! - [`transforms`]: the re-share transform suite (JPEG re-encodes, messenger resizes,
//!   screenshots, brightness and gamma, small crops, letterbox, mirror, rotations, lossy WebP),
//!   deterministic per seed.
//! - [`measure`]: recall per transform and per PDQ-distance bucket and false opens, through the
//!   real client and opener of `hashguard-protocol` at `Params::v1(Policy::Intervene)`, beside a
//!   plain PDQ <= 31 matcher.
//! - [`collisions`]: chance key matches measured over all ordered pairs of the corpus.
//! - [`second_hash`]: the second hash for the automatic check, candidates measured (item 6).
//! - [`plots`]: the figures of docs/quality.md from the JSON of `measure` and `collisions`.
//! - [`generated`]: benign generated images (for CI, which has no corpus cache).

pub mod collisions;
pub mod corpus;
pub mod generated;
pub mod measure;
pub mod plots;
pub mod second_hash;
pub mod transforms;

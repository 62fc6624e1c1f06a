//! PDQ-tPSI v1: threshold private matching of PDQ keys against a blinded, certified table.
//!
//! An end-to-end encrypted messenger's client attaches a *voucher* to every upload. The server
//! can open a voucher only if one of its probe keys is in the certified key set K; it then
//! learns one Shamir share of the account's key and nothing else, and decrypts the payloads
//! (PDQ hash, content hash, visual-derivative key) only once an account has T distinct matches
//! or the sender consents to the automatic check of one held item. This crate is the pure
//! protocol: deterministic given an RNG, no I/O, no `unsafe`.
//!
//! The design is `../shared/design/protocol.md` with its section R (the revisions after the
//! design review); `docs/protocol.md` in the repository states what each party learns.
//!
//! # Parts
//! - [`params`]: the public parameters (k, key positions, f, w, P, T, s_max, policy …), their
//!   canonical encoding, and the check against values pinned in the client binary.
//! - [`keys`]: κ(y) from fixed low-frequency PDQ bits, the client's multi-probe set over its
//!   weakest bits, key separation on the server, exact file-digest keys.
//! - [`okvs`], [`table`], [`merkle`], [`dleq`], [`manifest`]: the server's sharded 3-wise
//!   binary-fuse OKVS in H-space, blinded by α, its Merkle roots and batched DLEQ proof, the
//!   published `TableShard` and manifest, the organisations' re-derivation check, and the
//!   client's fully verified [`table::ClientTable`].
//! - [`sender`]: the uploading client's side: account state, dedup, synthetic decisions
//!   (`silent` only), voucher assembly.
//! - [`voucher`]: the voucher, L1Plain and payload wire formats.
//! - [`opener`]: the opening service's side: opening, the per-account threshold store, the
//!   consented check.
//!
//! # Design decisions, and why
//! - **Keys, not distances.** Private matching at Hamming distance 31 on 256 bits is out of
//!   reach at messenger scale, so the table holds k = 48-bit keys taken from the 48 lowest-
//!   frequency PDQ bits (calibration.md: the most stable), and the client probes its key with up
//!   to f = 2 of its w = 12 weakest bits flipped (P = 79). The full distance is checked only
//!   after decryption. The build keeps keys ≥ 2f + 1 apart, so on an honest table at most one
//!   probe of a voucher can open.
//! - **One (Q, ct) pair per probe.** A 3-wise OKVS (binary-fuse layout: three positions in three
//!   consecutive segments, always distinct) lets every listed key decode to `α·H(κ)` as the sum
//!   of three table points, so a probe is one Naor–Reingold random self-reduction
//!   `Q = βH + γG, S = βD + γL` (Apple PSI, Remark 7). If D is not `α·H`, S is independent of
//!   `α·Q` and the probe's ciphertext is unopenable, information-theoretically.
//! - **Per-build ids everywhere** (review C1). Every hash-to-group input starts with the
//!   shard's `build_id`, which changes on every rebuild, so two published tables never decode a
//!   shared key to the same point. Shards are assigned by a salted hash of κ and rebuilt only
//!   when their key set changes, which keeps deltas small.
//! - **Certification without revealing K.** `T = α·M` with M publicly recomputable from K and
//!   the build, so one 64-byte batched Chaum–Pedersen proof per shard, with weights derived
//!   from both Merkle roots, lets the organisations that hold K check that the table encodes
//!   exactly K. Clients cannot (they lack K); they check what they can: every point valid and
//!   non-identity, L non-identity, layouts and counts as pinned ([`table::ClientTable::load`]).
//! - **Binding.** The probe key and both AADs include `ctx_bind = SHA-256(account ‖
//!   SHA-256(ciphertext))`, so a voucher moved to another upload or account never opens.
//! - **Two policies.** Under `intervene` the server learns each match bit and holds the item;
//!   there are no synthetic vouchers and no DHF (s_max = 0 saves 728 bytes per voucher,
//!   protocol-review.md m3). Under `silent`, synthetic vouchers and the DHF of [APSI] hide the
//!   match bit below T statistically.
//! - **Strict, typed wire formats.** Each format is a type with `encode` and `decode` side by
//!   side ([`voucher`], [`table::TableShard`], [`manifest::Manifest`],
//!   [`sender::AccountState`]); decoders check exact lengths, canonical points and scalars,
//!   field elements below ℓ, and return [`wire::DecodeError`], never panicking.
//! - **Secrets.** α, seeds, adkey, polynomial coefficients, β, γ, rkey, derived AEAD keys and
//!   payloads are zeroized on drop (best effort: dalek scalars are `Copy`). Point arithmetic on
//!   secrets is constant time (`multiscalar_mul`, `Scalar * Point`); the weakest-bit selection
//!   is a sorting network of `subtle` compare-and-swaps. The one secret-indexed access is the
//!   OKVS lookup of the client's own key (three reads per probe, no early exit), which only a
//!   co-resident observer on the client device could see (protocol-review.md m8).
//!
//! # Example
//! ```
//! use hashguard_protocol::prelude::*;
//! use hashguard_protocol::acceptance::accept_manifest;
//! use hashguard_protocol::trust_sandbox::TrustSandbox;
//! use rand_core::{Rng, SeedableRng};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
//! // Small parameters: k = 16 bits, f = 1 over w = 4 bits (P = 5), T = 2.
//! let params = Params::new(ParamsSpec {
//!     policy: Policy::Intervene, key_positions: low_frequency_positions(16), f: 1, w: 4,
//!     threshold: 2, s_max: 0, q_min: 50, r_dedup: 8, sep: 3, synth_a: 0, synth_b: 0, vd_len: 256,
//!     max_opens: 1, dihedral: 0, dihedral_f: 0,
//! })?;
//! let secret = OpeningKey::generate(&mut rng);
//! let spec = TableSpec::new([1; 16], TableKind::Pdq, params.clone(), secret.public_key(), 2, [2; 32])?;
//! // A listed image's PDQ hash and the key it gives.
//! let listed = Hash256::from_words([rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()]);
//! let key = KeyBytes::from_pdq_key(pdq_key(&listed, &params), params.k());
//! let epoch = EpochInput { epoch: 1, prev_manifest_hash: [0; 32], beacon: [3; 32] };
//! let built = build_table(&spec, &secret, &[key], &epoch, None, &mut rng)?;
//! let shards: Vec<TableShard> = built.shards.iter().map(|s| s.shard.clone()).collect();
//! // The client takes a table only through a manifest that passed every acceptance rule
//! // (signed, co-signed by two organisations in two jurisdictions, logged, witnessed, current,
//! // pinned parameters). Here a throwaway sandbox plays the service, the organisations, the
//! // log and its witnesses, and the client trusts the sandbox's keys.
//! let mut sandbox = TrustSandbox::generate(&mut rng, [1; 16], PinnedParams::exactly(params.clone()));
//! sandbox.publish(Manifest::for_table(&built, &epoch, 0, u64::MAX)?)?;
//! let accepted = accept_manifest(&sandbox.bundle(0, 0), &[], &sandbox.anchors(), None, 0)?;
//! let table = ClientTable::load(&accepted.manifest, TableKind::Pdq, &shards, 1_000_000)?;
//!
//! // The client uploads the listed image; the server opens its voucher.
//! let mut client = Client::new(AccountState::generate(&mut rng), params.clone());
//! let item = Item { pdq: Some(PdqInput { hash: listed, margins: [1.0; 256], quality: 90 }),
//!                   content_sha256: [9; 32], media_kind: MediaKind::Image, frame_idx: 0,
//!                   thumbnail: b"thumb" };
//! let binding = UploadBinding::new([5; 16], b"attachment ciphertext");
//! let built_voucher = client.build_pdq_voucher(&table, &item, &binding, &mut rng)?;
//! let layout = VoucherLayout::pdq(&params);
//! let bytes = built_voucher.voucher.encode();
//! assert_eq!(bytes.len(), layout.voucher_len());
//! let opener = Opener::new(secret, params);
//! let voucher = Voucher::decode(&bytes, &layout)?;
//! assert!(matches!(opener.open(&voucher, &layout, &binding), OpenOutcome::Opened(_)));
//! // Moved to another attachment, it never opens.
//! let other = UploadBinding::new([5; 16], b"another ciphertext");
//! assert_eq!(opener.open(&voucher, &layout, &other), OpenOutcome::NoMatch);
//! # Ok(()) }
//! ```
//!
//! [APSI]: https://www.apple.com/child-safety/pdf/Apple_PSI_System_Security_Protocol_and_Analysis.pdf
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acceptance;
mod dhf;
pub mod dleq;
pub mod keys;
pub mod manifest;
pub mod merkle;
pub mod okvs;
pub mod opener;
pub mod params;
pub mod sender;
mod shamir;
pub mod signed;
pub mod suite;
pub mod table;
#[cfg(feature = "trust-sandbox")]
pub mod trust_sandbox;
pub mod voucher;
pub mod wire;

pub use dhf::detect as dhf_detect;
pub use shamir::interpolate_at_zero;

/// Lower-case hexadecimal of `b`.
pub(crate) fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 32 bytes from exactly 64 lower- or upper-case hexadecimal digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The types most callers need.
pub mod prelude {
    pub use crate::keys::{
        pdq_key, probe_keys, prune_separated, separate_related, KeyBytes, Separation, TableKind,
    };
    pub use crate::manifest::{Manifest, ManifestFields, TableDescriptor, VerifiedManifest};
    pub use crate::opener::{
        check_consent, AccountShares, AddOutcome, OpenOutcome, OpenedRecord, Opener,
        ThresholdOutcome,
    };
    pub use crate::params::{low_frequency_positions, Params, ParamsSpec, PinnedParams, Policy};
    pub use crate::sender::{
        all_probe_keys, AccountState, BuiltVoucher, Client, ClientError, ConsentReveal,
        DihedralInput, ExactDigest, HeldSecrets, Item, PdqInput,
    };
    pub use crate::table::{
        build_table, BuiltTable, ClientTable, EpochInput, OpeningKey, PublicKey, TableShard,
        TableSpec,
    };
    pub use crate::voucher::{MediaKind, UploadBinding, Voucher, VoucherLayout};
    pub use crate::wire::DecodeError;
    pub use hashguard_pdq::Hash256;
}

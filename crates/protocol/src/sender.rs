//! The sender (the uploading client's side of the protocol): account state (protocol.md 3.6), near-duplicate dedup, synthetic decisions
//! (`silent` only), and voucher construction. Building a voucher produces no output that
//! depends on membership: the client never learns whether a probe would open.

use std::collections::VecDeque;

use curve25519_dalek::constants::{RISTRETTO_BASEPOINT_POINT, RISTRETTO_BASEPOINT_TABLE};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::MultiscalarMul;
use hashguard_pdq::{Hash256, PdqFloats};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::dhf::{field_from_bytes, DhfKey};
use crate::keys::{probe_keys, probe_keys_with_flips, KeyBytes, TableKind};
use crate::params::{Params, Policy, MAX_DIHEDRAL_VARIANTS};
use crate::shamir::{adkey_from_secret, x_scalar, Polynomial};
use crate::suite::{hkdf, hkdf_into, seal, seal_to_vec, sha256};
use crate::table::ClientTable;
use crate::voucher::{
    aad, L1Plain, MediaKind, Payload, Probe, UploadBinding, Voucher, VoucherLayout, PAYLOAD_LEN,
};
use crate::wire::{DecodeError, Reader, Writer};

/// Most dedup entries kept (oldest evicted first; synthetic decisions are kept separately and
/// never evicted: protocol-review.md m4).
pub const DEDUP_CAPACITY: usize = 50_000;
/// Most keyframe vouchers per video (ARCHITECTURE.md).
pub const MAX_KEYFRAMES: usize = 16;
/// Account state format version.
pub const STATE_VERSION: u8 = 1;

#[derive(Clone, PartialEq, Eq, Zeroize)]
struct DedupEntry {
    pdq: Option<[u64; 4]>,
    cid: [u8; 32],
    dedup_id: [u8; 32],
    synthetic: bool,
}

/// The per-account state shared by all of the account's devices over their E2EE device link
/// (protocol.md 3.6, `AccountVoucherState`): three seeds, the item and synthetic counters, the
/// permanent set of dedup ids decided synthetic, and the bounded dedup index. Zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountState {
    fkey: [u8; 32],
    poly_seed: [u8; 32],
    dhf_seed: [u8; 32],
    item_counter: u64,
    syn_count: u32,
    synthetic_ids: Vec<[u8; 32]>,
    dedup: VecDeque<DedupEntry>,
}

impl Drop for AccountState {
    fn drop(&mut self) {
        self.fkey.zeroize();
        self.poly_seed.zeroize();
        self.dhf_seed.zeroize();
        self.synthetic_ids.zeroize();
        for e in self.dedup.iter_mut() {
            e.zeroize();
        }
    }
}

impl std::fmt::Debug for AccountState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountState")
            .field("items", &self.item_counter)
            .finish_non_exhaustive()
    }
}

impl AccountState {
    /// Fresh state with random seeds (the OS CSPRNG in production).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut s = AccountState {
            fkey: [0; 32],
            poly_seed: [0; 32],
            dhf_seed: [0; 32],
            item_counter: 0,
            syn_count: 0,
            synthetic_ids: Vec::new(),
            dedup: VecDeque::new(),
        };
        rng.fill_bytes(&mut s.fkey);
        rng.fill_bytes(&mut s.poly_seed);
        rng.fill_bytes(&mut s.dhf_seed);
        s
    }

    /// `state_id = SHA-256("state" ‖ poly_seed)[..8]`.
    pub fn state_id(&self) -> [u8; 8] {
        let h = sha256(&[b"state", &self.poly_seed]);
        let mut out = [0u8; 8];
        out.copy_from_slice(&h[..8]);
        out
    }

    /// Distinct items seen so far.
    pub fn item_count(&self) -> u64 {
        self.item_counter
    }

    /// Synthetic decisions so far.
    pub fn synthetic_count(&self) -> u32 {
        self.syn_count
    }

    /// Canonical encoding for the device-to-device sync (secret: send only over the E2EE link).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w =
            Writer::with_capacity(128 + 32 * self.synthetic_ids.len() + 100 * self.dedup.len());
        w.u8(STATE_VERSION);
        w.bytes(&self.fkey);
        w.bytes(&self.poly_seed);
        w.bytes(&self.dhf_seed);
        w.u64(self.item_counter);
        w.u32(self.syn_count);
        // Both counts are bounded far below u32::MAX (MAX_S_MAX synthetic ids, DEDUP_CAPACITY
        // entries), so the conversions never fail.
        w.u32(u32::try_from(self.synthetic_ids.len()).expect("at most MAX_S_MAX synthetic ids"));
        for id in &self.synthetic_ids {
            w.bytes(id);
        }
        w.u32(u32::try_from(self.dedup.len()).expect("at most DEDUP_CAPACITY entries"));
        for e in &self.dedup {
            w.u8(u8::from(e.pdq.is_some()) | (u8::from(e.synthetic) << 1));
            for word in e.pdq.unwrap_or([0; 4]) {
                w.u64(word);
            }
            w.bytes(&e.cid);
            w.bytes(&e.dedup_id);
        }
        Zeroizing::new(std::mem::take(&mut w.buf))
    }

    /// Strict decoding of [`AccountState::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u8("version")?;
        if v != STATE_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "account state",
                got: u16::from(v),
            });
        }
        let mut s = AccountState {
            fkey: r.array("fkey")?,
            poly_seed: r.array("poly_seed")?,
            dhf_seed: r.array("dhf_seed")?,
            item_counter: r.u64("item_counter")?,
            syn_count: r.u32("syn_count")?,
            synthetic_ids: Vec::new(),
            dedup: VecDeque::new(),
        };
        let n_syn = r.u32("synthetic count")?;
        if u64::from(n_syn) > u64::from(crate::params::MAX_S_MAX) || n_syn != s.syn_count {
            return Err(DecodeError::InvalidValue("synthetic ids"));
        }
        for _ in 0..n_syn {
            s.synthetic_ids.push(r.array("synthetic id")?);
        }
        let n = r.u32("dedup count")?;
        if u64::from(n) > DEDUP_CAPACITY as u64 {
            return Err(DecodeError::TooLarge {
                what: "dedup entries",
                got: u64::from(n),
                limit: DEDUP_CAPACITY as u64,
            });
        }
        for _ in 0..n {
            let flags = r.u8("dedup flags")?;
            if flags > 3 {
                return Err(DecodeError::InvalidValue("dedup flags"));
            }
            let mut words = [0u64; 4];
            for w in words.iter_mut() {
                *w = r.u64("dedup pdq")?;
            }
            let has_pdq = flags & 1 == 1;
            if !has_pdq && words != [0; 4] {
                return Err(DecodeError::InvalidValue("dedup pdq"));
            }
            s.dedup.push_back(DedupEntry {
                pdq: has_pdq.then_some(words),
                cid: r.array("dedup cid")?,
                dedup_id: r.array("dedup id")?,
                synthetic: flags & 2 == 2,
            });
        }
        r.finish()?;
        Ok(s)
    }

    /// PRF(fkey, label ‖ data) = HKDF-SHA-256(fkey, info = label ‖ data).
    fn prf<const N: usize>(&self, label: &[u8], data: &[u8]) -> Zeroizing<[u8; N]> {
        hkdf::<N>(&self.fkey, &[label, data])
    }
}

/// The PDQ part of an item: hash, per-bit margins and quality.
#[derive(Clone, PartialEq)]
pub struct PdqInput {
    /// The hash.
    pub hash: Hash256,
    /// `|coefficient − median|` per bit.
    pub margins: [f32; 256],
    /// Quality 0..=100.
    pub quality: u8,
}

impl Drop for PdqInput {
    fn drop(&mut self) {
        self.hash = Hash256::ZERO;
        self.margins.zeroize();
    }
}

impl std::fmt::Debug for PdqInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PdqInput(..)")
    }
}

impl PdqInput {
    /// From the PDQ floats of the `pdq` crate.
    pub fn from_floats(fl: &PdqFloats) -> Self {
        PdqInput {
            hash: fl.hash(),
            margins: fl.margins(),
            quality: fl.quality,
        }
    }
}

/// The seven dihedral variants of an item's PDQ (hash, margins and quality each, in
/// [`crate::params::DIHEDRAL_NAMES`] order), for the dihedral probes of
/// [`Client::build_pdq_voucher_dihedral`]. Computed from the image's own floats: the variants'
/// DCT coefficients are exact permutations with sign changes of the image's.
#[derive(Debug, Clone, PartialEq)]
pub struct DihedralInput {
    variants: Box<[PdqInput; 7]>,
}

impl DihedralInput {
    /// From the PDQ floats of the image (`PdqHasher::floats_rgb`).
    pub fn from_floats(fl: &PdqFloats) -> Self {
        let v = fl.dihedral_variants();
        DihedralInput {
            variants: Box::new(std::array::from_fn(|i| PdqInput::from_floats(&v[i]))),
        }
    }

    /// From the floats of the seven variants computed by the caller, in
    /// [`crate::params::DIHEDRAL_NAMES`] order: e.g. PDQ of the rotated and mirrored pixels
    /// (`hashguard_pdq::PdqHasher::dihedral_pixel_floats_rgb`), which follow a re-encoded
    /// mirrored copy more closely than the DCT-domain variants do.
    pub fn from_variant_floats(variants: &[PdqFloats; 7]) -> Self {
        DihedralInput {
            variants: Box::new(std::array::from_fn(|i| PdqInput::from_floats(&variants[i]))),
        }
    }

    /// The variants, in [`crate::params::DIHEDRAL_NAMES`] order.
    pub fn variants(&self) -> &[PdqInput; 7] {
        &self.variants
    }
}

/// Every probe key of an image under `params`: its own orientation with up to `f` flips, then
/// each dihedral variant chosen by `params.dihedral()` with up to `dihedral_f` flips of that
/// variant's own weakest bits, **deduplicated** (an image equal to its mirror gives each key
/// once; the voucher fills the freed probes with dummies, so P stays fixed). At most
/// `params.probes()` keys. Without `dihedral` only the own orientation is probed.
pub fn all_probe_keys(
    pdq: &PdqInput,
    dihedral: Option<&DihedralInput>,
    params: &Params,
) -> Zeroizing<Vec<u64>> {
    let mut out = probe_keys(&pdq.hash, &pdq.margins, params);
    if let Some(d) = dihedral {
        for (bit, v) in d.variants.iter().enumerate() {
            if params.dihedral() & (1 << bit) != 0 {
                let more = probe_keys_with_flips(&v.hash, &v.margins, params, params.dihedral_f());
                out.extend_from_slice(&more);
            }
        }
        // Sort, then drop repeats: which keys repeat is the client's own secret and never
        // leaves it (the voucher has P probes either way).
        out.sort_unstable();
        out.dedup();
    }
    out
}

/// The payload's slots for the dihedral variants' PDQ when none are probed.
const NO_VARIANTS: [[u8; 32]; MAX_DIHEDRAL_VARIANTS] = [[0; 32]; MAX_DIHEDRAL_VARIANTS];

/// The payload's variant slots ([`Payload::variant_pdq`]): the PDQ of each variant
/// `params.dihedral()` names, in [`crate::params::DIHEDRAL_NAMES`] order, so that the server's
/// full-distance check can compare the orientation whose key opened. All zero without dihedral
/// input or without a PDQ of the item itself (then no probe opens either).
fn variant_slots(
    item: &Item<'_>,
    dihedral: Option<&DihedralInput>,
    params: &Params,
) -> Zeroizing<[[u8; 32]; MAX_DIHEDRAL_VARIANTS]> {
    let mut slots = Zeroizing::new(NO_VARIANTS);
    if let (Some(d), Some(_)) = (dihedral, &item.pdq) {
        let probed = d
            .variants
            .iter()
            .enumerate()
            .filter(|&(bit, _)| params.dihedral() & (1 << bit) != 0);
        // `Params::new` admits at most MAX_DIHEDRAL_VARIANTS variants, so zip drops none.
        for (slot, (_, v)) in slots.iter_mut().zip(probed) {
            *slot = v.hash.to_be_bytes();
        }
    }
    slots
}

/// One item to upload (an image, or one keyframe of a video).
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// PDQ of the original bytes, if the item could be hashed.
    pub pdq: Option<PdqInput>,
    /// SHA-256 of the original file bytes (`cid`).
    pub content_sha256: [u8; 32],
    /// Media kind.
    pub media_kind: MediaKind,
    /// Frame index (0 for images).
    pub frame_idx: u16,
    /// The visual derivative (thumbnail) to seal into the VD blob.
    pub thumbnail: &'a [u8],
}

/// A digest of the file bytes for the exact (tier-0) table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactDigest {
    /// SHA-256.
    Sha256([u8; 32]),
    /// MD5.
    Md5([u8; 16]),
}

/// What the client keeps about a voucher in case the server holds the item and the sender
/// consents to the automatic check. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct HeldSecrets {
    /// The voucher id.
    pub voucher_id: [u8; 16],
    vd_key: [u8; 32],
    k_adct: [u8; 32],
}

impl std::fmt::Debug for HeldSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSecrets")
            .field("voucher_id", &self.voucher_id)
            .finish_non_exhaustive()
    }
}

impl HeldSecrets {
    /// The reveal the sender sends when it consents to the automatic check of this one item
    /// (R/E12 step 2).
    pub fn consent(&self) -> ConsentReveal {
        ConsentReveal {
            voucher_id: self.voucher_id,
            k_adct: self.k_adct,
            vd_key: self.vd_key,
        }
    }
}

/// The consent message: `[16] voucher_id | [32] k_adct | [32] vd_key`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ConsentReveal {
    /// The voucher id.
    pub voucher_id: [u8; 16],
    /// `HKDF(adkey, "adct" ‖ voucher_id)`.
    pub k_adct: [u8; 32],
    /// The VD blob key.
    pub vd_key: [u8; 32],
}

impl std::fmt::Debug for ConsentReveal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentReveal")
            .field("voucher_id", &self.voucher_id)
            .finish_non_exhaustive()
    }
}

impl ConsentReveal {
    /// Encoding length.
    pub const LEN: usize = 80;
    /// Encodes.
    pub fn encode(&self) -> Zeroizing<[u8; 80]> {
        let mut out = Zeroizing::new([0u8; 80]);
        out[..16].copy_from_slice(&self.voucher_id);
        out[16..48].copy_from_slice(&self.k_adct);
        out[48..].copy_from_slice(&self.vd_key);
        out
    }
    /// Strict decoding.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let c = ConsentReveal {
            voucher_id: r.array("voucher_id")?,
            k_adct: r.array("k_adct")?,
            vd_key: r.array("vd_key")?,
        };
        r.finish()?;
        Ok(c)
    }
}

/// A voucher ready to upload with its attachment, its VD blob, and the secrets to keep.
#[derive(Debug, Clone)]
pub struct BuiltVoucher {
    /// The voucher.
    pub voucher: Voucher,
    /// The fixed-length VD blob.
    pub vd_blob: Vec<u8>,
    /// Keep until the upload is delivered; needed only for a consented check.
    pub held: HeldSecrets,
    /// The client's own dedup decision for the item (not a match result: the client never
    /// learns one).
    pub decision: DedupDecision,
}

/// Why the client built no voucher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The thumbnail does not fit the fixed VD blob.
    #[error("thumbnail of {got} bytes exceeds the VD capacity {cap}")]
    ThumbnailTooLarge {
        /// Thumbnail length.
        got: usize,
        /// Capacity.
        cap: usize,
    },
    /// The table's parameters or kind do not fit this call.
    #[error("table does not match: {0}")]
    TableMismatch(&'static str),
    /// A video needs between 1 and [`MAX_KEYFRAMES`] keyframes.
    #[error("a video needs 1 to 16 keyframes, got {0}")]
    KeyframeCount(usize),
    /// Exact (tier-0) vouchers are only defined under `intervene` (see the crate docs).
    #[error("exact vouchers are not available under the silent policy")]
    ExactUnderSilent,
}

/// Whether an item was decided synthetic, and its dedup id (test and audit visibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupDecision {
    /// The dedup id (the cid of the first item of the near-duplicate group).
    pub dedup_id: [u8; 32],
    /// Whether the group is synthetic (`silent` only).
    pub synthetic: bool,
}

/// A client bound to one account state and one parameter set. Derives the Shamir polynomial,
/// adkey and DHF key once.
pub struct Client {
    state: AccountState,
    params: Params,
    poly: Polynomial,
    adkey: Zeroizing<[u8; 32]>,
    dhf: Option<DhfKey>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn random<const N: usize, R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; N] {
    let mut b = [0u8; N];
    rng.fill_bytes(&mut b);
    b
}

/// Uniform integer in `[0, n)` by rejection (unbiased), `n ≥ 1`.
fn uniform_below<R: CryptoRng + ?Sized>(rng: &mut R, n: u32) -> u32 {
    let n = n.max(1);
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let v = rng.next_u32();
        if v < zone {
            return v % n;
        }
    }
}

impl Client {
    /// Binds `state` to `params`.
    pub fn new(state: AccountState, params: Params) -> Self {
        let poly = Polynomial::derive(&state.poly_seed, params.threshold());
        let adkey = adkey_from_secret(&poly.secret(), params.threshold());
        let dhf = (params.s_max() > 0)
            .then(|| DhfKey::derive(&state.dhf_seed, params.threshold(), params.s_max()));
        Client {
            state,
            params,
            poly,
            adkey,
            dhf,
        }
    }

    /// The account state (to persist and sync).
    pub fn state(&self) -> &AccountState {
        &self.state
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Dedup and the synthetic decision (protocol.md 3.6 step 3, R/E4, review m4): reuse the
    /// dedup id of an own item with the same cid or a PDQ within `r_dedup`; otherwise the cid
    /// becomes a new dedup id, the item counter advances, and under `silent` the item is
    /// synthetic with probability `a / (b + i)` while fewer than `s_max − 10` synthetics exist.
    pub fn dedup(&mut self, item: &Item<'_>) -> DedupDecision {
        let r = u32::from(self.params.r_dedup());
        let found = self.state.dedup.iter().rev().find(|e| {
            e.cid == item.content_sha256
                || match (&e.pdq, &item.pdq) {
                    (Some(w), Some(p)) => Hash256::from_words(*w).distance(&p.hash) <= r,
                    _ => false,
                }
        });
        if let Some(e) = found {
            let synthetic = e.synthetic || self.state.synthetic_ids.contains(&e.dedup_id);
            return DedupDecision {
                dedup_id: e.dedup_id,
                synthetic,
            };
        }
        let dedup_id = item.content_sha256;
        let mut synthetic = self.state.synthetic_ids.contains(&dedup_id);
        if !synthetic {
            self.state.item_counter = self.state.item_counter.saturating_add(1);
        }
        if !synthetic && self.params.policy() == Policy::Silent {
            let u = self.state.prf::<8>(b"syn", &dedup_id);
            let u = u128::from(u64::from_le_bytes(*u));
            let denom = u128::from(self.params.synth_b()) + u128::from(self.state.item_counter);
            let below = u * denom < u128::from(self.params.synth_a()) << 64;
            let cap = u32::from(self.params.s_max()).saturating_sub(10);
            if below && self.state.syn_count < cap {
                synthetic = true;
                self.state.syn_count += 1;
                self.state.synthetic_ids.push(dedup_id);
            }
        }
        if self.state.dedup.len() >= DEDUP_CAPACITY {
            if let Some(mut old) = self.state.dedup.pop_front() {
                old.zeroize();
            }
        }
        self.state.dedup.push_back(DedupEntry {
            pdq: item.pdq.as_ref().map(|p| p.hash.to_words()),
            cid: item.content_sha256,
            dedup_id,
            synthetic,
        });
        DedupDecision {
            dedup_id,
            synthetic,
        }
    }

    /// Builds the PDQ voucher of an item against the verified PDQ table (protocol.md 3.6),
    /// probing only the item's own orientation: when the parameters ask for dihedral probes
    /// their probes are dummies and the payload's variant slots are zero. Apps that have the image use
    /// [`Client::build_pdq_voucher_dihedral`] (the SDK does).
    pub fn build_pdq_voucher<R: CryptoRng + ?Sized>(
        &mut self,
        table: &ClientTable,
        item: &Item<'_>,
        binding: &UploadBinding,
        rng: &mut R,
    ) -> Result<BuiltVoucher, ClientError> {
        self.build_pdq_voucher_inner(table, item, None, binding, rng)
    }

    /// As [`Client::build_pdq_voucher`], also probing the dihedral variants the parameters
    /// name (mirrored and rotated copies of a listed image then open), and carrying their PDQ
    /// in the payload's variant slots ([`Payload::variant_pdq`]) for the full-distance check.
    /// The voucher has the same P probes, the same length and the same bytes distribution
    /// either way (G1, G2).
    pub fn build_pdq_voucher_dihedral<R: CryptoRng + ?Sized>(
        &mut self,
        table: &ClientTable,
        item: &Item<'_>,
        dihedral: &DihedralInput,
        binding: &UploadBinding,
        rng: &mut R,
    ) -> Result<BuiltVoucher, ClientError> {
        self.build_pdq_voucher_inner(table, item, Some(dihedral), binding, rng)
    }

    fn build_pdq_voucher_inner<R: CryptoRng + ?Sized>(
        &mut self,
        table: &ClientTable,
        item: &Item<'_>,
        dihedral: Option<&DihedralInput>,
        binding: &UploadBinding,
        rng: &mut R,
    ) -> Result<BuiltVoucher, ClientError> {
        if table.spec().kind() != TableKind::Pdq || *table.spec().params() != self.params {
            return Err(ClientError::TableMismatch("not this client's PDQ table"));
        }
        self.check_thumbnail(item)?;
        let decision = self.dedup(item);
        let layout = VoucherLayout::pdq(&self.params);
        let keys = self.pdq_probe_keys(item, dihedral, decision.synthetic);
        let variants = variant_slots(item, dihedral, &self.params);
        Ok(self.assemble(
            table,
            item,
            &variants,
            binding,
            &decision,
            keys.as_deref().map(|v| v.as_slice()),
            true,
            &layout,
            rng,
        ))
    }

    fn pdq_probe_keys(
        &self,
        item: &Item<'_>,
        dihedral: Option<&DihedralInput>,
        synthetic: bool,
    ) -> Option<Zeroizing<Vec<KeyBytes>>> {
        match &item.pdq {
            Some(p) if !synthetic && p.quality >= self.params.q_min() => {
                let raw = all_probe_keys(p, dihedral, &self.params);
                let k = self.params.k();
                Some(Zeroizing::new(
                    raw.iter().map(|&v| KeyBytes::from_pdq_key(v, k)).collect(),
                ))
            }
            _ => None,
        }
    }

    /// Builds the vouchers of a video's keyframes (at most [`MAX_KEYFRAMES`]), all bound to the
    /// one video upload and sharing one dedup decision, made on the video file's SHA-256 and
    /// the first keyframe's PDQ: every opened keyframe carries the same share, so a video counts
    /// once towards T. Under `silent`, a synthetic video makes exactly **one** keyframe voucher
    /// (uniformly chosen) open and gives the others non-opening probes (review m4), so the
    /// number of opened keyframes does not single out synthetic videos.
    pub fn build_video_vouchers<R: CryptoRng + ?Sized>(
        &mut self,
        table: &ClientTable,
        video_sha256: [u8; 32],
        frames: &[Item<'_>],
        binding: &UploadBinding,
        rng: &mut R,
    ) -> Result<Vec<BuiltVoucher>, ClientError> {
        if table.spec().kind() != TableKind::Pdq || *table.spec().params() != self.params {
            return Err(ClientError::TableMismatch("not this client's PDQ table"));
        }
        if frames.is_empty() || frames.len() > MAX_KEYFRAMES {
            return Err(ClientError::KeyframeCount(frames.len()));
        }
        for f in frames {
            self.check_thumbnail(f)?;
        }
        let video = Item {
            pdq: frames[0].pdq.clone(),
            content_sha256: video_sha256,
            media_kind: MediaKind::VideoFrame,
            frame_idx: 0,
            thumbnail: b"",
        };
        let decision = self.dedup(&video);
        let chosen = uniform_below(rng, frames.len() as u32) as usize;
        let layout = VoucherLayout::pdq(&self.params);
        let mut out = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let keys = self.pdq_probe_keys(f, None, decision.synthetic);
            // Keyframes probe only their own orientation: no variant slots.
            out.push(self.assemble(
                table,
                f,
                &NO_VARIANTS,
                binding,
                &decision,
                keys.as_deref().map(|v| v.as_slice()),
                i == chosen,
                &layout,
                rng,
            ));
        }
        Ok(out)
    }

    /// Builds the exact (tier-0) voucher of an item: one probe keyed on the file digest against
    /// the exact table. `intervene` only. It shares the item's dedup id, so a byte-identical
    /// listed file that opens both its PDQ and its exact voucher counts once.
    pub fn build_exact_voucher<R: CryptoRng + ?Sized>(
        &mut self,
        table: &ClientTable,
        digest: &ExactDigest,
        item: &Item<'_>,
        binding: &UploadBinding,
        rng: &mut R,
    ) -> Result<BuiltVoucher, ClientError> {
        if self.params.policy() == Policy::Silent {
            return Err(ClientError::ExactUnderSilent);
        }
        let key = match (table.spec().kind(), digest) {
            (TableKind::ExactSha256, ExactDigest::Sha256(d)) => KeyBytes::new(&d[..]),
            (TableKind::ExactMd5, ExactDigest::Md5(d)) => KeyBytes::new(&d[..]),
            _ => None,
        }
        .ok_or(ClientError::TableMismatch("digest kind"))?;
        if *table.spec().params() != self.params {
            return Err(ClientError::TableMismatch("parameters"));
        }
        self.check_thumbnail(item)?;
        let decision = self.dedup(item);
        let layout = VoucherLayout::exact(&self.params);
        let keys = [key];
        // One probe on the file digest, no dihedral probes: no variant slots.
        Ok(self.assemble(
            table,
            item,
            &NO_VARIANTS,
            binding,
            &decision,
            Some(&keys),
            true,
            &layout,
            rng,
        ))
    }

    fn vd_capacity(&self) -> usize {
        self.params.vd_len() as usize - crate::suite::TAG_LEN - 4
    }

    fn check_thumbnail(&self, item: &Item<'_>) -> Result<(), ClientError> {
        let cap = self.vd_capacity();
        if item.thumbnail.len() > cap {
            return Err(ClientError::ThumbnailTooLarge {
                got: item.thumbnail.len(),
                cap,
            });
        }
        Ok(())
    }

    /// The shared voucher assembly. `keys = None` means no opening probe (low quality, no PDQ
    /// or synthetic); under a synthetic decision exactly one probe is made to always open.
    /// Fewer keys than P (deduplicated dihedral keys) leave the remaining probes dummies.
    #[allow(clippy::too_many_arguments)]
    fn assemble<R: CryptoRng + ?Sized>(
        &self,
        table: &ClientTable,
        item: &Item<'_>,
        variant_pdq: &[[u8; 32]; MAX_DIHEDRAL_VARIANTS],
        binding: &UploadBinding,
        decision: &DedupDecision,
        keys: Option<&[KeyBytes]>,
        synth_open: bool,
        layout: &VoucherLayout,
        rng: &mut R,
    ) -> BuiltVoucher {
        let epoch = table.epoch();
        // Fresh per voucher, never derived from content (R/E4).
        let voucher_id: [u8; 16] = random(rng);
        let vd_key = Zeroizing::new(random::<32, R>(rng));
        let rkey = Zeroizing::new(random::<16, R>(rng));
        let vd_blob_id: [u8; 16] = random(rng);
        let ctx_bind = binding.ctx_bind();
        let aad = aad(epoch, &voucher_id, &ctx_bind);

        // Per-item values from the PRF (same for all devices and all re-sends of the item).
        let s = layout.dhf_words().saturating_sub(1);
        let mut material = Zeroizing::new(vec![0u8; 16 + 64 + 16 + 16 * s]);
        hkdf_into(
            &self.state.fkey,
            &[b"sh", &decision.dedup_id],
            &mut material,
        );
        let mut share_x = [0u8; 16];
        share_x.copy_from_slice(&material[..16]);
        if share_x == [0u8; 16] {
            share_x[0] = 1; // x = 0 would be f(0); probability 2^-128
        }
        let mut z_wide = Zeroizing::new([0u8; 64]);
        z_wide.copy_from_slice(&material[16..80]);
        let z = Scalar::from_bytes_mod_order_wide(&z_wide);

        let k_adct;
        let adct;
        let share_y;
        let dhf;
        let vd_commit;
        let adct_commit;
        let vd_blob;
        if decision.synthetic {
            let ckey = Zeroizing::new(random::<32, R>(rng));
            adct = seal_to_vec(&ckey, &aad, &[0u8; PAYLOAD_LEN]);
            k_adct = Zeroizing::new(random::<32, R>(rng));
            share_y = z;
            dhf = (0..layout.dhf_words())
                .map(|i| field_from_bytes(&material[80 + 16 * i..]))
                .collect::<Vec<u64>>();
            vd_commit = sha256(&[b"vd", &random::<32, R>(rng)]);
            adct_commit = sha256(&[b"adct", &random::<32, R>(rng)]);
            vd_blob = random_vec(rng, self.params.vd_len() as usize);
        } else {
            let payload = Payload {
                pdq: item
                    .pdq
                    .as_ref()
                    .map_or([0u8; 32], |p| p.hash.to_be_bytes()),
                quality: item.pdq.as_ref().map_or(0, |p| p.quality),
                media_kind: item.media_kind,
                frame_idx: item.frame_idx,
                content_sha256: item.content_sha256,
                vd_key: *vd_key,
                vd_blob_id,
                variant_pdq: *variant_pdq,
            };
            k_adct = hkdf::<32>(&self.adkey[..], &[b"adct", &voucher_id]);
            let mut p = Zeroizing::new(payload.encode());
            let tag = seal(&k_adct, &aad, &mut p[..]);
            let mut a = p.to_vec();
            a.extend_from_slice(&tag);
            adct = a;
            share_y = self.poly.eval(&x_scalar(&share_x));
            let xprime = field_from_bytes(&material[80..]);
            dhf = match &self.dhf {
                Some(d) if layout.dhf_words() > 0 => d.eval(xprime),
                _ => Vec::new(),
            };
            vd_commit = sha256(&[b"vd", &vd_key[..]]);
            adct_commit = sha256(&[b"adct", &k_adct[..]]);
            vd_blob = seal_vd(
                &vd_key,
                &vd_blob_id,
                item.thumbnail,
                self.params.vd_len() as usize,
            );
        }
        let l1 = L1Plain {
            state_id: self.state.state_id(),
            dhf,
            share_x,
            share_y: share_y.to_bytes(),
            vd_commit,
            adct_commit,
            adct,
        };
        let rct_key = hkdf::<32>(&rkey[..], &[b"rct"]);
        let rct = seal_to_vec(&rct_key, &aad, &l1.encode());

        let n = usize::from(layout.probes);
        let synth_slot = if decision.synthetic && synth_open {
            Some(uniform_below(rng, n as u32) as usize)
        } else {
            None
        };
        // Compute Q/2 and S/2 so one batched double-and-compress yields the encodings of Q and
        // S. The fresh uniform scalars drawn here are β/2 and γ/2: halving is a bijection of
        // F_q, so β = 2·(β/2) and γ are exactly as uniform and fresh as if drawn directly, and
        // no scalar multiplication by 1/2 is needed. γ·G and γ·L of a synthetic probe use
        // precomputed tables.
        let g_table = RISTRETTO_BASEPOINT_TABLE;
        let l_table = table.l_table();
        let mut q_halves: Vec<RistrettoPoint> = Vec::with_capacity(n);
        let mut s_halves: Vec<RistrettoPoint> = Vec::with_capacity(n);
        let mut opening: Vec<bool> = Vec::with_capacity(n);
        for i in 0..n {
            if let Some(key) = keys.and_then(|k| k.get(i)) {
                let (h, d) = table.probe_points(key);
                let bh = Zeroizing::new(Scalar::random(rng));
                let gh = Zeroizing::new(Scalar::random(rng));
                q_halves.push(RistrettoPoint::multiscalar_mul(
                    [*bh, *gh],
                    [h, RISTRETTO_BASEPOINT_POINT],
                ));
                s_halves.push(RistrettoPoint::multiscalar_mul([*bh, *gh], [d, *table.l()]));
                opening.push(true);
            } else if synth_slot == Some(i) {
                let bh = Zeroizing::new(Scalar::random(rng));
                q_halves.push(g_table * &*bh);
                s_halves.push(l_table * &*bh);
                opening.push(true);
            } else {
                // 2·(uniform point) is uniform: doubling is a bijection of a prime-order group.
                q_halves.push(RistrettoPoint::random(rng));
                // Unused placeholder; never the identity, which would break the batch inversion.
                s_halves.push(RISTRETTO_BASEPOINT_POINT);
                opening.push(false);
            }
        }
        let q_enc = RistrettoPoint::double_and_compress_batch(q_halves.iter());
        let s_enc = Zeroizing::new(
            RistrettoPoint::double_and_compress_batch(s_halves.iter())
                .iter()
                .map(|c| c.to_bytes())
                .collect::<Vec<[u8; 32]>>(),
        );
        s_halves.zeroize();
        let mut probes: Vec<Probe> = Vec::with_capacity(n);
        for i in 0..n {
            let qc = q_enc[i];
            let ct = if opening[i] {
                let k = probe_key(&s_enc[i], &qc.to_bytes(), &voucher_id, &ctx_bind);
                let mut body = Zeroizing::new(*rkey);
                let tag = seal(&k, &[], &mut body[..]);
                let mut ct = [0u8; 32];
                ct[..16].copy_from_slice(&body[..]);
                ct[16..].copy_from_slice(&tag);
                ct
            } else {
                random(rng)
            };
            let q_point = q_halves[i] + q_halves[i];
            probes.push(Probe { q: qc, q_point, ct });
        }
        // Fisher–Yates shuffle (unbiased): the opened position must be uniform (PT6).
        for i in (1..n).rev() {
            let j = uniform_below(rng, i as u32 + 1) as usize;
            probes.swap(i, j);
        }
        let voucher = Voucher {
            epoch,
            voucher_id,
            probes,
            rct,
        };
        debug_assert_eq!(voucher.encode().len(), layout.voucher_len());
        BuiltVoucher {
            voucher,
            vd_blob,
            held: HeldSecrets {
                voucher_id,
                vd_key: *vd_key,
                k_adct: *k_adct,
            },
            decision: *decision,
        }
    }
}

fn random_vec<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

/// `k_probe = HKDF(S̄, "probe" ‖ Q̄ ‖ voucher_id ‖ ctx_bind)` (R/E4): the AEAD key of a probe's
/// ciphertext, from the compressed S and Q.
pub fn probe_key(
    s: &[u8; 32],
    q: &[u8; 32],
    voucher_id: &[u8; 16],
    ctx_bind: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    hkdf::<32>(s, &[b"probe", q, voucher_id, ctx_bind])
}

/// Seals a thumbnail into a VD blob of exactly `vd_len` bytes:
/// `AEAD(HKDF(vd_key, "vd"), 0, LE32 len ‖ thumbnail ‖ zero pad, aad = vd_blob_id)`.
pub(crate) fn seal_vd(
    vd_key: &[u8; 32],
    vd_blob_id: &[u8; 16],
    thumb: &[u8],
    vd_len: usize,
) -> Vec<u8> {
    let k = hkdf::<32>(vd_key, &[b"vd"]);
    let mut plain = Zeroizing::new(vec![0u8; vd_len - crate::suite::TAG_LEN]);
    // The caller checked the thumbnail against vd_len (a u32), so its length fits.
    let n = u32::try_from(thumb.len()).expect("thumbnail shorter than vd_len");
    plain[..4].copy_from_slice(&n.to_le_bytes());
    plain[4..4 + thumb.len()].copy_from_slice(thumb);
    seal_to_vec(&k, vd_blob_id, &plain)
}

/// Opens a VD blob; returns the thumbnail.
pub(crate) fn open_vd(
    vd_key: &[u8; 32],
    vd_blob_id: &[u8; 16],
    blob: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let k = hkdf::<32>(vd_key, &[b"vd"]);
    let plain = crate::suite::open_to_vec(&k, vd_blob_id, blob)?;
    if plain.len() < 4 {
        return None;
    }
    let mut lb = [0u8; 4];
    lb.copy_from_slice(&plain[..4]);
    let n = u32::from_le_bytes(lb) as usize;
    if n > plain.len() - 4 || plain[4 + n..].iter().any(|&b| b != 0) {
        return None;
    }
    Some(Zeroizing::new(plain[4..4 + n].to_vec()))
}

//! Voucher wire formats (protocol.md 3.8 as revised by R/E4): `Voucher`, `L1Plain`, `Payload`,
//! and the fixed-length VD blob. Encoding and decoding live together here; every decoder is
//! strict (exact lengths, canonical points and scalars, field elements < ℓ) and never panics.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::params::{Params, DHF_PRIME, DIHEDRAL_NAMES, MAX_DIHEDRAL_VARIANTS};
use crate::suite::{sha256, SUITE_ID, TAG_LEN};
use crate::wire::{DecodeError, Reader, Writer};

/// Voucher format version.
pub const VOUCHER_VERSION: u8 = 1;
/// Header length: version, suite, epoch, voucher_id.
pub const HEADER_LEN: usize = 1 + 1 + 4 + 16;
/// Length of one probe: Q and `enc(rkey) ‖ tag`.
pub const PROBE_LEN: usize = 32 + 16 + TAG_LEN;
/// Payload bytes before the zero padding: the fields, then the dihedral variants' PDQ slots.
const PAYLOAD_FIELDS_LEN: usize = 32 + 1 + 1 + 2 + 32 + 32 + 16 + 32 * MAX_DIHEDRAL_VARIANTS;
/// Zero padding at the end of the payload (reserved; checked zero on decode).
const PAYLOAD_PAD_LEN: usize = 44;
/// Payload length: 224 bytes (116 of fields, 2 × 32 of dihedral variants' PDQ, 44 of zeros).
pub const PAYLOAD_LEN: usize = PAYLOAD_FIELDS_LEN + PAYLOAD_PAD_LEN;
/// `adct` length.
pub const ADCT_LEN: usize = PAYLOAD_LEN + TAG_LEN;

/// Which upload a voucher belongs to: `ctx_bind = SHA-256(account_id ‖ SHA-256(ciphertext))`
/// (R/E4). It enters the probe key derivation and the AAD of `rct` and `adct`, so a voucher
/// moved to another account or attachment never opens.
///
/// ```
/// use hashguard_protocol::voucher::UploadBinding;
/// let a = UploadBinding::new([1; 16], b"ciphertext");
/// assert_ne!(a.ctx_bind(), UploadBinding::new([2; 16], b"ciphertext").ctx_bind());
/// assert_ne!(a.ctx_bind(), UploadBinding::new([1; 16], b"other").ctx_bind());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadBinding {
    /// The uploading account.
    pub account_id: [u8; 16],
    /// SHA-256 of the attachment ciphertext as uploaded.
    pub attachment_sha256: [u8; 32],
}

impl UploadBinding {
    /// Binds an account and the attachment ciphertext bytes.
    pub fn new(account_id: [u8; 16], attachment_ciphertext: &[u8]) -> Self {
        UploadBinding {
            account_id,
            attachment_sha256: sha256(&[attachment_ciphertext]),
        }
    }
    /// `ctx_bind`.
    pub fn ctx_bind(&self) -> [u8; 32] {
        sha256(&[&self.account_id, &self.attachment_sha256])
    }
}

/// The sizes of one voucher type, fixed by the parameters and the probe count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoucherLayout {
    /// Probes per voucher (P for PDQ vouchers, 1 for exact vouchers).
    pub probes: u16,
    /// Synthetic capacity s_max (0: no DHF field).
    pub s_max: u16,
}

impl VoucherLayout {
    /// Layout of PDQ vouchers under `params`.
    pub fn pdq(params: &Params) -> Self {
        VoucherLayout {
            probes: params.probes(),
            s_max: params.s_max(),
        }
    }
    /// Layout of exact (tier-0) vouchers under `params`: one probe.
    pub fn exact(params: &Params) -> Self {
        VoucherLayout {
            probes: 1,
            s_max: params.s_max(),
        }
    }
    /// DHF words in L1Plain: s_max + 1, or 0 when s_max = 0.
    pub fn dhf_words(&self) -> usize {
        if self.s_max == 0 {
            0
        } else {
            usize::from(self.s_max) + 1
        }
    }
    /// L1Plain length.
    pub fn l1_len(&self) -> usize {
        8 + 8 * self.dhf_words() + 16 + 32 + 32 + 32 + ADCT_LEN
    }
    /// rct length.
    pub fn rct_len(&self) -> usize {
        self.l1_len() + TAG_LEN
    }
    /// Total voucher length `VOUCHER_LEN`.
    pub fn voucher_len(&self) -> usize {
        HEADER_LEN + PROBE_LEN * usize::from(self.probes) + self.rct_len()
    }
}

/// One probe: a canonical, non-identity Q and its ciphertext of rkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Compressed Q.
    pub q: CompressedRistretto,
    /// Decompressed Q (checked at parse).
    pub(crate) q_point: RistrettoPoint,
    /// `AEAD(k_probe, 0, rkey)`: 16 bytes and a tag.
    pub ct: [u8; 32],
}

/// A voucher: header, P probes and rct.
///
/// Wire format: `u8 version | u8 suite | u32 epoch | [16] voucher_id | Probe[P] | rct`, where
/// `Probe = [32] Q | [32] ct` and `rct = AEAD(HKDF(rkey,"rct"), 0, L1Plain, aad = hdr ‖ ctx_bind)`.
/// Its length is fixed by the [`VoucherLayout`] whatever its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voucher {
    /// Table epoch it was built against.
    pub epoch: u32,
    /// Fresh random id.
    pub voucher_id: [u8; 16],
    /// The probes, shuffled.
    pub probes: Vec<Probe>,
    /// Encrypted L1Plain.
    pub rct: Vec<u8>,
}

impl Voucher {
    /// The 22-byte header (part of every AAD).
    pub fn header(&self) -> [u8; HEADER_LEN] {
        header_bytes(self.epoch, &self.voucher_id)
    }

    /// Canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut w =
            Writer::with_capacity(HEADER_LEN + PROBE_LEN * self.probes.len() + self.rct.len());
        w.bytes(&self.header());
        for p in &self.probes {
            w.bytes(p.q.as_bytes());
            w.bytes(&p.ct);
        }
        w.bytes(&self.rct);
        w.buf
    }

    /// Strict decoding for a layout: exact length, known version and suite, every Q canonical
    /// and not the identity (R/E5 step 1: a malformed voucher rejects the upload).
    pub fn decode(bytes: &[u8], layout: &VoucherLayout) -> Result<Self, DecodeError> {
        let want = layout.voucher_len();
        if bytes.len() != want {
            return Err(DecodeError::WrongLength {
                what: "voucher",
                expected: want,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes);
        let v = r.u8("version")?;
        if v != VOUCHER_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "voucher",
                got: u16::from(v),
            });
        }
        let suite = r.u8("suite")?;
        if suite != SUITE_ID {
            return Err(DecodeError::UnsupportedSuite(suite));
        }
        let epoch = r.u32("epoch")?;
        let voucher_id = r.array("voucher_id")?;
        let mut probes = Vec::with_capacity(usize::from(layout.probes));
        for _ in 0..layout.probes {
            let q = CompressedRistretto(r.array("Q")?);
            let q_point = q.decompress().ok_or(DecodeError::InvalidPoint("Q"))?;
            if q_point.is_identity() {
                return Err(DecodeError::IdentityPoint("Q"));
            }
            let ct = r.array("probe ct")?;
            probes.push(Probe { q, q_point, ct });
        }
        let rct = r.take(layout.rct_len(), "rct")?.to_vec();
        r.finish()?;
        Ok(Voucher {
            epoch,
            voucher_id,
            probes,
            rct,
        })
    }
}

pub(crate) fn header_bytes(epoch: u32, voucher_id: &[u8; 16]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = VOUCHER_VERSION;
    h[1] = SUITE_ID;
    h[2..6].copy_from_slice(&epoch.to_le_bytes());
    h[6..22].copy_from_slice(voucher_id);
    h
}

/// `hdr ‖ ctx_bind`: the AAD of rct and adct.
pub(crate) fn aad(epoch: u32, voucher_id: &[u8; 16], ctx_bind: &[u8; 32]) -> [u8; HEADER_LEN + 32] {
    let mut a = [0u8; HEADER_LEN + 32];
    a[..HEADER_LEN].copy_from_slice(&header_bytes(epoch, voucher_id));
    a[HEADER_LEN..].copy_from_slice(ctx_bind);
    a
}

/// Media kind recorded in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A still image.
    Image,
    /// One keyframe of a video.
    VideoFrame,
}

impl MediaKind {
    fn to_byte(self) -> u8 {
        match self {
            MediaKind::Image => 0,
            MediaKind::VideoFrame => 1,
        }
    }
    fn from_byte(b: u8) -> Result<Self, DecodeError> {
        match b {
            0 => Ok(MediaKind::Image),
            1 => Ok(MediaKind::VideoFrame),
            _ => Err(DecodeError::InvalidValue("media_kind")),
        }
    }
}

/// The innermost plaintext of a real voucher ([`PAYLOAD_LEN`] = 224 bytes), readable only after
/// the threshold or a consented check: `[32] pdq | u8 quality | u8 media_kind | u16 frame_idx |
/// [32] content_sha256 | [32] vd_key | [16] vd_blob_id | [32] variant_pdq[0] |
/// [32] variant_pdq[1] | [44] zero`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Payload {
    /// PDQ hash, big-endian bytes of the hex form (zeros if none).
    pub pdq: [u8; 32],
    /// PDQ quality (0 if none).
    pub quality: u8,
    /// Media kind.
    #[zeroize(skip)]
    pub media_kind: MediaKind,
    /// Frame index for video keyframes.
    pub frame_idx: u16,
    /// SHA-256 of the original file bytes.
    pub content_sha256: [u8; 32],
    /// Key of the VD blob.
    pub vd_key: [u8; 32],
    /// Id of the VD blob.
    pub vd_blob_id: [u8; 16],
    /// The PDQ (bytes as [`Payload::pdq`]) of each dihedral variant the parameters probe, in
    /// [`DIHEDRAL_NAMES`] order of the set bits of [`Params::dihedral`]; all-zero slots when
    /// fewer variants are probed or the item has none (video keyframes, `silent`). A mirrored
    /// copy of a listed image opens through its variant's key, and only the variant's PDQ is
    /// within the match distance of the listed entry: the full-distance check needs it.
    pub variant_pdq: [[u8; 32]; MAX_DIHEDRAL_VARIANTS],
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload").finish_non_exhaustive()
    }
}

impl Payload {
    /// Encodes to exactly [`PAYLOAD_LEN`] bytes.
    pub fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let mut out = [0u8; PAYLOAD_LEN];
        out[..32].copy_from_slice(&self.pdq);
        out[32] = self.quality;
        out[33] = self.media_kind.to_byte();
        out[34..36].copy_from_slice(&self.frame_idx.to_le_bytes());
        out[36..68].copy_from_slice(&self.content_sha256);
        out[68..100].copy_from_slice(&self.vd_key);
        out[100..116].copy_from_slice(&self.vd_blob_id);
        for (i, slot) in self.variant_pdq.iter().enumerate() {
            out[116 + 32 * i..148 + 32 * i].copy_from_slice(slot);
        }
        out
    }
    /// Strict decoding (exact length, padding must be zero).
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != PAYLOAD_LEN {
            return Err(DecodeError::WrongLength {
                what: "payload",
                expected: PAYLOAD_LEN,
                got: b.len(),
            });
        }
        if b[PAYLOAD_FIELDS_LEN..].iter().any(|&x| x != 0) {
            return Err(DecodeError::InvalidValue("payload padding"));
        }
        if b[32] > 100 {
            return Err(DecodeError::InvalidValue("quality"));
        }
        let mut r = Reader::new(b);
        let pdq = r.array("pdq")?;
        let quality = r.u8("quality")?;
        let media_kind = MediaKind::from_byte(r.u8("media_kind")?)?;
        let frame_idx = r.u16("frame_idx")?;
        let content_sha256 = r.array("content_sha256")?;
        let vd_key = r.array("vd_key")?;
        let vd_blob_id = r.array("vd_blob_id")?;
        let mut variant_pdq = [[0u8; 32]; MAX_DIHEDRAL_VARIANTS];
        for slot in variant_pdq.iter_mut() {
            *slot = r.array("variant_pdq")?;
        }
        Ok(Payload {
            pdq,
            quality,
            media_kind,
            frame_idx,
            content_sha256,
            vd_key,
            vd_blob_id,
            variant_pdq,
        })
    }

    /// The item's PDQ in each orientation the parameters probe: `(None, pdq)` as sent, then
    /// `(Some(i), variant pdq)` for each probed variant `DIHEDRAL_NAMES[i]`; all-zero slots
    /// skipped. The server's full-distance check takes the orientation nearest the listed
    /// entry, because a mirrored copy opened through its mirror's key.
    pub fn orientations(&self, params: &Params) -> Vec<(Option<usize>, [u8; 32])> {
        let mut out = Vec::with_capacity(1 + MAX_DIHEDRAL_VARIANTS);
        out.push((None, self.pdq));
        let probed = (0..DIHEDRAL_NAMES.len()).filter(|&i| params.dihedral() & (1 << i) != 0);
        // `Params::new` admits at most MAX_DIHEDRAL_VARIANTS bits, so zip drops nothing.
        for (i, slot) in probed.zip(self.variant_pdq.iter()) {
            if *slot != [0u8; 32] {
                out.push((Some(i), *slot));
            }
        }
        out
    }
}

/// The layer-1 plaintext inside rct, visible to the server once one probe opens:
/// `[8] state_id | u64[s+1] dhf (absent if s_max = 0) | [16] share_x | [32] share_y |
/// [32] vd_commit | [32] adct_commit | [240] adct` (`ADCT_LEN`).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct L1Plain {
    /// `SHA-256("state" ‖ poly_seed)[..8]`: groups shares per polynomial.
    pub state_id: [u8; 8],
    /// DHF value (empty under `intervene`).
    pub dhf: Vec<u64>,
    /// Share x (non-zero).
    pub share_x: [u8; 16],
    /// Share y = f(x), a canonical scalar.
    pub share_y: [u8; 32],
    /// `SHA-256("vd" ‖ vd_key)`.
    pub vd_commit: [u8; 32],
    /// `SHA-256("adct" ‖ k_adct)`.
    pub adct_commit: [u8; 32],
    /// `AEAD(k_adct, 0, Payload, aad = hdr ‖ ctx_bind)`.
    pub adct: Vec<u8>,
}

impl std::fmt::Debug for L1Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Plain").finish_non_exhaustive()
    }
}

impl L1Plain {
    /// Encoding (length `layout.l1_len()`).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(8 + 8 * self.dhf.len() + 128 + ADCT_LEN);
        w.bytes(&self.state_id);
        for &d in &self.dhf {
            w.u64(d);
        }
        w.bytes(&self.share_x);
        w.bytes(&self.share_y);
        w.bytes(&self.vd_commit);
        w.bytes(&self.adct_commit);
        w.bytes(&self.adct);
        w.buf
    }

    /// Strict decoding: exact length, DHF words < ℓ, x ≠ 0, canonical y.
    pub fn decode(b: &[u8], layout: &VoucherLayout) -> Result<Self, DecodeError> {
        if b.len() != layout.l1_len() {
            return Err(DecodeError::WrongLength {
                what: "L1Plain",
                expected: layout.l1_len(),
                got: b.len(),
            });
        }
        let mut r = Reader::new(b);
        let state_id = r.array("state_id")?;
        let mut dhf = Vec::with_capacity(layout.dhf_words());
        for _ in 0..layout.dhf_words() {
            let v = r.u64("dhf")?;
            if v >= DHF_PRIME {
                return Err(DecodeError::NonCanonical("dhf word"));
            }
            dhf.push(v);
        }
        let share_x: [u8; 16] = r.array("share_x")?;
        if share_x == [0u8; 16] {
            return Err(DecodeError::InvalidValue("share_x = 0"));
        }
        let share_y: [u8; 32] = r.array("share_y")?;
        if bool::from(Scalar::from_canonical_bytes(share_y).is_none()) {
            return Err(DecodeError::NonCanonical("share_y"));
        }
        let vd_commit = r.array("vd_commit")?;
        let adct_commit = r.array("adct_commit")?;
        let adct = r.take(ADCT_LEN, "adct")?.to_vec();
        r.finish()?;
        Ok(L1Plain {
            state_id,
            dhf,
            share_x,
            share_y,
            vd_commit,
            adct_commit,
            adct,
        })
    }
}

//! The opener (the opening service's side of the protocol): opening a voucher with α
//! (protocol.md 3.7, R/E5), the per-account threshold store with conflict handling and bounded
//! reconstruction ([`AccountShares`]), the consented check of one held item (R/E12), and the
//! `silent` intake whose reply never depends on opening. It answers with enums; the server
//! maps them to its responses.

mod shares;

pub use shares::{
    AccountShares, AddOutcome, DecryptedItem, RebuildError, ThresholdOutcome,
    ACCOUNT_SHARES_VERSION, MAX_RECONSTRUCTION_TRIES,
};

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::sender::{open_vd, probe_key, ConsentReveal};

use crate::params::Params;
use crate::suite::{hkdf, open as aead_open, open_to_vec, sha256, TAG_LEN};
use crate::table::OpeningKey;
use crate::voucher::{aad, L1Plain, Payload, UploadBinding, Voucher, VoucherLayout};
use crate::wire::{DecodeError, Reader, Writer};

/// What opening a voucher found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// No probe opened: the server learns nothing else (G1). Drop the voucher and its VD blob.
    NoMatch,
    /// Between 1 and `max_opens` probes opened, all carrying the same key, and rct decrypted:
    /// **one** key match (one share; the count is in [`OpenedRecord::opened_probes`]). More than
    /// one opens only under `intervene`, for a copy near keys of related list entries or for a
    /// dihedral probe (docs/protocol.md "Related keys and dihedral probes").
    Opened(Box<OpenedRecord>),
    /// More than `max_opens` probes opened (more than one under `silent`). Impossible for an
    /// honest client on a certified table; under `intervene` block and record "invalid
    /// voucher", under `silent` ignore the share (R/E5).
    MultipleOpens(u16),
    /// A probe opened but rct did not decrypt, L1Plain is malformed, or opened probes carry
    /// different keys (no honest client builds that): an invalid voucher.
    Invalid,
}

/// The record kept for an opened voucher (protocol.md 3.8 `OpenedRecord`, plus the binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedRecord {
    /// The voucher id.
    pub voucher_id: [u8; 16],
    /// The table epoch.
    pub epoch: u32,
    /// `ctx_bind` of the upload it opened under.
    pub ctx_bind: [u8; 32],
    /// Index of the (first) probe that opened (the server learns it; it is uniform thanks to
    /// the client's shuffle).
    pub probe_index: u16,
    /// How many probes opened (1 ..= `max_opens`): what the server learns beyond the match bit
    /// ("near two listed keys"), recorded with the case.
    pub opened_probes: u16,
    /// The layer-1 plaintext.
    pub l1: L1Plain,
}

/// Version byte of [`OpenedRecord::encode`]. Version 1 (no `opened_probes`, meaning 1) is
/// still decoded, so rows stored before the change stay readable.
pub const OPENED_RECORD_VERSION: u8 = 2;

impl OpenedRecord {
    /// The length of every record's encoding under `params` (L1Plain's length is fixed by
    /// s_max, the same for PDQ and exact vouchers).
    pub fn encoded_len(params: &Params) -> usize {
        1 + 16 + 4 + 32 + 2 + 2 + VoucherLayout::pdq(params).l1_len()
    }

    /// Canonical bytes, for a database row: version, voucher id, epoch, `ctx_bind`, probe
    /// index, opened probes, L1Plain.
    pub fn encode(&self) -> Vec<u8> {
        let l1 = self.l1.encode();
        let mut w = Writer::with_capacity(1 + 16 + 4 + 32 + 2 + 2 + l1.len());
        w.u8(OPENED_RECORD_VERSION);
        w.bytes(&self.voucher_id);
        w.u32(self.epoch);
        w.bytes(&self.ctx_bind);
        w.u16(self.probe_index);
        w.u16(self.opened_probes);
        w.bytes(&l1);
        w.buf
    }

    /// Strict decoding under `params`: version (2, or 1 without the count), exact length, a
    /// probe index below P, 1 ..= `max_opens` opened probes, and a valid L1Plain
    /// ([`L1Plain::decode`]).
    pub fn decode(bytes: &[u8], params: &Params) -> Result<Self, DecodeError> {
        let v1 = bytes.first() == Some(&1);
        let expected = Self::encoded_len(params) - if v1 { 2 } else { 0 };
        if bytes.len() != expected {
            return Err(DecodeError::WrongLength {
                what: "opened record",
                expected,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes);
        let v = r.u8("version")?;
        if v != OPENED_RECORD_VERSION && v != 1 {
            return Err(DecodeError::UnsupportedVersion {
                what: "opened record",
                got: u16::from(v),
            });
        }
        let voucher_id = r.array("voucher_id")?;
        let epoch = r.u32("epoch")?;
        let ctx_bind = r.array("ctx_bind")?;
        let probe_index = r.u16("probe_index")?;
        if probe_index >= params.probes() {
            return Err(DecodeError::InvalidValue("probe_index"));
        }
        let opened_probes = if v == 1 { 1 } else { r.u16("opened_probes")? };
        if opened_probes == 0 || opened_probes > u16::from(params.max_opens()) {
            return Err(DecodeError::InvalidValue("opened_probes"));
        }
        let layout = VoucherLayout::pdq(params);
        let l1 = L1Plain::decode(r.take(layout.l1_len(), "l1")?, &layout)?;
        r.finish()?;
        Ok(OpenedRecord {
            voucher_id,
            epoch,
            ctx_bind,
            probe_index,
            opened_probes,
            l1,
        })
    }
}

/// The opening service: α and the parameters.
#[derive(Debug)]
pub struct Opener {
    key: OpeningKey,
    params: Params,
}

impl Opener {
    /// An opener for one key period.
    pub fn new(key: OpeningKey, params: Params) -> Self {
        Opener { key, params }
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Opens a parsed voucher for the upload `binding` (the session's account and the hash of
    /// the ciphertext actually received). Always tries all P probes, with no early exit, and
    /// uses constant-time `α·Q`; returns how many opened only through the outcome.
    pub fn open(
        &self,
        voucher: &Voucher,
        layout: &VoucherLayout,
        binding: &UploadBinding,
    ) -> OpenOutcome {
        self.open_with_stats(voucher, layout, binding).0
    }

    /// As [`Opener::open`], also returning the work done: the number of probes tried, always
    /// all of them (PT18: the work does not depend on opening).
    pub fn open_with_stats(
        &self,
        voucher: &Voucher,
        layout: &VoucherLayout,
        binding: &UploadBinding,
    ) -> (OpenOutcome, OpenStats) {
        let ctx_bind = binding.ctx_bind();
        // α·Q for every probe: multiply by α/2 and batch double-and-compress.
        let half = Zeroizing::new(Scalar::from(2u64).invert() * self.key.alpha());
        let halves: Vec<RistrettoPoint> =
            voucher.probes.iter().map(|p| *half * p.q_point).collect();
        let s_all = RistrettoPoint::double_and_compress_batch(halves.iter());
        let mut opened = 0u16;
        let mut tried = 0u32;
        let mut probe_index = 0u16;
        let mut rkey = Zeroizing::new([0u8; 16]);
        // Every opened probe of an honest voucher carries the one rkey.
        let mut same_key = subtle::Choice::from(1u8);
        // A voucher holds at most `layout.probes` (a u16) probes, so the index never wraps.
        for (i, (p, s)) in (0u16..).zip(voucher.probes.iter().zip(s_all.iter())) {
            tried += 1;
            let k = probe_key(
                &s.to_bytes(),
                &p.q.to_bytes(),
                &voucher.voucher_id,
                &ctx_bind,
            );
            let mut body = Zeroizing::new([0u8; 16]);
            body.copy_from_slice(&p.ct[..16]);
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&p.ct[16..]);
            if aead_open(&k, &[], &mut body[..], &tag) {
                opened += 1;
                if opened == 1 {
                    probe_index = i;
                    *rkey = *body;
                } else {
                    same_key &= rkey.ct_eq(&*body);
                }
            }
        }
        let stats = OpenStats {
            probes_tried: tried,
        };
        let max = u16::from(self.params.max_opens());
        let outcome = match opened {
            0 => OpenOutcome::NoMatch,
            n if n > max => OpenOutcome::MultipleOpens(n),
            _ if !bool::from(same_key) => OpenOutcome::Invalid,
            n => {
                let rct_key = hkdf::<32>(&rkey[..], &[b"rct"]);
                let a = aad(voucher.epoch, &voucher.voucher_id, &ctx_bind);
                match open_to_vec(&rct_key, &a, &voucher.rct) {
                    None => OpenOutcome::Invalid,
                    Some(plain) => match L1Plain::decode(&plain, layout) {
                        Ok(l1) => OpenOutcome::Opened(Box::new(OpenedRecord {
                            voucher_id: voucher.voucher_id,
                            epoch: voucher.epoch,
                            ctx_bind,
                            probe_index,
                            opened_probes: n,
                            l1,
                        })),
                        Err(_) => OpenOutcome::Invalid,
                    },
                }
            }
        };
        (outcome, stats)
    }
}

/// Work done by one opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenStats {
    /// Probes for which α·Q was computed and a decryption tried.
    pub probes_tried: u32,
}

/// Which table epochs the server accepts (R/E5 step 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochWindow {
    /// The current epoch.
    pub current: u32,
    /// Whether the previous epoch is still inside its grace period.
    pub previous_in_grace: bool,
    /// Revoked epochs.
    pub revoked: Vec<u32>,
}

/// Whether a voucher's epoch may be opened ([`EpochWindow::check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochVerdict {
    /// The current epoch, or the previous one inside its grace period: open it.
    Open,
    /// Another epoch: the client must fetch the current table and rebuild the voucher with
    /// fresh ids.
    Stale {
        /// The epoch to build for.
        current: u32,
    },
    /// A revoked epoch: never opened, even inside a grace period; the client rebuilds for
    /// the current epoch.
    Revoked {
        /// The epoch to build for.
        current: u32,
    },
}

impl EpochWindow {
    /// Whether a voucher of `epoch` may be opened, and if not, why.
    pub fn check(&self, epoch: u32) -> EpochVerdict {
        if self.revoked.contains(&epoch) {
            return EpochVerdict::Revoked {
                current: self.current,
            };
        }
        if epoch == self.current
            || (self.previous_in_grace && epoch.checked_add(1) == Some(self.current))
        {
            EpochVerdict::Open
        } else {
            EpochVerdict::Stale {
                current: self.current,
            }
        }
    }
}

/// The `silent` intake's reply (R/E5 step 7): one value, decided before any opening, so
/// nothing a client sees depends on whether its voucher opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilentReply {
    /// The voucher parsed and is queued for opening.
    Accepted,
}

/// `silent` intake: validate and answer a fixed reply *before* any opening. The caller
/// enqueues the parsed voucher and opens it asynchronously (always over all P probes).
pub fn silent_intake(
    bytes: &[u8],
    layout: &VoucherLayout,
) -> Result<(SilentReply, Voucher), DecodeError> {
    let v = Voucher::decode(bytes, layout)?;
    Ok((SilentReply::Accepted, v))
}

/// Decrypts a record's adct with its per-item key.
fn decrypt_adct_with(k_adct: &[u8; 32], r: &OpenedRecord) -> Option<Payload> {
    let a = aad(r.epoch, &r.voucher_id, &r.ctx_bind);
    let plain = open_to_vec(k_adct, &a, &r.l1.adct)?;
    Payload::decode(&plain).ok()
}

/// Why a consented check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// The reveal names another voucher.
    #[error("reveal is for another voucher")]
    WrongVoucher,
    /// A revealed key does not match its commitment in L1Plain.
    #[error("revealed key does not match its commitment")]
    CommitmentMismatch,
    /// The adct or VD blob does not decrypt, or the payload names another VD key.
    #[error("payload or VD does not decrypt under the revealed keys")]
    Decryption,
}

/// The material of one consented item: the payload and the thumbnail. The caller runs the
/// full-distance and second-hash checks (R/E12 step 2) and deletes this if either fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentedItem {
    /// The payload.
    pub payload: Payload,
    /// The thumbnail from the VD blob.
    pub thumbnail: Zeroizing<Vec<u8>>,
}

/// The automatic check by consent of one held item (R/E12 step 2): the revealed `k_adct` and
/// `vd_key` must match `adct_commit` and `vd_commit` (so each ciphertext has exactly one
/// admissible key), then the payload and VD are decrypted.
pub fn check_consent(
    rec: &OpenedRecord,
    reveal: &ConsentReveal,
    vd_blob: &[u8],
) -> Result<ConsentedItem, ConsentError> {
    if !bool::from(rec.voucher_id.ct_eq(&reveal.voucher_id)) {
        return Err(ConsentError::WrongVoucher);
    }
    let ac = sha256(&[b"adct", &reveal.k_adct]);
    let vc = sha256(&[b"vd", &reveal.vd_key]);
    if !bool::from(ac.ct_eq(&rec.l1.adct_commit) & vc.ct_eq(&rec.l1.vd_commit)) {
        return Err(ConsentError::CommitmentMismatch);
    }
    let payload = decrypt_adct_with(&reveal.k_adct, rec).ok_or(ConsentError::Decryption)?;
    if !bool::from(payload.vd_key.ct_eq(&reveal.vd_key)) {
        return Err(ConsentError::Decryption);
    }
    let thumbnail =
        open_vd(&reveal.vd_key, &payload.vd_blob_id, vd_blob).ok_or(ConsentError::Decryption)?;
    Ok(ConsentedItem { payload, thumbnail })
}

/// After the threshold, the server also needs each real item's VD blob: opens it with the
/// payload's key.
pub fn open_vd_blob(payload: &Payload, vd_blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    open_vd(&payload.vd_key, &payload.vd_blob_id, vd_blob)
}

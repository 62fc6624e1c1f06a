//! The opener (the opening service's side of the protocol): opening a voucher with α (protocol.md 3.7, R/E5), the per-account threshold store
//! with conflict handling and bounded reconstruction, the consented check of one held item
//! (R/E12), and the `silent` intake whose reply never depends on opening.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::sender::{open_vd, probe_key, ConsentReveal};

use crate::dhf;
use crate::params::{Params, Policy};
use crate::shamir::{adkey_from_secret, interpolate_at_zero, x_scalar};
use crate::suite::{hkdf, open as aead_open, open_to_vec, sha256, TAG_LEN};
use crate::table::OpeningKey;
use crate::voucher::{aad, L1Plain, Payload, UploadBinding, Voucher, VoucherLayout};
use crate::wire::DecodeError;

/// What opening a voucher found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// No probe opened: the server learns nothing else (G1). Drop the voucher and its VD blob.
    NoMatch,
    /// Exactly one probe opened and rct decrypted: a key match.
    Opened(Box<OpenedRecord>),
    /// Two or more probes opened. Impossible for an honest client on a certified table; under
    /// `intervene` block and record "invalid voucher", under `silent` ignore the share (R/E5).
    MultipleOpens(u16),
    /// One probe opened but rct did not decrypt or L1Plain is malformed: an invalid voucher.
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
    /// Index of the probe that opened (the server learns it; it is uniform thanks to the
    /// client's shuffle).
    pub probe_index: u16,
    /// The layer-1 plaintext.
    pub l1: L1Plain,
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
        for (i, (p, s)) in voucher.probes.iter().zip(s_all.iter()).enumerate() {
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
                probe_index = i as u16;
                *rkey = *body;
            }
        }
        let stats = OpenStats {
            probes_tried: tried,
        };
        let outcome = match opened {
            0 => OpenOutcome::NoMatch,
            1 => {
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
                            l1,
                        })),
                        Err(_) => OpenOutcome::Invalid,
                    },
                }
            }
            n => OpenOutcome::MultipleOpens(n),
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

impl EpochWindow {
    /// `true` if a voucher of `epoch` may be opened; otherwise answer `409 stale-table`.
    pub fn accepts(&self, epoch: u32) -> bool {
        if self.revoked.contains(&epoch) {
            return false;
        }
        epoch == self.current
            || (self.previous_in_grace && epoch.checked_add(1) == Some(self.current))
    }
}

/// The fixed reply of the `silent` intake (R/E5 step 7).
pub const SILENT_ACCEPTED: &[u8; 12] = b"202 accepted";

/// `silent` intake: validate and answer a fixed response *before* any opening. The caller
/// enqueues the parsed voucher and opens it asynchronously (always over all P probes).
pub fn silent_intake(
    bytes: &[u8],
    layout: &VoucherLayout,
) -> Result<(&'static [u8; 12], Voucher), DecodeError> {
    let v = Voucher::decode(bytes, layout)?;
    Ok((SILENT_ACCEPTED, v))
}

/// What adding an opened record to an account's store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new distinct share.
    Added,
    /// Same x and y as a stored share: the same item again (dedup linkage), counted once.
    Duplicate,
    /// Same x, different y: flagged and excluded, never interpolated (R/E5 step 8).
    Conflict,
    /// The voucher id was already used on this account: rejected.
    ReusedVoucherId,
    /// The store is full (T + s_max + 64 distinct shares): frozen and flagged.
    CapReached,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    y: [u8; 32],
    records: Vec<OpenedRecord>,
}

#[derive(Debug, Clone, Default)]
struct Group {
    slots: BTreeMap<[u8; 16], Slot>,
    conflicted: BTreeSet<[u8; 16]>,
}

/// One decrypted real item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecryptedItem {
    /// The voucher id.
    pub voucher_id: [u8; 16],
    /// The payload.
    pub payload: Payload,
}

/// The result of a threshold attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdOutcome {
    /// Fewer than T distinct usable shares in every state group.
    Below {
        /// Largest distinct-share count of any group.
        distinct: usize,
    },
    /// ≥ T distinct shares but no consistent reconstruction (poisoned by its own client, or too
    /// many synthetics under `silent`).
    Failed,
    /// Reconstructed: every real payload of the group, the synthetic vouchers (`silent`), and
    /// vouchers whose adct did not decrypt.
    Decrypted {
        /// Real items.
        items: Vec<DecryptedItem>,
        /// Vouchers identified as synthetic.
        synthetic: Vec<[u8; 16]>,
        /// Vouchers that failed to decrypt.
        invalid: Vec<[u8; 16]>,
    },
}

/// Per-account store of opened records, grouped by state id and share x.
#[derive(Debug, Clone)]
pub struct AccountShares {
    params: Params,
    groups: BTreeMap<[u8; 8], Group>,
    voucher_ids: HashSet<[u8; 16]>,
    frozen: bool,
}

/// Most reconstruction subsets tried per group (bounds the work a poisoned account can cause).
pub const MAX_RECONSTRUCTION_TRIES: usize = 16;

impl AccountShares {
    /// An empty store.
    pub fn new(params: Params) -> Self {
        AccountShares {
            params,
            groups: BTreeMap::new(),
            voucher_ids: HashSet::new(),
            frozen: false,
        }
    }

    /// Share cap: T + s_max + 64.
    pub fn cap(&self) -> usize {
        usize::from(self.params.threshold()) + usize::from(self.params.s_max()) + 64
    }

    /// Whether the store hit its cap.
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Distinct usable shares (largest group).
    pub fn distinct(&self) -> usize {
        self.groups
            .values()
            .map(|g| g.slots.len())
            .max()
            .unwrap_or(0)
    }

    fn total_distinct(&self) -> usize {
        self.groups
            .values()
            .map(|g| g.slots.len() + g.conflicted.len())
            .sum()
    }

    /// Adds an opened record.
    pub fn add(&mut self, rec: OpenedRecord) -> AddOutcome {
        if self.voucher_ids.contains(&rec.voucher_id) {
            return AddOutcome::ReusedVoucherId;
        }
        let cap = self.cap();
        let total = self.total_distinct();
        let g = self.groups.entry(rec.l1.state_id).or_default();
        let x = rec.l1.share_x;
        if g.conflicted.contains(&x) {
            self.voucher_ids.insert(rec.voucher_id);
            return AddOutcome::Conflict;
        }
        if let Some(slot) = g.slots.get_mut(&x) {
            self.voucher_ids.insert(rec.voucher_id);
            if bool::from(slot.y.ct_eq(&rec.l1.share_y)) {
                slot.records.push(rec);
                return AddOutcome::Duplicate;
            }
            g.slots.remove(&x);
            g.conflicted.insert(x);
            return AddOutcome::Conflict;
        }
        if total >= cap || self.frozen {
            self.frozen = true;
            return AddOutcome::CapReached;
        }
        self.voucher_ids.insert(rec.voucher_id);
        g.slots.insert(
            x,
            Slot {
                y: rec.l1.share_y,
                records: vec![rec],
            },
        );
        AddOutcome::Added
    }

    /// Attempts detection and decryption (protocol.md 3.7 "Per account", R/E5 step 8). Under
    /// `intervene` (no synthetics) any T shares are tried, verified by adct decryption; under
    /// `silent` DHF detection first identifies the real shares.
    pub fn try_decrypt(&self) -> ThresholdOutcome {
        let t = usize::from(self.params.threshold());
        let mut best = 0usize;
        let mut failed = false;
        for g in self.groups.values() {
            let n = g.slots.len();
            best = best.max(n);
            if n < t {
                continue;
            }
            let slots: Vec<(&[u8; 16], &Slot)> = g.slots.iter().collect();
            let candidates: Vec<usize> = match self.params.policy() {
                Policy::Intervene => (0..n).collect(),
                Policy::Silent => {
                    let s = usize::from(self.params.s_max());
                    let cols: Vec<&[u64]> = slots
                        .iter()
                        .map(|(_, sl)| sl.records[0].l1.dhf.as_slice())
                        .collect();
                    match dhf::detect(&cols, self.params.threshold(), s) {
                        Some(real) => real,
                        None => {
                            failed = true;
                            continue;
                        }
                    }
                }
            };
            if candidates.len() < t {
                failed = true;
                continue;
            }
            match self.reconstruct(&slots, &candidates, t) {
                Some(adkey) => {
                    let mut items = Vec::new();
                    let mut invalid = Vec::new();
                    let mut synthetic = Vec::new();
                    let real: BTreeSet<usize> = candidates.iter().copied().collect();
                    for (i, (_, sl)) in slots.iter().enumerate() {
                        for r in &sl.records {
                            if !real.contains(&i) {
                                synthetic.push(r.voucher_id);
                                continue;
                            }
                            match decrypt_adct(&adkey, r) {
                                Some(p) => items.push(DecryptedItem {
                                    voucher_id: r.voucher_id,
                                    payload: p,
                                }),
                                None => invalid.push(r.voucher_id),
                            }
                        }
                    }
                    return ThresholdOutcome::Decrypted {
                        items,
                        synthetic,
                        invalid,
                    };
                }
                None => failed = true,
            }
        }
        if failed {
            ThresholdOutcome::Failed
        } else {
            ThresholdOutcome::Below { distinct: best }
        }
    }

    /// Tries up to [`MAX_RECONSTRUCTION_TRIES`] windows of T candidates; a window is accepted
    /// only if every one of its T items decrypts under the reconstructed adkey.
    fn reconstruct(
        &self,
        slots: &[(&[u8; 16], &Slot)],
        cand: &[usize],
        t: usize,
    ) -> Option<Zeroizing<[u8; 32]>> {
        let windows = (cand.len() - t + 1).min(MAX_RECONSTRUCTION_TRIES);
        for w in 0..windows {
            let chosen = &cand[w..w + t];
            let mut shares = Vec::with_capacity(t);
            for &i in chosen {
                let (x, sl) = slots[i];
                let y = Option::<Scalar>::from(Scalar::from_canonical_bytes(sl.y))?;
                shares.push((x_scalar(x), y));
            }
            let a0 = Zeroizing::new(interpolate_at_zero(&shares)?);
            let adkey = adkey_from_secret(&a0, self.params.threshold());
            if chosen
                .iter()
                .all(|&i| decrypt_adct(&adkey, &slots[i].1.records[0]).is_some())
            {
                return Some(adkey);
            }
        }
        None
    }
}

fn decrypt_adct(adkey: &[u8; 32], r: &OpenedRecord) -> Option<Payload> {
    let k = hkdf::<32>(adkey, &[b"adct", &r.voucher_id]);
    decrypt_adct_with(&k, r)
}

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

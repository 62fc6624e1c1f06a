//! The per-account threshold store (protocol.md 3.7 "Per account", R/E5 step 8): opened records
//! grouped by state id and share x, with conflict handling, a share cap and bounded
//! reconstruction. Its state is the ordered list of records it accepted, so a database keeps
//! one row per record (or the whole store as bytes) and any server process rebuilds it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use curve25519_dalek::scalar::Scalar;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{decrypt_adct_with, OpenedRecord};
use crate::dhf;
use crate::params::{Params, Policy};
use crate::shamir::{adkey_from_secret, interpolate_at_zero, x_scalar};
use crate::suite::hkdf;
use crate::voucher::Payload;
use crate::wire::{DecodeError, Reader, Writer};

/// What adding an opened record to an account's store did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new distinct share.
    Added,
    /// Same x and y as a stored share: the same item again (dedup linkage), counted once.
    Duplicate,
    /// Same x, different y: flagged and excluded, never interpolated (R/E5 step 8).
    Conflict,
    /// The voucher id was already used on this account: rejected, not stored.
    ReusedVoucherId,
    /// The store is full (T + s_max + 64 distinct shares): frozen and flagged; not stored.
    CapReached,
}

impl AddOutcome {
    /// Whether the store kept the record (and so [`AccountShares::records`] lists it).
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            AddOutcome::Added | AddOutcome::Duplicate | AddOutcome::Conflict
        )
    }
}

impl std::fmt::Display for AddOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddOutcome::Added => "a new share",
            AddOutcome::Duplicate => "the same share again",
            AddOutcome::Conflict => "a share conflicting with a stored one",
            AddOutcome::ReusedVoucherId => "a voucher id the account already used",
            AddOutcome::CapReached => "a share over the store's cap",
        })
    }
}

/// One distinct share: its y and the records (indices into the log) that carried it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Slot {
    y: [u8; 32],
    records: Vec<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Why a list of stored records is not the state of an account's store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RebuildError {
    /// Replaying the records, the store would have refused this one, so no store wrote the
    /// list (edited, reordered or mixed with another account's records).
    #[error("stored record {index} is {outcome}, which the store never keeps")]
    Refused {
        /// Its position in the list.
        index: usize,
        /// What the store answered.
        outcome: AddOutcome,
    },
    /// The store is marked frozen but holds fewer distinct shares than its cap.
    #[error("the store is marked frozen with {distinct} distinct shares, below its cap of {cap}")]
    FrozenBelowCap {
        /// Distinct shares held (usable and conflicted).
        distinct: usize,
        /// The cap.
        cap: usize,
    },
}

/// Per-account store of opened records, grouped by state id and share x.
///
/// Its whole state is the list of records it kept, in the order they came
/// ([`records`](Self::records)), and whether it froze ([`is_frozen`](Self::is_frozen)):
/// [`rebuild`](Self::rebuild) replays that list, and [`encode`](Self::encode) /
/// [`decode`](Self::decode) carry it as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountShares {
    params: Params,
    log: Vec<OpenedRecord>,
    groups: BTreeMap<[u8; 8], Group>,
    voucher_ids: HashSet<[u8; 16]>,
    frozen: bool,
}

/// Most reconstruction subsets tried per group (bounds the work a poisoned account can cause).
pub const MAX_RECONSTRUCTION_TRIES: usize = 16;

/// Version byte of [`AccountShares::encode`]. 2: records of [`OpenedRecord`] version 2 (with
/// the opened-probe count).
pub const ACCOUNT_SHARES_VERSION: u8 = 2;

impl AccountShares {
    /// An empty store.
    pub fn new(params: Params) -> Self {
        AccountShares {
            params,
            log: Vec::new(),
            groups: BTreeMap::new(),
            voucher_ids: HashSet::new(),
            frozen: false,
        }
    }

    /// The store that kept `records` in this order, frozen or not: what a database rebuilds
    /// from its rows. Fails if the store would have refused any of them, or if `frozen` is
    /// set below the cap, so a list no store wrote is never taken for one.
    pub fn rebuild(
        params: Params,
        records: impl IntoIterator<Item = OpenedRecord>,
        frozen: bool,
    ) -> Result<Self, RebuildError> {
        let mut store = AccountShares::new(params);
        for (index, rec) in records.into_iter().enumerate() {
            let outcome = store.add(rec);
            if !outcome.is_stored() {
                return Err(RebuildError::Refused { index, outcome });
            }
        }
        if frozen {
            let (distinct, cap) = (store.total_distinct(), store.cap());
            if distinct < cap {
                return Err(RebuildError::FrozenBelowCap { distinct, cap });
            }
            store.frozen = true;
        }
        Ok(store)
    }

    /// The parameters the store counts under.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every record the store kept, in the order they came (refused ones are not kept).
    pub fn records(&self) -> &[OpenedRecord] {
        &self.log
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
        let index = self.log.len();
        let g = self.groups.entry(rec.l1.state_id).or_default();
        let x = rec.l1.share_x;
        let outcome = if g.conflicted.contains(&x) {
            AddOutcome::Conflict
        } else if let Some(slot) = g.slots.get_mut(&x) {
            if bool::from(slot.y.ct_eq(&rec.l1.share_y)) {
                slot.records.push(index);
                AddOutcome::Duplicate
            } else {
                g.slots.remove(&x);
                g.conflicted.insert(x);
                AddOutcome::Conflict
            }
        } else if total >= cap || self.frozen {
            self.frozen = true;
            // An empty group made only for this lookup would count for nothing; drop it so
            // the state stays what the kept records give.
            if g.slots.is_empty() && g.conflicted.is_empty() {
                self.groups.remove(&rec.l1.state_id);
            }
            return AddOutcome::CapReached;
        } else {
            g.slots.insert(
                x,
                Slot {
                    y: rec.l1.share_y,
                    records: vec![index],
                },
            );
            AddOutcome::Added
        };
        self.voucher_ids.insert(rec.voucher_id);
        self.log.push(rec);
        outcome
    }

    /// Canonical bytes: version, frozen flag, record count, then each kept record
    /// ([`OpenedRecord::encode`]) in order.
    pub fn encode(&self) -> Vec<u8> {
        let record_len = OpenedRecord::encoded_len(&self.params);
        let mut w = Writer::with_capacity(6 + record_len * self.log.len());
        w.u8(ACCOUNT_SHARES_VERSION);
        w.u8(u8::from(self.frozen));
        // The cap bounds distinct shares, not duplicates; a store past u32::MAX records
        // would need terabytes, and its count saturates rather than wraps (decode then
        // refuses the length).
        w.u32(u32::try_from(self.log.len()).unwrap_or(u32::MAX));
        for rec in &self.log {
            w.bytes(&rec.encode());
        }
        w.buf
    }

    /// Strict decoding under `params`: version, a frozen flag of 0 or 1, a length that is
    /// exactly the records', each record valid, and a list the store would have kept
    /// ([`rebuild`](Self::rebuild)).
    pub fn decode(bytes: &[u8], params: &Params) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = r.u8("version")?;
        if v != ACCOUNT_SHARES_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: "account shares",
                got: u16::from(v),
            });
        }
        let frozen = match r.u8("frozen")? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::InvalidValue("frozen flag")),
        };
        let count = usize::try_from(r.u32("record count")?)
            .map_err(|_| DecodeError::InvalidValue("record count"))?;
        let record_len = OpenedRecord::encoded_len(params);
        // Checked before any allocation: the count must be what the bytes hold.
        let expected = count
            .checked_mul(record_len)
            .and_then(|n| n.checked_add(6))
            .ok_or(DecodeError::InvalidValue("record count"))?;
        if expected != bytes.len() {
            return Err(DecodeError::WrongLength {
                what: "account shares",
                expected,
                got: bytes.len(),
            });
        }
        let mut records = Vec::with_capacity(count);
        for _ in 0..count {
            records.push(OpenedRecord::decode(r.take(record_len, "record")?, params)?);
        }
        r.finish()?;
        AccountShares::rebuild(params.clone(), records, frozen)
            .map_err(|_| DecodeError::InvalidValue("account shares (a list no store kept)"))
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
                        .map(|(_, sl)| self.first(sl).l1.dhf.as_slice())
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
                        for r in sl.records.iter().map(|&k| &self.log[k]) {
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

    /// The first record of a slot (every slot has one: it is made with its first record).
    fn first(&self, slot: &Slot) -> &OpenedRecord {
        &self.log[slot.records[0]]
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
                .all(|&i| decrypt_adct(&adkey, self.first(slots[i].1)).is_some())
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

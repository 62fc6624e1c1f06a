//! The upload intake (protocol.md R/E5 and E12): an attachment's ciphertext arrives with its
//! vouchers; the intake parses them strictly, binds them to the account and the ciphertext the
//! server actually received, opens them with the table's secret and decides: deliver, hold, or
//! refuse. Opened records go into the account's threshold log in the database, shared by every
//! server process; at T distinct matches the shares are reconstructed and the decrypted items
//! checked against the plaintext index before a case enters the review queue. The automatic
//! check by consent (E12) releases a held item at once unless its full PDQ is within 31 of a
//! listed hash.
//!
//! What is kept for an upload whose vouchers do not open (G1): its ciphertext and the
//! bookkeeping every messenger keeps for one (id, owner, SHA-256 of the ciphertext, length,
//! time). The vouchers and visual-derivative blobs are dropped unread.
//!
//! What is kept for a held item released by its sender's consented check: its PDQ hash, for
//! the campaign window only ([`CampaignRule`]), so that one image crafted to collide with a
//! listed key and sent from many accounts is flagged (R/E12 step 6).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use hashguard_index::Scratch;
use hashguard_pdq::Hash256;
use hashguard_protocol::opener::{
    check_consent, open_vd_blob, AccountShares, AddOutcome, EpochVerdict, OpenOutcome,
    OpenedRecord, ThresholdOutcome,
};
use hashguard_protocol::params::Policy;
use hashguard_protocol::sender::ConsentReveal;
use hashguard_protocol::voucher::{UploadBinding, Voucher, VoucherLayout};
use hashguard_store::{
    AccountId, Appended, AttachmentId, AttachmentRecord, AttachmentState, Campaign, CampaignId,
    CaseId, CaseKind, CaseRecord, CaseState, ReleasedCheck, ReviewMaterial, Store, StoreError,
    StoredRecord,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::banks::BankSet;
use crate::blobs::{BlobName, BlobStore};
use crate::hex;
use crate::item_check::{check_item, Orientation};
use crate::review::{Verdict, MATCH_DISTANCE};
use crate::serving::ServedTable;

/// An account's share store, its log's length, and each voucher's attachment.
type AccountLog = (AccountShares, u64, HashMap<[u8; 16], AttachmentId>);

/// Most keyframe vouchers one video carries (protocol.md: up to 16, one dedup id).
pub const MAX_VIDEO_VOUCHERS: usize = hashguard_protocol::sender::MAX_KEYFRAMES;

/// How often an append to an account's log is retried when another server process appended
/// first (each retry rereads the log).
const APPEND_RETRIES: usize = 16;

/// What an attachment is, as its sender's client says (it decides the voucher count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    /// A still image: one voucher.
    Image,
    /// A video: 1 to [`MAX_VIDEO_VOUCHERS`] keyframe vouchers.
    Video,
}

/// One voucher as uploaded, with its visual-derivative blob.
#[derive(Debug, Clone)]
pub struct VoucherPart {
    /// The voucher's bytes.
    pub voucher: Vec<u8>,
    /// The encrypted visual derivative (fixed length `vd_len`).
    pub vd_blob: Vec<u8>,
}

/// One upload: the account it comes from, the ciphertext as received and its vouchers.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The authenticated account.
    pub account: AccountId,
    /// Image or video.
    pub media: MediaType,
    /// The attachment ciphertext exactly as received.
    pub ciphertext: Vec<u8>,
    /// The vouchers.
    pub vouchers: Vec<VoucherPart>,
}

/// What is known of an attachment's ciphertext when its vouchers are opened: received (the
/// one-request upload) or announced by its SHA-256 and length (the two-phase upload, whose
/// blob store then proves both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Announced {
    /// The authenticated account.
    pub(crate) account: AccountId,
    /// Image or video.
    pub(crate) media: MediaType,
    /// SHA-256 of the ciphertext.
    pub(crate) sha256: [u8; 32],
    /// Its length in bytes.
    pub(crate) length: u64,
}

/// Why an upload's vouchers were not opened: built for another epoch, or refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotOpened {
    /// The vouchers were built for another epoch.
    Stale {
        /// The current epoch.
        current_epoch: u32,
    },
    /// Refused.
    Rejected(Rejection),
}

/// Why an upload was refused (nothing was stored, nothing relayed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The voucher count does not fit the media type.
    #[error("a {media:?} upload carries {expected}; this one carries {got}")]
    VoucherCount {
        /// The media type.
        media: MediaType,
        /// What it must carry.
        expected: &'static str,
        /// What it carried.
        got: usize,
    },
    /// A voucher does not parse (wrong length, non-canonical or identity point, ...).
    #[error("voucher {index} is malformed: {reason}")]
    Malformed {
        /// Which voucher.
        index: usize,
        /// The parser's reason.
        reason: String,
    },
    /// A visual-derivative blob has the wrong length.
    #[error("the visual derivative of voucher {index} has {got} bytes; it must have {expected}")]
    VdLength {
        /// Which voucher.
        index: usize,
        /// Its length.
        got: usize,
        /// The table's `vd_len`.
        expected: usize,
    },
    /// The vouchers of one upload name different epochs.
    #[error("the vouchers name different table epochs")]
    MixedEpochs,
    /// A voucher opened more than one probe, or opened but did not decrypt: no honest client
    /// builds one (R/E5 step 5).
    #[error("voucher {index} is invalid")]
    InvalidVoucher {
        /// Which voucher.
        index: usize,
    },
    /// A voucher id this account used before (a replay).
    #[error("voucher {index} was used before")]
    ReusedVoucher {
        /// Which voucher.
        index: usize,
    },
    /// The same voucher twice in one upload.
    #[error("the upload carries the same voucher twice")]
    DuplicateVoucher,
}

/// The vouchers of an upload accepted under `silent`, to be opened after the reply was sent
/// ([`Intake::open_pending`]).
pub struct PendingOpen {
    account: AccountId,
    attachment: AttachmentId,
    binding: UploadBinding,
    vouchers: Vec<(Voucher, Vec<u8>)>,
}

/// The first bytes of an encoded [`PendingOpen`] (format version 1).
const PENDING_MAGIC: &[u8; 4] = b"HGP1";

/// Why a pending opening's file could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a pending opening's file is unreadable: {0}")]
pub struct PendingDecodeError(&'static str);

impl PendingOpen {
    /// The attachment these vouchers came with.
    pub fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    /// The bytes kept in the blob store until the opening is done, so that a process killed
    /// between the reply and the opening loses nothing: `HGP1`, the account (16 bytes), the
    /// attachment (16), the ciphertext's SHA-256 (32), the voucher count (1), then per voucher
    /// its length (u32, big-endian) and bytes and the visual derivative's length and bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(PENDING_MAGIC);
        out.extend_from_slice(self.account.as_bytes());
        out.extend_from_slice(self.attachment.as_bytes());
        out.extend_from_slice(&self.binding.attachment_sha256);
        out.push(u8::try_from(self.vouchers.len()).unwrap_or(u8::MAX));
        for (voucher, vd) in &self.vouchers {
            for part in [voucher.encode(), vd.clone()] {
                out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
                out.extend_from_slice(&part);
            }
        }
        out
    }

    /// Reads [`PendingOpen::encode`]'s bytes back; every voucher parses strictly again.
    pub fn decode(bytes: &[u8], layout: &VoucherLayout) -> Result<PendingOpen, PendingDecodeError> {
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], PendingDecodeError> {
            if rest.len() < n {
                return Err(PendingDecodeError("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        }
        fn array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], PendingDecodeError> {
            let mut out = [0u8; N];
            out.copy_from_slice(take(rest, N)?);
            Ok(out)
        }
        let mut rest = bytes;
        if take(&mut rest, 4)? != PENDING_MAGIC {
            return Err(PendingDecodeError("not a pending opening (wrong magic)"));
        }
        let account = AccountId::new(array(&mut rest)?);
        let attachment = AttachmentId::new(array(&mut rest)?);
        let sha256: [u8; 32] = array(&mut rest)?;
        let [count] = array::<1>(&mut rest)?;
        if count == 0 || usize::from(count) > MAX_VIDEO_VOUCHERS {
            return Err(PendingDecodeError("a voucher count out of range"));
        }
        let mut vouchers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let mut part = || -> Result<&[u8], PendingDecodeError> {
                let len = u32::from_be_bytes(array(&mut rest)?);
                take(&mut rest, usize::try_from(len).unwrap_or(usize::MAX))
            };
            let voucher = Voucher::decode(part()?, layout)
                .map_err(|_| PendingDecodeError("a voucher does not parse"))?;
            let vd = part()?.to_vec();
            vouchers.push((voucher, vd));
        }
        if !rest.is_empty() {
            return Err(PendingDecodeError("trailing bytes"));
        }
        Ok(PendingOpen {
            account,
            attachment,
            binding: UploadBinding {
                account_id: *account.as_bytes(),
                attachment_sha256: sha256,
            },
            vouchers,
        })
    }
}

/// What [`Intake::recover_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveredOpenings {
    /// Pending openings opened now.
    pub opened: usize,
    /// Pending files with no attachment row (never answered, or another process's write in
    /// flight), left to [`Intake::delete_orphans`].
    pub unanswered: usize,
    /// Files that could not be read back: kept in place for a person to look at.
    pub unreadable: Vec<String>,
}

impl std::fmt::Debug for PendingOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingOpen")
            .field("vouchers", &self.vouchers.len())
            .finish_non_exhaustive()
    }
}

/// What the intake decided.
#[derive(Debug)]
pub enum UploadOutcome {
    /// No voucher opened: the ciphertext is stored and may be fetched by its id.
    Delivered {
        /// The attachment's id (a capability: unguessable).
        attachment: AttachmentId,
    },
    /// A key match under `intervene`: the ciphertext is kept but served to nobody, and a case
    /// is open for the automatic check.
    Held {
        /// The case.
        case: CaseId,
        /// The held attachment.
        attachment: AttachmentId,
    },
    /// Under `silent`: stored and deliverable, with the same reply whatever the vouchers hold
    /// (R/E5 step 7); the vouchers are opened afterwards ([`Intake::open_pending`]).
    Accepted {
        /// The attachment's id.
        attachment: AttachmentId,
        /// The vouchers, to open after replying.
        pending: PendingOpen,
    },
    /// The vouchers were built for another epoch: the client fetches the current table and
    /// rebuilds them with fresh ids.
    Stale {
        /// The current epoch.
        current_epoch: u32,
    },
    /// Refused.
    Rejected(Rejection),
}

/// The result of the automatic check of one held item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Not a match: the item is released and may be fetched; its material is deleted.
    Released {
        /// The attachment, now deliverable.
        attachment: AttachmentId,
        /// The crafted-collision campaign this release flagged, if it flagged one (staff only:
        /// never shown to the user).
        campaign: Option<CampaignId>,
    },
    /// The item stays blocked and waits for two human reviewers.
    BlockedForReview,
}

/// Why a consented check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No case of that id belongs to the account (another account's case looks the same).
    #[error("no such case")]
    NoSuchCase,
    /// The case was checked already, or is not a held item.
    #[error("this case is not waiting for a check (it is {0})")]
    NotHeld(&'static str),
    /// The keys do not open this item (a wrong key, or another voucher's).
    #[error("the keys do not open this item: {0}")]
    Keys(String),
    /// The service failed.
    #[error(transparent)]
    Service(#[from] IntakeError),
}

/// A failure of the service itself (the database or the blob store), never the client's.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blobs(#[from] std::io::Error),
    /// Other server processes kept appending to the account's log.
    #[error(
        "the account's threshold log changed {0} times while this upload was added; try again"
    )]
    Contended(usize),
    /// Randomness was not available.
    #[error("no OS randomness: {0}")]
    Randomness(String),
}

/// When releases are flagged as a crafted-collision campaign (R/E12 step 6): one image (PDQ
/// hashes within the match distance of each other) released by the automatic checks of at
/// least `accounts` distinct accounts within `window_seconds`.
///
/// A released item's PDQ hash is kept for the window and then deleted; the consent offer
/// says so ([`CampaignRule::retention_days`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignRule {
    /// Distinct accounts that make a campaign (at least 2).
    pub accounts: u32,
    /// The window, which is also how long a released item's PDQ hash is kept (seconds).
    pub window_seconds: i64,
}

impl Default for CampaignRule {
    /// Three accounts within 30 days: a chance key match happens about once in a million
    /// images (calibration.md), so two other accounts releasing the same image within a
    /// month is not chance.
    fn default() -> Self {
        CampaignRule {
            accounts: 3,
            window_seconds: 30 * 24 * 3_600,
        }
    }
}

impl CampaignRule {
    /// How long a released item's fingerprint is kept, in days (rounded up), for the consent
    /// offer.
    pub fn retention_days(&self) -> i64 {
        (self.window_seconds + 86_399) / 86_400
    }
}

/// The intake: the table, the store, the blobs, and the plaintext index of the banks.
pub struct Intake<B: BlobStore> {
    pub(crate) store: Store,
    pub(crate) blobs: B,
    pub(crate) table: Arc<ServedTable>,
    banks: Option<Arc<BankSet>>,
    campaign: CampaignRule,
}

/// How many of the most recent campaigns a new flag is compared with.
const CAMPAIGNS_SCANNED: u32 = 1_000;

pub(crate) fn random_id() -> Result<[u8; 16], IntakeError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| IntakeError::Randomness(e.to_string()))?;
    Ok(id)
}

/// Unix seconds now, as the store keeps times.
pub fn unix_now() -> i64 {
    i64::try_from(crate::publish::now()).unwrap_or(i64::MAX)
}

impl<B: BlobStore> Intake<B> {
    /// An intake over `store` and `blobs` for `table`; `banks`, the plaintext index, is what
    /// decrypted items are checked against (without it, no item can be confirmed, so the
    /// automatic check releases everything and threshold cases record that nothing could be
    /// checked).
    pub fn new(
        store: Store,
        blobs: B,
        table: Arc<ServedTable>,
        banks: Option<Arc<BankSet>>,
    ) -> Self {
        Intake {
            store,
            blobs,
            table,
            banks,
            campaign: CampaignRule::default(),
        }
    }

    /// The same intake with another campaign rule (the default is [`CampaignRule::default`]).
    pub fn with_campaign_rule(mut self, rule: CampaignRule) -> Self {
        self.campaign = rule;
        self
    }

    /// The campaign rule.
    pub fn campaign_rule(&self) -> CampaignRule {
        self.campaign
    }

    /// Deletes attachment blobs and pending openings no row names (a crash between writing
    /// them and the row leaves one; its upload was never answered) among `attachments` and
    /// `pending`, the ids (hex) of files old enough that no write is still in flight (see
    /// [`LocalBlobs::sweep`](crate::blobs::LocalBlobs::sweep)); returns how many it deleted.
    pub async fn delete_orphans(
        &self,
        attachments: &[String],
        pending: &[String],
    ) -> Result<usize, IntakeError> {
        let mut deleted = 0;
        let named = attachments
            .iter()
            .map(|id| (id, BlobName::attachment(id)))
            .chain(pending.iter().map(|id| (id, BlobName::pending(id))));
        for (id, blob) in named {
            let Ok(parsed) = id.parse::<AttachmentId>() else {
                continue;
            };
            if !self.is_answered(&parsed).await? && self.blobs.delete(&blob).await? {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Whether an upload of attachment `id` was answered: it has a row, or it is the slot of
    /// a two-phase upload whose bytes have not arrived yet (its pending opening must stay).
    async fn is_answered(&self, id: &AttachmentId) -> Result<bool, IntakeError> {
        Ok(self.store.attachment(id).await?.is_some()
            || self.store.slot_for_attachment(id).await?.is_some())
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &B {
        &self.blobs
    }

    /// The table.
    pub fn table(&self) -> &ServedTable {
        &self.table
    }

    /// Parses, binds, opens and decides one upload.
    pub async fn upload(&self, upload: Upload) -> Result<UploadOutcome, IntakeError> {
        let vouchers = match self.parse_vouchers(upload.media, &upload.vouchers) {
            Ok(v) => v,
            Err(NotOpened::Stale { current_epoch }) => {
                return Ok(UploadOutcome::Stale { current_epoch })
            }
            Err(NotOpened::Rejected(r)) => return Ok(UploadOutcome::Rejected(r)),
        };
        let params = self.table.params();
        let layout = VoucherLayout::pdq(params);
        // The binding is the ciphertext this server received, never a digest the client claims.
        let sha256: [u8; 32] = Sha256::digest(&upload.ciphertext).into();
        let binding = UploadBinding {
            account_id: *upload.account.as_bytes(),
            attachment_sha256: sha256,
        };
        if params.policy() == Policy::Silent {
            // R/E5 step 7: store and answer before any opening, so nothing the client sees
            // depends on it. The vouchers are written first, durably, until they are opened:
            // a process killed after the reply opens them at its next start.
            let attachment = AttachmentId::new(random_id()?);
            let pending = self
                .write_pending(
                    upload.account,
                    attachment,
                    binding,
                    vouchers,
                    &upload.vouchers,
                )
                .await?;
            self.store_delivered(&upload, attachment, sha256).await?;
            return Ok(UploadOutcome::Accepted {
                attachment,
                pending,
            });
        }
        let opened = match self
            .open_vouchers(&upload.account, &vouchers, &layout, &binding)
            .await?
        {
            Ok(opened) => opened,
            Err(rejection) => return Ok(UploadOutcome::Rejected(rejection)),
        };
        let attachment = AttachmentId::new(random_id()?);
        if opened.is_empty() {
            self.store_delivered(&upload, attachment, sha256).await?;
            return Ok(UploadOutcome::Delivered { attachment });
        }
        self.hold(
            &Announced {
                account: upload.account,
                media: upload.media,
                sha256,
                length: u64::try_from(upload.ciphertext.len()).unwrap_or(u64::MAX),
            },
            Some(&upload.ciphertext),
            &upload.vouchers,
            opened,
        )
        .await
    }

    /// Writes the vouchers of an upload accepted under `silent` to the blob store until they
    /// are opened ([`BlobName::pending`]), before anything answers the client.
    pub(crate) async fn write_pending(
        &self,
        account: AccountId,
        attachment: AttachmentId,
        binding: UploadBinding,
        vouchers: Vec<Voucher>,
        parts: &[VoucherPart],
    ) -> Result<PendingOpen, IntakeError> {
        let vds = parts.iter().map(|p| p.vd_blob.clone());
        let pending = PendingOpen {
            account,
            attachment,
            binding,
            vouchers: vouchers.into_iter().zip(vds).collect(),
        };
        self.blobs
            .put(
                &BlobName::pending(&attachment.to_string()),
                &pending.encode(),
            )
            .await?;
        Ok(pending)
    }

    /// Parses an upload's vouchers strictly and checks their count, visual derivatives and
    /// epoch; `Err` is the answer to give instead (refused, or stale).
    pub(crate) fn parse_vouchers(
        &self,
        media: MediaType,
        parts: &[VoucherPart],
    ) -> Result<Vec<Voucher>, NotOpened> {
        let params = self.table.params();
        let expected = match media {
            MediaType::Image => (1..=1, "exactly one voucher"),
            MediaType::Video => (1..=MAX_VIDEO_VOUCHERS, "1 to 16 vouchers"),
        };
        if !expected.0.contains(&parts.len()) {
            return Err(NotOpened::Rejected(Rejection::VoucherCount {
                media,
                expected: expected.1,
                got: parts.len(),
            }));
        }
        let layout = VoucherLayout::pdq(params);
        let vd_len = usize::try_from(params.vd_len()).unwrap_or(usize::MAX);
        let mut vouchers = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let voucher = match Voucher::decode(&part.voucher, &layout) {
                Ok(v) => v,
                Err(e) => {
                    return Err(NotOpened::Rejected(Rejection::Malformed {
                        index,
                        reason: e.to_string(),
                    }))
                }
            };
            if part.vd_blob.len() != vd_len {
                return Err(NotOpened::Rejected(Rejection::VdLength {
                    index,
                    got: part.vd_blob.len(),
                    expected: vd_len,
                }));
            }
            if vouchers
                .iter()
                .any(|v: &Voucher| v.voucher_id == voucher.voucher_id)
            {
                return Err(NotOpened::Rejected(Rejection::DuplicateVoucher));
            }
            vouchers.push(voucher);
        }
        let epoch = vouchers[0].epoch;
        if vouchers.iter().any(|v| v.epoch != epoch) {
            return Err(NotOpened::Rejected(Rejection::MixedEpochs));
        }
        match self.table.window(crate::publish::now()).check(epoch) {
            EpochVerdict::Open => Ok(vouchers),
            EpochVerdict::Stale { current } | EpochVerdict::Revoked { current } => {
                Err(NotOpened::Stale {
                    current_epoch: current,
                })
            }
        }
    }

    /// Opens every voucher (all P probes each) against `binding`: the opened ones with their
    /// index, or the rejection of an invalid one (audited).
    pub(crate) async fn open_vouchers(
        &self,
        account: &AccountId,
        vouchers: &[Voucher],
        layout: &VoucherLayout,
        binding: &UploadBinding,
    ) -> Result<Result<Vec<(usize, OpenedRecord)>, Rejection>, IntakeError> {
        let mut opened = Vec::new();
        for (index, voucher) in vouchers.iter().enumerate() {
            match self.table.opener().open(voucher, layout, binding) {
                OpenOutcome::NoMatch => {}
                OpenOutcome::Opened(record) => opened.push((index, *record)),
                OpenOutcome::MultipleOpens(_) | OpenOutcome::Invalid => {
                    self.audit("intake", "invalid_voucher", &account.to_string(), "{}")
                        .await?;
                    return Ok(Err(Rejection::InvalidVoucher { index }));
                }
            }
        }
        Ok(Ok(opened))
    }

    /// Holds an item whose vouchers `opened` (a key match under `intervene`). The ciphertext
    /// (when it was received: a two-phase upload never sends it) and the opened vouchers'
    /// visual derivatives are kept (encrypted; the server has no key for them) for the check
    /// the sender may consent to, and served to nobody; the blobs are written before the row
    /// that names them.
    pub(crate) async fn hold(
        &self,
        item: &Announced,
        ciphertext: Option<&[u8]>,
        parts: &[VoucherPart],
        opened: Vec<(usize, OpenedRecord)>,
    ) -> Result<UploadOutcome, IntakeError> {
        let attachment = AttachmentId::new(random_id()?);
        let name = attachment.to_string();
        if let Some(ciphertext) = ciphertext {
            self.blobs
                .put(&BlobName::attachment(&name), ciphertext)
                .await?;
        }
        for (index, record) in &opened {
            self.blobs
                .put(
                    &BlobName::visual_derivative(&name, &hex(&record.voucher_id)),
                    &parts[*index].vd_blob,
                )
                .await?;
        }
        self.store
            .insert_attachment(&AttachmentRecord {
                id: attachment,
                account: item.account,
                sha256: item.sha256,
                length: item.length,
                state: AttachmentState::Held,
                created_at: unix_now(),
            })
            .await?;
        // The opened records go into the account's threshold log, the state every server
        // process shares; a replayed voucher is refused there.
        for (index, record) in &opened {
            match self
                .add_to_log(&item.account, record.clone(), &attachment)
                .await?
            {
                AddOutcome::ReusedVoucherId => {
                    self.store
                        .set_attachment_state(&attachment, AttachmentState::Deleted)
                        .await?;
                    self.blobs.delete(&BlobName::attachment(&name)).await?;
                    for (_, r) in &opened {
                        self.blobs
                            .delete(&BlobName::visual_derivative(&name, &hex(&r.voucher_id)))
                            .await?;
                    }
                    return Ok(UploadOutcome::Rejected(Rejection::ReusedVoucher {
                        index: *index,
                    }));
                }
                AddOutcome::CapReached => {
                    self.store.freeze_shares(&item.account).await?;
                    self.audit(
                        "intake",
                        "share_cap_reached",
                        &item.account.to_string(),
                        "{}",
                    )
                    .await?;
                }
                AddOutcome::Added | AddOutcome::Duplicate | AddOutcome::Conflict => {}
            }
        }
        let case = CaseId::new(random_id()?);
        let detail = serde_json::json!({
            "media": item.media,
            "reason": "a voucher opened: the item's key is in the table (a key match, not yet proof of listed content)",
        });
        self.store
            .insert_case(&CaseRecord {
                id: case,
                account: item.account,
                kind: CaseKind::Held,
                attachment: Some(attachment),
                state: CaseState::Held,
                created_at: unix_now(),
                updated_at: unix_now(),
                detail: detail.to_string(),
            })
            .await?;
        self.audit("intake", "held", &case.to_string(), "{}")
            .await?;
        self.threshold(&item.account).await?;
        Ok(UploadOutcome::Held { case, attachment })
    }

    /// Stores a deliverable ciphertext. G1: nothing of the vouchers is kept; the blob is
    /// written before its row, so a row always names a complete blob.
    async fn store_delivered(
        &self,
        upload: &Upload,
        attachment: AttachmentId,
        sha256: [u8; 32],
    ) -> Result<(), IntakeError> {
        self.blobs
            .put(
                &BlobName::attachment(&attachment.to_string()),
                &upload.ciphertext,
            )
            .await?;
        self.store
            .insert_attachment(&AttachmentRecord {
                id: attachment,
                account: upload.account,
                sha256,
                length: u64::try_from(upload.ciphertext.len()).unwrap_or(u64::MAX),
                state: AttachmentState::Stored,
                created_at: unix_now(),
            })
            .await?;
        Ok(())
    }

    /// Opens the vouchers of an upload accepted under `silent`, always over all P probes:
    /// opened records join the account's log (a share opening twice or a replayed id is
    /// ignored and recorded, R/E5 step 5), and the threshold is tried. The visual derivative of
    /// an opened voucher is kept for review after the threshold; the others are dropped unread.
    pub async fn open_pending(&self, pending: PendingOpen) -> Result<(), IntakeError> {
        let layout = VoucherLayout::pdq(self.table.params());
        let mut any = false;
        for (voucher, vd_blob) in pending.vouchers {
            match self
                .table
                .opener()
                .open(&voucher, &layout, &pending.binding)
            {
                OpenOutcome::NoMatch => {}
                OpenOutcome::Opened(record) => {
                    let name = pending.attachment.to_string();
                    self.blobs
                        .put(
                            &BlobName::visual_derivative(&name, &hex(&record.voucher_id)),
                            &vd_blob,
                        )
                        .await?;
                    match self
                        .add_to_log(&pending.account, *record, &pending.attachment)
                        .await?
                    {
                        AddOutcome::ReusedVoucherId => {
                            let account = pending.account.to_string();
                            self.audit("intake", "reused_voucher_ignored", &account, "{}")
                                .await?;
                        }
                        AddOutcome::CapReached => {
                            self.store.freeze_shares(&pending.account).await?;
                        }
                        AddOutcome::Added | AddOutcome::Duplicate | AddOutcome::Conflict => {
                            any = true;
                        }
                    }
                }
                OpenOutcome::MultipleOpens(_) | OpenOutcome::Invalid => {
                    let account = pending.account.to_string();
                    self.audit("intake", "invalid_voucher_ignored", &account, "{}")
                        .await?;
                }
            }
        }
        if any {
            self.threshold(&pending.account).await?;
        }
        // Opened and recorded: the vouchers are dropped (G1 keeps nothing of them).
        self.blobs
            .delete(&BlobName::pending(&pending.attachment.to_string()))
            .await?;
        Ok(())
    }

    /// Opens what a killed process accepted under `silent` but had not opened yet: the pending
    /// files named by `ids` (hex attachment ids, as [`LocalBlobs::pending`] lists them). A
    /// file whose upload has no row is left alone (see [`RecoveredOpenings::unanswered`]); a
    /// file that cannot be read back is kept and reported. Opening one twice (another process recovering the same
    /// file) is harmless: the voucher ids are in the log already.
    ///
    /// [`LocalBlobs::pending`]: crate::blobs::LocalBlobs::pending
    pub async fn recover_pending(&self, ids: &[String]) -> Result<RecoveredOpenings, IntakeError> {
        let layout = VoucherLayout::pdq(self.table.params());
        let mut report = RecoveredOpenings::default();
        for id in ids {
            let name = BlobName::pending(id);
            let Some(bytes) = self.blobs.get(&name).await? else {
                continue;
            };
            // Only an upload with a row: a two-phase upload's vouchers wait for its bytes (its
            // slot's completion opens them, see `fill_slot`).
            let answered = match id.parse::<AttachmentId>() {
                Ok(attachment) => self.store.attachment(&attachment).await?.is_some(),
                Err(_) => false,
            };
            if !answered {
                // Never answered, or still being written by another process sharing the
                // folder: the hourly sweep deletes it once it is old and still has no row.
                report.unanswered += 1;
                continue;
            }
            match PendingOpen::decode(&bytes, &layout) {
                Ok(pending) => {
                    self.open_pending(pending).await?;
                    report.opened += 1;
                }
                Err(_) => report.unreadable.push(name.as_str().to_string()),
            }
        }
        Ok(report)
    }

    /// Adds `record` to the account's log: reads the log, replays it, and appends at the next
    /// position; if another process appended first, reads again.
    async fn add_to_log(
        &self,
        account: &AccountId,
        record: OpenedRecord,
        attachment: &AttachmentId,
    ) -> Result<AddOutcome, IntakeError> {
        for _ in 0..APPEND_RETRIES {
            let (mut shares, seq, _) = self.shares(account).await?;
            let outcome = shares.add(record.clone());
            if !outcome.is_stored() {
                return Ok(outcome);
            }
            match self
                .store
                .append_opened_record(account, seq, &record.encode(), Some(attachment), unix_now())
                .await?
            {
                Appended::Written => return Ok(outcome),
                Appended::SeqTaken => continue,
            }
        }
        Err(IntakeError::Contended(APPEND_RETRIES))
    }

    /// The account's share store rebuilt from its log, the log's length, and the attachment
    /// each decoded voucher came with (where its derivative is stored).
    async fn shares(&self, account: &AccountId) -> Result<AccountLog, IntakeError> {
        let rows = self.store.opened_records(account).await?;
        let frozen = self.store.shares_frozen(account).await?;
        let params = self.table.params();
        let seq = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        let mut attachments = HashMap::new();
        let records: Vec<OpenedRecord> = rows
            .iter()
            .filter_map(|row: &StoredRecord| {
                let rec = OpenedRecord::decode(&row.bytes, params).ok()?;
                if let Some(a) = row.attachment {
                    attachments.insert(rec.voucher_id, a);
                }
                Some(rec)
            })
            .collect();
        // A row that no longer decodes (the parameters changed with a new table) or a log that
        // no store kept counts for nothing rather than failing every upload of the account.
        let shares = AccountShares::rebuild(params.clone(), records.clone(), frozen)
            .or_else(|_| AccountShares::rebuild(params.clone(), records, false))
            .unwrap_or_else(|_| AccountShares::new(params.clone()));
        Ok((shares, seq, attachments))
    }

    /// At T distinct matches: reconstruct, decrypt, check each item against the plaintext
    /// index, and open one threshold case per account.
    async fn threshold(&self, account: &AccountId) -> Result<(), IntakeError> {
        let (shares, _, attachments) = self.shares(account).await?;
        let ThresholdOutcome::Decrypted { items, invalid, .. } = shares.try_decrypt() else {
            return Ok(());
        };
        if self.store.threshold_case_exists(account).await? {
            return Ok(());
        }
        let mut scratch = Scratch::default();
        let mut survivors = 0usize;
        let mut checked = Vec::with_capacity(items.len());
        for item in &items {
            let thumbnail = match attachments.get(&item.voucher_id) {
                Some(a) => self
                    .blobs
                    .get(&BlobName::visual_derivative(
                        &a.to_string(),
                        &hex(&item.voucher_id),
                    ))
                    .await?
                    .and_then(|blob| open_vd_blob(&item.payload, &blob)),
                None => None,
            };
            let result = check_item(
                self.banks.as_deref(),
                &self.orientations(&item.payload),
                thumbnail.as_ref().map(|t| t.as_slice()),
                &mut scratch,
            );
            let allow_listed = self.store.allow_listed(&hex(&item.payload.pdq)).await?;
            let survives = !allow_listed && matches!(result.verdict, Verdict::ToReview { .. });
            survivors += usize::from(survives);
            let mut d = result.detail;
            d["voucher_id"] = hex(&item.voucher_id).into();
            d["pdq"] = hex(&item.payload.pdq).into();
            d["quality"] = item.payload.quality.into();
            d["allow_listed"] = allow_listed.into();
            d["survives"] = survives.into();
            checked.push(d);
        }
        let threshold = usize::from(self.table.params().threshold());
        let detail = serde_json::json!({
            "items": checked,
            "undecryptable": invalid.len(),
            "survivors": survivors,
            "second_hash": format!("{survivors} of {} decrypted items are within the PDQ match distance of a listed entry and pass the second check against that same entry (or it has no second hash on file)", items.len()),
        });
        // G4 and the post-threshold pipeline: only when at least T items survive both checks
        // do people see anything. Otherwise the decrypted matches were chance collisions: a
        // false-positive incident is recorded (counts only, no hash, no picture) and nothing
        // is queued or forwarded.
        if survivors < threshold {
            self.audit(
                "intake",
                "threshold_not_confirmed",
                &account.to_string(),
                &serde_json::json!({
                    "decrypted": items.len(),
                    "survivors": survivors,
                    "undecryptable": invalid.len(),
                })
                .to_string(),
            )
            .await?;
            return Ok(());
        }
        let inserted = self
            .store
            .insert_case(&CaseRecord {
                id: CaseId::new(random_id()?),
                account: *account,
                kind: CaseKind::Threshold,
                attachment: None,
                state: CaseState::Queued,
                created_at: unix_now(),
                updated_at: unix_now(),
                detail: detail.to_string(),
            })
            .await;
        match inserted {
            Ok(()) => {}
            // Another server process opened the account's one threshold case first.
            Err(StoreError::Duplicate { table: "cases", .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.audit("intake", "threshold_reached", &account.to_string(), "{}")
            .await?;
        Ok(())
    }

    /// The item's PDQ in each orientation its voucher probed (the full-distance check compares
    /// each, as each could have opened a key).
    fn orientations(&self, payload: &hashguard_protocol::voucher::Payload) -> Vec<Orientation> {
        payload.orientations(self.table.params())
    }

    /// The ciphertext of a deliverable attachment (stored, or released after a check); `None`
    /// for an unknown, held or deleted one, which look the same to the caller.
    pub async fn download(&self, id: &AttachmentId) -> Result<Option<Vec<u8>>, IntakeError> {
        match self.store.attachment(id).await? {
            Some(a) if matches!(a.state, AttachmentState::Stored | AttachmentState::Released) => {
                Ok(self
                    .blobs
                    .get(&BlobName::attachment(&id.to_string()))
                    .await?)
            }
            _ => Ok(None),
        }
    }

    /// The automatic check of one held item, by its sender's consent (R/E12 step 2).
    pub async fn check(
        &self,
        account: &AccountId,
        case_id: &CaseId,
        reveal: &ConsentReveal,
    ) -> Result<CheckOutcome, CheckError> {
        let case = match self.store.case(case_id).await.map_err(IntakeError::from)? {
            // A threshold case is never the account's to see or check (G3).
            Some(c) if c.account == *account && c.kind == CaseKind::Held => c,
            _ => return Err(CheckError::NoSuchCase),
        };
        let attachment = match (case.kind, case.state, case.attachment) {
            (CaseKind::Held, CaseState::Held, Some(a)) => a,
            (_, state, _) => return Err(CheckError::NotHeld(state_words(state))),
        };
        let params = self.table.params();
        let record = self
            .store
            .opened_records(account)
            .await
            .map_err(IntakeError::from)?
            .into_iter()
            .filter(|row| row.attachment == Some(attachment))
            .filter_map(|row| OpenedRecord::decode(&row.bytes, params).ok())
            .find(|r| r.voucher_id == reveal.voucher_id)
            .ok_or_else(|| CheckError::Keys("no voucher of this item has that id".to_string()))?;
        let vd_name =
            BlobName::visual_derivative(&attachment.to_string(), &hex(&record.voucher_id));
        let vd_blob = self
            .blobs
            .get(&vd_name)
            .await
            .map_err(IntakeError::from)?
            .ok_or_else(|| CheckError::Keys("the item's visual derivative is gone".to_string()))?;
        let item = check_consent(&record, reveal, &vd_blob)
            .map_err(|e| CheckError::Keys(e.to_string()))?;
        let mut scratch = Scratch::default();
        let checked = check_item(
            self.banks.as_deref(),
            &self.orientations(&item.payload),
            Some(&item.thumbnail),
            &mut scratch,
        );
        // A confirmed mistake (two reviewers rejected it; the server-side allow-list, issue
        // 16) is released at once, whatever the distance.
        let allow_listed = self
            .store
            .allow_listed(&hex(&item.payload.pdq))
            .await
            .map_err(IntakeError::from)?;
        let verdict = if allow_listed {
            Verdict::Release
        } else {
            checked.verdict
        };
        let mut detail = checked.detail;
        detail["check"] = match verdict {
            Verdict::Release => "released",
            Verdict::ToReview { .. } => "blocked_for_review",
        }
        .into();
        detail["allow_listed"] = allow_listed.into();
        let outcome = match verdict {
            Verdict::Release => {
                if !self
                    .store
                    .set_case_state(
                        case_id,
                        CaseState::Held,
                        CaseState::CheckReleased,
                        Some(&detail.to_string()),
                        unix_now(),
                    )
                    .await
                    .map_err(IntakeError::from)?
                {
                    return Err(CheckError::NotHeld("being checked"));
                }
                self.store
                    .set_attachment_state(&attachment, AttachmentState::Released)
                    .await
                    .map_err(IntakeError::from)?;
                // The material of a released item is deleted after the check.
                self.blobs
                    .delete(&vd_name)
                    .await
                    .map_err(IntakeError::from)?;
                let campaign = self
                    .watch_for_campaign(case_id, account, item.payload.pdq)
                    .await?
                    .map(|c| c.id);
                CheckOutcome::Released {
                    attachment,
                    campaign,
                }
            }
            Verdict::ToReview { .. } => {
                if !self
                    .store
                    .set_case_state(
                        case_id,
                        CaseState::Held,
                        CaseState::CheckBlocked,
                        Some(&detail.to_string()),
                        unix_now(),
                    )
                    .await
                    .map_err(IntakeError::from)?
                {
                    return Err(CheckError::NotHeld("being checked"));
                }
                // The keys the sender revealed are not kept, so the derivative they opened is
                // kept for the two reviewers (G3: consented for this one item); it is deleted
                // with the case's material.
                self.store
                    .insert_review_material(&ReviewMaterial {
                        case: *case_id,
                        item: 0,
                        pdq: hex(&item.payload.pdq),
                        thumbnail: item.thumbnail.to_vec(),
                    })
                    .await
                    .map_err(IntakeError::from)?;
                CheckOutcome::BlockedForReview
            }
        };
        self.audit(
            "consent_check",
            detail["check"].as_str().unwrap_or("checked"),
            &case_id.to_string(),
            &detail.to_string(),
        )
        .await?;
        Ok(outcome)
    }

    /// Keeps a released item's PDQ hash for the campaign window and flags a campaign when
    /// enough distinct accounts released the same image within it (R/E12 step 6); returns the
    /// campaign when this release flagged a new one. A campaign already flagged for that image
    /// is updated, not flagged again (two server processes flagging one image at the same
    /// moment may each add one).
    async fn watch_for_campaign(
        &self,
        case: &CaseId,
        account: &AccountId,
        pdq: [u8; 32],
    ) -> Result<Option<Campaign>, IntakeError> {
        let now = unix_now();
        let since = now.saturating_sub(self.campaign.window_seconds);
        self.store
            .record_released_check(
                &ReleasedCheck {
                    case: *case,
                    account: *account,
                    pdq,
                    released_at: now,
                },
                since,
            )
            .await?;
        let hash = Hash256::from_be_bytes(&pdq);
        let near =
            |other: &[u8; 32]| hash.distance(&Hash256::from_be_bytes(other)) <= MATCH_DISTANCE;
        let accounts: BTreeSet<AccountId> = self
            .store
            .released_checks_since(since)
            .await?
            .into_iter()
            .filter(|r| near(&r.pdq))
            .map(|r| r.account)
            .collect();
        let count = u32::try_from(accounts.len()).unwrap_or(u32::MAX);
        if count < self.campaign.accounts {
            return Ok(None);
        }
        let known = self
            .store
            .campaigns(CAMPAIGNS_SCANNED)
            .await?
            .into_iter()
            .find(|c| c.last_seen >= since && near(&c.pdq));
        let campaign = match known {
            Some(c) => Campaign {
                accounts: u64::from(count).max(c.accounts),
                last_seen: now,
                ..c
            },
            None => Campaign {
                id: CampaignId::new(random_id()?),
                pdq,
                accounts: u64::from(count),
                first_seen: now,
                last_seen: now,
            },
        };
        self.store.upsert_campaign(&campaign).await?;
        if known.is_none() {
            let detail = serde_json::json!({
                "accounts": count,
                "window_days": self.campaign.retention_days(),
                "why": "automatic checks of this many accounts released one image: someone may be making images that collide with a listed key on purpose",
            });
            self.audit(
                "consent_check",
                "campaign_flagged",
                &campaign.id.to_string(),
                &detail.to_string(),
            )
            .await?;
        }
        Ok(known.is_none().then_some(campaign))
    }

    async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), IntakeError> {
        self.store
            .append_audit(unix_now(), actor, action, subject, detail)
            .await?;
        Ok(())
    }
}

/// A case state in the words the API uses.
pub fn state_words(state: CaseState) -> &'static str {
    match state {
        CaseState::Held => "held",
        CaseState::CheckReleased => "released after the automatic check",
        CaseState::CheckBlocked => "blocked for review after the automatic check",
        CaseState::Queued => "in the review queue",
        CaseState::Closed => "closed",
    }
}

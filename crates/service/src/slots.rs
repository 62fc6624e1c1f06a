//! The two-phase upload (issue 13 item 7), as large messengers do it (Signal's attachment
//! upload forms, TUS): the client first announces an attachment by its vouchers and its
//! ciphertext's SHA-256 and length; the intake opens the vouchers exactly as for the
//! one-request upload, bound to the account and the *announced* SHA-256, and answers held,
//! refused, stale or with an upload slot. The ciphertext's bytes then go to the slot (at once
//! or resumed across requests), and the blob store makes them the attachment only if they have
//! exactly the announced length and SHA-256: so the digest the vouchers were opened against is
//! the digest of the bytes that are stored. A held item never gets a slot, so its ciphertext
//! never reaches the server.
//!
//! Under `silent` the answer must not depend on the opening (R/E5 step 7, PT18): every valid
//! announcement gets a slot, and its vouchers wait in the pending file (as for the one-request
//! upload) until the slot's bytes arrive; they are opened after the answer to the request that
//! completes the slot. An announced item whose bytes never arrive is never delivered, and its
//! vouchers are deleted unopened with the expired slot.
//!
//! What is kept (G1): the slot's row (random ids, the account, the announced SHA-256 and
//! length, times: the attachment row's bookkeeping) until the bytes arrive or the slot expires,
//! and the bytes received so far. Nothing derived from a voucher.

use hashguard_protocol::params::Policy;
use hashguard_protocol::voucher::{UploadBinding, VoucherLayout};
use hashguard_store::{
    AccountId, AttachmentId, AttachmentRecord, AttachmentState, CaseId, SlotId, SlotRecord,
};

use crate::blobs::{BlobName, BlobStore, ChunkSource, SlotName, SlotTarget, SlotWrite};
use crate::intake::{
    random_id, unix_now, Announced, Intake, IntakeError, MediaType, NotOpened, PendingOpen,
    Rejection, UploadOutcome, VoucherPart,
};

pub use crate::blobs::SlotWriteError;

/// An announced attachment: its vouchers and what its ciphertext will be.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The authenticated account.
    pub account: AccountId,
    /// Image or video.
    pub media: MediaType,
    /// SHA-256 of the ciphertext the slot will take.
    pub sha256: [u8; 32],
    /// Its exact length in bytes (at least 1; the caller enforces its maximum).
    pub length: u64,
    /// The vouchers.
    pub vouchers: Vec<VoucherPart>,
}

/// What the intake decided about an announcement.
#[derive(Debug)]
pub enum SlotOutcome {
    /// Send the bytes to this slot.
    Slot {
        /// The slot.
        slot: SlotRecord,
    },
    /// A key match under `intervene`: held, exactly as a one-request upload would be; no slot.
    Held {
        /// The case.
        case: CaseId,
        /// The held attachment (its ciphertext was never sent).
        attachment: AttachmentId,
    },
    /// The vouchers were built for another epoch.
    Stale {
        /// The current epoch.
        current_epoch: u32,
    },
    /// Refused (nothing stored).
    Rejected(Rejection),
}

/// Whether a caller may use a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotAccess {
    /// No slot of that id for this account (another account's slot looks the same).
    Missing,
    /// The account's slot, past its expiry (it takes no more bytes; the sweep deletes it).
    Expired,
    /// The account's slot, taking bytes.
    Open(SlotRecord),
}

/// What one write to a slot did.
#[derive(Debug)]
pub enum FillOutcome {
    /// Some bytes are still missing.
    Partial {
        /// Bytes the slot holds now.
        received: u64,
        /// Whether the body broke off before its end.
        interrupted: bool,
    },
    /// All bytes arrived with the announced SHA-256: the attachment is stored and
    /// deliverable, and the slot is gone.
    Delivered {
        /// The attachment.
        attachment: AttachmentId,
        /// Under `silent`: the vouchers announced with it, to open after the answer
        /// ([`Intake::open_pending`]).
        pending: Option<PendingOpen>,
    },
}

/// Why a write to a slot failed.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The bytes were refused (busy, wrong offset, too long, wrong digest).
    #[error(transparent)]
    Refused(#[from] SlotWriteError),
    /// The slot went away while the bytes arrived (it expired and was swept).
    #[error("the upload slot is gone")]
    Gone,
    /// The service failed.
    #[error(transparent)]
    Service(#[from] IntakeError),
}

/// How many expired slots one sweep deletes at most (the next sweep takes the rest).
const SWEEP_BATCH: u32 = 1_000;

impl<B: BlobStore> Intake<B> {
    /// Parses, binds and opens an announced attachment, and answers with a slot unless it is
    /// held, stale or refused. `lifetime` is how long the slot takes bytes (seconds).
    pub async fn announce(
        &self,
        announcement: Announcement,
        lifetime: i64,
    ) -> Result<SlotOutcome, IntakeError> {
        let vouchers = match self.parse_vouchers(announcement.media, &announcement.vouchers) {
            Ok(v) => v,
            Err(NotOpened::Stale { current_epoch }) => {
                return Ok(SlotOutcome::Stale { current_epoch })
            }
            Err(NotOpened::Rejected(r)) => return Ok(SlotOutcome::Rejected(r)),
        };
        let params = self.table.params();
        let layout = VoucherLayout::pdq(params);
        // The binding is the announced digest: the slot later refuses any bytes without it, so
        // a voucher opened here is bound to the ciphertext that is stored, if any is.
        let binding = UploadBinding {
            account_id: *announcement.account.as_bytes(),
            attachment_sha256: announcement.sha256,
        };
        let attachment = AttachmentId::new(random_id()?);
        let now = unix_now();
        let slot = SlotRecord {
            id: SlotId::new(random_id()?),
            account: announcement.account,
            attachment,
            sha256: announcement.sha256,
            length: announcement.length,
            created_at: now,
            expires_at: now.saturating_add(lifetime),
        };
        if params.policy() == Policy::Silent {
            // R/E5 step 7: a slot for every valid announcement, before any opening. The
            // vouchers are written first, durably, until the bytes arrive and they are opened
            // (the opened record names the attachment, whose row exists only then).
            self.write_pending(
                announcement.account,
                attachment,
                binding,
                vouchers,
                &announcement.vouchers,
            )
            .await?;
            self.store.insert_slot(&slot).await?;
            return Ok(SlotOutcome::Slot { slot });
        }
        let opened = match self
            .open_vouchers(&announcement.account, &vouchers, &layout, &binding)
            .await?
        {
            Ok(opened) => opened,
            Err(rejection) => return Ok(SlotOutcome::Rejected(rejection)),
        };
        if opened.is_empty() {
            // G1: nothing of the vouchers is kept; the slot row is the attachment's future
            // bookkeeping.
            self.store.insert_slot(&slot).await?;
            return Ok(SlotOutcome::Slot { slot });
        }
        let item = Announced {
            account: announcement.account,
            media: announcement.media,
            sha256: announcement.sha256,
            length: announcement.length,
        };
        Ok(
            match self
                .hold(&item, None, &announcement.vouchers, opened)
                .await?
            {
                UploadOutcome::Held { case, attachment } => SlotOutcome::Held { case, attachment },
                UploadOutcome::Rejected(r) => SlotOutcome::Rejected(r),
                UploadOutcome::Stale { current_epoch } => SlotOutcome::Stale { current_epoch },
                // `hold` answers only held or refused; anything else would be a slot-less
                // delivery, which must never happen, so it is refused.
                UploadOutcome::Delivered { .. } | UploadOutcome::Accepted { .. } => {
                    SlotOutcome::Rejected(Rejection::InvalidVoucher { index: 0 })
                }
            },
        )
    }

    /// A slot for the ciphertext of a two-phase item that was held (so never sent) and then
    /// released by its sender's consented check: the attachment must be the account's and
    /// released; the slot takes exactly the length and SHA-256 its row (and so the opened
    /// voucher's binding) names. An open slot for it is returned again; `None` for anything
    /// else (unknown, another account's, not released), which the caller answers 404.
    pub async fn slot_for_released(
        &self,
        account: &AccountId,
        attachment: &AttachmentId,
        lifetime: i64,
    ) -> Result<Option<SlotRecord>, IntakeError> {
        let row = match self.store.attachment(attachment).await? {
            Some(a) if a.account == *account && a.state == AttachmentState::Released => a,
            _ => return Ok(None),
        };
        let now = unix_now();
        if let Some(existing) = self.store.slot_for_attachment(attachment).await? {
            if existing.expires_at > now {
                return Ok(Some(existing));
            }
            self.store.delete_slot(&existing.id).await?;
            self.blobs
                .slot_discard(&SlotName::new(&existing.id.to_string()))
                .await?;
        }
        let slot = SlotRecord {
            id: SlotId::new(random_id()?),
            account: *account,
            attachment: *attachment,
            sha256: row.sha256,
            length: row.length,
            created_at: now,
            expires_at: now.saturating_add(lifetime),
        };
        match self.store.insert_slot(&slot).await {
            Ok(()) => Ok(Some(slot)),
            // Another request made one first.
            Err(hashguard_store::StoreError::Duplicate { .. }) => {
                Ok(self.store.slot_for_attachment(attachment).await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The slot `id` as `account` may use it.
    pub async fn slot_access(
        &self,
        account: &AccountId,
        id: &SlotId,
    ) -> Result<SlotAccess, IntakeError> {
        Ok(match self.store.slot(id).await? {
            Some(slot) if slot.account == *account => {
                if slot.expires_at <= unix_now() {
                    SlotAccess::Expired
                } else {
                    SlotAccess::Open(slot)
                }
            }
            _ => SlotAccess::Missing,
        })
    }

    /// How many bytes the slot holds (where a resumed upload continues).
    pub async fn slot_received(&self, slot: &SlotRecord) -> Result<u64, IntakeError> {
        Ok(self
            .blobs
            .slot_received(&SlotName::new(&slot.id.to_string()))
            .await?)
    }

    /// Writes `body` into the slot at `offset`. When the slot is then complete with the
    /// announced SHA-256, the attachment is stored: its blob first (durable), then, in one
    /// transaction, its row inserted and the slot's deleted; so a crash leaves either a slot
    /// to resume or a deliverable attachment, never a row without its blob, and no partial or
    /// mismatching bytes ever become an attachment.
    pub async fn fill_slot<C: ChunkSource>(
        &self,
        slot: &SlotRecord,
        offset: u64,
        body: C,
    ) -> Result<FillOutcome, FillError> {
        let name = SlotName::new(&slot.id.to_string());
        let blob = BlobName::attachment(&slot.attachment.to_string());
        let target = SlotTarget {
            length: slot.length,
            sha256: slot.sha256,
            blob: blob.clone(),
        };
        match self.blobs.slot_write(&name, offset, &target, body).await? {
            SlotWrite::Partial {
                received,
                interrupted,
            } => Ok(FillOutcome::Partial {
                received,
                interrupted,
            }),
            SlotWrite::Complete => {
                // A released item's row exists already (see `slot_for_released`): its blob is
                // now in place, and the slot goes.
                if self
                    .store
                    .attachment(&slot.attachment)
                    .await
                    .map_err(IntakeError::from)?
                    .is_some()
                {
                    self.store
                        .delete_slot(&slot.id)
                        .await
                        .map_err(IntakeError::from)?;
                    return Ok(FillOutcome::Delivered {
                        attachment: slot.attachment,
                        pending: None,
                    });
                }
                let record = AttachmentRecord {
                    id: slot.attachment,
                    account: slot.account,
                    sha256: slot.sha256,
                    length: slot.length,
                    state: AttachmentState::Stored,
                    created_at: unix_now(),
                };
                if self
                    .store
                    .complete_slot(&slot.id, &record)
                    .await
                    .map_err(IntakeError::from)?
                {
                    // Under `silent` the announced vouchers wait for this moment. One that
                    // cannot be read back stays in place: the next start reports it.
                    let layout = VoucherLayout::pdq(self.table.params());
                    let pending = self
                        .blobs
                        .get(&BlobName::pending(&slot.attachment.to_string()))
                        .await
                        .map_err(IntakeError::from)?
                        .and_then(|bytes| PendingOpen::decode(&bytes, &layout).ok());
                    Ok(FillOutcome::Delivered {
                        attachment: slot.attachment,
                        pending,
                    })
                } else {
                    // Swept while the bytes arrived: the blob names no row, so it goes too.
                    self.blobs.delete(&blob).await.map_err(IntakeError::from)?;
                    Err(FillError::Gone)
                }
            }
        }
    }

    /// Deletes expired slots (their rows and whatever bytes they hold), at most a batch per
    /// call, and the slot files among `orphans` (ids of files old enough that no write is in
    /// flight, see [`LocalBlobs::slot_files`]) whose slot has no row; returns how many slots
    /// and files it deleted.
    ///
    /// [`LocalBlobs::slot_files`]: crate::blobs::LocalBlobs::slot_files
    pub async fn sweep_slots(&self, orphans: &[String]) -> Result<usize, IntakeError> {
        let mut deleted = 0;
        for slot in self.store.expired_slots(unix_now(), SWEEP_BATCH).await? {
            // The row goes first: a write that completes meanwhile finds no slot and deletes
            // its blob (see `fill_slot`), so nothing deliverable is left without a row.
            if self.store.delete_slot(&slot.id).await? {
                deleted += 1;
            }
            self.blobs
                .slot_discard(&SlotName::new(&slot.id.to_string()))
                .await?;
            // Under `silent`, the vouchers of an item that was never sent go unopened.
            self.blobs
                .delete(&BlobName::pending(&slot.attachment.to_string()))
                .await?;
        }
        for id in orphans {
            let Ok(parsed) = id.parse::<SlotId>() else {
                continue;
            };
            if self.store.slot(&parsed).await?.is_none() {
                self.blobs.slot_discard(&SlotName::new(id)).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

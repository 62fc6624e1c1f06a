//! The service's answers as types an app can show.

use std::time::Duration;

use hashguard_protocol::sender::ConsentReveal;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::attachment::AttachmentPointer;

/// What happened to an attachment the app sent.
#[derive(Debug)]
pub enum SendOutcome {
    /// Stored: put the pointer in the end-to-end encrypted message.
    Delivered(AttachmentPointer),
    /// Held for a check: show the intervention, offer the check, keep the upload until the
    /// person decides.
    Held(HeldUpload),
    /// Too many uploads for now: try again after `retry_after`.
    RateLimited {
        /// When the service says to try again.
        retry_after: Option<Duration>,
        /// The service's words.
        message: String,
    },
    /// The service refused the upload as malformed or too large.
    Rejected {
        /// The service's stable error code.
        code: String,
        /// The service's words.
        message: String,
    },
}

/// A person the intervention points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelpResource {
    /// Its name.
    pub name: String,
    /// Where to reach it.
    pub url: String,
    /// Who it is for, in plain words.
    pub description: String,
}

/// The words the service gives when it holds an upload: show all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intervention {
    /// The case (for the check, the appeal and later questions).
    pub case_id: String,
    /// Why, in plain words.
    pub reason: String,
    /// What happens next, in plain words.
    pub what_happens: String,
    /// What the automatic check does, in plain words.
    pub check_offer: String,
    /// When and how to appeal, in plain words.
    pub appeal_how: String,
    /// People to talk to.
    pub help: Vec<HelpResource>,
}

/// A held upload: the intervention, and what the consented check needs (zeroized on drop).
/// An app that lets the person decide later saves it with [`HeldUpload::to_bytes`] in its
/// encrypted storage: the bytes hold the attachment's key and the item's check keys.
#[derive(Debug)]
pub struct HeldUpload {
    /// The words to show.
    pub intervention: Intervention,
    /// The pointer the recipients get if the check releases the file.
    pub(crate) pointer: AttachmentPointer,
    /// One per voucher of the upload: the keys the check reveals for that item.
    pub(crate) reveals: Vec<ConsentReveal>,
    /// The ciphertext of an item sent by two phases (never uploaded while held), for the
    /// upload after a release; in memory only, not in [`HeldUpload::to_bytes`].
    pub(crate) ciphertext: Option<Vec<u8>>,
}

/// The saved form of a [`HeldUpload`].
#[derive(Serialize, Deserialize)]
struct SavedHeld {
    v: u8,
    intervention: Intervention,
    pointer: AttachmentPointer,
    /// Each reveal's 80-byte encoding, hex.
    reveals: Vec<Zeroizing<String>>,
}

impl HeldUpload {
    /// The case.
    pub fn case_id(&self) -> &str {
        &self.intervention.case_id
    }

    /// The held upload as bytes to keep until the person decides (secret: see the type).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let saved = SavedHeld {
            v: 1,
            intervention: self.intervention.clone(),
            pointer: self.pointer.clone(),
            reveals: self
                .reveals
                .iter()
                .map(|r| Zeroizing::new(hex::encode(r.encode().as_ref())))
                .collect(),
        };
        // A struct of strings, numbers and vectors always serializes.
        Zeroizing::new(serde_json::to_vec(&saved).unwrap_or_default())
    }

    /// Restores a held upload saved with [`HeldUpload::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<HeldUpload, crate::SdkError> {
        let corrupt = |what: &str| crate::SdkError::CorruptState(format!("held upload: {what}"));
        let saved: SavedHeld =
            serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()))?;
        if saved.v != 1 {
            return Err(corrupt("saved by another version"));
        }
        let mut reveals = Vec::with_capacity(saved.reveals.len());
        for text in &saved.reveals {
            let raw = Zeroizing::new(hex::decode(text.as_bytes()).map_err(|_| corrupt("keys"))?);
            reveals.push(ConsentReveal::decode(&raw).map_err(|_| corrupt("keys"))?);
        }
        if reveals.is_empty() || reveals.len() > hashguard_protocol::sender::MAX_KEYFRAMES {
            return Err(corrupt("keys"));
        }
        Ok(HeldUpload {
            intervention: saved.intervention,
            pointer: saved.pointer,
            reveals,
            ciphertext: None,
        })
    }
}

/// The automatic check's result.
#[derive(Debug)]
pub enum CheckOutcome {
    /// A chance match: the file is sent now (the service deleted the keys it was given).
    Released(AttachmentPointer),
    /// It stays blocked until a person reviews it.
    BlockedForReview {
        /// The service's words.
        message: String,
    },
}

/// Where a case stands, as its account sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseStatus {
    /// The case.
    pub case_id: String,
    /// `held`, `check_released`, `check_blocked`, `queued` or `closed`.
    pub state: String,
    /// The same in words.
    pub state_words: String,
    /// The appeal, if one was made.
    #[serde(default)]
    pub appeal: Option<AppealStatus>,
}

/// Where an appeal stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppealStatus {
    /// `open`, `upheld` or `overturned`.
    pub state: String,
    /// The same in words.
    pub state_words: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

//! The types of the upload service's state (`hashguard serve`), and the helpers its modules
//! share (`accounts`, `attachments`, `shares`, `cases`, `audit`, `limits`).
//!
//! Privacy (guarantee G1: the server learns nothing about uploads that do not match): these
//! types carry bookkeeping for ciphertexts only (ids, owner, SHA-256 of the ciphertext, length,
//! state, times) and, for vouchers that opened, the opened record's bytes. Nothing else derived
//! from a voucher has a field here, so nothing else can reach the database.

use std::fmt;
use std::str::FromStr;

use crate::error::{busy_or, corrupt, StoreError};
use crate::Store;

/// The error of parsing an id ([`AccountId`], [`DeviceId`], [`AttachmentId`], [`CaseId`]) from
/// text that is not exactly 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseIdError {
    what: &'static str,
}

impl fmt::Display for ParseIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} id is exactly 32 lowercase hex digits (16 bytes)",
            self.what
        )
    }
}

impl std::error::Error for ParseIdError {}

/// The error of parsing a state or kind ([`AttachmentState`], [`CaseKind`], [`CaseState`]) from
/// a text that names none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseStateError {
    what: &'static str,
    found: String,
}

impl fmt::Display for ParseStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a {}: {:?}", self.what, self.found)
    }
}

impl std::error::Error for ParseStateError {}

/// The bytes of `text` if it is exactly `2 * N` lowercase hex digits. Lowercase only: the
/// database compares ids and digests as text, so one value must have one spelling.
pub(crate) fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if text.len() != 2 * N {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(out)
}

/// The bytes of `text`, an even number of lowercase hex digits.
pub(crate) fn hex_vec(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
        .collect()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Defines a 16-byte random id with its text form.
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// Its text form ([`Display`](std::fmt::Display), [`FromStr`]) is 32 lowercase hex
        /// digits, which is also how the database stores it. `Debug` shows the same digits, so
        /// logs stay readable.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// The id made of these 16 bytes (the caller draws them from a CSPRNG).
            pub const fn new(bytes: [u8; 16]) -> $name {
                $name(bytes)
            }

            /// The id's 16 bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(text: &str) -> Result<$name, ParseIdError> {
                hex_array(text)
                    .map($name)
                    .ok_or(ParseIdError { what: $what })
            }
        }
    };
}

random_id!(
    /// An account: the unit that owns devices, attachments, an opened-record log and cases.
    AccountId,
    "account"
);
random_id!(
    /// A device of an account, authenticated by its bearer token.
    DeviceId,
    "device"
);
random_id!(
    /// An uploaded ciphertext.
    AttachmentId,
    "attachment"
);
random_id!(
    /// A review case.
    CaseId,
    "case"
);
random_id!(
    /// A flagged crafted-collision campaign.
    CampaignId,
    "campaign"
);
random_id!(
    /// An upload slot of the two-phase upload.
    SlotId,
    "upload slot"
);

/// Defines a fieldless enum stored as text, with `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    (
        $(#[$doc:meta])* $name:ident, $what:literal,
        { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text the database stores (and [`FromStr`] reads).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ParseStateError;

            fn from_str(text: &str) -> Result<$name, ParseStateError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    // Bounded, so that an error message never carries a whole request body.
                    _ => Err(ParseStateError {
                        what: $what,
                        found: text.chars().take(40).collect(),
                    }),
                }
            }
        }
    };
}

text_enum!(
    /// Where an attachment is in its life.
    AttachmentState, "attachment state",
    {
        /// Stored and downloadable.
        Stored = "stored",
        /// Withheld from download while a case about it is open.
        Held = "held",
        /// Downloadable again after review.
        Released = "released",
        /// Its ciphertext is gone; the row stays as bookkeeping.
        Deleted = "deleted",
    }
);

text_enum!(
    /// Why a case was opened.
    CaseKind, "case kind",
    {
        /// An attachment was held.
        Held = "held",
        /// An account reached the threshold of opened records (at most one per account).
        Threshold = "threshold",
    }
);

text_enum!(
    /// Where an appeal is.
    AppealState, "appeal state",
    {
        /// Waiting for a reviewer who did not decide the case.
        Open = "open",
        /// Decided: the original decision stands.
        Upheld = "upheld",
        /// Decided: the original decision was wrong; the item is released.
        Overturned = "overturned",
    }
);

text_enum!(
    /// Where a case is in review.
    CaseState, "case state",
    {
        /// Opened; nothing decided yet.
        Held = "held",
        /// A check released it.
        CheckReleased = "check_released",
        /// A check blocked it; it waits in the review queue.
        CheckBlocked = "check_blocked",
        /// Waiting in the review queue.
        Queued = "queued",
        /// Reviewed and closed.
        Closed = "closed",
    }
);

/// A device as authentication finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// The account it belongs to.
    pub account: AccountId,
    /// The device.
    pub device: DeviceId,
    /// Whether it was revoked (its token must then be refused).
    pub revoked: bool,
}

/// The bookkeeping of an uploaded ciphertext: never its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttachmentRecord {
    /// The attachment.
    pub id: AttachmentId,
    /// The account that uploaded it.
    pub account: AccountId,
    /// SHA-256 of the ciphertext.
    pub sha256: [u8; 32],
    /// Length of the ciphertext in bytes (at most `i64::MAX`, the database's integer).
    pub length: u64,
    /// Its state.
    pub state: AttachmentState,
    /// When it was stored (Unix seconds).
    pub created_at: i64,
}

/// One entry of an account's opened-record log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoredRecord {
    /// Its place in the log: 0, 1, 2, ...
    pub seq: u64,
    /// The opened record, bit for bit as appended.
    pub bytes: Vec<u8>,
    /// The attachment whose voucher opened it, if the service named one.
    pub attachment: Option<AttachmentId>,
    /// When it was appended (Unix seconds).
    pub created_at: i64,
}

/// What [`Store::append_opened_record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Appended {
    /// The record is in the log at the seq asked for.
    Written,
    /// The log was not at that seq (another writer appended first): nothing was written; reload
    /// the log and retry.
    SeqTaken,
}

/// A review case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseRecord {
    /// The case.
    pub id: CaseId,
    /// The account it is about.
    pub account: AccountId,
    /// Why it was opened.
    pub kind: CaseKind,
    /// The attachment it is about, if any.
    pub attachment: Option<AttachmentId>,
    /// Where it is in review.
    pub state: CaseState,
    /// When it was opened (Unix seconds).
    pub created_at: i64,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
    /// JSON text chosen by the service (kept as given).
    pub detail: String,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditEvent {
    /// Its place in the log: dense from 0.
    pub seq: u64,
    /// When it happened (Unix seconds).
    pub at: i64,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// To what.
    pub subject: String,
    /// More, as the service chose.
    pub detail: String,
}

/// Whether `error` is a unique-key violation (a key another writer took first).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

/// Whether `error` is a foreign-key violation (a row naming an account or attachment that does
/// not exist).
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_foreign_key_violation())
}

/// `value` as the database's integer, or [`StoreError::OutOfRange`].
pub(crate) fn to_db(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what })
}

/// A non-negative integer column, or [`StoreError::Corrupt`] naming `table`.
pub(crate) fn from_db(table: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(table, format!("negative value {value}")))
}

/// A text column parsed as `T` (an id or a state), or [`StoreError::Corrupt`] naming `table`.
pub(crate) fn parse_col<T: FromStr>(table: &'static str, text: &str) -> Result<T, StoreError>
where
    T::Err: fmt::Display,
{
    text.parse().map_err(|e| corrupt(table, e))
}

impl Store {
    /// `error` as [`StoreError::Busy`] when a lock was not had within the busy timeout, else as
    /// [`StoreError::Database`].
    pub(crate) fn write_error(&self, error: sqlx::Error) -> StoreError {
        busy_or(error, self.backend(), self.options.busy_timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_other_spellings() {
        let id = AccountId::new([0xab; 16]);
        let text = id.to_string();
        assert_eq!(text, "ab".repeat(16));
        assert_eq!(text.parse::<AccountId>(), Ok(id));
        assert_eq!(format!("{id:?}"), format!("AccountId({text})"));
        for bad in [
            "AB".repeat(16),
            "ab".repeat(15),
            "ab".repeat(17),
            "g".repeat(32),
        ] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
        // A multi-byte character must not split a hex pair or panic.
        assert!(format!("{}é", "a".repeat(30)).parse::<CaseId>().is_err());
    }

    #[test]
    fn states_round_trip() {
        for s in AttachmentState::ALL {
            assert_eq!(s.as_str().parse::<AttachmentState>(), Ok(*s));
        }
        for s in CaseState::ALL {
            assert_eq!(s.as_str().parse::<CaseState>(), Ok(*s));
        }
        for k in CaseKind::ALL {
            assert_eq!(k.to_string().parse::<CaseKind>(), Ok(*k));
        }
        assert!("Held".parse::<CaseState>().is_err());
    }

    #[test]
    fn hex_vec_reads_only_lowercase_pairs() {
        assert_eq!(hex_vec(""), Some(Vec::new()));
        assert_eq!(hex_vec("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(hex_vec("0"), None);
        assert_eq!(hex_vec("0F"), None);
    }
}

//! Banks: named sets of hashes from one organisation, with their matching policy.

use std::fmt;
use std::str::FromStr;

use crate::iso_codes::ALPHA2;
use crate::signal::SignalType;
use crate::text::{Text, TextError};

/// An ISO 3166-1 alpha-2 country code, validated against the officially assigned codes
/// (uppercase; parsing accepts lowercase and normalises it).
///
/// ```
/// use hashguard_hashlist::Jurisdiction;
/// let j: Jurisdiction = "gb".parse()?;
/// assert_eq!(j.as_str(), "GB");
/// assert!("UK".parse::<Jurisdiction>().is_err()); // reserved, not assigned
/// # Ok::<(), hashguard_hashlist::BankError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jurisdiction([u8; 2]);

impl Jurisdiction {
    /// The code, uppercase.
    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl FromStr for Jurisdiction {
    type Err = BankError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.to_ascii_uppercase();
        if ALPHA2.binary_search(&upper.as_str()).is_ok() {
            let b = upper.as_bytes();
            Ok(Jurisdiction([b[0], b[1]]))
        } else {
            Err(BankError::Jurisdiction(s.to_string()))
        }
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a bank's matches mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BankKind {
    /// A match is a hit on a known item.
    Block,
    /// A match suppresses hits of the same item: the field's way to remember known false
    /// positives. Allow banks never contribute to the consensus view (and so never reach clients).
    Allow,
}

impl BankKind {
    /// `block` or `allow`.
    pub fn as_str(self) -> &'static str {
        match self {
            BankKind::Block => "block",
            BankKind::Allow => "allow",
        }
    }
}

impl fmt::Display for BankKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BankKind {
    type Err = BankError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(BankKind::Block),
            "allow" => Ok(BankKind::Allow),
            _ => Err(BankError::Kind(s.to_string())),
        }
    }
}

/// A bank name: 1 to 64 characters of ASCII letters, digits, `_`, `-` and `.`, starting with a
/// letter or digit, so it is safe in file names, URLs and command lines.
///
/// ```
/// use hashguard_hashlist::BankName;
/// assert!("standin-ncmec_2026.v1".parse::<BankName>().is_ok());
/// assert!("has space".parse::<BankName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BankName(String);

impl BankName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BankName {
    type Err = BankError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if ok {
            Ok(BankName(s.to_string()))
        } else {
            Err(BankError::Name(s.to_string()))
        }
    }
}

impl fmt::Display for BankName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a bank (or one of its fields) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The name breaks the [`BankName`] rules.
    #[error("bad bank name {0:?}: use 1-64 of A-Z a-z 0-9 _ - . starting with a letter or digit")]
    Name(String),
    /// The jurisdiction is not an assigned ISO 3166-1 alpha-2 code.
    #[error("{0:?} is not an assigned ISO 3166-1 alpha-2 code")]
    Jurisdiction(String),
    /// The kind is not `block` or `allow`.
    #[error("unknown bank kind {0:?} (known: block, allow)")]
    Kind(String),
    /// The organisation is not valid [`Text`].
    #[error("bad organisation: {0}")]
    Organisation(TextError),
    /// The signal type cannot be held by a bank in this version (no longer produced: every
    /// type can).
    #[error("signal type {0} is not supported by this version")]
    UnsupportedSignalType(SignalType),
    /// A threshold above 0 for an exact type, or above 255 for PDQ and vPDQ.
    #[error(
        "threshold {threshold} is not allowed for {signal_type} (exact types: 0; pdq and vpdq: 0..=255)"
    )]
    Threshold {
        /// The bank's signal type.
        signal_type: SignalType,
        /// The refused threshold.
        threshold: u32,
    },
}

/// A bank: a named set of hashes of one signal type from one organisation in one jurisdiction,
/// with its own match threshold, enabled flag and kind.
///
/// Every field is validated on construction and the fields are private, so a `Bank` value is
/// always valid: the threshold fits the signal type, the jurisdiction is an assigned code.
///
/// ```
/// use hashguard_hashlist::{Bank, BankKind, SignalType};
/// let bank = Bank::new(
///     "standin-a".parse()?,
///     "Stand-in Organisation A",
///     "GB".parse()?,
///     SignalType::Pdq,
///     BankKind::Block,
/// )?;
/// assert_eq!(bank.threshold(), 31);
/// assert!(bank.enabled());
/// let strict = bank.with_threshold(16)?;
/// assert_eq!(strict.threshold(), 16);
/// # Ok::<(), hashguard_hashlist::BankError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bank {
    name: BankName,
    organisation: Text,
    jurisdiction: Jurisdiction,
    signal_type: SignalType,
    threshold: u32,
    enabled: bool,
    kind: BankKind,
}

impl Bank {
    /// A bank with the signal type's default threshold, enabled.
    pub fn new(
        name: BankName,
        organisation: &str,
        jurisdiction: Jurisdiction,
        signal_type: SignalType,
        kind: BankKind,
    ) -> Result<Bank, BankError> {
        if !signal_type.is_supported() {
            return Err(BankError::UnsupportedSignalType(signal_type));
        }
        let organisation = Text::new(organisation).map_err(BankError::Organisation)?;
        Ok(Bank {
            name,
            organisation,
            jurisdiction,
            signal_type,
            threshold: signal_type.default_threshold(),
            enabled: true,
            kind,
        })
    }

    /// The same bank with another match threshold: 0 for exact types, 0..=255 for PDQ and vPDQ
    /// (for vPDQ, the distance at which two frames match).
    pub fn with_threshold(mut self, threshold: u32) -> Result<Bank, BankError> {
        let ok = if self.signal_type.is_exact() {
            threshold == 0
        } else {
            threshold <= 255
        };
        if !ok {
            return Err(BankError::Threshold {
                signal_type: self.signal_type,
                threshold,
            });
        }
        self.threshold = threshold;
        Ok(self)
    }

    /// The same bank, enabled or disabled. A disabled bank matches nothing and does not count
    /// toward the consensus view; its entries are kept.
    pub fn with_enabled(mut self, enabled: bool) -> Bank {
        self.enabled = enabled;
        self
    }

    /// The bank's name.
    pub fn name(&self) -> &BankName {
        &self.name
    }
    /// The supplying organisation.
    pub fn organisation(&self) -> &Text {
        &self.organisation
    }
    /// The organisation's jurisdiction.
    pub fn jurisdiction(&self) -> Jurisdiction {
        self.jurisdiction
    }
    /// The signal type of every entry.
    pub fn signal_type(&self) -> SignalType {
        self.signal_type
    }
    /// The match threshold (largest Hamming distance that matches; 0 for exact types; for vPDQ
    /// the largest distance at which two frames match, see [`SignalType::default_threshold`]).
    pub fn threshold(&self) -> u32 {
        self.threshold
    }
    /// Whether the bank is in use.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// Block or allow.
    pub fn kind(&self) -> BankKind {
        self.kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_list_is_sorted_and_complete_enough() {
        assert!(ALPHA2.windows(2).all(|w| w[0] < w[1]));
        for c in ["US", "GB", "DE", "FR", "NL", "AU", "CA", "JP", "BR", "ZA"] {
            assert!(c.parse::<Jurisdiction>().is_ok(), "{c}");
        }
        for c in ["UK", "EU", "XX", "", "G", "GBR", "é"] {
            assert!(c.parse::<Jurisdiction>().is_err(), "{c}");
        }
    }

    #[test]
    fn thresholds_fit_the_type() {
        let b = Bank::new(
            "x".parse().unwrap(),
            "Org",
            "US".parse().unwrap(),
            SignalType::Md5,
            BankKind::Block,
        )
        .unwrap();
        assert_eq!(b.threshold(), 0);
        assert!(b.clone().with_threshold(1).is_err());
        let v = Bank::new(
            "x".parse().unwrap(),
            "Org",
            "US".parse().unwrap(),
            SignalType::Vpdq,
            BankKind::Block,
        )
        .unwrap();
        assert_eq!(v.threshold(), 31);
        assert_eq!(
            v.clone().with_threshold(255).map(|b| b.threshold()),
            Ok(255)
        );
        assert!(v.with_threshold(256).is_err());
        assert!(Bank::new(
            "x".parse().unwrap(),
            " ",
            "US".parse().unwrap(),
            SignalType::Pdq,
            BankKind::Block
        )
        .is_err());
    }
}

//! Signal types and signal values: what a list entry is a hash of, and the hash itself.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use hashguard_pdq::Hash256;

use crate::vpdq::{VpdqError, VpdqSignal};

/// The kind of hash a bank holds, named as the ThreatExchange ecosystem names it.
///
/// ```
/// use hashguard_hashlist::SignalType;
/// let t: SignalType = "pdq".parse()?;
/// assert_eq!(t, SignalType::Pdq);
/// assert_eq!(t.default_threshold(), 31);
/// assert_eq!(SignalType::Md5.default_threshold(), 0);
/// assert_eq!(SignalType::Vpdq.default_threshold(), 31); // per frame
/// # Ok::<(), hashguard_hashlist::UnknownSignalType>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignalType {
    /// PDQ: a 256-bit perceptual image hash, 64 hex digits; matched by Hamming distance.
    Pdq,
    /// MD5 of the file bytes, 32 hex digits; matched by equality.
    Md5,
    /// SHA-256 of the file bytes, 64 hex digits; matched by equality.
    Sha256,
    /// vPDQ: a video as a sequence of PDQ frame hashes ([`VpdqSignal`]); matched frame by frame
    /// at a Hamming distance, then by the share of matching frames (see
    /// [`SignalType::default_threshold`]).
    Vpdq,
}

/// A signal type name that is not one of `pdq`, `md5`, `sha256`, `vpdq`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal type {0:?} (known: pdq, md5, sha256, vpdq)")]
pub struct UnknownSignalType(pub String);

impl SignalType {
    /// Every signal type, in a fixed order.
    pub const ALL: [SignalType; 4] = [
        SignalType::Pdq,
        SignalType::Md5,
        SignalType::Sha256,
        SignalType::Vpdq,
    ];

    /// The ecosystem's name: `pdq`, `md5`, `sha256` or `vpdq`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalType::Pdq => "pdq",
            SignalType::Md5 => "md5",
            SignalType::Sha256 => "sha256",
            SignalType::Vpdq => "vpdq",
        }
    }

    /// Whether values of this type are matched by equality (a threshold of 0).
    pub fn is_exact(self) -> bool {
        matches!(self, SignalType::Md5 | SignalType::Sha256)
    }

    /// Whether this version can hold banks and values of this type: every type since vPDQ banks
    /// came (kept so that callers that check it need not change).
    pub fn is_supported(self) -> bool {
        true
    }

    /// The number of hex digits of a value, for the types whose value is one hex string
    /// (not `vpdq`, whose value is a JSON list of frames).
    pub fn hex_len(self) -> Option<usize> {
        match self {
            SignalType::Pdq | SignalType::Sha256 => Some(64),
            SignalType::Md5 => Some(32),
            SignalType::Vpdq => None,
        }
    }

    /// The default match threshold of a bank: 31 for PDQ (the field's convention), 0 for the
    /// exact types, and 31 for vPDQ, where it is the largest Hamming distance at which two
    /// *frames* match. Whether two videos match is then decided by the share of matching frames:
    /// python-threatexchange's rule, the default, counts only frames of quality >= 50, matches
    /// frames at distance <= 31, and needs >= 80% of the query's (distinct) frames to match
    /// (`hashguard_vpdq::MatchRule` documents it and the C++ reference's variant).
    pub fn default_threshold(self) -> u32 {
        match self {
            SignalType::Pdq | SignalType::Vpdq => hashguard_pdq::MATCH_THRESHOLD,
            SignalType::Md5 | SignalType::Sha256 => 0,
        }
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignalType {
    type Err = UnknownSignalType;

    /// Parses a lowercase ecosystem name. Other spellings are refused, not guessed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SignalType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownSignalType(s.to_string()))
    }
}

/// Why a string is not a value of a given signal type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// The value has the wrong number of characters.
    #[error("wrong length: a {signal_type} value has {expected} hex digits, this has {found} characters")]
    WrongLength {
        /// The signal type the value was read as.
        signal_type: SignalType,
        /// Hex digits expected.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// A character is not a hex digit.
    #[error("bad hex: character {position} ({character:?}) is not a hex digit")]
    BadHex {
        /// 1-based character position within the value.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The signal type is recognised but not supported by this version (no longer produced:
    /// every type is supported).
    #[error("signal type {0} is not supported by this version")]
    Unsupported(SignalType),
    /// Not a vPDQ value (see [`VpdqSignal::parse`]).
    #[error("bad vpdq value: {0}")]
    Vpdq(VpdqError),
}

/// One hash value with its type. The text form is lowercase hex (64 digits for PDQ and SHA-256,
/// 32 for MD5); parsing accepts either case, so `AB..` and `ab..` are the same value. A vPDQ
/// value is a whole video, whose text form is python-threatexchange's JSON `signal_str` (see
/// [`VpdqSignal`]); it is cheap to clone (its frames are shared).
///
/// ```
/// use hashguard_hashlist::{Signal, SignalType};
/// let v = Signal::parse(SignalType::Md5, "D41D8CD98F00B204E9800998ECF8427E")?;
/// assert_eq!(v.to_string(), "d41d8cd98f00b204e9800998ecf8427e");
/// assert_eq!(v.signal_type(), SignalType::Md5);
/// # Ok::<(), hashguard_hashlist::ValueError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Signal {
    /// A PDQ hash.
    Pdq(Hash256),
    /// An MD5 digest.
    Md5([u8; 16]),
    /// A SHA-256 digest.
    Sha256([u8; 32]),
    /// A vPDQ video hash.
    Vpdq(VpdqSignal),
}

fn decode_hex<const N: usize>(s: &str, signal_type: SignalType) -> Result<[u8; N], ValueError> {
    let found = s.chars().count();
    if found != 2 * N || s.len() != 2 * N {
        return Err(ValueError::WrongLength {
            signal_type,
            expected: 2 * N,
            found,
        });
    }
    let mut out = [0u8; N];
    for (i, character) in s.chars().enumerate() {
        let nibble = character.to_digit(16).ok_or(ValueError::BadHex {
            position: i + 1,
            character,
        })? as u8;
        out[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
    }
    Ok(out)
}

impl Signal {
    /// Parses a value of the given type: hex, or for `vpdq` a JSON `signal_str`
    /// ([`VpdqSignal::parse`]). Leading or trailing whitespace is an error for hex values
    /// (the format parsers trim fields before they get here).
    pub fn parse(signal_type: SignalType, s: &str) -> Result<Signal, ValueError> {
        match signal_type {
            SignalType::Pdq => {
                let bytes = decode_hex::<32>(s, signal_type)?;
                Ok(Signal::Pdq(Hash256::from_be_bytes(&bytes)))
            }
            SignalType::Md5 => Ok(Signal::Md5(decode_hex::<16>(s, signal_type)?)),
            SignalType::Sha256 => Ok(Signal::Sha256(decode_hex::<32>(s, signal_type)?)),
            SignalType::Vpdq => VpdqSignal::parse(s)
                .map(Signal::Vpdq)
                .map_err(ValueError::Vpdq),
        }
    }

    /// The type of this value.
    pub fn signal_type(&self) -> SignalType {
        match self {
            Signal::Pdq(_) => SignalType::Pdq,
            Signal::Md5(_) => SignalType::Md5,
            Signal::Sha256(_) => SignalType::Sha256,
            Signal::Vpdq(_) => SignalType::Vpdq,
        }
    }

    /// The PDQ hash, if this is one.
    pub fn as_pdq(&self) -> Option<&Hash256> {
        match self {
            Signal::Pdq(h) => Some(h),
            _ => None,
        }
    }

    /// The vPDQ value, if this is one.
    pub fn as_vpdq(&self) -> Option<&VpdqSignal> {
        match self {
            Signal::Vpdq(v) => Some(v),
            _ => None,
        }
    }

    /// The value's bytes: for hex types the bytes its hex form spells, in text order; for
    /// `vpdq` the UTF-8 bytes of its canonical `signal_str`.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Signal::Pdq(h) => h.to_be_bytes().to_vec(),
            Signal::Md5(b) => b.to_vec(),
            Signal::Sha256(b) => b.to_vec(),
            Signal::Vpdq(v) => v.to_string().into_bytes(),
        }
    }
}

impl PartialOrd for Signal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Signal {
    /// Orders by signal type, then by the hex text (so sorted output is sorted text); vPDQ
    /// values by their frames ([`VpdqSignal`]'s order, which needs no serialisation).
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Signal::Vpdq(a), Signal::Vpdq(b)) => a.cmp(b),
            _ => self
                .signal_type()
                .cmp(&other.signal_type())
                .then_with(|| self.to_bytes().cmp(&other.to_bytes())),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Pdq(h) => write!(f, "{h}"),
            Signal::Md5(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            Signal::Sha256(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            Signal::Vpdq(v) => write!(f, "{v}"),
        }
    }
}

/// The lowest PDQ quality the field accepts: hashes of quality under 50 are unreliable and are
/// dropped by convention (here: rejected with a reason, never silently).
pub const MIN_PDQ_QUALITY: u8 = hashguard_pdq::QUALITY_THRESHOLD;

/// A PDQ quality score, 0..=100.
///
/// ```
/// use hashguard_hashlist::Quality;
/// assert_eq!(Quality::new(100).map(|q| q.get()), Ok(100));
/// assert!(Quality::new(101).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quality(u8);

/// A quality outside 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quality {0} is outside 0..=100")]
pub struct QualityOutOfRange(pub u64);

impl Quality {
    /// A quality score; refuses values above 100.
    pub fn new(q: u8) -> Result<Quality, QualityOutOfRange> {
        if q <= 100 {
            Ok(Quality(q))
        } else {
            Err(QualityOutOfRange(q.into()))
        }
    }

    /// The score.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdq_text_round_trip_agrees_with_pdq_crate() {
        let s = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";
        let v = Signal::parse(SignalType::Pdq, s).unwrap();
        let h: Hash256 = s.parse().unwrap();
        assert_eq!(v, Signal::Pdq(h));
        assert_eq!(v.to_string(), s);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            Signal::parse(SignalType::Md5, "abc"),
            Err(ValueError::WrongLength {
                signal_type: SignalType::Md5,
                expected: 32,
                found: 3
            })
        );
        let mut s = "0".repeat(32);
        s.replace_range(4..5, "g");
        assert_eq!(
            Signal::parse(SignalType::Md5, &s),
            Err(ValueError::BadHex {
                position: 5,
                character: 'g'
            })
        );
        // A multi-byte character must not be mistaken for two hex digits.
        let s = format!("{}é", "0".repeat(30));
        assert!(matches!(
            Signal::parse(SignalType::Md5, &s),
            Err(ValueError::WrongLength { .. })
        ));
        assert!(matches!(
            Signal::parse(SignalType::Vpdq, "00"),
            Err(ValueError::Vpdq(crate::vpdq::VpdqError::Json(_)))
        ));
    }
}

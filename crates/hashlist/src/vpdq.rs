//! vPDQ values: one video as the ordered list of its frame features, written the way
//! python-threatexchange writes a VPDQ `signal_str`.
//!
//! # The text form (`signal_str`)
//!
//! python-threatexchange (`extensions/vpdq/vpdq_util.py`, `vpdq_to_json`) serialises a video as
//! a JSON list with one string per hashed frame, `"<pdq hex>,<quality>,<timestamp>"`, in the
//! video's frame order, written by Python's `json.dumps` (items separated by `", "`) with the
//! timestamp formatted by Python's `format(t, ".3")`: three *significant* digits, so `0.0`,
//! `0.0333`, `12.0`, but `1.23e+02` for 123 s (see [`format_timestamp`]):
//!
//! ```text
//! ["e6cf059c...c666,100,0.0", "c0f11178...7d47,100,0.0333"]
//! ```
//!
//! [`VpdqSignal::parse`] reads that text strictly (a JSON list of strings; in each string exactly
//! 64 hex digits, an integer quality in 0..=100 and a finite timestamp >= 0; at least one and at
//! most [`MAX_VPDQ_FRAMES`] frames) and its [`Display`](fmt::Display) writes exactly what
//! `vpdq_to_json` writes for the same frames, so lists round-trip with that tool byte for byte.
//!
//! # What a value holds, and its identity
//!
//! - The text form has **no frame numbers**, so neither has the value: frame `i` of a value is
//!   the `i`-th listed frame (0-based), whatever frame of the video it was hashed from.
//!   [`VpdqSignal::from_features`] renumbers the same way, so hashing a video and parsing its
//!   exported line give equal values.
//! - Timestamps are kept at the text form's precision: a value's timestamp is the one its text
//!   spells (three significant digits). Matching never looks at timestamps.
//! - Hex digits are read in either case and written in lower case, as for PDQ values.
//! - **Identity** (duplicate detection in a list, and what the store keys an entry by) is the
//!   canonical text: two values are equal exactly when their canonical `signal_str`s are equal,
//!   i.e. the same frames (hash, quality, timestamp at the text's precision) in the same order.
//!   The same frames in another order, or a re-encoding of the same video, are other values.
//!
//! # Limits
//!
//! At most [`MAX_VPDQ_FRAMES`] (65,536) frames per value: 18 hours at the field's one hashed frame
//! per second, or 36 minutes of 30 fps video hashed frame by frame. Each value is compared frame
//! by frame with each query, so an unbounded value is a denial of service on the matcher.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use hashguard_pdq::Hash256;
use hashguard_vpdq::Feature;

/// The most frames one vPDQ value may list (see the [module documentation](self)).
pub const MAX_VPDQ_FRAMES: usize = 65_536;

/// Why a string is not a vPDQ value. Frame indexes are 0-based positions in the list (which are
/// also the value's frame numbers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpdqError {
    /// The text is not a JSON list of strings.
    #[error("not a JSON list of strings: {0}")]
    Json(String),
    /// The list is empty.
    #[error("no frames: a vpdq value lists at least one frame")]
    Empty,
    /// More frames than [`MAX_VPDQ_FRAMES`].
    #[error("too many frames: {found} (at most {max})")]
    TooManyFrames {
        /// Frames found.
        found: usize,
        /// The limit.
        max: usize,
    },
    /// A frame string does not have the three fields `hash,quality,timestamp`.
    #[error("frame {index}: expected \"hash,quality,timestamp\", found {found} field(s)")]
    FieldCount {
        /// The frame's position.
        index: usize,
        /// Comma-separated fields found.
        found: usize,
    },
    /// A frame's hash does not have 64 characters.
    #[error("frame {index}: a pdq hash has 64 hex digits, this has {found} characters")]
    WrongLength {
        /// The frame's position.
        index: usize,
        /// Characters found.
        found: usize,
    },
    /// A character of a frame's hash is not a hex digit.
    #[error("frame {index}: bad hex: character {position} ({character:?}) is not a hex digit")]
    BadHex {
        /// The frame's position.
        index: usize,
        /// 1-based character position within the hash.
        position: usize,
        /// The character.
        character: char,
    },
    /// A frame's quality is not an integer in 0..=100.
    #[error("frame {index}: quality {text:?} is not an integer in 0..=100")]
    Quality {
        /// The frame's position.
        index: usize,
        /// The quality as written.
        text: String,
    },
    /// A frame's timestamp is not a finite number >= 0 (or is too large or too small to keep at
    /// the text form's precision).
    #[error("frame {index}: timestamp {text:?} is not a finite number of seconds >= 0")]
    Timestamp {
        /// The frame's position.
        index: usize,
        /// The timestamp as written.
        text: String,
    },
}

/// Python's `format(x, ".3")` for a finite `x` (what python-threatexchange writes for a vPDQ
/// timestamp): `x` rounded to 3 significant digits (round half to even on the exact binary
/// value, as both Python and Rust do); fixed notation with at least one decimal when the decimal
/// exponent is in -4..=1, otherwise scientific notation with trailing zeros of the mantissa
/// removed and a signed exponent of at least two digits.
///
/// ```
/// use hashguard_hashlist::format_timestamp;
/// assert_eq!(format_timestamp(0.0), "0.0");
/// assert_eq!(format_timestamp(1.0 / 30.0), "0.0333");
/// assert_eq!(format_timestamp(12.0), "12.0");
/// assert_eq!(format_timestamp(123.0), "1.23e+02");
/// assert_eq!(format_timestamp(100.0), "1e+02");
/// assert_eq!(format_timestamp(0.00001), "1e-05");
/// ```
pub fn format_timestamp(x: f64) -> String {
    // `{:.2e}` rounds correctly to 3 significant digits: "d.dde<exp>".
    let sci = format!("{:.2e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let body = if (-4..2).contains(&exp) {
        let mut s = if exp >= 0 {
            let (int, frac) = digits.split_at((exp as usize + 1).min(digits.len()));
            format!("{int}.{frac}")
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.push('0');
        }
        s
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let rest = rest.trim_end_matches('0');
        let sign = if exp < 0 { '-' } else { '+' };
        if rest.is_empty() {
            format!("{first}e{sign}{:02}", exp.unsigned_abs())
        } else {
            format!("{first}.{rest}e{sign}{:02}", exp.unsigned_abs())
        }
    };
    if x.is_sign_negative() {
        format!("-{body}")
    } else {
        body
    }
}

/// The timestamp as the text form keeps it: the `f32` that [`format_timestamp`] writes the
/// same way as `t`, or `None` when `t` is negative, not finite, or cannot be kept at that
/// precision in an `f32`.
fn canonical_timestamp(t: f64) -> Option<f32> {
    if !t.is_finite() || t.is_sign_negative() {
        return None;
    }
    let text = format_timestamp(t);
    let kept: f32 = text.parse().ok()?;
    (kept.is_finite() && format_timestamp(f64::from(kept)) == text).then_some(kept)
}

/// One video's vPDQ hash: its frame features in order, validated (see the
/// [module documentation](self) for the text form, identity and limits). Cloning is cheap (the
/// frames are shared).
///
/// ```
/// use hashguard_hashlist::VpdqSignal;
/// let h = "e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666";
/// let text = format!("[\"{h},100,0.0\", \"{h},49,0.0333\"]");
/// let v = VpdqSignal::parse(&text)?;
/// assert_eq!(v.features().len(), 2);
/// assert_eq!(v.features()[1].frame, 1);
/// assert_eq!(v.to_string(), text);
/// assert!(VpdqSignal::parse("[]").is_err());
/// # Ok::<(), hashguard_hashlist::VpdqError>(())
/// ```
#[derive(Debug, Clone)]
pub struct VpdqSignal {
    features: Arc<[Feature]>,
}

fn decode_hash(index: usize, s: &str) -> Result<Hash256, VpdqError> {
    let found = s.chars().count();
    if found != 64 || s.len() != 64 {
        return Err(VpdqError::WrongLength { index, found });
    }
    let mut bytes = [0u8; 32];
    for (i, character) in s.chars().enumerate() {
        let nibble = character.to_digit(16).ok_or(VpdqError::BadHex {
            index,
            position: i + 1,
            character,
        })? as u8;
        bytes[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
    }
    Ok(Hash256::from_be_bytes(&bytes))
}

fn parse_frame(index: usize, s: &str) -> Result<Feature, VpdqError> {
    let fields: Vec<&str> = s.split(',').collect();
    let [hash, quality, timestamp] = fields[..] else {
        return Err(VpdqError::FieldCount {
            index,
            found: fields.len(),
        });
    };
    let hash = decode_hash(index, hash)?;
    let bad_quality = || VpdqError::Quality {
        index,
        text: quality.to_string(),
    };
    // Digits only: no sign, no spaces, no `_` (which Python's int() would take).
    if quality.is_empty() || !quality.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_quality());
    }
    let q = quality
        .parse::<u32>()
        .ok()
        .and_then(|q| u8::try_from(q).ok())
        .filter(|&q| q <= 100)
        .ok_or_else(bad_quality)?;
    let bad_timestamp = || VpdqError::Timestamp {
        index,
        text: timestamp.to_string(),
    };
    let t = timestamp
        .parse::<f64>()
        .ok()
        .and_then(canonical_timestamp)
        .ok_or_else(bad_timestamp)?;
    Ok(Feature {
        frame: index as u64,
        quality: q,
        hash,
        timestamp: t,
    })
}

impl VpdqSignal {
    /// Parses a python-threatexchange VPDQ `signal_str` (see the [module documentation](self)).
    pub fn parse(signal_str: &str) -> Result<VpdqSignal, VpdqError> {
        let frames: Vec<String> =
            serde_json::from_str(signal_str).map_err(|e| VpdqError::Json(e.to_string()))?;
        check_count(frames.len())?;
        let features = frames
            .iter()
            .enumerate()
            .map(|(i, s)| parse_frame(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VpdqSignal {
            features: features.into(),
        })
    }

    /// A value of these frames, in this order. Frame numbers are replaced by positions and
    /// timestamps are rounded to the text form's precision (the text form carries nothing more,
    /// see the [module documentation](self)); a quality over 100, a negative or non-finite
    /// timestamp, no frame or too many frames are refused.
    ///
    /// ```
    /// use hashguard_hashlist::VpdqSignal;
    /// use hashguard_vpdq::Feature;
    /// let f = |frame: u64| Feature { frame, quality: 90, hash: Default::default(), timestamp: frame as f32 / 30.0 };
    /// let v = VpdqSignal::from_features(&[f(0), f(30), f(60)])?;
    /// assert_eq!(v.features()[2].frame, 2);
    /// assert_eq!(v.features()[2].timestamp, 2.0);
    /// assert_eq!(VpdqSignal::parse(&v.to_string())?, v);
    /// # Ok::<(), hashguard_hashlist::VpdqError>(())
    /// ```
    pub fn from_features(features: &[Feature]) -> Result<VpdqSignal, VpdqError> {
        check_count(features.len())?;
        let features = features
            .iter()
            .enumerate()
            .map(|(index, f)| {
                if f.quality > 100 {
                    return Err(VpdqError::Quality {
                        index,
                        text: f.quality.to_string(),
                    });
                }
                let timestamp = canonical_timestamp(f64::from(f.timestamp)).ok_or_else(|| {
                    VpdqError::Timestamp {
                        index,
                        text: f.timestamp.to_string(),
                    }
                })?;
                Ok(Feature {
                    frame: index as u64,
                    quality: f.quality,
                    hash: f.hash,
                    timestamp,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VpdqSignal {
            features: features.into(),
        })
    }

    /// The frames, in order; frame `i` has `frame == i`.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// The frames, shared (for building a matcher without copying them).
    ///
    /// ```
    /// use hashguard_hashlist::{parse_list, SignalType};
    /// use hashguard_vpdq::{MatchRule, VideoBankIndex};
    /// let h = "e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666";
    /// let file = format!("vpdq [\"{h},100,0.0\"]\n");
    /// let list = parse_list(file.as_bytes(), SignalType::Vpdq, None)?;
    /// let videos = list.items().iter().enumerate().filter_map(|(line, item)| {
    ///     Some((line, item.value().as_vpdq()?.shared_features()))
    /// });
    /// let index = VideoBankIndex::build(videos)?;
    /// let query = list.items()[0].value().as_vpdq().map(|v| v.features()).unwrap_or(&[]);
    /// assert_eq!(index.matches(query, MatchRule::ThreatExchange).len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shared_features(&self) -> Arc<[Feature]> {
        Arc::clone(&self.features)
    }

    /// The SHA-256 of the canonical `signal_str`, lowercase hex: the key a store files the
    /// value under (the text itself is too long for a database key) and the id a match names
    /// when the list gave none.
    pub fn sha256_hex(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.to_string().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The number of frames (at least 1).
    pub fn frame_count(&self) -> usize {
        self.features.len()
    }

    /// The frames as compared for identity: hash, quality and timestamp bits (frame numbers are
    /// positions, so they are equal whenever the positions are).
    fn key(f: &Feature) -> ([u8; 32], u8, u32) {
        (f.hash.to_be_bytes(), f.quality, f.timestamp.to_bits())
    }
}

fn check_count(found: usize) -> Result<(), VpdqError> {
    if found == 0 {
        return Err(VpdqError::Empty);
    }
    if found > MAX_VPDQ_FRAMES {
        return Err(VpdqError::TooManyFrames {
            found,
            max: MAX_VPDQ_FRAMES,
        });
    }
    Ok(())
}

impl fmt::Display for VpdqSignal {
    /// The canonical `signal_str`, byte for byte what python-threatexchange's `vpdq_to_json`
    /// writes for these frames.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, x) in self.features.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(
                f,
                "\"{},{},{}\"",
                x.hash,
                x.quality,
                format_timestamp(f64::from(x.timestamp))
            )?;
        }
        f.write_str("]")
    }
}

impl PartialEq for VpdqSignal {
    /// Equal exactly when the canonical texts are equal (timestamps are kept canonical, so
    /// comparing their bits compares their text).
    fn eq(&self, other: &Self) -> bool {
        self.features.len() == other.features.len()
            && self
                .features
                .iter()
                .zip(other.features.iter())
                .all(|(a, b)| Self::key(a) == Self::key(b))
    }
}

impl Eq for VpdqSignal {}

impl Hash for VpdqSignal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.features.len().hash(state);
        for f in self.features.iter() {
            Self::key(f).hash(state);
        }
    }
}

impl PartialOrd for VpdqSignal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VpdqSignal {
    /// Frame by frame (hash in text order, then quality, then timestamp), then the shorter
    /// first: a total order that agrees with equality and needs no serialisation.
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.features.iter().zip(other.features.iter()) {
            let (ha, qa, _) = Self::key(a);
            let (hb, qb, _) = Self::key(b);
            let o = ha
                .cmp(&hb)
                .then(qa.cmp(&qb))
                .then(a.timestamp.total_cmp(&b.timestamp));
            if o != Ordering::Equal {
                return o;
            }
        }
        self.features.len().cmp(&other.features.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666";

    #[test]
    fn typed_errors() {
        let e = |s: &str| VpdqSignal::parse(s).unwrap_err();
        assert!(matches!(e("not json"), VpdqError::Json(_)));
        assert!(matches!(e("[1, 2]"), VpdqError::Json(_)));
        assert!(matches!(e("{}"), VpdqError::Json(_)));
        assert_eq!(e("[]"), VpdqError::Empty);
        assert_eq!(
            e(&format!("[\"{H},100\"]")),
            VpdqError::FieldCount { index: 0, found: 2 }
        );
        assert_eq!(
            e(&format!("[\"{H},100,0.0\", \"{},1,0.0\"]", &H[..63])),
            VpdqError::WrongLength {
                index: 1,
                found: 63
            }
        );
        assert_eq!(
            e(&format!("[\"{}g,1,0.0\"]", &H[..63])),
            VpdqError::BadHex {
                index: 0,
                position: 64,
                character: 'g'
            }
        );
        for q in ["101", "-1", "+5", " 5", "", "5.0", "256", "99999999999"] {
            assert_eq!(
                e(&format!("[\"{H},{q},0.0\"]")),
                VpdqError::Quality {
                    index: 0,
                    text: q.into()
                },
                "{q}"
            );
        }
        for t in ["-1.0", "-0.0", "nan", "inf", "1e39", "", "x", " 1.0"] {
            assert_eq!(
                e(&format!("[\"{H},1,{t}\"]")),
                VpdqError::Timestamp {
                    index: 0,
                    text: t.into()
                },
                "{t}"
            );
        }
        let many = format!(
            "[{}]",
            vec![format!("\"{H},100,0.0\""); MAX_VPDQ_FRAMES + 1].join(",")
        );
        assert_eq!(
            e(&many),
            VpdqError::TooManyFrames {
                found: MAX_VPDQ_FRAMES + 1,
                max: MAX_VPDQ_FRAMES
            }
        );
    }

    #[test]
    fn canonical_text_is_identity() {
        let upper = format!("[\"{},100,0.033333\",\"{H},0,12\"]", H.to_uppercase());
        let v = VpdqSignal::parse(&upper).unwrap();
        let canonical = format!("[\"{H},100,0.0333\", \"{H},0,12.0\"]");
        assert_eq!(v.to_string(), canonical);
        let w = VpdqSignal::parse(&canonical).unwrap();
        assert_eq!(v, w);
        assert_eq!(v.cmp(&w), Ordering::Equal);
        // Reordered frames are another value.
        let r = VpdqSignal::parse(&format!("[\"{H},0,12.0\", \"{H},100,0.0333\"]")).unwrap();
        assert_ne!(v, r);
        assert_ne!(v.cmp(&r), Ordering::Equal);
    }

    #[test]
    fn large_timestamps_use_python_notation() {
        let v = VpdqSignal::parse(&format!("[\"{H},100,123.4\"]")).unwrap();
        assert_eq!(v.to_string(), format!("[\"{H},100,1.23e+02\"]"));
        assert_eq!(v.features()[0].timestamp, 123.0);
    }
}

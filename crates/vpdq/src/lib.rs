//! vPDQ: video hashing and matching, compatible with Meta's reference (`vpdq/cpp`).
//!
//! A video is hashed as the PDQ hashes of sampled frames; two videos match when enough of one's
//! frames have a near neighbour among the other's (pdq.md section 4).
//!
//! # Design
//! - **Decoding as the current reference does**: libav through `ffmpeg-next` (not the `ffmpeg`
//!   program): pdq.md 6 measured the libav path bit-exact on `test-padded-dimensions` (150/150
//!   frames) where piping the 5.1 program's rgb24 output gives 149/150. Frames are converted
//!   with swscale to RGB24 with `SWS_AREA` (the reference's flags since 2023-07), at native size
//!   or NxN, and the decoder is flushed at end of stream so the last frames are not lost.
//! - **Frame numbers and sampling** follow the reference: frames are counted from 0 in decode
//!   output order; with `seconds_per_hash = s`, a frame is hashed iff
//!   `frame % max(1, (int)(s * fps)) == 0` with fps the stream's average frame rate;
//!   `s = 0` hashes every frame; the timestamp is `(float)frame / (float)fps`.
//! - **Streaming with limits**: packets are read and decoded one at a time; frame size and
//!   duration limits are checked from the stream header and again per frame.
//! - **Matching** has both rules the field uses, documented on [`MatchRule`].
//! - **Banks of videos** are matched with [`VideoBankIndex`] (pure, no libav): every distinct
//!   listed frame hash of quality >= 50 goes into one exact Hamming range index
//!   (`hashguard-index`), which finds the listed videos sharing a near frame with the query;
//!   each is then compared exactly with [`match_features`], so the result equals comparing the
//!   query with every listed video (property-tested). See the [`bank`] module.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bank;
#[cfg(feature = "libav")]
mod hasher;
mod matching;

use std::fmt;
use std::str::FromStr;

pub use bank::{
    VideoBankIndex, VideoIndexError, VideoMatch, COMPARED_MATCH_PERCENT, DEFAULT_DISTANCE,
    DEFAULT_QUALITY, QUERY_MATCH_PERCENT,
};
#[cfg(feature = "libav")]
pub use hasher::{
    hash_video_file, hash_video_file_timed, is_video, libavcodec_version, StageTimes, VideoError,
    VideoOptions,
};
pub use matching::{match_features, select_keyframes, MatchResult, MatchRule};

use hashguard_pdq::Hash256;

/// One hashed frame: the reference's `vpdqFeature`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feature {
    /// 0-based frame number in decode order.
    pub frame: u64,
    /// PDQ quality, 0..=100.
    pub quality: u8,
    /// PDQ hash of the frame.
    pub hash: Hash256,
    /// Seconds: `(float)frame / (float)fps`.
    pub timestamp: f32,
}

/// Why a vPDQ line could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad vPDQ line: {0}")]
pub struct ParseFeatureError(String);

impl fmt::Display for Feature {
    /// The reference's line format, `frame,quality,hash,timestamp` with 3 decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{:.3}",
            self.frame, self.quality, self.hash, self.timestamp
        )
    }
}

impl FromStr for Feature {
    type Err = ParseFeatureError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ParseFeatureError(format!("{why}: {line:?}"));
        let mut parts = line.trim().split(',');
        let (Some(frame), Some(quality), Some(hash), Some(timestamp), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("expected frame,quality,hash,timestamp"));
        };
        let quality: u8 = quality.parse().map_err(|_| bad("quality"))?;
        if quality > 100 {
            return Err(bad("quality over 100"));
        }
        let timestamp: f32 = timestamp.parse().map_err(|_| bad("timestamp"))?;
        if !timestamp.is_finite() || timestamp < 0.0 {
            return Err(bad("timestamp"));
        }
        Ok(Feature {
            frame: frame.parse().map_err(|_| bad("frame number"))?,
            quality,
            hash: hash.parse().map_err(|_| bad("hash"))?,
            timestamp,
        })
    }
}

/// Parses a vPDQ hash file (one feature per line; blank lines and `#` comments ignored),
/// reporting the 1-based number of the first bad line.
pub fn parse_features(text: &str) -> Result<Vec<Feature>, (usize, ParseFeatureError)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| l.parse().map_err(|e| (i + 1, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format_round_trips() {
        let line = "1,100,e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666,0.033";
        let f: Feature = line.parse().unwrap();
        assert_eq!(f.frame, 1);
        assert_eq!(f.to_string(), line);
        assert!("1,100,zz,0.0".parse::<Feature>().is_err());
        assert!(
            "1,101,e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666,0.0"
                .parse::<Feature>()
                .is_err()
        );
        assert!("1,100".parse::<Feature>().is_err());
        assert_eq!(parse_features("# c\n\n1,100,e6cf059c4c6696362cc9d66638d9c263716169d98327399993363d9c3d9cc666,0.033\nx").unwrap_err().0, 4);
    }
}

//! The 256-bit PDQ hash value and its text form.

use std::fmt;
use std::str::FromStr;

/// A 256-bit PDQ hash.
///
/// Bit `k` (0..256) is DCT coefficient `(k / 16, k % 16)`: row `k / 16` is vertical frequency
/// `k / 16 + 1`. Internally the bits live in four `u64` words, bit `k` in word `k / 64` at position
/// `k % 64`, which is the reference's `uint16 w[16]` packed little-endian.
///
/// The text form is the reference's: 64 lowercase hex digits, most significant (bit 255) first,
/// which is `%04hx` of `w[15]` down to `w[0]`.
///
/// ```
/// use hashguard_pdq::Hash256;
/// let a: Hash256 = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22".parse()?;
/// let b: Hash256 = "f8f8f0cee0f4a84f06370a2a038f63f0b36e26d596621e1d33e6b39c4e9c9b22".parse()?;
/// assert_eq!(a.distance(&b), 2);
/// assert_eq!(a.to_string(), "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22");
/// # Ok::<(), hashguard_pdq::ParseHashError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Hash256 {
    words: [u64; 4],
}

/// Why a string is not a PDQ hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseHashError {
    /// The string is not exactly 64 characters long.
    #[error("a PDQ hash has 64 hex digits, this has {0} characters")]
    WrongLength(usize),
    /// A character is not a hex digit.
    #[error("character {position} ({character:?}) is not a hex digit")]
    NotHex {
        /// 0-based character position.
        position: usize,
        /// The offending character.
        character: char,
    },
}

impl Hash256 {
    /// The all-zero hash, which the reference gives images smaller than 5 pixels on a side.
    pub const ZERO: Hash256 = Hash256 { words: [0; 4] };

    /// Builds a hash from its four words (word 0 holds bits 0..64).
    pub const fn from_words(words: [u64; 4]) -> Self {
        Hash256 { words }
    }

    /// The four words (word 0 holds bits 0..64); the layout the match index uses.
    pub const fn to_words(&self) -> [u64; 4] {
        self.words
    }

    /// The 32 bytes in big-endian order: the bytes the hex form spells.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, w) in self.words.iter().rev().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_be_bytes());
        }
        out
    }

    /// Builds a hash from 32 big-endian bytes (the inverse of [`Hash256::to_be_bytes`]).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let mut words = [0u64; 4];
        for (i, chunk) in bytes.chunks_exact(8).enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            words[3 - i] = u64::from_be_bytes(b);
        }
        Hash256 { words }
    }

    /// Whether bit `k` (0..256) is set. Panics if `k >= 256`, a programming error.
    pub fn bit(&self, k: usize) -> bool {
        assert!(k < 256, "PDQ bit index {k} out of range");
        (self.words[k / 64] >> (k % 64)) & 1 == 1
    }

    /// Sets bit `k` (0..256) to `value`. Panics if `k >= 256`, a programming error.
    pub fn set_bit(&mut self, k: usize, value: bool) {
        assert!(k < 256, "PDQ bit index {k} out of range");
        let mask = 1u64 << (k % 64);
        if value {
            self.words[k / 64] |= mask;
        } else {
            self.words[k / 64] &= !mask;
        }
    }

    /// Returns this hash with bit `k` inverted.
    pub fn with_bit_flipped(mut self, k: usize) -> Self {
        let v = self.bit(k);
        self.set_bit(k, !v);
        self
    }

    /// Hamming distance: the number of differing bits (0..=256).
    pub fn distance(&self, other: &Hash256) -> u32 {
        self.words
            .iter()
            .zip(other.words.iter())
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// The reference's 16-bit word `i` (0..16), which holds DCT row `i`.
    pub fn word16(&self, i: usize) -> u16 {
        (self.words[i / 4] >> ((i % 4) * 16)) as u16
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in self.words.iter().rev() {
            write!(f, "{w:016x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

impl FromStr for Hash256 {
    type Err = ParseHashError;

    /// Parses 64 hex digits, either case, as the reference's `fromStringOrDie` accepts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let chars = s.chars().count();
        if chars != 64 || s.len() != 64 {
            return Err(ParseHashError::WrongLength(chars));
        }
        let mut words = [0u64; 4];
        for (position, character) in s.chars().enumerate() {
            let nibble = character.to_digit(16).ok_or(ParseHashError::NotHex {
                position,
                character,
            })? as u64;
            // Character 0 is the top nibble of word 3.
            let word = 3 - position / 16;
            let shift = (15 - position % 16) * 4;
            words[word] |= nibble << shift;
        }
        Ok(Hash256 { words })
    }
}

impl serde::Serialize for Hash256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hash256 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hex_word_order_matches_reference() {
        // small.jpg: w[15] = 0x0007 is printed first, w[0] = 0x03ff last.
        let h: Hash256 = "0007001f003f003f007f00ff00ff00ff01ff01ff01ff03ff03ff03ff03ff03ff"
            .parse()
            .unwrap();
        assert_eq!(h.word16(15), 0x0007);
        assert_eq!(h.word16(0), 0x03ff);
        assert!(h.bit(0) && h.bit(9) && !h.bit(10));
        assert!(h.bit(15 * 16) && h.bit(15 * 16 + 2) && !h.bit(15 * 16 + 3));
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert_eq!(
            "abc".parse::<Hash256>(),
            Err(ParseHashError::WrongLength(3))
        );
        let mut s = "0".repeat(63);
        s.push('g');
        assert!(matches!(
            s.parse::<Hash256>(),
            Err(ParseHashError::NotHex { position: 63, .. })
        ));
        // 64 bytes but not 64 characters.
        let s = format!("{}é", "0".repeat(62));
        assert!(s.parse::<Hash256>().is_err());
        assert_eq!("F".repeat(64).parse::<Hash256>().unwrap().count_ones(), 256);
    }

    #[test]
    fn serde_uses_hex() {
        let h = Hash256::from_words([1, 2, 3, 4]);
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{h}\""));
        assert_eq!(serde_json::from_str::<Hash256>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash256>("\"00\"").is_err());
    }

    proptest! {
        #[test]
        fn hex_round_trips(words in any::<[u64; 4]>()) {
            let h = Hash256::from_words(words);
            prop_assert_eq!(h.to_string().parse::<Hash256>().unwrap(), h);
            prop_assert_eq!(Hash256::from_be_bytes(&h.to_be_bytes()), h);
        }

        #[test]
        fn distance_counts_flipped_bits(words in any::<[u64; 4]>(), flips in proptest::collection::btree_set(0usize..256, 0..40)) {
            let h = Hash256::from_words(words);
            let mut g = h;
            for &k in &flips { g = g.with_bit_flipped(k); }
            prop_assert_eq!(h.distance(&g) as usize, flips.len());
        }
    }
}

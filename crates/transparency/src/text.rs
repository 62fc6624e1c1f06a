//! Strict encodings shared by the text formats.
//!
//! Every value has exactly one accepted spelling: a signature over a text must not stay valid
//! when the text is re-encoded (a number with a leading zero, base64 with different padding
//! bits), and two parsers must not disagree on which value a text names.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Decodes standard padded base64 (RFC 4648 section 4), canonical only: the engine rejects
/// missing or extra padding and non-zero trailing bits.
pub(crate) fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

/// Encodes standard padded base64.
pub(crate) fn b64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Parses an ASCII decimal u64 with no sign, no leading zeros (except `0` itself) and no
/// whitespace, as the checkpoint, cosignature and proof formats require.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Whether a signed-note key name is valid: non-empty, no Unicode space, no `+`
/// (c2sp.org/signed-note, "Format"). ASCII control characters below U+0020 can never appear in
/// a note, so they are refused here too, so that a name valid on its own is valid in a note.
pub(crate) fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_canonical() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "18446744073709551616",
            "1_0",
            "١",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base64_is_canonical() {
        assert_eq!(b64_decode("AA=="), Some(vec![0]));
        // Non-zero trailing bits, missing padding, URL alphabet, whitespace.
        for bad in ["AB==", "AA", "AA=", "_w==", "AA==\n", " AA=="] {
            assert_eq!(b64_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn key_names() {
        assert!(is_valid_key_name("example.com/log"));
        assert!(is_valid_key_name("é"));
        for bad in [
            "",
            "a b",
            "a+b",
            "a\u{a0}b",
            "a\u{2003}b",
            "a\tb",
            "a\u{1}b",
        ] {
            assert!(!is_valid_key_name(bad), "{bad:?}");
        }
    }
}

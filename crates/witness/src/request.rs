//! The `add-checkpoint` request body of c2sp.org/tlog-witness, parsed strictly.
//!
//! ```text
//! old <size>\n
//! <base64 hash>\n            (0 to 63 consistency proof lines)
//! \n
//! <checkpoint note>
//! ```

use hashguard_transparency::merkle::Hash;

/// The most consistency proof lines a client may send (spec requirement).
pub const MAX_PROOF_LINES: usize = 63;

/// Why a request body is malformed; answered with 400 and [`MalformedRequest::reason`] as the
/// one-line body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedRequest(pub(crate) String);

impl MalformedRequest {
    /// The one-line reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

fn malformed(reason: impl Into<String>) -> MalformedRequest {
    MalformedRequest(reason.into())
}

/// A parsed `add-checkpoint` body; the checkpoint note is not parsed or verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    /// The size of the latest checkpoint the client believes this witness cosigned.
    pub old_size: u64,
    /// The RFC 6962 consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, as sent.
    pub checkpoint: Vec<u8>,
}

/// Parses an ASCII decimal with no sign, no leading zeros (except `0`) and no spaces.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Splits off the first line (without its newline) and the rest, or `None` if there is no
/// newline.
fn next_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

impl AddCheckpointRequest {
    /// Parses a request body. Every line must end in a newline; the old size is a canonical
    /// decimal; each proof line is canonical base64 of 32 bytes; at most [`MAX_PROOF_LINES`].
    pub fn parse(body: &[u8]) -> Result<Self, MalformedRequest> {
        let (first, mut rest) =
            next_line(body).ok_or_else(|| malformed("the body has no old size line"))?;
        let first =
            std::str::from_utf8(first).map_err(|_| malformed("the old size line is not UTF-8"))?;
        let size = first
            .strip_prefix("old ")
            .ok_or_else(|| malformed("the first line is not `old <size>`"))?;
        let old_size = parse_decimal(size)
            .ok_or_else(|| malformed("the old size is not a canonical decimal"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = next_line(rest)
                .ok_or_else(|| malformed("no empty line between the proof and the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(malformed(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                )));
            }
            let hash = std::str::from_utf8(line)
                .ok()
                .and_then(Hash::from_base64)
                .ok_or_else(|| {
                    malformed(format!(
                        "proof line {} is not base64 of a 32-byte hash",
                        proof.len() + 1
                    ))
                })?;
            proof.push(hash);
        }
        if rest.is_empty() {
            return Err(malformed("the checkpoint is missing"));
        }
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            checkpoint: rest.to_vec(),
        })
    }

    /// The body text of this request (the inverse of [`AddCheckpointRequest::parse`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("old {}\n", self.old_size).into_bytes();
        for h in &self.proof {
            out.extend_from_slice(h.to_base64().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.checkpoint);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=";

    #[test]
    fn parses_the_spec_shape() {
        let body = format!("old 20852014\n{H}\n{H}\n\nexample.com/log\n1\n{H}\n\n— x y\n");
        let r = AddCheckpointRequest::parse(body.as_bytes()).unwrap();
        assert_eq!(r.old_size, 20852014);
        assert_eq!(r.proof.len(), 2);
        assert!(r.checkpoint.starts_with(b"example.com/log\n"));
        assert_eq!(r.to_bytes(), body.as_bytes());
    }

    #[test]
    fn refuses_malformed_bodies() {
        let cases: &[&str] = &[
            "",
            "old 1",
            "new 1\n\ncp\n",
            "old 01\n\ncp\n",
            "old -1\n\ncp\n",
            "old  1\n\ncp\n",
            "old 1 \n\ncp\n",
            "old 1\n",
            "old 1\nnot base64!\n\ncp\n",
            "old 1\nAAAA\n\ncp\n",
            "old 1\n\n",
            "old 99999999999999999999\n\ncp\n",
        ];
        for c in cases {
            assert!(AddCheckpointRequest::parse(c.as_bytes()).is_err(), "{c:?}");
        }
        let mut many = "old 1\n".to_string();
        for _ in 0..64 {
            many.push_str(H);
            many.push('\n');
        }
        many.push_str("\ncp\n");
        let e = AddCheckpointRequest::parse(many.as_bytes()).unwrap_err();
        assert!(e.reason().contains("63"));
        assert!(!e.reason().contains('\n'));
    }
}

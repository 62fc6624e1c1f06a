//! The logs a witness knows: origin and the log's public key(s), from a text file.
//!
//! One log per line, in either form:
//!
//! ```text
//! # comments and blank lines are ignored
//! log <vkey> [<url>]            tlog-policy's log line: the origin is the key's name
//! log <origin> <vkey>           the origin spelled out; it must equal the key's name
//! ```
//!
//! A vkey is a signed-note verifier key `name+hex8+base64(0x01 || key)`. Several lines may name
//! one origin (a key rotation: a checkpoint signed by any of them is accepted). The other
//! tlog-policy lines (`witness`, `group`, `quorum`) are skipped, so a client's policy file can
//! serve as the witness's list too; any other keyword is an error.

use std::collections::BTreeMap;

use hashguard_transparency::note::{Ed25519Verifier, NoteVerifier as _};

/// Why a logs file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("logs file line {line}: {reason}")]
pub struct LogsError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The logs a witness cosigns for: each origin with the keys trusted for it.
#[derive(Debug, Clone, Default)]
pub struct KnownLogs {
    logs: BTreeMap<String, Vec<Ed25519Verifier>>,
}

impl KnownLogs {
    /// No logs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a log key; its origin is the key's name (hashguard-transparency requires the log
    /// key's name to be the checkpoint's origin).
    pub fn add(&mut self, key: Ed25519Verifier) {
        let keys = self.logs.entry(key.name().to_string()).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    /// Parses a logs file (see the module documentation).
    pub fn parse(text: &str) -> Result<Self, LogsError> {
        let mut logs = KnownLogs::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |reason: String| LogsError { line, reason };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            match words.as_slice() {
                ["witness" | "group" | "quorum", ..] => continue,
                ["log", rest @ ..] => {
                    let key = match rest {
                        [vkey] | [vkey, _] if Ed25519Verifier::from_vkey(vkey).is_ok() => {
                            Ed25519Verifier::from_vkey(vkey).map_err(|e| err(e.to_string()))?
                        }
                        [origin, vkey] => {
                            let key = Ed25519Verifier::from_vkey(vkey)
                                .map_err(|e| err(format!("bad vkey: {e}")))?;
                            if key.name() != *origin {
                                return Err(err(format!(
                                    "the origin {origin:?} is not the key's name {:?}",
                                    key.name()
                                )));
                            }
                            key
                        }
                        [bad] | [bad, ..] => {
                            let why = Ed25519Verifier::from_vkey(bad)
                                .err()
                                .map_or_else(String::new, |e| e.to_string());
                            return Err(err(format!(
                                "expected `log <vkey>` or `log <origin> <vkey>` ({why})"
                            )));
                        }
                        [] => return Err(err("`log` without a key".to_string())),
                    };
                    logs.add(key);
                }
                [word, ..] => return Err(err(format!("unknown keyword {word:?}"))),
                [] => continue,
            }
        }
        Ok(logs)
    }

    /// The keys trusted for `origin`, or `None` for an unknown origin.
    pub fn keys(&self, origin: &str) -> Option<&[Ed25519Verifier]> {
        self.logs.get(origin).map(Vec::as_slice)
    }

    /// Every known origin with its keys, in origin order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Ed25519Verifier])> {
        self.logs.iter().map(|(o, k)| (o.as_str(), k.as_slice()))
    }

    /// How many origins are known.
    pub fn len(&self) -> usize {
        self.logs.len()
    }

    /// Whether no origin is known.
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashguard_transparency::note::Ed25519Signer;

    #[test]
    fn both_forms_and_policy_lines() {
        let a = Ed25519Signer::from_seed("example.com/a", &[1; 32])
            .unwrap()
            .verifier();
        let b = Ed25519Signer::from_seed("example.com/b", &[2; 32])
            .unwrap()
            .verifier();
        let text = format!(
            "# logs\n\nlog {} https://example.com/a\nlog example.com/b {}  # b\nwitness w1 x\nquorum w1\n",
            a.to_vkey(),
            b.to_vkey()
        );
        let logs = KnownLogs::parse(&text).unwrap();
        assert_eq!(logs.len(), 2);
        assert_eq!(logs.keys("example.com/a").unwrap(), &[a]);
        assert_eq!(logs.keys("example.com/b").unwrap(), &[b]);
        assert!(logs.keys("example.com/c").is_none());
    }

    #[test]
    fn refuses_bad_lines() {
        let a = Ed25519Signer::from_seed("example.com/a", &[1; 32])
            .unwrap()
            .verifier();
        for bad in [
            "log".to_string(),
            "log nonsense".to_string(),
            format!("log example.com/other {}", a.to_vkey()),
            "frobnicate x".to_string(),
        ] {
            let e = KnownLogs::parse(&bad).unwrap_err();
            assert_eq!(e.line, 1, "{bad}");
        }
    }
}

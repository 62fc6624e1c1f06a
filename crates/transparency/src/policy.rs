//! Trust policies (c2sp.org/tlog-policy): which logs and witnesses a client trusts, and the
//! quorum of cosignatures a checkpoint needs.
//!
//! ```text
//! # comments and blank lines are ignored; items are separated by spaces or tabs
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> <k>|all|any <member>...
//! quorum <name>|none
//! ```
//!
//! Keys are vkeys, as the spec says: type 0x01 (Ed25519 note key) for logs, type 0x04
//! (`cosignature/v1`) for witnesses; the log key's name is the log's origin. hashguard's client
//! pins one group per jurisdiction and a quorum over the groups, so that witnesses of one
//! jurisdiction alone cannot make a checkpoint acceptable.
//!
//! Choices where the spec leaves room: the file must be UTF-8 (names are compared as exact
//! strings, which for UTF-8 is the spec's octet comparison); the last line may lack its newline;
//! no public key may appear twice anywhere (log or witness), since a cosigning key must not be a
//! note key either; at most 256 logs, witnesses and groups each (the spec asks for 32).

use crate::checkpoint::{Checkpoint, CheckpointError, LogSignedCheckpoint, SignedCheckpoint};
use crate::cosignature::CosignatureVerifier;
use crate::note::{Ed25519Verifier, NoteError, NoteVerifier as _};
use std::fmt::Write as _;

/// The most logs, witnesses or groups a policy may define.
pub const MAX_ITEMS: usize = 256;

/// The largest policy file parsed.
pub const MAX_POLICY_SIZE: usize = 256 * 1024;

/// Why a policy could not be parsed, or a checkpoint does not satisfy it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A line of the policy file is wrong (1-based line number).
    #[error("policy line {line}: {reason}")]
    Syntax {
        /// The line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The file has no quorum line.
    #[error("the policy has no quorum line")]
    NoQuorum,
    /// The file is too large or not UTF-8.
    #[error("the policy file is too large or not UTF-8")]
    Unreadable,
    /// No log of the policy has the checkpoint's origin as its key name.
    #[error("no log of the policy has origin {0:?}")]
    UnknownLog(String),
    /// The checkpoint is malformed or its log signature does not verify.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A witness of the policy signed the checkpoint, but its cosignature does not verify.
    #[error("the cosignature of witness {0} does not verify")]
    BadCosignature(String),
    /// The valid cosignatures do not meet the quorum.
    #[error("the cosignatures of {signed:?} do not meet the quorum")]
    QuorumNotMet {
        /// The witnesses whose valid cosignature is on the checkpoint.
        signed: Vec<String>,
    },
}

/// A log the policy trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// Its key; the key's name is the log's origin.
    pub key: Ed25519Verifier,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A witness the policy knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Its name in the policy (used by groups and the quorum only).
    pub name: String,
    /// Its cosigning key.
    pub key: CosignatureVerifier,
    /// Where to reach it, if given.
    pub url: Option<String>,
}

/// A member of a group: a witness or an earlier group (indexes into the policy's lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    threshold: usize,
    members: Vec<Member>,
}

/// The quorum rule and the groups it uses: all that is needed to re-evaluate it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    groups: Vec<Group>,
    quorum: Option<Member>,
}

impl Rule {
    /// Whether the witnesses marked in `signed` satisfy the quorum. Groups only refer to
    /// earlier groups, so one pass in order evaluates them all.
    fn satisfied(&self, signed: &[bool]) -> bool {
        let mut group_ok = Vec::with_capacity(self.groups.len());
        let is = |m: &Member, group_ok: &[bool]| match *m {
            Member::Witness(w) => signed.get(w).copied().unwrap_or(false),
            Member::Group(g) => group_ok.get(g).copied().unwrap_or(false),
        };
        for g in &self.groups {
            let n = g.members.iter().filter(|m| is(m, &group_ok)).count();
            group_ok.push(n >= g.threshold);
        }
        match &self.quorum {
            None => true,
            Some(m) => is(m, &group_ok),
        }
    }
}

/// A parsed trust policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    rule: Rule,
}

/// Whether a byte may appear in a policy file: tab, newline, printable ASCII, or non-ASCII.
fn allowed_byte(b: u8) -> bool {
    b == b'\t' || b == b'\n' || (0x20..0x7f).contains(&b) || b >= 0x80
}

impl Policy {
    /// Parses a policy file strictly (see the module documentation for the few choices made).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_SIZE {
            return Err(PolicyError::Unreadable);
        }
        let mut logs: Vec<PolicyLog> = Vec::new();
        let mut witnesses: Vec<PolicyWitness> = Vec::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut quorum: Option<Option<Member>> = None;
        let mut keys: Vec<[u8; 32]> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let err = |reason: String| PolicyError::Syntax { line, reason };
            if let Some(b) = raw.bytes().find(|&b| !allowed_byte(b)) {
                return Err(err(format!("byte 0x{b:02x} is not allowed")));
            }
            let words: Vec<&str> = raw.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let Some((&keyword, args)) = words.split_first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            let lookup = |name: &str| -> Option<Member> {
                if let Some(w) = witnesses.iter().position(|w| w.name == name) {
                    return Some(Member::Witness(w));
                }
                groups
                    .iter()
                    .position(|g| g.name == name)
                    .map(Member::Group)
            };
            let check_new_name = |name: &str| {
                if name == "none" {
                    Err(err("the name none is reserved".into()))
                } else if lookup(name).is_some() {
                    Err(err(format!("{name} is defined twice")))
                } else {
                    Ok(())
                }
            };
            let key_err = |e: NoteError| err(format!("invalid key: {e}"));
            match (keyword, args) {
                ("log", [vkey, url @ ..]) if url.len() <= 1 => {
                    let key = Ed25519Verifier::from_vkey(vkey).map_err(key_err)?;
                    if keys.contains(&key.public_key()) {
                        return Err(err("duplicate public key".into()));
                    }
                    if logs.len() == MAX_ITEMS {
                        return Err(err("too many logs".into()));
                    }
                    keys.push(key.public_key());
                    logs.push(PolicyLog {
                        key,
                        url: url.first().map(|u| u.to_string()),
                    });
                }
                ("witness", [name, vkey, url @ ..]) if url.len() <= 1 => {
                    check_new_name(name)?;
                    let key = CosignatureVerifier::from_vkey(vkey).map_err(key_err)?;
                    if keys.contains(&key.public_key()) {
                        return Err(err("duplicate public key".into()));
                    }
                    if witnesses.len() == MAX_ITEMS {
                        return Err(err("too many witnesses".into()));
                    }
                    keys.push(key.public_key());
                    witnesses.push(PolicyWitness {
                        name: name.to_string(),
                        key,
                        url: url.first().map(|u| u.to_string()),
                    });
                }
                ("group", [name, k, members @ ..]) if !members.is_empty() => {
                    check_new_name(name)?;
                    let mut resolved = Vec::new();
                    for m in members {
                        let member = lookup(m).ok_or_else(|| err(format!("{m} is not defined")))?;
                        if resolved.contains(&member) {
                            return Err(err(format!("{m} is listed twice")));
                        }
                        resolved.push(member);
                    }
                    let threshold = match *k {
                        "all" => resolved.len(),
                        "any" => 1,
                        k => crate::text::parse_decimal(k)
                            .and_then(|k| usize::try_from(k).ok())
                            .filter(|&k| k >= 1 && k <= resolved.len())
                            .ok_or_else(|| {
                                err(format!("threshold {k} is not 1..={}", resolved.len()))
                            })?,
                    };
                    if groups.len() == MAX_ITEMS {
                        return Err(err("too many groups".into()));
                    }
                    groups.push(Group {
                        name: name.to_string(),
                        threshold,
                        members: resolved,
                    });
                }
                ("quorum", [name]) => {
                    if quorum.is_some() {
                        return Err(err("a second quorum line".into()));
                    }
                    quorum = Some(if *name == "none" {
                        None
                    } else {
                        Some(lookup(name).ok_or_else(|| err(format!("{name} is not defined")))?)
                    });
                }
                (kw, _) => return Err(err(format!("unknown or malformed {kw} line"))),
            }
        }
        let quorum = quorum.ok_or(PolicyError::NoQuorum)?;
        Ok(Policy {
            logs,
            witnesses,
            rule: Rule { groups, quorum },
        })
    }

    /// The policy as text; [`Policy::parse`] gives back an equal policy.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let url = |u: &Option<String>| u.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
        for l in &self.logs {
            let _ = writeln!(s, "log {}{}", l.key.to_vkey(), url(&l.url));
        }
        for w in &self.witnesses {
            let _ = writeln!(s, "witness {} {}{}", w.name, w.key.to_vkey(), url(&w.url));
        }
        let name = |m: &Member| match *m {
            Member::Witness(w) => self.witnesses[w].name.clone(),
            Member::Group(g) => self.rule.groups[g].name.clone(),
        };
        for g in &self.rule.groups {
            let members: Vec<String> = g.members.iter().map(name).collect();
            let _ = writeln!(s, "group {} {} {}", g.name, g.threshold, members.join(" "));
        }
        let q = self.rule.quorum.as_ref().map(name).unwrap_or("none".into());
        let _ = writeln!(s, "quorum {q}");
        s
    }

    /// The logs.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// Verifies a checkpoint note: a log of the policy whose key name is the origin signed it,
    /// and the valid cosignatures of the policy's witnesses meet the quorum.
    ///
    /// Signature lines of unknown keys are ignored. A cosignature line that claims a policy
    /// witness (its name and key ID) but does not verify fails the whole checkpoint, as the
    /// signed-note spec recommends for known keys. Timestamps are reported, not judged: the
    /// caller decides how old a cosignature may be ([`VerifiedCheckpoint::quorum_fresh`]).
    pub fn verify_checkpoint(
        &self,
        signed: &SignedCheckpoint,
    ) -> Result<VerifiedCheckpoint, PolicyError> {
        let checkpoint = signed.unverified_checkpoint();
        let candidates: Vec<&Ed25519Verifier> = self
            .logs
            .iter()
            .map(|l| &l.key)
            .filter(|k| k.name() == checkpoint.origin())
            .collect();
        if candidates.is_empty() {
            return Err(PolicyError::UnknownLog(checkpoint.origin().to_string()));
        }
        let verified_by = signed
            .note()
            .verify(&candidates)
            .map_err(CheckpointError::from)?;
        let log_signed = signed.open(verified_by[0])?;
        let body = checkpoint.to_body();
        let mut cosignatures: Vec<WitnessCosignature> = Vec::new();
        let mut marks = vec![false; self.witnesses.len()];
        for line in signed.note().signatures() {
            let Some(w) = self
                .witnesses
                .iter()
                .position(|w| w.key.name() == line.name() && w.key.key_id() == line.key_id())
            else {
                continue;
            };
            let witness = &self.witnesses[w];
            let timestamp = witness
                .key
                .verify_cosignature(&body, line)
                .map_err(|_| PolicyError::BadCosignature(witness.name.clone()))?;
            if !marks[w] {
                marks[w] = true;
                cosignatures.push(WitnessCosignature {
                    index: w,
                    witness: witness.name.clone(),
                    timestamp,
                });
            }
        }
        if !self.rule.satisfied(&marks) {
            return Err(PolicyError::QuorumNotMet {
                signed: cosignatures.into_iter().map(|c| c.witness).collect(),
            });
        }
        Ok(VerifiedCheckpoint {
            log_signed,
            cosignatures,
            witness_count: self.witnesses.len(),
            rule: self.rule.clone(),
        })
    }

    /// Parses a checkpoint note and verifies it ([`Policy::verify_checkpoint`]).
    pub fn verify_checkpoint_bytes(&self, bytes: &[u8]) -> Result<VerifiedCheckpoint, PolicyError> {
        self.verify_checkpoint(&SignedCheckpoint::parse(bytes)?)
    }
}

/// One valid cosignature of a policy witness on a verified checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCosignature {
    index: usize,
    /// The witness's name in the policy.
    pub witness: String,
    /// When it cosigned (POSIX seconds).
    pub timestamp: u64,
}

/// A checkpoint that satisfied a [`Policy`]: signed by one of its logs and cosigned by a quorum
/// of its witnesses. Only [`Policy::verify_checkpoint`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    log_signed: LogSignedCheckpoint,
    cosignatures: Vec<WitnessCosignature>,
    witness_count: usize,
    rule: Rule,
}

impl VerifiedCheckpoint {
    /// The checkpoint body.
    pub fn checkpoint(&self) -> &Checkpoint {
        self.log_signed.checkpoint()
    }

    /// The log-signed checkpoint (e.g. for a [`crate::follower::Follower`]).
    pub fn log_signed(&self) -> &LogSignedCheckpoint {
        &self.log_signed
    }

    /// The valid cosignatures of policy witnesses, in the note's order, one per witness.
    pub fn cosignatures(&self) -> &[WitnessCosignature] {
        &self.cosignatures
    }

    /// The oldest timestamp among the valid cosignatures, if any.
    pub fn oldest_cosignature(&self) -> Option<u64> {
        self.cosignatures.iter().map(|c| c.timestamp).min()
    }

    /// The newest timestamp among the valid cosignatures, if any (a timestamp in the future
    /// says a witness's clock is wrong; the caller may refuse it).
    pub fn newest_cosignature(&self) -> Option<u64> {
        self.cosignatures.iter().map(|c| c.timestamp).max()
    }

    /// Whether the cosignatures made no earlier than `now - max_age` alone still meet the
    /// quorum: the freshness rule (E10: "no older than 72 h") without letting one stale witness
    /// veto a checkpoint others cosigned recently. Always true under `quorum none`.
    pub fn quorum_fresh(&self, now: u64, max_age: u64) -> bool {
        let since = now.saturating_sub(max_age);
        let mut marks = vec![false; self.witness_count];
        for c in &self.cosignatures {
            if c.timestamp >= since {
                marks[c.index] = true;
            }
        }
        self.rule.satisfied(&marks)
    }

    /// The serialized checkpoint note.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.log_signed.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::CosignatureSigner;
    use crate::merkle::EMPTY_ROOT;
    use crate::note::Ed25519Signer;

    struct Setup {
        log: Ed25519Signer,
        w: Vec<CosignatureSigner>,
    }

    fn setup() -> Setup {
        Setup {
            log: Ed25519Signer::from_seed("example.com/log", &[1; 32]).unwrap(),
            w: (0..4)
                .map(|i| {
                    CosignatureSigner::from_seed(&format!("w{i}.example"), &[10 + i; 32]).unwrap()
                })
                .collect(),
        }
    }

    fn policy(s: &Setup, tail: &str) -> Policy {
        let mut text = format!(
            "# test\n\nlog {} https://log.example/\n",
            s.log.verifier().to_vkey()
        );
        for (i, w) in s.w.iter().enumerate() {
            text.push_str(&format!("  witness\tW{i} {}\n", w.verifier().to_vkey()));
        }
        text.push_str(tail);
        Policy::parse(&text).unwrap()
    }

    fn cosigned(s: &Setup, who: &[(usize, u64)]) -> SignedCheckpoint {
        let mut c = Checkpoint::new("example.com/log", 0, EMPTY_ROOT)
            .unwrap()
            .sign(&s.log)
            .unwrap()
            .open(&s.log.verifier())
            .unwrap();
        for &(i, t) in who {
            c.add_cosignature(&s.w[i], t).unwrap();
        }
        c.signed().clone()
    }

    #[test]
    fn jurisdiction_groups() {
        let s = setup();
        // Two jurisdictions of two witnesses each; both must have one witness.
        let p = policy(
            &s,
            "group DE any W0 W1\ngroup FR any W2 W3\ngroup both all DE FR\nquorum both\n",
        );
        assert_eq!(Policy::parse(&p.to_text()).unwrap(), p);
        let ok = p
            .verify_checkpoint(&cosigned(&s, &[(0, 100), (3, 200)]))
            .unwrap();
        assert_eq!(ok.oldest_cosignature(), Some(100));
        assert_eq!(ok.newest_cosignature(), Some(200));
        assert_eq!(ok.cosignatures().len(), 2);
        assert!(ok.quorum_fresh(250, 150));
        // W0's cosignature is too old; W1 is the same jurisdiction and absent.
        assert!(!ok.quorum_fresh(300, 150));
        // One jurisdiction only.
        assert!(matches!(
            p.verify_checkpoint(&cosigned(&s, &[(0, 1), (1, 1)])),
            Err(PolicyError::QuorumNotMet { .. })
        ));
        // A stale witness does not veto fresh ones.
        let ok = p
            .verify_checkpoint(&cosigned(&s, &[(0, 1), (1, 1000), (2, 1000)]))
            .unwrap();
        assert!(ok.quorum_fresh(1000, 10));
    }

    #[test]
    fn thresholds_and_none() {
        let s = setup();
        let p = policy(&s, "group g 3 W0 W1 W2 W3\nquorum g\n");
        assert!(p
            .verify_checkpoint(&cosigned(&s, &[(0, 1), (1, 1)]))
            .is_err());
        assert!(p
            .verify_checkpoint(&cosigned(&s, &[(0, 1), (1, 1), (3, 1)]))
            .is_ok());
        let p = policy(&s, "quorum none\n");
        let v = p.verify_checkpoint(&cosigned(&s, &[])).unwrap();
        assert!(v.quorum_fresh(u64::MAX, 0));
        assert_eq!(v.oldest_cosignature(), None);
        let p = policy(&s, "quorum W2\n");
        assert!(p.verify_checkpoint(&cosigned(&s, &[(2, 5)])).is_ok());
        assert!(p.verify_checkpoint(&cosigned(&s, &[(1, 5)])).is_err());
    }

    #[test]
    fn bad_cosignature_fails_and_unknown_log_fails() {
        let s = setup();
        let p = policy(&s, "quorum W0\n");
        let mut c = cosigned(&s, &[(0, 5)]);
        let line = c.note().signatures()[1].clone();
        let mut sig = line.signature().to_vec();
        sig[0] ^= 1; // the timestamp
        c.add_signature(crate::note::NoteSignature::new(line.name(), line.key_id(), sig).unwrap())
            .unwrap();
        assert_eq!(
            p.verify_checkpoint(&c),
            Err(PolicyError::BadCosignature("W0".into()))
        );
        let other = Ed25519Signer::from_seed("example.com/other", &[1; 32]).unwrap();
        let c = Checkpoint::new("example.com/other", 0, EMPTY_ROOT)
            .unwrap()
            .sign(&other)
            .unwrap();
        assert!(matches!(
            p.verify_checkpoint(&c),
            Err(PolicyError::UnknownLog(_))
        ));
    }

    #[test]
    fn syntax_errors() {
        let s = setup();
        let log = s.log.verifier().to_vkey();
        let w0 = s.w[0].verifier().to_vkey();
        let w1 = s.w[1].verifier().to_vkey();
        let cases = [
            format!("log {log}\n"),                                 // no quorum
            "quorum none\nquorum none\n".to_string(),               // two quorums
            format!("witness a {w0}\nwitness a {w1}\nquorum a\n"),  // name twice
            format!("witness none {w0}\nquorum none\n"),            // reserved
            format!("witness a {w0}\nwitness b {w0}\nquorum a\n"),  // key twice
            format!("log {log}\nlog {log}\nquorum none\n"),         // log twice
            format!("witness a {log}\nquorum a\n"),                 // log key as witness
            format!("log {w0}\nquorum none\n"),                     // witness key as log
            format!("witness a {w0}\ngroup g 2 a\nquorum g\n"),     // k > n
            format!("witness a {w0}\ngroup g 0 a\nquorum g\n"),     // k = 0
            format!("witness a {w0}\ngroup g any a a\nquorum g\n"), // member twice
            format!("witness a {w0}\ngroup g any b\nquorum g\n"),   // undefined
            format!("witness a {w0}\ngroup g any\nquorum g\n"),     // no member
            format!("quorum a\nwitness a {w0}\n"),                  // defined later
            format!("witness a {w0}\ngroup g any a\ngroup g any a\nquorum g\n"),
            format!("witness a {w0} url extra\nquorum a\n"),
            format!("witness a {w0}\r\nquorum a\n"),
            "quorum none\nbogus line\n".to_string(),
            format!("witness a {w0}\ngroup g 01 a\nquorum g\n"),
        ];
        for c in &cases {
            assert!(Policy::parse(c).is_err(), "{c}");
        }
        // The last line may lack its newline; comments may be indented.
        assert!(Policy::parse(&format!("  # c\nwitness a {w0}\nquorum a")).is_ok());
    }
}

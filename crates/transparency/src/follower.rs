//! Following a log honestly, as Go's sumdb client does: remember the last verified checkpoint,
//! move only to a newer one that provably extends it, and keep proof when the log forks.
//!
//! A log that shows two clients two different trees ("split view") must sign two checkpoints
//! that no consistency proof joins. A [`Follower`] refuses to move to such a checkpoint, and
//! when the log's own signatures prove the fork it returns [`ForkEvidence`], which anyone with
//! the log's key can check ([`ForkEvidence::verify`]): a witness receiving it through gossip, an
//! auditor, a journalist.
//!
//! Evidence is only what a third party would accept: two log-signed checkpoints of the same
//! size with different roots, or a consistency proof that leads to the newer checkpoint's root
//! from a different older root than the older checkpoint's. A proof that simply fails (it does
//! not even lead to the newer root) proves nothing about the log, since anyone on the path can
//! garble a proof, so it is [`FollowerError::InvalidProof`]: the update is refused all the same
//! and the client should retry or gossip, but there is no evidence to publish. (When the older
//! size is a power of two, RFC 9162 proofs omit the older root, so a fork at such a size shows
//! as an invalid proof; gossiping checkpoints of equal size still catches it.)

use crate::checkpoint::{CheckpointError, LogSignedCheckpoint, SignedCheckpoint};
use crate::merkle::{self, Hash, MerkleError, MAX_PROOF_LEN};
use crate::note::{Ed25519Verifier, MAX_NOTE_SIZE};

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowerError {
    /// The new checkpoint is from another log (origin or key).
    #[error("the checkpoint is from another log")]
    DifferentLog,
    /// The consistency proof does not verify; nothing is proven either way.
    #[error("the consistency proof does not verify: {0}")]
    InvalidProof(MerkleError),
    /// The log is proven to have forked; here is the evidence.
    #[error("the log forked: two signed checkpoints that no consistency proof joins")]
    Fork(Box<ForkEvidence>),
    /// A persisted or gossiped checkpoint could not be read or opened.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Fork evidence text is malformed, or is not evidence of a fork.
    #[error("not fork evidence: {0}")]
    NotEvidence(&'static str),
}

/// What an accepted update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The new checkpoint extends the last one and is now the last one.
    Advanced {
        /// The previous tree size.
        from: u64,
        /// The new tree size.
        to: u64,
    },
    /// The same tree (size and root) as the last one.
    Unchanged,
    /// An older checkpoint, consistent with the last one, which stays the last one.
    Older,
}

/// Keeps the last verified checkpoint of one log and accepts only consistent successors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    last: LogSignedCheckpoint,
}

impl Follower {
    /// Starts from a checkpoint the caller trusts (first contact, or one pinned in the app).
    pub fn new(trusted: LogSignedCheckpoint) -> Self {
        Follower { last: trusted }
    }

    /// Restores a follower from its persisted [`Follower::last`] bytes, re-verifying them with
    /// the log's key (persisted state is not trusted more than the network).
    pub fn restore(bytes: &[u8], log: &Ed25519Verifier) -> Result<Self, FollowerError> {
        Ok(Follower {
            last: LogSignedCheckpoint::open(bytes, log)?,
        })
    }

    /// The last checkpoint accepted; persist its [`LogSignedCheckpoint::to_bytes`].
    pub fn last(&self) -> &LogSignedCheckpoint {
        &self.last
    }

    /// Offers a newer (or older, or the same) checkpoint of the same log with the consistency
    /// proof between the smaller and the larger tree (empty for equal sizes). The last
    /// checkpoint changes only on [`Update::Advanced`].
    pub fn update(
        &mut self,
        new: &LogSignedCheckpoint,
        proof: &[Hash],
    ) -> Result<Update, FollowerError> {
        let (last, next) = (self.last.checkpoint(), new.checkpoint());
        if last.origin() != next.origin() || self.last.log_key() != new.log_key() {
            return Err(FollowerError::DifferentLog);
        }
        if next.size() == last.size() {
            if next.root_hash() == last.root_hash() {
                return Ok(Update::Unchanged);
            }
            // Same log, same size, two roots: that is evidence by itself.
            return Err(self.evidence(new, &[], MerkleError::Mismatch));
        }
        let (older, newer) = if next.size() > last.size() {
            (last, next)
        } else {
            (next, last)
        };
        match merkle::verify_consistency(
            older.size(),
            newer.size(),
            older.root_hash(),
            newer.root_hash(),
            proof,
        ) {
            Ok(()) if next.size() > last.size() => {
                let from = last.size();
                self.last = new.clone();
                Ok(Update::Advanced {
                    from,
                    to: self.last.checkpoint().size(),
                })
            }
            Ok(()) => Ok(Update::Older),
            Err(e) => Err(self.evidence(new, proof, e)),
        }
    }

    /// The error for a refused update: the fork evidence if the checkpoints and proof make one,
    /// otherwise the proof's own failure.
    fn evidence(
        &self,
        new: &LogSignedCheckpoint,
        proof: &[Hash],
        failure: MerkleError,
    ) -> FollowerError {
        match ForkEvidence::from_checkpoints(&self.last, new, proof) {
            Some(evidence) => FollowerError::Fork(Box::new(evidence)),
            None => FollowerError::InvalidProof(failure),
        }
    }
}

/// Proof that a log signed two checkpoints that cannot both be views of one append-only log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkEvidence {
    older: SignedCheckpoint,
    newer: SignedCheckpoint,
    proof: Vec<Hash>,
}

/// The first line of the evidence text.
const EVIDENCE_HEADER: &str = "hashguard fork evidence v1";

impl ForkEvidence {
    /// Evidence from two checkpoints of one log (in either order) and, for different sizes, the
    /// consistency proof the log served between them; `None` unless it really proves a fork
    /// (see the module documentation).
    pub fn from_checkpoints(
        a: &LogSignedCheckpoint,
        b: &LogSignedCheckpoint,
        proof: &[Hash],
    ) -> Option<Self> {
        if a.log_key() != b.log_key() || a.checkpoint().origin() != b.checkpoint().origin() {
            return None;
        }
        let (older, newer) = if a.checkpoint().size() <= b.checkpoint().size() {
            (a, b)
        } else {
            (b, a)
        };
        let evidence = ForkEvidence {
            older: older.signed().clone(),
            newer: newer.signed().clone(),
            proof: if older.checkpoint().size() == newer.checkpoint().size() {
                Vec::new()
            } else {
                proof.to_vec()
            },
        };
        evidence.proves_fork().then_some(evidence)
    }

    /// Whether the two (already opened or not) checkpoints and the proof show a fork.
    fn proves_fork(&self) -> bool {
        let (o, n) = (
            self.older.unverified_checkpoint(),
            self.newer.unverified_checkpoint(),
        );
        if o.origin() != n.origin() || o.size() > n.size() || self.proof.len() > MAX_PROOF_LEN {
            return false;
        }
        if o.size() == n.size() {
            return o.root_hash() != n.root_hash() && self.proof.is_empty();
        }
        if o.size() == 0 {
            // Every tree extends the empty tree; only a non-empty "empty" root is a lie.
            return *o.root_hash() != merkle::EMPTY_ROOT;
        }
        match merkle::consistency_roots(o.size(), n.size(), o.root_hash(), &self.proof) {
            Some((fr, sr)) => sr == *n.root_hash() && fr != *o.root_hash(),
            None => false,
        }
    }

    /// The checkpoint with the smaller (or equal) tree.
    pub fn older(&self) -> &SignedCheckpoint {
        &self.older
    }

    /// The checkpoint with the larger (or equal) tree.
    pub fn newer(&self) -> &SignedCheckpoint {
        &self.newer
    }

    /// The consistency proof (empty for equal sizes).
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// Checks the evidence for a third party: both checkpoints carry valid signatures of `log`,
    /// and together with the proof they show a fork.
    pub fn verify(&self, log: &Ed25519Verifier) -> Result<(), FollowerError> {
        self.older.open(log)?;
        self.newer.open(log)?;
        if !self.proves_fork() {
            return Err(FollowerError::NotEvidence("the checkpoints are consistent"));
        }
        Ok(())
    }

    /// The evidence as text: a header, then each checkpoint note and the proof, every line of
    /// them indented by a tab (notes hold blank lines, so indentation delimits them).
    ///
    /// ```text
    /// hashguard fork evidence v1
    /// older
    /// <TAB><older checkpoint note line>...
    /// newer
    /// <TAB><newer checkpoint note line>...
    /// proof
    /// <TAB><base64 hash>...
    /// ```
    pub fn to_text(&self) -> String {
        let indent = |bytes: Vec<u8>| -> String {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| format!("\t{l}\n"))
                .collect()
        };
        let mut s = format!("{EVIDENCE_HEADER}\nolder\n");
        s.push_str(&indent(self.older.to_bytes()));
        s.push_str("newer\n");
        s.push_str(&indent(self.newer.to_bytes()));
        s.push_str("proof\n");
        for h in &self.proof {
            s.push_str(&format!("\t{h}\n"));
        }
        s
    }

    /// Parses [`ForkEvidence::to_text`] output strictly; checks that it shows a fork, but not
    /// whose signatures are on it (call [`ForkEvidence::verify`]).
    pub fn parse(text: &str) -> Result<Self, FollowerError> {
        let bad = FollowerError::NotEvidence;
        if text.len() > 2 * MAX_NOTE_SIZE + 64 * 1024 {
            return Err(bad("too large"));
        }
        let body = text.strip_suffix('\n').ok_or(bad("no final newline"))?;
        let mut lines = body.split('\n').peekable();
        if lines.next() != Some(EVIDENCE_HEADER) {
            return Err(bad("missing header"));
        }
        let mut section = |name: &str| -> Result<Vec<&str>, FollowerError> {
            if lines.next() != Some(name) {
                return Err(bad("missing section"));
            }
            let mut out = Vec::new();
            while let Some(l) = lines.next_if(|l| l.starts_with('\t')) {
                out.push(&l[1..]);
            }
            Ok(out)
        };
        let note = |ls: Vec<&str>| -> Result<SignedCheckpoint, FollowerError> {
            let mut bytes = ls.join("\n");
            bytes.push('\n');
            Ok(SignedCheckpoint::parse(bytes.as_bytes())?)
        };
        let older = note(section("older")?)?;
        let newer = note(section("newer")?)?;
        let proof = section("proof")?
            .into_iter()
            .map(|l| Hash::from_base64(l).ok_or(bad("invalid proof hash")))
            .collect::<Result<Vec<_>, _>>()?;
        if lines.next().is_some() {
            return Err(bad("trailing lines"));
        }
        let evidence = ForkEvidence {
            older,
            newer,
            proof,
        };
        if !evidence.proves_fork() {
            return Err(bad("the checkpoints are consistent"));
        }
        Ok(evidence)
    }
}

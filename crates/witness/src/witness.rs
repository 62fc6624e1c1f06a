//! The witness: `add-checkpoint` and gossip, without HTTP.

use hashguard_transparency::checkpoint::{CheckpointError, LogSignedCheckpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::{CosignatureSigner, CosignatureVerifier};
use hashguard_transparency::merkle::{self, Hash, EMPTY_ROOT};
use hashguard_transparency::note::NoteError;

use crate::db::{now, Advance, DbError, ForkEvidence, ForkSource, Tree, WitnessDb};
use crate::logs::KnownLogs;
use crate::request::{AddCheckpointRequest, MalformedRequest};

/// Why the witness refused a request; each maps to one HTTP status (c2sp.org/tlog-witness for
/// `add-checkpoint`, docs/witness.md for gossip).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The body or the checkpoint note is malformed (400).
    #[error("{0}")]
    Malformed(String),
    /// The old size is larger than the checkpoint's size (400).
    #[error("old size {old} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The checkpoint's origin is not a known log (404).
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    /// No signature of a trusted key for the origin, or one that fails (403).
    #[error("{0}")]
    Forbidden(String),
    /// The old size is not the size of the latest checkpoint cosigned for the log (409, body
    /// the latest size, content type `text/x.tlog.size`).
    #[error("{latest}")]
    StaleOldSize {
        /// The latest cosigned size (0 if none).
        latest: u64,
    },
    /// The log signed another tree of a size this witness cosigned: a split view (409). The
    /// evidence is stored.
    #[error("fork: this witness cosigned root {cosigned} for size {size}, not {other}")]
    Fork {
        /// The tree size.
        size: u64,
        /// The root this witness cosigned.
        cosigned: Hash,
        /// The root of the submitted checkpoint.
        other: Hash,
    },
    /// The consistency proof does not verify (422).
    #[error("the consistency proof from size {old} to {size} does not verify: {reason}")]
    BadProof {
        /// The old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
        /// Why.
        reason: String,
    },
    /// The database failed (500).
    #[error("internal error")]
    Internal(#[source] DbError),
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::StaleOldSize { .. } | Refusal::Fork { .. } => 409,
            Refusal::BadProof { .. } => 422,
            Refusal::Internal(_) => 500,
        }
    }

    /// The response body: one line ending in a newline.
    pub fn body(&self) -> String {
        format!("{self}\n")
    }

    /// The response's content type: `text/x.tlog.size` for a stale old size (spec
    /// requirement), `text/plain; charset=utf-8` otherwise.
    pub fn content_type(&self) -> &'static str {
        match self {
            Refusal::StaleOldSize { .. } => SIZE_CONTENT_TYPE,
            _ => TEXT_CONTENT_TYPE,
        }
    }
}

impl From<MalformedRequest> for Refusal {
    fn from(e: MalformedRequest) -> Self {
        Refusal::Malformed(e.reason().to_string())
    }
}

impl From<DbError> for Refusal {
    fn from(e: DbError) -> Self {
        match e {
            DbError::SizeTooLarge(size) => {
                Refusal::Malformed(format!("tree size {size} is above 2^63 - 1"))
            }
            other => Refusal::Internal(other),
        }
    }
}

/// The content type of a 409's latest size (c2sp.org/tlog-witness).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The content type of the other text answers.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// A successful `add-checkpoint`: the cosignature, already persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The cosigned tree.
    pub tree: Tree,
    /// The cosignature's timestamp (POSIX seconds, never zero).
    pub timestamp: u64,
    /// The response body: the cosignature line(s), each `— <name> <base64>\n`.
    pub lines: String,
}

/// What the witness knows of a gossiped checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipAnswer {
    /// The witness cosigned exactly this tree.
    Consistent(Tree),
    /// The witness never cosigned a tree of this size, so it can say nothing about it;
    /// `latest` is the latest size it cosigned (0 if none).
    Unknown {
        /// The latest cosigned size.
        latest: u64,
    },
}

impl GossipAnswer {
    /// The response body, one line: `consistent <size> <root>` or `unknown <latest size>`.
    pub fn body(&self) -> String {
        match self {
            GossipAnswer::Consistent(t) => format!("consistent {} {}\n", t.size, t.root),
            GossipAnswer::Unknown { latest } => format!("unknown {latest}\n"),
        }
    }
}

/// A witness: its cosigning key, the logs it knows, its database, and optionally the
/// organisation operating it (which adds E11's rule to its statement).
#[derive(Debug)]
pub struct Witness {
    signer: CosignatureSigner,
    logs: KnownLogs,
    db: WitnessDb,
    organisation: Option<String>,
}

/// Maps the verification of a checkpoint note to the spec's codes: a malformed note is 400,
/// any signature problem 403.
fn open_checkpoint(logs: &KnownLogs, note: &[u8]) -> Result<LogSignedCheckpoint, Refusal> {
    let signed = SignedCheckpoint::parse(note)
        .map_err(|e| Refusal::Malformed(format!("bad checkpoint note: {e}")))?;
    let origin = signed.unverified_checkpoint().origin().to_string();
    let keys = logs
        .keys(&origin)
        .ok_or_else(|| Refusal::UnknownOrigin(origin.clone()))?;
    let mut why = String::from("no signature of a trusted key for the origin");
    for key in keys {
        match signed.open(key) {
            Ok(opened) => return Ok(opened),
            Err(CheckpointError::Note(NoteError::BadSignature { name, key_id })) => {
                return Err(Refusal::Forbidden(format!(
                    "the signature of trusted key {name} ({key_id:08x}) does not verify"
                )))
            }
            Err(CheckpointError::Note(NoteError::NoKnownSignature)) => {}
            Err(e) => why = e.to_string(),
        }
    }
    Err(Refusal::Forbidden(why))
}

impl Witness {
    /// A witness cosigning with `signer` for `logs`, keeping its state in `db`.
    pub fn new(signer: CosignatureSigner, logs: KnownLogs, db: WitnessDb) -> Self {
        Witness {
            signer,
            logs,
            db,
            organisation: None,
        }
    }

    /// Names the organisation operating this witness: its statement then includes the
    /// organisation's manifest co-signing rule (protocol.md R/E11).
    pub fn with_organisation(mut self, organisation: &str) -> Self {
        self.organisation = Some(organisation.to_string());
        self
    }

    /// The witness's public key.
    pub fn verifier(&self) -> CosignatureVerifier {
        self.signer.verifier()
    }

    /// The logs it knows.
    pub fn logs(&self) -> &KnownLogs {
        &self.logs
    }

    /// Its database.
    pub fn db(&self) -> &WitnessDb {
        &self.db
    }

    /// Records `note` as fork evidence if the witness cosigned another root for its size.
    /// Returns the cosigned root if so.
    async fn check_fork(
        &self,
        opened: &LogSignedCheckpoint,
        source: ForkSource,
    ) -> Result<Option<Hash>, Refusal> {
        let cp = opened.checkpoint();
        let Some(cosigned) = self.db.cosigned(cp.origin(), cp.size()).await? else {
            return Ok(None);
        };
        if cosigned.tree.root == *cp.root_hash() {
            return Ok(None);
        }
        let evidence = ForkEvidence {
            origin: cp.origin().to_string(),
            size: cp.size(),
            cosigned_root: cosigned.tree.root,
            other_root: *cp.root_hash(),
            note: String::from_utf8_lossy(&opened.to_bytes()).into_owned(),
            source,
            recorded_at: now(),
        };
        if self.db.record_fork(&evidence).await? {
            tracing::warn!(
                origin = cp.origin(),
                size = cp.size(),
                cosigned = %cosigned.tree.root,
                other = %cp.root_hash(),
                source = source.as_str(),
                "fork evidence recorded: the log signed two trees of one size"
            );
        }
        Ok(Some(cosigned.tree.root))
    }

    /// Handles an `add-checkpoint` body exactly as c2sp.org/tlog-witness specifies; on success
    /// the new latest tree is persisted before the cosignature is returned.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<Cosigned, Refusal> {
        let request = AddCheckpointRequest::parse(body)?;
        self.add(&request).await
    }

    /// [`Witness::add_checkpoint`] on a parsed request.
    pub async fn add(&self, request: &AddCheckpointRequest) -> Result<Cosigned, Refusal> {
        // "The witness MUST verify the checkpoint signature against the public key(s) it
        // trusts for the checkpoint origin" (404 unknown origin, 403 no or bad signature).
        let opened = open_checkpoint(&self.logs, &request.checkpoint)?;
        let cp = opened.checkpoint();
        let (origin, size, root) = (cp.origin(), cp.size(), *cp.root_hash());
        // A log-signed checkpoint naming a cosigned size with another root is kept as
        // evidence whatever the rest of the request says.
        let forked = self.check_fork(&opened, ForkSource::AddCheckpoint).await?;
        // "The old size MUST be equal to or lower than the checkpoint size" (400).
        if request.old_size > size {
            return Err(Refusal::OldSizeTooLarge {
                old: request.old_size,
                size,
            });
        }
        // "The witness MUST check that the old size matches the size of the latest checkpoint
        // it cosigned" (409 with the latest size).
        let latest = self.db.latest(origin).await?;
        let latest_size = latest.map_or(0, |t| t.size);
        if request.old_size != latest_size {
            return Err(Refusal::StaleOldSize {
                latest: latest_size,
            });
        }
        // "If the old size matches the checkpoint size, the witness MUST check that the root
        // hashes are also identical" (409).
        if let Some(cosigned) = forked {
            return Err(Refusal::Fork {
                size,
                cosigned,
                other: root,
            });
        }
        // "The consistency proof lines MUST encode a Merkle Consistency Proof from the old size
        // to the checkpoint size" (422; empty when the old size is zero).
        let old_root = latest.map_or(EMPTY_ROOT, |t| t.root);
        merkle::verify_consistency(request.old_size, size, &old_root, &root, &request.proof)
            .map_err(|e| Refusal::BadProof {
                old: request.old_size,
                size,
                reason: e.to_string(),
            })?;
        let tree = Tree { size, root };
        let timestamp = now();
        if size > latest_size {
            // "Checking the old size against the latest checkpoint and persisting the new
            // checkpoint must be performed atomically."
            let note = String::from_utf8_lossy(&request.checkpoint).into_owned();
            match self
                .db
                .advance(origin, latest.as_ref(), &tree, &note, timestamp)
                .await?
            {
                Advance::Advanced => {}
                Advance::Conflict(latest) => return Err(Refusal::StaleOldSize { latest }),
            }
        }
        // Same size and root: the tree is already cosigned; cosigning it again changes nothing.
        let line = self
            .signer
            .cosign(&opened, timestamp)
            .map_err(|e| Refusal::Malformed(e.to_string()))?
            .to_line();
        Ok(Cosigned {
            tree,
            timestamp,
            lines: line,
        })
    }

    /// Handles a gossiped checkpoint note (`POST /gossip`): whether it agrees with what this
    /// witness cosigned for its size. A different root is a split view: the evidence is stored
    /// and [`Refusal::Fork`] returned.
    pub async fn gossip(&self, note: &[u8]) -> Result<GossipAnswer, Refusal> {
        let opened = open_checkpoint(&self.logs, note)?;
        let cp = opened.checkpoint();
        if let Some(cosigned) = self.check_fork(&opened, ForkSource::Gossip).await? {
            return Err(Refusal::Fork {
                size: cp.size(),
                cosigned,
                other: *cp.root_hash(),
            });
        }
        if self.db.cosigned(cp.origin(), cp.size()).await?.is_some() {
            return Ok(GossipAnswer::Consistent(Tree {
                size: cp.size(),
                root: *cp.root_hash(),
            }));
        }
        let latest = self.db.latest(cp.origin()).await?.map_or(0, |t| t.size);
        Ok(GossipAnswer::Unknown { latest })
    }

    /// The witness's published statement (served at `GET /`): who it is, which logs it
    /// witnesses, and the rules it keeps.
    pub fn statement(&self) -> String {
        crate::statement::statement(
            &self.signer.verifier(),
            &self.logs,
            self.organisation.as_deref(),
        )
    }
}

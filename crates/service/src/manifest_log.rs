//! The manifest log on disk (protocol.md 4.3 with R/E10): one [`LogEntry`] per published
//! manifest, laid out exactly as C2SP tlog-tiles serves a log, so the folder can be served as
//! static files by this service, a CDN or any web server, and read by existing tlog tools.
//!
//! ```text
//! log/checkpoint                  the latest checkpoint: log-signed, witness-cosigned
//! log/tile/<L>/<N>[.p/<W>]        hash tiles
//! log/tile/entries/<N>[.p/<W>]    entry bundles (the LogEntry encodings)
//! log/manifests/<sha256 hex>      each manifest's encoding, by the hash its entry names
//! log/vkey                        the log's public key (C2SP vkey), for the service itself
//! ```
//!
//! Tiles are immutable: a file is written once and never changed (a partial tile is a new path
//! when it grows), and the checkpoint is written last, atomically, so a reader never sees a
//! checkpoint whose tiles are missing.

use std::path::{Path, PathBuf};

use hashguard_protocol::acceptance::ManifestBundle;
use hashguard_protocol::signed::{LogEntry, SignedManifest};
use hashguard_transparency::checkpoint::{Checkpoint, LogSignedCheckpoint, SignedCheckpoint};
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::{Ed25519Signer, Ed25519Verifier, NoteSigner as _};
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TilePath};

use crate::{hex, ServiceError};

/// What the log says of a checkpoint a client gossiped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// This log had exactly that tree.
    Consistent {
        /// Its size.
        size: u64,
    },
    /// The log signed a tree it does not contain: a split view. Why, in words.
    Fork(String),
}

/// A manifest log in a folder.
#[derive(Debug, Clone)]
pub struct ManifestLog {
    dir: PathBuf,
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> ServiceError {
    ServiceError::BadFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers see the old or
/// the new content, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(ServiceError::io("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(ServiceError::io("cannot write", path))
}

impl ManifestLog {
    /// The log in `dir` (created on the first append).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ManifestLog { dir: dir.into() }
    }
    /// The log of the table in `table` (its `log` folder).
    pub fn of_table(table: &crate::publish::TableDir) -> Self {
        ManifestLog::new(table.path().join("log"))
    }
    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// The checkpoint file.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    /// A tile's file.
    pub fn tile_path(&self, tile: &TilePath) -> PathBuf {
        self.dir.join(tile.to_string())
    }
    /// A manifest's file, by its hash.
    pub fn manifest_path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join("manifests").join(hex(hash))
    }

    /// The file holding the log's public key.
    pub fn vkey_path(&self) -> PathBuf {
        self.dir.join("vkey")
    }

    /// The log's public key as the first append recorded it (`None` before it).
    pub fn log_key(&self) -> Result<Option<Ed25519Verifier>, ServiceError> {
        let path = self.vkey_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => Ed25519Verifier::from_vkey(text.trim_end())
                .map(Some)
                .map_err(|e| bad(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServiceError::io("cannot read", &path)(e)),
        }
    }

    /// The checkpoint as stored, with whatever cosignatures it has, if the log exists.
    pub fn read_checkpoint(&self) -> Result<Option<SignedCheckpoint>, ServiceError> {
        let path = self.checkpoint_path();
        match std::fs::read(&path) {
            Ok(bytes) => SignedCheckpoint::parse(&bytes)
                .map(Some)
                .map_err(|e| bad(&path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ServiceError::io("cannot read", &path)(e)),
        }
    }

    /// The checkpoint opened with the log's key (`None` before the first entry).
    pub fn open_checkpoint(
        &self,
        log: &Ed25519Verifier,
    ) -> Result<Option<LogSignedCheckpoint>, ServiceError> {
        let path = self.checkpoint_path();
        self.read_checkpoint()?
            .map(|c| c.open(log).map_err(|e| bad(&path, e)))
            .transpose()
    }

    fn fetch(&self, tile: &TilePath) -> Result<Vec<u8>, std::io::Error> {
        std::fs::read(self.tile_path(tile))
    }

    /// Every entry of the tree `checkpoint` commits to, each tile checked against it (the
    /// auditor's routine run on the local files).
    pub fn entries(&self, checkpoint: &Checkpoint) -> Result<Vec<Vec<u8>>, ServiceError> {
        tiles::audit(checkpoint, |t| self.fetch(t)).map_err(|e| bad(&self.dir, e))
    }

    /// Appends `signed`'s entry: writes the manifest, the new tiles and a checkpoint signed
    /// with `log` (without witness cosignatures: collect them, then
    /// [`ManifestLog::store_checkpoint`]). Refuses a log whose files do not match its
    /// checkpoint, a different origin, and a manifest whose epoch does not follow the last
    /// entry's.
    pub fn append(
        &self,
        signed: &SignedManifest,
        log: &Ed25519Signer,
    ) -> Result<LogSignedCheckpoint, ServiceError> {
        let verifier = log.verifier();
        match self.log_key()? {
            Some(known) if known != verifier => {
                return Err(bad(
                    &self.vkey_path(),
                    "this log is signed with another key; refusing to append with this one",
                ))
            }
            Some(_) => {}
            None => {
                std::fs::create_dir_all(&self.dir)
                    .map_err(ServiceError::io("cannot create", &self.dir))?;
                write_atomically(
                    &self.vkey_path(),
                    format!("{}\n", verifier.to_vkey()).as_bytes(),
                )?;
            }
        }
        let mut entries = match self.open_checkpoint(&verifier)? {
            Some(cp) => self.entries(cp.checkpoint())?,
            None => Vec::new(),
        };
        if let Some(last) = entries.last() {
            let last = LogEntry::decode(last).map_err(|e| bad(&self.dir, e))?;
            if signed.entry().epoch() <= last.epoch() {
                return Err(ServiceError::Invalid(format!(
                    "the log already holds epoch {}; epoch {} cannot follow it",
                    last.epoch(),
                    signed.entry().epoch()
                )));
            }
        }
        let manifest = signed.manifest().encode();
        let manifests = self.dir.join("manifests");
        std::fs::create_dir_all(&manifests)
            .map_err(ServiceError::io("cannot create", &manifests))?;
        write_atomically(&self.manifest_path(&signed.manifest().hash()), &manifest)?;
        entries.push(signed.entry().encode());
        let tiles = tiles::build_tiles(&entries).map_err(|e| bad(&self.dir, e))?;
        for (tile, bytes) in &tiles {
            let path = self.tile_path(tile);
            match std::fs::read(&path) {
                // Immutable: an existing tile must already hold these bytes.
                Ok(existing) if &existing == bytes => continue,
                Ok(_) => return Err(bad(&path, "an existing tile differs from the log's")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ServiceError::io("cannot read", &path)(e)),
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(ServiceError::io("cannot create", parent))?;
            }
            write_atomically(&path, bytes)?;
        }
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let checkpoint = Checkpoint::new(log.name(), entries.len() as u64, merkle::root(&leaves))
            .and_then(|c| c.sign(log))
            .map_err(|e| ServiceError::Invalid(format!("cannot sign the checkpoint: {e}")))?;
        let opened = checkpoint
            .open(&verifier)
            .map_err(|e| ServiceError::Invalid(format!("the new checkpoint does not open: {e}")))?;
        self.store_checkpoint(opened.signed())?;
        Ok(opened)
    }

    /// Replaces the checkpoint (with the witnesses' cosignatures added, or refreshed).
    pub fn store_checkpoint(&self, checkpoint: &SignedCheckpoint) -> Result<(), ServiceError> {
        write_atomically(&self.checkpoint_path(), &checkpoint.to_bytes())
    }

    /// Checks a checkpoint a client saw (gossip, R/E10 and protocol.md 4.3) against this log:
    /// the log's key signed it, and this log had exactly that root at that size. A checkpoint
    /// the log signed that this log does not contain is a split view: someone was shown
    /// another log.
    pub fn gossip(&self, note: &[u8], log: &Ed25519Verifier) -> Result<Gossip, ServiceError> {
        let received = SignedCheckpoint::parse(note)
            .map_err(|e| ServiceError::Invalid(format!("not a checkpoint: {e}")))?
            .open(log)
            .map_err(|e| ServiceError::Invalid(format!("not signed by this log: {e}")))?;
        let seen = received.checkpoint();
        let ours = self
            .open_checkpoint(log)?
            .map(|c| c.checkpoint().size())
            .unwrap_or(0);
        if seen.size() > ours {
            return Ok(Gossip::Fork(format!(
                "the checkpoint has {} entries; this log has {ours}",
                seen.size()
            )));
        }
        let root = tiles::root_from_tiles(seen.size(), |t| self.fetch(t))
            .map_err(|e| bad(&self.dir, e))?;
        Ok(if &root == seen.root_hash() {
            Gossip::Consistent { size: seen.size() }
        } else {
            Gossip::Fork(format!(
                "this log's root at {} entries is {}, not {}",
                seen.size(),
                root.to_hex(),
                seen.root_hash().to_hex()
            ))
        })
    }

    /// The consistency proof from `old_size` entries to the current checkpoint's tree.
    pub fn consistency(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ServiceError> {
        tiles::consistency_proof_from_tiles(old_size, new_size, |t| self.fetch(t))
            .map_err(|e| bad(&self.dir, e))
    }

    /// The bundle a client verifies (R/E10): the manifest in force at `now` (the newest entry
    /// whose `not_before ≤ now`, or the first entry if none is yet), its entry and proof
    /// against the stored checkpoint, and every later entry with its proof. `None` before the
    /// first entry.
    pub fn bundle(
        &self,
        log: &Ed25519Verifier,
        now: u64,
    ) -> Result<Option<ManifestBundle>, ServiceError> {
        let Some(signed) = self.read_checkpoint()? else {
            return Ok(None);
        };
        let path = self.checkpoint_path();
        let opened = signed.open(log).map_err(|e| bad(&path, e))?;
        let cp = opened.checkpoint();
        let entries = self.entries(cp)?;
        let decoded: Vec<LogEntry> = entries
            .iter()
            .map(|e| LogEntry::decode(e).map_err(|err| bad(&self.dir, err)))
            .collect::<Result<_, _>>()?;
        let index = decoded
            .iter()
            .rposition(|e| e.not_before() <= now)
            .unwrap_or(0);
        let Some(entry) = decoded.get(index) else {
            return Ok(None);
        };
        let manifest_path = self.manifest_path(entry.manifest_hash());
        let manifest = std::fs::read(&manifest_path)
            .map_err(ServiceError::io("cannot read", &manifest_path))?;
        let proof = |i: u64| -> Result<Vec<u8>, ServiceError> {
            let path = tiles::inclusion_proof_from_tiles(cp.size(), i, |t| self.fetch(t))
                .map_err(|e| bad(&self.dir, e))?;
            Ok(ProofBundle::new(i, path, signed.clone(), None)
                .map_err(|e| bad(&self.dir, e))?
                .to_bytes())
        };
        let index = index as u64;
        Ok(Some(ManifestBundle {
            manifest,
            entry: entries[index as usize].clone(),
            proof: proof(index)?,
            later: (index + 1..cp.size())
                .map(|i| Ok((entries[i as usize].clone(), proof(i)?)))
                .collect::<Result<_, ServiceError>>()?,
        }))
    }
}

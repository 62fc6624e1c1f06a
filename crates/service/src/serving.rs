//! The published table as the upload service holds it: the manifest and shard files exactly as
//! `hashguard table build` wrote them (served to clients byte for byte, each with a strong
//! validator), checked on load as a client would check them, and the opener that holds the
//! table's secret.

use std::path::Path;

use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::Manifest;
use hashguard_protocol::opener::{EpochWindow, Opener};
use hashguard_protocol::params::Params;
use hashguard_protocol::table::TableShard;
use sha2::{Digest, Sha256};

use crate::manifest_log::ManifestLog;
use crate::publish::{read_opening_key, TableDir};
use crate::{hex, verify, ServiceError};
use hashguard_transparency::note::Ed25519Verifier;

/// One file a client downloads, with its validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// The bytes, as written by the build.
    pub bytes: Vec<u8>,
    /// Lowercase hex SHA-256 of the bytes: the file's identity (an HTTP strong `ETag`).
    pub sha256: String,
}

impl TableFile {
    /// A file and its validator.
    pub fn new(bytes: Vec<u8>) -> TableFile {
        let sha256 = hex(&Sha256::digest(&bytes));
        TableFile { bytes, sha256 }
    }
}

/// The current table: what clients download and what the server opens vouchers with.
pub struct ServedTable {
    manifest: Manifest,
    manifest_file: TableFile,
    /// Shard files in shard order; each is named by its Merkle root in the manifest, so an
    /// unchanged shard keeps its name across epochs and a client or CDN keeps its copy.
    shards: Vec<(String, TableFile)>,
    opener: Opener,
    /// The previous epoch, when its manifest is kept beside this one, chains to it and names
    /// the same opening key (so its vouchers open with this opener).
    previous: Option<u32>,
    /// The manifest log and its key, once the table has been published to it.
    log: Option<(ManifestLog, Ed25519Verifier)>,
}

/// How long after a new epoch starts the previous epoch's vouchers are still opened (R/E5
/// step 6): clients that fetched the table just before a change finish their uploads, and
/// nobody gets a longer window to use a table the organisations have replaced.
pub const GRACE_SECONDS: u64 = 24 * 60 * 60;

impl std::fmt::Debug for ServedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedTable")
            .field("epoch", &self.manifest.epoch())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl ServedTable {
    /// Loads the table directory `dir` and its opening key `key`, and checks them as a client
    /// and the service would: the manifest decodes strictly, every shard matches its entry
    /// (root, layout, points), and the key is the table's.
    pub fn load(dir: &TableDir, key: &Path) -> Result<ServedTable, ServiceError> {
        let manifest_path = dir.manifest_path();
        let manifest_bytes = std::fs::read(&manifest_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ServiceError::NoTable(dir.path().to_path_buf())
            } else {
                ServiceError::Io {
                    what: "cannot read",
                    path: manifest_path.clone(),
                    source: e,
                }
            }
        })?;
        let manifest = Manifest::decode(&manifest_bytes)
            .map_err(|e| ServiceError::bad_file(&manifest_path, e))?;
        let table = manifest.table(TableKind::Pdq).ok_or_else(|| {
            ServiceError::bad_file(&manifest_path, "the manifest has no PDQ table")
        })?;
        let mut files = Vec::with_capacity(table.shards().len());
        let mut decoded = Vec::with_capacity(table.shards().len());
        for (i, entry) in table.shards().iter().enumerate() {
            let path = dir.shard_path(i);
            let bytes = std::fs::read(&path).map_err(ServiceError::io("cannot read", &path))?;
            let shard = TableShard::decode(&bytes).map_err(|e| ServiceError::bad_file(&path, e))?;
            if shard.root() != entry.root {
                return Err(ServiceError::bad_file(
                    &path,
                    "its root is not the manifest's (a shard of another epoch?)",
                ));
            }
            files.push((hex(&entry.root), TableFile::new(bytes)));
            decoded.push(shard);
        }
        verify::check_client(&manifest, &decoded)
            .map_err(|reason| ServiceError::bad_file(dir.path(), reason))?;
        let secret = read_opening_key(key)?;
        verify::check_opening_key(&secret, &manifest)
            .map_err(|reason| ServiceError::bad_file(key, reason))?;
        let opener = Opener::new(secret, manifest.params().clone());
        let previous = manifest
            .epoch()
            .checked_sub(1)
            .filter(|&e| e >= 1)
            .and_then(|e| {
                let bytes = std::fs::read(dir.epoch_manifest_path(e)).ok()?;
                let before = Manifest::decode(&bytes).ok()?;
                (before.hash() == *manifest.prev_manifest_hash()
                    && before.public_key() == manifest.public_key()
                    && before.params() == manifest.params())
                .then_some(e)
            });
        let log = ManifestLog::of_table(dir);
        let log = log.log_key()?.map(|key| (log, key));
        Ok(ServedTable {
            manifest_file: TableFile::new(manifest_bytes),
            manifest,
            shards: files,
            opener,
            previous,
            log,
        })
    }

    /// The manifest log, once the table has been published to it.
    pub fn manifest_log(&self) -> Option<&ManifestLog> {
        self.log.as_ref().map(|(log, _)| log)
    }

    /// The manifest bundle clients verify before using the table (R/E10): the manifest in
    /// force at `now` with its log entry and proofs against the log's current checkpoint
    /// (read afresh, so refreshed witness cosignatures reach clients without a restart).
    /// `None` while the table has not been published to the log.
    pub fn bundle(&self, now: u64) -> Result<Option<TableFile>, ServiceError> {
        let Some((log, key)) = &self.log else {
            return Ok(None);
        };
        Ok(log.bundle(key, now)?.map(|b| TableFile::new(b.encode())))
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest file as published.
    pub fn manifest_file(&self) -> &TableFile {
        &self.manifest_file
    }

    /// The shard file whose Merkle root is `root_hex` (lowercase hex), if it is in this table.
    pub fn shard_by_root(&self, root_hex: &str) -> Option<&TableFile> {
        self.shards
            .iter()
            .find(|(root, _)| root == root_hex)
            .map(|(_, file)| file)
    }

    /// The shards' roots in shard order (the names clients fetch them by).
    pub fn shard_roots(&self) -> impl Iterator<Item = &str> {
        self.shards.iter().map(|(root, _)| root.as_str())
    }

    /// The parameters vouchers are built and opened under.
    pub fn params(&self) -> &Params {
        self.manifest.params()
    }

    /// The opener, holding the table's secret.
    pub fn opener(&self) -> &Opener {
        &self.opener
    }

    /// The epochs vouchers may be built for at time `now` (Unix seconds): this one, and the
    /// previous one for [`GRACE_SECONDS`] after this one's `not_before` when it shares the
    /// opening key; never a revoked epoch.
    pub fn window(&self, now: u64) -> EpochWindow {
        EpochWindow {
            current: self.manifest.epoch(),
            previous_in_grace: self.previous.is_some()
                && now < self.manifest.not_before().saturating_add(GRACE_SECONDS),
            revoked: self.manifest.revokes().to_vec(),
        }
    }
}

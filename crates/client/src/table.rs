//! The client's copy of the service's private table (protocol.md R/E3): fetched with
//! conditional GETs so only a changed manifest and changed shards travel, verified completely
//! before any use, and replaced only by a newer table that verifies as a whole. A voucher is
//! only ever built from a [`ClientTable`], which exists only after verification.
//!
//! The manifest's signature, co-signatures and log proofs (R/E10 items 1-4) arrive with the
//! transparency issue; until then the manifest is accepted on its parameters, validity window,
//! epoch chain and revocations, and its shards on their Merkle roots and points.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::{Manifest, VerifiedManifest};
use hashguard_protocol::params::PinnedParams;
use hashguard_protocol::table::{ClientTable, TableShard};
use reqwest::StatusCode;

use crate::error::SdkError;

/// The most keys a client accepts in one table (16.7 million: far above any list, far below
/// what would exhaust a phone's memory).
pub const MAX_TABLE_KEYS: u64 = 1 << 24;

/// What a refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The table did not change (the service answered 304).
    Unchanged,
    /// A new epoch was verified and is now in use; `shards_fetched` of its shards travelled.
    Updated {
        /// The new epoch.
        epoch: u32,
        /// Shards downloaded (the others were unchanged).
        shards_fetched: usize,
    },
}

struct Current {
    manifest: VerifiedManifest,
    manifest_bytes: Vec<u8>,
    etag: Option<String>,
    table: ClientTable,
}

/// The verified table and the raw files it came from.
pub struct TableCache {
    pinned: PinnedParams,
    current: Option<Current>,
    /// Shard files by root, for the shards of the current table.
    shard_files: HashMap<[u8; 32], Vec<u8>>,
    dir: Option<PathBuf>,
    clock: fn() -> u64,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("epoch", &self.epoch())
            .field("shards", &self.shard_files.len())
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn untrusted(what: impl std::fmt::Display) -> SdkError {
    SdkError::UntrustedTable(what.to_string())
}

impl TableCache {
    /// An empty cache that accepts only tables with the `pinned` parameters (the values the
    /// app ships with). With `dir`, verified files are kept there and reused across runs;
    /// they are verified again when loaded, never trusted from disk.
    pub fn new(pinned: PinnedParams, dir: Option<PathBuf>) -> TableCache {
        TableCache {
            pinned,
            current: None,
            shard_files: HashMap::new(),
            dir,
            clock: unix_now,
        }
    }

    /// Reads the time (Unix seconds) from `clock` instead of the system clock: for an app with
    /// a trusted time source, and for tests of expiry.
    pub fn with_clock(mut self, clock: fn() -> u64) -> TableCache {
        self.clock = clock;
        self
    }

    /// The verified table, if it is still valid now.
    pub fn table(&self) -> Result<&ClientTable, SdkError> {
        let current = self.current.as_ref().ok_or(SdkError::NoTable)?;
        if (self.clock)() >= current.manifest.not_after() {
            return Err(SdkError::TableExpired);
        }
        Ok(&current.table)
    }

    /// The epoch in use.
    pub fn epoch(&self) -> Option<u32> {
        self.current.as_ref().map(|c| c.manifest.epoch())
    }

    /// The verified manifest in use.
    pub fn manifest(&self) -> Option<&VerifiedManifest> {
        self.current.as_ref().map(|c| &c.manifest)
    }

    /// Loads and re-verifies the files a previous run kept. A missing, partial or corrupt
    /// copy is ignored (the next refresh downloads what is needed); only a copy that
    /// verifies completely is used.
    pub fn load_saved(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        let Ok(bytes) = std::fs::read(dir.join("manifest")) else {
            return;
        };
        let mut files = HashMap::new();
        if let Ok(manifest) = Manifest::decode(&bytes) {
            if let Some(t) = manifest.table(TableKind::Pdq) {
                for entry in t.shards() {
                    let path = dir.join(format!("shard-{}", hex::encode(entry.root)));
                    if let Ok(file) = std::fs::read(path) {
                        files.insert(entry.root, file);
                    }
                }
            }
        }
        match self.verify(&bytes, &files, None) {
            Ok((manifest, table)) => {
                self.current = Some(Current {
                    manifest,
                    manifest_bytes: bytes,
                    etag: None,
                    table,
                });
                self.shard_files = files;
            }
            Err(e) => tracing::warn!(error = %e, "the saved table does not verify; ignoring it"),
        }
    }

    /// Fetches the manifest (conditionally) and any shard not already held, verifies the whole
    /// table, and switches to it. On any failure the table in use stays as it was.
    pub async fn refresh(
        &mut self,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<Refreshed, SdkError> {
        let mut request = http.get(format!("{base}/v1/table/manifest"));
        if let Some(etag) = self.current.as_ref().and_then(|c| c.etag.as_deref()) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let response = request.send().await?;
        match response.status() {
            StatusCode::NOT_MODIFIED if self.current.is_some() => {
                self.table()?;
                return Ok(Refreshed::Unchanged);
            }
            StatusCode::OK => {}
            status => return Err(unexpected(status, "fetching the table's manifest")),
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await?.to_vec();
        if let Some(current) = &mut self.current {
            if current.manifest_bytes == bytes {
                current.etag = etag;
                self.table()?;
                return Ok(Refreshed::Unchanged);
            }
        }
        let manifest = Manifest::decode(&bytes).map_err(untrusted)?;
        let entries = manifest
            .table(TableKind::Pdq)
            .ok_or_else(|| untrusted("the manifest has no PDQ table"))?
            .shards()
            .to_vec();
        let mut files = HashMap::with_capacity(entries.len());
        let mut fetched = 0;
        for entry in &entries {
            if let Some(file) = self.shard_files.get(&entry.root) {
                files.insert(entry.root, file.clone());
                continue;
            }
            let root = hex::encode(entry.root);
            let r = http
                .get(format!("{base}/v1/table/shards/{root}"))
                .send()
                .await?;
            if r.status() != StatusCode::OK {
                return Err(unexpected(r.status(), "fetching a table shard"));
            }
            files.insert(entry.root, r.bytes().await?.to_vec());
            fetched += 1;
        }
        let last = self
            .current
            .as_ref()
            .map(|c| (c.manifest.epoch(), c.manifest.hash()));
        let (manifest, table) = self.verify(&bytes, &files, last)?;
        let epoch = manifest.epoch();
        self.save(&bytes, &files);
        self.current = Some(Current {
            manifest,
            manifest_bytes: bytes,
            etag,
            table,
        });
        self.shard_files = files;
        Ok(Refreshed::Updated {
            epoch,
            shards_fetched: fetched,
        })
    }

    /// Every check the client can make on a manifest and its shard files.
    fn verify(
        &self,
        manifest_bytes: &[u8],
        files: &HashMap<[u8; 32], Vec<u8>>,
        last: Option<(u32, [u8; 32])>,
    ) -> Result<(VerifiedManifest, ClientTable), SdkError> {
        let manifest = Manifest::decode(manifest_bytes)
            .map_err(untrusted)?
            .check_client(&self.pinned, (self.clock)(), last)
            .map_err(untrusted)?;
        let entries = manifest
            .table(TableKind::Pdq)
            .ok_or_else(|| untrusted("the manifest has no PDQ table"))?
            .shards();
        let mut shards = Vec::with_capacity(entries.len());
        for entry in entries {
            let file = files
                .get(&entry.root)
                .ok_or_else(|| untrusted("a shard is missing"))?;
            shards.push(TableShard::decode(file).map_err(untrusted)?);
        }
        let table = ClientTable::load(&manifest, TableKind::Pdq, &shards, MAX_TABLE_KEYS)
            .map_err(untrusted)?;
        Ok((manifest, table))
    }

    /// Keeps the verified files for the next run (best effort: a failure only costs a
    /// download).
    fn save(&self, manifest: &[u8], files: &HashMap<[u8; 32], Vec<u8>>) {
        let Some(dir) = &self.dir else { return };
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            for (root, file) in files {
                let path = dir.join(format!("shard-{}", hex::encode(root)));
                if !path.exists() {
                    write_atomically(&path, file)?;
                }
            }
            write_atomically(&dir.join("manifest"), manifest)?;
            for entry in std::fs::read_dir(dir)?.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if let Some(root) = name.strip_prefix("shard-") {
                    let keep = hex::decode(root)
                        .ok()
                        .and_then(|r| <[u8; 32]>::try_from(r).ok())
                        .is_some_and(|r| files.contains_key(&r));
                    if !keep {
                        std::fs::remove_file(entry.path())?;
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot keep the table files");
        }
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves the old
/// file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub(crate) fn unexpected(status: StatusCode, doing: &str) -> SdkError {
    SdkError::Unexpected {
        status: status.as_u16(),
        message: format!("while {doing}"),
    }
}

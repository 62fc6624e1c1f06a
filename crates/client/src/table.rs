//! The client's copy of the service's private table (protocol.md R/E3 and R/E10): the
//! manifest bundle and changed shards fetched with conditional GETs, the manifest accepted
//! only by [`accept_manifest`] (service signature, two organisations in two jurisdictions,
//! inclusion in the manifest log under a checkpoint a quorum of witnesses cosigned in the last
//! 72 hours, consistency with every checkpoint seen before, newest manifest in force, window,
//! chain, pinned parameters, not revoked), the shards against its roots and points. A voucher
//! is only ever built from a [`ClientTable`], which exists only after all of that.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hashguard_protocol::acceptance::{
    accept_manifest, AcceptError, Accepted, AcceptedState, ManifestBundle, TrustAnchors,
};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::VerifiedManifest;
use hashguard_protocol::table::{ClientTable, TableShard};
use hashguard_transparency::merkle::Hash;
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TileKind, TilePath};
use reqwest::StatusCode;

use crate::error::SdkError;

/// The most keys a client accepts in one table (16.7 million: far above any list, far below
/// what would exhaust a phone's memory).
pub const MAX_TABLE_KEYS: u64 = 1 << 24;

/// What a refresh found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The table did not change (the service answered 304, or the same manifest came with a
    /// fresher checkpoint).
    Unchanged,
    /// A new epoch was verified and is now in use; `shards_fetched` of its shards travelled.
    Updated {
        /// The new epoch.
        epoch: u32,
        /// Shards downloaded (the others were unchanged).
        shards_fetched: usize,
    },
}

/// What gossip found (see [`TableCache::gossip`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GossipReport {
    /// Who has exactly the checkpoint this client accepted: `service`, or a witness's name.
    pub consistent: Vec<String>,
    /// Witnesses that never cosigned a tree of that size (nothing to compare).
    pub unknown: Vec<String>,
    /// Who reports a split view, and what they said.
    pub forks: Vec<(String, String)>,
    /// Who could not be asked, and why.
    pub unreachable: Vec<(String, String)>,
}

struct Current {
    accepted: Accepted,
    bundle_bytes: Vec<u8>,
    etag: Option<String>,
    table: ClientTable,
}

/// The verified table and the raw files it came from.
pub struct TableCache {
    anchors: TrustAnchors,
    current: Option<Current>,
    /// The last acceptance's state (kept even when its table is no longer usable), so a
    /// newer log must extend what this client has seen.
    last_state: Option<AcceptedState>,
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
    /// An empty cache that accepts only tables these `anchors` vouch for (the keys and
    /// parameters the app ships with). With `dir`, verified files are kept there and reused
    /// across runs; they are verified again when loaded, never trusted from disk.
    pub fn new(anchors: TrustAnchors, dir: Option<PathBuf>) -> TableCache {
        TableCache {
            anchors,
            current: None,
            last_state: None,
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

    /// The verified table, if it is still usable now: the manifest has not expired and the
    /// witnesses' cosignatures on its checkpoint are not older than the pinned limit (72
    /// hours), so a client cut off from fresh checkpoints stops building vouchers.
    pub fn table(&self) -> Result<&ClientTable, SdkError> {
        let current = self.current.as_ref().ok_or(SdkError::NoTable)?;
        let now = (self.clock)();
        let fresh = current
            .accepted
            .state
            .checkpoint()
            .quorum_fresh(now, self.anchors.max_checkpoint_age);
        if now >= current.accepted.manifest.not_after() || !fresh {
            return Err(SdkError::TableExpired);
        }
        Ok(&current.table)
    }

    /// The epoch in use.
    pub fn epoch(&self) -> Option<u32> {
        self.current.as_ref().map(|c| c.accepted.manifest.epoch())
    }

    /// The verified manifest in use.
    pub fn manifest(&self) -> Option<&VerifiedManifest> {
        self.current.as_ref().map(|c| &c.accepted.manifest)
    }

    /// The accepted manifest with its log entry and checkpoint (for a settings screen: epoch,
    /// table root, co-signers, witnesses).
    pub fn accepted(&self) -> Option<&Accepted> {
        self.current.as_ref().map(|c| &c.accepted)
    }

    /// What a settings screen shows of the table in use, so a user can compare it with the
    /// published value (as Apple proposed for its database's root hash): the epoch, the table
    /// root, who co-signed it, the log size and which witnesses vouched for the log.
    pub fn safety_database(&self) -> Option<String> {
        let accepted = self.accepted()?;
        let root = accepted
            .manifest
            .table(TableKind::Pdq)
            .map(|t| hex::encode(t.table_root()))
            .unwrap_or_default();
        let cosigners: Vec<String> = accepted
            .signed
            .verified_cosigners(&self.anchors.organisations)
            .unwrap_or_default()
            .iter()
            .map(|o| format!("{} ({})", o.name, String::from_utf8_lossy(&o.jurisdiction)))
            .collect();
        let checkpoint = accepted.state.checkpoint();
        let witnesses: Vec<&str> = checkpoint
            .cosignatures()
            .iter()
            .map(|c| c.witness.as_str())
            .collect();
        Some(format!(
            "Safety database: epoch {}, root {root}; co-signed by {}; in the public log \
             ({} entries), witnessed by {}",
            accepted.manifest.epoch(),
            cosigners.join(" and "),
            checkpoint.checkpoint().size(),
            witnesses.join(" and ")
        ))
    }

    /// Loads and re-verifies the files a previous run kept. A missing, partial, corrupt or
    /// no longer acceptable copy is not used (the next refresh downloads what is needed);
    /// its acceptance state is still kept, re-verified, so the next log must extend it.
    pub fn load_saved(&mut self) {
        let Some(dir) = self.dir.clone() else { return };
        if let Ok(bytes) = std::fs::read(dir.join("state")) {
            match AcceptedState::from_bytes(&bytes, &self.anchors) {
                Ok(state) => self.last_state = Some(state),
                Err(e) => tracing::warn!(error = %e, "the saved log state does not verify"),
            }
        }
        let Ok(bytes) = std::fs::read(dir.join("bundle")) else {
            return;
        };
        let result = ManifestBundle::decode(&bytes)
            .map_err(untrusted)
            .and_then(|bundle| {
                accept_manifest(&bundle, &[], &self.anchors, None, (self.clock)())
                    .map_err(untrusted)
            })
            .and_then(|accepted| {
                let mut files = HashMap::new();
                if let Some(t) = accepted.manifest.table(TableKind::Pdq) {
                    for entry in t.shards() {
                        let path = dir.join(format!("shard-{}", hex::encode(entry.root)));
                        if let Ok(file) = std::fs::read(path) {
                            files.insert(entry.root, file);
                        }
                    }
                }
                let table = load_table(&accepted.manifest, &files)?;
                Ok((accepted, table, files))
            });
        match result {
            Ok((accepted, table, files)) => {
                self.current = Some(Current {
                    accepted,
                    bundle_bytes: bytes,
                    etag: None,
                    table,
                });
                self.shard_files = files;
            }
            Err(e) => tracing::warn!(error = %e, "the saved table does not verify; ignoring it"),
        }
    }

    /// Fetches the manifest bundle (conditionally), the log tiles for the consistency proof
    /// from the last checkpoint seen, and any shard not already held; accepts the manifest
    /// under every rule of R/E10, verifies the whole table, and switches to it. On any
    /// failure the table in use stays as it was; a proven fork of the log is also written to
    /// `fork-evidence.txt` in the cache folder, for the app to report.
    pub async fn refresh(
        &mut self,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<Refreshed, SdkError> {
        let mut request = http.get(format!("{base}/v1/table/bundle"));
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
            status => return Err(unexpected(status, "fetching the table's manifest bundle")),
        }
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await?.to_vec();
        if let Some(current) = &mut self.current {
            if current.bundle_bytes == bytes {
                current.etag = etag;
                self.table()?;
                return Ok(Refreshed::Unchanged);
            }
        }
        let bundle = ManifestBundle::decode(&bytes).map_err(untrusted)?;
        let consistency = self.consistency_proof(http, base, &bundle).await?;
        let accepted = match accept_manifest(
            &bundle,
            &consistency,
            &self.anchors,
            self.last_state.as_ref(),
            (self.clock)(),
        ) {
            Ok(a) => a,
            Err(AcceptError::Fork(evidence)) => {
                if let Some(dir) = &self.dir {
                    let _ = std::fs::create_dir_all(dir);
                    let _ = write_atomically(
                        &dir.join("fork-evidence.txt"),
                        evidence.to_text().as_bytes(),
                    );
                }
                return Err(untrusted(AcceptError::Fork(evidence)));
            }
            Err(e) => return Err(untrusted(e)),
        };
        let state_bytes = accepted.state.to_bytes();
        // The same manifest under a fresher checkpoint: keep the table, take the new proof.
        let same_manifest = self.current.as_ref().is_some_and(|c| {
            c.accepted.signed.entry().manifest_hash() == accepted.signed.entry().manifest_hash()
        });
        if same_manifest {
            self.save(&bytes, &state_bytes, &self.shard_files);
            self.last_state = Some(accepted.state.clone());
            if let Some(current) = &mut self.current {
                current.accepted = accepted;
                current.bundle_bytes = bytes;
                current.etag = etag;
            }
            return Ok(Refreshed::Unchanged);
        }
        let entries = accepted
            .manifest
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
        let table = load_table(&accepted.manifest, &files)?;
        let epoch = accepted.manifest.epoch();
        self.save(&bytes, &state_bytes, &files);
        self.last_state = Some(accepted.state.clone());
        self.current = Some(Current {
            accepted,
            bundle_bytes: bytes,
            etag,
            table,
        });
        self.shard_files = files;
        Ok(Refreshed::Updated {
            epoch,
            shards_fetched: fetched,
        })
    }

    /// Gossip (protocol.md 4.3): sends the checkpoint this client last accepted to the service
    /// (`POST /v1/log/gossip`) and to every pinned witness that has a URL (`POST /gossip`), so
    /// a split view (this client shown a log others were not) is detected. If anyone reports
    /// one, the table in use is dropped (no voucher is built from it) and the answers are
    /// written to `fork-evidence.txt` in the cache folder, for the app to report.
    pub async fn gossip(
        &mut self,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<GossipReport, SdkError> {
        let state = self.last_state.as_ref().ok_or(SdkError::NoTable)?;
        let note = state.checkpoint().to_bytes();
        let mut targets = vec![("service".to_string(), format!("{base}/v1/log/gossip"))];
        for w in self.anchors.log_policy.witnesses() {
            if let Some(url) = &w.url {
                let url = url.trim_end_matches('/');
                targets.push((w.name.clone(), format!("{url}/gossip")));
            }
        }
        let mut report = GossipReport::default();
        for (who, url) in targets {
            let answer = http.post(&url).body(note.clone()).send().await;
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    report.unreachable.push((who, e.to_string()));
                    continue;
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            match status {
                StatusCode::OK if text.starts_with("consistent") => report.consistent.push(who),
                StatusCode::OK if text.starts_with("unknown") => report.unknown.push(who),
                StatusCode::CONFLICT => report.forks.push((who, text.trim_end().to_string())),
                other => report
                    .unreachable
                    .push((who, format!("answered {other}: {}", text.trim_end()))),
            }
        }
        if !report.forks.is_empty() {
            self.current = None;
            if let Some(dir) = &self.dir {
                let mut evidence = String::from_utf8_lossy(&note).into_owned();
                for (who, said) in &report.forks {
                    evidence.push_str(&format!("\n{who}: {said}\n"));
                }
                let _ = std::fs::create_dir_all(dir);
                let _ = write_atomically(&dir.join("fork-evidence.txt"), evidence.as_bytes());
            }
        }
        Ok(report)
    }

    /// The consistency proof from the last checkpoint this client accepted to the bundle's,
    /// computed from the log's hash tiles (C2SP tlog-tiles; untrusted: the acceptance rules
    /// verify the proof against both signed roots). Empty when there is nothing to prove.
    async fn consistency_proof(
        &self,
        http: &reqwest::Client,
        base: &str,
        bundle: &ManifestBundle,
    ) -> Result<Vec<Hash>, SdkError> {
        let Some(last) = &self.last_state else {
            return Ok(Vec::new());
        };
        let old = last.checkpoint().checkpoint().size();
        let new = ProofBundle::parse(&bundle.proof)
            .map_err(untrusted)?
            .signed_checkpoint()
            .unverified_checkpoint()
            .size();
        if new <= old {
            return Ok(Vec::new());
        }
        let mut fetched: HashMap<TilePath, Vec<u8>> = HashMap::new();
        for tile in tiles::tiles_for_size(new) {
            if !matches!(tile.kind(), TileKind::Hashes { .. }) {
                continue;
            }
            let path = tile.to_string();
            let relative = path.strip_prefix("tile/").unwrap_or(&path);
            let r = http
                .get(format!("{base}/v1/log/tile/{relative}"))
                .send()
                .await?;
            if r.status() != StatusCode::OK {
                return Err(unexpected(r.status(), "fetching a log tile"));
            }
            fetched.insert(tile, r.bytes().await?.to_vec());
        }
        tiles::consistency_proof_from_tiles(old, new, |t| {
            fetched
                .get(t)
                .cloned()
                .ok_or("a tile the log did not serve")
        })
        .map_err(untrusted)
    }

    /// Keeps the verified files for the next run (best effort: a failure only costs a
    /// download).
    fn save(&self, bundle: &[u8], state: &[u8], files: &HashMap<[u8; 32], Vec<u8>>) {
        let Some(dir) = &self.dir else { return };
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(dir)?;
            for (root, file) in files {
                let path = dir.join(format!("shard-{}", hex::encode(root)));
                if !path.exists() {
                    write_atomically(&path, file)?;
                }
            }
            write_atomically(&dir.join("bundle"), bundle)?;
            write_atomically(&dir.join("state"), state)?;
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

/// The shards of `manifest`'s PDQ table from `files`, verified against it.
fn load_table(
    manifest: &VerifiedManifest,
    files: &HashMap<[u8; 32], Vec<u8>>,
) -> Result<ClientTable, SdkError> {
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
    ClientTable::load(manifest, TableKind::Pdq, &shards, MAX_TABLE_KEYS).map_err(untrusted)
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

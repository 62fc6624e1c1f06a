//! Where attachment ciphertexts (and the encrypted visual derivatives of held items) are kept:
//! one small trait, and a local folder as the embedded default.
//!
//! An S3-compatible store plugs in by implementing [`BlobStore`] over its client: `put` as a
//! `PutObject` with the expected SHA-256 (`x-amz-checksum-sha256`), so the store itself refuses a
//! body that does not match; `get` as `GetObject`; `delete` as `DeleteObject`. Object names are the
//! ids below, which never repeat, so no object is ever overwritten and a CDN may cache them.
//!
//! The two-phase upload's slots ([`BlobStore::slot_received`], [`BlobStore::slot_write`],
//! [`BlobStore::slot_discard`]) gather a ciphertext's bytes until they are complete, then
//! check the exact length and SHA-256 the client announced and only then make them the blob.
//! The local folder does it itself (`slots/`, one file per slot, locked while written). An S3
//! store does not need the bytes to pass through the server at all: the slot's upload URL is a
//! pre-signed `PutObject` of the object `slot-<id>` whose signature covers `Content-Length` and
//! `x-amz-checksum-sha256` (the announced length and digest, base64), so S3 refuses any other
//! body; the server then copies or renames it to `att-<id>` (`CopyObject` with
//! `x-amz-checksum-sha256` again) when the client reports the upload done, and a lifecycle rule
//! expires `slot-*` objects. Resumable uploads map to S3 multipart uploads (each part's checksum
//! signed, the whole object's checked at `CompleteMultipartUpload`).

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A blob's name: lowercase hex and `-` only (ids the service chose), so it is safe as a file
/// name and an object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobName(String);

impl BlobName {
    /// The ciphertext of attachment `id` (hex).
    pub fn attachment(id: &str) -> BlobName {
        BlobName(format!("att-{}", clean(id)))
    }
    /// The visual-derivative blob of the voucher `voucher_id` (hex) of attachment `id`.
    pub fn visual_derivative(id: &str, voucher_id: &str) -> BlobName {
        BlobName(format!("vd-{}-{}", clean(id), clean(voucher_id)))
    }
    /// The vouchers of attachment `id` (hex) accepted under `silent` and not opened yet.
    pub fn pending(id: &str) -> BlobName {
        BlobName(format!("pending-{}", clean(id)))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Keeps only hex digits, so no caller can name a path outside the store.
fn clean(id: &str) -> String {
    id.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A two-phase upload slot's name in the blob store (`slot-` and the slot id's hex).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotName(String);

impl SlotName {
    /// The slot of id `slot` (hex).
    pub fn new(slot: &str) -> SlotName {
        SlotName(format!("slot-{}", clean(slot)))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a slot's bytes come from: a request body, chunk by chunk.
pub trait ChunkSource: Send {
    /// One chunk of bytes.
    type Chunk: AsRef<[u8]> + Send + 'static;
    /// The next chunk; `None` at the end; `Err` when the sender broke off (the bytes before
    /// it are kept: that is what makes an upload resumable).
    fn next_chunk(&mut self) -> impl Future<Output = Option<Result<Self::Chunk, String>>> + Send;
}

/// What a slot must receive: the announced length and SHA-256, and the blob it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotTarget {
    /// The exact length.
    pub length: u64,
    /// The SHA-256 of all `length` bytes.
    pub sha256: [u8; 32],
    /// The blob the bytes become once complete and matching.
    pub blob: BlobName,
}

/// What one write to a slot did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWrite {
    /// The slot holds `received` bytes, fewer than the length; `interrupted` when the body
    /// broke off before its end.
    Partial {
        /// Bytes held now.
        received: u64,
        /// Whether the sender broke off.
        interrupted: bool,
    },
    /// All the bytes arrived with the announced SHA-256: they are the target blob now,
    /// durably.
    Complete,
}

/// Why a write to a slot took nothing (or, for a digest mismatch, threw everything away).
#[derive(Debug, thiserror::Error)]
pub enum SlotWriteError {
    /// Another request is writing to this slot now.
    #[error("another request is writing to this upload slot")]
    Busy,
    /// The write starts elsewhere than where the slot's bytes end.
    #[error("the upload slot holds {received} bytes; a write must start there")]
    Offset {
        /// Bytes the slot holds.
        received: u64,
    },
    /// The body has more bytes than the announced length: this write's bytes are discarded,
    /// those before it kept.
    #[error("more bytes than the announced length ({length})")]
    TooLong {
        /// The announced length.
        length: u64,
    },
    /// All the bytes arrived but their SHA-256 is not the announced one: they are discarded
    /// and the slot is empty again.
    #[error("the bytes' SHA-256 is not the announced one; the slot is empty again")]
    Digest,
    /// The store failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A store of immutable blobs.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` durably under `name` (complete or not at all).
    fn put(
        &self,
        name: &BlobName,
        bytes: &[u8],
    ) -> impl Future<Output = std::io::Result<()>> + Send;
    /// The blob, or `None` if there is none of that name.
    fn get(&self, name: &BlobName)
        -> impl Future<Output = std::io::Result<Option<Vec<u8>>>> + Send;
    /// Deletes the blob; `false` if there was none.
    fn delete(&self, name: &BlobName) -> impl Future<Output = std::io::Result<bool>> + Send;
    /// How many bytes the slot holds (0 for a slot never written or discarded).
    fn slot_received(&self, slot: &SlotName) -> impl Future<Output = std::io::Result<u64>> + Send;
    /// Appends `body` to the slot's bytes, which must end at `offset`, never past
    /// `target.length`. When the slot then holds `target.length` bytes their SHA-256 is
    /// checked: equal, they become `target.blob` (complete and durable, or not at all); not
    /// equal, they are discarded ([`SlotWriteError::Digest`]). A partial write keeps what it
    /// received (durably), so the sender can resume from [`BlobStore::slot_received`].
    fn slot_write<C: ChunkSource>(
        &self,
        slot: &SlotName,
        offset: u64,
        target: &SlotTarget,
        body: C,
    ) -> impl Future<Output = Result<SlotWrite, SlotWriteError>> + Send;
    /// Discards whatever the slot holds.
    fn slot_discard(&self, slot: &SlotName) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// Blobs as files in one folder: each written to a temporary file, flushed to disk and renamed
/// into place, so a crash leaves either the whole blob or none.
#[derive(Debug, Clone)]
pub struct LocalBlobs {
    dir: PathBuf,
    dir_sync: Arc<DirSync>,
}

/// Group commit of the folder's `fsync`: a rename is durable once the folder is synced after
/// it, and one sync covers every rename done before it began. Writers that finish while a sync
/// runs wait for it and then need their own only if it began before their rename.
#[derive(Debug, Default)]
struct DirSync {
    /// Renames done (each counted after its rename returned).
    renamed: AtomicU64,
    /// Renames covered by a finished sync of the folder.
    synced: Mutex<u64>,
}

impl DirSync {
    /// Returns once rename number `ticket` is durable.
    fn sync(&self, dir: &std::path::Path, ticket: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(PoisonError::into_inner);
        if *synced >= ticket {
            return Ok(());
        }
        let upto = self.renamed.load(Ordering::SeqCst);
        std::fs::File::open(dir)?.sync_all()?;
        *synced = upto;
        Ok(())
    }
}

impl LocalBlobs {
    /// Blobs in `dir` (created if missing, with its `tmp` and `slots` folders).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<LocalBlobs> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("tmp"))?;
        std::fs::create_dir_all(dir.join(SLOTS))?;
        Ok(LocalBlobs {
            dir,
            dir_sync: Arc::default(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// Files a crash may have left, last modified more than `older_than` ago: temporary files
    /// (removed at once: no complete blob is ever in `tmp`) are deleted, and the names of the
    /// attachment blobs and pending openings are returned for the caller to delete those no
    /// row names. The age
    /// keeps another process's write in flight safe when processes share the folder.
    pub fn sweep(&self, older_than: std::time::Duration) -> std::io::Result<SweepReport> {
        let old = |meta: &std::fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > older_than)
        };
        let mut report = SweepReport::default();
        for entry in std::fs::read_dir(self.dir.join("tmp"))? {
            let entry = entry?;
            if old(&entry.metadata()?) {
                std::fs::remove_file(entry.path())?;
                report.temporary_removed += 1;
            }
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("att-") {
                if entry.metadata()?.is_file() && old(&entry.metadata()?) {
                    report.attachments.push(id.to_string());
                }
            } else if let Some(id) = name.strip_prefix("pending-") {
                if entry.metadata()?.is_file() && old(&entry.metadata()?) {
                    report.pending.push(id.to_string());
                }
            }
        }
        Ok(report)
    }

    /// The attachment ids (hex) of the pending openings in the folder (see
    /// [`BlobName::pending`]), whatever their age.
    pub fn pending(&self) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix("pending-") {
                if entry.metadata()?.is_file() {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// The slot ids (hex) of the slot files last written more than `older_than` ago, for the
    /// caller to discard those whose slot is gone (see [`BlobStore::slot_discard`]).
    pub fn slot_files(&self, older_than: std::time::Duration) -> std::io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(self.dir.join(SLOTS))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > older_than);
            if let Some(id) = name.strip_prefix("slot-") {
                if meta.is_file() && old {
                    ids.push(id.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn slot_path(&self, slot: &SlotName) -> PathBuf {
        self.dir.join(SLOTS).join(slot.as_str())
    }

    /// Renames a complete file into place as `name` and makes the rename durable (the caller
    /// flushed the file's data).
    fn publish(&self, from: &std::path::Path, name: &BlobName) -> std::io::Result<()> {
        std::fs::rename(from, self.dir.join(name.as_str()))?;
        let ticket = self.dir_sync.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        self.dir_sync.sync(&self.dir, ticket)
    }

    fn write(&self, name: &BlobName, bytes: &[u8]) -> std::io::Result<()> {
        let dir = &self.dir;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = dir
            .join("tmp")
            .join(format!("{}.{}", name.as_str(), crate::hex(&suffix)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(bytes)?;
        // The data and the length it needs; the rest of the file's metadata does not matter.
        file.sync_data()?;
        drop(file);
        self.publish(&tmp, name)
    }
}

/// The folder of the slots' files, beside `tmp` (whose old files the sweep removes: a slot's
/// bytes may wait longer than that, until the slot expires).
const SLOTS: &str = "slots";

/// How many bytes a slot write gathers before it writes them (fewer, larger writes).
const SLOT_WRITE_BUFFER: usize = 1 << 20;

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

/// Opens (creating) a slot's file and locks it for this writer; `None` if another holds it.
/// The lock is the operating system's (`flock`), so it holds across processes sharing the
/// folder and is released when the file is closed, also by a killed process.
fn lock_slot(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// SHA-256 of a file's first `length` bytes, read in blocks (never the whole file in memory).
fn file_sha256(file: &mut std::fs::File, length: u64) -> std::io::Result<[u8; 32]> {
    use sha2::Digest;
    use std::io::{Read, Seek};
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    let mut left = length;
    while left > 0 {
        let want = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        let n = file.read(&mut block[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a slot's file is shorter than it was",
            ));
        }
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

/// What [`LocalBlobs::sweep`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Temporary files removed.
    pub temporary_removed: usize,
    /// The ids (hex) of old attachment blobs, for the caller to check against its rows.
    pub attachments: Vec<String>,
    /// The attachment ids (hex) of old pending openings, for the caller to check the same way.
    pub pending: Vec<String>,
}

impl BlobStore for LocalBlobs {
    async fn put(&self, name: &BlobName, bytes: &[u8]) -> std::io::Result<()> {
        let (blobs, name, bytes) = (self.clone(), name.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || blobs.write(&name, &bytes))
            .await
            .map_err(std::io::Error::other)?
    }

    async fn get(&self, name: &BlobName) -> std::io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.dir.join(name.as_str())).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, name: &BlobName) -> std::io::Result<bool> {
        match tokio::fs::remove_file(self.dir.join(name.as_str())).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn slot_received(&self, slot: &SlotName) -> std::io::Result<u64> {
        match tokio::fs::metadata(self.slot_path(slot)).await {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    async fn slot_write<C: ChunkSource>(
        &self,
        slot: &SlotName,
        offset: u64,
        target: &SlotTarget,
        mut body: C,
    ) -> Result<SlotWrite, SlotWriteError> {
        use std::io::{Seek, Write};
        let path = self.slot_path(slot);
        // The file is locked for the whole write, and its length is the slot's offset: what
        // is on disk is the truth, whatever a killed writer left.
        let locked = {
            let path = path.clone();
            blocking(move || {
                let Some(file) = lock_slot(&path)? else {
                    return Ok(None);
                };
                let len = file.metadata()?.len();
                Ok(Some((file, len)))
            })
            .await?
        };
        let Some((mut file, received)) = locked else {
            return Err(SlotWriteError::Busy);
        };
        if received != offset || received > target.length {
            return Err(SlotWriteError::Offset { received });
        }
        let mut written = offset;
        let mut buffer: Vec<u8> = Vec::with_capacity(SLOT_WRITE_BUFFER);
        let mut interrupted = false;
        let mut too_long = false;
        loop {
            let chunk = match body.next_chunk().await {
                None => break,
                Some(Err(_)) => {
                    interrupted = true;
                    break;
                }
                Some(Ok(chunk)) => chunk,
            };
            let bytes = chunk.as_ref();
            let have = written + buffer.len() as u64;
            if have + bytes.len() as u64 > target.length {
                too_long = true;
                break;
            }
            buffer.extend_from_slice(bytes);
            if buffer.len() >= SLOT_WRITE_BUFFER {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(SLOT_WRITE_BUFFER));
                let n = full.len() as u64;
                file = blocking(move || {
                    file.seek(std::io::SeekFrom::End(0))?;
                    file.write_all(&full)?;
                    Ok(file)
                })
                .await?;
                written += n;
            }
        }
        if too_long {
            // This write's bytes are discarded; what the slot held before stays.
            blocking(move || {
                file.set_len(offset)?;
                file.sync_data()
            })
            .await?;
            return Err(SlotWriteError::TooLong {
                length: target.length,
            });
        }
        written += buffer.len() as u64;
        let complete = written == target.length;
        let (expected, blob, length) = (target.sha256, target.blob.clone(), target.length);
        let blobs = self.clone();
        let outcome = blocking(move || {
            file.seek(std::io::SeekFrom::End(0))?;
            file.write_all(&buffer)?;
            // Durable before it is reported: a resumed upload starts after these bytes.
            file.sync_data()?;
            if !complete {
                return Ok(None);
            }
            // The digest is read back from the file, since a resumed upload's earlier bytes
            // came in other requests (and the disk is what becomes the blob).
            if file_sha256(&mut file, length)? != expected {
                std::fs::remove_file(&path)?;
                return Ok(Some(false));
            }
            // The blob's age starts now, so the start-up sweep of blobs without a row never
            // takes one whose row is being written.
            file.set_modified(std::time::SystemTime::now())?;
            blobs.publish(&path, &blob)?;
            Ok(Some(true))
        })
        .await?;
        match outcome {
            None => Ok(SlotWrite::Partial {
                received: written,
                interrupted,
            }),
            Some(true) => Ok(SlotWrite::Complete),
            Some(false) => Err(SlotWriteError::Digest),
        }
    }

    async fn slot_discard(&self, slot: &SlotName) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.slot_path(slot)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn blobs_round_trip_and_names_stay_inside_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = LocalBlobs::open(dir.path().join("data")).expect("open");
        let name = BlobName::attachment("../../etc/passwd-ABCDEF01");
        assert_eq!(name.as_str(), "att-ecadabcdef01");
        assert_eq!(blobs.get(&name).await.expect("get"), None);
        blobs.put(&name, b"ciphertext").await.expect("put");
        assert_eq!(
            blobs.get(&name).await.expect("get").as_deref(),
            Some(&b"ciphertext"[..])
        );
        assert!(blobs.dir().join("att-ecadabcdef01").is_file());
        assert_eq!(
            std::fs::read_dir(blobs.dir().join("tmp"))
                .expect("tmp")
                .count(),
            0,
            "no temporary file is left"
        );
        assert!(blobs.delete(&name).await.expect("delete"));
        assert!(!blobs.delete(&name).await.expect("delete again"));
        assert_eq!(BlobName::visual_derivative("0a", "FF").as_str(), "vd-0a-ff");
    }

    /// Concurrent writers share the folder's flushes: every blob is there, and the last
    /// rename is covered by a finished flush.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_the_folder_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = LocalBlobs::open(dir.path()).expect("open");
        let mut tasks = Vec::new();
        for i in 0..32u8 {
            let blobs = blobs.clone();
            tasks.push(tokio::spawn(async move {
                let name = BlobName::attachment(&format!("{i:02x}"));
                blobs.put(&name, &[i; 100]).await.expect("put");
                name
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let name = task.await.expect("join");
            let byte = u8::try_from(i).expect("index");
            assert_eq!(blobs.get(&name).await.expect("get"), Some(vec![byte; 100]));
        }
        let renamed = blobs.dir_sync.renamed.load(Ordering::SeqCst);
        let synced = *blobs.dir_sync.synced.lock().expect("lock");
        assert_eq!(renamed, 32);
        assert_eq!(synced, 32, "the last rename is covered by a flush");
    }

    #[test]
    fn the_sweep_takes_only_old_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blobs = LocalBlobs::open(dir.path()).expect("open");
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let touch = |path: std::path::PathBuf, old: bool| {
            let file = std::fs::File::create(&path).expect("create");
            if old {
                file.set_modified(two_hours_ago).expect("mtime");
            }
        };
        touch(dir.path().join("tmp/att-aa.1234"), true);
        touch(dir.path().join("tmp/att-bb.5678"), false);
        touch(dir.path().join("att-cc"), true);
        touch(dir.path().join("att-dd"), false);
        touch(dir.path().join("vd-cc-ee"), true);
        let report = blobs
            .sweep(std::time::Duration::from_secs(3600))
            .expect("sweep");
        assert_eq!(report.temporary_removed, 1);
        assert_eq!(report.attachments, vec!["cc".to_string()]);
        assert!(!dir.path().join("tmp/att-aa.1234").exists());
        assert!(
            dir.path().join("tmp/att-bb.5678").exists(),
            "a write in flight"
        );
        assert!(
            dir.path().join("att-cc").exists(),
            "only the caller deletes blobs"
        );
    }
}

//! Where attachment ciphertexts (and the encrypted visual derivatives of held items) are kept:
//! one small trait, and a local folder as the embedded default.
//!
//! An S3-compatible store plugs in by implementing [`BlobStore`] over its client: `put` as a
//! `PutObject` with the expected SHA-256 (`x-amz-checksum-sha256`), so the store itself refuses a
//! body that does not match; `get` as `GetObject`; `delete` as `DeleteObject`. Object names are the
//! ids below, which never repeat, so no object is ever overwritten and a CDN may cache them.

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
    /// Blobs in `dir` (created if missing, with its `tmp` folder).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<LocalBlobs> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("tmp"))?;
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
        std::fs::rename(&tmp, dir.join(name.as_str()))?;
        let ticket = self.dir_sync.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        self.dir_sync.sync(dir, ticket)
    }
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

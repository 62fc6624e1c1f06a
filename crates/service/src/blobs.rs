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
}

impl LocalBlobs {
    /// Blobs in `dir` (created if missing, with its `tmp` folder).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<LocalBlobs> {
        let dir = dir.into();
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(LocalBlobs { dir })
    }

    /// The folder.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn write(dir: PathBuf, name: BlobName, bytes: Vec<u8>) -> std::io::Result<()> {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = dir
            .join("tmp")
            .join(format!("{}.{}", name.as_str(), crate::hex(&suffix)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name.as_str()))?;
        // The rename is durable once the directory is.
        std::fs::File::open(&dir)?.sync_all()
    }
}

impl BlobStore for LocalBlobs {
    async fn put(&self, name: &BlobName, bytes: &[u8]) -> std::io::Result<()> {
        let (dir, name, bytes) = (self.dir.clone(), name.clone(), bytes.to_vec());
        tokio::task::spawn_blocking(move || LocalBlobs::write(dir, name, bytes))
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
}

//! The user's folder: every file private to the user (0600, the folder 0700), every change
//! written to a temporary file, flushed and renamed over the old one, so a crash leaves either
//! the old state or the new one, never a mix.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::MessengerError;

/// Permissions of every file the messenger writes: keys, state and received files are the
/// user's alone.
pub const FILE_MODE: u32 = 0o600;
/// Permissions of the folder and its `received/`.
pub const DIR_MODE: u32 = 0o700;

/// The SDK credentials and the service's address.
pub const CREDENTIALS: &str = "credentials.json";
/// The MLS storage (signature key included), the SDK account state, the queue position and
/// the group names, as one snapshot.
pub const STATE: &str = "state.json";
/// Held by the running process so that two never write the same folder.
pub const LOCK: &str = "lock";
/// Where received attachments are saved.
pub const RECEIVED: &str = "received";
/// The SDK's verified table files.
pub const TABLE: &str = "table";

/// Creates `dir` (and parents) private to the user, or tightens an existing one.
pub fn create_private_dir(dir: &Path) -> Result<(), MessengerError> {
    std::fs::create_dir_all(dir).map_err(|e| MessengerError::io(dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
        .map_err(|e| MessengerError::io(dir, e))
}

/// Writes `bytes` to `path` atomically with mode 0600 (flushed, renamed, folder flushed).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), MessengerError> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        // A leftover temporary file from a crash keeps its old mode: set it again.
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        MessengerError::io(path, e)
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Takes the folder's lock for this process: a second process on the same folder is refused
/// instead of overwriting the first one's state.
pub fn lock(dir: &Path) -> Result<File, MessengerError> {
    let path = dir.join(LOCK);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| MessengerError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(MessengerError::Busy(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(MessengerError::io(&path, e)),
    }
}

/// A file name for a received attachment: the sender's name reduced to safe characters (it
/// comes from another person), prefixed by the queue position so two files never collide and
/// a re-delivered one lands on the same name.
pub fn received_name(seq: u64, file_name: Option<&str>, content_type: &str) -> String {
    let base: String = file_name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(80)
        .collect();
    let base = base.trim_start_matches('.');
    if base.is_empty() {
        let ext = match content_type {
            "image/jpeg" => "jpg",
            "image/png" => "png",
            "image/webp" => "webp",
            "image/gif" => "gif",
            "video/mp4" => "mp4",
            _ => "bin",
        };
        format!("{seq}-attachment.{ext}")
    } else {
        format!("{seq}-{base}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_names_cannot_leave_the_folder() {
        assert_eq!(received_name(7, Some("../../etc/passwd"), ""), "7-passwd");
        assert_eq!(
            received_name(7, Some(".."), "image/png"),
            "7-attachment.png"
        );
        assert_eq!(received_name(3, Some("a b/ç.jpg"), ""), "3-jpg");
        assert_eq!(received_name(1, None, "image/webp"), "1-attachment.webp");
    }

    #[test]
    fn private_files_are_0600_and_replace_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        write_private(&path, b"one").expect("write");
        write_private(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!tmp_path(&path).exists());
    }
}

//! Turning command-line paths into a list of inputs: files, directories walked recursively, and
//! `-` for standard input. Nothing is skipped silently: an unreadable directory entry, or a
//! FIFO, socket or device found in a directory, is an input that fails with its reason.

use std::path::{Path, PathBuf};

/// One thing to hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file, named as given or as found under a directory.
    File(PathBuf),
    /// A path that is not read, with the reason (it could not be listed, or it is a special
    /// file found while walking a directory, where reading could block or never end).
    Refused(PathBuf, String),
}

impl Input {
    /// The name to print for this input.
    pub fn display_name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) | Input::Refused(p, _) => p.display().to_string(),
        }
    }

    /// The path's bytes as the operating system has them (`-` for standard input), for output
    /// formats that can carry any bytes: two different names never print the same.
    pub fn raw_name(&self) -> Vec<u8> {
        match self {
            Input::Stdin => b"-".to_vec(),
            Input::File(p) | Input::Refused(p, _) => os_bytes(p),
        }
    }

    /// Whether the name is valid UTF-8 (JSON can only carry it exactly then).
    pub fn name_is_utf8(&self) -> bool {
        match self {
            Input::Stdin => true,
            Input::File(p) | Input::Refused(p, _) => p.to_str().is_some(),
        }
    }
}

#[cfg(unix)]
fn os_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn os_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

/// Expands the paths given on the command line, in order; directories are walked recursively
/// with their entries sorted by name so the output order is stable.
pub fn expand(paths: &[PathBuf]) -> Vec<Input> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(Input::Stdin);
        } else if path.is_dir() {
            walk(path, &mut out);
        } else {
            // Missing files are inputs too: reading them reports the error in order. A FIFO or
            // device named by the user is read as a stream.
            out.push(Input::File(path.clone()));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<Input>) {
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        match entry {
            Ok(entry) if entry.file_type().is_file() => out.push(Input::File(entry.into_path())),
            Ok(entry) if entry.file_type().is_dir() => {}
            Ok(entry) => {
                let kind = special_kind(&entry.file_type());
                out.push(Input::Refused(
                    entry.into_path(),
                    format!("{kind}, not a regular file: not read (name it to read it)"),
                ));
            }
            Err(err) => {
                let path = err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.to_path_buf());
                out.push(Input::Refused(path, format!("cannot list: {err}")));
            }
        }
    }
}

/// What a special file is, in words.
fn special_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
    }
    let _ = file_type;
    "a special file"
}

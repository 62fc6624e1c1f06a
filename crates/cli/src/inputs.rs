//! Turning command-line paths into a list of inputs: files, directories walked recursively, and
//! `-` for standard input. Nothing is skipped silently: an unreadable directory entry, or a
//! FIFO, socket or device found in a directory, is an input that fails with its reason.
//!
//! Inputs are read as the format needs: the first bytes are read and recognised before
//! anything else, so a large file of another kind is refused after [`SNIFF_BYTES`], and the
//! rest is read only up to a size limit.

use std::io::Read;
use std::path::{Path, PathBuf};

/// How many leading bytes are enough to recognise an image format or a video container.
pub const SNIFF_BYTES: usize = 512;

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

/// An opened input whose first bytes have been read.
pub struct Opened {
    /// Up to [`SNIFF_BYTES`] leading bytes (fewer only if the input is shorter).
    pub head: Vec<u8>,
    /// The rest of the input, positioned after `head`.
    pub rest: Box<dyn Read>,
    /// The file's path when it is a regular file: it can be opened again (libav reads videos
    /// from their path) and its size is known.
    pub regular_file: Option<(PathBuf, u64)>,
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

    /// Opens the input and reads its first [`SNIFF_BYTES`] bytes. A regular file, a FIFO or a
    /// device given by name, and standard input are read once, as a stream: nothing is lost to
    /// the sniffing.
    pub fn open(&self) -> Result<Opened, String> {
        let (reader, regular_file): (Box<dyn Read>, _) = match self {
            Input::Stdin => (Box::new(std::io::stdin()), None),
            Input::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
                let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
                if meta.is_dir() {
                    return Err("is a directory".into());
                }
                let regular = meta.is_file().then(|| (path.clone(), meta.len()));
                (Box::new(file), regular)
            }
            Input::Refused(_, reason) => return Err(reason.clone()),
        };
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut reader = reader;
        (&mut reader)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| format!("cannot read: {e}"))?;
        Ok(Opened {
            head,
            rest: reader,
            regular_file,
        })
    }
}

impl Opened {
    /// The whole input (the head and the rest), refused once it passes `limit` bytes: the
    /// reading stops there, so an endless or huge stream costs at most `limit` bytes.
    pub fn read_all(mut self, limit: u64) -> Result<Vec<u8>, String> {
        let too_large = || format!("larger than the limit of {limit} bytes (--max-file-bytes)");
        if let Some((_, size)) = &self.regular_file {
            if *size > limit {
                return Err(too_large());
            }
        }
        let mut bytes = std::mem::take(&mut self.head);
        let budget = (limit + 1).saturating_sub(bytes.len() as u64);
        self.rest
            .take(budget)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        if bytes.len() as u64 > limit {
            return Err(too_large());
        }
        Ok(bytes)
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

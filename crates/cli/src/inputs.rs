//! Turning command-line paths into a list of inputs: files, directories walked recursively, and
//! `-` for standard input. Nothing is skipped silently: an unreadable directory entry is an input
//! that fails with its reason.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One thing to hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-`).
    Stdin,
    /// A file, named as given or as found under a directory.
    File(PathBuf),
    /// A path that could not be listed, with the reason.
    Unlistable(PathBuf, String),
}

impl Input {
    /// The name to print for this input.
    pub fn display_name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) | Input::Unlistable(p, _) => p.display().to_string(),
        }
    }

    /// The first `n` bytes (fewer if the input is shorter), to recognise the format.
    pub fn read_head(path: &Path, n: usize) -> Result<Vec<u8>, String> {
        let mut head = Vec::with_capacity(n);
        std::fs::File::open(path)
            .and_then(|f| f.take(n as u64).read_to_end(&mut head))
            .map_err(|e| format!("cannot read: {e}"))?;
        Ok(head)
    }

    /// Reads the whole input.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Input::Stdin => {
                let mut buf = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("cannot read standard input: {e}"))?;
                Ok(buf)
            }
            Input::File(path) => std::fs::read(path).map_err(|e| format!("cannot read: {e}")),
            Input::Unlistable(_, reason) => Err(reason.clone()),
        }
    }
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
            // Missing files are inputs too: reading them reports the error in order.
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
            Ok(_) => {}
            Err(err) => {
                let path = err
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| dir.to_path_buf());
                out.push(Input::Unlistable(path, format!("cannot list: {err}")));
            }
        }
    }
}

//! What the hashguard server does, without HTTP and without a command line: the part the
//! `hashguard` binary, the upload server and the organisations' tools share.
//!
//! - [`banks`]: the enabled banks of a database (or one list file) indexed for matching media
//!   and hash values in the clear, and what a match names.
//! - [`blobs`]: where attachment ciphertexts are kept (a trait; a local folder by default).
//! - [`intake`]: the upload decision (deliver, hold, refuse), the per-account threshold log
//!   in the database, and the automatic check by consent.
//! - [`keyset`]: the consensus view of the banks as the protocol's key set K.
//! - [`publish`]: building the next epoch's table directory (manifest chain, kept shards,
//!   build record, write order) and the opening key file.
//! - [`review`]: the gate after decryption (full PDQ distance and the second hash) and the
//!   two-reviewer rule (G4).
//! - [`serving`]: the published table as the upload service holds it (files served byte for
//!   byte with their validators, the opener).
//! - [`slots`]: the two-phase upload: vouchers with the ciphertext's SHA-256 and length
//!   first, then the bytes into an upload slot that enforces both.
//! - [`transparency`]: operating the manifest log: key files, the organisations' checks and
//!   co-signatures, publishing, witness cosignatures, client verification and the audit.
//! - [`verify`]: every check of a table directory that can be made without signatures, and
//!   the organisations' check of the proofs against the key set they rebuild.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod banks;
pub mod blobs;
pub mod intake;
pub mod item_check;
pub mod keyset;
pub mod manifest_log;
pub mod publish;
pub mod review;
pub mod serving;
pub mod slots;
pub mod transparency;
pub mod verify;

/// Why a table could not be built, read or checked.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] hashguard_store::StoreError),
    /// A bank named in the consensus options is not an enabled PDQ bank.
    #[error("no enabled PDQ bank named {0}")]
    NoSuchBank(String),
    /// The consensus parameters are invalid.
    #[error("{0}")]
    Consensus(String),
    /// The consensus view is empty: there is nothing to publish.
    #[error("the consensus view is empty ({banks} banks): nothing to build")]
    EmptyKeySet {
        /// How many banks it was taken from.
        banks: usize,
    },
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot read`, `cannot write`, ...).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not what it must be.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The directory holds another deployment's table, or the same deployment with another
    /// shard count.
    #[error("the table in {}: {reason}", dir.display())]
    Chain {
        /// The table directory.
        dir: std::path::PathBuf,
        /// Why the next epoch cannot continue it.
        reason: String,
    },
    /// The protocol refused the build.
    #[error(transparent)]
    Table(#[from] hashguard_protocol::table::TableError),
    /// The protocol refused the manifest.
    #[error(transparent)]
    Manifest(#[from] hashguard_protocol::manifest::ManifestError),
    /// An option is out of its range.
    #[error("{0}")]
    Invalid(String),
    /// No table has been published in the directory the service was given.
    #[error("no published table in the directory {} (it has no manifest.bin): publish one with `hashguard table build --out {} --key KEYFILE` after importing lists with `hashguard list import`", .0.display(), .0.display())]
    NoTable(std::path::PathBuf),
    /// The operating system gave no randomness.
    #[error("no OS randomness: {0}")]
    Randomness(String),
}

impl ServiceError {
    pub(crate) fn io<'a>(
        what: &'static str,
        path: &'a std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> ServiceError + 'a {
        move |source| ServiceError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn bad_file(path: &std::path::Path, reason: impl std::fmt::Display) -> ServiceError {
        ServiceError::BadFile {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}

/// Lowercase hex.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// 32 bytes from 64 hex digits (surrounding whitespace ignored).
pub fn unhex32(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "expected 64 hex digits, got {} characters",
            s.len()
        ));
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

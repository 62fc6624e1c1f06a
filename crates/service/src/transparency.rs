//! Operating the manifest log (G5; protocol.md 4.3-4.4 as revised by R/E9-E11): key files,
//! the organisations' checks and co-signature files, publishing a co-signed manifest into the
//! log ([`ManifestLog`]), collecting witness cosignatures (C2SP tlog-witness
//! `add-checkpoint`), verifying the log as a client does and auditing all of it.
//!
//! No network code lives here: a log is read through a [`LogSource`] (a folder with
//! [`DirSource`], or anything that serves the same paths) and witnesses are reached through a
//! [`WitnessTransport`], so the command line brings HTTP and the tests can bring anything.
//!
//! Files:
//!
//! ```text
//! service / organisation key   hashguard-ed25519-secret-key <kind> <name> <64 hex digits: seed>
//! log / witness key            a C2SP skey (PRIVATE+KEY+<name>+<id>+<base64>), as Go writes
//! <table>/cosignatures/<org>   hashguard-cosignature v1
//!                              organisation <id>
//!                              epoch <epoch>
//!                              manifest <64 hex digits: SHA-256 of manifest.bin>
//!                              signature <128 hex digits: Ed25519 over the E9 cosign message>
//! co-signer state              CosignerState's one line (`none` or `epoch <n> <hex hash>`)
//! ```
//!
//! Secret files are created with mode 0600 and never overwritten; reading one that others may
//! read is refused.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hashguard_protocol::acceptance::{
    accept_manifest, AcceptError, Accepted, AcceptedState, ManifestBundle, TrustAnchors,
};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::Manifest;
use hashguard_protocol::signed::{
    Cosignature, CosignerState, LogEntry, ServiceSigningKey, SignError, SignedManifest,
};
use hashguard_transparency::checkpoint::{LogSignedCheckpoint, SignedCheckpoint};
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::merkle::{self, Hash};
use hashguard_transparency::note::{Ed25519Signer, NoteVerifier as _};
use hashguard_transparency::policy::{Policy, VerifiedCheckpoint};
use hashguard_transparency::proof::ProofBundle;
use hashguard_transparency::tiles::{self, TileError, TileKind, TilePath};
use zeroize::Zeroizing;

use crate::keyset::KeySet;
use crate::manifest_log::ManifestLog;
use crate::publish::{BuildRecord, TableDir};
use crate::verify::{self, CheckResult};
use crate::{hex, ServiceError};

/// The first word of a service or organisation key file.
pub const ED25519_KEY_HEADER: &str = "hashguard-ed25519-secret-key";
/// The first line of a co-signature file.
pub const COSIGNATURE_FILE_HEADER: &str = "hashguard-cosignature v1";
/// Largest co-signature file read.
const MAX_SMALL_FILE: u64 = 64 * 1024;

/// What a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The service's manifest-signing key (Ed25519; clients pin it as `service-key`).
    Service,
    /// The manifest log's checkpoint key (a signed-note Ed25519 key; its name is the origin).
    Log,
    /// An organisation's co-signing key (Ed25519; clients pin it in an `organisation` line).
    Organisation,
    /// A witness's cosigning key (cosignature/v1; clients pin it in a `witness` line).
    Witness,
}

impl KeyKind {
    /// The kind's name in key files and messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Service => "service",
            KeyKind::Log => "log",
            KeyKind::Organisation => "organisation",
            KeyKind::Witness => "witness",
        }
    }
}

/// A freshly generated key: where its secret went and its public form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// The public key as the trust file wants it: 64 hex digits for service and organisation
    /// keys, a C2SP vkey for log and witness keys.
    pub public: String,
    /// The trust-file line (or line template) that pins it.
    pub trust_line: String,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid(message.into())
}

/// Writes `bytes` to a new file readable by its owner only, refusing to overwrite one.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            invalid(format!(
                "{} exists; refusing to overwrite a key file",
                path.display()
            ))
        } else {
            ServiceError::io("cannot create", path)(e)
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(ServiceError::io("cannot write", path))
}

/// Reads a secret file, refusing one that group or others may read.
fn read_secret(path: &Path) -> Result<Zeroizing<String>, ServiceError> {
    let meta = std::fs::metadata(path).map_err(ServiceError::io("cannot read", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServiceError::bad_file(
                path,
                format!(
                    "this secret key file may be read by others (mode {mode:o}); run chmod 600 on it"
                ),
            ));
        }
    }
    if meta.len() > MAX_SMALL_FILE {
        return Err(ServiceError::bad_file(path, "too large for a key file"));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(ServiceError::io("cannot read", path))?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| ServiceError::bad_file(path, "not a key file (not UTF-8)"))?;
    Ok(Zeroizing::new(text.to_string()))
}

/// A name for a service or organisation key: 1 to 128 printable ASCII characters, no spaces.
fn check_plain_name(name: &str) -> Result<(), ServiceError> {
    if name.is_empty() || name.len() > 128 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!(
            "key name {name:?}: use 1 to 128 printable characters without spaces"
        )));
    }
    Ok(())
}

/// Generates a key of `kind` named `name`, writes its secret to the new file `out` (mode
/// 0600) and returns its public form. A log key's name is the log's origin (e.g.
/// `example.org/hashguard/manifests`); a witness key's name is the witness's name.
pub fn generate_key(kind: KeyKind, name: &str, out: &Path) -> Result<GeneratedKey, ServiceError> {
    let note_err = |e: hashguard_transparency::note::NoteError| {
        invalid(format!(
            "cannot make a {} key named {name:?}: {e}",
            kind.name()
        ))
    };
    match kind {
        KeyKind::Service | KeyKind::Organisation => {
            check_plain_name(name)?;
            let mut seed = Zeroizing::new([0u8; 32]);
            getrandom::fill(seed.as_mut()).map_err(|e| ServiceError::Randomness(e.to_string()))?;
            let key = SigningKey::from_bytes(&seed);
            let text = Zeroizing::new(format!(
                "{ED25519_KEY_HEADER} {} {name} {}\n",
                kind.name(),
                hex(seed.as_ref())
            ));
            write_secret(out, text.as_bytes())?;
            let public = hex(key.verifying_key().as_bytes());
            let trust_line = match kind {
                KeyKind::Service => format!("service-key {public}"),
                _ => format!("organisation <id> <jurisdiction> {public} {name}"),
            };
            Ok(GeneratedKey { public, trust_line })
        }
        KeyKind::Log => {
            let signer = Ed25519Signer::generate(name).map_err(note_err)?;
            let skey = signer.to_skey();
            write_secret(out, format!("{}\n", skey.as_str()).as_bytes())?;
            let public = signer.verifier().to_vkey();
            Ok(GeneratedKey {
                trust_line: format!("log {public}"),
                public,
            })
        }
        KeyKind::Witness => {
            let signer = CosignatureSigner::generate(name).map_err(note_err)?;
            let skey = signer.to_skey();
            write_secret(out, format!("{}\n", skey.as_str()).as_bytes())?;
            let public = signer.verifier().to_vkey();
            Ok(GeneratedKey {
                trust_line: format!("witness <policy name> {public} <url>"),
                public,
            })
        }
    }
}

/// Reads a service or organisation key file written by [`generate_key`] for `kind`.
pub fn read_ed25519_key(path: &Path, kind: KeyKind) -> Result<SigningKey, ServiceError> {
    let text = read_secret(path)?;
    let bad = |why: &str| ServiceError::bad_file(path, why);
    let line = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .trim_end_matches('\r');
    let mut words = line.split(' ');
    let (Some(header), Some(found), Some(_name), Some(seed), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err(bad(&format!(
            "not a {} key (expected `{ED25519_KEY_HEADER} {} NAME SEED`)",
            kind.name(),
            kind.name()
        )));
    };
    if header != ED25519_KEY_HEADER {
        return Err(bad(&format!("not a {} key file", kind.name())));
    }
    if found != kind.name() {
        let article = |k: &str| if k.starts_with('o') { "an" } else { "a" };
        return Err(bad(&format!(
            "this file holds {} {found} key, not {} {} key",
            article(found),
            article(kind.name()),
            kind.name()
        )));
    }
    let seed = Zeroizing::new(
        crate::unhex32(seed).map_err(|e| bad(&format!("the seed is not 64 hex digits: {e}")))?,
    );
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads the log's key file (a C2SP skey of a signed-note Ed25519 key).
pub fn read_log_key(path: &Path) -> Result<Ed25519Signer, ServiceError> {
    let text = read_secret(path)?;
    Ed25519Signer::from_skey(text.trim())
        .map_err(|e| ServiceError::bad_file(path, format!("not a log key (C2SP skey): {e}")))
}

/// Reads a witness's key file (a C2SP skey of a cosignature/v1 key).
pub fn read_witness_key(path: &Path) -> Result<CosignatureSigner, ServiceError> {
    let text = read_secret(path)?;
    CosignatureSigner::from_skey(text.trim())
        .map_err(|e| ServiceError::bad_file(path, format!("not a witness key (C2SP skey): {e}")))
}

/// Writes `bytes` to `path` durably and atomically: a temporary file in the same folder,
/// flushed to disk, renamed over `path`, and the folder flushed.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ServiceError> {
    let name = path
        .file_name()
        .ok_or_else(|| invalid(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut file =
            std::fs::File::create(&tmp).map_err(ServiceError::io("cannot create", &tmp))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(ServiceError::io("cannot write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(ServiceError::io("cannot write", path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Makes the rename itself durable; not every platform can open a folder.
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(ServiceError::io("cannot sync", dir))?;
        }
    }
    Ok(())
}

/// An organisation's co-signature as a file in the table folder ([`cosignatures_dir`]), what
/// the organisation sends the service after `hashguard table cosign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignatureFile {
    /// The organisation's id as clients pin it.
    pub org_id: u16,
    /// The co-signed manifest's epoch.
    pub epoch: u32,
    /// SHA-256 of the co-signed manifest's encoding.
    pub manifest_hash: [u8; 32],
    /// Ed25519 over `SHA-256("PDQTPSI-v1/cosign" ‖ manifest_core)`.
    pub signature: [u8; 64],
}

impl CosignatureFile {
    /// The file's text (see the module documentation).
    pub fn encode(&self) -> String {
        format!(
            "{COSIGNATURE_FILE_HEADER}\norganisation {}\nepoch {}\nmanifest {}\nsignature {}\n",
            self.org_id,
            self.epoch,
            hex(&self.manifest_hash),
            hex(&self.signature)
        )
    }

    /// Strict reading of [`CosignatureFile::encode`]'s text.
    pub fn decode(text: &str) -> Result<Self, String> {
        let mut lines = text
            .strip_suffix('\n')
            .ok_or("it does not end with a newline")?
            .split('\n');
        if lines.next() != Some(COSIGNATURE_FILE_HEADER) {
            return Err(format!("the first line is not {COSIGNATURE_FILE_HEADER:?}"));
        }
        let mut field = |name: &str| -> Result<String, String> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| format!("no `{name}` line where expected"))
        };
        let number = |s: String, what: &str| -> Result<u64, String> {
            s.parse::<u64>()
                .ok()
                .filter(|n| n.to_string() == s)
                .ok_or_else(|| format!("{what} is not a number"))
        };
        let org_id = u16::try_from(number(field("organisation")?, "organisation")?)
            .map_err(|_| "organisation is above 65535".to_string())?;
        let epoch = u32::try_from(number(field("epoch")?, "epoch")?)
            .map_err(|_| "epoch is too large".to_string())?;
        let manifest_hash =
            crate::unhex32(&field("manifest")?).map_err(|e| format!("manifest: {e}"))?;
        let sig = field("signature")?;
        if sig.len() != 128 {
            return Err("signature is not 128 hex digits".into());
        }
        let mut signature = [0u8; 64];
        for (half, out) in [&sig[..64], &sig[64..]]
            .iter()
            .zip(signature.chunks_mut(32))
        {
            out.copy_from_slice(&crate::unhex32(half).map_err(|e| format!("signature: {e}"))?);
        }
        if lines.next().is_some() {
            return Err("text after the signature line".into());
        }
        Ok(CosignatureFile {
            org_id,
            epoch,
            manifest_hash,
            signature,
        })
    }
}

/// The manifest log of a table folder: `<table>/log`.
pub fn table_log(table: &TableDir) -> ManifestLog {
    ManifestLog::new(table.path().join("log"))
}

/// The folder of co-signature files: `<table>/cosignatures`.
pub fn cosignatures_dir(table: &TableDir) -> PathBuf {
    table.path().join("cosignatures")
}

/// The co-signature file of organisation `org_id`: `<table>/cosignatures/<org_id>`.
pub fn cosignature_path(table: &TableDir, org_id: u16) -> PathBuf {
    cosignatures_dir(table).join(org_id.to_string())
}

/// The organisation's checks before co-signing (R/E11 step 2), each named, in order: the
/// summary, the validity window at `now`, the chain of kept manifests, the client's checks of
/// every shard (roots, layouts, points valid and not the identity), the build record against
/// the manifest, the build rule (at least 2 organisations from 2 jurisdictions, G5), the
/// record's counts against `key_set` (the key set K the organisation rebuilt from every
/// participating organisation's list with the record's rule), and every shard's DLEQ proof
/// against K. Co-sign only if every result is `Ok`.
pub fn organisation_checks(
    table: &TableDir,
    record: &BuildRecord,
    key_set: &KeySet,
    pool: &rayon::ThreadPool,
    now: u64,
) -> Result<Vec<(String, CheckResult)>, ServiceError> {
    let manifest = read_table_manifest(table)?;
    let descriptor = manifest
        .table(TableKind::Pdq)
        .ok_or_else(|| invalid("the manifest has no PDQ table"))?;
    let spec = manifest
        .table_spec(TableKind::Pdq)
        .ok_or_else(|| invalid("the manifest has no PDQ table"))?;
    let shards = table.read_shards(descriptor)?;
    let mut out: Vec<(String, CheckResult)> = vec![
        (
            "manifest.txt".into(),
            verify::check_summary(table, &manifest),
        ),
        ("validity".into(), verify::check_window(&manifest, now)),
        ("chain".into(), verify::check_chain(table, &manifest)),
        (
            "client checks".into(),
            verify::check_client(&manifest, &shards),
        ),
        ("build.json".into(), verify::check_record(record, &manifest)),
    ];
    let rule = if record.min_organisations >= 2 && record.min_jurisdictions >= 2 {
        Ok(format!(
            "entries supported by at least {} organisations from {} jurisdictions within distance {}",
            record.min_organisations, record.min_jurisdictions, record.distance
        ))
    } else {
        Err(format!(
            "the table was built with at least {} organisation(s) from {} jurisdiction(s); G5 requires 2 from 2",
            record.min_organisations, record.min_jurisdictions
        ))
    };
    out.push(("build rule".into(), rule));
    out.push((
        "build.json counts".into(),
        verify::check_record_counts(record, key_set),
    ));
    let failures = verify::check_proofs(pool, &spec, descriptor, &shards, &key_set.keys);
    out.push((
        "DLEQ proofs".into(),
        if failures.is_empty() {
            Ok(format!(
                "{} shards encode exactly the rebuilt key set",
                shards.len()
            ))
        } else {
            let list: Vec<String> = failures
                .iter()
                .map(|(s, e)| format!("shard {s}: {e}"))
                .collect();
            Err(list.join("; "))
        },
    ));
    Ok(out)
}

fn read_table_manifest(table: &TableDir) -> Result<Manifest, ServiceError> {
    table
        .read_manifest()?
        .ok_or_else(|| ServiceError::NoTable(table.path().to_path_buf()))
}

/// What [`cosign_table`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// The co-signed epoch.
    pub epoch: u32,
    /// The co-signed manifest's hash.
    pub manifest_hash: [u8; 32],
    /// The co-signature file written.
    pub file: PathBuf,
    /// Whether the state file did not exist (this organisation's first co-signature).
    pub first: bool,
}

/// Co-signs the table's manifest for organisation `org_id` under the stateful rule of R/E11
/// step 3 ([`CosignerState::cosign`]), after the caller's checks
/// ([`organisation_checks`]) passed. The state file (created if missing) is written durably
/// **before** the co-signature file `<table>/cosignatures/<org_id>`, so a crash can lose a
/// signature but never let this organisation sign two manifests for one epoch.
pub fn cosign_table(
    table: &TableDir,
    org_id: u16,
    key: &SigningKey,
    state_path: &Path,
) -> Result<Cosigned, ServiceError> {
    let manifest = read_table_manifest(table)?;
    let (mut state, first) = match std::fs::read_to_string(state_path) {
        Ok(text) => (
            CosignerState::decode(&text).map_err(|e| {
                ServiceError::bad_file(state_path, format!("not a co-signer state: {e}"))
            })?,
            false,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (CosignerState::new(), true),
        Err(e) => return Err(ServiceError::io("cannot read", state_path)(e)),
    };
    let cosignature = state.cosign(org_id, key, &manifest).map_err(|e| match e {
        SignError::CosignRefused(reason) => invalid(format!(
            "refusing to co-sign epoch {}: organisation {org_id} {}",
            manifest.epoch(),
            if reason.starts_with("already") {
                reason
            } else {
                format!("cannot: {reason}")
            }
        )),
        other => invalid(other.to_string()),
    })?;
    write_durably(state_path, state.encode().as_bytes())?;
    let dir = cosignatures_dir(table);
    std::fs::create_dir_all(&dir).map_err(ServiceError::io("cannot create", &dir))?;
    let file = cosignature_path(table, org_id);
    let content = CosignatureFile {
        org_id,
        epoch: manifest.epoch(),
        manifest_hash: manifest.hash(),
        signature: cosignature.signature,
    };
    write_durably(&file, content.encode().as_bytes())?;
    Ok(Cosigned {
        epoch: manifest.epoch(),
        manifest_hash: manifest.hash(),
        file,
        first,
    })
}

/// The co-signatures of `manifest` found in the table's co-signature folder, by organisation,
/// and a note for each file that co-signs another manifest (an earlier epoch's, ignored).
/// Refuses a malformed file or one whose name is not its organisation id.
pub fn read_cosignatures(
    table: &TableDir,
    manifest: &Manifest,
) -> Result<(Vec<Cosignature>, Vec<String>), ServiceError> {
    let dir = cosignatures_dir(table);
    let listing = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(ServiceError::io("cannot read", &dir)(e)),
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in listing {
        let entry = entry.map_err(ServiceError::io("cannot read", &dir))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            continue;
        }
        paths.push(path);
    }
    paths.sort();
    let hash = manifest.hash();
    let (mut found, mut notes) = (Vec::new(), Vec::new());
    for path in paths {
        let meta = std::fs::metadata(&path).map_err(ServiceError::io("cannot read", &path))?;
        if meta.len() > MAX_SMALL_FILE {
            return Err(ServiceError::bad_file(
                &path,
                "too large for a co-signature",
            ));
        }
        let text =
            std::fs::read_to_string(&path).map_err(ServiceError::io("cannot read", &path))?;
        let file = CosignatureFile::decode(&text)
            .map_err(|e| ServiceError::bad_file(&path, format!("not a co-signature file: {e}")))?;
        if path.file_name().and_then(|n| n.to_str()) != Some(file.org_id.to_string().as_str()) {
            return Err(ServiceError::bad_file(
                &path,
                format!(
                    "this is organisation {}'s co-signature; its file must be named {}",
                    file.org_id, file.org_id
                ),
            ));
        }
        if file.manifest_hash != hash {
            notes.push(format!(
                "{}: co-signs another manifest (epoch {}), ignored",
                path.display(),
                file.epoch
            ));
            continue;
        }
        found.push(Cosignature {
            org_id: file.org_id,
            signature: file.signature,
        });
    }
    Ok((found, notes))
}

/// Checks co-signatures against the pinned organisations and the G5 rule: each one from a
/// pinned organisation valid, at least the anchors' minimum of organisations and
/// jurisdictions. Returns the co-signers' names.
pub fn check_cosigners(
    manifest: &Manifest,
    cosignatures: &[Cosignature],
    anchors: &TrustAnchors,
) -> Result<Vec<String>, String> {
    let message = manifest.cosign_message();
    let mut names = Vec::new();
    let mut jurisdictions: Vec<[u8; 2]> = Vec::new();
    for c in cosignatures {
        let Some(org) = anchors.organisations.iter().find(|o| o.id == c.org_id) else {
            continue;
        };
        org.key
            .verify_strict(&message, &Signature::from_bytes(&c.signature))
            .map_err(|_| {
                format!(
                    "organisation {} ({})'s co-signature is not valid",
                    org.id, org.name
                )
            })?;
        names.push(format!(
            "{} ({})",
            org.name,
            String::from_utf8_lossy(&org.jurisdiction)
        ));
        if !jurisdictions.contains(&org.jurisdiction) {
            jurisdictions.push(org.jurisdiction);
        }
    }
    if names.len() < anchors.min_cosigners || jurisdictions.len() < anchors.min_jurisdictions {
        return Err(format!(
            "co-signed by {} pinned organisation(s) from {} jurisdiction(s); at least {} from {} are required",
            names.len(),
            jurisdictions.len(),
            anchors.min_cosigners,
            anchors.min_jurisdictions
        ));
    }
    Ok(names)
}

/// What [`publish_manifest`] did.
#[derive(Debug, Clone)]
pub struct Logged {
    /// The signed manifest as logged.
    pub signed: SignedManifest,
    /// Its index in the log (0-based).
    pub index: u64,
    /// The log's size before this manifest (what the witnesses last saw).
    pub previous_size: u64,
    /// False if the manifest was already the log's last entry (a re-run after a failure).
    pub appended: bool,
    /// Co-signature files ignored (they co-sign earlier manifests).
    pub notes: Vec<String>,
}

/// Signs the table's manifest with the co-signatures in its co-signature folder and appends
/// it to the table's log (`<table>/log`). Appending cannot be undone, so it first requires at
/// least two co-signatures and, with `anchors`, checks them as clients will
/// ([`check_cosigners`]). A manifest that is already the log's last entry is not appended
/// again.
pub fn publish_manifest(
    table: &TableDir,
    service: &ServiceSigningKey,
    log: &Ed25519Signer,
    anchors: Option<&TrustAnchors>,
) -> Result<Logged, ServiceError> {
    let manifest = read_table_manifest(table)?;
    let (cosignatures, notes) = read_cosignatures(table, &manifest)?;
    if cosignatures.len() < 2 {
        return Err(invalid(format!(
            "refusing to publish epoch {}: {} co-signature(s) in {}; clients require at least 2 organisations from 2 jurisdictions (hashguard table cosign)",
            manifest.epoch(),
            cosignatures.len(),
            cosignatures_dir(table).display()
        )));
    }
    if let Some(anchors) = anchors {
        if manifest.deployment_id() != &anchors.deployment_id {
            return Err(invalid(format!(
                "refusing to publish epoch {}: the manifest belongs to another deployment than the trust file's",
                manifest.epoch()
            )));
        }
        check_cosigners(&manifest, &cosignatures, anchors).map_err(|e| {
            invalid(format!(
                "refusing to publish epoch {}: {e}",
                manifest.epoch()
            ))
        })?;
    }
    let mlog = table_log(table);
    let verifier = log.verifier();
    let existing = match mlog.open_checkpoint(&verifier)? {
        Some(cp) => mlog.entries(cp.checkpoint())?,
        None => Vec::new(),
    };
    if let Some(last) = existing.last() {
        let entry = LogEntry::decode(last).map_err(|e| ServiceError::bad_file(mlog.path(), e))?;
        if entry.manifest_hash() == &manifest.hash() {
            let bytes = std::fs::read(mlog.manifest_path(entry.manifest_hash())).map_err(
                ServiceError::io("cannot read", &mlog.manifest_path(entry.manifest_hash())),
            )?;
            let signed = SignedManifest::open(&bytes, last)
                .map_err(|e| ServiceError::bad_file(mlog.path(), e))?;
            let index = existing.len() as u64 - 1;
            return Ok(Logged {
                signed,
                index,
                previous_size: index,
                appended: false,
                notes,
            });
        }
    }
    let signed = SignedManifest::sign(manifest, cosignatures, service)
        .map_err(|e| invalid(e.to_string()))?;
    let previous_size = existing.len() as u64;
    mlog.append(&signed, log)?;
    Ok(Logged {
        signed,
        index: previous_size,
        previous_size,
        appended: true,
        notes,
    })
}

/// A witness's HTTP answer, as the transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header (empty if none).
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

/// How to reach witnesses: one `POST <url>/add-checkpoint` with `body` (c2sp.org/tlog-witness).
pub trait WitnessTransport {
    /// Sends the request; `Err` for a network failure (no answer).
    fn add_checkpoint(&mut self, url: &str, body: &[u8]) -> Result<WitnessReply, String>;
}

/// What one witness did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessResult {
    /// The witness's URL.
    pub url: String,
    /// Its name (the policy's name when a trust file pins it, else its key's name) and the
    /// cosignature's time, or why it gave none.
    pub outcome: Result<(String, u64), String>,
}

/// The `add-checkpoint` request body: `old <size>`, the consistency proof, a blank line, the
/// checkpoint note.
pub fn add_checkpoint_body(old_size: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    let mut out = format!("old {old_size}\n").into_bytes();
    for h in proof {
        out.extend_from_slice(h.to_base64().as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(checkpoint);
    out
}

/// Asks one witness to cosign `plain` (the checkpoint with the log's signature only), whose
/// tree the log `mlog` holds, starting from `old_size`; on 409 with the witness's size
/// (`text/x.tlog.size`) it retries once from that size. Returns the cosignature lines the
/// witness sent, parsed, each checked: with `policy`, a line must be a valid cosignature of a
/// pinned witness (named as the policy names it); without, it must have a cosignature/v1's
/// length (it cannot be verified).
fn ask_witness(
    mlog: &ManifestLog,
    plain: &LogSignedCheckpoint,
    url: &str,
    mut old_size: u64,
    policy: Option<&Policy>,
    transport: &mut dyn WitnessTransport,
) -> Result<Vec<(hashguard_transparency::note::NoteSignature, String, u64)>, String> {
    let size = plain.checkpoint().size();
    let note = plain.signed().to_bytes();
    let mut retried = false;
    let reply = loop {
        let proof = if old_size == 0 || old_size >= size {
            Vec::new()
        } else {
            mlog.consistency(old_size, size)
                .map_err(|e| e.to_string())?
        };
        let reply = transport.add_checkpoint(url, &add_checkpoint_body(old_size, &proof, &note))?;
        if reply.status == 409 && reply.content_type.starts_with("text/x.tlog.size") && !retried {
            let text = String::from_utf8_lossy(&reply.body);
            let known: u64 = text
                .trim_end_matches('\n')
                .parse()
                .map_err(|_| format!("409 with an unreadable size {:?}", text.trim()))?;
            if known > size {
                return Err(format!(
                    "the witness has cosigned a tree of {known} entries, larger than this log's {size}: a fork or another log under this origin"
                ));
            }
            old_size = known;
            retried = true;
            continue;
        }
        break reply;
    };
    if reply.status != 200 {
        let text = String::from_utf8_lossy(&reply.body);
        let first = text.lines().next().unwrap_or("").trim();
        return Err(format!("answered {}: {first}", reply.status));
    }
    let mut combined = note.clone();
    combined.extend_from_slice(&reply.body);
    let parsed = SignedCheckpoint::parse(&combined)
        .map_err(|e| format!("its answer is not cosignature lines: {e}"))?;
    let before = plain.signed().note().signatures().len();
    let lines = parsed.note().signatures().get(before..).unwrap_or(&[]);
    if lines.is_empty() {
        return Err("answered 200 without a cosignature".into());
    }
    let body = plain.checkpoint().to_body();
    let mut out = Vec::new();
    for line in lines {
        if line.name() == plain.log_key().name() && line.key_id() == plain.log_key().key_id() {
            return Err("answered with the log's own key".into());
        }
        match policy {
            Some(policy) => {
                let w = policy
                    .witnesses()
                    .iter()
                    .find(|w| w.key.name() == line.name() && w.key.key_id() == line.key_id())
                    .ok_or_else(|| {
                        format!(
                            "answered with key {:?}, which the trust file does not pin",
                            line.name()
                        )
                    })?;
                let ts = w
                    .key
                    .verify_cosignature(&body, line)
                    .map_err(|e| format!("its cosignature does not verify: {e}"))?;
                out.push((line.clone(), w.name.clone(), ts));
            }
            None => {
                let sig = line.signature();
                if sig.len() != 72 {
                    return Err("answered a line that is not a cosignature/v1".into());
                }
                let mut ts = [0u8; 8];
                ts.copy_from_slice(&sig[..8]);
                out.push((
                    line.clone(),
                    line.name().to_string(),
                    u64::from_be_bytes(ts),
                ));
            }
        }
    }
    Ok(out)
}

/// Asks every witness in `urls` to cosign the log's current checkpoint (c2sp.org/tlog-witness
/// `add-checkpoint`, from `old_size`: the size the witnesses last saw), then stores the
/// checkpoint with the cosignatures gathered; a witness that fails keeps its earlier
/// cosignature, if the stored checkpoint had one for this tree. One result per witness.
pub fn collect_cosignatures(
    table: &TableDir,
    log: &Ed25519Signer,
    urls: &[String],
    old_size: u64,
    policy: Option<&Policy>,
    transport: &mut dyn WitnessTransport,
) -> Result<(SignedCheckpoint, Vec<WitnessResult>), ServiceError> {
    let mlog = table_log(table);
    let verifier = log.verifier();
    let stored = mlog
        .open_checkpoint(&verifier)?
        .ok_or_else(|| invalid(format!("{} holds no log yet", table.path().display())))?;
    let plain = stored
        .checkpoint()
        .sign(log)
        .and_then(|c| c.open(&verifier))
        .map_err(|e| invalid(format!("cannot sign the checkpoint: {e}")))?;
    let mut merged = stored.signed().clone();
    let mut results = Vec::new();
    for url in urls {
        let outcome = ask_witness(&mlog, &plain, url, old_size, policy, transport);
        let outcome = match outcome {
            Ok(lines) => {
                let mut named = None;
                for (line, name, ts) in lines {
                    merged
                        .add_signature(line)
                        .map_err(|e| invalid(format!("cannot add a cosignature: {e}")))?;
                    named.get_or_insert((name, ts));
                }
                named.ok_or_else(|| "no cosignature".to_string())
            }
            Err(e) => Err(e),
        };
        results.push(WitnessResult {
            url: url.clone(),
            outcome,
        });
    }
    mlog.store_checkpoint(&merged)?;
    Ok((merged, results))
}

/// Where a log is read from: the paths of the C2SP tiles layout (`checkpoint`,
/// `tile/...`, `manifests/<hex>`) relative to the log's root.
pub trait LogSource {
    /// The file at `path`, or why it cannot be had.
    fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String>;
}

/// A log in a folder (`<table>/log`, or a copy of one).
#[derive(Debug, Clone)]
pub struct DirSource(pub PathBuf);

impl LogSource for DirSource {
    fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        // Every path asked for is a canonical tile path, `checkpoint` or `manifests/<hex>`.
        if path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(format!("{path}: not a log path"));
        }
        std::fs::read(self.0.join(path)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "not found".to_string(),
            _ => e.to_string(),
        })
    }
}

/// The log's manifest file path for a manifest hash.
pub fn manifest_file(hash: &[u8; 32]) -> String {
    format!("manifests/{}", hex(hash))
}

/// The settings-screen line for a manifest: `Safety database: epoch 3 · root 9f2c…e1a0 ·
/// logged as entry 2 of 3 · witnessed by witness-gb, witness-de`.
pub fn settings_line(manifest: &Manifest, index: u64, size: u64, witnesses: &[String]) -> String {
    let root = manifest
        .table(TableKind::Pdq)
        .map(|t| {
            let h = hex(&t.table_root());
            format!("{}…{}", &h[..4], &h[h.len() - 4..])
        })
        .unwrap_or_else(|| "none".into());
    let witnessed = if witnesses.is_empty() {
        "not witnessed".to_string()
    } else {
        format!("witnessed by {}", witnesses.join(", "))
    };
    format!(
        "Safety database: epoch {} · root {root} · logged as entry {index} of {size} · {witnessed}",
        manifest.epoch()
    )
}

fn fetch_tile<'a>(
    source: &'a mut dyn LogSource,
    count: &'a mut usize,
) -> impl FnMut(&TilePath) -> Result<Vec<u8>, String> + 'a {
    move |t: &TilePath| {
        *count += 1;
        source.fetch(&t.to_string())
    }
}

/// What a client-side verification of a log found.
#[derive(Debug, Clone)]
pub struct ClientView {
    /// The accepted manifest.
    pub accepted: Accepted,
    /// The checkpoint under the trust file's policy.
    pub checkpoint: VerifiedCheckpoint,
    /// The accepted manifest's index in the log.
    pub index: u64,
}

/// Verifies a log as a client would at time `now`: the checkpoint under the trust file's
/// policy (log key, witness quorum, freshness), then the bundle of the manifest in force (the
/// newest entry whose `not_before ≤ now`) with inclusion proofs computed from the tiles, put
/// through [`accept_manifest`] (all E10 rules). With `previous` (what an earlier run
/// accepted), the log must extend the checkpoint accepted then (rule 4: the consistency proof
/// is computed from the tiles; a fork is reported with its evidence) and the epoch must not go
/// back.
pub fn verify_as_client(
    source: &mut dyn LogSource,
    anchors: &TrustAnchors,
    previous: Option<&AcceptedState>,
    now: u64,
) -> Result<ClientView, String> {
    let bytes = source
        .fetch("checkpoint")
        .map_err(|e| format!("checkpoint: {e}"))?;
    let checkpoint = anchors
        .log_policy
        .verify_checkpoint_bytes(&bytes)
        .map_err(|e| format!("checkpoint: {e}"))?;
    let signed = checkpoint.log_signed().signed().clone();
    let cp = checkpoint.checkpoint().clone();
    let mut count = 0;
    let entries = tiles::audit(&cp, fetch_tile(source, &mut count)).map_err(|e| e.to_string())?;
    let decoded: Vec<LogEntry> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| LogEntry::decode(e).map_err(|err| format!("entry {i}: {err}")))
        .collect::<Result<_, _>>()?;
    let index = decoded
        .iter()
        .rposition(|e| e.not_before() <= now)
        .unwrap_or(0);
    let entry = decoded.get(index).ok_or("the log is empty")?;
    let path = manifest_file(entry.manifest_hash());
    let manifest = source.fetch(&path).map_err(|e| format!("{path}: {e}"))?;
    let size = cp.size();
    let mut proof = |i: u64| -> Result<Vec<u8>, String> {
        let p =
            tiles::inclusion_proof_from_tiles(size, i, |t: &TilePath| source.fetch(&t.to_string()))
                .map_err(|e| e.to_string())?;
        Ok(ProofBundle::new(i, p, signed.clone(), None)
            .map_err(|e| e.to_string())?
            .to_bytes())
    };
    let index_u = index as u64;
    let bundle = ManifestBundle {
        manifest,
        entry: entries[index].clone(),
        proof: proof(index_u)?,
        later: (index_u + 1..size)
            .map(|i| Ok((entries[i as usize].clone(), proof(i)?)))
            .collect::<Result<_, String>>()?,
    };
    let old_size = previous.map_or(0, |p| p.checkpoint().checkpoint().size());
    let consistency = if old_size == 0 || old_size >= size {
        Vec::new()
    } else {
        tiles::consistency_proof_from_tiles(old_size, size, |t: &TilePath| {
            source.fetch(&t.to_string())
        })
        .map_err(|e| format!("the consistency proof from {old_size} entries: {e}"))?
    };
    let accepted =
        accept_manifest(&bundle, &consistency, anchors, previous, now).map_err(|e| match e {
            AcceptError::Fork(evidence) => format!(
                "the log forked: two signed checkpoints disagree; the evidence, for auditors and witnesses:\n{}",
                evidence.to_text()
            ),
            other => other.to_string(),
        })?;
    Ok(ClientView {
        accepted,
        checkpoint,
        index: index_u,
    })
}

/// What an audit found: one line per finding, for printing.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// Findings, in order.
    pub lines: Vec<String>,
}

/// Explains a tile audit failure: when the hash tiles alone give the checkpoint's root, the
/// entry bundles were altered, so the first entry that does not hash to its tile is named.
fn explain_tile_error(
    source: &mut dyn LogSource,
    size: u64,
    root: &Hash,
    err: TileError,
) -> String {
    let TileError::TileMismatch { .. } = &err else {
        return err.to_string();
    };
    let mut fetch = |t: &TilePath| source.fetch(&t.to_string());
    if tiles::root_from_tiles(size, &mut fetch).ok().as_ref() != Some(root) {
        return err.to_string();
    }
    // The hash tiles are the checkpoint's tree: find the entry that disagrees with them.
    for t in tiles::tiles_for_size(size) {
        if t.kind() != TileKind::Entries {
            continue;
        }
        let Ok(level0) = TilePath::hashes(0, t.index(), t.width()) else {
            continue;
        };
        let (Ok(bundle), Ok(hashes)) = (fetch(&t), fetch(&level0)) else {
            continue;
        };
        let Ok(entries) = tiles::parse_entry_bundle(&t, &bundle) else {
            continue;
        };
        for (i, (e, h)) in entries.iter().zip(hashes.chunks(32)).enumerate() {
            if merkle::leaf_hash(e).as_bytes()[..] != *h {
                return format!(
                    "{t}: entry {} is not the entry the log's hash tiles and checkpoint commit to",
                    t.index() * tiles::TILE_WIDTH + i as u64
                );
            }
        }
    }
    err.to_string()
}

/// Audits a whole log at time `now` (an auditor's `hashguard log audit`): the checkpoint under
/// the trust file's policy, every tile and entry bundle (every hash and the root recomputed),
/// then every entry: its encoding, the service's signature, the deployment, epochs strictly
/// increasing (so exactly one manifest per epoch), the prev-hash chain, the manifest file
/// against the entry's hash, every co-signature of a pinned organisation valid, and at least
/// the trust file's minimum of co-signers and jurisdictions. With `tables`, the published
/// table's manifest must be logged, every kept epoch manifest in it must be the logged one,
/// and its shards' roots are recomputed and compared with the manifest. Stops at the first
/// problem, naming it.
pub fn audit_log(
    source: &mut dyn LogSource,
    anchors: &TrustAnchors,
    tables: Option<&TableDir>,
    now: u64,
) -> Result<AuditReport, String> {
    let mut report = AuditReport::default();
    let bytes = source
        .fetch("checkpoint")
        .map_err(|e| format!("checkpoint: {e}"))?;
    let checkpoint = anchors
        .log_policy
        .verify_checkpoint_bytes(&bytes)
        .map_err(|e| format!("checkpoint: {e}"))?;
    let cp = checkpoint.checkpoint().clone();
    let witnesses: Vec<String> = checkpoint
        .cosignatures()
        .iter()
        .map(|c| format!("{} at {}", c.witness, c.timestamp))
        .collect();
    report.lines.push(format!(
        "checkpoint: {} size {} root {}, log signature ok, witness quorum ok ({})",
        cp.origin(),
        cp.size(),
        cp.root_hash().to_hex(),
        if witnesses.is_empty() {
            "no witness required".to_string()
        } else {
            witnesses.join(", ")
        }
    ));
    // An old quorum says nothing against the log's history (an archived copy is still
    // auditable), but clients refuse it: reported, not fatal.
    if !checkpoint.quorum_fresh(now, anchors.max_checkpoint_age) {
        report.lines.push(format!(
            "warning: the witnesses' quorum is older than {} hours; clients refuse this checkpoint until it is witnessed again (hashguard log witness)",
            anchors.max_checkpoint_age / 3600
        ));
    }
    let mut count = 0usize;
    let audited = tiles::audit(&cp, fetch_tile(source, &mut count));
    let entries = match audited {
        Ok(e) => e,
        Err(err) => return Err(explain_tile_error(source, cp.size(), cp.root_hash(), err)),
    };
    report.lines.push(format!(
        "tiles: {count} files, every hash and the root recomputed: they are the checkpoint's tree"
    ));
    let mut previous: Option<LogEntry> = None;
    let mut logged_manifests: Vec<Manifest> = Vec::new();
    for (i, bytes) in entries.iter().enumerate() {
        let entry = LogEntry::decode(bytes).map_err(|e| format!("entry {i}: {e}"))?;
        let epoch = entry.epoch();
        let at = format!("entry {i} (epoch {epoch})");
        if !entry.service_signature_valid(&anchors.service_key) {
            return Err(format!("{at}: the service's signature is not valid"));
        }
        if entry.deployment_id() != &anchors.deployment_id {
            return Err(format!("{at}: another deployment's manifest"));
        }
        if let Some(prev) = &previous {
            if epoch <= prev.epoch() {
                return Err(format!(
                    "{at}: epoch {epoch} follows epoch {} (two manifests for one epoch, or a rollback)",
                    prev.epoch()
                ));
            }
            if entry.prev_manifest_hash() != prev.manifest_hash() {
                return Err(format!(
                    "{at}: prev_manifest_hash is not the hash of the manifest of entry {} (epoch {}): the chain is broken",
                    i - 1,
                    prev.epoch()
                ));
            }
        }
        let path = manifest_file(entry.manifest_hash());
        let manifest = source.fetch(&path).map_err(|e| format!("{path}: {e}"))?;
        if sha256(&manifest) != *entry.manifest_hash() {
            return Err(format!(
                "{path}: its SHA-256 is not the manifest hash of {at}"
            ));
        }
        let signed =
            SignedManifest::open(&manifest, bytes).map_err(|e| format!("{path}: {e} ({at})"))?;
        let names = check_cosigners(signed.manifest(), entry.cosignatures(), anchors)
            .map_err(|e| format!("{at}: {e}"))?;
        let unpinned = entry
            .cosignatures()
            .iter()
            .filter(|c| !anchors.organisations.iter().any(|o| o.id == c.org_id))
            .count();
        let root = signed
            .manifest()
            .table(TableKind::Pdq)
            .map(|t| hex(&t.table_root()))
            .unwrap_or_else(|| "none".into());
        report.lines.push(format!(
            "{at}: root {root}, valid [{}, {}), signed by the service, co-signed by {}{}{}",
            entry.not_before(),
            entry.not_after(),
            names.join(", "),
            if unpinned > 0 {
                format!(" (+{unpinned} unpinned, ignored)")
            } else {
                String::new()
            },
            if entry.revokes().is_empty() {
                String::new()
            } else {
                format!(", revokes epochs {:?}", entry.revokes())
            }
        ));
        logged_manifests.push(signed.manifest().clone());
        previous = Some(entry);
    }
    if let (Some(first), Some(last)) = (logged_manifests.first(), logged_manifests.last()) {
        report.lines.push(format!(
            "entries: {} manifests, epochs {} to {}, one per epoch, the chain intact{}",
            logged_manifests.len(),
            first.epoch(),
            last.epoch(),
            if first.epoch() == 1 {
                " from epoch 1".to_string()
            } else {
                format!(" (the log starts at epoch {})", first.epoch())
            }
        ));
    }
    if let Some(table) = tables {
        report.lines.push(audit_table(table, &logged_manifests)?);
    }
    Ok(report)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The `--tables` part of the audit: the published manifest is logged, every kept epoch
/// manifest is the logged one, the shards' roots are the manifest's.
fn audit_table(table: &TableDir, logged: &[Manifest]) -> Result<String, String> {
    let manifest = read_table_manifest(table).map_err(|e| e.to_string())?;
    let mpath = table.manifest_path();
    if !logged.iter().any(|m| m.hash() == manifest.hash()) {
        return Err(format!(
            "{}: this manifest (epoch {}) is not in the log",
            mpath.display(),
            manifest.epoch()
        ));
    }
    for m in logged {
        let path = table.epoch_manifest_path(m.epoch());
        match std::fs::read(&path) {
            Ok(bytes) if sha256(&bytes) == m.hash() => {}
            Ok(_) => {
                return Err(format!(
                    "{}: not the manifest the log holds for epoch {}",
                    path.display(),
                    m.epoch()
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    let descriptor = manifest
        .table(TableKind::Pdq)
        .ok_or("the table's manifest has no PDQ table")?;
    let shards = table.read_shards(descriptor).map_err(|e| e.to_string())?;
    verify::check_client(&manifest, &shards).map_err(|e| {
        format!(
            "{}: the shard files do not give the logged roots of epoch {}: {e}",
            table.path().display(),
            manifest.epoch()
        )
    })?;
    Ok(format!(
        "tables: epoch {} in {}: {} shard roots and the table root {} recomputed from the shard files and equal to the logged manifest's",
        manifest.epoch(),
        table.path().display(),
        shards.len(),
        hex(&descriptor.table_root())
    ))
}

/// Parses a trust file for the parameters `pinned` (the client's own).
pub fn read_trust_file(
    path: &Path,
    pinned: hashguard_protocol::params::PinnedParams,
) -> Result<TrustAnchors, ServiceError> {
    let text = std::fs::read_to_string(path).map_err(ServiceError::io("cannot read", path))?;
    TrustAnchors::parse(&text, pinned).map_err(|e| ServiceError::bad_file(path, e))
}

/// The verifying key of a signing key, as 64 hex digits.
pub fn public_hex(key: &VerifyingKey) -> String {
    hex(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosignature_files_round_trip_strictly() {
        let f = CosignatureFile {
            org_id: 7,
            epoch: 3,
            manifest_hash: [0xab; 32],
            signature: [0x5c; 64],
        };
        let text = f.encode();
        assert_eq!(CosignatureFile::decode(&text), Ok(f.clone()));
        for bad in [
            text.replace("organisation 7", "organisation 07"),
            text.replace("epoch 3", "epoch -3"),
            text.trim_end().to_string(),
            format!("{text}extra\n"),
            text.replace("signature ", "signature 00"),
            text.replace("hashguard-cosignature v1", "hashguard-cosignature v2"),
        ] {
            assert!(CosignatureFile::decode(&bad).is_err(), "{bad}");
        }
    }
}

//! The reference end-to-end encrypted messenger behind `hashguard chat`: MLS groups (RFC 9420,
//! OpenMLS 0.9) delivered through the service's `/v1/mls` endpoints, attachments through the
//! client SDK, so a listed image is held at upload and never reaches the group, and everything
//! else is seen by nobody but the group.
//!
//! One [`Messenger`] is one user's device; its whole state lives in one folder, private to the
//! user (0600 files in a 0700 folder):
//!
//! - `credentials.json`: the service's address and the device's SDK credentials (written once);
//! - `state.json`: one snapshot of the OpenMLS storage (the signature key, key packages, group
//!   secrets), the SDK account state, the last processed queue position, the group names and
//!   the messages received but not yet shown, replaced atomically (write, flush, rename) so
//!   that MLS state and queue position never disagree after a crash;
//!   and the uploads held by the service, waiting for the person's decision on the check
//!   (each with the keys the check reveals: as secret as the rest of the state);
//! - `received/`: the files received, bit-identical to what was sent;
//! - `table/`: the SDK's verified table.
//!
//! ```no_run
//! # async fn run() -> Result<(), hashguard_messenger::MessengerError> {
//! use hashguard_messenger::{Messenger, Options};
//! let mut alice = Messenger::register("http://127.0.0.1:8640", "alice".as_ref(), Options::default()).await?;
//! alice.create_group("family").await?;
//! alice.invite("family", "0123456789abcdef0123456789abcdef").await?;
//! alice.send_text("family", "hello").await?;
//! for event in alice.receive().await? {
//!     println!("{event:?}");
//! }
//! # Ok(())
//! # }
//! ```

mod delivery;
mod envelope;
pub mod folder;
mod mls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hashguard_client::{
    AttachmentPointer, CheckOutcome, Credentials, HeldUpload, Intervention, MediaType,
    PinnedParams, PreparedAttachment, SdkError, SendOutcome, Session, SessionOptions, TrustAnchors,
};
use hashguard_protocol::params::{Policy, Preset};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::delivery::{decode_body, Delivery, Posted, QueuedMessage};
use crate::envelope::Envelope;
use crate::mls::{Mls, Processed};

/// How many key packages a device keeps published: each invitation of the device uses one.
pub const KEY_PACKAGES: usize = 20;
/// Below this many the device publishes more when it next receives.
const KEY_PACKAGES_LOW: u64 = 5;
/// The most queue pages one `receive` works through (each up to 100 entries): a bound, not a
/// limit anyone should meet; the rest waits for the next call.
const MAX_PAGES: usize = 100;
/// The version of `state.json` and `credentials.json`.
const STATE_VERSION: u32 = 1;

/// Why a messenger call failed; every message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum MessengerError {
    /// A file of the folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The folder holds no account yet.
    #[error("{} holds no account yet: run `hashguard chat --dir {} register --server URL --trust FILE` first", .0.display(), .0.display())]
    NotRegistered(PathBuf),
    /// The folder already holds an account.
    #[error("{} already holds an account: use another folder for another user", .0.display())]
    AlreadyRegistered(PathBuf),
    /// Another process is using the folder.
    #[error("another hashguard chat is using {}: wait for it to finish", .0.display())]
    Busy(PathBuf),
    /// A state file is damaged.
    #[error("the saved state is damaged ({0}); restore the folder from a backup or register a new account in a new folder")]
    Corrupt(String),
    /// The service could not be reached.
    #[error(
        "cannot reach the service: {0}; check the address and that it is running, then try again"
    )]
    Network(#[from] reqwest::Error),
    /// The service refused.
    #[error("the service refused: {message} ({code}, HTTP {status})")]
    Service {
        /// HTTP status.
        status: u16,
        /// The service's stable code.
        code: String,
        /// The service's words.
        message: String,
    },
    /// The client SDK failed.
    #[error(transparent)]
    Sdk(#[from] SdkError),
    /// No group of that name in this folder.
    #[error("there is no group called {0:?} here: `group create` makes one, and a group someone adds you to appears after `receive`")]
    UnknownGroup(String),
    /// A group of that name exists already.
    #[error("a group called {0:?} exists already: choose another name")]
    GroupExists(String),
    /// A name the messenger does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// The service knows no such account.
    #[error("the service knows no account {0}: ask the person for the id `hashguard chat whoami` prints")]
    UnknownAccount(String),
    /// The account has no key packages left to be added with.
    #[error("account {0} has no device that can be added right now: ask the person to run `hashguard chat receive` (it publishes new keys), then try again")]
    NoKeyPackages(String),
    /// The group kept moving while this device tried to change it.
    #[error("the group changed while you were adding someone: run `receive`, then try again")]
    Contended,
    /// No held upload of that case in this folder.
    #[error("case {0} is not waiting for a check here: it was checked already, or the file was sent from another folder (the check runs where the file was sent)")]
    NoHeldUpload(String),
    /// An MLS operation failed.
    #[error("MLS: {0}")]
    Mls(String),
    /// A message or answer that does not follow the protocol.
    #[error("{0}")]
    Protocol(String),
}

impl MessengerError {
    fn io(path: &Path, source: std::io::Error) -> MessengerError {
        MessengerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a messenger needs beyond its folder.
#[derive(Debug, Clone)]
pub struct Options {
    /// The table parameters the app was built for (default: the deployed preset under
    /// `intervene`).
    pub pinned: PinnedParams,
    /// The deployment's trust anchors (its service, organisation, log and witness keys), as an
    /// app would ship them: required to register; kept in the device's folder
    /// (`trust.txt`) and read from there when the device is opened again.
    pub trust: Option<TrustAnchors>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            pinned: PinnedParams::exactly(Preset::V1.params(Policy::Intervene)),
            trust: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The device folder's copy of the trust anchors.
const TRUST: &str = "trust.txt";

/// Something that arrived, as `receive` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Someone added this device to a group.
    Joined {
        /// The group's local name (provisional until its creator's name for it arrives).
        group: String,
        /// The account that added this device.
        by: String,
    },
    /// A group got the name its creator gave it.
    Named {
        /// The provisional name.
        from: String,
        /// The name now.
        to: String,
    },
    /// A text message.
    Text {
        /// The group.
        group: String,
        /// The sender's account.
        from: String,
        /// The text.
        text: String,
    },
    /// A file, saved in `received/`.
    File {
        /// The group.
        group: String,
        /// The sender's account.
        from: String,
        /// Where it was saved.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// Image or video.
        media: MediaType,
    },
    /// A file that could not be downloaded yet; the next `receive` tries again.
    FileDelayed {
        /// The group.
        group: String,
        /// The sender's account.
        from: String,
        /// Why.
        reason: String,
    },
    /// A file whose download was refused for good (tampered or gone).
    FileLost {
        /// The group.
        group: String,
        /// The sender's account.
        from: String,
        /// Why.
        reason: String,
    },
    /// The group's membership changed.
    MembersChanged {
        /// The group.
        group: String,
        /// The accounts in it now.
        members: Vec<String>,
    },
    /// This device was removed from a group.
    Removed {
        /// The group.
        group: String,
    },
    /// A queue entry this device cannot read (not for a group it is in, or damaged).
    Unreadable {
        /// Its queue position.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// What sending a file came to.
#[derive(Debug)]
pub enum FileSent {
    /// Uploaded and announced to the group.
    Sent {
        /// How many devices the message was queued for.
        recipients: u64,
    },
    /// Held by the service: nothing was sent to the group. Show every word.
    Held(Intervention),
    /// Too many uploads for now.
    RateLimited {
        /// When to try again.
        retry_after: Option<Duration>,
        /// The service's words.
        message: String,
    },
    /// The service refused the file.
    Rejected {
        /// The service's words.
        message: String,
    },
}

/// The consented check's result.
#[derive(Debug)]
pub enum Checked {
    /// A chance match: the file was released and sent to the group.
    Released {
        /// How many devices the message was queued for.
        recipients: u64,
    },
    /// It stays blocked until a person reviews it.
    BlockedForReview {
        /// The service's words.
        message: String,
    },
}

/// Where a simulated crash stops `receive` (for tests of crash safety).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// After fetching and processing one page, before the state is saved.
    BeforeSave,
    /// After the state is saved, before the service is told (acknowledged).
    BeforeAck,
}

#[derive(Serialize, Deserialize)]
struct IdentityFile {
    version: u32,
    server: String,
    credentials: Credentials,
    /// The MLS signature public key (hex); the private half is in the MLS storage.
    signature_key: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Meta {
    /// The last queue entry processed into the saved state.
    last_seq: u64,
    /// The last one the service was told about.
    acked_seq: u64,
    /// Local name -> MLS group id (hex).
    groups: BTreeMap<String, String>,
    /// Names not yet confirmed by the group's creator (given at the welcome).
    provisional: Vec<String>,
    /// Received and saved, not yet returned by `receive`.
    inbox: Vec<Event>,
    /// Attachments whose download failed for a reason that may pass.
    pending: Vec<PendingDownload>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingDownload {
    seq: u64,
    group: String,
    from: String,
    pointer: AttachmentPointer,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    meta: Meta,
    account_state: String,
    mls: Vec<(String, String)>,
    /// Held uploads waiting for the person's decision: case id -> the group and the SDK's
    /// saved form (base64; it holds the attachment's key and the check's keys).
    #[serde(default)]
    held: BTreeMap<String, SavedHeld>,
}

#[derive(Serialize, Deserialize)]
struct SavedHeld {
    group: String,
    upload: Zeroizing<String>,
}

/// One user's device: its folder, its SDK session and its MLS groups.
pub struct Messenger {
    dir: PathBuf,
    session: Session,
    delivery: Delivery,
    mls: Mls,
    meta: Meta,
    /// Held uploads by case id, with their group; saved in `state.json`.
    held: BTreeMap<String, (String, HeldUpload)>,
    _lock: std::fs::File,
}

impl std::fmt::Debug for Messenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messenger")
            .field("dir", &self.dir)
            .field("account", &self.account_id())
            .finish_non_exhaustive()
    }
}

fn check_group_name(name: &str) -> Result<(), MessengerError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c.is_control())
        && name.trim() == name;
    if ok {
        Ok(())
    } else {
        Err(MessengerError::InvalidArgument(format!(
            "{name:?} cannot be a group name: use 1 to 64 characters, no line breaks, no spaces at the ends"
        )))
    }
}

fn check_account_id(account: &str) -> Result<String, MessengerError> {
    let lower = account.trim().to_ascii_lowercase();
    if lower.len() == 32 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(MessengerError::InvalidArgument(format!(
            "{account:?} is not an account id: it is 32 characters of 0-9 and a-f, as `hashguard chat whoami` prints it"
        )))
    }
}

fn session_options(dir: &Path, options: &Options) -> SessionOptions {
    SessionOptions {
        table_dir: Some(dir.join(folder::TABLE)),
        timeout: Some(options.timeout),
        clock: None,
    }
}

impl Messenger {
    /// Registers a new account at the service at `base_url`, keeps it in `dir` (created,
    /// private to the user; it must not hold an account already), and publishes
    /// [`KEY_PACKAGES`] key packages so others can add this device to groups.
    pub async fn register(
        base_url: &str,
        dir: &Path,
        options: Options,
    ) -> Result<Messenger, MessengerError> {
        folder::create_private_dir(dir)?;
        let lock = folder::lock(dir)?;
        if dir.join(folder::CREDENTIALS).exists() {
            return Err(MessengerError::AlreadyRegistered(dir.to_path_buf()));
        }
        let trust = options.trust.clone().ok_or_else(|| {
            MessengerError::InvalidArgument(
                "no trust anchors: the deployment's trust file is needed to register".into(),
            )
        })?;
        folder::write_private(&dir.join(TRUST), trust.to_text().as_bytes())?;
        let session = Session::register(base_url, trust, session_options(dir, &options)).await?;
        let credentials = session.credentials().clone();
        let mls = Mls::generate(&identity_of(&credentials))?;
        let identity = IdentityFile {
            version: STATE_VERSION,
            server: session.base_url().to_string(),
            credentials: credentials.clone(),
            signature_key: hex::encode(mls.signature_public()),
        };
        let delivery = Delivery {
            http: session.http().clone(),
            base: session.base_url().to_string(),
            token: credentials.token.to_string(),
        };
        let mut messenger = Messenger {
            dir: dir.to_path_buf(),
            session,
            delivery,
            mls,
            meta: Meta::default(),
            held: BTreeMap::new(),
            _lock: lock,
        };
        // The state (with the signature key) is durable before the credentials name the
        // account, and the key packages' private keys before their public halves are out.
        messenger.save()?;
        let text = Zeroizing::new(
            serde_json::to_vec_pretty(&identity)
                .map_err(|e| MessengerError::Corrupt(e.to_string()))?,
        );
        folder::write_private(&dir.join(folder::CREDENTIALS), &text)?;
        messenger.publish_key_packages(KEY_PACKAGES).await?;
        Ok(messenger)
    }

    /// Fetches and verifies the current table if it changed, and says what a settings screen
    /// shows of it ([`hashguard_client::TableCache::safety_database`]).
    pub async fn safety_database(&mut self) -> Result<String, MessengerError> {
        self.session.refresh_table().await?;
        Ok(self
            .session
            .tables()
            .safety_database()
            .unwrap_or_else(|| "Safety database: none verified yet".to_string()))
    }

    /// Opens the device kept in `dir`.
    pub fn open(dir: &Path, options: Options) -> Result<Messenger, MessengerError> {
        if !dir.join(folder::CREDENTIALS).exists() {
            return Err(MessengerError::NotRegistered(dir.to_path_buf()));
        }
        let lock = folder::lock(dir)?;
        let read = |name: &str| -> Result<Zeroizing<Vec<u8>>, MessengerError> {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(Zeroizing::new)
                .map_err(|e| MessengerError::io(&path, e))
        };
        let identity: IdentityFile = serde_json::from_slice(&read(folder::CREDENTIALS)?)
            .map_err(|e| MessengerError::Corrupt(format!("{}: {e}", folder::CREDENTIALS)))?;
        let state: StateFile = serde_json::from_slice(&read(folder::STATE)?)
            .map_err(|e| MessengerError::Corrupt(format!("{}: {e}", folder::STATE)))?;
        if identity.version != STATE_VERSION || state.version != STATE_VERSION {
            return Err(MessengerError::Corrupt(
                "written by another version of hashguard chat".into(),
            ));
        }
        let account_state = Zeroizing::new(
            B64.decode(&state.account_state)
                .map_err(|_| MessengerError::Corrupt("the account state is not base64".into()))?,
        );
        let public = hex::decode(&identity.signature_key)
            .map_err(|_| MessengerError::Corrupt("the signature key is not hex".into()))?;
        let mls = Mls::restore(&state.mls, &public, &identity_of(&identity.credentials))?;
        let mut held = BTreeMap::new();
        for (case, saved) in &state.held {
            let bytes = Zeroizing::new(B64.decode(saved.upload.as_bytes()).map_err(|_| {
                MessengerError::Corrupt(format!("the held upload of case {case} is not base64"))
            })?);
            let upload = HeldUpload::from_bytes(&bytes)?;
            held.insert(case.clone(), (saved.group.clone(), upload));
        }
        let trust_text = read(TRUST)?;
        let trust = std::str::from_utf8(&trust_text)
            .map_err(|e| e.to_string())
            .and_then(|t| TrustAnchors::parse(t, options.pinned.clone()).map_err(|e| e.to_string()))
            .map_err(|e| MessengerError::Corrupt(format!("{TRUST}: {e}")))?;
        let session = Session::resume(
            &identity.server,
            identity.credentials.clone(),
            &account_state,
            trust,
            session_options(dir, &options),
        )?;
        let delivery = Delivery {
            http: session.http().clone(),
            base: session.base_url().to_string(),
            token: identity.credentials.token.to_string(),
        };
        Ok(Messenger {
            dir: dir.to_path_buf(),
            session,
            delivery,
            mls,
            meta: state.meta,
            held,
            _lock: lock,
        })
    }

    /// The account id to share with people who want to add this user to a group.
    pub fn account_id(&self) -> String {
        hex::encode(self.session.credentials().account_id)
    }

    /// This device's id.
    pub fn device_id(&self) -> &str {
        &self.session.credentials().device_id
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The user's groups, by local name.
    pub fn groups(&self) -> Vec<String> {
        self.meta.groups.keys().cloned().collect()
    }

    /// The accounts in a group, this one included.
    pub fn members(&self, group: &str) -> Result<Vec<String>, MessengerError> {
        let id = self.group_id(group)?;
        self.mls.members(&id)
    }

    /// Writes the whole state as one snapshot (atomically, 0600).
    fn save(&self) -> Result<(), MessengerError> {
        let state = StateFile {
            version: STATE_VERSION,
            meta: self.meta.clone(),
            account_state: B64.encode(self.session.account_state().as_slice()),
            mls: self.mls.snapshot()?,
            held: self
                .held
                .iter()
                .map(|(case, (group, upload))| {
                    let saved = SavedHeld {
                        group: group.clone(),
                        upload: Zeroizing::new(B64.encode(upload.to_bytes().as_slice())),
                    };
                    (case.clone(), saved)
                })
                .collect(),
        };
        let bytes = Zeroizing::new(
            serde_json::to_vec(&state).map_err(|e| MessengerError::Corrupt(e.to_string()))?,
        );
        folder::write_private(&self.dir.join(folder::STATE), &bytes)
    }

    async fn publish_key_packages(&mut self, count: usize) -> Result<u64, MessengerError> {
        let packages = self.mls.key_packages(count)?;
        self.save()?;
        self.delivery.publish_key_packages(&packages).await
    }

    fn group_id(&self, name: &str) -> Result<String, MessengerError> {
        self.meta
            .groups
            .get(name)
            .cloned()
            .ok_or_else(|| MessengerError::UnknownGroup(name.to_string()))
    }

    fn group_name(&self, id: &str) -> Option<String> {
        self.meta
            .groups
            .iter()
            .find(|(_, g)| g.as_str() == id)
            .map(|(n, _)| n.clone())
    }

    fn free_name(&self, wanted: &str) -> String {
        if !self.meta.groups.contains_key(wanted) {
            return wanted.to_string();
        }
        (2..)
            .map(|i| format!("{wanted}-{i}"))
            .find(|n| !self.meta.groups.contains_key(n))
            .unwrap_or_else(|| wanted.to_string())
    }

    /// Creates a group with this device as its only member.
    pub async fn create_group(&mut self, name: &str) -> Result<(), MessengerError> {
        check_group_name(name)?;
        if self.meta.groups.contains_key(name) {
            return Err(MessengerError::GroupExists(name.to_string()));
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| MessengerError::Mls(format!("no randomness: {e}")))?;
        let id = hex::encode(id);
        // The service first: a crash after it leaves an empty group there, never a local
        // group the service does not know.
        self.delivery.create_group(&id).await?;
        self.mls.create_group(&id)?;
        self.meta.groups.insert(name.to_string(), id);
        self.save()
    }

    /// Adds every device of `account_id` to the group: claims one key package per device,
    /// commits the addition with the welcome and group info as one bundle, and tells the new
    /// members the group's name. If another member changed the group first, processes the
    /// queue and tries once more.
    pub async fn invite(
        &mut self,
        group: &str,
        account_id: &str,
    ) -> Result<Vec<String>, MessengerError> {
        let account = check_account_id(account_id)?;
        let id = self.group_id(group)?;
        self.reconcile(&id).await?;
        let claimed = self.delivery.claim(&account).await?;
        let own = self.device_id().to_string();
        let existing = self.mls.member_identities(&id)?;
        let mut packages = Vec::new();
        let mut devices = Vec::new();
        for c in claimed.key_packages {
            if c.device_id == own || existing.contains(&format!("{account}:{}", c.device_id)) {
                continue;
            }
            let bytes = decode_body(&c.key_package)?;
            packages.push(
                self.mls
                    .verify_key_package(&bytes, &format!("{account}:{}", c.device_id))?,
            );
            devices.push(c.device_id);
        }
        if packages.is_empty() {
            return Err(MessengerError::NoKeyPackages(account));
        }
        for attempt in 0..2 {
            let bundle = self.mls.add_members(&id, &packages)?;
            // The pending commit is durable before the service sees it: a crash after the
            // service accepted it is reconciled at the next call (see `reconcile`).
            self.save()?;
            let posted = self
                .delivery
                .commit(
                    &id,
                    bundle.epoch,
                    &bundle.commit,
                    Some(&bundle.welcome),
                    bundle.group_info.as_deref(),
                    &devices,
                )
                .await;
            match posted {
                Ok(Posted::Accepted(_)) => {
                    self.mls.merge_pending(&id)?;
                    self.save()?;
                    let announce = Envelope::group_name(group).encode()?;
                    self.post_application(&id, &announce).await?;
                    return Ok(devices);
                }
                Ok(Posted::Stale) if attempt == 0 => {
                    self.mls.clear_pending(&id)?;
                    self.save()?;
                    self.process_queue(None).await?;
                }
                Ok(Posted::Stale) => {
                    self.mls.clear_pending(&id)?;
                    self.save()?;
                    return Err(MessengerError::Contended);
                }
                Err(e) => {
                    // Refused for good (or unknown, if the connection broke: `reconcile`
                    // settles that next time from the service's epoch).
                    if matches!(e, MessengerError::Service { .. }) {
                        self.mls.clear_pending(&id)?;
                        self.save()?;
                    }
                    return Err(e);
                }
            }
        }
        Err(MessengerError::Contended)
    }

    /// Settles a commit left pending by a crash or a broken connection: merged if the
    /// service moved the group past it and no other member's commit for that epoch is queued
    /// for this device, cleared otherwise.
    async fn reconcile(&mut self, id: &str) -> Result<(), MessengerError> {
        let Some(local) = self.mls.pending_epoch(id)? else {
            return Ok(());
        };
        let remote = self.delivery.group_epoch(id).await?;
        let mut theirs = false;
        let mut after = self.meta.last_seq;
        for _ in 0..MAX_PAGES {
            let page = self.delivery.queue(after).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            theirs |= page
                .iter()
                .any(|m| m.kind == "commit" && m.group_id == id && m.epoch == local);
        }
        if remote > local && !theirs {
            self.mls.merge_pending(id)?;
        } else {
            self.mls.clear_pending(id)?;
        }
        self.save()
    }

    /// Encrypts and posts an application message to the group's current epoch; if the group
    /// moved on, processes the queue and tries once more.
    async fn post_application(
        &mut self,
        id: &str,
        plaintext: &[u8],
    ) -> Result<u64, MessengerError> {
        for attempt in 0..2 {
            let (epoch, message) = self.mls.encrypt(id, plaintext)?;
            // The ratchet step is durable before the message leaves: a key is never used twice.
            self.save()?;
            match self.delivery.message(id, epoch, &message).await? {
                Posted::Accepted(recipients) => return Ok(recipients),
                Posted::Stale if attempt == 0 => {
                    self.process_queue(None).await?;
                }
                Posted::Stale => break,
            }
        }
        Err(MessengerError::Protocol(
            "the group keeps changing: run `receive`, then send again".into(),
        ))
    }

    /// Sends a text to the group.
    pub async fn send_text(&mut self, group: &str, text: &str) -> Result<u64, MessengerError> {
        let id = self.group_id(group)?;
        self.reconcile(&id).await?;
        let body = Envelope::text(text).encode()?;
        self.post_application(&id, &body).await
    }

    /// Sends a file to the group: the SDK hashes, pads, encrypts and uploads it with its
    /// voucher; only if the service delivers it does its pointer (with the key) go to the
    /// group. A held file is saved in the folder's state for [`Messenger::check`] (in this
    /// process or a later one) and nothing reaches the group.
    pub async fn send_file(
        &mut self,
        group: &str,
        path: &Path,
    ) -> Result<FileSent, MessengerError> {
        self.group_id(group)?;
        let bytes = std::fs::read(path).map_err(|e| MessengerError::io(path, e))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if self.session.tables().table().is_err() {
            self.session.refresh_table().await?;
        }
        let prepared = self.session.prepare(&bytes, name)?;
        self.send_prepared(group, &prepared).await
    }

    /// Sends an attachment the app prepared itself (for example with its own analysis,
    /// [`hashguard_client::prepare_analysed`]) as [`Messenger::send_file`] does.
    pub async fn send_prepared(
        &mut self,
        group: &str,
        prepared: &PreparedAttachment,
    ) -> Result<FileSent, MessengerError> {
        let id = self.group_id(group)?;
        let outcome = self.session.send(prepared).await;
        // The account state changes with every voucher built, sent or not.
        self.save()?;
        match outcome? {
            SendOutcome::Delivered(pointer) => {
                self.reconcile(&id).await?;
                let body = Envelope::attachment(pointer).encode()?;
                let recipients = self.post_application(&id, &body).await?;
                Ok(FileSent::Sent { recipients })
            }
            SendOutcome::Held(held) => {
                let intervention = held.intervention.clone();
                self.held
                    .insert(intervention.case_id.clone(), (group.to_string(), held));
                // Saved before the person is asked: the check can run in a later process.
                self.save()?;
                Ok(FileSent::Held(intervention))
            }
            SendOutcome::RateLimited {
                retry_after,
                message,
            } => Ok(FileSent::RateLimited {
                retry_after,
                message,
            }),
            SendOutcome::Rejected { message, .. } => Ok(FileSent::Rejected { message }),
        }
    }

    /// The cases held on this device, waiting for the person's decision.
    pub fn held_cases(&self) -> Vec<String> {
        self.held.keys().cloned().collect()
    }

    /// Runs the automatic check of a held file, with the person's consent: released (a chance
    /// match) sends it to the group now; otherwise it stays blocked for review. Works in a
    /// later process too (the held upload is in the folder's state); once checked, the held
    /// upload is forgotten.
    pub async fn check(&mut self, case_id: &str) -> Result<Checked, MessengerError> {
        let Some((group, held)) = self.held.remove(case_id) else {
            return Err(MessengerError::NoHeldUpload(case_id.to_string()));
        };
        let outcome = match self.session.consent_check(&held).await {
            Ok(outcome) => outcome,
            Err(e) => {
                self.held.insert(case_id.to_string(), (group, held));
                return Err(e.into());
            }
        };
        // The service has the keys now: forget them here.
        self.save()?;
        match outcome {
            CheckOutcome::Released(pointer) => {
                let id = self.group_id(&group)?;
                self.reconcile(&id).await?;
                let body = Envelope::attachment(pointer).encode()?;
                let recipients = self.post_application(&id, &body).await?;
                Ok(Checked::Released { recipients })
            }
            CheckOutcome::BlockedForReview { message } => Ok(Checked::BlockedForReview { message }),
        }
    }

    /// Appeals a case whose file the automatic check kept blocked, with what the person wants
    /// the reviewer to know (may be empty): a reviewer who did not make the first decision
    /// decides it, and [`Messenger::case`] shows the answer.
    pub async fn appeal(
        &self,
        case_id: &str,
        message: &str,
    ) -> Result<hashguard_client::AppealStatus, MessengerError> {
        Ok(self.session.appeal(case_id, message).await?)
    }

    /// Where a case of this account stands, with its appeal's answer if there is one.
    pub async fn case(
        &self,
        case_id: &str,
    ) -> Result<hashguard_client::CaseStatus, MessengerError> {
        Ok(self.session.case(case_id).await?)
    }

    /// Fetches the device's queue and processes it in order (welcomes, commits, messages),
    /// saves received files in `received/`, saves the state and only then acknowledges, so a
    /// crash anywhere re-delivers and nothing is lost or shown twice. Returns what arrived.
    pub async fn receive(&mut self) -> Result<Vec<Event>, MessengerError> {
        self.process_queue(None).await?;
        self.retry_downloads().await?;
        if self.delivery.key_packages_available().await? < KEY_PACKAGES_LOW {
            self.publish_key_packages(KEY_PACKAGES).await?;
        }
        let events = std::mem::take(&mut self.meta.inbox);
        self.save()?;
        Ok(events)
    }

    /// Processes one page as `receive` does and stops at `at`, leaving the folder as a crash
    /// there would (drop the messenger afterwards and open the folder again).
    pub async fn receive_interrupted(&mut self, at: Interrupt) -> Result<(), MessengerError> {
        self.process_queue(Some(at)).await
    }

    async fn process_queue(&mut self, interrupt: Option<Interrupt>) -> Result<(), MessengerError> {
        for _ in 0..MAX_PAGES {
            // From the last acknowledged entry: what a crash left unacknowledged comes again
            // and is recognised by its seq.
            let page = self.delivery.queue(self.meta.acked_seq).await?;
            let Some(last) = page.last().map(|m| m.seq) else {
                return Ok(());
            };
            for message in &page {
                if message.seq <= self.meta.last_seq {
                    tracing::debug!(seq = message.seq, "already processed; dropped");
                    continue;
                }
                self.process_one(message).await?;
                self.meta.last_seq = message.seq;
            }
            if interrupt == Some(Interrupt::BeforeSave) {
                return Ok(());
            }
            self.save()?;
            if interrupt == Some(Interrupt::BeforeAck) {
                return Ok(());
            }
            self.delivery.ack(last).await?;
            self.meta.acked_seq = last;
        }
        Ok(())
    }

    async fn process_one(&mut self, message: &QueuedMessage) -> Result<(), MessengerError> {
        let unreadable = |reason: String| Event::Unreadable {
            seq: message.seq,
            reason,
        };
        let bytes = match decode_body(&message.body) {
            Ok(b) => b,
            Err(e) => {
                self.meta.inbox.push(unreadable(e.to_string()));
                return Ok(());
            }
        };
        match message.kind.as_str() {
            "welcome" => match self.mls.join(&bytes) {
                Ok(id) => {
                    let provisional = self.free_name(&format!("group-{}", &id[..8.min(id.len())]));
                    self.meta.groups.insert(provisional.clone(), id);
                    self.meta.provisional.push(provisional.clone());
                    let by = account_of_device(
                        &message.sender_device,
                        &self.mls,
                        &self.meta,
                        &provisional,
                    )
                    .unwrap_or_else(|| "someone".into());
                    self.meta.inbox.push(Event::Joined {
                        group: provisional,
                        by,
                    });
                }
                Err(e) => self.meta.inbox.push(unreadable(e.to_string())),
            },
            "commit" | "application" => {
                let Some(group) = self.group_name(&message.group_id) else {
                    self.meta
                        .inbox
                        .push(unreadable("for a group this device is not in".into()));
                    return Ok(());
                };
                match self.mls.process(&message.group_id, &bytes) {
                    Ok(Processed::Commit { removed, members }) => {
                        self.meta.inbox.push(if removed {
                            Event::Removed { group }
                        } else {
                            Event::MembersChanged { group, members }
                        });
                    }
                    Ok(Processed::Application { from, plaintext }) => {
                        self.application(message.seq, &group, from, &plaintext)
                            .await?;
                    }
                    Ok(Processed::Other) => {}
                    Err(e) => self.meta.inbox.push(unreadable(e.to_string())),
                }
            }
            other => self
                .meta
                .inbox
                .push(unreadable(format!("an entry of unknown kind {other:?}"))),
        }
        Ok(())
    }

    async fn application(
        &mut self,
        seq: u64,
        group: &str,
        from: String,
        plaintext: &[u8],
    ) -> Result<(), MessengerError> {
        let envelope = match Envelope::decode(plaintext) {
            Ok(e) => e,
            Err(reason) => {
                self.meta.inbox.push(Event::Unreadable { seq, reason });
                return Ok(());
            }
        };
        if let Some(text) = envelope.text {
            self.meta.inbox.push(Event::Text {
                group: group.to_string(),
                from,
                text,
            });
        } else if let Some(pointer) = envelope.attachment {
            let pending = PendingDownload {
                seq,
                group: group.to_string(),
                from,
                pointer,
            };
            self.download(pending).await?;
        } else if let Some(name) = envelope.group_name {
            if let Some(i) = self.meta.provisional.iter().position(|p| p == group) {
                self.meta.provisional.remove(i);
                if check_group_name(&name).is_ok() {
                    let to = self.free_name(&name);
                    if let Some(id) = self.meta.groups.remove(group) {
                        self.meta.groups.insert(to.clone(), id);
                        self.meta.inbox.push(Event::Named {
                            from: group.to_string(),
                            to,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Downloads one attachment into `received/` (flushed before the state that records it).
    async fn download(&mut self, pending: PendingDownload) -> Result<(), MessengerError> {
        let received = self.dir.join(folder::RECEIVED);
        folder::create_private_dir(&received)?;
        match self.session.fetch(&pending.pointer).await {
            Ok(bytes) => {
                let name = folder::received_name(
                    pending.seq,
                    pending.pointer.file_name.as_deref(),
                    &pending.pointer.content_type,
                );
                let path = received.join(name);
                folder::write_private(&path, &bytes)?;
                self.meta.inbox.push(Event::File {
                    group: pending.group,
                    from: pending.from,
                    path,
                    size: bytes.len() as u64,
                    media: pending.pointer.media,
                });
            }
            Err(e @ (SdkError::Network(_) | SdkError::Unexpected { .. })) => {
                self.meta.inbox.push(Event::FileDelayed {
                    group: pending.group.clone(),
                    from: pending.from.clone(),
                    reason: e.to_string(),
                });
                self.meta.pending.push(pending);
            }
            Err(e) => self.meta.inbox.push(Event::FileLost {
                group: pending.group,
                from: pending.from,
                reason: e.to_string(),
            }),
        }
        Ok(())
    }

    async fn retry_downloads(&mut self) -> Result<(), MessengerError> {
        let pending = std::mem::take(&mut self.meta.pending);
        for p in pending {
            self.download(p).await?;
        }
        Ok(())
    }

    /// Tries to read an MLS message with this device's own state, outside the queue: what a
    /// device outside the group could do with a copy of the group's ciphertext (it fails).
    pub fn try_read(
        &mut self,
        group_id: &str,
        mls_message: &[u8],
    ) -> Result<Vec<u8>, MessengerError> {
        match self.mls.process(group_id, mls_message)? {
            Processed::Application { plaintext, .. } => Ok(plaintext),
            _ => Err(MessengerError::Protocol(
                "not an application message".into(),
            )),
        }
    }
}

/// The MLS identity of a device: `account:device`, checked against what the service says.
fn identity_of(credentials: &Credentials) -> String {
    format!(
        "{}:{}",
        hex::encode(credentials.account_id),
        credentials.device_id
    )
}

/// The account of the member device `device` of the group `name`, from the group's tree.
fn account_of_device(device: &str, mls: &Mls, meta: &Meta, name: &str) -> Option<String> {
    let id = meta.groups.get(name)?;
    mls.member_identities(id)
        .ok()?
        .into_iter()
        .find(|i| i.split_once(':').map(|(_, d)| d) == Some(device))
        .and_then(|i| i.split_once(':').map(|(a, _)| a.to_string()))
}

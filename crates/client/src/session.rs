//! One device's session with the service: its credentials, its account state, its verified
//! table, and the calls an app makes: send an attachment, fetch one, run the consented check,
//! appeal, read a case.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hashguard_protocol::acceptance::TrustAnchors;
use hashguard_protocol::sender::{AccountState, BuiltVoucher, Client, ConsentReveal, Item};
use hashguard_protocol::voucher::{MediaKind, UploadBinding};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use zeroize::Zeroizing;

use crate::attachment::{open_file, seal_file, AttachmentPointer, MediaType, Sealed};
use crate::error::SdkError;
use crate::media::{analyse, Analysed};
use crate::outcome::{
    AppealStatus, CaseStatus, CheckOutcome, HeldUpload, HelpResource, Intervention, SendOutcome,
};
use crate::table::{GossipReport, Refreshed, TableCache};

/// How many times a send rebuilds its vouchers for a newer table before giving up: the table
/// changes at most daily, so a second stale answer in a row means something is wrong.
const STALE_RETRIES: usize = 2;

/// Ciphertexts longer than this go by the two-phase upload by default (see
/// [`Session::set_two_phase_above`]).
pub const DEFAULT_TWO_PHASE_ABOVE: u64 = 1 << 20;

/// How many requests a two-phase upload's bytes may take (each resuming where the service says
/// the slot's bytes end) before the send gives up.
const SLOT_ATTEMPTS: usize = 4;

/// A device's credentials, as registration returned them. Keep them in the app's secure
/// storage: the token is the device's only proof of identity.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// The account (32 hex digits on the wire).
    #[serde(with = "hex::serde")]
    pub account_id: [u8; 16],
    /// The device.
    pub device_id: String,
    /// The bearer token (the service keeps only its hash).
    pub token: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account_id", &hex::encode(self.account_id))
            .field("device_id", &self.device_id)
            .field("token", &"<secret>")
            .finish()
    }
}

#[derive(Deserialize)]
struct Registered {
    account_id: String,
    device_id: String,
    token: String,
}

/// The service's error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

#[derive(Deserialize)]
struct Delivered {
    attachment_id: String,
}

/// The service's upload slot (two-phase upload).
#[derive(Deserialize)]
struct SlotBody {
    upload_url: String,
    length: u64,
    sha256: String,
}

#[derive(Deserialize)]
struct HeldBody {
    case_id: String,
    reason: String,
    what_happens: String,
    check: OfferBody,
    appeal: AppealOfferBody,
    help: Vec<HelpResource>,
}

#[derive(Deserialize)]
struct OfferBody {
    what_it_does: String,
}

#[derive(Deserialize)]
struct AppealOfferBody {
    how: String,
}

#[derive(Deserialize)]
struct StaleBody {
    current_epoch: u32,
}

#[derive(Deserialize)]
struct CheckBody {
    outcome: String,
    message: String,
    attachment_id: Option<String>,
}

/// A file analysed and encrypted, ready to send: [`Session::send`] builds its vouchers against
/// the table current at that moment (and rebuilds them, with fresh ids, if the table moves on).
pub struct PreparedAttachment {
    analysed: Analysed,
    sealed: Sealed,
    file_name: Option<String>,
    /// What preparing cost, stage by stage.
    pub timings: PrepareTimings,
}

impl std::fmt::Debug for PreparedAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedAttachment")
            .field("media", &self.analysed.media)
            .field("size", &self.sealed.size)
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

impl PreparedAttachment {
    /// Image or video.
    pub fn media(&self) -> MediaType {
        self.analysed.media
    }

    /// The ciphertext as it will be uploaded (padded and encrypted).
    pub fn ciphertext(&self) -> &[u8] {
        &self.sealed.ciphertext
    }

    /// How many vouchers the upload carries (1 for an image, 1 to 16 for a video).
    pub fn voucher_count(&self) -> usize {
        self.analysed.frames.len()
    }

    /// The pointer recipients will get once the service gives the attachment an id.
    fn pointer(&self, attachment_id: String) -> AttachmentPointer {
        AttachmentPointer {
            attachment_id,
            key: self.sealed.key.clone(),
            ciphertext_sha256: self.sealed.ciphertext_sha256,
            size: self.sealed.size,
            media: self.analysed.media,
            content_type: self.analysed.content_type.to_string(),
            width: self.analysed.width,
            height: self.analysed.height,
            file_name: self.file_name.clone(),
        }
    }
}

/// What preparing one attachment cost, by stage (the SDK's performance goal is stated in these
/// terms).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PrepareTimings {
    /// Decoding the file (for a video: decoding and hashing, interleaved).
    pub decode: Duration,
    /// PDQ and the visual derivative.
    pub hash: Duration,
    /// Padding, encryption and the ciphertext's digest.
    pub encrypt: Duration,
}

/// A device's session with the service.
pub struct Session {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    state: Option<AccountState>,
    client: Option<(u32, Client)>,
    tables: TableCache,
    rng: ChaCha20Rng,
    two_phase_above: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .field("tables", &self.tables)
            .finish_non_exhaustive()
    }
}

/// Where a session keeps what must survive a restart, all of it private to the app.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Keep verified table files here and reuse them (re-verified) on the next start.
    pub table_dir: Option<PathBuf>,
    /// Per-request timeout (default 60 s).
    pub timeout: Option<Duration>,
    /// Where the time comes from when checking a table's validity (default: the system
    /// clock; see [`TableCache::with_clock`]).
    pub clock: Option<fn() -> u64>,
}

fn os_rng() -> Result<ChaCha20Rng, SdkError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| SdkError::Random(e.to_string()))?;
    Ok(ChaCha20Rng::from_seed(*seed))
}

fn http_client(options: &SessionOptions) -> Result<reqwest::Client, SdkError> {
    Ok(reqwest::Client::builder()
        .timeout(options.timeout.unwrap_or(Duration::from_secs(60)))
        .user_agent(concat!("hashguard-client/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Turns a non-success answer into the error it states.
async fn refusal(response: reqwest::Response) -> SdkError {
    let status = response.status().as_u16();
    match response.json::<ErrorBody>().await {
        Ok(body) => SdkError::Refused {
            status,
            code: body.error,
            message: body.message,
        },
        Err(_) => SdkError::Unexpected {
            status,
            message: "an answer without the service's error body".into(),
        },
    }
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl Session {
    /// Registers a new account (and its first device) at the service at `base`, with a new
    /// account state. `trust` is what the app was built to trust: the deployment's service,
    /// organisation, log and witness keys and its table parameters.
    pub async fn register(
        base: &str,
        trust: TrustAnchors,
        options: SessionOptions,
    ) -> Result<Session, SdkError> {
        let http = http_client(&options)?;
        let base = base.trim_end_matches('/').to_string();
        let response = http.post(format!("{base}/v1/accounts")).send().await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response).await);
        }
        let body: Registered = response.json().await?;
        let mut account_id = [0u8; 16];
        hex::decode_to_slice(&body.account_id, &mut account_id).map_err(|_| {
            SdkError::Unexpected {
                status: 201,
                message: "the account id is not 32 hex digits".into(),
            }
        })?;
        let credentials = Credentials {
            account_id,
            device_id: body.device_id,
            token: Zeroizing::new(body.token),
        };
        let mut rng = os_rng()?;
        let state = AccountState::generate(&mut rng);
        Session::build(http, base, credentials, state, trust, options, rng)
    }

    /// Resumes a device's session from its saved credentials and account state
    /// ([`Session::account_state`]).
    pub fn resume(
        base: &str,
        credentials: Credentials,
        account_state: &[u8],
        trust: TrustAnchors,
        options: SessionOptions,
    ) -> Result<Session, SdkError> {
        let state = AccountState::decode(account_state)
            .map_err(|e| SdkError::CorruptState(format!("account state: {e}")))?;
        let http = http_client(&options)?;
        let base = base.trim_end_matches('/').to_string();
        Session::build(http, base, credentials, state, trust, options, os_rng()?)
    }

    fn build(
        http: reqwest::Client,
        base: String,
        credentials: Credentials,
        state: AccountState,
        trust: TrustAnchors,
        options: SessionOptions,
        rng: ChaCha20Rng,
    ) -> Result<Session, SdkError> {
        let mut tables = TableCache::new(trust, options.table_dir);
        if let Some(clock) = options.clock {
            tables = tables.with_clock(clock);
        }
        tables.load_saved();
        Ok(Session {
            http,
            base,
            credentials,
            state: Some(state),
            client: None,
            tables,
            rng,
            two_phase_above: DEFAULT_TWO_PHASE_ABOVE,
        })
    }

    /// Sends ciphertexts longer than `bytes` by the two-phase upload (default
    /// [`DEFAULT_TWO_PHASE_ABOVE`]): the vouchers go first with the ciphertext's SHA-256 and
    /// length, and the ciphertext only to the upload slot the service answers with, so a held
    /// item's ciphertext is never uploaded, and a large one resumes after a broken connection.
    /// Shorter ones go in one request. `0` sends everything by two phases; `u64::MAX` nothing.
    pub fn set_two_phase_above(&mut self, bytes: u64) {
        self.two_phase_above = bytes;
    }

    /// See [`Session::set_two_phase_above`].
    pub fn two_phase_above(&self) -> u64 {
        self.two_phase_above
    }

    /// The device's credentials (save them with the account state).
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The account state to save after every send (it holds the dedup index and counters;
    /// protocol.md 3.6). Sensitive: keep it in encrypted app storage, sync it only end to end
    /// encrypted between the account's devices.
    pub fn account_state(&self) -> Zeroizing<Vec<u8>> {
        match (&self.client, &self.state) {
            (Some((_, client)), _) => client.state().encode(),
            (None, Some(state)) => state.encode(),
            // One of the two always holds the state; see `sender`.
            (None, None) => Zeroizing::new(Vec::new()),
        }
    }

    /// The table in use (after [`Session::refresh_table`]).
    pub fn tables(&self) -> &TableCache {
        &self.tables
    }

    /// Fetches and verifies the current table if it changed. Call it when the app starts and
    /// now and then; [`Session::send`] also calls it when the service says the table moved on.
    pub async fn refresh_table(&mut self) -> Result<Refreshed, SdkError> {
        let refreshed = self.tables.refresh(&self.http, &self.base).await?;
        Ok(refreshed)
    }

    /// Gossips the last accepted log checkpoint to the service and the pinned witnesses
    /// ([`TableCache::gossip`]); call it now and then, e.g. after each refresh. A reported
    /// split view drops the table in use.
    pub async fn gossip(&mut self) -> Result<GossipReport, SdkError> {
        self.tables.gossip(&self.http, &self.base).await
    }

    /// The protocol client bound to the current table's parameters (the threshold may differ
    /// from epoch to epoch; the account state carries over).
    fn sender(&mut self) -> Result<&mut Client, SdkError> {
        let table = self.tables.table()?;
        let epoch = table.epoch();
        let params = table.spec().params().clone();
        let stale = match &self.client {
            Some((e, c)) => *e != epoch || *c.params() != params,
            None => true,
        };
        if stale {
            let state = match self.client.take() {
                Some((_, c)) => c.state().clone(),
                None => self
                    .state
                    .take()
                    .ok_or_else(|| SdkError::CorruptState("no account state".into()))?,
            };
            self.client = Some((epoch, Client::new(state, params)));
        }
        match &mut self.client {
            Some((_, c)) => Ok(c),
            None => Err(SdkError::CorruptState("no account state".into())),
        }
    }

    /// Analyses and encrypts a file (CPU work: run it off the async runtime's threads, e.g.
    /// with `tokio::task::spawn_blocking`, in an app).
    pub fn prepare(
        &self,
        file: &[u8],
        file_name: Option<String>,
    ) -> Result<PreparedAttachment, SdkError> {
        let capacity = self
            .tables
            .table()
            .map(|t| (t.spec().params().vd_len() as usize).saturating_sub(20))
            .unwrap_or(0);
        prepare_file(file, file_name, capacity)
    }

    /// Builds the vouchers of `prepared` against the current table, with fresh voucher ids.
    pub fn build_vouchers(
        &mut self,
        prepared: &PreparedAttachment,
    ) -> Result<Vec<BuiltVoucher>, SdkError> {
        let binding = UploadBinding {
            account_id: self.credentials.account_id,
            attachment_sha256: prepared.sealed.ciphertext_sha256,
        };
        let a = &prepared.analysed;
        let media_kind = match a.media {
            MediaType::Image => MediaKind::Image,
            MediaType::Video => MediaKind::VideoFrame,
        };
        let items: Vec<Item<'_>> = a
            .frames
            .iter()
            .enumerate()
            .map(|(i, pdq)| Item {
                pdq: pdq.clone(),
                content_sha256: a.content_sha256,
                media_kind,
                frame_idx: u16::try_from(i).unwrap_or(u16::MAX),
                thumbnail: &a.thumbnail,
            })
            .collect();
        // The table is borrowed from `self.tables` while the client is borrowed mutably from
        // `self.client`: two fields, so both borrows are fine once split.
        self.sender()?;
        let table = self.tables.table()?;
        let Some((_, client)) = &mut self.client else {
            return Err(SdkError::CorruptState("no account state".into()));
        };
        crate::media::check_dihedral_supported(client.params())?;
        let built = match a.media {
            MediaType::Image => vec![match &a.dihedral {
                // Mirrored and rotated copies of a listed image open too (dihedral probes).
                Some(d) => client.build_pdq_voucher_dihedral(
                    table,
                    &items[0],
                    d,
                    &binding,
                    &mut self.rng,
                )?,
                None => client.build_pdq_voucher(table, &items[0], &binding, &mut self.rng)?,
            }],
            MediaType::Video => client.build_video_vouchers(
                table,
                a.content_sha256,
                &items,
                &binding,
                &mut self.rng,
            )?,
        };
        Ok(built)
    }

    /// Uploads a prepared attachment with its vouchers and tells what happened, in terms an
    /// app can show. A stale table is refreshed and the vouchers rebuilt with fresh ids,
    /// transparently.
    pub async fn send(&mut self, prepared: &PreparedAttachment) -> Result<SendOutcome, SdkError> {
        if self.tables.table().is_err() {
            self.refresh_table().await?;
        }
        let two_phase = u64::try_from(prepared.sealed.ciphertext.len()).unwrap_or(u64::MAX)
            > self.two_phase_above;
        let mut attempts = 0;
        loop {
            let built = self.build_vouchers(prepared)?;
            let response = if two_phase {
                self.announce(prepared, &built).await?
            } else {
                self.upload_whole(prepared, &built).await?
            };
            match response.status() {
                StatusCode::CREATED if two_phase => {
                    let slot: SlotBody = response.json().await?;
                    let sealed = &prepared.sealed;
                    return Ok(
                        match self
                            .fill_slot(&sealed.ciphertext, &sealed.ciphertext_sha256, &slot)
                            .await?
                        {
                            Ok(id) => SendOutcome::Delivered(prepared.pointer(id)),
                            Err(refused) => refused,
                        },
                    );
                }
                StatusCode::CREATED | StatusCode::ACCEPTED => {
                    let body: Delivered = response.json().await?;
                    return Ok(SendOutcome::Delivered(prepared.pointer(body.attachment_id)));
                }
                StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS => {
                    let body: HeldBody = response.json().await?;
                    let reveals: Vec<ConsentReveal> =
                        built.iter().map(|b| b.held.consent()).collect();
                    return Ok(SendOutcome::Held(HeldUpload {
                        intervention: Intervention {
                            case_id: body.case_id,
                            reason: body.reason,
                            what_happens: body.what_happens,
                            check_offer: body.check.what_it_does,
                            appeal_how: body.appeal.how,
                            help: body.help,
                        },
                        pointer: prepared.pointer(String::new()),
                        reveals,
                        // Sent by two phases, the ciphertext never left the device: kept (in
                        // memory only) for the upload after a release by the check.
                        ciphertext: two_phase.then(|| prepared.sealed.ciphertext.clone()),
                    }));
                }
                StatusCode::CONFLICT if attempts < STALE_RETRIES => {
                    let body: StaleBody = response.json().await?;
                    tracing::info!(
                        current_epoch = body.current_epoch,
                        "the table moved on; rebuilding the vouchers"
                    );
                    self.refresh_table().await?;
                    attempts += 1;
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(&response);
                    let message = match refusal(response).await {
                        SdkError::Refused { message, .. } => message,
                        other => other.to_string(),
                    };
                    return Ok(SendOutcome::RateLimited {
                        retry_after: wait,
                        message,
                    });
                }
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                    return Ok(match refusal(response).await {
                        SdkError::Refused { code, message, .. } => {
                            SendOutcome::Rejected { code, message }
                        }
                        other => return Err(other),
                    });
                }
                _ => return Err(refusal(response).await),
            }
        }
    }

    /// The one-request upload: the ciphertext and the vouchers in one multipart form.
    async fn upload_whole(
        &self,
        prepared: &PreparedAttachment,
        built: &[BuiltVoucher],
    ) -> Result<reqwest::Response, SdkError> {
        let mut form = reqwest::multipart::Form::new()
            .text("media", prepared.analysed.media.as_str())
            .part(
                "ciphertext",
                reqwest::multipart::Part::bytes(prepared.sealed.ciphertext.clone()),
            );
        for b in built {
            form = form
                .part(
                    "voucher",
                    reqwest::multipart::Part::bytes(b.voucher.encode()),
                )
                .part("vd", reqwest::multipart::Part::bytes(b.vd_blob.clone()));
        }
        Ok(self
            .http
            .post(format!("{}/v1/attachments", self.base))
            .bearer_auth(self.credentials.token.as_str())
            .multipart(form)
            .send()
            .await?)
    }

    /// The two-phase upload's first request: the vouchers with the ciphertext's SHA-256 and
    /// length, no ciphertext. The service answers as for the one-request upload, but with an
    /// upload slot instead of storing anything.
    async fn announce(
        &self,
        prepared: &PreparedAttachment,
        built: &[BuiltVoucher],
    ) -> Result<reqwest::Response, SdkError> {
        use base64::Engine as _;
        let b64 = &base64::engine::general_purpose::STANDARD;
        let vouchers: Vec<serde_json::Value> = built
            .iter()
            .map(|b| {
                serde_json::json!({
                    "voucher": b64.encode(b.voucher.encode()),
                    "vd": b64.encode(&b.vd_blob),
                })
            })
            .collect();
        let body = serde_json::json!({
            "media": prepared.analysed.media.as_str(),
            "sha256": hex::encode(prepared.sealed.ciphertext_sha256),
            "length": prepared.sealed.ciphertext.len(),
            "vouchers": vouchers,
        });
        Ok(self
            .http
            .post(format!("{}/v1/attachments/slots", self.base))
            .bearer_auth(self.credentials.token.as_str())
            .json(&body)
            .send()
            .await?)
    }

    /// The two-phase upload's second step: the ciphertext to the slot (TUS core `PATCH`), and
    /// after a broken connection or a partial write, from where the service says the slot's
    /// bytes end (`HEAD`), at most [`SLOT_ATTEMPTS`] requests.
    /// Answers the attachment's id, or the refusal to show.
    async fn fill_slot(
        &self,
        ciphertext: &[u8],
        sha256: &[u8; 32],
        slot: &SlotBody,
    ) -> Result<Result<String, SendOutcome>, SdkError> {
        // The slot must be for exactly these bytes: a service that announces other ones is
        // not followed.
        if slot.length != u64::try_from(ciphertext.len()).unwrap_or(u64::MAX)
            || slot.sha256 != hex::encode(sha256)
            || !slot.upload_url.starts_with("/v1/attachments/slots/")
        {
            return Err(SdkError::Unexpected {
                status: 201,
                message: "the upload slot is not for this attachment".into(),
            });
        }
        let url = format!("{}{}", self.base, slot.upload_url);
        let offset_of = |response: &reqwest::Response| -> Option<usize> {
            response
                .headers()
                .get("upload-offset")?
                .to_str()
                .ok()?
                .parse::<usize>()
                .ok()
                .filter(|o| *o <= ciphertext.len())
        };
        let mut offset = 0usize;
        let mut last_error = None;
        for attempt in 0..SLOT_ATTEMPTS {
            if attempt > 0 {
                let head = self
                    .http
                    .head(&url)
                    .bearer_auth(self.credentials.token.as_str())
                    .header("tus-resumable", "1.0.0")
                    .send()
                    .await?;
                if head.status() != StatusCode::OK {
                    return Err(SdkError::Unexpected {
                        status: head.status().as_u16(),
                        message: "the upload slot cannot be resumed".into(),
                    });
                }
                offset = offset_of(&head).ok_or_else(|| SdkError::Unexpected {
                    status: 200,
                    message: "the upload slot's offset is missing or out of range".into(),
                })?;
            }
            let sent = self
                .http
                .patch(&url)
                .bearer_auth(self.credentials.token.as_str())
                .header("tus-resumable", "1.0.0")
                .header("upload-offset", offset.to_string())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/offset+octet-stream",
                )
                .body(ciphertext[offset..].to_vec())
                .send()
                .await;
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    // A broken connection: the service kept what it received.
                    tracing::info!(error = %e, "the upload broke off; resuming");
                    last_error = Some(SdkError::from(e));
                    continue;
                }
            };
            match response.status() {
                StatusCode::CREATED => {
                    let body: Delivered = response.json().await?;
                    return Ok(Ok(body.attachment_id));
                }
                // Taken in part, another writer, or another offset: resume from the slot's.
                StatusCode::NO_CONTENT | StatusCode::LOCKED | StatusCode::CONFLICT => {
                    last_error = Some(SdkError::Unexpected {
                        status: response.status().as_u16(),
                        message: "the upload slot did not take every byte".into(),
                    });
                }
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                    return Ok(Err(match refusal(response).await {
                        SdkError::Refused { code, message, .. } => {
                            SendOutcome::Rejected { code, message }
                        }
                        other => return Err(other),
                    }));
                }
                _ => return Err(refusal(response).await),
            }
        }
        Err(last_error.unwrap_or(SdkError::Unexpected {
            status: 0,
            message: "the upload did not complete".into(),
        }))
    }

    /// Uploads the ciphertext of an item sent by two phases, held, and then released by the
    /// check: until then the service never had it. [`Session::consent_check`] does this by
    /// itself; an app that restored the held upload with [`HeldUpload::from_bytes`] (which
    /// does not keep the ciphertext) calls it with the prepared attachment's
    /// [`PreparedAttachment::ciphertext`] after the release. The service takes only the bytes
    /// with the SHA-256 and length that were announced.
    pub async fn upload_released(
        &self,
        pointer: &AttachmentPointer,
        ciphertext: &[u8],
    ) -> Result<(), SdkError> {
        if pointer.attachment_id.is_empty()
            || !pointer.attachment_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(SdkError::Tampered("the attachment id is malformed"));
        }
        let response = self
            .http
            .post(format!(
                "{}/v1/attachments/{}/slot",
                self.base, pointer.attachment_id
            ))
            .bearer_auth(self.credentials.token.as_str())
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response).await);
        }
        let slot: SlotBody = response.json().await?;
        match self
            .fill_slot(ciphertext, &pointer.ciphertext_sha256, &slot)
            .await?
        {
            Ok(id) if id == pointer.attachment_id => Ok(()),
            Ok(_) => Err(SdkError::Unexpected {
                status: 201,
                message: "the service stored the bytes under another id".into(),
            }),
            Err(SendOutcome::Rejected { code, message }) => Err(SdkError::Refused {
                status: 400,
                code,
                message,
            }),
            Err(_) => Err(SdkError::Unexpected {
                status: 0,
                message: "the upload did not complete".into(),
            }),
        }
    }

    /// Downloads an attachment a message pointed to, checks it is the one the sender sent and
    /// decrypts it.
    pub async fn fetch(&self, pointer: &AttachmentPointer) -> Result<Vec<u8>, SdkError> {
        // The id goes into a path: anything but hex digits is refused before any request.
        if pointer.attachment_id.is_empty()
            || !pointer.attachment_id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(SdkError::Tampered("the attachment id is malformed"));
        }
        let response = self
            .http
            .get(format!(
                "{}/v1/attachments/{}",
                self.base, pointer.attachment_id
            ))
            .bearer_auth(self.credentials.token.as_str())
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        let ciphertext = response.bytes().await?;
        open_file(pointer, &ciphertext)
    }

    /// The automatic check, run only when the sender agrees (protocol.md R/E12): the keys of
    /// the held item go to the service, which compares its full fingerprint with the listed
    /// entry and either sends the file at once (a chance match) or keeps it blocked for a
    /// person to review.
    pub async fn consent_check(&self, held: &HeldUpload) -> Result<CheckOutcome, SdkError> {
        let case = &held.intervention.case_id;
        check_case_id(case)?;
        // An image has one voucher. A video has one per keyframe and the client does not know
        // which opened: the service answers "no voucher of this item has that id" for the
        // others before using their keys, and a keyframe's visual derivative is empty.
        let mut last = None;
        for reveal in &held.reveals {
            let body = serde_json::json!({
                "voucher_id": hex::encode(reveal.voucher_id),
                "k_adct": hex::encode(reveal.k_adct),
                "vd_key": hex::encode(reveal.vd_key),
            });
            let response = self
                .http
                .post(format!("{}/v1/cases/{case}/check", self.base))
                .bearer_auth(self.credentials.token.as_str())
                .json(&body)
                .send()
                .await?;
            if response.status() == StatusCode::OK {
                let body: CheckBody = response.json().await?;
                return match (body.outcome.as_str(), body.attachment_id) {
                    ("released", Some(id)) => {
                        let mut pointer = held.pointer.clone();
                        pointer.attachment_id = id;
                        if let Some(ciphertext) = &held.ciphertext {
                            self.upload_released(&pointer, ciphertext).await?;
                        }
                        Ok(CheckOutcome::Released(pointer))
                    }
                    ("blocked_for_review", _) => Ok(CheckOutcome::BlockedForReview {
                        message: body.message,
                    }),
                    (other, _) => Err(SdkError::Unexpected {
                        status: 200,
                        message: format!("unknown check outcome {other:?}"),
                    }),
                };
            }
            let error = refusal(response).await;
            let wrong_voucher = matches!(&error, SdkError::Refused { status: 400, .. });
            if !wrong_voucher {
                return Err(error);
            }
            last = Some(error);
        }
        Err(last.unwrap_or(SdkError::Unexpected {
            status: 0,
            message: "the held upload has no voucher".into(),
        }))
    }

    /// Appeals a case the automatic check kept blocked; `message` (at most 2,000 characters)
    /// is what the person wants the reviewer to know.
    pub async fn appeal(&self, case_id: &str, message: &str) -> Result<AppealStatus, SdkError> {
        check_case_id(case_id)?;
        let response = self
            .http
            .post(format!("{}/v1/cases/{case_id}/appeal", self.base))
            .bearer_auth(self.credentials.token.as_str())
            .json(&serde_json::json!({ "message": message }))
            .send()
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(refusal(response).await);
        }
        Ok(response.json().await?)
    }

    /// Where one of the account's held items stands.
    pub async fn case(&self, case_id: &str) -> Result<CaseStatus, SdkError> {
        check_case_id(case_id)?;
        let response = self
            .http
            .get(format!("{}/v1/cases/{case_id}", self.base))
            .bearer_auth(self.credentials.token.as_str())
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        Ok(response.json().await?)
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The HTTP client the session uses (with its timeout), for the app's other calls to
    /// the same service.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }
}

fn check_case_id(case: &str) -> Result<(), SdkError> {
    if case.is_empty() || case.len() > 64 || !case.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SdkError::InvalidArgument(format!(
            "{case:?} is not a case id"
        )));
    }
    Ok(())
}

/// Analyses and encrypts `file` for a table whose VD blobs hold `vd_capacity` bytes.
pub fn prepare_file(
    file: &[u8],
    file_name: Option<String>,
    vd_capacity: usize,
) -> Result<PreparedAttachment, SdkError> {
    prepare_analysed(analyse(file, vd_capacity)?, file, file_name)
}

/// Encrypts `file` with an analysis the app made itself: an app that decodes with the
/// platform's own decoder computes PDQ from its pixels, and a test or the demo can stand in
/// a chance collision. The analysis must describe `file`: its `content_sha256` is checked.
pub fn prepare_analysed(
    analysed: Analysed,
    file: &[u8],
    file_name: Option<String>,
) -> Result<PreparedAttachment, SdkError> {
    let digest: [u8; 32] = sha2::Sha256::digest(file).into();
    if digest != analysed.content_sha256 {
        return Err(SdkError::InvalidArgument(
            "the analysis is of another file (its SHA-256 differs)".into(),
        ));
    }
    let frames = analysed.frames.len();
    let fits = match analysed.media {
        MediaType::Image => frames == 1,
        MediaType::Video => (1..=hashguard_protocol::sender::MAX_KEYFRAMES).contains(&frames),
    };
    if !fits {
        return Err(SdkError::InvalidArgument(format!(
            "an image has one hashed frame and a video 1 to 16, not {frames}"
        )));
    }
    let started = Instant::now();
    let sealed = seal_file(file)?;
    let encrypt = started.elapsed();
    let timings = PrepareTimings {
        decode: analysed.decode_time,
        hash: analysed.hash_time,
        encrypt,
    };
    Ok(PreparedAttachment {
        analysed,
        sealed,
        file_name,
        timings,
    })
}

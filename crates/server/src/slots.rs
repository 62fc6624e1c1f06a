//! The two-phase upload's routes (issue 13 item 7): `POST /v1/attachments/slots` announces an
//! attachment by its vouchers and its ciphertext's SHA-256 and length and answers as the
//! one-request upload does, but with an upload slot instead of storing anything; `PATCH` and
//! `HEAD` on the slot follow TUS 1.0.0 core semantics (`Upload-Offset`, resumable). The
//! decisions are the service's ([`hashguard_service::slots`]).

use std::net::IpAddr;
use std::pin::Pin;

use axum::body::{Body, HttpBody};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hashguard_service::blobs::ChunkSource;
use hashguard_service::intake::{MediaType, VoucherPart, MAX_VIDEO_VOUCHERS};
use hashguard_service::slots::{
    Announcement, FillError, FillOutcome, SlotAccess, SlotOutcome, SlotWriteError,
};
use hashguard_store::{SlotId, SlotRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{
    held_response, rejection_error, stale_response, upload_limits, Delivered, Held, StaleTable,
};
use crate::client_ip::ClientIp;
use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Authenticated};

/// The TUS protocol version the slot routes follow (core semantics).
pub const TUS_VERSION: &str = "1.0.0";
/// The content type of a TUS `PATCH` body.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
const TUS_VERSION_HEADER: HeaderName = HeaderName::from_static("tus-version");
const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

/// The announcement's body limit: 16 vouchers with their visual derivatives, in base64.
pub const ANNOUNCE_BODY_LIMIT: usize = 1 << 20;

/// One voucher of an announcement.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnouncedVoucher {
    /// The voucher's bytes, standard base64.
    pub voucher: String,
    /// Its visual-derivative blob, standard base64.
    pub vd: String,
}

/// An attachment announced before its ciphertext is sent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnnounceRequest {
    /// `image` or `video`.
    #[schema(pattern = "^(image|video)$")]
    pub media: String,
    /// SHA-256 of the ciphertext that will be sent, 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub sha256: String,
    /// The ciphertext's exact length in bytes.
    #[schema(minimum = 1)]
    pub length: u64,
    /// One voucher (an image) or 1 to 16 (a video), in order.
    #[schema(min_items = 1, max_items = 16)]
    pub vouchers: Vec<AnnouncedVoucher>,
}

/// Where to send the ciphertext (HTTP 201).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadSlot {
    /// `upload_slot`.
    pub status: String,
    /// The slot (32 hex digits; unguessable, and usable only by the account that announced).
    pub slot_id: String,
    /// Where to `PATCH` the bytes (TUS core: `Upload-Offset`, `application/offset+octet-stream`).
    pub upload_url: String,
    /// When the slot stops taking bytes (Unix seconds).
    pub expires_at: i64,
    /// The exact length the bytes must have.
    pub length: u64,
    /// The SHA-256 they must have (lowercase hex).
    pub sha256: String,
}

/// The ciphertext's bytes for a slot (for the OpenAPI document; read as a stream).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct SlotBytes(Vec<u8>);

fn tus(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(TUS_RESUMABLE, HeaderValue::from_static(TUS_VERSION));
    response
}

fn number(value: u64) -> HeaderValue {
    HeaderValue::from(value)
}

/// Announces an attachment: its vouchers with its ciphertext's SHA-256 and length. Answered as
/// the one-request upload is (held, stale, refused), or with an upload slot where the
/// ciphertext then goes. Under policy `silent` every valid announcement gets a slot.
#[utoipa::path(post, path = "/v1/attachments/slots", tag = "attachments", security(("bearer" = [])),
    request_body(content = AnnounceRequest, content_type = "application/json"),
    responses((status = 201, description = "an upload slot: PATCH the ciphertext to its upload_url", body = UploadSlot),
              (status = 400, description = "malformed JSON, digest, length or voucher: refused, never relayed", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 409, description = "vouchers built for another table epoch: refresh the table and rebuild them", body = StaleTable),
              (status = 413, description = "the announced length is over the limit", body = ErrorBody),
              (status = 415, description = "not application/json", body = ErrorBody),
              (status = 429, description = "rate limited (Retry-After says when to try again)", body = ErrorBody),
              (status = 451, description = "held for a check: the intervention (no slot: the ciphertext is never sent)", body = Held)))]
pub async fn announce(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    auth: Authenticated,
    body: Result<Json<AnnounceRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let result = announce_inner(&state, source, auth, body).await;
    let outcome = match &result {
        Ok(r) => match r.status() {
            StatusCode::CREATED => "slot",
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS => "held",
            StatusCode::CONFLICT => "stale",
            _ => "rejected",
        },
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => "limited",
        Err(e) if e.status().is_server_error() => "failed",
        Err(_) => "rejected",
    };
    state.metrics().upload(outcome);
    result
}

async fn announce_inner(
    state: &AppState,
    source: IpAddr,
    auth: Authenticated,
    body: Result<Json<AnnounceRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    // Limits first, the same as the one-request upload's: an announcement is an upload.
    state.limit(&upload_limits(state, &auth, source)).await?;
    let Json(request) = body.map_err(|e| {
        if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the announcement as application/json",
            )
        } else {
            ApiError::bad_request("malformed_json", e.body_text())
        }
    })?;
    let media = match request.media.as_str() {
        "image" => MediaType::Image,
        "video" => MediaType::Video,
        _ => {
            return Err(ApiError::bad_request(
                "malformed_form",
                "media must be image or video",
            ))
        }
    };
    let mut sha256 = [0u8; 32];
    if request.sha256.len() != 64
        || request.sha256.bytes().any(|b| b.is_ascii_uppercase())
        || hex::decode_to_slice(&request.sha256, &mut sha256).is_err()
    {
        return Err(ApiError::bad_request(
            "malformed_digest",
            "sha256 must be 64 lowercase hex digits",
        ));
    }
    // The document's integer is signed 64-bit (the database's too): beyond it the request
    // breaks the schema (400); within it, only the deployment's limit (413).
    if request.length == 0 || i64::try_from(request.length).is_err() {
        return Err(ApiError::bad_request(
            "malformed_length",
            "length must be a number of bytes from 1 to 2^63 - 1",
        ));
    }
    let max = state.config().max_attachment_bytes;
    if request.length > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the ciphertext may have at most {max} bytes"),
        ));
    }
    if request.vouchers.len() > MAX_VIDEO_VOUCHERS {
        return Err(ApiError::bad_request(
            "voucher_count",
            format!("at most {MAX_VIDEO_VOUCHERS} vouchers per upload"),
        ));
    }
    let mut vouchers = Vec::with_capacity(request.vouchers.len());
    for (index, v) in request.vouchers.iter().enumerate() {
        let decode = |text: &str, what: &str| {
            STANDARD.decode(text).map_err(|_| {
                ApiError::bad_request(
                    "malformed_voucher",
                    format!("voucher {index}: {what} is not standard base64"),
                )
            })
        };
        vouchers.push(VoucherPart {
            voucher: decode(&v.voucher, "voucher")?,
            vd_blob: decode(&v.vd, "vd")?,
        });
    }
    let lifetime = i64::try_from(state.config().upload_slot_lifetime.as_secs()).unwrap_or(i64::MAX);
    let outcome = state
        .intake()
        .announce(
            Announcement {
                account: auth.account,
                media,
                sha256,
                length: request.length,
                vouchers,
            },
            lifetime,
        )
        .await?;
    Ok(match outcome {
        SlotOutcome::Slot { slot } => slot_created(&slot),
        // Counts toward the key-match limits, as a held one-request upload does.
        SlotOutcome::Held { case, .. } => held_response(state, &auth, source, &case).await?,
        SlotOutcome::Stale { current_epoch } => stale_response(current_epoch),
        SlotOutcome::Rejected(r) => rejection_error(&r).into_response(),
    })
}

fn slot_created(slot: &SlotRecord) -> Response {
    let url = format!("/v1/attachments/slots/{}", slot.id);
    let mut response = (
        StatusCode::CREATED,
        Json(UploadSlot {
            status: "upload_slot".to_string(),
            slot_id: slot.id.to_string(),
            upload_url: url.clone(),
            expires_at: slot.expires_at,
            length: slot.length,
            sha256: hex::encode(slot.sha256),
        }),
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert(header::LOCATION, v);
    }
    h.insert(UPLOAD_LENGTH, number(slot.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    tus(response)
}

/// A slot for the ciphertext of the caller's two-phase item that was held (so its ciphertext
/// was never sent) and then released by the consented check. Sent by the SDK right after the
/// check's release.
#[utoipa::path(post, path = "/v1/attachments/{attachment_id}/slot", tag = "attachments", security(("bearer" = [])),
    params(("attachment_id" = String, Path, description = "32 hex digits")),
    responses((status = 201, description = "an upload slot for exactly the length and SHA-256 announced when it was held", body = UploadSlot),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no released attachment of that id for this account", body = ErrorBody),
              (status = 429, description = "rate limited (Retry-After says when to try again)", body = ErrorBody)))]
pub async fn released_slot(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: hashguard_store::AttachmentId = id
        .parse()
        .map_err(|_| ApiError::not_found("released attachment"))?;
    state.limit(&upload_limits(&state, &auth, source)).await?;
    let lifetime = i64::try_from(state.config().upload_slot_lifetime.as_secs()).unwrap_or(i64::MAX);
    match state
        .intake()
        .slot_for_released(&auth.account, &id, lifetime)
        .await?
    {
        Some(slot) => Ok(slot_created(&slot)),
        None => Err(ApiError::not_found("released attachment")),
    }
}

/// The caller's own open slot: 404 for an unknown id or another account's slot (the same
/// answer), 410 for its own expired one.
async fn own_slot(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> Result<SlotRecord, ApiError> {
    let id: SlotId = id.parse().map_err(|_| ApiError::not_found("upload slot"))?;
    match state.intake().slot_access(&auth.account, &id).await? {
        SlotAccess::Open(slot) => Ok(slot),
        SlotAccess::Expired => Err(ApiError::new(
            StatusCode::GONE,
            "slot_expired",
            "the upload slot expired: announce the attachment again (with fresh vouchers)",
        )),
        SlotAccess::Missing => Err(ApiError::not_found("upload slot")),
    }
}

/// How many bytes an upload slot holds: where a resumed upload continues (TUS `HEAD`).
#[utoipa::path(head, path = "/v1/attachments/slots/{slot_id}", tag = "attachments", security(("bearer" = [])),
    params(("slot_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, description = "Upload-Offset: the bytes held; Upload-Length: the length announced"),
              (status = 401, description = "no valid token"),
              (status = 404, description = "no upload slot of that id for this account"),
              (status = 410, description = "the slot expired")))]
pub async fn slot_status(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let slot = own_slot(&state, &auth, &id).await?;
    let received = state.intake().slot_received(&slot).await?;
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(UPLOAD_OFFSET, number(received));
    h.insert(UPLOAD_LENGTH, number(slot.length));
    h.insert(
        UPLOAD_EXPIRES,
        number(u64::try_from(slot.expires_at).unwrap_or(0)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(tus(response))
}

/// The request body as the blob store's chunk source.
struct BodyChunks(Body);

impl ChunkSource for BodyChunks {
    type Chunk = axum::body::Bytes;

    async fn next_chunk(&mut self) -> Option<Result<axum::body::Bytes, String>> {
        loop {
            let frame = std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_frame(cx)).await?;
            match frame {
                Err(e) => return Some(Err(e.to_string())),
                // Trailers carry no bytes.
                Ok(frame) => match frame.into_data() {
                    Ok(data) => return Some(Ok(data)),
                    Err(_) => continue,
                },
            }
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Sends (part of) the ciphertext to an upload slot, from `Upload-Offset` (TUS `PATCH`). The
/// bytes are streamed to the blob store, never held whole in memory. While bytes are missing
/// the answer is `204` with the new `Upload-Offset`; the request that completes the slot gets
/// `201` with the attachment id once the bytes have exactly the announced length and SHA-256.
/// A digest mismatch discards the bytes (`400 digest_mismatch`): the slot is empty again and
/// takes a new upload from offset 0 until it expires.
#[utoipa::path(patch, path = "/v1/attachments/slots/{slot_id}", tag = "attachments", security(("bearer" = [])),
    params(("slot_id" = String, Path, description = "32 hex digits"),
           ("Upload-Offset" = u64, Header, description = "where these bytes start: the slot's current offset (HEAD)")),
    request_body(content = SlotBytes, content_type = "application/offset+octet-stream"),
    responses((status = 201, description = "complete, with the announced length and SHA-256: stored; fetch it by its id", body = Delivered),
              (status = 204, description = "taken; Upload-Offset says how many bytes the slot holds now"),
              (status = 400, description = "no valid Upload-Offset, or the bytes' SHA-256 is not the announced one (discarded: the slot is empty again)", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no upload slot of that id for this account", body = ErrorBody),
              (status = 409, description = "Upload-Offset is not the slot's offset (its Upload-Offset header says where to continue)", body = ErrorBody),
              (status = 410, description = "the slot expired", body = ErrorBody),
              (status = 412, description = "a Tus-Resumable version other than 1.0.0", body = ErrorBody),
              (status = 413, description = "more bytes than announced (this request's bytes are discarded)", body = ErrorBody),
              (status = 415, description = "not application/offset+octet-stream", body = ErrorBody),
              (status = 423, description = "another request is writing to this slot", body = ErrorBody)))]
pub async fn fill(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let result = fill_inner(&state, &auth, &id, &headers, body).await;
    if let Ok(r) = &result {
        if r.status() == StatusCode::CREATED {
            state.metrics().upload("delivered");
        }
    }
    result.map(tus)
}

async fn fill_inner(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(version) = header_text(headers, &TUS_RESUMABLE) {
        if version != TUS_VERSION {
            let mut response = ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "tus_version",
                format!("this server speaks Tus-Resumable {TUS_VERSION}"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(TUS_VERSION_HEADER, HeaderValue::from_static(TUS_VERSION));
            return Ok(response);
        }
    }
    let content_type = header_text(headers, &header::CONTENT_TYPE).unwrap_or("");
    if !content_type.eq_ignore_ascii_case(OFFSET_OCTET_STREAM) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the bytes as {OFFSET_OCTET_STREAM}"),
        ));
    }
    let offset = header_text(headers, &UPLOAD_OFFSET)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "malformed_offset",
                "Upload-Offset must be a decimal number of bytes (HEAD the slot to learn it)",
            )
        })?;
    let slot = own_slot(state, auth, id).await?;
    match state
        .intake()
        .fill_slot(&slot, offset, BodyChunks(body))
        .await
    {
        Ok(FillOutcome::Partial { received, .. }) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response.headers_mut().insert(UPLOAD_OFFSET, number(received));
            Ok(response)
        }
        Ok(FillOutcome::Delivered {
            attachment,
            pending,
        }) => {
            if let Some(pending) = pending {
                // Under `silent`: the announced vouchers are opened after this answer, on their
                // own task (R/E5 step 7), as for the one-request upload.
                let background = state.clone();
                tokio::spawn(async move {
                    if let Err(e) = background.intake().open_pending(pending).await {
                        tracing::error!(error = %e, "opening an announced upload failed");
                    }
                });
            }
            let mut response = (
                StatusCode::CREATED,
                Json(Delivered {
                    status: "delivered".to_string(),
                    attachment_id: attachment.to_string(),
                }),
            )
                .into_response();
            response.headers_mut().insert(UPLOAD_OFFSET, number(slot.length));
            Ok(response)
        }
        Err(FillError::Refused(SlotWriteError::Busy)) => Err(ApiError::new(
            StatusCode::LOCKED,
            "slot_busy",
            "another request is writing to this upload slot; try again when it is done",
        )),
        Err(FillError::Refused(SlotWriteError::Offset { received })) => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                "offset_mismatch",
                format!("the slot holds {received} bytes: continue from there"),
            )
            .into_response();
            response.headers_mut().insert(UPLOAD_OFFSET, number(received));
            Ok(response)
        }
        Err(FillError::Refused(SlotWriteError::TooLong { length })) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_long",
            format!("more bytes than the {length} announced; this request's bytes were discarded"),
        )),
        Err(FillError::Refused(SlotWriteError::Digest)) => Err(ApiError::bad_request(
            "digest_mismatch",
            "the bytes' SHA-256 is not the one announced; they were discarded and the slot is empty again",
        )),
        Err(FillError::Refused(SlotWriteError::Io(e))) => Err(ApiError::internal(e)),
        Err(FillError::Gone) => Err(ApiError::not_found("upload slot")),
        Err(FillError::Service(e)) => Err(e.into()),
    }
}

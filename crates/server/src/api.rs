//! The handlers: each parses its request, calls the service library, and maps the answer to a
//! status and a body. The words a person sees on a held upload are here, in [`held_body`].

use axum::body::Bytes;
use std::net::IpAddr;

use axum::extract::{Multipart, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hashguard_protocol::params::Policy;
use hashguard_protocol::sender::ConsentReveal;
use hashguard_service::intake::{
    CheckError, CheckOutcome, MediaType, Rejection, Upload, UploadOutcome, VoucherPart,
    MAX_VIDEO_VOUCHERS,
};
use hashguard_service::serving::TableFile;
use hashguard_store::{
    AccountId, Appeal, AppealState, AttachmentId, CaseId, CaseKind, CaseRecord, CaseState, DeviceId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::client_ip::ClientIp;
use crate::config::HelpResource;
use crate::error::{ApiError, ErrorBody};
use crate::state::{token_hash, AppState, Authenticated, Limit, Staff};

/// `GET /healthz` and `/readyz` bodies.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The table epoch being served (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_string(),
        epoch: None,
    })
}

/// The database answers and a table is loaded.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready", body = Health),
              (status = 503, description = "the database does not answer", body = ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .intake()
        .store()
        .integrity_check()
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "not ready");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database does not answer",
            )
        })?;
    Ok(Json(Health {
        status: "ok".to_string(),
        epoch: Some(state.intake().table().manifest().epoch()),
    }))
}

/// A table file with its strong validator; 304 when the client has it already.
pub(crate) fn table_file(
    headers: &HeaderMap,
    file: &TableFile,
    cache_control: &'static str,
) -> Response {
    let etag = format!("\"{}\"", file.sha256);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
        });
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.bytes.clone()).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// The current manifest (`manifest.bin`), revalidated on every use.
#[utoipa::path(get, path = "/v1/table/manifest", tag = "table",
    responses((status = 200, description = "the manifest's canonical bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "not modified (If-None-Match)")))]
pub async fn manifest(State(state): State<AppState>, headers: HeaderMap) -> Response {
    table_file(
        &headers,
        state.intake().table().manifest_file(),
        "public, no-cache",
    )
}

/// One shard, named by its Merkle root (lowercase hex) as the manifest lists it: immutable,
/// so clients and CDNs keep it across epochs while the root is unchanged.
#[utoipa::path(get, path = "/v1/table/shards/{root}", tag = "table",
    params(("root" = String, Path, description = "the shard's Merkle root, 64 lowercase hex digits")),
    responses((status = 200, description = "the shard file", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "not modified (If-None-Match)"),
              (status = 404, description = "no shard with that root in the current table", body = ErrorBody)))]
pub async fn shard(
    State(state): State<AppState>,
    Path(root): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = state
        .intake()
        .table()
        .shard_by_root(&root)
        .ok_or_else(|| ApiError::not_found("shard in the current table"))?;
    Ok(table_file(
        &headers,
        file,
        "public, max-age=31536000, immutable",
    ))
}

/// A new account's or device's credentials.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    /// The account (32 hex digits).
    pub account_id: String,
    /// The device (32 hex digits).
    pub device_id: String,
    /// The bearer token: shown once; the server keeps only its hash.
    pub token: String,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(ApiError::internal)?;
    Ok(b)
}

async fn new_device(
    state: &AppState,
    source: IpAddr,
    account: Option<AccountId>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    state
        .limit(&[Limit::take(
            "registrations from this address",
            format!("registrations:source:{source}"),
            state.config().limits.registrations_per_source,
        )])
        .await?;
    let token = hex::encode(random_bytes::<32>()?);
    let device = DeviceId::new(random_bytes::<16>()?);
    let now = hashguard_service::intake::unix_now();
    let store = state.intake().store();
    let account = match account {
        Some(account) => {
            store
                .add_device(&account, &device, &token_hash(&token), now)
                .await?;
            account
        }
        None => {
            let account = AccountId::new(random_bytes::<16>()?);
            store
                .create_account(&account, &device, &token_hash(&token), now)
                .await?;
            account
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            account_id: account.to_string(),
            device_id: device.to_string(),
            token,
        }),
    ))
}

/// Registers a new account with its first device.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts",
    responses((status = 201, description = "registered", body = Registered),
              (status = 429, description = "too many registrations from this address", body = ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    new_device(&state, source, None).await
}

/// Adds a device to the caller's account.
#[utoipa::path(post, path = "/v1/devices", tag = "accounts", security(("bearer" = [])),
    responses((status = 201, description = "the new device's credentials", body = Registered),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 429, description = "too many registrations from this address", body = ErrorBody)))]
pub async fn add_device(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    auth: Authenticated,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    new_device(&state, source, Some(auth.account)).await
}

/// Revokes one of the caller's account's devices (its token stops working at once).
#[utoipa::path(delete, path = "/v1/devices/{device_id}", tag = "accounts", security(("bearer" = [])),
    params(("device_id" = String, Path, description = "32 hex digits")),
    responses((status = 204, description = "revoked"),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no such device of this account", body = ErrorBody)))]
pub async fn revoke_device(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(device): Path<String>,
) -> Result<StatusCode, ApiError> {
    let device: DeviceId = device
        .parse()
        .map_err(|_| ApiError::not_found("device of this account"))?;
    let now = hashguard_service::intake::unix_now();
    if state
        .intake()
        .store()
        .revoke_device(&auth.account, &device, now)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("device of this account"))
    }
}

/// The multipart form of an upload (for the OpenAPI document; parsed by hand, part by part,
/// with a limit on each).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// `image` or `video`.
    #[schema(value_type = String, pattern = "^(image|video)$")]
    media: String,
    /// The attachment ciphertext.
    #[schema(value_type = String, format = Binary)]
    ciphertext: Vec<u8>,
    /// One voucher (an image) or 1 to 16 (a video), in order.
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 16)]
    voucher: Vec<Vec<u8>>,
    /// Each voucher's visual-derivative blob, in the same order.
    #[schema(value_type = Vec<String>, min_items = 1, max_items = 16)]
    vd: Vec<Vec<u8>>,
}

/// A delivered (201) or accepted (202, policy `silent`) upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Delivered {
    /// `delivered`, or `accepted` under `silent`.
    pub status: String,
    /// The attachment's id: recipients fetch the ciphertext with it.
    pub attachment_id: String,
}

/// The automatic check the sender is offered.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckOffer {
    /// Where the app sends the item's two keys (POST, JSON [`CheckRequest`]).
    pub url: String,
    /// What the check does, in plain words.
    pub what_it_does: String,
}

/// The appeal route the intervention offers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppealOffer {
    /// Where the app sends the appeal (POST, JSON [`AppealRequest`]).
    pub url: String,
    /// When and how to appeal, in plain words.
    pub how: String,
}

/// The intervention: the upload was held (HTTP 451).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Held {
    /// `held_for_check`.
    pub status: String,
    /// The case.
    pub case_id: String,
    /// Why, in plain words.
    pub reason: String,
    /// What happens next, in plain words.
    pub what_happens: String,
    /// The automatic check, by consent.
    pub check: CheckOffer,
    /// The appeal, if the check keeps the file blocked.
    pub appeal: AppealOffer,
    /// Where the case stands later (GET).
    pub case_url: String,
    /// People to talk to.
    pub help: Vec<HelpResource>,
}

/// The table moved on (HTTP 409).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StaleTable {
    /// `stale_table`.
    pub error: String,
    /// What to do.
    pub message: String,
    /// The epoch to build vouchers for.
    pub current_epoch: u32,
}

/// The words of the intervention. They must be understood by anyone, including a frightened
/// teenager: what happened, that nobody looked, what the choices are, where help is.
pub fn held_body(state: &AppState, case: &CaseId) -> Held {
    let operator = &state.config().intervention.operator;
    Held {
        status: "held_for_check".to_string(),
        case_id: case.to_string(),
        reason: "This file was not sent. It may match a picture or video of child sexual abuse that child-protection organisations already know about. No person has looked at your file.".to_string(),
        what_happens: format!(
            "The file stays blocked and nobody receives it. Matches like this can be mistakes. You can ask for an automatic check of this one file: if it is not a match, it is sent right away. If it still looks like a match, it stays blocked and two trained people at {operator} will review it."
        ),
        check: CheckOffer {
            url: format!("/v1/cases/{case}/check"),
            what_it_does: format!(
                "If you agree, your app sends the two keys for this one file, and only this file. A computer compares it with the known picture. If it is not a match, the file is sent and the copy made for the check is deleted. Only the file's fingerprint (a short code computed from the picture; the picture cannot be rebuilt from it) is kept for {} days, to notice if someone is making harmless pictures set this off on purpose.",
                state.intake().campaign_rule().retention_days()
            ),
        },
        appeal: AppealOffer {
            url: format!("/v1/cases/{case}/appeal"),
            how: format!(
                "If the check keeps your file blocked and you think that is wrong, you can appeal. A trained person at {operator} who did not make the first decision will look at it, and you will see the answer here."
            ),
        },
        case_url: format!("/v1/cases/{case}"),
        help: state.config().intervention.help.clone(),
    }
}

pub(crate) fn rejection_error(r: &Rejection) -> ApiError {
    let code = match r {
        Rejection::VoucherCount { .. } => "voucher_count",
        Rejection::Malformed { .. } => "malformed_voucher",
        Rejection::VdLength { .. } => "malformed_visual_derivative",
        Rejection::MixedEpochs => "mixed_epochs",
        Rejection::InvalidVoucher { .. } => "invalid_voucher",
        Rejection::ReusedVoucher { .. } => "reused_voucher",
        Rejection::DuplicateVoucher => "duplicate_voucher",
    };
    ApiError::bad_request(code, r.to_string())
}

/// A form that cannot be read: 413 when the body passed the size limit, else 400.
fn form_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.body_text())
    } else {
        ApiError::bad_request("malformed_form", e.body_text())
    }
}

/// Reads one part with a limit, so a hostile client cannot make the server buffer more than
/// the part may hold.
async fn read_part(
    field: &mut axum::extract::multipart::Field<'_>,
    limit: usize,
    name: &str,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        if out.len() + chunk.len() > limit {
            // Only the ciphertext's size is the client's to choose (413); a longer media,
            // voucher or vd part is simply malformed.
            return Err(if name == "ciphertext" {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the ciphertext is larger than {limit} bytes"),
                )
            } else {
                ApiError::bad_request(
                    "malformed_form",
                    format!("part {name} is longer than {limit} bytes"),
                )
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Uploads an attachment: its ciphertext and its vouchers, as `multipart/form-data` with parts
/// `media`, `ciphertext`, then `voucher` and `vd` once per voucher.
#[utoipa::path(post, path = "/v1/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "no voucher opened: stored; fetch it by its id", body = Delivered),
              (status = 400, description = "malformed form or voucher: refused, never relayed", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 409, description = "vouchers built for another table epoch: refresh the table and rebuild them", body = StaleTable),
              (status = 413, description = "too large", body = ErrorBody),
              (status = 429, description = "rate limited (Retry-After says when to try again)", body = ErrorBody),
              (status = 451, description = "held for a check: the intervention", body = Held)))]
pub async fn upload(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    auth: Authenticated,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let result = match form {
        Ok(form) => upload_inner(&state, source, auth, form).await,
        Err(e) => Err(ApiError::bad_request(
            "malformed_form",
            format!(
                "{} (send multipart/form-data with parts media, ciphertext, voucher, vd)",
                e.body_text()
            ),
        )),
    };
    let outcome = match &result {
        Ok(r) => match r.status() {
            StatusCode::CREATED => "delivered",
            StatusCode::ACCEPTED => "accepted",
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

async fn upload_inner(
    state: &AppState,
    source: IpAddr,
    auth: Authenticated,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    // Limits first, in one transaction: a refused upload costs no parsing.
    state.limit(&upload_limits(state, &auth, source)).await?;
    let params = state.intake().table().params();
    let voucher_limit = hashguard_protocol::voucher::VoucherLayout::pdq(params).voucher_len();
    let vd_limit = usize::try_from(params.vd_len()).unwrap_or(usize::MAX);
    let max = usize::try_from(state.config().max_attachment_bytes).unwrap_or(usize::MAX);
    let (mut media, mut ciphertext) = (None, None);
    let (mut vouchers, mut vds) = (Vec::new(), Vec::new());
    while let Some(mut field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "media" => {
                let text = read_part(&mut field, 16, "media").await?;
                media = Some(match text.as_slice() {
                    b"image" => MediaType::Image,
                    b"video" => MediaType::Video,
                    _ => {
                        return Err(ApiError::bad_request(
                            "malformed_form",
                            "media must be image or video",
                        ))
                    }
                });
            }
            "ciphertext" if ciphertext.is_none() => {
                ciphertext = Some(read_part(&mut field, max, "ciphertext").await?);
            }
            "voucher" if vouchers.len() < MAX_VIDEO_VOUCHERS => {
                vouchers.push(read_part(&mut field, voucher_limit, "voucher").await?);
            }
            "vd" if vds.len() < MAX_VIDEO_VOUCHERS => {
                vds.push(read_part(&mut field, vd_limit, "vd").await?);
            }
            "voucher" | "vd" => {
                return Err(ApiError::bad_request(
                    "voucher_count",
                    format!("at most {MAX_VIDEO_VOUCHERS} vouchers per upload"),
                ))
            }
            other => {
                return Err(ApiError::bad_request(
                    "malformed_form",
                    format!("unexpected part {other:?} (expected media, ciphertext, voucher, vd)"),
                ))
            }
        }
    }
    let media = media
        .ok_or_else(|| ApiError::bad_request("malformed_form", "the media part is missing"))?;
    let ciphertext = ciphertext
        .ok_or_else(|| ApiError::bad_request("malformed_form", "the ciphertext part is missing"))?;
    if vouchers.len() != vds.len() {
        return Err(ApiError::bad_request(
            "malformed_form",
            "each voucher needs its vd part, in the same order",
        ));
    }
    let outcome = state
        .intake()
        .upload(Upload {
            account: auth.account,
            media,
            ciphertext,
            vouchers: vouchers
                .into_iter()
                .zip(vds)
                .map(|(voucher, vd_blob)| VoucherPart { voucher, vd_blob })
                .collect(),
        })
        .await?;
    Ok(match outcome {
        UploadOutcome::Delivered { attachment } => (
            StatusCode::CREATED,
            Json(Delivered {
                status: "delivered".to_string(),
                attachment_id: attachment.to_string(),
            }),
        )
            .into_response(),
        UploadOutcome::Accepted {
            attachment,
            pending,
        } => {
            // R/E5 step 7: the reply is sent before any opening; the opening runs on its own
            // task, and its failure is logged, never shown to the client.
            let background = state.clone();
            tokio::spawn(async move {
                if let Err(e) = background.intake().open_pending(pending).await {
                    tracing::error!(error = %e, "opening an accepted upload failed");
                }
            });
            (
                StatusCode::ACCEPTED,
                Json(Delivered {
                    status: "accepted".to_string(),
                    attachment_id: attachment.to_string(),
                }),
            )
                .into_response()
        }
        UploadOutcome::Held { case, .. } => held_response(state, &auth, source, &case).await?,
        UploadOutcome::Stale { current_epoch } => stale_response(current_epoch),
        UploadOutcome::Rejected(r) => rejection_error(&r).into_response(),
    })
}

/// The limits every upload (one request, or a two-phase announcement) draws on, taken in one
/// transaction before any parsing.
pub(crate) fn upload_limits(
    state: &AppState,
    auth: &Authenticated,
    source: IpAddr,
) -> Vec<Limit<'static>> {
    let limits = state.config().limits;
    let mut draws = vec![
        Limit::take(
            "uploads from this account",
            format!("uploads:account:{}", auth.account),
            limits.uploads_per_account,
        ),
        Limit::take(
            "uploads from this address",
            format!("uploads:source:{source}"),
            limits.uploads_per_source,
        ),
    ];
    // An account or address with no key matches left uploads nothing until they refill;
    // the check draws nothing (a held upload does).
    draws.extend(
        key_match_limits(state, auth, source)
            .into_iter()
            .map(Limit::must_have_one),
    );
    draws
}

/// The 451 of a held upload (one request or announced), after taking the key-match limits.
/// Refused only when another upload took the last match first: the item is held all the same,
/// and the next upload waits.
pub(crate) async fn held_response(
    state: &AppState,
    auth: &Authenticated,
    source: IpAddr,
    case: &CaseId,
) -> Result<Response, ApiError> {
    let key_matches = key_match_limits(state, auth, source);
    if let Err(e) = state.limit(&key_matches).await {
        if e.status().is_server_error() {
            return Err(e);
        }
    }
    Ok((
        StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
        Json(held_body(state, case)),
    )
        .into_response())
}

/// The 409 for vouchers built against another epoch's table.
pub(crate) fn stale_response(current_epoch: u32) -> Response {
    (
        StatusCode::CONFLICT,
        Json(StaleTable {
            error: "stale_table".to_string(),
            message: format!("the vouchers were built for another table; fetch epoch {current_epoch} and build them again with fresh ids"),
            current_epoch,
        }),
    )
        .into_response()
}

/// The key-match limits of an upload (R/E12 step 6): under `intervene` only, since under
/// `silent` nothing the client sees may depend on what a voucher holds (PT18).
pub(crate) fn key_match_limits(
    state: &AppState,
    auth: &Authenticated,
    source: IpAddr,
) -> Vec<Limit<'static>> {
    if state.intake().table().params().policy() != Policy::Intervene {
        return Vec::new();
    }
    let limits = state.config().limits;
    vec![
        Limit::take(
            "held uploads from this account",
            format!("matches:account:{}", auth.account),
            limits.matches_per_account,
        ),
        Limit::take(
            "held uploads from this address",
            format!("matches:source:{source}"),
            limits.matches_per_source,
        ),
    ]
}

/// Fetches an attachment's ciphertext by its id.
#[utoipa::path(get, path = "/v1/attachments/{attachment_id}", tag = "attachments", security(("bearer" = [])),
    params(("attachment_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, description = "the ciphertext as uploaded", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no deliverable attachment of that id", body = ErrorBody)))]
pub async fn download(
    State(state): State<AppState>,
    _auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: AttachmentId = id.parse().map_err(|_| ApiError::not_found("attachment"))?;
    let bytes = state
        .intake()
        .download(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("attachment"))?;
    let mut response = (StatusCode::OK, Bytes::from(bytes)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400, immutable"),
    );
    Ok(response)
}

/// A case as its account sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaseStatus {
    /// The case.
    pub case_id: String,
    /// `held`, `check_released`, `check_blocked`, `queued` or `closed`.
    pub state: String,
    /// The same in words.
    pub state_words: String,
    /// The appeal, if one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appeal: Option<AppealStatus>,
}

/// Where an appeal stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AppealStatus {
    /// `open`, `upheld` or `overturned`.
    pub state: String,
    /// The same in words.
    pub state_words: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
}

/// An appeal: what the user wants the reviewer to know (may be empty).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealRequest {
    /// At most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub message: String,
}

fn appeal_status(appeal: &Appeal) -> AppealStatus {
    AppealStatus {
        state: appeal.state.as_str().to_string(),
        state_words: match appeal.state {
            AppealState::Open => "waiting for a reviewer who did not make the first decision",
            AppealState::Upheld => "a reviewer looked again and the file stays blocked",
            AppealState::Overturned => {
                "a reviewer looked again and found it was a mistake: the file is released"
            }
        }
        .to_string(),
        created_at: appeal.created_at,
    }
}

/// The caller's own case of a held item. Threshold cases are never shown to the account
/// (G3: nothing about matches is revealed below or at the threshold to the user either).
async fn own_held_case(
    state: &AppState,
    auth: &Authenticated,
    id: &str,
) -> Result<CaseRecord, ApiError> {
    let id = own_case_id(id)?;
    match state.intake().store().case(&id).await? {
        Some(c) if c.account == auth.account && c.kind == CaseKind::Held => Ok(c),
        _ => Err(ApiError::not_found("case")),
    }
}

/// Appeals one of the caller's held items that the automatic check kept blocked.
#[utoipa::path(post, path = "/v1/cases/{case_id}/appeal", tag = "cases", security(("bearer" = [])),
    params(("case_id" = String, Path, description = "32 hex digits")),
    request_body(content = AppealRequest, content_type = "application/json"),
    responses((status = 202, description = "the appeal is recorded and waits for a reviewer", body = AppealStatus),
              (status = 400, description = "malformed JSON, or a message over 2,000 characters", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no case of that id for this account", body = ErrorBody),
              (status = 409, description = "nothing to appeal yet (run the automatic check first), already released, or already appealed", body = ErrorBody),
              (status = 429, description = "too many appeals from this account", body = ErrorBody)))]
pub async fn appeal(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: Result<Json<AppealRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<AppealStatus>), ApiError> {
    let case = own_held_case(&state, &auth, &id).await?;
    state
        .limit(&[Limit::take(
            "appeals from this account",
            format!("appeals:account:{}", auth.account),
            state.config().limits.checks_per_account,
        )])
        .await?;
    let Json(body) = body.map_err(|e| ApiError::bad_request("malformed_json", e.body_text()))?;
    if body.message.chars().count() > 2_000 {
        return Err(ApiError::bad_request(
            "message_too_long",
            "the appeal's message may have at most 2000 characters",
        ));
    }
    let conflict = |message: &str| ApiError::new(StatusCode::CONFLICT, "cannot_appeal", message);
    match case.state {
        CaseState::Held => {
            return Err(conflict(
                "ask for the automatic check first: if the file is not a match it is sent at once, and an appeal is for a file the check kept blocked",
            ))
        }
        CaseState::CheckReleased => {
            return Err(conflict("this file was released; there is nothing to appeal"))
        }
        CaseState::CheckBlocked | CaseState::Queued | CaseState::Closed => {}
    }
    let appeal = Appeal {
        case: case.id,
        account: auth.account,
        message: body.message,
        state: AppealState::Open,
        created_at: hashguard_service::intake::unix_now(),
        decided_at: None,
    };
    match state.intake().store().insert_appeal(&appeal).await {
        Ok(()) => {}
        Err(hashguard_store::StoreError::Duplicate { .. }) => {
            return Err(conflict(
                "this case was appealed already; its answer will show on the case",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    state
        .intake()
        .store()
        .append_audit(
            appeal.created_at,
            "user",
            "appealed",
            &case.id.to_string(),
            "{}",
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(appeal_status(&appeal))))
}

fn own_case_id(text: &str) -> Result<CaseId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found("case"))
}

/// Prometheus metrics (text exposition); no label names an account.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "metrics (OpenMetrics text)", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let queue = match state.intake().store().case_queue(100_000).await {
        Ok(q) => i64::try_from(q.len()).unwrap_or(i64::MAX),
        Err(_) => -1,
    };
    let mut response = state.metrics().render(queue).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Where one of the caller's cases stands.
#[utoipa::path(get, path = "/v1/cases/{case_id}", tag = "cases", security(("bearer" = [])),
    params(("case_id" = String, Path, description = "32 hex digits")),
    responses((status = 200, description = "the case", body = CaseStatus),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no case of that id for this account", body = ErrorBody)))]
pub async fn case_status(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<CaseStatus>, ApiError> {
    let c = own_held_case(&state, &auth, &id).await?;
    let appeal = state.intake().store().appeal(&c.id).await?;
    Ok(Json(CaseStatus {
        case_id: c.id.to_string(),
        state: c.state.as_str().to_string(),
        state_words: hashguard_service::intake::state_words(c.state).to_string(),
        appeal: appeal.as_ref().map(appeal_status),
    }))
}

/// The keys of one held item, sent by its sender's consent.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    /// The voucher's id (32 hex digits).
    pub voucher_id: String,
    /// `k_adct` (64 hex digits).
    pub k_adct: String,
    /// `vd_key` (64 hex digits).
    pub vd_key: String,
}

/// The check's result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// `released` (sent now) or `blocked_for_review`.
    pub outcome: String,
    /// In words.
    pub message: String,
    /// The attachment, when released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment_id: Option<String>,
}

fn hex_array<const N: usize>(text: &str, what: &str) -> Result<[u8; N], ApiError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| {
        ApiError::bad_request(
            "malformed_keys",
            format!("{what} must be {} hex digits", 2 * N),
        )
    })?;
    Ok(out)
}

/// The keys of a check request, or why they are malformed.
pub fn consent_reveal(body: &CheckRequest) -> Result<ConsentReveal, ApiError> {
    Ok(ConsentReveal {
        voucher_id: hex_array(&body.voucher_id, "voucher_id")?,
        k_adct: hex_array(&body.k_adct, "k_adct")?,
        vd_key: hex_array(&body.vd_key, "vd_key")?,
    })
}

/// The automatic check of one held item (by its sender's consent).
#[utoipa::path(post, path = "/v1/cases/{case_id}/check", tag = "cases", security(("bearer" = [])),
    params(("case_id" = String, Path, description = "32 hex digits")),
    request_body = CheckRequest,
    responses((status = 200, description = "checked", body = CheckResult),
              (status = 400, description = "malformed keys, or keys that do not open the item", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no case of that id for this account", body = ErrorBody),
              (status = 409, description = "the case is not waiting for a check", body = ErrorBody),
              (status = 429, description = "too many checks (Retry-After says when to try again)", body = ErrorBody)))]
pub async fn check(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    body: Result<Json<CheckRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CheckResult>, ApiError> {
    let result = check_inner(&state, auth, id, body).await;
    state.metrics().check(match &result {
        Ok(r) => r.outcome.as_str(),
        Err(e) if e.status() == StatusCode::TOO_MANY_REQUESTS => "limited",
        Err(_) => "refused",
    });
    result
}

async fn check_inner(
    state: &AppState,
    auth: Authenticated,
    id: String,
    body: Result<Json<CheckRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CheckResult>, ApiError> {
    let id = own_case_id(&id)?;
    state
        .limit(&[Limit::take(
            "checks from this account",
            format!("checks:account:{}", auth.account),
            state.config().limits.checks_per_account,
        )])
        .await?;
    let Json(body) = body.map_err(|e| ApiError::bad_request("malformed_json", e.body_text()))?;
    let reveal = consent_reveal(&body)?;
    match state.intake().check(&auth.account, &id, &reveal).await {
        Ok(CheckOutcome::Released {
            attachment,
            campaign,
        }) => {
            if let Some(campaign) = campaign {
                state.metrics().campaign_flagged();
                tracing::warn!(%campaign, "crafted-collision campaign flagged: one image released by the checks of several accounts");
            }
            Ok(Json(CheckResult {
            outcome: "released".to_string(),
            message: "The check found no match. Your file has been sent.".to_string(),
            attachment_id: Some(attachment.to_string()),
        }))
        }
        Ok(CheckOutcome::BlockedForReview) => Ok(Json(CheckResult {
            outcome: "blocked_for_review".to_string(),
            message: "The check could not rule out a match. The file stays blocked until two trained people have reviewed it.".to_string(),
            attachment_id: None,
        })),
        Err(CheckError::NoSuchCase) => Err(ApiError::not_found("case")),
        Err(e @ CheckError::NotHeld(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_held",
            e.to_string(),
        )),
        Err(e @ CheckError::Keys(_)) => Err(ApiError::bad_request("wrong_keys", e.to_string())),
        Err(CheckError::Service(e)) => Err(e.into()),
    }
}

/// One case in the review queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuedCase {
    /// The case.
    pub case_id: String,
    /// `held` (a held item whose automatic check could not rule out a match) or `threshold`
    /// (an account that reached T matches).
    pub kind: String,
    /// Its state.
    pub state: String,
    /// When it was opened (Unix seconds).
    pub created_at: i64,
    /// How long it has waited, in seconds.
    pub age_seconds: i64,
}

/// The review queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Queue {
    /// How many cases wait (at most the 1,000 oldest are listed).
    pub count: usize,
    /// The cases, oldest first.
    pub cases: Vec<QueuedCase>,
    /// Appeals waiting for a reviewer who did not decide the case, oldest first (at most
    /// 1,000).
    pub open_appeals: Vec<OpenAppeal>,
}

/// An appeal waiting for a reviewer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenAppeal {
    /// The case appealed.
    pub case_id: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// How long it has waited, in seconds.
    pub age_seconds: i64,
}

/// The cases waiting for human review, oldest first (staff only).
#[utoipa::path(get, path = "/v1/review/queue", tag = "review", security(("bearer" = [])),
    responses((status = 200, description = "the queue", body = Queue),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "a user's token: the review API needs a staff token", body = ErrorBody)))]
pub async fn review_queue(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Queue>, ApiError> {
    let now = hashguard_service::intake::unix_now();
    let cases: Vec<QueuedCase> = state
        .intake()
        .store()
        .case_queue(1_000)
        .await?
        .into_iter()
        .map(|c| QueuedCase {
            case_id: c.id.to_string(),
            kind: c.kind.as_str().to_string(),
            state: c.state.as_str().to_string(),
            created_at: c.created_at,
            age_seconds: now.saturating_sub(c.created_at),
        })
        .collect();
    let open_appeals = state
        .intake()
        .store()
        .open_appeals(1_000)
        .await?
        .into_iter()
        .map(|a| OpenAppeal {
            case_id: a.case.to_string(),
            created_at: a.created_at,
            age_seconds: now.saturating_sub(a.created_at),
        })
        .collect();
    Ok(Json(Queue {
        count: cases.len(),
        cases,
        open_appeals,
    }))
}

/// A flagged crafted-collision campaign (R/E12 step 6).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FlaggedCampaign {
    /// The campaign (32 hex digits).
    pub campaign_id: String,
    /// The PDQ hash (64 hex digits) of the released image that raised the flag.
    pub pdq: String,
    /// The most distinct accounts seen releasing that image within the window.
    pub accounts: u64,
    /// When it was flagged (Unix seconds).
    pub first_seen: i64,
    /// The last release that counted toward it (Unix seconds).
    pub last_seen: i64,
}

/// The flagged campaigns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Campaigns {
    /// The window in days: releases of one image by this many accounts within it make a
    /// campaign, and a released item's fingerprint is kept that long.
    pub window_days: i64,
    /// Distinct accounts that make a campaign.
    pub accounts_needed: u32,
    /// The campaigns, the most recently active first (at most 1,000).
    pub campaigns: Vec<FlaggedCampaign>,
}

/// Crafted-collision campaigns: one image released by the automatic checks of several
/// accounts, which suggests someone is making images that collide with a listed key on
/// purpose (staff only).
#[utoipa::path(get, path = "/v1/review/campaigns", tag = "review", security(("bearer" = [])),
    responses((status = 200, description = "the flagged campaigns", body = Campaigns),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 403, description = "a user's token: the review API needs a staff token", body = ErrorBody)))]
pub async fn review_campaigns(
    State(state): State<AppState>,
    _staff: Staff,
) -> Result<Json<Campaigns>, ApiError> {
    let rule = state.intake().campaign_rule();
    let campaigns = state
        .intake()
        .store()
        .campaigns(1_000)
        .await?
        .into_iter()
        .map(|c| FlaggedCampaign {
            campaign_id: c.id.to_string(),
            pdq: hex::encode(c.pdq),
            accounts: c.accounts,
            first_seen: c.first_seen,
            last_seen: c.last_seen,
        })
        .collect();
    Ok(Json(Campaigns {
        window_days: rule.retention_days(),
        accounts_needed: rule.accounts,
        campaigns,
    }))
}

//! The MLS delivery service's handlers (`/v1/mls/...`): key packages, groups, and per-device
//! queues, over [`hashguard_store`]'s delivery module. The server never parses MLS: it sees
//! opaque bytes (standard base64 in JSON), their sizes, and who is in which group. The caller
//! is always a device, authenticated by its bearer token.
//!
//! What the floor (OpenMLS's example delivery service) lacks and this has: everything is in
//! the database (no loss or duplicate across restarts), a commit is accepted only for the
//! group's current epoch (compare-and-swap; the loser gets 409 with the current epoch), the
//! commit, its welcome and group info are one atomic bundle, and recipients come from the
//! server's membership, never from the request.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hashguard_store::{
    AccountId, CommitBundle, CommitOutcome, DeviceId, GroupId, KeyPackagesPublished, SendOutcome,
    StoreError, MAX_GROUP_ID_BYTES, MAX_KEY_PACKAGES_PER_DEVICE,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::state::{AppState, Authenticated, Limit};

/// The largest key package, in bytes.
pub const MAX_KEY_PACKAGE_BYTES: usize = 16 * 1024;
/// Key packages per publishing request.
pub const MAX_KEY_PACKAGES_PER_REQUEST: usize = 100;
/// The largest application message, in bytes: attachments go through `/v1/attachments`, and a
/// message carries only their pointers.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The largest commit, welcome or group info, in bytes (a welcome or group info may carry the
/// ratchet tree of a large group).
pub const MAX_HANDSHAKE_BYTES: usize = 1 << 20;
/// Devices a commit may add and remove, in all.
pub const MAX_MEMBERSHIP_CHANGES: usize = 1_000;
/// Queue entries per page by default, and at most.
pub const DEFAULT_PAGE: u32 = 100;
/// The most queue entries one page may ask for.
pub const MAX_PAGE: u32 = 500;
/// Bodies per page in bytes: a page stops before it would pass this (but holds at least one
/// entry), so a page of large commits stays a reasonable response.
pub const PAGE_BYTES: u64 = 8 << 20;

/// Request body limits of the routes (base64 makes 3 bytes 4 characters; JSON adds a little).
pub mod body_limits {
    use super::*;
    /// `POST /v1/mls/key-packages`.
    pub const KEY_PACKAGES: usize =
        MAX_KEY_PACKAGES_PER_REQUEST * (MAX_KEY_PACKAGE_BYTES.div_ceil(3) * 4 + 16) + 4096;
    /// `POST /v1/mls/groups/{group_id}/commits`: three handshake messages and the device lists.
    pub const COMMIT: usize =
        3 * (MAX_HANDSHAKE_BYTES.div_ceil(3) * 4 + 16) + MAX_MEMBERSHIP_CHANGES * 40 + 4096;
    /// `POST /v1/mls/groups/{group_id}/messages`.
    pub const MESSAGE: usize = MAX_MESSAGE_BYTES.div_ceil(3) * 4 + 4096;
    /// The other requests: an id or a number.
    pub const SMALL: usize = 16 * 1024;
}

/// Key packages to publish.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPackagesRequest {
    /// 1 to 100 MLS key packages, each 1 to 16,384 bytes, standard base64.
    #[schema(min_items = 1, max_items = 100)]
    pub key_packages: Vec<B64>,
}

/// Standard base64 (for the document: the handlers check the alphabet, padding and size).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
pub struct B64(pub String);

/// How many unclaimed key packages the caller's device holds.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Available {
    /// Unclaimed key packages (at most 1,000).
    pub available: u64,
}

/// Whose key packages to claim.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The account (32 lowercase hex digits).
    #[schema(pattern = "^[0-9a-f]{32}$")]
    pub account_id: String,
}

/// One claimed key package.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClaimedKeyPackage {
    /// Its device (32 hex digits).
    pub device_id: String,
    /// The key package, standard base64.
    pub key_package: String,
}

/// One key package of each active device of the account, each given out exactly once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Claimed {
    /// One per active device that had one.
    pub key_packages: Vec<ClaimedKeyPackage>,
    /// The active devices that had none left.
    pub exhausted: Vec<String>,
}

/// A group to create.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// The MLS group id: 1 to 64 bytes as hex.
    #[schema(pattern = "^([0-9a-fA-F]{2}){1,64}$")]
    pub group_id: String,
}

/// A group's epoch.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Epoch {
    /// The group's current epoch.
    pub epoch: u64,
}

/// A commit and what goes with it, accepted or refused as one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    /// The epoch the commit was made in: it must be the group's current one.
    pub epoch: u64,
    /// The MLS commit (1 byte to 1 MiB), standard base64: queued for every member of the
    /// current epoch but the sender, removed members included.
    #[schema(value_type = String, pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub commit: String,
    /// The MLS welcome (up to 1 MiB), standard base64: required exactly when devices are
    /// added, and queued for each of them.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub welcome: Option<String>,
    /// The new epoch's group info (up to 1 MiB), standard base64, kept as the group's latest
    /// (none: the group has none until a commit brings one).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub group_info: Option<String>,
    /// Devices the commit adds (32 hex digits each): active devices, not members.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub added_devices: Vec<String>,
    /// Devices the commit removes: members, not the sender.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub removed_devices: Vec<String>,
}

/// An application message.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRequest {
    /// The epoch it was made in: it must be the group's current one.
    pub epoch: u64,
    /// The MLS message (1 byte to 256 KiB), standard base64.
    #[schema(value_type = String, pattern = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]
    pub message: String,
}

/// Who a message was queued for.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Recipients {
    /// How many devices: every active member of the group but the sender.
    pub recipients: u64,
}

/// A group as its members see it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GroupState {
    /// The current epoch.
    pub epoch: u64,
    /// The member devices (revoked ones stay until a commit removes them).
    pub members: Vec<String>,
    /// The group info the last commit carried (standard base64), if any.
    pub group_info: Option<String>,
}

/// The 409 of a commit or message: another commit moved the epoch (`stale_epoch`, with the
/// current epoch), or the membership change does not fit the group (`membership_conflict`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Conflict {
    /// `stale_epoch` or `membership_conflict`.
    pub error: String,
    /// What to do.
    pub message: String,
    /// The group's epoch (with `stale_epoch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
}

/// Which queue entries to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// Entries after this seq (default 0: from the start).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// At most this many (1 to 500, default 100); a page also stops before 8 MiB of bodies.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// One entry of the caller's queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuedMessage {
    /// Its number in the device's queue: increasing, never reused.
    pub seq: u64,
    /// `commit`, `welcome` or `application`.
    pub kind: String,
    /// The group (hex).
    pub group_id: String,
    /// The epoch it belongs to: a commit's old epoch, a welcome's new one.
    pub epoch: u64,
    /// The sending device.
    pub sender_device: String,
    /// The MLS message, standard base64.
    pub body: String,
    /// When the server accepted it (Unix seconds).
    pub received_at: i64,
}

/// A page of the caller's queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueuePage {
    /// In seq order.
    pub messages: Vec<QueuedMessage>,
}

/// How far the caller has processed its queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Delete the entries up to this seq, included.
    pub up_to: u64,
}

/// How many entries an ack deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Removed {
    /// Entries deleted.
    pub removed: u64,
}

/// The body of a JSON request, or 413 / 400 saying why not.
fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(t)) => Ok(t),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            e.body_text(),
        )),
        Err(e) => Err(ApiError::bad_request("malformed_json", e.body_text())),
    }
}

/// `text` as standard base64 of 1 to `max` bytes, or 400 naming `field`.
fn base64_field(field: &str, text: &str, max: usize) -> Result<Vec<u8>, ApiError> {
    // Checked before decoding, so an oversized field costs no allocation.
    if text.len() > max.div_ceil(3) * 4 {
        return Err(ApiError::bad_request(
            "too_large",
            format!("{field} is larger than {max} bytes"),
        ));
    }
    let bytes = STANDARD.decode(text).map_err(|_| {
        ApiError::bad_request(
            "malformed_base64",
            format!("{field} is not standard base64 (RFC 4648 section 4, with padding)"),
        )
    })?;
    if bytes.is_empty() || bytes.len() > max {
        return Err(ApiError::bad_request(
            "wrong_size",
            format!("{field} is {} bytes; it must be 1 to {max}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// A queue seq from the request, or 400: the document says int64, as the database stores them.
fn seq_param(field: &str, value: u64) -> Result<u64, ApiError> {
    if i64::try_from(value).is_err() {
        return Err(ApiError::bad_request(
            "malformed_seq",
            format!("{field} must be at most {}", i64::MAX),
        ));
    }
    Ok(value)
}

/// A group id from the path, or 400.
fn group_id(text: &str) -> Result<GroupId, ApiError> {
    hex::decode(text)
        .ok()
        .and_then(|b| GroupId::new(b).ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "malformed_group_id",
                format!("group_id must be 1 to {MAX_GROUP_ID_BYTES} bytes as hex"),
            )
        })
}

/// Device ids of a commit, or 400 naming the field and position.
fn device_ids(field: &str, texts: &[String]) -> Result<Vec<DeviceId>, ApiError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            t.parse().map_err(|_| {
                ApiError::bad_request(
                    "malformed_device_id",
                    format!("{field}[{i}] must be a device id, 32 lowercase hex digits"),
                )
            })
        })
        .collect()
}

/// The 409 of a stale epoch.
fn stale(current_epoch: u64) -> Response {
    (
        StatusCode::CONFLICT,
        Json(Conflict {
            error: "stale_epoch".to_string(),
            message: format!(
                "the group is at epoch {current_epoch}: process the queued commits and try again"
            ),
            current_epoch: Some(current_epoch),
        }),
    )
        .into_response()
}

/// One delivery drawn from the caller's bucket (messages and commits fan out to every member).
async fn limit_deliveries(state: &AppState, auth: &Authenticated) -> Result<(), ApiError> {
    state
        .limit(&[Limit::take(
            "messages and commits from this device",
            format!("deliveries:device:{}", auth.device),
            state.config().limits.deliveries_per_device,
        )])
        .await
}

fn not_member() -> ApiError {
    ApiError::not_found("group with this device as a member")
}

/// Publishes key packages of the caller's device, for others to add it to groups.
#[utoipa::path(post, path = "/v1/mls/key-packages", tag = "mls", security(("bearer" = [])),
    request_body = KeyPackagesRequest,
    responses((status = 201, description = "stored; the device's unclaimed count", body = Available),
              (status = 400, description = "malformed JSON, base64 or size (the message names the field)", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 409, description = "the device would hold more than 1,000 unclaimed key packages; nothing was stored", body = ErrorBody),
              (status = 413, description = "too large", body = ErrorBody)))]
pub async fn publish_key_packages(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<KeyPackagesRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Available>), ApiError> {
    let body = json_body(body)?;
    if body.key_packages.is_empty() || body.key_packages.len() > MAX_KEY_PACKAGES_PER_REQUEST {
        return Err(ApiError::bad_request(
            "wrong_count",
            format!("key_packages must hold 1 to {MAX_KEY_PACKAGES_PER_REQUEST} key packages"),
        ));
    }
    let packages = body
        .key_packages
        .iter()
        .enumerate()
        .map(|(i, kp)| base64_field(&format!("key_packages[{i}]"), &kp.0, MAX_KEY_PACKAGE_BYTES))
        .collect::<Result<Vec<_>, _>>()?;
    let now = hashguard_service::intake::unix_now();
    match state
        .intake()
        .store()
        .publish_key_packages(&auth.device, &packages, now)
        .await?
    {
        KeyPackagesPublished::Published { available } => {
            Ok((StatusCode::CREATED, Json(Available { available })))
        }
        KeyPackagesPublished::TooMany { available } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_key_packages",
            format!(
                "this device holds {available} unclaimed key packages; {} more would pass the limit of {MAX_KEY_PACKAGES_PER_DEVICE}",
                packages.len()
            ),
        )),
        KeyPackagesPublished::Revoked => Err(ApiError::unauthorized()),
    }
}

/// How many unclaimed key packages the caller's device holds.
#[utoipa::path(get, path = "/v1/mls/key-packages", tag = "mls", security(("bearer" = [])),
    responses((status = 200, description = "the count", body = Available),
              (status = 401, description = "no valid token", body = ErrorBody)))]
pub async fn key_packages_available(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Available>, ApiError> {
    let available = state
        .intake()
        .store()
        .key_packages_available(&auth.device)
        .await?;
    Ok(Json(Available { available }))
}

/// Claims one key package of each active device of an account (the caller's own account's
/// other devices included), each given out exactly once.
#[utoipa::path(post, path = "/v1/mls/key-packages/claim", tag = "mls", security(("bearer" = [])),
    request_body = ClaimRequest,
    responses((status = 200, description = "one key package per device that had one; the others listed as exhausted", body = Claimed),
              (status = 400, description = "malformed JSON or account id", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no such account", body = ErrorBody)))]
pub async fn claim_key_packages(
    State(state): State<AppState>,
    _auth: Authenticated,
    body: Result<Json<ClaimRequest>, JsonRejection>,
) -> Result<Json<Claimed>, ApiError> {
    let body = json_body(body)?;
    let account: AccountId = body.account_id.parse().map_err(|_| {
        ApiError::bad_request(
            "malformed_account_id",
            "account_id must be 32 lowercase hex digits",
        )
    })?;
    let claimed = state
        .intake()
        .store()
        .claim_key_packages(&account)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    Ok(Json(Claimed {
        key_packages: claimed
            .key_packages
            .into_iter()
            .map(|(device, kp)| ClaimedKeyPackage {
                device_id: device.to_string(),
                key_package: STANDARD.encode(kp),
            })
            .collect(),
        exhausted: claimed.exhausted.iter().map(ToString::to_string).collect(),
    }))
}

/// Creates a group at epoch 0 with the caller's device as its only member.
#[utoipa::path(post, path = "/v1/mls/groups", tag = "mls", security(("bearer" = [])),
    request_body = CreateGroupRequest,
    responses((status = 201, description = "created", body = Epoch),
              (status = 400, description = "malformed JSON or group id", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 409, description = "a group with this id exists", body = ErrorBody)))]
pub async fn create_group(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<CreateGroupRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Epoch>), ApiError> {
    let body = json_body(body)?;
    let group = group_id(&body.group_id)?;
    let now = hashguard_service::intake::unix_now();
    match state
        .intake()
        .store()
        .create_group(&group, &auth.device, now)
        .await
    {
        Ok(()) => Ok((StatusCode::CREATED, Json(Epoch { epoch: 0 }))),
        Err(StoreError::Duplicate { .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "group_exists",
            "a group with this id exists; MLS group ids are random, so choose another",
        )),
        Err(e) => Err(e.into()),
    }
}

/// A group's epoch, members and latest group info (members only).
#[utoipa::path(get, path = "/v1/mls/groups/{group_id}", tag = "mls", security(("bearer" = [])),
    params(("group_id" = String, Path, description = "the MLS group id, 1 to 64 bytes as hex")),
    responses((status = 200, description = "the group", body = GroupState),
              (status = 400, description = "malformed group id", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no such group with the caller as a member", body = ErrorBody)))]
pub async fn group_state(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(group): Path<String>,
) -> Result<Json<GroupState>, ApiError> {
    let group = group_id(&group)?;
    let view = state
        .intake()
        .store()
        .group(&group, &auth.device)
        .await?
        .ok_or_else(not_member)?;
    Ok(Json(GroupState {
        epoch: view.epoch,
        members: view.members.iter().map(ToString::to_string).collect(),
        group_info: view.group_info.map(|g| STANDARD.encode(g)),
    }))
}

/// Commits to the group's current epoch: the commit, its welcome and group info, and the
/// membership change are accepted or refused as one.
#[utoipa::path(post, path = "/v1/mls/groups/{group_id}/commits", tag = "mls", security(("bearer" = [])),
    params(("group_id" = String, Path, description = "the MLS group id, 1 to 64 bytes as hex")),
    request_body = CommitRequest,
    responses((status = 200, description = "accepted: the group's new epoch", body = Epoch),
              (status = 400, description = "malformed JSON, base64, id or size, a device named twice, the sender removing itself, or a welcome without added devices (or the reverse)", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no such group with the caller as a member", body = ErrorBody),
              (status = 409, description = "stale_epoch: another commit moved the group on (current_epoch says where); membership_conflict: an added device is revoked or a member, or a removed one is not a member. Nothing was written.", body = Conflict),
              (status = 413, description = "too large", body = ErrorBody),
              (status = 429, description = "too many messages and commits from this device (Retry-After says when to try again)", body = ErrorBody)))]
pub async fn commit(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(group): Path<String>,
    body: Result<Json<CommitRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let group = group_id(&group)?;
    limit_deliveries(&state, &auth).await?;
    let body = json_body(body)?;
    if body.added_devices.len() + body.removed_devices.len() > MAX_MEMBERSHIP_CHANGES {
        return Err(ApiError::bad_request(
            "wrong_count",
            format!(
                "added_devices and removed_devices may name at most {MAX_MEMBERSHIP_CHANGES} devices together"
            ),
        ));
    }
    let commit = base64_field("commit", &body.commit, MAX_HANDSHAKE_BYTES)?;
    let welcome = body
        .welcome
        .as_deref()
        .map(|w| base64_field("welcome", w, MAX_HANDSHAKE_BYTES))
        .transpose()?;
    let group_info = body
        .group_info
        .as_deref()
        .map(|g| base64_field("group_info", g, MAX_HANDSHAKE_BYTES))
        .transpose()?;
    let added = device_ids("added_devices", &body.added_devices)?;
    let removed = device_ids("removed_devices", &body.removed_devices)?;
    let outcome = state
        .intake()
        .store()
        .commit(&CommitBundle {
            group: &group,
            sender: auth.device,
            epoch: body.epoch,
            commit: &commit,
            welcome: welcome.as_deref(),
            group_info: group_info.as_deref(),
            added: &added,
            removed: &removed,
            now: hashguard_service::intake::unix_now(),
        })
        .await?;
    Ok(match outcome {
        CommitOutcome::Accepted { epoch } => {
            (StatusCode::OK, Json(Epoch { epoch })).into_response()
        }
        CommitOutcome::NotMember => not_member().into_response(),
        CommitOutcome::Stale { current_epoch } => stale(current_epoch),
        CommitOutcome::Refused(refusal) if refusal.is_conflict() => (
            StatusCode::CONFLICT,
            Json(Conflict {
                error: "membership_conflict".to_string(),
                message: refusal.to_string(),
                current_epoch: None,
            }),
        )
            .into_response(),
        CommitOutcome::Refused(refusal) => {
            ApiError::bad_request("invalid_commit", refusal.to_string()).into_response()
        }
    })
}

/// Sends an application message to every other member of the group, as of its current epoch.
#[utoipa::path(post, path = "/v1/mls/groups/{group_id}/messages", tag = "mls", security(("bearer" = [])),
    params(("group_id" = String, Path, description = "the MLS group id, 1 to 64 bytes as hex")),
    request_body = MessageRequest,
    responses((status = 202, description = "queued for every active member but the sender", body = Recipients),
              (status = 400, description = "malformed JSON, base64 or size", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody),
              (status = 404, description = "no such group with the caller as a member", body = ErrorBody),
              (status = 409, description = "stale_epoch: the group moved on (current_epoch says where); nothing was queued", body = Conflict),
              (status = 413, description = "too large", body = ErrorBody),
              (status = 429, description = "too many messages and commits from this device (Retry-After says when to try again)", body = ErrorBody)))]
pub async fn send_message(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(group): Path<String>,
    body: Result<Json<MessageRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let group = group_id(&group)?;
    limit_deliveries(&state, &auth).await?;
    let body = json_body(body)?;
    let message = base64_field("message", &body.message, MAX_MESSAGE_BYTES)?;
    let now = hashguard_service::intake::unix_now();
    Ok(
        match state
            .intake()
            .store()
            .send_message(&group, &auth.device, body.epoch, &message, now)
            .await?
        {
            SendOutcome::Sent { recipients } => {
                (StatusCode::ACCEPTED, Json(Recipients { recipients })).into_response()
            }
            SendOutcome::NotMember => not_member().into_response(),
            SendOutcome::Stale { current_epoch } => stale(current_epoch),
        },
    )
}

/// The caller's queue after a seq, in order. Entries stay until acknowledged.
#[utoipa::path(get, path = "/v1/mls/queue", tag = "mls", security(("bearer" = [])),
    params(QueueParams),
    responses((status = 200, description = "a page of the queue", body = QueuePage),
              (status = 400, description = "malformed query", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody)))]
pub async fn receive(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<QueueParams>, QueryRejection>,
) -> Result<Json<QueuePage>, ApiError> {
    let Query(params) =
        query.map_err(|e| ApiError::bad_request("malformed_query", e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "malformed_query",
            format!("limit must be 1 to {MAX_PAGE}"),
        ));
    }
    let after = seq_param("after", params.after.unwrap_or(0))?;
    let entries = state
        .intake()
        .store()
        .receive(&auth.device, after, limit, PAGE_BYTES)
        .await?;
    Ok(Json(QueuePage {
        messages: entries
            .into_iter()
            .map(|d| QueuedMessage {
                seq: d.seq,
                kind: d.kind.as_str().to_string(),
                group_id: d.group.to_string(),
                epoch: d.epoch,
                sender_device: d.sender.to_string(),
                body: STANDARD.encode(&d.body),
                received_at: d.received_at,
            })
            .collect(),
    }))
}

/// Deletes the caller's queue entries up to a seq, included: the client has processed them.
#[utoipa::path(post, path = "/v1/mls/queue/ack", tag = "mls", security(("bearer" = [])),
    request_body = AckRequest,
    responses((status = 200, description = "deleted", body = Removed),
              (status = 400, description = "malformed JSON", body = ErrorBody),
              (status = 401, description = "no valid token", body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<AckRequest>, JsonRejection>,
) -> Result<Json<Removed>, ApiError> {
    let body = json_body(body)?;
    let up_to = seq_param("up_to", body.up_to)?;
    let removed = state
        .intake()
        .store()
        .acknowledge(&auth.device, up_to)
        .await?;
    Ok(Json(Removed { removed }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_fields_name_the_field_and_bound_the_size() {
        assert_eq!(base64_field("f", "AAEC", 3).ok(), Some(vec![0, 1, 2]));
        for (text, max, code) in [
            ("", 3, "wrong_size"),
            ("AAECAw==", 3, "too_large"),
            ("AAE!", 3, "malformed_base64"),
            ("AAE", 3, "malformed_base64"),
            ("AAECAwQ=", 4, "wrong_size"),
        ] {
            let e = base64_field("key_packages[2]", text, max).expect_err(text);
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{text}");
            let body = format!("{:?}", e);
            assert!(body.contains(code), "{text}: {body}");
            assert!(body.contains("key_packages[2]"), "{text}: {body}");
        }
    }

    #[test]
    fn group_ids_are_1_to_64_bytes_of_hex() {
        assert!(group_id("00").is_ok());
        assert!(group_id(&"AB".repeat(64)).is_ok());
        for bad in ["", "0", "zz", &"ab".repeat(65)] {
            assert!(group_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_body_limits_hold_the_largest_valid_requests() {
        // A request of maximal fields must fit its route's limit.
        let kp = MAX_KEY_PACKAGE_BYTES.div_ceil(3) * 4 + 3;
        assert!(MAX_KEY_PACKAGES_PER_REQUEST * kp + 32 < body_limits::KEY_PACKAGES);
        let hs = MAX_HANDSHAKE_BYTES.div_ceil(3) * 4 + 20;
        assert!(3 * hs + MAX_MEMBERSHIP_CHANGES * 40 + 64 < body_limits::COMMIT);
        assert!(MAX_MESSAGE_BYTES.div_ceil(3) * 4 + 40 < body_limits::MESSAGE);
    }
}

//! The manifest log and the manifest bundle (issue 15 part 3): the bundle a client verifies
//! before it builds any voucher (R/E10), and the log itself in the C2SP tlog-tiles layout, so
//! auditors, witnesses and existing tlog tools read it and a CDN can cache it.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hashguard_service::manifest_log::{Gossip, ManifestLog};
use hashguard_service::serving::TableFile;
use hashguard_transparency::tiles::TilePath;

use crate::api::table_file;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

fn log(state: &AppState) -> Result<&ManifestLog, ApiError> {
    state
        .intake()
        .table()
        .manifest_log()
        .ok_or_else(|| ApiError::not_found("manifest log (the table has not been published to it)"))
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, ApiError> {
    std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ApiError::not_found(what)
        } else {
            ApiError::internal(e)
        }
    })
}

/// The manifest bundle in force now: the manifest, its log entry, its inclusion proof and
/// checkpoint (C2SP tlog-proof), and every later entry with its proof. Revalidated on every
/// use: it changes with each epoch and each witness refresh.
#[utoipa::path(get, path = "/v1/table/bundle", tag = "transparency",
    responses((status = 200, description = "the manifest bundle (binary, PDQTPSB)", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "not modified (If-None-Match)"),
              (status = 404, description = "the table has not been published to the log", body = ErrorBody)))]
pub async fn bundle(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = state
        .intake()
        .table()
        .bundle(hashguard_service::publish::now())
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found("manifest bundle (the table has not been published to the log)")
        })?;
    Ok(table_file(&headers, &file, "public, no-cache"))
}

/// The log's latest checkpoint (C2SP tlog-checkpoint, with the witnesses' cosignatures).
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "transparency",
    responses((status = 200, description = "the signed checkpoint note", content_type = "text/plain", body = String),
              (status = 404, description = "no log yet", body = ErrorBody)))]
pub async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    let bytes = read(&log(&state)?.checkpoint_path(), "checkpoint")?;
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// A hash tile or entry bundle (C2SP tlog-tiles paths, e.g. `0/000`, `entries/000.p/3`):
/// immutable, since a growing partial tile gets a new path.
#[utoipa::path(get, path = "/v1/log/tile/{path}", tag = "transparency",
    params(("path" = String, Path, description = "the tile path after `tile/`, e.g. `0/000.p/3` or `entries/000`")),
    responses((status = 200, description = "the tile", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "not modified (If-None-Match)"),
              (status = 404, description = "no such tile (or not a tile path), as a static file server answers", body = ErrorBody)))]
pub async fn tile(
    State(state): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Like the static file server a log is usually behind: a path that is not a tile is
    // simply not there.
    let tile = TilePath::parse(&format!("tile/{path}")).map_err(|_| ApiError::not_found("tile"))?;
    let bytes = read(&log(&state)?.tile_path(&tile), "tile")?;
    Ok(table_file(
        &headers,
        &TableFile::new(bytes),
        "public, max-age=31536000, immutable",
    ))
}

/// A logged manifest's encoding, by the SHA-256 its log entry names (64 lowercase hex
/// digits): immutable.
#[utoipa::path(get, path = "/v1/log/manifests/{hash}", tag = "transparency",
    params(("hash" = String, Path, description = "the manifest's SHA-256, 64 lowercase hex digits")),
    responses((status = 200, description = "the manifest's canonical bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 304, description = "not modified (If-None-Match)"),
              (status = 404, description = "no such manifest (or not a hash)", body = ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bytes = hex::decode(&hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .filter(|_| hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| ApiError::not_found("manifest"))?;
    let file = read(&log(&state)?.manifest_path(&bytes), "manifest")?;
    Ok(table_file(
        &headers,
        &TableFile::new(file),
        "public, max-age=31536000, immutable",
    ))
}

/// Gossip (protocol.md 4.3): a client posts the log checkpoint it accepted; the service says
/// whether its own log has exactly that tree. A log-signed checkpoint this log does not contain
/// means someone was shown another view of the log: 409, logged as a warning for operators.
#[utoipa::path(post, path = "/v1/log/gossip", tag = "transparency",
    request_body(content = String, content_type = "text/plain", description = "a signed checkpoint note (C2SP tlog-checkpoint)"),
    responses((status = 200, description = "`consistent <size>`: this log has that tree", content_type = "text/plain", body = String),
              (status = 400, description = "not a checkpoint of this log", body = ErrorBody),
              (status = 404, description = "no log yet", body = ErrorBody),
              (status = 409, description = "`fork: …`: a checkpoint of this log's key that this log does not contain (a split view)", content_type = "text/plain", body = String)))]
pub async fn gossip(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let log = log(&state)?;
    let key = log
        .log_key()
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("manifest log"))?;
    let verdict = log.gossip(&body, &key).map_err(|e| match e {
        hashguard_service::ServiceError::Invalid(m) => ApiError::bad_request("bad_checkpoint", m),
        other => ApiError::internal(other),
    })?;
    let text = |status: StatusCode, body: String| {
        let mut r = (status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    Ok(match verdict {
        Gossip::Consistent { size } => text(StatusCode::OK, format!("consistent {size}\n")),
        Gossip::Fork(why) => {
            tracing::warn!(%why, "a client gossiped a checkpoint this log does not contain");
            text(StatusCode::CONFLICT, format!("fork: {why}\n"))
        }
    })
}

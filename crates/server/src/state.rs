//! What every handler shares: the intake (store, blobs, table, plaintext index), the
//! configuration, and authentication of bearer tokens.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hashguard_service::blobs::LocalBlobs;
use hashguard_service::intake::Intake;
use hashguard_store::{AccountId, DeviceId};
use sha2::{Digest, Sha256};

use crate::config::{Bucket, Config};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// The shared state of the server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    intake: Intake<LocalBlobs>,
    config: Config,
    metrics: Metrics,
}

impl AppState {
    /// The state over an intake and the configuration it was made from.
    pub fn new(intake: Intake<LocalBlobs>, config: Config) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                intake,
                config,
                metrics: Metrics::new(),
            }),
        }
    }
    /// The intake.
    pub fn intake(&self) -> &Intake<LocalBlobs> {
        &self.inner.intake
    }
    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }
    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Takes one from the bucket `key` under `bucket`, or answers 429 with the wait. The
    /// buckets live in the database, so every server process draws on the same ones.
    pub async fn limit(&self, what: &str, key: &str, bucket: Bucket) -> Result<(), ApiError> {
        // Whole tokens scaled by 3600, so a rate per hour refills exactly at a rate per second.
        const SCALE: u32 = 3_600;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        match self
            .intake()
            .store()
            .take_tokens(
                key,
                SCALE,
                bucket.burst.saturating_mul(SCALE),
                bucket.per_hour,
                now_ms,
            )
            .await?
        {
            None => Ok(()),
            Some(wait) => Err(ApiError::rate_limited(what, wait)),
        }
    }
}

/// SHA-256 of a bearer token: the only form in which the server keeps one.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A device authenticated by its bearer token (`Authorization: Bearer TOKEN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// Its account.
    pub account: AccountId,
    /// The device.
    pub device: DeviceId,
}

/// A member of staff, authenticated by a staff token (never a user's device token: the two
/// are never interchangeable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staff;

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let digest = token_hash(token);
        let staff = state
            .config()
            .staff_tokens
            .iter()
            .fold(subtle::Choice::from(0), |found, t| {
                found | subtle::ConstantTimeEq::ct_eq(&t[..], &digest[..])
            });
        if bool::from(staff) {
            return Ok(Staff);
        }
        // A user's valid token is not enough here: 403, so a client learns it reached the
        // wrong door, not that its token is bad.
        match state.intake().store().device_for_token(&digest).await? {
            Some(device) if !device.revoked => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "the review API needs a staff token; user tokens cannot use it",
            )),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        match state
            .intake()
            .store()
            .device_for_token(&token_hash(token))
            .await?
        {
            Some(device) if !device.revoked => Ok(Authenticated {
                account: device.account,
                device: device.device,
            }),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

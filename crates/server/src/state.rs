//! What every handler shares: the intake (store, blobs, table, plaintext index), the
//! configuration, and authentication of bearer tokens.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use hashguard_service::blobs::LocalBlobs;
use hashguard_service::intake::Intake;
use hashguard_store::{AccountId, DeviceId, TokenTake};
use sha2::{Digest, Sha256};

use crate::config::{Bucket, Config};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::shield::FloodShield;

/// The shared state of the server.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    intake: Intake<LocalBlobs>,
    config: Config,
    metrics: Metrics,
    shield: FloodShield,
}

impl AppState {
    /// The state over an intake and the configuration it was made from.
    pub fn new(intake: Intake<LocalBlobs>, config: Config) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                intake,
                shield: FloodShield::new(config.limits.flood_shield),
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
    /// The flood shield.
    pub fn shield(&self) -> &FloodShield {
        &self.inner.shield
    }

    /// Takes one token from each of the buckets, or from none and answers 429 with the wait of
    /// the first that is short (its `what` says which limit it is). The buckets live in the
    /// database, so every server process draws on the same ones; one transaction per request.
    pub async fn limit(&self, buckets: &[Limit<'_>]) -> Result<(), ApiError> {
        // Whole tokens scaled by 3600, so a rate per hour refills exactly at a rate per second.
        const SCALE: u32 = 3_600;
        if buckets.is_empty() {
            return Ok(());
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let takes: Vec<TokenTake<'_>> = buckets
            .iter()
            .map(|l| TokenTake {
                key: &l.key,
                cost: if l.draw { SCALE } else { 0 },
                capacity: l.bucket.burst.saturating_mul(SCALE),
                per_second: l.bucket.per_hour,
                at_least: SCALE,
            })
            .collect();
        match self
            .intake()
            .store()
            .take_tokens_together(&takes, now_ms)
            .await?
        {
            None => Ok(()),
            Some(refused) => Err(ApiError::rate_limited(
                buckets.get(refused.index).map_or("requests", |l| l.what),
                refused.wait,
            )),
        }
    }
}

/// One rate limit a request draws on (or only checks).
#[derive(Debug, Clone)]
pub struct Limit<'a> {
    /// What it limits, in the words of the 429 ("uploads from this account").
    pub what: &'a str,
    /// The bucket's key: a route and an account or address, nothing derived from content.
    pub key: String,
    /// Its size and refill.
    pub bucket: Bucket,
    /// Whether the request takes a token (`false`: it only needs one to be there).
    pub draw: bool,
}

impl<'a> Limit<'a> {
    /// A limit the request takes one token from.
    pub fn take(what: &'a str, key: String, bucket: Bucket) -> Limit<'a> {
        Limit {
            what,
            key,
            bucket,
            draw: true,
        }
    }

    /// The same bucket, only checked: the request needs one token there but takes none.
    pub fn must_have_one(self) -> Limit<'a> {
        Limit {
            draw: false,
            ..self
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

//! The reviewers' web UI (issue 16), served by `hashguard serve` under `/review`: the people
//! who work the review queue at 3 a.m. log in, see the oldest cases first, look at a case
//! (bank, list entry, PDQ distance, the second check, the account's history as counts, the
//! visual derivatives greyscale and blurred by the server), reveal one image at a time with a
//! reason, and decide. Guarantee G4: no report without two humans' review.
//!
//! Server-rendered HTML (minijinja templates compiled into the binary), one stylesheet served
//! by the binary, no JavaScript at all: every action is a plain form, so the strict Content
//! Security Policy needs no exception. The logic lives in the modules below; the handlers in
//! [`web`] only parse, call and render, and every refusal is one [`ReviewError`].
//!
//! - [`auth`]: staff roles, argon2id passwords, sessions in the database, CSRF tokens,
//!   lockout.
//! - [`casework`]: what the queue and the case page read (stages, items, history,
//!   derivatives).
//! - [`decide`]: decisions (two reviewers, a senior on disagreement), reports, the
//!   allow-list, appeals and retention.
//! - [`report`]: the CyberTipline-shaped report (JSON and XML in the schema's order).
//! - [`imaging`]: the server-side blur and greyscale.
//! - [`audit`]: the hash-chained audit log's events, verification and export.
//! - [`web`]: the routes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod auth;
pub mod casework;
pub mod decide;
pub mod error;
pub mod imaging;
mod pages;
pub mod report;
pub mod web;

use std::sync::Arc;

use hashguard_protocol::params::Params;
use hashguard_service::blobs::LocalBlobs;
use hashguard_store::Store;

pub use error::ReviewError;
pub use web::router;

/// The current time in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The review UI's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewConfig {
    /// Whether the server terminates TLS (then cookies are `Secure` and HSTS is sent).
    pub tls: bool,
    /// Failed logins in a row that lock an account.
    pub max_failures: i64,
    /// How long a lock lasts, in seconds.
    pub lock_seconds: i64,
    /// A session unused this long ends (seconds).
    pub session_idle_seconds: i64,
    /// A session ends this long after login whatever happens (seconds).
    pub session_max_seconds: i64,
    /// How long a revealed image stays unblurred for its reviewer (seconds).
    pub reveal_seconds: i64,
    /// Login attempts per network source: burst.
    pub logins_per_source_burst: u32,
    /// Login attempts per network source: refill per hour.
    pub logins_per_source_per_hour: u32,
    /// How long a confirmed case's material is kept after its report's export (seconds).
    pub retention_after_export_seconds: i64,
    /// The reporting contact's name in reports.
    pub reporter_name: String,
    /// The reporting contact's email in reports.
    pub reporter_email: String,
    /// The service's name in reports (`espService`).
    pub service_name: String,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            tls: false,
            max_failures: 5,
            lock_seconds: 15 * 60,
            session_idle_seconds: 30 * 60,
            session_max_seconds: 10 * 3600,
            reveal_seconds: 120,
            logins_per_source_burst: 20,
            logins_per_source_per_hour: 60,
            retention_after_export_seconds: 90 * 24 * 3600,
            reporter_name: "the deployment's reporting contact (configure it)".to_string(),
            reporter_email: "reports@example.invalid".to_string(),
            service_name: "hashguard".to_string(),
        }
    }
}

/// What the review routes share: the store, the blob store (encrypted derivatives of threshold
/// cases), the table's parameters (to reconstruct them) and the settings.
#[derive(Clone)]
pub struct ReviewState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    blobs: LocalBlobs,
    params: Option<Params>,
    config: ReviewConfig,
}

impl ReviewState {
    /// The state over a store, blob store and table parameters.
    pub fn new(
        store: Store,
        blobs: LocalBlobs,
        params: Option<Params>,
        config: ReviewConfig,
    ) -> ReviewState {
        ReviewState {
            inner: Arc::new(Inner {
                store,
                blobs,
                params,
                config,
            }),
        }
    }
    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    /// The blob store.
    pub fn blobs(&self) -> &LocalBlobs {
        &self.inner.blobs
    }
    /// The table's parameters.
    pub fn params(&self) -> Option<&Params> {
        self.inner.params.as_ref()
    }
    /// The settings.
    pub fn config(&self) -> &ReviewConfig {
        &self.inner.config
    }
}

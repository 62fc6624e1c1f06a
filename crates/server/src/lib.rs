//! `hashguard serve`: the upload service's HTTP API. Handlers are thin: they parse the request,
//! call the service library ([`hashguard_service::intake`]) and map its answer to a status and a
//! JSON body with one error type ([`error::ApiError`]).
//!
//! The API (its OpenAPI 3.1 document is served at `/openapi.json`):
//! - `POST /v1/accounts` registers an account and its first device and returns a bearer token
//!   (kept by the server only as its SHA-256); `POST /v1/devices` adds a device,
//!   `DELETE /v1/devices/{id}` revokes one.
//! - `GET /v1/table/manifest` and `GET /v1/table/shards/{root}`: the published table, byte for
//!   byte, with strong `ETag`s and `304 Not Modified`; shards are named by their Merkle root, so
//!   they are immutable and cacheable by clients and CDNs.
//! - `POST /v1/attachments`: ciphertext plus vouchers; `201` delivered, `451` held (the
//!   intervention), `409` stale table, `400` refused. `GET /v1/attachments/{id}` fetches one.
//! - The two-phase upload ([`slots`]): `POST /v1/attachments/slots` (vouchers with the
//!   ciphertext's SHA-256 and length) answers as the upload does but with an upload slot;
//!   `PATCH /v1/attachments/slots/{id}` sends the bytes (TUS core, resumable: `HEAD` says where
//!   to continue), stored only with exactly the announced length and SHA-256.
//! - `GET /v1/cases/{id}` and `POST /v1/cases/{id}/check`: a held item's state and the automatic
//!   check by its sender's consent.
//! - `GET /v1/review/queue`: the cases waiting for human review (staff tokens only).
//! - `/v1/mls/...`: the MLS delivery service ([`delivery`]): key packages (publish, count,
//!   claim exactly once), groups (create, state, commits accepted only for the current epoch,
//!   application messages to the server's membership), and per-device queues with
//!   acknowledgement.
//! - `GET /healthz`, `GET /readyz`, `GET /metrics`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod client_ip;
pub mod config;
pub mod delivery;
pub mod error;
pub mod metrics;
pub mod sandbox;
pub mod shield;
pub mod slots;
pub mod state;
pub mod transparency;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use hashguard_service::banks::BankSet;
use hashguard_service::blobs::LocalBlobs;
use hashguard_service::intake::Intake;
use hashguard_service::publish::TableDir;
use hashguard_service::serving::ServedTable;
use hashguard_store::{DatabaseLocation, OpenMode, Store};
use utoipa::OpenApi;

use crate::config::{Config, LogFormat};
use crate::state::AppState;

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "hashguard",
        description = "Private matching of uploads against hash lists for end-to-end encrypted messengers: the upload service."
    ),
    paths(
        api::healthz,
        api::readyz,
        api::metrics,
        api::manifest,
        api::shard,
        transparency::bundle,
        transparency::checkpoint,
        transparency::tile,
        transparency::manifest,
        transparency::gossip,
        api::register,
        api::add_device,
        api::revoke_device,
        api::upload,
        slots::announce,
        slots::slot_status,
        slots::fill,
        slots::released_slot,
        api::download,
        api::case_status,
        api::check,
        api::appeal,
        api::review_queue,
        api::review_campaigns,
        delivery::publish_key_packages,
        delivery::key_packages_available,
        delivery::claim_key_packages,
        delivery::create_group,
        delivery::group_state,
        delivery::commit,
        delivery::send_message,
        delivery::receive,
        delivery::acknowledge,
    ),
    modifiers(&BearerAuth, &FloodShieldAnswer)
)]
pub struct ApiDoc;

/// Every operation but the health checks may be answered 429 by the flood shield
/// ([`shield`]): the document says so where the operation does not already.
struct FloodShieldAnswer;

impl utoipa::Modify for FloodShieldAnswer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let answer = ResponseBuilder::new()
            .description("too many requests from this address (Retry-After says when to try again)")
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if path == "/healthz" || path == "/readyz" {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.head,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("429".to_string())
                    .or_insert_with(|| answer.clone().into());
            }
        }
    }
}

/// Declares the bearer-token scheme the operations name.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

/// The routes over `state`.
pub fn router(state: AppState) -> Router {
    // The form's other parts (vouchers, visual derivatives, media) fit in 1 MiB.
    let upload_limit = usize::try_from(state.config().max_attachment_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(api::metrics))
        .route("/v1/table/manifest", get(api::manifest))
        .route("/v1/table/shards/{root}", get(api::shard))
        .route("/v1/table/bundle", get(transparency::bundle))
        .route("/v1/log/checkpoint", get(transparency::checkpoint))
        .route("/v1/log/tile/{*path}", get(transparency::tile))
        .route("/v1/log/manifests/{hash}", get(transparency::manifest))
        .route("/v1/log/gossip", post(transparency::gossip))
        .route("/v1/accounts", post(api::register))
        .route("/v1/devices", post(api::add_device))
        .route("/v1/devices/{device_id}", delete(api::revoke_device))
        .route(
            "/v1/attachments",
            post(api::upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route(
            "/v1/attachments/slots",
            post(slots::announce).layer(DefaultBodyLimit::max(slots::ANNOUNCE_BODY_LIMIT)),
        )
        // The bytes are streamed to the blob store, which enforces the announced length: no
        // body limit of the router's applies.
        .route(
            "/v1/attachments/slots/{slot_id}",
            patch(slots::fill).head(slots::slot_status),
        )
        .route(
            "/v1/attachments/{attachment_id}/slot",
            post(slots::released_slot),
        )
        .route("/v1/attachments/{attachment_id}", get(api::download))
        .route("/v1/cases/{case_id}", get(api::case_status))
        .route("/v1/cases/{case_id}/check", post(api::check))
        .route("/v1/cases/{case_id}/appeal", post(api::appeal))
        .route("/v1/review/queue", get(api::review_queue))
        .route("/v1/review/campaigns", get(api::review_campaigns))
        // The reviewers' web UI (issue 16), under /review.
        .merge(hashguard_review::router(review_state(&state)))
        .route(
            "/v1/mls/key-packages",
            post(delivery::publish_key_packages)
                .get(delivery::key_packages_available)
                .layer(DefaultBodyLimit::max(delivery::body_limits::KEY_PACKAGES)),
        )
        .route(
            "/v1/mls/key-packages/claim",
            post(delivery::claim_key_packages)
                .layer(DefaultBodyLimit::max(delivery::body_limits::SMALL)),
        )
        .route(
            "/v1/mls/groups",
            post(delivery::create_group).layer(DefaultBodyLimit::max(delivery::body_limits::SMALL)),
        )
        .route("/v1/mls/groups/{group_id}", get(delivery::group_state))
        .route(
            "/v1/mls/groups/{group_id}/commits",
            post(delivery::commit).layer(DefaultBodyLimit::max(delivery::body_limits::COMMIT)),
        )
        .route(
            "/v1/mls/groups/{group_id}/messages",
            post(delivery::send_message)
                .layer(DefaultBodyLimit::max(delivery::body_limits::MESSAGE)),
        )
        .route("/v1/mls/queue", get(delivery::receive))
        .route(
            "/v1/mls/queue/ack",
            post(delivery::acknowledge).layer(DefaultBodyLimit::max(delivery::body_limits::SMALL)),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            shield::shield,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(120),
        ))
        .with_state(state)
}

/// The review UI's state over the intake's store, blobs and table.
fn review_state(state: &AppState) -> hashguard_review::ReviewState {
    hashguard_review::ReviewState::new(
        state.intake().store().clone(),
        state.intake().blobs().clone(),
        Some(state.intake().table().params().clone()),
        hashguard_review::ReviewConfig {
            tls: state.config().tls.is_some(),
            ..state.config().review.clone()
        },
    )
}

/// Records each routed request's route pattern, status class and latency.
async fn record(
    State(state): State<AppState>,
    matched: Option<axum::extract::MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state
        .metrics()
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The database could not be opened.
    #[error("cannot open the {what}: {source}")]
    Store {
        /// The database, described without credentials.
        what: String,
        /// The cause.
        source: hashguard_store::StoreError,
    },
    /// The table or its key could not be loaded.
    #[error(transparent)]
    Table(#[from] hashguard_service::ServiceError),
    /// Removing what a crash left failed (the database or the data folder).
    #[error("cannot sweep the data folder: {0}")]
    Sweep(#[from] hashguard_service::intake::IntakeError),
    /// The plaintext index could not be built from the banks.
    #[error("cannot index the banks: {0}")]
    Banks(#[from] hashguard_service::banks::BankSetError),
    /// A file or socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Starts logging to standard error, as text or JSON lines; `RUST_LOG` filters (default
/// `info`). Does nothing if logging was started already.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A server bound to its address, ready to run.
pub struct Server {
    listener: Option<tokio::net::TcpListener>,
    addr: SocketAddr,
    app: Router,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The review state and how often retention runs.
    retention: (hashguard_review::ReviewState, Duration),
    /// The shared state (for the periodic sweep of upload slots).
    state: AppState,
}

impl Server {
    /// Opens the database (a SQLite file is created if missing), loads and checks the table
    /// and its key, indexes the banks for the checks after decryption, and binds the address.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        // The table first: without one there is nothing to serve, and no database file is
        // created for nothing.
        let table = ServedTable::load(&TableDir::new(&config.table), &config.key)?;
        let location = DatabaseLocation::parse(&config.db);
        let store = Store::open_location(&location, OpenMode::Create)
            .await
            .map_err(|source| ServeError::Store {
                what: location.describe(),
                source,
            })?;
        let banks = BankSet::load(&store, None).await?;
        let superseded =
            store
                .superseded_second_hashes()
                .await
                .map_err(|source| ServeError::Store {
                    what: location.describe(),
                    source,
                })?;
        if superseded > 0 {
            tracing::warn!(
                superseded,
                "second hashes of an earlier form (before the profiles) are set aside; until \
                 `hashguard list second-hash` computes them again from the listed originals, the \
                 automatic check finds their entries' second hash not on file"
            );
        }
        let blobs = LocalBlobs::open(config.data.join("blobs")).map_err(io(format!(
            "cannot create the data folder {}",
            config.data.display()
        )))?;
        tracing::info!(
            epoch = table.manifest().epoch(),
            policy = ?table.params().policy(),
            database = %location.describe(),
            data = %config.data.display(),
            "table loaded"
        );
        // What a crash left an hour or more ago: partial temporary files, and blobs written
        // just before a crash whose row never was (their uploads were never answered).
        let swept = blobs.sweep(Duration::from_secs(3600)).map_err(io(format!(
            "cannot sweep the data folder {}",
            config.data.display()
        )))?;
        let intake = Intake::new(store, blobs, Arc::new(table), Some(Arc::new(banks)));
        let orphans = intake
            .delete_orphans(&swept.attachments, &swept.pending)
            .await
            .map_err(|e| {
                io("cannot sweep the data folder")(std::io::Error::other(e.to_string()))
            })?;
        if swept.temporary_removed + orphans > 0 {
            tracing::info!(
                temporary = swept.temporary_removed,
                orphans,
                "removed what an earlier crash left in the data folder"
            );
        }
        // Uploads accepted under `silent` whose vouchers a killed process had not opened.
        let pending = intake.blobs().pending().map_err(io(format!(
            "cannot list the pending openings in {}",
            config.data.display()
        )))?;
        let recovered = intake.recover_pending(&pending).await?;
        if recovered.opened > 0 {
            tracing::info!(
                opened = recovered.opened,
                "opened the vouchers an earlier process accepted but had not opened"
            );
        }
        for name in &recovered.unreadable {
            tracing::error!(file = %name, "a pending opening cannot be read back; it is kept in the data folder for a person to look at");
        }
        // Expired upload slots, and slot files a crash left without their slot.
        sweep_slots(&intake).await?;
        let tls = config.tls.clone();
        let listen = config.listen;
        let purge_every = config.purge_every;
        let state = AppState::new(intake, config);
        let retention = (review_state(&state), purge_every);
        let app = router(state.clone());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(io(format!("cannot listen on {listen}")))?;
        let addr = listener
            .local_addr()
            .map_err(io("cannot read the bound address"))?;
        Ok(Server {
            listener: Some(listener),
            addr,
            app,
            tls,
            retention,
            state,
        })
    }

    /// The address it listens on (the port chosen when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it terminates TLS itself.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting connections and finishes the
    /// requests in flight.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| io("serve")(std::io::Error::other("already running")))?;
        // Retention (issue 16): material of confirmed cases deleted once the period after the
        // report's export ends, checked periodically; stopped when serving stops.
        let (review, every) = self.retention.clone();
        let retention = AbortOnDrop(tokio::spawn(hashguard_review::decide::run_retention(
            review, every,
        )));
        // Expired upload slots are deleted periodically too; stopped when serving stops.
        let slots = AbortOnDrop(tokio::spawn(run_slot_sweep(self.state.clone())));
        let served = self.serve(listener, shutdown).await;
        drop(retention);
        drop(slots);
        served
    }

    async fn serve(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        match self.tls.take() {
            None => axum::serve(
                listener,
                self.app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(io("serving")),
            Some((cert, key)) => {
                // ring is the one crypto provider this build carries (aws-lc-rs, which rustls
                // now prefers for its post-quantum key exchange, needs a C toolchain and CMake
                // at build time). A deployment that needs post-quantum TLS terminates TLS in
                // a proxy in front of the server.
                #[allow(deprecated)]
                let provider = rustls::crypto::ring::default_provider();
                let _ = provider.install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                    .await
                    .map_err(io(format!(
                        "cannot load the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )))?;
                let std_listener = listener
                    .into_std()
                    .map_err(io("cannot hand the socket to the TLS server"))?;
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(30)));
                });
                axum_server::from_tcp_rustls(std_listener, tls)
                    .handle(handle)
                    .serve(self.app.into_make_service_with_connect_info::<SocketAddr>())
                    .await
                    .map_err(io("serving TLS"))
            }
        }
    }
}

/// How often expired upload slots are deleted while serving.
const SLOT_SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Deletes expired upload slots and slot files that a crash left without a slot (files older
/// than an hour: a younger one may be another process's write in flight).
async fn sweep_slots(intake: &Intake<LocalBlobs>) -> Result<usize, ServeError> {
    let orphans = intake
        .blobs()
        .slot_files(Duration::from_secs(3600))
        .map_err(io("cannot list the upload slots' files"))?;
    let deleted = intake.sweep_slots(&orphans).await?;
    if deleted > 0 {
        tracing::info!(deleted, "deleted expired upload slots");
    }
    Ok(deleted)
}

/// [`sweep_slots`] every [`SLOT_SWEEP_EVERY`]; a failed pass is logged and the next one runs.
async fn run_slot_sweep(state: AppState) {
    let mut every = tokio::time::interval(SLOT_SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        if let Err(e) = sweep_slots(state.intake()).await {
            tracing::error!(error = %e, "sweeping the upload slots failed");
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Aborts its task when dropped (when serving ends, or when the future serving is dropped).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

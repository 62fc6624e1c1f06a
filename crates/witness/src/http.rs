//! The witness over HTTP (axum).
//!
//! | method and path | what | codes |
//! |---|---|---|
//! | `POST /add-checkpoint` | c2sp.org/tlog-witness `add-checkpoint` | 200, 400, 403, 404, 409, 413, 422 |
//! | `POST /gossip` | a client's signed checkpoint checked against the history (not in C2SP) | 200, 400, 403, 404, 409, 413 |
//! | `GET /` | the published statement (text) | 200 |
//! | `GET /health` | liveness: `ok` | 200 |

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::witness::{Refusal, Witness, TEXT_CONTENT_TYPE};

/// The largest request body accepted (413 above): 63 proof lines and a checkpoint with up to
/// 100 signature lines fit in well under this.
pub const MAX_BODY: usize = 64 * 1024;

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn refusal(r: &Refusal) -> Response {
    if let Refusal::Internal(e) = r {
        tracing::error!(error = %e, "witness database failure");
    }
    let status = StatusCode::from_u16(r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(status, r.content_type(), r.body())
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    match w.add_checkpoint(&body).await {
        Ok(c) => text(StatusCode::OK, TEXT_CONTENT_TYPE, c.lines),
        Err(r) => refusal(&r),
    }
}

async fn gossip(State(w): State<Arc<Witness>>, body: Bytes) -> Response {
    match w.gossip(&body).await {
        Ok(a) => text(StatusCode::OK, TEXT_CONTENT_TYPE, a.body()),
        Err(r) => refusal(&r),
    }
}

async fn statement(State(w): State<Arc<Witness>>) -> Response {
    text(StatusCode::OK, TEXT_CONTENT_TYPE, w.statement())
}

async fn health() -> Response {
    text(StatusCode::OK, TEXT_CONTENT_TYPE, "ok\n".to_string())
}

/// The witness's routes.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/", get(statement))
        .route("/health", get(health))
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/gossip", post(gossip))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(witness)
}

/// Serves the witness on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

//! The one error type of the review UI. Every refusal becomes a calm HTML page with a status
//! (or, for someone not logged in, a redirect to the login page); the cause of an internal
//! failure goes to the log, never to the page.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Why a review request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No valid staff session: the browser is sent to the login page.
    #[error("not logged in")]
    NotLoggedIn,
    /// Logged in, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The form's CSRF token is missing or is not this session's.
    #[error("the form's security token is missing or wrong")]
    Csrf,
    /// Nothing of that id.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with where things stand (decided already, say).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again after this many seconds.
    #[error("too many attempts; try again in {0} s")]
    RateLimited(u64),
    /// The service failed.
    #[error("{0}")]
    Internal(String),
}

impl ReviewError {
    /// An internal failure, logged.
    pub fn internal(cause: impl std::fmt::Display) -> ReviewError {
        ReviewError::Internal(cause.to_string())
    }

    /// The status of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            ReviewError::NotLoggedIn => StatusCode::SEE_OTHER,
            ReviewError::Forbidden(_) | ReviewError::Csrf => StatusCode::FORBIDDEN,
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ReviewError::Conflict(_) => StatusCode::CONFLICT,
            ReviewError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ReviewError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn words(&self) -> (&'static str, String) {
        match self {
            ReviewError::NotLoggedIn => ("Please log in", "Your session has ended.".to_string()),
            ReviewError::Forbidden(why) => ("Not for this role", why.clone()),
            ReviewError::Csrf => (
                "This form has expired",
                "The form was too old, or did not come from this page. Go back, reload the page and try again.".to_string(),
            ),
            ReviewError::NotFound(what) => ("Not found", format!("There is no such {what}.")),
            ReviewError::BadRequest(why) => ("That did not work", why.clone()),
            ReviewError::Conflict(why) => ("Already done", why.clone()),
            ReviewError::RateLimited(seconds) => (
                "Please wait",
                format!("Too many attempts. Try again in {} minute(s).", seconds.div_ceil(60).max(1)),
            ),
            ReviewError::Internal(_) => (
                "Something went wrong",
                "The service failed. Nothing was changed. Try again in a moment; if it keeps happening, tell the on-call engineer.".to_string(),
            ),
        }
    }
}

impl From<hashguard_store::StoreError> for ReviewError {
    fn from(e: hashguard_store::StoreError) -> ReviewError {
        ReviewError::internal(e)
    }
}

impl IntoResponse for ReviewError {
    fn into_response(self) -> Response {
        if let ReviewError::NotLoggedIn = self {
            let mut r = StatusCode::SEE_OTHER.into_response();
            r.headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static("/review/login"));
            return r;
        }
        if let ReviewError::Internal(cause) = &self {
            tracing::error!(%cause, "review request failed");
        }
        let (title, message) = self.words();
        let body = crate::pages::render(
            "error.html",
            minijinja::context! { title => title, message => message },
        )
        .unwrap_or_else(|_| {
            axum::response::Html(format!(
                "<!doctype html><title>{title}</title><p>{title}</p>"
            ))
        });
        let mut response = (self.status(), body).into_response();
        if let ReviewError::RateLimited(seconds) = self {
            if let Ok(v) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

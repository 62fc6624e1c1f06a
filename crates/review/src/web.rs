//! The routes of the review UI, all under `/review`. Handlers are thin: they authenticate,
//! check the CSRF token of a form, call the library and render a template. Every response gets
//! the security headers ([`security_headers`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hashguard_store::{CaseId, StaffRecord, StaffSession, TokenTake};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::auth::{self, Role, COOKIE};
use crate::casework::{self, Stage};
use crate::imaging::{self, View};
use crate::{now, pages, ReviewError, ReviewState};

/// The Content Security Policy of every page: only this server's stylesheet and images, no
/// script at all, no framing, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The review UI's routes (paths include `/review`), to merge into the server's router.
pub fn router<S: Clone + Send + Sync + 'static>(state: ReviewState) -> Router<S> {
    Router::new()
        .route("/review", get(home))
        .route("/review/", get(home))
        .route("/review/login", get(login_page).post(login_submit))
        .route("/review/logout", post(logout))
        .route("/review/logout-everywhere", post(logout_everywhere))
        .route("/review/queue", get(queue))
        .route("/review/cases/{case_id}", get(case_page))
        .route(
            "/review/cases/{case_id}/items/{item}/image",
            get(item_image),
        )
        .route("/review/cases/{case_id}/items/{item}/reveal", post(reveal))
        .route("/review/cases/{case_id}/decide", post(decide))
        .route("/review/cases/{case_id}/appeal", post(appeal))
        .route("/review/cases/{case_id}/report.json", get(report_json))
        .route("/review/cases/{case_id}/report.xml", get(report_xml))
        .route("/review/settings", get(settings_page).post(settings_save))
        .route("/review/audit", get(audit_page))
        .route("/review/static/review.css", get(css))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .with_state(state)
}

/// Whether a state-changing request comes from another site, by what the browser says: its
/// `Sec-Fetch-Site` (sent by every current browser) when present, otherwise an `Origin` that
/// names another host. `Origin: null` is not taken as foreign: under `Referrer-Policy:
/// no-referrer` Chromium sends exactly that with this site's own forms (found by the browser
/// test); the CSRF token still decides.
pub fn foreign_request(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|origin| {
            if origin == "null" {
                return false;
            }
            let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
            Some(origin_host) != host
        })
}

/// Adds the security headers to every response, and refuses a state-changing request from
/// another site ([`foreign_request`]; a second line behind the CSRF token and
/// `SameSite=Strict`).
pub async fn security_headers(
    State(state): State<ReviewState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changing = !matches!(*request.method(), Method::GET | Method::HEAD);
    let foreign = changing && foreign_request(request.headers());
    let is_css = request.uri().path().ends_with(".css");
    let mut response = if foreign {
        ReviewError::Csrf.into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if is_css {
            "public, max-age=3600"
        } else {
            "no-store"
        }),
    );
    if state.config().tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
    response
}

/// The session id in the request's cookie, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn set_cookie(state: &ReviewState, id: &str, max_age: i64) -> (header::HeaderName, HeaderValue) {
    let secure = if state.config().tls { "; Secure" } else { "" };
    let value = format!(
        "{COOKIE}={id}; Path=/review; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

/// A logged-in member of staff (from the session cookie only; an `Authorization` header, a
/// user's bearer token say, is never looked at).
pub struct Me {
    /// Who.
    pub staff: StaffRecord,
    /// Their role.
    pub role: Role,
    /// Their session.
    pub session: StaffSession,
}

impl Me {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), ReviewError> {
        if auth::csrf_matches(&self.session, given) {
            Ok(())
        } else {
            Err(ReviewError::Csrf)
        }
    }

    /// Refuses unless the role reviews (decides and reveals).
    pub fn must_review(&self) -> Result<(), ReviewError> {
        if self.role.reviews() {
            Ok(())
        } else {
            Err(ReviewError::Forbidden(format!(
                "An {} does not decide cases or look at images.",
                self.role.words()
            )))
        }
    }

    fn view(&self) -> minijinja::Value {
        context! {
            username => self.staff.username,
            role => self.role.words(),
            reads_audit => self.role.reads_audit(),
            reviews => self.role.reviews(),
            blur_level => self.staff.blur_level,
            greyscale => self.staff.greyscale,
            daily_reveals => self.staff.daily_reveals,
        }
    }
}

impl FromRequestParts<ReviewState> for Me {
    type Rejection = ReviewError;

    async fn from_request_parts(parts: &mut Parts, state: &ReviewState) -> Result<Me, ReviewError> {
        let id = session_cookie(&parts.headers).ok_or(ReviewError::NotLoggedIn)?;
        let t = now();
        let session = auth::valid_session(state.store(), state.config(), &id, t)
            .await?
            .ok_or(ReviewError::NotLoggedIn)?;
        let staff_id = session.staff.clone().ok_or(ReviewError::NotLoggedIn)?;
        let staff = state
            .store()
            .staff_by_id(&staff_id)
            .await?
            .filter(|s| s.disabled_at.is_none())
            .ok_or(ReviewError::NotLoggedIn)?;
        let role: Role = staff.role.parse().map_err(ReviewError::internal)?;
        if t.saturating_sub(session.seen_at) >= 60 {
            state
                .store()
                .touch_staff_session(&session.id_hash, t)
                .await?;
        }
        Ok(Me {
            staff,
            role,
            session,
        })
    }
}

/// The peer's address, when the server was started with connection info.
struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Peer, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

async fn home() -> Redirect {
    Redirect::to("/review/queue")
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        pages::CSS,
    )
}

/// The login page: a new login-form session (no staff), whose CSRF token the form carries.
async fn login_page(
    State(state): State<ReviewState>,
    headers: HeaderMap,
) -> Result<Response, ReviewError> {
    if let Some(id) = session_cookie(&headers) {
        if let Some(s) = auth::valid_session(state.store(), state.config(), &id, now()).await? {
            if s.staff.is_some() {
                return Ok(Redirect::to("/review/queue").into_response());
            }
        }
    }
    login_form(&state, StatusCode::OK, None, "").await
}

async fn login_form(
    state: &ReviewState,
    status: StatusCode,
    message: Option<&str>,
    username: &str,
) -> Result<Response, ReviewError> {
    let (id, session) = auth::new_session(state.store(), state.config(), None).await?;
    let page = pages::render(
        "login.html",
        context! { title => "Log in", csrf => session.csrf, message => message, username => username },
    )?;
    Ok((status, [set_cookie(state, &id, 3600)], page).into_response())
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_submit(
    State(state): State<ReviewState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ReviewError> {
    let store = state.store();
    let t = now();
    store.delete_expired_staff_sessions(t).await?;
    // Per network source, in the database (every server process shares the bucket).
    const SCALE: u32 = 3_600;
    let key = format!(
        "review-login:source:{}",
        peer.map_or_else(|| "unknown".to_string(), |p| p.ip().to_string())
    );
    let cfg = state.config();
    let take = TokenTake {
        key: &key,
        cost: SCALE,
        capacity: cfg.logins_per_source_burst.saturating_mul(SCALE),
        per_second: cfg.logins_per_source_per_hour,
        at_least: SCALE,
    };
    let now_ms = t.saturating_mul(1000);
    if let Some(refused) = store.take_tokens_together(&[take], now_ms).await? {
        return Err(ReviewError::RateLimited(refused.wait.as_secs().max(1)));
    }
    let pre = match session_cookie(&headers) {
        Some(id) => auth::valid_session(store, cfg, &id, t).await?,
        None => None,
    };
    let Some(pre) = pre.filter(|s| s.staff.is_none()) else {
        return Err(ReviewError::Csrf);
    };
    if !auth::csrf_matches(&pre, &form.csrf) {
        return Err(ReviewError::Csrf);
    }
    let username = form.username.trim().to_lowercase();
    match auth::login(store, cfg, &pre, &username, &form.password).await? {
        auth::LoginOutcome::LoggedIn { session_id, .. } => Ok((
            StatusCode::SEE_OTHER,
            [
                set_cookie(&state, &session_id, cfg.session_max_seconds),
                (header::LOCATION, HeaderValue::from_static("/review/queue")),
            ],
        )
            .into_response()),
        auth::LoginOutcome::Refused(message) => {
            store.delete_staff_session(&pre.id_hash).await?;
            login_form(&state, StatusCode::UNAUTHORIZED, Some(message), &username).await
        }
    }
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn logged_out(state: &ReviewState) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            set_cookie(state, "", 0),
            (header::LOCATION, HeaderValue::from_static("/review/login")),
        ],
    )
        .into_response()
}

async fn logout(
    State(state): State<ReviewState>,
    me: Me,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    state
        .store()
        .delete_staff_session(&me.session.id_hash)
        .await?;
    crate::audit::log(
        state.store(),
        &me.staff.username,
        "logout",
        &me.staff.username,
        &serde_json::json!({}),
    )
    .await?;
    Ok(logged_out(&state))
}

async fn logout_everywhere(
    State(state): State<ReviewState>,
    me: Me,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    let ended = state.store().delete_staff_sessions(&me.staff.id).await?;
    crate::audit::log(
        state.store(),
        &me.staff.username,
        "logout_everywhere",
        &me.staff.username,
        &serde_json::json!({ "sessions": ended }),
    )
    .await?;
    Ok(logged_out(&state))
}

/// "3 h 10 min", "12 min", "2 days 4 h".
pub fn age_words(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, (s % 86_400) / 3_600, (s % 3_600) / 60);
    match (d, h) {
        (0, 0) if m == 0 => "under a minute".to_string(),
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        (1, _) => format!("1 day {h} h"),
        _ => format!("{d} days {h} h"),
    }
}

fn short(id: &CaseId) -> String {
    id.to_string()[..8].to_string()
}

fn kind_words(facts: &casework::CaseFacts) -> String {
    match facts.case.kind {
        hashguard_store::CaseKind::Held => {
            "a held upload; its sender's automatic check kept it blocked".to_string()
        }
        hashguard_store::CaseKind::Threshold => format!(
            "an account past the threshold ({} item{})",
            facts.items.len(),
            if facts.items.len() == 1 { "" } else { "s" }
        ),
    }
}

/// The queue's filters.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct QueueFilter {
    #[serde(default)]
    bank: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    reviewer: String,
}

const QUEUE_STATES: &[(&str, &str)] = &[
    ("open", "Waiting for a decision"),
    ("first", "Needs a first decision"),
    ("second", "Needs a second decision"),
    ("senior", "Needs a senior reviewer"),
    ("confirmed", "Confirmed"),
    ("rejected", "Rejected"),
    ("all", "All"),
];

#[derive(Serialize)]
struct QueueRow {
    id: String,
    short: String,
    kind: String,
    banks: String,
    stage: &'static str,
    decisions: usize,
    age: String,
}

async fn queue(
    State(state): State<ReviewState>,
    me: Me,
    Query(mut filter): Query<QueueFilter>,
) -> Result<Response, ReviewError> {
    let store = state.store();
    let t = now();
    if !QUEUE_STATES.iter().any(|(v, _)| *v == filter.state) {
        filter.state = "open".to_string();
    }
    let decided_by = if filter.reviewer.is_empty() {
        None
    } else {
        match store.staff_by_name(&filter.reviewer).await? {
            Some(s) => Some(store.cases_decided_by(&s.id).await?),
            None => Some(Vec::new()),
        }
    };
    let mut all_banks = Vec::new();
    let mut rows = Vec::new();
    let mut waiting = 0usize;
    let mut oldest: Option<i64> = None;
    for case in store.all_cases(10_000).await? {
        if !casework::reviewable(&case) {
            continue;
        }
        let facts = casework::facts(store, case).await?;
        let banks = facts.banks();
        all_banks.extend(banks.iter().cloned());
        if facts.stage.open() {
            waiting += 1;
            oldest = Some(oldest.map_or(facts.case.created_at, |o| o.min(facts.case.created_at)));
        }
        let stage_ok = match filter.state.as_str() {
            "open" => facts.stage.open(),
            "all" => true,
            s => Stage::ALL
                .iter()
                .any(|st| st.as_str() == s && *st == facts.stage),
        };
        let bank_ok = filter.bank.is_empty() || banks.contains(&filter.bank);
        let reviewer_ok = decided_by
            .as_ref()
            .is_none_or(|ids| ids.contains(&facts.case.id));
        if !(stage_ok && bank_ok && reviewer_ok) {
            continue;
        }
        rows.push(QueueRow {
            id: facts.case.id.to_string(),
            short: short(&facts.case.id),
            kind: kind_words(&facts),
            banks: banks.join(", "),
            stage: facts.stage.words(),
            decisions: facts
                .decisions
                .iter()
                .filter(|d| d.stage == "independent")
                .count(),
            age: age_words(t.saturating_sub(facts.case.created_at)),
        });
    }
    all_banks.sort();
    all_banks.dedup();
    let reviewers: Vec<String> = store
        .list_staff()
        .await?
        .into_iter()
        .filter(|s| s.role.parse::<Role>().is_ok_and(Role::reviews))
        .map(|s| s.username)
        .collect();
    let appeals: Vec<_> = store
        .open_appeals(1_000)
        .await?
        .into_iter()
        .map(|a| context! { id => a.case.to_string(), short => short(&a.case), age => age_words(t.saturating_sub(a.created_at)) })
        .collect();
    crate::audit::log(
        store,
        &me.staff.username,
        "queue_viewed",
        "-",
        &serde_json::json!({ "filter": filter }),
    )
    .await?;
    let page = pages::render(
        "queue.html",
        context! {
            title => "Review queue", me => me.view(), csrf => me.session.csrf,
            rows => rows, waiting => waiting,
            oldest_age => oldest.map(|o| age_words(t.saturating_sub(o))),
            banks => all_banks, reviewers => reviewers, states => QUEUE_STATES,
            filter => filter, appeals => appeals,
        },
    )?;
    Ok(page.into_response())
}

fn parse_case(id: &str) -> Result<CaseId, ReviewError> {
    id.parse().map_err(|_| ReviewError::NotFound("case"))
}

/// The start of the current UTC day, for the daily exposure cap.
fn day_start(t: i64) -> i64 {
    t - t.rem_euclid(86_400)
}

async fn reveals_left(state: &ReviewState, me: &Me, t: i64) -> Result<i64, ReviewError> {
    let used = state
        .store()
        .reveals_since(&me.staff.id, day_start(t))
        .await?;
    Ok((me.staff.daily_reveals - used).max(0))
}

/// What the case page says about one decision.
#[derive(Serialize)]
struct DecisionView {
    who: String,
    stage: String,
    decision: String,
    classification: Option<String>,
    note: String,
}

async fn case_page(
    State(state): State<ReviewState>,
    me: Me,
    Path(case_id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ReviewError> {
    let store = state.store();
    let id = parse_case(&case_id)?;
    let facts = casework::load(store, &id)
        .await?
        .ok_or(ReviewError::NotFound("case"))?;
    let t = now();
    crate::audit::log(
        store,
        &me.staff.username,
        "case_viewed",
        &id.to_string(),
        &serde_json::json!({}),
    )
    .await?;
    let history = casework::history(store, &facts.case.account).await?;
    let mut items = Vec::new();
    for it in &facts.items {
        let index = i64::try_from(it.index).unwrap_or(i64::MAX);
        let revealed = store.reveal_active(&id, index, &me.staff.id, t).await?;
        let v = minijinja::Value::from_serialize(it);
        items.push(context! { revealed => revealed, has_picture => it.has_picture && me.role.reviews(), ..v });
    }
    let mine = facts.decisions.iter().any(|d| d.staff == me.staff.id);
    let others = facts
        .decisions
        .iter()
        .filter(|d| d.staff != me.staff.id)
        .count();
    let decisions_visible = !facts.stage.open()
        || mine
        || (facts.stage == Stage::AwaitingSenior && me.role.is_senior())
        || !me.role.reviews();
    let mut decisions = Vec::new();
    if decisions_visible {
        for d in &facts.decisions {
            let who = store
                .staff_by_id(&d.staff)
                .await?
                .map_or_else(|| "a former member of staff".to_string(), |s| s.username);
            decisions.push(DecisionView {
                who,
                stage: d.stage.clone(),
                decision: d.decision.clone(),
                classification: d.classification.clone(),
                note: d.note.clone(),
            });
        }
    }
    let decide = crate::decide::offer(&me, &facts);
    let report = crate::decide::report_offer(store, &facts).await?;
    let appeal = crate::decide::appeal_offer(store, &me, &facts).await?;
    let message = q.get("done").map(|d| match d.as_str() {
        "decided" => "Your decision is recorded.",
        "revealed" => "Revealed. The image blurs again by itself after two minutes.",
        "appeal" => "The appeal is decided; the user's app will show the answer.",
        _ => "Done.",
    });
    let page = pages::render(
        "case.html",
        context! {
            title => format!("Case {}", short(&id)), me => me.view(), csrf => me.session.csrf,
            case => context! {
                id => id.to_string(), short => short(&id), stage => facts.stage.words(),
                kind => kind_words(&facts), age => age_words(t.saturating_sub(facts.case.created_at)),
                second_check => facts.second_check,
            },
            history => history, items => items,
            can_reveal => me.role.reviews(),
            reveals_left => reveals_left(&state, &me, t).await?,
            decisions_visible => decisions_visible && !decisions.is_empty(),
            decisions => decisions,
            decided_count => if decisions_visible { 0 } else { others },
            decide => decide, report => report, appeal => appeal, message => message,
        },
    )?;
    Ok(page.into_response())
}

fn parse_item(item: &str) -> Result<usize, ReviewError> {
    item.parse().map_err(|_| ReviewError::NotFound("item"))
}

async fn item_image(
    State(state): State<ReviewState>,
    me: Me,
    Path((case_id, item)): Path<(String, String)>,
) -> Result<Response, ReviewError> {
    me.must_review()?;
    let store = state.store();
    let id = parse_case(&case_id)?;
    let index = parse_item(&item)?;
    let facts = casework::load(store, &id)
        .await?
        .ok_or(ReviewError::NotFound("case"))?;
    let bytes = casework::derivative(store, state.blobs(), state.params(), &facts, index)
        .await?
        .ok_or(ReviewError::NotFound("image"))?;
    let revealed = store
        .reveal_active(
            &id,
            i64::try_from(index).unwrap_or(i64::MAX),
            &me.staff.id,
            now(),
        )
        .await?;
    let view = View {
        blur: (!revealed).then(|| imaging::blur_sigma(me.staff.blur_level)),
        greyscale: me.staff.greyscale,
    };
    let png = tokio::task::spawn_blocking(move || imaging::render(&bytes, view))
        .await
        .map_err(ReviewError::internal)??;
    crate::audit::log(
        store,
        &me.staff.username,
        if revealed {
            "image_viewed_revealed"
        } else {
            "image_viewed_blurred"
        },
        &id.to_string(),
        &serde_json::json!({ "item": index }),
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}

/// The reveal form.
#[derive(Debug, Deserialize)]
pub struct RevealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn reveal(
    State(state): State<ReviewState>,
    me: Me,
    Path((case_id, item)): Path<(String, String)>,
    Form(form): Form<RevealForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    me.must_review()?;
    let store = state.store();
    let id = parse_case(&case_id)?;
    let index = parse_item(&item)?;
    let facts = casework::load(store, &id)
        .await?
        .ok_or(ReviewError::NotFound("case"))?;
    if facts.items.get(index).is_none_or(|i| !i.has_picture) {
        return Err(ReviewError::NotFound("image"));
    }
    let reason = form.reason.trim();
    if reason.chars().count() < 4 || reason.chars().count() > 500 {
        return Err(ReviewError::BadRequest(
            "Say in a few words (4 to 500 characters) why you need to see the image.".to_string(),
        ));
    }
    let t = now();
    if reveals_left(&state, &me, t).await? <= 0 {
        return Err(ReviewError::Forbidden(format!(
            "You have revealed {} images today, your daily limit. It protects you: take a break, and leave the rest of the queue to a colleague.",
            me.staff.daily_reveals
        )));
    }
    store.end_reveals(&me.staff.id, t).await?;
    let index_db = i64::try_from(index).map_err(ReviewError::internal)?;
    store
        .insert_reveal(&hashguard_store::Reveal {
            case: id,
            item: index_db,
            staff: me.staff.id.clone(),
            reason: reason.to_string(),
            at: t,
            expires_at: t.saturating_add(state.config().reveal_seconds),
        })
        .await?;
    crate::audit::log(
        store,
        &me.staff.username,
        "revealed",
        &id.to_string(),
        &serde_json::json!({ "item": index, "reason": reason }),
    )
    .await?;
    Ok(Redirect::to(&format!("/review/cases/{id}?done=revealed")).into_response())
}

/// The decision form.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    classification: String,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(state): State<ReviewState>,
    me: Me,
    Path(case_id): Path<String>,
    Form(form): Form<DecideForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    me.must_review()?;
    let id = parse_case(&case_id)?;
    let facts = casework::load(state.store(), &id)
        .await?
        .ok_or(ReviewError::NotFound("case"))?;
    let decision = match form.decision.as_str() {
        "confirm" => crate::decide::Decision::Confirm,
        "reject" => crate::decide::Decision::Reject,
        _ => {
            return Err(ReviewError::BadRequest(
                "Choose confirm or reject.".to_string(),
            ))
        }
    };
    crate::decide::decide(
        &state,
        &me,
        &facts,
        decision,
        Some(&form.classification),
        &form.note,
    )
    .await?;
    Ok(Redirect::to(&format!("/review/cases/{id}?done=decided")).into_response())
}

/// The appeal form.
#[derive(Debug, Deserialize)]
pub struct AppealForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    note: String,
}

async fn appeal(
    State(state): State<ReviewState>,
    me: Me,
    Path(case_id): Path<String>,
    Form(form): Form<AppealForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    me.must_review()?;
    let id = parse_case(&case_id)?;
    let facts = casework::load(state.store(), &id)
        .await?
        .ok_or(ReviewError::NotFound("case"))?;
    let overturn = match form.decision.as_str() {
        "overturn" => true,
        "uphold" => false,
        _ => {
            return Err(ReviewError::BadRequest(
                "Choose uphold or overturn.".to_string(),
            ))
        }
    };
    crate::decide::decide_appeal(&state, &me, &facts, overturn, &form.note).await?;
    Ok(Redirect::to(&format!("/review/cases/{id}?done=appeal")).into_response())
}

async fn report_export(
    state: &ReviewState,
    me: &Me,
    case_id: &str,
    format: &'static str,
) -> Result<Response, ReviewError> {
    if !(me.role.reviews() || me.role == Role::Admin) {
        return Err(ReviewError::Forbidden(
            "Reports are exported by reviewers and admins.".to_string(),
        ));
    }
    let store = state.store();
    let id = parse_case(case_id)?;
    let report = store
        .review_report(&id)
        .await?
        .ok_or(ReviewError::NotFound("report"))?;
    store.mark_report_exported(&id, now()).await?;
    crate::audit::log(
        store,
        &me.staff.username,
        "report_exported",
        &id.to_string(),
        &serde_json::json!({ "format": format }),
    )
    .await?;
    let (body, content_type) = if format == "xml" {
        (report.xml, "application/xml; charset=utf-8")
    } else {
        (report.json, "application/json")
    };
    let disposition = format!("attachment; filename=\"hashguard-report-{id}.{format}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(ReviewError::internal)?,
            ),
        ],
        body,
    )
        .into_response())
}

async fn report_json(
    State(state): State<ReviewState>,
    me: Me,
    Path(case_id): Path<String>,
) -> Result<Response, ReviewError> {
    report_export(&state, &me, &case_id, "json").await
}

async fn report_xml(
    State(state): State<ReviewState>,
    me: Me,
    Path(case_id): Path<String>,
) -> Result<Response, ReviewError> {
    report_export(&state, &me, &case_id, "xml").await
}

async fn settings_page(
    State(state): State<ReviewState>,
    me: Me,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ReviewError> {
    let used = state
        .store()
        .reveals_since(&me.staff.id, day_start(now()))
        .await?;
    Ok(pages::render(
        "settings.html",
        context! {
            title => "Settings", me => me.view(), csrf => me.session.csrf,
            reveals_today => used, saved => q.contains_key("saved"),
        },
    )?
    .into_response())
}

/// The settings form.
#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    blur_level: i64,
    #[serde(default)]
    greyscale: Option<String>,
}

async fn settings_save(
    State(state): State<ReviewState>,
    me: Me,
    Form(form): Form<SettingsForm>,
) -> Result<Response, ReviewError> {
    me.check_csrf(&form.csrf)?;
    if !(1..=3).contains(&form.blur_level) {
        return Err(ReviewError::BadRequest(
            "Choose a blur level of 1, 2 or 3.".to_string(),
        ));
    }
    let greyscale = form.greyscale.is_some();
    state
        .store()
        .set_staff_settings(&me.staff.id, form.blur_level, greyscale)
        .await?;
    crate::audit::log(
        state.store(),
        &me.staff.username,
        "settings_changed",
        &me.staff.username,
        &serde_json::json!({ "blur_level": form.blur_level, "greyscale": greyscale }),
    )
    .await?;
    Ok(Redirect::to("/review/settings?saved=1").into_response())
}

async fn audit_page(State(state): State<ReviewState>, me: Me) -> Result<Response, ReviewError> {
    if !me.role.reads_audit() {
        return Err(ReviewError::Forbidden(
            "The audit log is for auditors and admins.".to_string(),
        ));
    }
    let store = state.store();
    let check = crate::audit::verify(store).await?;
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = store.audit_events(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        rows.extend(page);
    }
    let rows: Vec<_> = rows
        .iter()
        .rev()
        .take(500)
        .map(|e| context! { seq => e.seq, when => utc(e.at), actor => e.actor, action => e.action, subject => e.subject })
        .collect();
    crate::audit::log(
        store,
        &me.staff.username,
        "audit_viewed",
        "-",
        &serde_json::json!({}),
    )
    .await?;
    Ok(pages::render(
        "audit.html",
        context! {
            title => "Audit log", me => me.view(), csrf => me.session.csrf,
            chain_ok => check.problem.is_none(), events => check.events,
            problem => check.problem.map(|p| p.to_string()), rows => rows,
        },
    )?
    .into_response())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3_600,
        (secs % 3_600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_for_ages_and_times() {
        assert_eq!(age_words(30), "under a minute");
        assert_eq!(age_words(12 * 60), "12 min");
        assert_eq!(age_words(3 * 3600 + 600), "3 h 10 min");
        assert_eq!(age_words(2 * 86_400 + 4 * 3600), "2 days 4 h");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(day_start(86_400 + 5), 86_400);
    }
}

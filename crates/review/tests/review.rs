//! The review UI over real HTTP on loopback, against a whole local deployment
//! (`hashguard_server::sandbox`) and the client SDK, on SQLite and on PostgreSQL: every staff
//! route refuses anonymous requests and user tokens; CSRF tokens missing or wrong are refused;
//! the session id from before the login is worthless after it; lockout; a listed stand-in
//! image held, checked by consent and worked through two reviewers to an exported report;
//! the same reviewer cannot decide twice and an auditor cannot decide at all; a rejection
//! allow-lists and releases; a disagreement goes to a senior reviewer; an appeal decided by a
//! reviewer who did not decide the case; the audit chain intact at the end; retention (a
//! confirmed case's material deleted by the server's periodic task once the period after the
//! export ends, and not before; released material at once).
//!
//! No real abuse material: the stand-in lists list the benign demo image
//! `assets/demo/hills.png`.

use std::path::{Path, PathBuf};

use hashguard_client::{CheckOutcome, SendOutcome, Session, SessionOptions};
use hashguard_review::auth::{add_staff, Role};
use hashguard_server::config::{Bucket, Limits};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};
use hashguard_service::blobs::BlobName;
use hashguard_store::{AttachmentState, CaseId, DatabaseLocation, OpenMode, Store};
use reqwest::StatusCode;

const PASSWORD: &str = "a long test password";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn sandbox(kind: &str, test: &str, dir: &Path) -> Option<Sandbox> {
    sandbox_with(kind, test, dir, |_| {}).await
}

async fn sandbox_with(
    kind: &str,
    test: &str,
    dir: &Path,
    edit: impl FnOnce(&mut SandboxOptions),
) -> Option<Sandbox> {
    let mut options = SandboxOptions::new(dir);
    if kind == "postgres" {
        options.db = Some(hashguard_testsupport::postgres::fresh_schema(test).await?);
    }
    let wide = Bucket {
        burst: 100,
        per_hour: 100,
    };
    options.limits = Limits {
        matches_per_account: wide,
        matches_per_source: wide,
        checks_per_account: wide,
        ..Limits::default()
    };
    edit(&mut options);
    Some(Sandbox::start(options).await.expect("the sandbox starts"))
}

async fn store(s: &Sandbox) -> Store {
    Store::open_location(&DatabaseLocation::parse(s.db()), OpenMode::Create)
        .await
        .expect("store")
}

async fn user(s: &Sandbox) -> Session {
    let mut session = Session::register(s.base_url(), s.trust_anchors(), SessionOptions::default())
        .await
        .expect("register");
    session.refresh_table().await.expect("table");
    session
}

/// A listed stand-in image sent, held, and kept blocked by its consented check: a case in the
/// review queue. Returns the case id.
async fn blocked_case(user: &mut Session) -> String {
    let listed = std::fs::read(repo().join("assets/demo/hills-recompressed.jpg")).expect("image");
    let prepared = user.prepare(&listed, None).expect("prepare");
    let SendOutcome::Held(held) = user.send(&prepared).await.expect("send") else {
        panic!("the listed image must be held");
    };
    match user.consent_check(&held).await.expect("check") {
        CheckOutcome::BlockedForReview { .. } => {}
        CheckOutcome::Released(_) => panic!("a listed image stays blocked"),
    }
    held.case_id().to_string()
}

/// A browser: one cookie, no redirects followed.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_string(),
            cookie: None,
        }
    }

    fn remember(&mut self, r: &reqwest::Response) {
        if let Some(v) = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            let pair = v.split(';').next().unwrap_or("");
            let value = pair.split_once('=').map_or("", |(_, v)| v);
            self.cookie = (!value.is_empty()).then(|| value.to_string());
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("hg_review={c}"));
        }
        let r = req.send().await.expect("get");
        self.remember(&r);
        r
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("hg_review={c}"));
        }
        let r = req.send().await.expect("post");
        self.remember(&r);
        r
    }

    async fn page(&mut self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.text().await.expect("body")
    }

    async fn login(&mut self, username: &str, password: &str) -> reqwest::Response {
        let page = self.page("/review/login").await;
        let csrf = csrf_of(&page);
        self.post(
            "/review/login",
            &[
                ("username", username),
                ("password", password),
                ("csrf", &csrf),
            ],
        )
        .await
    }

    async fn csrf(&mut self) -> String {
        csrf_of(&self.page("/review/settings").await)
    }
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + 64].to_string()
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn staff(store: &Store, name: &str, role: Role) {
    add_staff(store, name, role, PASSWORD, "test")
        .await
        .expect("staff");
}

async fn security(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = sandbox(kind, "review_security", dir.path()).await else {
        return;
    };
    let db = store(&s).await;
    staff(&db, "ana", Role::Reviewer).await;
    let mut u = user(&s).await;
    let case = blocked_case(&mut u).await;
    let token = u.credentials().token.to_string();

    // Every staff route refuses anonymous requests and user tokens: a redirect to the login
    // page and nothing else.
    let gets = [
        "/review/queue".to_string(),
        format!("/review/cases/{case}"),
        format!("/review/cases/{case}/items/0/image"),
        format!("/review/cases/{case}/report.json"),
        format!("/review/cases/{case}/report.xml"),
        "/review/settings".to_string(),
        "/review/audit".to_string(),
    ];
    let posts = [
        format!("/review/cases/{case}/decide"),
        format!("/review/cases/{case}/appeal"),
        format!("/review/cases/{case}/items/0/reveal"),
        "/review/settings".to_string(),
        "/review/logout".to_string(),
        "/review/logout-everywhere".to_string(),
    ];
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for path in &gets {
        for auth in [None, Some(&token)] {
            let mut req = http.get(format!("{}{path}", s.base_url()));
            if let Some(t) = auth {
                req = req
                    .bearer_auth(t)
                    .header("cookie", format!("hg_review={t}"));
            }
            let r = req.send().await.expect("get");
            assert_eq!(
                r.status(),
                StatusCode::SEE_OTHER,
                "GET {path} auth {}",
                auth.is_some()
            );
            assert_eq!(location(&r), "/review/login");
            assert!(r.text().await.expect("body").is_empty());
        }
    }
    for path in &posts {
        for auth in [None, Some(&token)] {
            let mut req = http.post(format!("{}{path}", s.base_url())).form(&[
                ("csrf", "x"),
                ("decision", "confirm"),
                ("classification", "A1"),
                ("reason", "look"),
                ("blur_level", "1"),
            ]);
            if let Some(t) = auth {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.expect("post");
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "POST {path}");
            assert_eq!(location(&r), "/review/login");
        }
    }
    assert!(db
        .review_decisions(&case.parse::<CaseId>().expect("id"))
        .await
        .expect("decisions")
        .is_empty());

    // The login page carries the security headers.
    let mut b = Browser::new(s.base_url());
    let r = b.get("/review/login").await;
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline")
            && csp.contains("default-src 'none'")
    );
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["set-cookie"]
        .to_str()
        .expect("cookie")
        .contains("HttpOnly"));
    assert!(
        h.get("strict-transport-security").is_none(),
        "no HSTS without TLS"
    );
    let page = r.text().await.expect("page");
    assert!(!page.contains("<script"), "no script at all");
    let csrf = csrf_of(&page);

    // CSRF: missing or wrong is refused; nobody is logged in.
    for bad in [
        "",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let r = b
            .post(
                "/review/login",
                &[("username", "ana"), ("password", PASSWORD), ("csrf", bad)],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // Session fixation: the login form's session id is worthless after the login.
    let before = b.cookie.clone().expect("pre-login cookie");
    let r = b
        .post(
            "/review/login",
            &[("username", "ana"), ("password", PASSWORD), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/review/queue");
    let after = b.cookie.clone().expect("session cookie");
    assert_ne!(before, after);
    let mut fixed = Browser::new(s.base_url());
    fixed.cookie = Some(before);
    assert_eq!(
        fixed.get("/review/queue").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get("/review/queue").await.status(), StatusCode::OK);
    // The staff session is not a bearer token of the user API.
    let r = http
        .get(format!("{}/v1/cases/{case}", s.base_url()))
        .bearer_auth(&after)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Logged in, forms still need this session's token; another session's is refused.
    let mut other = Browser::new(s.base_url());
    assert_eq!(
        other.login("ana", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let other_csrf = other.csrf().await;
    for bad in ["", other_csrf.as_str()] {
        let r = b
            .post("/review/settings", &[("csrf", bad), ("blur_level", "1")])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {bad:?}");
        let r = b
            .post(
                &format!("/review/cases/{case}/decide"),
                &[
                    ("csrf", bad),
                    ("decision", "confirm"),
                    ("classification", "A1"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    // A form from another site is refused even with the right token.
    let own = b.csrf().await;
    let r = b
        .http
        .post(format!("{}/review/settings", s.base_url()))
        .header(
            "cookie",
            format!("hg_review={}", b.cookie.clone().expect("cookie")),
        )
        .header("origin", "http://evil.example")
        .form(&[("csrf", own.as_str()), ("blur_level", "1")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // So is one the browser marks as cross-site, whatever its Origin says.
    for (site, origin) in [("cross-site", "null"), ("same-site", "null")] {
        let r = b
            .http
            .post(format!("{}/review/settings", s.base_url()))
            .header(
                "cookie",
                format!("hg_review={}", b.cookie.clone().expect("cookie")),
            )
            .header("sec-fetch-site", site)
            .header("origin", origin)
            .form(&[("csrf", own.as_str()), ("blur_level", "1")])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{site}");
    }
    assert!(db
        .review_decisions(&case.parse::<CaseId>().expect("id"))
        .await
        .expect("decisions")
        .is_empty());
    // Log out everywhere ends both sessions.
    let r = b
        .post("/review/logout-everywhere", &[("csrf", own.as_str())])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        other.get("/review/queue").await.status(),
        StatusCode::SEE_OTHER
    );

    // Lockout: five wrong passwords lock the account; then the right one is refused too.
    let mut m = Browser::new(s.base_url());
    for _ in 0..5 {
        let r = m.login("ana", "not the password").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.text().await.expect("page").contains("do not match"));
    }
    let r = m.login("ana", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().await.expect("page").contains("locked"));
    // An unknown name gets the same words as a wrong password.
    let r = m.login("nobody", PASSWORD).await;
    assert!(r.text().await.expect("page").contains("do not match"));
    db.close().await;
}

/// A greyscale PNG's largest difference between horizontal neighbours.
fn sharpness(png: &[u8]) -> i32 {
    let i = image::load_from_memory(png).expect("png").to_luma8();
    let mut max = 0;
    for y in 0..i.height() {
        for x in 1..i.width() {
            max = max
                .max((i32::from(i.get_pixel(x, y)[0]) - i32::from(i.get_pixel(x - 1, y)[0])).abs());
        }
    }
    max
}

async fn decide(
    b: &mut Browser,
    case: &str,
    decision: &str,
    classification: &str,
) -> reqwest::Response {
    let csrf = b.csrf().await;
    b.post(
        &format!("/review/cases/{case}/decide"),
        &[
            ("csrf", csrf.as_str()),
            ("decision", decision),
            ("classification", classification),
            ("note", ""),
        ],
    )
    .await
}

async fn two_reviewers(kind: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = sandbox(kind, "review_two_reviewers", dir.path()).await else {
        return;
    };
    let db = store(&s).await;
    staff(&db, "ana", Role::Reviewer).await;
    staff(&db, "ben", Role::Reviewer).await;
    staff(&db, "cleo", Role::SeniorReviewer).await;
    staff(&db, "dev", Role::Reviewer).await;
    staff(&db, "audra", Role::Auditor).await;
    let mut u = user(&s).await;
    let first = blocked_case(&mut u).await;

    let mut ana = Browser::new(s.base_url());
    assert_eq!(
        ana.login("ana", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let queue = ana.page("/review/queue").await;
    assert!(queue.contains(&first[..8]), "the case is in the queue");
    assert!(queue.contains("needs a first decision") && queue.contains("1 case waiting"));
    let page = ana.page(&format!("/review/cases/{first}")).await;
    assert!(
        page.contains("standin-a") || page.contains("standin-b"),
        "the bank is named"
    );
    assert!(
        page.contains(
            "Matches: the second hash of the visual derivative agrees with the same listed entry"
        ),
        "the second check said plainly"
    );
    assert!(page.contains("PDQ distance"));

    // The image: greyscale, blurred by the server, no-store; revealed only after a reason.
    let r = ana
        .get(&format!("/review/cases/{first}/items/0/image"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["content-type"], "image/png");
    let blurred = r.bytes().await.expect("png").to_vec();
    assert!(!image::load_from_memory(&blurred)
        .expect("png")
        .color()
        .has_color());
    let csrf = ana.csrf().await;
    let r = ana
        .post(
            &format!("/review/cases/{first}/items/0/reveal"),
            &[("csrf", csrf.as_str()), ("reason", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "a reason is needed");
    let r = ana
        .post(
            &format!("/review/cases/{first}/items/0/reveal"),
            &[("csrf", csrf.as_str()), ("reason", "to classify it")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let revealed = ana
        .get(&format!("/review/cases/{first}/items/0/image"))
        .await
        .bytes()
        .await
        .expect("png")
        .to_vec();
    assert!(
        sharpness(&revealed) > sharpness(&blurred) + 5,
        "revealed {} blurred {}",
        sharpness(&revealed),
        sharpness(&blurred)
    );

    // Two independent decisions by two different people.
    assert_eq!(
        decide(&mut ana, &first, "confirm", "").await.status(),
        StatusCode::BAD_REQUEST,
        "a confirmation needs a classification"
    );
    assert_eq!(
        decide(&mut ana, &first, "confirm", "A1").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&mut ana, &first, "confirm", "A1").await.status(),
        StatusCode::CONFLICT,
        "the same reviewer never counts twice"
    );
    let mut audra = Browser::new(s.base_url());
    assert_eq!(
        audra.login("audra", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&mut audra, &first, "confirm", "A1").await.status(),
        StatusCode::FORBIDDEN,
        "an auditor cannot decide"
    );
    assert_eq!(
        audra
            .get(&format!("/review/cases/{first}/items/0/image"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let mut ben = Browser::new(s.base_url());
    assert_eq!(
        ben.login("ben", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let page = ben.page(&format!("/review/cases/{first}")).await;
    assert!(
        !page.contains("<strong>confirm</strong>"),
        "the second reviewer does not see the first decision"
    );
    assert!(page.contains("1 other reviewer has decided"));
    assert_eq!(
        ben.get(&format!("/review/cases/{first}/report.json"))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "no report after one decision"
    );
    assert_eq!(
        decide(&mut ben, &first, "confirm", "A1").await.status(),
        StatusCode::SEE_OTHER
    );
    let page = ben.page(&format!("/review/cases/{first}")).await;
    assert!(page.contains("<strong>confirm</strong>") && page.contains("confirmed"));
    let r = ben.get(&format!("/review/cases/{first}/report.xml")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let xml = r.text().await.expect("xml");
    assert!(xml.contains("<industryClassification>A1</industryClassification>"));
    assert!(xml.contains("<fileViewedByEsp>true</fileViewedByEsp>"));
    assert!(xml.contains("ana (independent") && xml.contains("ben (independent"));
    let json: serde_json::Value = ben
        .get(&format!("/review/cases/{first}/report.json"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(json["confirmations"].as_array().expect("array").len(), 2);

    // An appeal: the reviewers who decided cannot decide it; another reviewer can.
    u.appeal(&first, "These are hills.").await.expect("appeal");
    let csrf = ana.csrf().await;
    let r = ana
        .post(
            &format!("/review/cases/{first}/appeal"),
            &[("csrf", csrf.as_str()), ("decision", "overturn")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let mut dev = Browser::new(s.base_url());
    assert_eq!(
        dev.login("dev", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let csrf = dev.csrf().await;
    // (Upheld: overturning would put the image on the allow-list, and the cases below send it
    // again.)
    let r = dev
        .post(
            &format!("/review/cases/{first}/appeal"),
            &[("csrf", csrf.as_str()), ("decision", "uphold")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let status = u.case(&first).await.expect("case");
    assert_eq!(
        status.appeal.expect("appeal").state,
        "upheld",
        "the user's client learns the outcome"
    );
    let r = dev
        .post(
            &format!("/review/cases/{first}/appeal"),
            &[("csrf", csrf.as_str()), ("decision", "overturn")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "decided once");

    // A disagreement goes to a senior reviewer, who decided neither.
    let mut u2 = user(&s).await;
    let third = blocked_case(&mut u2).await;
    assert_eq!(
        decide(&mut ana, &third, "confirm", "A2").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&mut dev, &third, "reject", "").await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(ben
        .page("/review/queue?state=senior")
        .await
        .contains(&third[..8]));
    assert_eq!(
        decide(&mut ben, &third, "reject", "").await.status(),
        StatusCode::FORBIDDEN,
        "not a senior reviewer"
    );
    let mut cleo = Browser::new(s.base_url());
    assert_eq!(
        cleo.login("cleo", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(cleo
        .page(&format!("/review/cases/{third}"))
        .await
        .contains("Senior decision"));
    assert_eq!(
        decide(&mut cleo, &third, "confirm", "A2").await.status(),
        StatusCode::SEE_OTHER
    );
    assert!(cleo
        .page("/review/queue?state=confirmed")
        .await
        .contains(&third[..8]));
    assert!(cleo
        .page("/review/queue?reviewer=dev&state=all")
        .await
        .contains(&third[..8]));

    // A rejection: allow-listed, released, its material deleted at once.
    let second = blocked_case(&mut u).await;
    let id: CaseId = second.parse().expect("id");
    assert_eq!(db.review_material(&id).await.expect("material").len(), 1);
    assert_eq!(
        decide(&mut ana, &second, "reject", "").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&mut ben, &second, "reject", "").await.status(),
        StatusCode::SEE_OTHER
    );
    let case = db.case(&id).await.expect("case").expect("exists");
    let attachment = db
        .attachment(&case.attachment.expect("attachment"))
        .await
        .expect("row")
        .expect("row");
    assert_eq!(attachment.state, AttachmentState::Released);
    assert!(
        db.review_material(&id).await.expect("material").is_empty(),
        "released material is deleted at once"
    );
    // A re-send of the same image is released at once by the check (the allow-list).
    let listed = std::fs::read(repo().join("assets/demo/hills-recompressed.jpg")).expect("image");
    let prepared = u.prepare(&listed, None).expect("prepare");
    let SendOutcome::Held(held) = u.send(&prepared).await.expect("send") else {
        panic!("held");
    };
    assert!(matches!(
        u.consent_check(&held).await.expect("check"),
        CheckOutcome::Released(_)
    ));

    // Every view, reveal, decision, export and allow-list change is in the chain, intact.
    let audit = audra.page("/review/audit").await;
    assert!(audit.contains("The chain is intact"));
    let mut actions = Vec::new();
    let mut after = None;
    loop {
        let page = db.audit_events(after, 1000).await.expect("audit");
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        actions.extend(page.into_iter().map(|e| e.action));
    }
    for a in [
        "login",
        "case_viewed",
        "revealed",
        "image_viewed_blurred",
        "image_viewed_revealed",
        "decided",
        "confirmed",
        "report_exported",
        "allow_listed",
        "false_positive",
        "referred_to_senior",
        "appeal_decided",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} is logged");
    }
    assert!(db.verify_audit().await.expect("verify").problem.is_none());
    db.close().await;
}

/// Whether the data folder under `dir` holds the blob `name` (in any subfolder).
fn blob_exists(dir: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            blob_exists(&p, name)
        } else {
            e.file_name().to_str() == Some(name)
        }
    })
}

/// Retention: a confirmed case's material (the derivatives kept for review, the encrypted
/// attachment) is kept until its report is exported plus the configured period, deleted by
/// the server's periodic task after it, and not before; a confirmed case never exported keeps
/// its material; a released case's material is deleted at once.
async fn retention(kind: &str) {
    const PERIOD: i64 = 3;
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(s) = sandbox_with(kind, "review_retention", dir.path(), |o| {
        o.review.retention_after_export_seconds = PERIOD;
        o.purge_every = std::time::Duration::from_millis(300);
    })
    .await
    else {
        return;
    };
    let db = store(&s).await;
    staff(&db, "ana", Role::Reviewer).await;
    staff(&db, "ben", Role::Reviewer).await;
    let mut u = user(&s).await;
    let exported = blocked_case(&mut u).await;
    let kept = blocked_case(&mut u).await;
    let mut ana = Browser::new(s.base_url());
    let mut ben = Browser::new(s.base_url());
    assert_eq!(
        ana.login("ana", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ben.login("ben", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    for case in [&exported, &kept] {
        for b in [&mut ana, &mut ben] {
            assert_eq!(
                decide(b, case, "confirm", "B1").await.status(),
                StatusCode::SEE_OTHER
            );
        }
    }
    let data = s.config().data.clone();
    let material = |id: CaseId| {
        let db = db.clone();
        let data = data.clone();
        async move {
            let case = db.case(&id).await.expect("case").expect("exists");
            let attachment = case.attachment.expect("a held case has its attachment");
            let row = db.attachment(&attachment).await.expect("row").expect("row");
            (
                db.review_material(&id).await.expect("material").len(),
                row.state,
                blob_exists(
                    &data,
                    BlobName::attachment(&attachment.to_string()).as_str(),
                ),
            )
        }
    };
    let exported_id: CaseId = exported.parse().expect("id");
    let kept_id: CaseId = kept.parse().expect("id");
    for id in [exported_id, kept_id] {
        let (n, state, blob) = material(id).await;
        assert_eq!(n, 1, "confirmed: the material is kept for the report");
        assert_ne!(state, AttachmentState::Deleted);
        assert!(blob, "the encrypted attachment is kept");
    }

    // Exported now; the period runs from here.
    let r = ben
        .get(&format!("/review/cases/{exported}/report.xml"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let exported_at = std::time::Instant::now();
    // Several purge passes later, but inside the period: still kept.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (n, state, blob) = material(exported_id).await;
    assert!(
        n == 1 && state != AttachmentState::Deleted && blob,
        "kept inside the period"
    );
    // After it, deleted by the server's own task (nobody asks it to).
    let deadline = exported_at + std::time::Duration::from_secs(20);
    while db
        .review_report(&exported_id)
        .await
        .expect("report")
        .expect("exists")
        .purged_at
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the material was not deleted within 20 s of the export"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let waited = exported_at.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs((PERIOD - 1) as u64),
        "deleted after {waited:?}, before the period ended"
    );
    let (n, state, blob) = material(exported_id).await;
    assert_eq!(n, 0, "the review derivatives are deleted");
    assert_eq!(state, AttachmentState::Deleted);
    assert!(!blob, "the encrypted attachment is deleted");
    assert!(ben
        .page(&format!("/review/cases/{exported}"))
        .await
        .contains("material was deleted"));
    // The report itself stays (it is what was sent), and so does the unexported case's
    // material.
    assert_eq!(
        ben.get(&format!("/review/cases/{exported}/report.json"))
            .await
            .status(),
        StatusCode::OK
    );
    let (n, state, blob) = material(kept_id).await;
    assert!(
        n == 1 && state != AttachmentState::Deleted && blob,
        "never exported: kept"
    );

    // Released (two rejections): deleted at once, no period.
    let released = blocked_case(&mut u).await;
    let released_id: CaseId = released.parse().expect("id");
    assert_eq!(material(released_id).await.0, 1);
    for b in [&mut ana, &mut ben] {
        assert_eq!(
            decide(b, &released, "reject", "").await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let (n, state, _) = material(released_id).await;
    assert_eq!(n, 0, "released material is deleted at once");
    assert_eq!(state, AttachmentState::Released);

    let events = db.audit_events(None, 10_000).await.expect("audit");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "material_deleted")
            .map(|e| e.subject.as_str())
            .collect::<Vec<_>>(),
        [exported.as_str()]
    );
    assert!(db.verify_audit().await.expect("verify").problem.is_none());
    db.close().await;
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
}

on_both!(security, two_reviewers, retention);

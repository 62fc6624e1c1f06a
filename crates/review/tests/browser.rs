//! The review UI in a real browser: Debian's headless Chromium driven over W3C WebDriver by
//! Debian's chromedriver (installed by `tools/setup.sh`; nothing here downloads a browser),
//! against the real server on loopback with a stand-in listed image (the benign demo picture).
//!
//! Two reviewers log in, work one case to a confirmation and export its report, reject
//! another (released), and a third reviewer decides the user's appeal; every step is clicked
//! and typed as a person would, and its effect checked in the database and through the
//! user's SDK. The queue and the case page are screenshotted (into `docs/review-queue.png` and
//! `docs/review-case.png` with `HASHGUARD_UPDATE_SCREENSHOTS=1`, otherwise beside the build),
//! and the image on the case page is measured in the screenshot itself: greyscale and blurred
//! until a reveal, sharp after it.
//!
//! Without Chromium and chromedriver the test says `SKIPPED` (and passes), unless
//! `HASHGUARD_REQUIRE_BROWSER=1` (set by `.ci/run`), when it fails.
//!
//! The WebDriver client is the few W3C endpoints the test needs, over reqwest (already a
//! test dependency): no WebDriver crate and no TLS stack of its own for a loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hashguard_client::{CheckOutcome, SendOutcome, Session, SessionOptions};
use hashguard_review::auth::{add_staff, Role};
use hashguard_server::config::{Bucket, Limits};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};
use hashguard_store::{AttachmentState, CaseId, DatabaseLocation, OpenMode, Store};
use serde_json::{json, Value};

const PASSWORD: &str = "a long test password";
/// Every WebDriver command's limit (page loads included): the test never hangs.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// W3C WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The browser and its driver, or why they cannot be used.
fn browser_binaries() -> Result<(PathBuf, PathBuf), String> {
    let find = |names: &[&str]| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        names.iter().find_map(|n| {
            std::env::split_paths(&path)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
        })
    };
    let chromium = find(&["chromium", "chromium-browser"])
        .ok_or("no chromium on PATH (tools/setup.sh installs Debian's chromium)")?;
    let driver = find(&["chromedriver"])
        .ok_or("no chromedriver on PATH (tools/setup.sh installs Debian's chromium-driver)")?;
    Ok((chromium, driver))
}

/// chromedriver on a free loopback port. When dropped (also when the test fails half-way) it
/// first ends the browser session still open, so Chromium quits, then kills chromedriver: a
/// failing run leaves no browser behind.
struct Driver {
    child: Child,
    url: String,
    port: u16,
    /// The open session's id, if any.
    session: std::sync::Mutex<Option<String>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let open = self.session.lock().ok().and_then(|mut s| s.take());
        if let Some(id) = open {
            // Blocking, with std only: Drop cannot await.
            use std::io::{Read as _, Write as _};
            if let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    conn,
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let _ = conn.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver(binary: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        port,
        session: std::sync::Mutex::new(None),
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = http
            .get(format!("{}/status", driver.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok();
        if let Some(r) = ready {
            let v: Value = r.json().await.unwrap_or_default();
            if v["value"]["ready"] == true {
                return driver;
            }
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not get ready in 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One WebDriver session (one headless Chromium).
struct Web {
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Web {
    async fn new(driver: &Driver, chromium: &Path, profile: &Path, base: &str) -> Web {
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT + Duration::from_secs(5))
            .build()
            .expect("client");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": COMMAND_TIMEOUT.as_millis() as u64, "script": 5000, "implicit": 0 },
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "prefs": {
                    "download.default_directory": profile.join("downloads").display().to_string(),
                    "download.prompt_for_download": false,
                },
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
                    "--force-device-scale-factor=1", "--window-size=1280,1300",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        if let Ok(mut open) = driver.session.lock() {
            *open = Some(session.clone());
        }
        Web {
            http,
            session: format!("{}/session/{session}", driver.url),
            base: base.to_string(),
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .json()
            .await
            .expect("json");
        if let Some(err) = r["value"]["error"].as_str() {
            panic!("{method} {path}: {err}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd(reqwest::Method::GET, path, None).await
    }

    async fn go(&self, path: &str) {
        self.post("/url", json!({ "url": format!("{}{path}", self.base) }))
            .await;
    }

    async fn path(&self) -> String {
        let url = self.get("/url").await;
        let url = url.as_str().expect("url");
        url.strip_prefix(&self.base).unwrap_or(url).to_string()
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn count(&self, css: &str) -> usize {
        self.post(
            "/elements",
            json!({ "using": "css selector", "value": css }),
        )
        .await
        .as_array()
        .map_or(0, Vec::len)
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
    }

    /// Clicks what navigates (a submit button, a link) and waits (at most 10 s) until the page
    /// it was on is gone; the next command then waits for the new page to load.
    async fn navigate(&self, css: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/click"), json!({})).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r: Value = self
                .http
                .get(format!("{}/element/{e}/name", self.session))
                .send()
                .await
                .expect("webdriver")
                .json()
                .await
                .expect("json");
            if r["value"]["error"].is_string() {
                return;
            }
            assert!(Instant::now() < deadline, "{css} did not navigate");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.post(&format!("/element/{e}/clear"), json!({})).await;
        self.post(&format!("/element/{e}/value"), json!({ "text": text }))
            .await;
    }

    /// The visible text of the page.
    async fn text(&self) -> String {
        let body = self.find("body").await;
        self.get(&format!("/element/{body}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element's box in CSS pixels (the screenshot's pixels at scale factor 1).
    async fn rect(&self, css: &str) -> (u32, u32, u32, u32) {
        let e = self.find(css).await;
        let r = self.get(&format!("/element/{e}/rect")).await;
        let n = |k: &str| r[k].as_f64().expect("number").round() as u32;
        (n("x"), n("y"), n("width"), n("height"))
    }

    /// A PNG of the viewport.
    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.get("/screenshot").await;
        base64_decode(b64.as_str().expect("base64"))
    }

    async fn login(&self, username: &str) {
        self.go("/review/login").await;
        self.type_in("input[name=username]", username).await;
        self.type_in("input[name=password]", PASSWORD).await;
        self.navigate("form[action='/review/login'] button[type=submit]")
            .await;
        self.wait_path("/review/queue").await;
    }

    async fn logout(&self) {
        self.navigate("form[action='/review/logout'] button").await;
        self.wait_path("/review/login").await;
    }

    /// Waits (at most 10 s) until the browser is at `path` (a click on a submit button may
    /// return before the navigation it starts has finished).
    async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now_at = self.path().await;
            if now_at == path {
                return;
            }
            if Instant::now() > deadline {
                panic!("not at {path} but {now_at}: {}", self.text().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Decides the case whose page is open, as the form offers it.
    async fn decide(&self, decision: &str, classification: Option<&str>) {
        self.click(&format!("input[name=decision][value={decision}]"))
            .await;
        if let Some(c) = classification {
            self.click(&format!("select[name=classification] option[value={c}]"))
                .await;
        }
        self.navigate("form[action$='/decide'] button[type=submit]")
            .await;
    }

    async fn quit(self, driver: &Driver) {
        let _ = self.http.delete(&self.session).send().await;
        if let Ok(mut open) = driver.session.lock() {
            *open = None;
        }
    }
}

/// Standard base64 (the screenshot's encoding), without a dependency for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let take = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

/// The region of a screenshot: (largest channel difference in any pixel, i.e. colour; largest
/// difference between horizontal neighbours, i.e. sharpness: an edge blurred by the server is
/// a gentle ramp).
fn measure(png: &[u8], (x, y, w, h): (u32, u32, u32, u32)) -> (u8, u8) {
    let img = image::load_from_memory(png).expect("png").to_rgb8();
    // Inside the border radius.
    let (x0, y0, x1, y1) = (x + 6, y + 6, x + w - 6, y + h - 6);
    assert!(
        x1 <= img.width() && y1 <= img.height(),
        "the image is in the viewport"
    );
    let mut colour = 0u8;
    let mut sharp = 0u8;
    for yy in y0..y1 {
        for xx in x0..x1 {
            let p = img.get_pixel(xx, yy);
            let spread = p.0.iter().max().unwrap_or(&0) - p.0.iter().min().unwrap_or(&0);
            colour = colour.max(spread);
            if xx > x0 {
                sharp = sharp.max(p[1].abs_diff(img.get_pixel(xx - 1, yy)[1]));
            }
        }
    }
    (colour, sharp)
}

/// Saves a screenshot: into `docs/` with `HASHGUARD_UPDATE_SCREENSHOTS=1` (how the committed
/// pictures are made), otherwise beside the build (so a test run changes no tracked file).
fn save(name: &str, png: &[u8]) {
    let dir = if std::env::var("HASHGUARD_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        repo().join("docs")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("screenshot: {}", path.display());
}

async fn blocked_case(user: &mut Session) -> String {
    let listed = std::fs::read(repo().join("assets/demo/hills-recompressed.jpg")).expect("image");
    let prepared = user.prepare(&listed, None).expect("prepare");
    let SendOutcome::Held(held) = user.send(&prepared).await.expect("send") else {
        panic!("the listed image must be held");
    };
    assert!(matches!(
        user.consent_check(&held).await.expect("check"),
        CheckOutcome::BlockedForReview { .. }
    ));
    held.case_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_work_cases_in_a_real_browser() {
    let (chromium, chromedriver) = match browser_binaries() {
        Ok(b) => b,
        Err(why) => {
            assert!(
                std::env::var("HASHGUARD_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "HASHGUARD_REQUIRE_BROWSER=1 but {why}"
            );
            hashguard_testsupport::skipped("reviewers_work_cases_in_a_real_browser", &why);
            return;
        }
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = SandboxOptions::new(dir.path().join("sandbox"));
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
    let s = Sandbox::start(options).await.expect("the sandbox starts");
    let db = Store::open_location(&DatabaseLocation::parse(s.db()), OpenMode::Create)
        .await
        .expect("store");
    for (name, role) in [
        ("ana", Role::Reviewer),
        ("ben", Role::Reviewer),
        ("dev", Role::Reviewer),
    ] {
        add_staff(&db, name, role, PASSWORD, "test")
            .await
            .expect("staff");
    }
    let mut u = Session::register(s.base_url(), s.trust_anchors(), SessionOptions::default())
        .await
        .expect("register");
    u.refresh_table().await.expect("table");
    let confirmed = blocked_case(&mut u).await;
    let rejected = blocked_case(&mut u).await;
    let waiting = blocked_case(&mut u).await;

    let driver = start_driver(&chromedriver).await;
    let web = Web::new(
        &driver,
        &chromium,
        &dir.path().join("profile"),
        s.base_url(),
    )
    .await;
    web.post("/window/rect", json!({ "width": 1280, "height": 1300 }))
        .await;

    // Anonymous: the queue sends the browser to the login page.
    web.go("/review/queue").await;
    assert_eq!(web.path().await, "/review/login");
    // A wrong password is refused with the page's words.
    web.type_in("input[name=username]", "ana").await;
    web.type_in("input[name=password]", "not the password")
        .await;
    web.navigate("form[action='/review/login'] button[type=submit]")
        .await;
    let text = web.text().await;
    assert!(text.contains("do not match an active account"), "{text}");

    // ana: the queue, three cases.
    web.login("ana").await;
    let text = web.text().await;
    assert!(text.contains("3 cases waiting"), "{text}");
    assert_eq!(web.count("table.queue tbody tr").await, 3);
    // (The queue is short: a shorter window for its picture.)
    web.post("/window/rect", json!({ "width": 1280, "height": 760 }))
        .await;
    let queue_png = web.screenshot().await;
    web.post("/window/rect", json!({ "width": 1280, "height": 1300 }))
        .await;
    save("review-queue.png", &queue_png);

    // The case page: blurred and greyscale by the server, in the screenshot itself.
    web.navigate(&format!("a[href='/review/cases/{confirmed}']"))
        .await;
    assert_eq!(web.path().await, format!("/review/cases/{confirmed}"));
    let text = web.text().await;
    assert!(text.contains("PDQ distance") && text.contains("Account history"));
    let img = "article.item img";
    let case_png = web.screenshot().await;
    let blurred = measure(&case_png, web.rect(img).await);
    assert!(
        blurred.0 <= 2,
        "the image is greyscale on screen: {blurred:?}"
    );
    save("review-case.png", &case_png);
    // Revealed with a reason: sharp on screen.
    web.type_in("input[name=reason]", "to classify it").await;
    web.navigate("form[action$='/reveal'] button[type=submit]")
        .await;
    let revealed = measure(&web.screenshot().await, web.rect(img).await);
    assert!(
        revealed.1 >= blurred.1.saturating_mul(2) && revealed.1 > blurred.1 + 20,
        "revealed {revealed:?} is sharper than blurred {blurred:?}"
    );
    let decisions = |id: &str| {
        let id: CaseId = id.parse().expect("id");
        let db = db.clone();
        async move {
            db.review_decisions(&id)
                .await
                .expect("decisions")
                .into_iter()
                .map(|d| d.decision)
                .collect::<Vec<_>>()
        }
    };
    web.decide("confirm", Some("A1")).await;
    assert_eq!(decisions(&confirmed).await, ["confirm"]);
    // ana also rejects the second case.
    web.go(&format!("/review/cases/{rejected}")).await;
    web.decide("reject", None).await;
    assert_eq!(decisions(&rejected).await, ["reject"]);
    web.logout().await;

    // ben: does not see ana's decision before deciding; confirms; exports the report.
    web.login("ben").await;
    web.go(&format!("/review/cases/{confirmed}")).await;
    let text = web.text().await;
    assert!(text.contains("1 other reviewer has decided"), "{text}");
    assert!(!text.contains("ana (independent)"));
    web.decide("confirm", Some("A1")).await;
    let text = web.text().await;
    assert!(
        text.contains("ana (independent)") && text.contains("Not exported yet"),
        "{text}"
    );
    // The export is a download (Content-Disposition: attachment): the file the browser saved.
    web.click("a[href$='/report.json']").await;
    let confirmed_id: CaseId = confirmed.parse().expect("id");
    let saved = dir
        .path()
        .join("profile/downloads")
        .join(format!("hashguard-report-{confirmed_id}.json"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !saved.is_file() {
        assert!(Instant::now() < deadline, "the report was not downloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report: Value =
        serde_json::from_slice(&std::fs::read(&saved).expect("report")).expect("JSON report");
    assert_eq!(report["confirmations"].as_array().map(Vec::len), Some(2));
    assert!(
        db.review_report(&confirmed_id)
            .await
            .expect("report")
            .expect("generated")
            .exported_at
            .is_some(),
        "the export is recorded"
    );
    // ben rejects the second case too: a false positive, released.
    web.go(&format!("/review/cases/{rejected}")).await;
    web.decide("reject", None).await;
    let rejected_id: CaseId = rejected.parse().expect("id");
    let case = db.case(&rejected_id).await.expect("case").expect("exists");
    let attachment = db
        .attachment(&case.attachment.expect("attachment"))
        .await
        .expect("row")
        .expect("row");
    assert_eq!(attachment.state, AttachmentState::Released);
    web.logout().await;

    // The user appeals the confirmed case; dev, who decided nothing, upholds it.
    u.appeal(&confirmed, "These are hills.")
        .await
        .expect("appeal");
    web.login("dev").await;
    assert!(web.text().await.contains("1 appeal waiting"));
    web.go(&format!("/review/cases/{confirmed}")).await;
    assert!(web.text().await.contains("These are hills."));
    web.click("input[name=decision][value=uphold]").await;
    web.navigate("form[action$='/appeal'] button[type=submit]")
        .await;
    assert!(web.text().await.contains("Appeal decided: upheld"));
    let status = u.case(&confirmed).await.expect("case");
    assert_eq!(status.appeal.expect("appeal").state, "upheld");
    // The third case is still waiting, for one decision.
    web.go("/review/queue").await;
    assert!(web.text().await.contains("1 case waiting"));
    assert!(
        web.count(&format!("a[href='/review/cases/{waiting}']"))
            .await
            == 1
    );
    web.quit(&driver).await;

    assert!(db.verify_audit().await.expect("verify").problem.is_none());
    db.close().await;
    let took = started.elapsed();
    eprintln!("browser test took {took:?}");
    assert!(took < Duration::from_secs(120), "bounded: {took:?}");
}

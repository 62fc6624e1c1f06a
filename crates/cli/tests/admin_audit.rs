//! `hashguard admin staff` driven as a person would: the password on standard input, never a
//! flag; the stored hash is argon2id of exactly that password; roles, duplicates, short
//! passwords and unknown names refused; disabling ends the account and is logged.
//!
//! `hashguard audit verify` and `export` on SQLite and PostgreSQL: the intact chain verifies
//! and exports with every hash; one row edited directly in the database, then one deleted
//! (the middle, then the last), each named by `verify` with exit status 1; restored exactly,
//! the chain verifies again.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hashguard_store::{audit_hash, DatabaseLocation, OpenMode, Store, AUDIT_GENESIS};

const PASSWORD: &str = "a long enough password";

/// Runs `hashguard` with `stdin` as its standard input.
fn hashguard_in(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(args)
        .env_remove("HASHGUARD_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hashguard binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn open(db: &str) -> Store {
    Store::open_location(&DatabaseLocation::parse(db), OpenMode::Write)
        .await
        .expect("store")
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn staff_add_list_disable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = s(&dir.path().join("review.db"));

    // Added with the password from standard input (a line ending is not part of it).
    let out = hashguard_in(
        &[
            "admin", "--db", &db, "staff", "add", "ana", "--role", "reviewer",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added ana (reviewer)"));
    let out = hashguard_in(
        &[
            "admin",
            "--db",
            &db,
            "staff",
            "add",
            "sam",
            "--role",
            "senior-reviewer",
        ],
        &format!("{PASSWORD}-sam\r\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Refused: a password flag does not exist, a short password, an unknown role, a bad
    // name, a taken name, no password at all. None of them adds anyone.
    let refusals: [(&[&str], &str, &str); 6] = [
        (
            &[
                "staff",
                "add",
                "eve",
                "--role",
                "reviewer",
                "--password",
                "x",
            ],
            "",
            "--password",
        ),
        (
            &["staff", "add", "eve", "--role", "reviewer"],
            "short\n",
            "at least 12 characters",
        ),
        (
            &["staff", "add", "eve", "--role", "root"],
            "a long enough password\n",
            "no role",
        ),
        (
            &["staff", "add", "Eve X", "--role", "auditor"],
            "a long enough password\n",
            "a username is",
        ),
        (
            &["staff", "add", "ana", "--role", "auditor"],
            "a long enough password\n",
            "already a member of staff called ana",
        ),
        (
            &["staff", "add", "eve", "--role", "auditor"],
            "",
            "no password",
        ),
    ];
    for (args, stdin, why) in refusals {
        let mut full = vec!["admin", "--db", &db];
        full.extend_from_slice(args);
        let out = hashguard_in(&full, stdin);
        assert!(!out.status.success(), "{args:?} must be refused");
        assert!(
            text(&out.stderr).contains(why),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    let rt = runtime();
    rt.block_on(async {
        let store = open(&db).await;
        let ana = store
            .staff_by_name("ana")
            .await
            .expect("read")
            .expect("ana");
        assert_eq!(ana.role, "reviewer");
        assert!(ana.password.starts_with("$argon2id$"));
        assert!(hashguard_review::auth::verify_password(
            &ana.password,
            PASSWORD
        ));
        let sam = store
            .staff_by_name("sam")
            .await
            .expect("read")
            .expect("sam");
        assert_eq!(sam.role, "senior_reviewer");
        assert!(hashguard_review::auth::verify_password(
            &sam.password,
            &format!("{PASSWORD}-sam")
        ));
        assert!(store.staff_by_name("eve").await.expect("read").is_none());
        assert_eq!(store.list_staff().await.expect("list").len(), 2);
    });

    // Listed, then disabled (an unknown name is an error), then listed as disabled.
    let list = hashguard_in(&["admin", "--db", &db, "staff", "list"], "");
    assert!(list.status.success(), "{}", text(&list.stderr));
    let lines: Vec<String> = text(&list.stdout).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "username,role,created,disabled");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].starts_with("ana,reviewer,") && lines[1].ends_with(','));
    assert!(lines[2].starts_with("sam,senior reviewer,"));
    let out = hashguard_in(&["admin", "--db", &db, "staff", "disable", "nobody"], "");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no member of staff called \"nobody\""));
    let out = hashguard_in(&["admin", "--db", &db, "staff", "disable", "ana"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&hashguard_in(&["admin", "--db", &db, "staff", "list"], "").stdout);
    let ana = list.lines().nth(1).expect("ana's line");
    assert!(!ana.ends_with(','), "ana is listed as disabled: {ana}");

    // Each change is an event in the audit chain, and the chain holds.
    rt.block_on(async {
        let store = open(&db).await;
        let events = store.audit_events(None, 100).await.expect("events");
        let actions: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.action.as_str(), e.subject.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("staff_added", "ana"),
                ("staff_added", "sam"),
                ("staff_disabled", "ana")
            ]
        );
        assert!(store
            .staff_by_name("ana")
            .await
            .expect("read")
            .expect("ana")
            .disabled_at
            .is_some());
        assert!(store
            .verify_audit()
            .await
            .expect("verify")
            .problem
            .is_none());
    });
}

/// `audit verify` and `audit export` against the database `db` (as `--db` takes it; `sql` is
/// the same database as a sqlx URL for the direct edits).
async fn audit_chain(db: &str, sql: &str, dir: &Path) {
    let store = Store::open_location(&DatabaseLocation::parse(db), OpenMode::Create)
        .await
        .expect("store");
    for i in 0..5 {
        hashguard_review::audit::log(
            &store,
            "ana",
            "viewed",
            &format!("case-{i}"),
            &serde_json::json!({ "n": i }),
        )
        .await
        .expect("log");
    }
    store.close().await;

    let verify = || hashguard_in(&["audit", "--db", db, "verify"], "");
    let out = verify();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("5 events, chain verified"));

    // The export: one line per event, in order, each with the hash the chain gives it.
    let file = dir.join("audit.jsonl");
    let out = hashguard_in(&["audit", "--db", db, "export", "--out", &s(&file)], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .expect("export file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(exported.len(), 5);
    let mut previous = AUDIT_GENESIS;
    for (i, e) in exported.iter().enumerate() {
        assert_eq!(e["seq"], i);
        assert_eq!(e["subject"], format!("case-{i}"));
        let h = audit_hash(
            &previous,
            e["seq"].as_u64().expect("seq"),
            e["at"].as_i64().expect("at"),
            e["actor"].as_str().expect("actor"),
            e["action"].as_str().expect("action"),
            e["subject"].as_str().expect("subject"),
            e["detail"].as_str().expect("detail"),
        );
        assert_eq!(e["hash"], hex::encode(h), "event {i}");
        previous = h;
    }
    // To standard output, the same lines.
    let out = hashguard_in(&["audit", "--db", db, "export"], "");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        std::fs::read_to_string(&file).expect("export file")
    );

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(sql)
        .await
        .expect("direct connection");
    let exec = |q: String| {
        let pool = pool.clone();
        async move { sqlx::query(&q).execute(&pool).await.expect("direct SQL") }
    };
    let broken = |why: &str| {
        let out = verify();
        assert_eq!(out.status.code(), Some(1), "{why}: {}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains(why), "expected {why:?} in {err}");
    };

    // Edited: one field of event 2.
    let detail2 = exported[2]["detail"].as_str().expect("detail").to_string();
    exec("UPDATE audit_events SET detail = '{\"n\":20}' WHERE seq = 2".to_string()).await;
    broken("audit event 2 was edited");
    exec(format!(
        "UPDATE audit_events SET detail = '{detail2}' WHERE seq = 2"
    ))
    .await;
    assert!(verify().status.success(), "restored exactly, it verifies");

    // Edited with its hash recomputed to match: the next event's link breaks.
    let forged = audit_hash(
        &hex_array(exported[1]["hash"].as_str().expect("hash")),
        2,
        exported[2]["at"].as_i64().expect("at"),
        "ana",
        "viewed",
        "case-2",
        "{\"n\":21}",
    );
    exec(format!(
        "UPDATE audit_events SET detail = '{{\"n\":21}}', hash = '{}' WHERE seq = 2",
        hex::encode(forged)
    ))
    .await;
    broken("audit event 3 was edited");
    exec(format!(
        "UPDATE audit_events SET detail = '{detail2}', hash = '{}' WHERE seq = 2",
        exported[2]["hash"].as_str().expect("hash")
    ))
    .await;
    assert!(verify().status.success());

    // Deleted: event 3 in the middle, then (after putting it back) the last one.
    exec("DELETE FROM audit_events WHERE seq = 3".to_string()).await;
    broken("audit event 3 is missing: it was deleted");
    let e = &exported[3];
    exec(format!(
        "INSERT INTO audit_events (seq, at, actor, action, subject, detail, hash) \
         VALUES (3, {}, 'ana', 'viewed', 'case-3', '{}', '{}')",
        e["at"],
        e["detail"].as_str().expect("detail"),
        e["hash"].as_str().expect("hash")
    ))
    .await;
    assert!(verify().status.success(), "put back exactly, it verifies");
    exec("DELETE FROM audit_events WHERE seq = 4".to_string()).await;
    broken("audit events after 3 are missing");
    pool.close().await;
}

fn hex_array(h: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(h, &mut out).expect("64 hex digits");
    out
}

#[test]
fn audit_verify_names_edited_and_deleted_rows_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.db");
    runtime().block_on(audit_chain(
        &s(&path),
        &format!("sqlite://{}", path.display()),
        dir.path(),
    ));
}

#[test]
fn audit_verify_names_edited_and_deleted_rows_on_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    runtime().block_on(async {
        let Some(url) = hashguard_testsupport::postgres::fresh_schema("audit_verify").await else {
            return;
        };
        audit_chain(&url, &url, dir.path()).await;
    });
}

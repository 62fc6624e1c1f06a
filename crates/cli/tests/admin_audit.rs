//! `hashguard admin staff` driven as a person would: the password on standard input, never a
//! flag; the stored hash is argon2id of exactly that password; roles, duplicates, short
//! passwords and unknown names refused; disabling ends the account and is logged.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hashguard_store::{DatabaseLocation, OpenMode, Store};

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

//! `hashguard chat` as a person uses it: the real binary, two users in two folders, a whole
//! deployment on loopback (SQLite). A text and a photo arrive (the photo bit-identical), the
//! listed stand-in image is held with the service's words and every help resource, checked,
//! appealed and the appeal's answer shown, and the errors say what to do next.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hashguard_server::sandbox::{Sandbox, SandboxOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chat(dir: &Path, args: &[&str]) -> Output {
    let output = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_hashguard"))
            .arg("chat")
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run hashguard")
    });
    eprintln!(
        "$ hashguard chat {args:?}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = chat(dir, args);
    assert!(output.status.success(), "{args:?} failed");
    String::from_utf8(output.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_folders_chat_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("service")).expect("service folder");
    let sandbox = Sandbox::start(SandboxOptions::new(dir.path().join("service")))
        .await
        .expect("sandbox");
    let base = sandbox.base_url().to_string();
    let trust = dir.path().join("trust.txt");
    std::fs::write(&trust, sandbox.trust_anchors().to_text()).expect("trust file");
    let trust = trust.to_str().expect("path").to_string();
    let alice = dir.path().join("alice");
    let bob = dir.path().join("bob");

    // Before registering, the error says what to do.
    let early = chat(&bob, &["receive"]);
    assert_eq!(early.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&early.stderr).contains("register --server"));

    ok(&alice, &["register", "--server", &base, "--trust", &trust]);
    let registered = ok(&bob, &["register", "--server", &base, "--trust", &trust]);
    let bob_id = ok(&bob, &["whoami"]).trim().to_string();
    assert_eq!(bob_id.len(), 32);
    assert!(registered.contains(&bob_id));

    ok(&alice, &["group", "create", "family"]);
    ok(&alice, &["invite", "family", &bob_id]);
    ok(&alice, &["send", "family", "hello from the command line"]);
    let photo = repo().join("assets/demo/blocks.webp");
    ok(
        &alice,
        &["send", "family", "--file", photo.to_str().expect("path")],
    );

    let listed = repo().join("assets/demo/hills-recompressed.jpg");
    let held = chat(
        &alice,
        &[
            "send",
            "family",
            "--file",
            listed.to_str().expect("path"),
            "--no-check",
        ],
    );
    assert_eq!(held.status.code(), Some(1));
    let words = String::from_utf8(held.stdout).expect("utf-8");
    assert!(words.contains("This file was not sent"));
    for help in hashguard_server::config::Intervention::default().help {
        assert!(words.contains(&help.name), "missing {}", help.name);
        assert!(words.contains(&help.url), "missing {}", help.url);
        assert!(
            words.contains(&help.description),
            "missing {}",
            help.description
        );
    }
    for jargon in ["voucher", "PDQ", "MLS", "epoch"] {
        assert!(!words.contains(jargon), "the intervention says {jargon:?}");
    }
    assert!(words.contains("The file stays blocked"));

    // The appeal: only after the check kept the file blocked; the answer shows in `case`.
    let case = words
        .lines()
        .find_map(|l| l.strip_prefix("Your case number is "))
        .map(|c| c.trim_end_matches('.').to_string())
        .expect("the case number");
    let early = chat(&alice, &["appeal", &case, "These are hills."]);
    assert_eq!(
        early.status.code(),
        Some(2),
        "nothing to appeal before the check"
    );
    assert!(String::from_utf8_lossy(&early.stderr).contains("check"));
    let checked = ok(&alice, &["check", &case]);
    assert!(checked.contains("two trained people"), "{checked}");
    let appealed = ok(&alice, &["appeal", &case, "These are hills."]);
    assert!(appealed.contains("Your appeal is recorded: waiting for a reviewer"));
    assert!(ok(&alice, &["case", &case]).contains("Appeal: waiting for a reviewer"));
    // A reviewer upholds it (the review UI's tests decide appeals through the UI; here the
    // store records the answer) and the person sees the answer.
    let store = hashguard_store::Store::open_location(
        &hashguard_store::DatabaseLocation::parse(sandbox.db()),
        hashguard_store::OpenMode::Write,
    )
    .await
    .expect("store");
    assert!(store
        .decide_appeal(
            &case.parse().expect("case id"),
            hashguard_store::AppealState::Upheld,
            1
        )
        .await
        .expect("decide"));
    store.close().await;
    let answer = ok(&alice, &["case", &case]);
    assert!(
        answer.contains("Appeal: a reviewer looked again and the file stays blocked"),
        "{answer}"
    );

    let received = ok(&bob, &["receive"]);
    assert!(received.contains("hello from the command line"));
    let saved = received
        .lines()
        .find_map(|l| {
            l.split_once("saved as ")
                .map(|(_, p)| PathBuf::from(p.trim()))
        })
        .expect("a saved file");
    assert_eq!(
        std::fs::read(&saved).expect("saved"),
        std::fs::read(&photo).expect("photo")
    );
    assert_eq!(
        std::fs::read_dir(bob.join("received"))
            .expect("dir")
            .count(),
        1,
        "the held image never arrives"
    );
    assert!(ok(&bob, &["receive"]).contains("Nothing new"));
    assert!(ok(&bob, &["group", "list"]).lines().any(|l| l == "family"));

    ok(&bob, &["send", "family", "got it"]);
    assert!(ok(&alice, &["receive"]).contains(&format!("{bob_id}: got it")));

    let unknown = chat(&alice, &["send", "nowhere", "hi"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("group create"));
}

//! The messenger end to end over real HTTP on loopback, against a whole deployment
//! (`Sandbox`): two users in two folders form an MLS group and exchange a text and a benign
//! photo; the listed stand-in image is held and never reaches the group; a third user gets
//! nothing and cannot read the group's ciphertext; nothing is lost or duplicated across a
//! service restart or a receiver crash before its acknowledgement; every state file is 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hashguard_messenger::{Event, FileSent, Interrupt, Messenger, MessengerError, Options};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo(name: &str) -> PathBuf {
    repo().join("assets/demo").join(name)
}

async fn sandbox(dir: &Path, postgres: Option<&str>) -> Option<Sandbox> {
    std::fs::create_dir_all(dir).expect("service folder");
    let mut options = SandboxOptions::new(dir);
    if let Some(test) = postgres {
        options.db = Some(hashguard_testsupport::postgres::fresh_schema(test).await?);
    }
    Some(Sandbox::start(options).await.expect("the sandbox starts"))
}

/// The device's queue as the service holds it, read with the device's own token.
async fn raw_queue(dir: &Path, base: &str) -> Vec<serde_json::Value> {
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("credentials.json")).expect("creds"))
            .expect("json");
    let token = creds["credentials"]["token"].as_str().expect("token");
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/v1/mls/queue?after=0&limit=500"))
        .bearer_auth(token)
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("json");
    page["messages"].as_array().cloned().unwrap_or_default()
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Two registered users, Alice's group "family" with Bob in it (Bob has received the welcome).
/// Options trusting `sandbox`'s keys, as an app built for that deployment would.
fn trusting(sandbox: &Sandbox) -> Options {
    Options {
        pinned: hashguard_client::PinnedParams::exactly(sandbox.params().clone()),
        trust: Some(sandbox.trust_anchors()),
        ..Options::default()
    }
}

async fn pair(sandbox: &Sandbox, root: &Path) -> (Messenger, Messenger) {
    let base = sandbox.base_url();
    let mut alice = Messenger::register(base, &root.join("alice"), trusting(sandbox))
        .await
        .expect("alice registers");
    let mut bob = Messenger::register(base, &root.join("bob"), trusting(sandbox))
        .await
        .expect("bob registers");
    alice.create_group("family").await.expect("group");
    let added = alice
        .invite("family", &bob.account_id())
        .await
        .expect("invite");
    assert_eq!(added, vec![bob.device_id().to_string()]);
    let events = bob.receive().await.expect("bob receives the welcome");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Joined { by, .. } if *by == alice.account_id())),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Named { to, .. } if to == "family")),
        "{events:?}"
    );
    assert_eq!(bob.groups(), vec!["family".to_string()]);
    let mut both = vec![alice.account_id(), bob.account_id()];
    both.sort();
    assert_eq!(bob.members("family").expect("members"), both);
    (alice, bob)
}

async fn group_story(postgres: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(sandbox) = sandbox(&dir.path().join("service"), postgres).await else {
        return;
    };
    let base = sandbox.base_url().to_string();
    let users = dir.path().join("users");
    let (mut alice, mut bob) = pair(&sandbox, &users).await;
    let mut carol = Messenger::register(&base, &users.join("carol"), trusting(&sandbox))
        .await
        .expect("carol registers");

    alice.send_text("family", "hello bob").await.expect("text");
    let photo = std::fs::read(demo("blocks.webp")).expect("photo");
    match alice
        .send_file("family", &demo("blocks.webp"))
        .await
        .expect("send photo")
    {
        FileSent::Sent { recipients } => assert_eq!(recipients, 1),
        other => panic!("the benign photo was not sent: {other:?}"),
    }
    // The listed stand-in: held, with the service's words and help, and nothing to the group.
    match alice
        .send_file("family", &demo("hills-recompressed.jpg"))
        .await
        .expect("send listed")
    {
        FileSent::Held(intervention) => {
            assert!(!intervention.reason.is_empty());
            assert!(!intervention.help.is_empty());
            assert_eq!(alice.held_cases(), vec![intervention.case_id.clone()]);
        }
        other => panic!("the listed image was not held: {other:?}"),
    }
    let secret = "a secret only the group may read";
    alice.send_text("family", secret).await.expect("text");

    // Carol takes a copy of what the service holds for Bob: ciphertext she cannot read.
    let queued = raw_queue(&users.join("bob"), &base).await;
    let applications: Vec<&serde_json::Value> = queued
        .iter()
        .filter(|m| m["kind"] == "application")
        .collect();
    assert_eq!(applications.len(), 3, "hello, photo, secret: {queued:?}");
    for m in &applications {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD
            .decode(m["body"].as_str().expect("body"))
            .expect("base64");
        assert!(!body.windows(secret.len()).any(|w| w == secret.as_bytes()));
        let group_id = m["group_id"].as_str().expect("group id");
        let refused = carol.try_read(group_id, &body);
        assert!(refused.is_err(), "carol read the group's message");
    }

    let events = bob.receive().await.expect("bob receives");
    assert_eq!(
        texts(&events),
        vec!["hello bob".to_string(), secret.to_string()]
    );
    let files: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e, Event::File { .. }))
        .collect();
    assert_eq!(files.len(), 1, "only the benign photo arrives: {events:?}");
    let Event::File { path, from, .. } = files[0] else {
        unreachable!()
    };
    assert_eq!(*from, alice.account_id());
    assert_eq!(std::fs::read(path).expect("saved photo"), photo);
    assert_eq!(mode(path), 0o600);
    let received: Vec<_> = std::fs::read_dir(users.join("bob/received"))
        .expect("received")
        .collect();
    assert_eq!(received.len(), 1, "the held image never reached bob");

    bob.send_text("family", "thanks alice")
        .await
        .expect("reply");
    let events = alice.receive().await.expect("alice receives");
    assert_eq!(texts(&events), vec!["thanks alice".to_string()]);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Text { from, .. } if *from == bob.account_id())));

    // Carol is in no group: her queue stays empty and she never joins one.
    assert!(carol.receive().await.expect("carol receives").is_empty());
    assert!(carol.groups().is_empty());

    // The service stored none of the plaintext (SQLite: the database files and the blobs).
    if postgres.is_none() {
        for entry in walk(&dir.path().join("service")) {
            let bytes = std::fs::read(&entry).expect("read stored file");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the plaintext",
                entry.display()
            );
        }
    }

    // Every file of each folder is the user's alone.
    for user in ["alice", "bob", "carol"] {
        let folder = users.join(user);
        assert_eq!(mode(&folder), 0o700, "{user}");
        for name in ["credentials.json", "state.json", "lock"] {
            assert_eq!(mode(&folder.join(name)), 0o600, "{user}/{name}");
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// Runs a test on a runtime whose threads have room for OpenMLS's deep stacks in unoptimised
/// builds (the test harness's thread has 2 MiB).
fn run<F: std::future::Future<Output = ()> + Send + 'static>(test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(async { tokio::spawn(test).await })
        .expect("the test task completes");
}

#[test]
fn group_text_photo_held_image_and_outsider_sqlite() {
    run(group_story(None));
}

#[test]
fn group_text_photo_held_image_and_outsider_postgres() {
    run(group_story(Some("messenger_group_story")));
}

#[test]
fn nothing_lost_or_duplicated_across_restart_and_crash() {
    run(restart_and_crash());
}

async fn restart_and_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(mut sandbox) = sandbox(&dir.path().join("service"), None).await else {
        return;
    };
    let base = sandbox.base_url().to_string();
    let users = dir.path().join("users");
    let (mut alice, bob) = pair(&sandbox, &users).await;
    let bob_dir = users.join("bob");

    // The service restarts between send and receive.
    alice.send_text("family", "one").await.expect("send");
    sandbox.restart().await.expect("restart");
    drop(bob);
    let mut bob = Messenger::open(&bob_dir, Options::default()).expect("open");
    assert_eq!(texts(&bob.receive().await.expect("receive")), vec!["one"]);

    // Bob crashes after fetching, before saving anything.
    alice.send_text("family", "two").await.expect("send");
    alice.send_text("family", "three").await.expect("send");
    bob.receive_interrupted(Interrupt::BeforeSave)
        .await
        .expect("receive");
    drop(bob);
    let mut bob = Messenger::open(&bob_dir, Options::default()).expect("open");
    assert_eq!(
        texts(&bob.receive().await.expect("receive")),
        vec!["two", "three"]
    );

    // Bob crashes after saving, before acknowledging: the service delivers again and the
    // copies are recognised by their seq.
    alice.send_text("family", "four").await.expect("send");
    bob.receive_interrupted(Interrupt::BeforeAck)
        .await
        .expect("receive");
    drop(bob);
    assert_eq!(
        raw_queue(&bob_dir, &base).await.len(),
        1,
        "not acknowledged yet"
    );
    let mut bob = Messenger::open(&bob_dir, Options::default()).expect("open");
    assert_eq!(texts(&bob.receive().await.expect("receive")), vec!["four"]);
    assert!(bob.receive().await.expect("receive").is_empty());
    assert!(raw_queue(&bob_dir, &base).await.is_empty(), "acknowledged");

    // Bob still speaks in the group after all that: his MLS state is consistent.
    bob.send_text("family", "five").await.expect("send");
    assert_eq!(
        texts(&alice.receive().await.expect("receive")),
        vec!["five"]
    );

    // One process per folder; one account per folder.
    assert!(matches!(
        Messenger::open(&bob_dir, Options::default()),
        Err(MessengerError::Busy(_))
    ));
    drop(bob);
    assert!(matches!(
        Messenger::register(&base, &bob_dir, trusting(&sandbox)).await,
        Err(MessengerError::AlreadyRegistered(_))
    ));
    assert!(matches!(
        Messenger::open(&users.join("nobody"), Options::default()),
        Err(MessengerError::NotRegistered(_))
    ));
}

#[test]
fn a_held_file_is_checked_in_a_later_process() {
    run(check_later());
}

/// A held file's check runs after the messenger that sent it is gone: the listed image stays
/// blocked; a chance key collision (an unlisted file whose hash shares the listed image's key
/// bits) is released and reaches the group. Once checked, a case is forgotten.
async fn check_later() {
    use hashguard_client::media::analyse;
    use hashguard_client::prepare_analysed;
    use hashguard_messenger::Checked;

    let dir = tempfile::tempdir().expect("tempdir");
    let Some(sandbox) = sandbox(&dir.path().join("service"), None).await else {
        return;
    };
    let users = dir.path().join("users");
    let (mut alice, mut bob) = pair(&sandbox, &users).await;

    let FileSent::Held(listed_case) = alice
        .send_file("family", &demo("hills-recompressed.jpg"))
        .await
        .expect("send listed")
    else {
        panic!("the listed image was not held");
    };
    let listed = std::fs::read(demo("hills.png")).expect("listed");
    let other = std::fs::read(demo("hills-small.jpg")).expect("other");
    let mut analysed = analyse(&other, 4076).expect("analyse");
    let listed_pdq = analyse(&listed, 4076).expect("analyse").frames[0]
        .clone()
        .expect("hashable");
    let keys = sandbox.params().key_positions().to_vec();
    let mut far = listed_pdq.hash;
    let mut flipped = 0;
    for bit in 0..=255u8 {
        if flipped < 70 && !keys.contains(&bit) {
            far = far.with_bit_flipped(usize::from(bit));
            flipped += 1;
        }
    }
    let mut collision = listed_pdq;
    collision.hash = far;
    analysed.frames = vec![Some(collision)];
    let prepared = prepare_analysed(analysed, &other, Some("walk.jpg".into())).expect("prepare");
    let FileSent::Held(collision_case) = alice
        .send_prepared("family", &prepared)
        .await
        .expect("send collision")
    else {
        panic!("a key collision opens and is held");
    };
    let mut cases = vec![listed_case.case_id.clone(), collision_case.case_id.clone()];
    cases.sort();

    // The process ends; a later one opens the folder and runs the checks.
    drop(alice);
    let mut alice = Messenger::open(&users.join("alice"), Options::default()).expect("reopen");
    assert_eq!(alice.held_cases(), cases);
    assert!(matches!(
        alice.check(&listed_case.case_id).await.expect("check"),
        Checked::BlockedForReview { .. }
    ));
    assert!(matches!(
        alice.check(&collision_case.case_id).await.expect("check"),
        Checked::Released { recipients: 1 }
    ));
    assert!(alice.held_cases().is_empty());
    drop(alice);
    let mut alice = Messenger::open(&users.join("alice"), Options::default()).expect("reopen");
    assert!(alice.held_cases().is_empty());
    assert!(matches!(
        alice.check(&listed_case.case_id).await,
        Err(MessengerError::NoHeldUpload(_))
    ));
    assert_eq!(mode(&users.join("alice/state.json")), 0o600);

    let events = bob.receive().await.expect("bob receives");
    let files: Vec<&PathBuf> = events
        .iter()
        .filter_map(|e| match e {
            Event::File { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    assert_eq!(files.len(), 1, "only the released file arrives: {events:?}");
    assert_eq!(std::fs::read(files[0]).expect("saved"), other);
}

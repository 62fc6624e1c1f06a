//! The README's main job, `hashguard demo`, end to end: the real service on loopback, two
//! messenger users in an MLS group, and the narration of each step's outcome (a photo
//! delivered bit-identical, the listed picture held with every help resource and kept blocked
//! by the check, a chance match released by the check, the listed video held, no plaintext
//! stored), within 60 seconds.

use std::time::{Duration, Instant};

mod common;

/// The part of `out` from the line starting with `heading` to the next blank-line-separated
/// heading (the next "Step", or the end).
fn section<'a>(out: &'a str, heading: &str) -> &'a str {
    let start = out
        .find(heading)
        .unwrap_or_else(|| panic!("no section {heading:?}:\n{out}"));
    let rest = &out[start..];
    let end = rest[heading.len()..]
        .find("\nStep ")
        .or_else(|| rest[heading.len()..].find("\nWhat the service stored"))
        .map_or(rest.len(), |i| i + heading.len());
    &rest[..end]
}

#[test]
fn demo_tells_the_story_over_the_real_service() {
    check_the_story(&["demo"]);
}

/// The same story with the service on PostgreSQL (a fresh, empty schema).
#[test]
fn demo_tells_the_story_on_postgresql() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(url) = runtime.block_on(hashguard_testsupport::postgres::fresh_schema("demo")) else {
        return;
    };
    let out = check_the_story(&["demo", "--db", &url]);
    assert!(out.contains("a PostgreSQL database"), "{out}");
}

/// Runs the demo with `args` and checks every step's outcome; returns its output.
fn check_the_story(args: &[&str]) -> String {
    let started = Instant::now();
    let output = common::hashguard(args);
    let elapsed = started.elapsed();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\n{out}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        elapsed < Duration::from_secs(60),
        "the demo took {elapsed:?}:\n{out}"
    );

    let photo = section(&out, "Step 1.");
    assert!(photo.contains("It was delivered"), "{photo}");
    assert!(photo.contains("received/"), "{photo}");
    assert!(photo.contains("bit-identical"), "{photo}");
    // The SHA-256 of assets/demo/blocks.webp.
    let digest: String = {
        use sha2::Digest as _;
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/demo/blocks.webp"
        ))
        .expect("the demo photo");
        sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(photo.contains(&digest), "{photo}");

    let listed = section(&out, "Step 2.");
    assert!(listed.contains("It was held"), "{listed}");
    assert!(listed.contains("Nobody in the group got it."), "{listed}");
    let defaults = hashguard_server::config::Intervention::default();
    assert!(!defaults.help.is_empty());
    for help in &defaults.help {
        assert!(
            listed.contains(&help.name),
            "{} missing:\n{listed}",
            help.name
        );
        assert!(
            listed.contains(&help.url),
            "{} missing:\n{listed}",
            help.url
        );
        assert!(listed.contains(&help.description), "{listed}");
    }
    assert!(listed.contains("Your case number is"), "{listed}");
    assert!(listed.contains("nothing arrived"), "{listed}");

    let check = section(&out, "Step 3.");
    assert!(check.contains("stays blocked"), "{check}");
    assert!(check.contains("waits for"), "{check}");
    assert!(check.contains("nothing arrived"), "{check}");

    let chance = section(&out, "Step 4.");
    assert!(chance.contains("It was held"), "{chance}");
    assert!(chance.contains("released it at once"), "{chance}");
    assert!(chance.contains("bit-identical"), "{chance}");

    let video = section(&out, "Step 5.");
    assert!(video.contains("The video was held"), "{video}");
    assert!(video.contains("nothing arrived"), "{video}");

    let stored = section(&out, "What the service stored");
    assert!(stored.contains("No plaintext stored"), "{stored}");
    for doc in [
        "docs/client.md",
        "docs/chat.md",
        "docs/serve.md",
        "hashguard chat --help",
    ] {
        assert!(stored.contains(doc), "{doc} missing:\n{stored}");
    }
    assert!(out.contains("The demo finished in"), "{out}");
    out
}

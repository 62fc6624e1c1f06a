//! siglog's witness conformance cases (tests/conformance/siglog, BSD-3-Clause, vendored
//! unchanged; see the README there), run against this witness over HTTP on loopback, the way
//! the suite's `test_witness.py` runs them; and its stand-alone tests (conflict, unknown log,
//! malformed request, invalid proof) ported.

mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::{client, post, sqlite_url, verify_independently, Running, TestLog};

const ORIGIN: &str = "example.com/conformance-log";

/// The suite's leaf hashes: `[42, i, 0, ..., 0]`.
fn leaf(i: u64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[0] = 42;
    h[1] = (i & 0xff) as u8;
    h
}

/// A log of `n` of the suite's leaves.
fn suite_log(n: u64) -> TestLog {
    let mut log = TestLog::new(ORIGIN, 5);
    for i in 0..n {
        log.append_leaf_hash(leaf(i));
    }
    log
}

/// The suite's request body: `old <size>`, the proof lines as given (not re-encoded), a blank
/// line, the checkpoint.
fn raw_body(old: u64, proof: &[String], checkpoint: &[u8]) -> Vec<u8> {
    let mut b = format!("old {old}\n").into_bytes();
    for p in proof {
        b.extend_from_slice(p.as_bytes());
        b.push(b'\n');
    }
    b.push(b'\n');
    b.extend_from_slice(checkpoint);
    b
}

/// The suite's signed checkpoint: `origin\nsize\nroot\n`, signed by the log.
fn signed(log: &TestLog, size: u64, root: &str) -> Vec<u8> {
    log.sign_raw(&format!("{ORIGIN}\n{size}\n{root}\n"))
}

/// The suite's invalid checkpoint: a signature line with key ID 0 and 64 zero bytes.
fn fake_signed(size: u64, root: &str) -> Vec<u8> {
    let fake = STANDARD.encode([0u8; 68]);
    format!("{ORIGIN}\n{size}\n{root}\n\n\u{2014} {ORIGIN} {fake}\n").into_bytes()
}

/// Brings a fresh witness to `size` through checkpoints 1, 2, ..., `size`.
async fn bootstrap(w: &Running, log: &TestLog, size: u64) {
    let c = client();
    for s in 1..=size {
        let b = common::body(s - 1, &log.proof(s - 1, s), &log.checkpoint(s));
        let a = post(&c, &w.url("/add-checkpoint"), b).await;
        assert_eq!(a.status, 200, "bootstrap at {s}: {}", a.body);
    }
}

/// Cases where this witness follows c2sp.org/tlog-witness rather than the suite's expectation.
fn spec_override(name: &str) -> Option<(u16, &'static str)> {
    match name {
        "same_size_different_root_fail" => Some((
            409,
            "c2sp.org/tlog-witness: if the old size matches the checkpoint size and the root \
             hashes don't match, the witness MUST respond with 409 Conflict (the suite expects 422)",
        )),
        _ => None,
    }
}

#[tokio::test]
async fn siglog_cases() {
    tokio::time::timeout(std::time::Duration::from_secs(300), async {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/siglog");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        assert_eq!(files.len(), 19, "all of the suite's cases are vendored");
        let c = client();
        for file in files {
            let case: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let name = case["name"].as_str().unwrap().to_string();
            let old = case["old_size"].as_u64().unwrap();
            let new = case["new_size"].as_u64().unwrap_or(old);
            let proof: Vec<String> = case["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_string())
                .collect();
            let root = case["root_hash"]
                .as_str()
                .unwrap_or("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                .to_string();
            let should_fail = case["should_fail"].as_bool().unwrap_or(false);
            let expected = case["expected_status"].as_u64().map(|s| s as u16);
            let valid = case["checkpoint_valid"].as_bool().unwrap_or(true);

            let log = suite_log(old.max(new));
            if !should_fail {
                // The suite's trees and proofs agree with tlog_tiles's.
                assert_eq!(root, STANDARD.encode(log.root(new)), "{name}: root");
                let ours: Vec<String> = log
                    .proof(old, new)
                    .iter()
                    .map(|h| STANDARD.encode(h))
                    .collect();
                if old != new {
                    assert_eq!(proof, ours, "{name}: proof");
                }
            }
            let tmp = tempfile::tempdir().unwrap();
            let w = Running::start(&sqlite_url(tmp.path()), &[&log]).await;
            bootstrap(&w, &log, old).await;
            let checkpoint = if valid {
                signed(&log, new, &root)
            } else {
                fake_signed(new, &root)
            };
            let a = post(
                &c,
                &w.url("/add-checkpoint"),
                raw_body(old, &proof, &checkpoint),
            )
            .await;
            if should_fail {
                assert!(
                    a.status >= 400,
                    "{name}: expected a failure, got {}",
                    a.status
                );
                match (spec_override(&name), expected) {
                    (Some((status, why)), _) => {
                        eprintln!("{name}: expecting {status}, not {expected:?}: {why}");
                        assert_eq!(a.status, status, "{name}: {}", a.body);
                    }
                    (None, Some(e)) => assert_eq!(a.status, e, "{name}: {}", a.body),
                    (None, None) => eprintln!("{name}: {} (the suite names no code)", a.status),
                }
            } else {
                assert_eq!(a.status, 200, "{name}: {}", a.body);
                assert!(a.body.starts_with('\u{2014}'), "{name}: {}", a.body);
                assert_eq!(verify_independently(&log, &checkpoint, &a.body).1, new);
            }
            w.stop().await;
        }
    })
    .await
    .expect("bounded");
}

/// The suite's `test_conflict_detection`, `test_unknown_log`, `test_malformed_request`,
/// `test_idempotent_checkpoint`, `test_sequential_checkpoints` and
/// `test_invalid_proof_rejected`.
#[tokio::test]
async fn siglog_named_tests() {
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        let log = suite_log(5);
        let tmp = tempfile::tempdir().unwrap();
        let w = Running::start(&sqlite_url(tmp.path()), &[&log]).await;
        let c = client();
        let add = w.url("/add-checkpoint");
        let root = |n| STANDARD.encode(log.root(n));
        let proof =
            |o, n| -> Vec<String> { log.proof(o, n).iter().map(|h| STANDARD.encode(h)).collect() };

        // Unknown log: 403 or 404 (this witness: 404, as the spec says).
        let unknown = format!(
            "unknown.example.com/log\n1\n{}\n\n\u{2014} unknown.example.com/log {}\n",
            root(1),
            STANDARD.encode([0u8; 68])
        );
        let a = post(&c, &add, raw_body(0, &[], unknown.as_bytes())).await;
        assert_eq!(a.status, 404);
        // Malformed request: 400.
        let a = post(&c, &add, b"invalid garbage data\nno proper format".to_vec()).await;
        assert_eq!(a.status, 400);
        // Bootstrap, then an idempotent resubmission.
        assert_eq!(
            post(&c, &add, raw_body(0, &[], &signed(&log, 1, &root(1))))
                .await
                .status,
            200
        );
        assert_eq!(
            post(&c, &add, raw_body(1, &[], &signed(&log, 1, &root(1))))
                .await
                .status,
            200
        );
        // Conflict: old size 0 when the witness is at 1: 409, text/x.tlog.size, "1".
        let a = post(&c, &add, raw_body(0, &[], &signed(&log, 5, &root(5)))).await;
        assert_eq!(a.status, 409);
        assert!(a.content_type.contains("text/x.tlog.size"));
        assert_eq!(a.body, "1\n");
        // Invalid proof: 422.
        let wrong = vec![
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string(),
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=".to_string(),
        ];
        assert_eq!(
            post(&c, &add, raw_body(1, &wrong, &signed(&log, 3, &root(3))))
                .await
                .status,
            422
        );
        // Sequential growth 1 -> 3 -> 5.
        assert_eq!(
            post(
                &c,
                &add,
                raw_body(1, &proof(1, 3), &signed(&log, 3, &root(3)))
            )
            .await
            .status,
            200
        );
        assert_eq!(
            post(
                &c,
                &add,
                raw_body(3, &proof(3, 5), &signed(&log, 5, &root(5)))
            )
            .await
            .status,
            200
        );
        w.stop().await;
    })
    .await
    .expect("bounded");
}

//! The witness over HTTP on loopback: every status code of `add-checkpoint`, split views caught
//! by `add-checkpoint` and by gossip, concurrent requests from one old size, restarts, and the
//! same on PostgreSQL. The log is built with `tlog_tiles` and signed with `signed_note`, and the
//! cosignatures are checked with them, so the witness is checked against implementations other
//! than the one it uses.

mod common;

use common::{body, client, post, sqlite_url, verify_independently, Running, TestLog};
use hashguard_witness::ForkSource;

const ORIGIN: &str = "example.com/hashguard-manifests";

/// Runs `f` with a bound: a hung request fails the test instead of hanging CI.
async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(std::time::Duration::from_secs(120), f)
        .await
        .expect("the test finishes within its bound");
}

/// Every code of c2sp.org/tlog-witness `add-checkpoint`, in one witness's life.
async fn status_codes(db_url: &str) {
    let mut log = TestLog::new(ORIGIN, 1);
    let other_log = TestLog::new("example.com/unknown", 2);
    let w = Running::start(db_url, &[&log]).await;
    let c = client();
    let add = w.url("/add-checkpoint");

    // 200: the first checkpoint, from old size 0 with an empty proof.
    log.grow(3);
    let cp3 = log.checkpoint(3);
    let a = post(&c, &add, body(0, &[], &cp3)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let (ts, size) = verify_independently(&log, &cp3, &a.body);
    assert_eq!(size, 3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(ts <= now && ts + 60 > now, "timestamp {ts} is now ({now})");

    // 200 again: the same checkpoint with the current old size (nothing changes).
    let a = post(&c, &add, body(3, &[], &cp3)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    verify_independently(&log, &cp3, &a.body);

    // 409 + text/x.tlog.size: a stale old size.
    log.grow(2);
    let cp5 = log.checkpoint(5);
    let a = post(&c, &add, body(0, &[], &cp5)).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.content_type, "text/x.tlog.size");
    assert_eq!(a.body, "3\n");
    let a = post(&c, &add, body(2, &log.proof(2, 5), &cp5)).await;
    assert_eq!((a.status, a.body.as_str()), (409, "3\n"));

    // 400: old size larger than the checkpoint's.
    let a = post(&c, &add, body(4, &[], &cp3)).await;
    assert_eq!(a.status, 400);
    assert_one_line(&a.body);

    // 422: a proof that does not verify (another pair's proof; no proof; a flipped hash).
    let a = post(&c, &add, body(3, &log.proof(2, 5), &cp5)).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let a = post(&c, &add, body(3, &[], &cp5)).await;
    assert_eq!(a.status, 422, "{}", a.body);
    let mut flipped = log.proof(3, 5);
    flipped[0][0] ^= 1;
    let a = post(&c, &add, body(3, &flipped, &cp5)).await;
    assert_eq!(a.status, 422, "{}", a.body);

    // 403: a signature of the trusted key that does not verify.
    let a = post(&c, &add, body(3, &log.proof(3, 5), &tamper_signature(&cp5))).await;
    assert_eq!(a.status, 403, "{}", a.body);
    // 403: no signature of a trusted key (same name, another key).
    let impostor = TestLog::new(ORIGIN, 9);
    let mut impostor_log = impostor;
    impostor_log.grow(5);
    let a = post(&c, &add, body(3, &[], &impostor_log.checkpoint(5))).await;
    assert_eq!(a.status, 403, "{}", a.body);

    // 404: an unknown origin, even with a valid signature of its own key.
    let mut unknown = other_log;
    unknown.grow(1);
    let a = post(&c, &add, body(0, &[], &unknown.checkpoint(1))).await;
    assert_eq!(a.status, 404, "{}", a.body);

    // 400: malformed bodies, each answered with a one-line reason.
    let malformed: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"invalid garbage data\nno proper format".to_vec(),
        b"old 03\n\n".iter().chain(cp5.iter()).copied().collect(),
        b"old 3\nnot!!!base64\n\n"
            .iter()
            .chain(cp5.iter())
            .copied()
            .collect(),
        b"old 3\n\nnot a checkpoint\n".to_vec(),
        // A checkpoint note without its signature block.
        body(
            3,
            &log.proof(3, 5),
            &cp5[..cp5.iter().position(|&b| b == 0xe2).unwrap()],
        ),
    ];
    for m in malformed {
        let a = post(&c, &add, m.clone()).await;
        assert_eq!(
            a.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(&m),
            a.body
        );
        assert_one_line(&a.body);
    }

    // 413: a body over the limit.
    let a = post(&c, &add, vec![b'a'; hashguard_witness::http::MAX_BODY + 1]).await;
    assert_eq!(a.status, 413);

    // 409 (plain text): same size as the latest, another root, both log-signed: a split view.
    let forged3 = log.sign_tree(3, [0x55; 32]);
    let a = post(&c, &add, body(3, &[], &forged3)).await;
    assert_eq!(a.status, 409);
    assert!(a.body.starts_with("fork:"), "{}", a.body);
    assert!(a.content_type.starts_with("text/plain"));
    let forks = w.witness.db().forks(Some(ORIGIN)).await.unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].size, 3);
    assert_eq!(forks[0].other_root.as_bytes(), &[0x55; 32]);
    assert_eq!(forks[0].cosigned_root.as_bytes(), &log.root(3));
    assert_eq!(forks[0].source, ForkSource::AddCheckpoint);
    assert_eq!(forks[0].note.as_bytes(), forged3.as_slice());

    // 200: the honest next checkpoint is still accepted, with its proof.
    let a = post(&c, &add, body(3, &log.proof(3, 5), &cp5)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(verify_independently(&log, &cp5, &a.body).1, 5);

    // A forged tree of an older cosigned size is refused by the spec's rules (400: old > size)
    // and still kept as evidence.
    let a = post(&c, &add, body(5, &[], &log.sign_tree(3, [0x66; 32]))).await;
    assert_eq!(a.status, 400);
    assert_eq!(w.witness.db().forks(Some(ORIGIN)).await.unwrap().len(), 2);

    // The state: latest 5, history 3 and 5, the forged trees never cosigned.
    let latest = w.witness.db().latest(ORIGIN).await.unwrap().unwrap();
    assert_eq!((latest.size, latest.root.as_bytes()), (5, &log.root(5)));
    let history = w.witness.db().history(ORIGIN).await.unwrap();
    let sizes: Vec<u64> = history.iter().map(|h| h.tree.size).collect();
    assert_eq!(sizes, [3, 5]);
    assert_eq!(history[0].note.as_bytes(), cp3.as_slice());
    w.stop().await;
}

/// Flips one bit of the first signature's bytes (past the key ID), keeping base64 valid.
fn tamper_signature(note: &[u8]) -> Vec<u8> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    let text = String::from_utf8(note.to_vec()).unwrap();
    let (head, sigs) = text.split_once("\n\n").unwrap();
    let line = sigs.lines().next().unwrap();
    let (prefix, b64) = line.rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    raw[10] ^= 1;
    format!("{head}\n\n{prefix} {}\n", STANDARD.encode(raw)).into_bytes()
}

fn assert_one_line(body: &str) {
    assert!(
        body.ends_with('\n') && body.matches('\n').count() == 1,
        "{body:?}"
    );
    assert!(body.len() > 1);
}

/// A split view shown to a client is caught by gossip: consistent, unknown, fork (stored), and
/// the refusals.
async fn gossip(db_url: &str) {
    let mut log = TestLog::new(ORIGIN, 1);
    let w = Running::start(db_url, &[&log]).await;
    let c = client();
    log.grow(3);
    let a = post(
        &c,
        &w.url("/add-checkpoint"),
        body(0, &[], &log.checkpoint(3)),
    )
    .await;
    assert_eq!(a.status, 200);
    let g = w.url("/gossip");

    let a = post(&c, &g, log.checkpoint(3)).await;
    assert_eq!(a.status, 200);
    let root3 = base64_of(&log.root(3));
    assert_eq!(a.body, format!("consistent 3 {root3}\n"));

    log.grow(4);
    let a = post(&c, &g, log.checkpoint(7)).await;
    assert_eq!((a.status, a.body.as_str()), (200, "unknown 3\n"));

    // The log shows this client another tree of size 3.
    let forged = log.sign_tree(3, [0x77; 32]);
    let a = post(&c, &g, forged.clone()).await;
    assert_eq!(a.status, 409);
    assert!(
        a.body.starts_with("fork:") && a.body.contains(&root3),
        "{}",
        a.body
    );
    let forks = w.witness.db().forks(None).await.unwrap();
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0].source, ForkSource::Gossip);
    assert_eq!(forks[0].note.as_bytes(), forged.as_slice());
    // Gossiped again: still 409, stored once.
    assert_eq!(post(&c, &g, forged).await.status, 409);
    assert_eq!(w.witness.db().forks(None).await.unwrap().len(), 1);

    let mut unknown = TestLog::new("example.com/unknown", 3);
    unknown.grow(1);
    assert_eq!(post(&c, &g, unknown.checkpoint(1)).await.status, 404);
    assert_eq!(
        post(&c, &g, tamper_signature(&log.checkpoint(3)))
            .await
            .status,
        403
    );
    let a = post(&c, &g, b"not a note".to_vec()).await;
    assert_eq!(a.status, 400);
    assert_one_line(&a.body);
    // Gossip never changes what is cosigned.
    assert_eq!(
        w.witness.db().latest(ORIGIN).await.unwrap().unwrap().size,
        3
    );
    w.stop().await;
}

fn base64_of(h: &[u8; 32]) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    STANDARD.encode(h)
}

/// N requests advancing from one old size at once: exactly one is cosigned, the others get 409
/// with the winner's size, and the stored state is the winner's.
async fn concurrent(db_url: &str) {
    const N: u64 = 12;
    let mut log = TestLog::new(ORIGIN, 1);
    let w = Running::start(db_url, &[&log]).await;
    let c = client();
    log.grow(1);
    let add = w.url("/add-checkpoint");
    assert_eq!(
        post(&c, &add, body(0, &[], &log.checkpoint(1)))
            .await
            .status,
        200
    );
    log.grow(N);
    let bodies: Vec<(u64, Vec<u8>)> = (2..=N + 1)
        .map(|n| (n, body(1, &log.proof(1, n), &log.checkpoint(n))))
        .collect();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut tasks = Vec::new();
    for (n, b) in bodies {
        let (c, add, start) = (c.clone(), add.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            (n, post(&c, &add, b).await)
        }));
    }
    let mut won = Vec::new();
    let mut conflicts = Vec::new();
    for t in tasks {
        let (n, a) = t.await.unwrap();
        match a.status {
            200 => won.push(n),
            409 => conflicts.push(a),
            s => panic!("unexpected {s}: {}", a.body),
        }
    }
    assert_eq!(won.len(), 1, "exactly one request advances from old size 1");
    let winner = won[0];
    assert_eq!(conflicts.len() as u64, N - 1);
    for a in conflicts {
        assert_eq!(a.content_type, "text/x.tlog.size");
        assert_eq!(a.body, format!("{winner}\n"));
    }
    let latest = w.witness.db().latest(ORIGIN).await.unwrap().unwrap();
    assert_eq!(
        (latest.size, latest.root.as_bytes()),
        (winner, &log.root(winner))
    );
    let sizes: Vec<u64> = w
        .witness
        .db()
        .history(ORIGIN)
        .await
        .unwrap()
        .iter()
        .map(|h| h.tree.size)
        .collect();
    assert_eq!(sizes, [1, winner]);
    w.stop().await;
}

/// The state is in the database: a new witness process on it continues where the last stopped.
async fn restart(db_url: &str) {
    let mut log = TestLog::new(ORIGIN, 1);
    log.grow(3);
    let c = client();
    let w = Running::start(db_url, &[&log]).await;
    assert_eq!(
        post(
            &c,
            &w.url("/add-checkpoint"),
            body(0, &[], &log.checkpoint(3))
        )
        .await
        .status,
        200
    );
    w.stop().await;

    let w = Running::start(db_url, &[&log]).await;
    log.grow(2);
    let add = w.url("/add-checkpoint");
    let a = post(&c, &add, body(0, &[], &log.checkpoint(5))).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (409, "3\n"),
        "the latest size survived"
    );
    let a = post(&c, &add, body(3, &[], &log.sign_tree(3, [1; 32]))).await;
    assert_eq!(a.status, 409, "the cosigned root survived");
    let a = post(&c, &add, body(3, &log.proof(3, 5), &log.checkpoint(5))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let sizes: Vec<u64> = w
        .witness
        .db()
        .history(ORIGIN)
        .await
        .unwrap()
        .iter()
        .map(|h| h.tree.size)
        .collect();
    assert_eq!(sizes, [3, 5]);
    w.stop().await;
}

/// The statement at `GET /`, and the liveness check.
#[tokio::test]
async fn statement_and_health() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let log = TestLog::new(ORIGIN, 1);
        let w = Running::start(&sqlite_url(dir.path()), &[&log]).await;
        let c = client();
        let r = c.get(w.url("/")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains(&common::witness_key().verifier().to_vkey()));
        assert!(text.contains(&format!("log {ORIGIN} {}", log.vkey)));
        assert!(text.contains("never cosigns two different trees"));
        assert!(text.contains("consistent with every checkpoint it cosigned before"));
        assert!(
            !text.contains("E11"),
            "no organisation rule without an organisation"
        );
        let r = c.get(w.url("/health")).send().await.unwrap();
        assert_eq!(r.text().await.unwrap(), "ok\n");
        // The organisation's rule (E11), when an organisation operates it.
        let db = hashguard_witness::WitnessDb::open(&sqlite_url(dir.path()))
            .await
            .unwrap();
        let org = hashguard_witness::Witness::new(
            common::witness_key(),
            hashguard_witness::KnownLogs::new(),
            db,
        )
        .with_organisation("Example Child Safety Org");
        let s = org.statement();
        assert!(s.contains("operated by: Example Child Safety Org"));
        assert!(s.contains("co-signed no other manifest for\nthat epoch"));
        assert!(s.contains("prev_manifest_hash is the last manifest it co-signed"));
        org.db().close().await;
        w.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sqlite_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    bounded(status_codes(&sqlite_url(dir.path()))).await;
}

#[tokio::test]
async fn sqlite_gossip() {
    let dir = tempfile::tempdir().unwrap();
    bounded(gossip(&sqlite_url(dir.path()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_add_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    bounded(concurrent(&sqlite_url(dir.path()))).await;
}

#[tokio::test]
async fn sqlite_restart_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    bounded(restart(&sqlite_url(dir.path()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_all() {
    bounded(async {
        for (name, scenario) in [
            ("status_codes", 0),
            ("gossip", 1),
            ("concurrent", 2),
            ("restart", 3),
        ] {
            let Some(url) =
                hashguard_testsupport::postgres::fresh_schema(&format!("witness_{name}")).await
            else {
                return;
            };
            match scenario {
                0 => status_codes(&url).await,
                1 => gossip(&url).await,
                2 => concurrent(&url).await,
                _ => restart(&url).await,
            }
        }
    })
    .await;
}

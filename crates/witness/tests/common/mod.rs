//! Shared by the witness's integration tests: a test log built with independent implementations
//! (Cloudflare azul's `tlog_tiles` for the Merkle tree and proofs, `signed_note` for the log's
//! signatures), a witness served on loopback, an HTTP client, and a `cosignature/v1` verifier
//! plugged into `signed_note`'s note verification.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_transparency::note::Ed25519Signer;
use hashguard_witness::{KnownLogs, Witness, WitnessDb};
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::tlog;

/// Every test's HTTP request and whole-test bound.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// A log whose tree and signatures come from `tlog_tiles` and `signed_note`, not from
/// hashguard-transparency (which the witness uses to check them).
pub struct TestLog {
    pub origin: String,
    signer: StandardSigner,
    pub vkey: String,
    stored: Vec<tlog::Hash>,
    pub size: u64,
}

struct Stored<'a>(&'a [tlog::Hash]);

impl tlog::HashReader for Stored<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog::Hash>, tlog::Error> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.0.get(i).copied())
                    .ok_or(tlog::Error::IndexesNotInTree)
            })
            .collect()
    }
}

impl TestLog {
    /// A log named `origin` whose Ed25519 key has the seed `[seed; 32]`.
    pub fn new(origin: &str, seed: u8) -> Self {
        // The skey text comes from hashguard-transparency; signing is signed_note's.
        let ours = Ed25519Signer::from_seed(origin, &[seed; 32]).expect("log key");
        let signer = StandardSigner::new(&ours.to_skey()).expect("signed_note reads our skey");
        TestLog {
            origin: origin.to_string(),
            vkey: ours.verifier().to_vkey(),
            signer,
            stored: Vec::new(),
            size: 0,
        }
    }

    /// Appends a leaf hash as it goes into the tree (no hashing).
    pub fn append_leaf_hash(&mut self, leaf: [u8; 32]) {
        let hashes =
            tlog::stored_hashes_for_record_hash(self.size, tlog::Hash(leaf), &Stored(&self.stored))
                .expect("stored hashes");
        self.stored.extend(hashes);
        self.size += 1;
    }

    /// Appends an entry (leaf hash `SHA-256(0x00 || entry)`).
    pub fn append(&mut self, entry: &[u8]) {
        self.append_leaf_hash(tlog::record_hash(entry).0);
    }

    /// Appends `n` distinct entries.
    pub fn grow(&mut self, n: u64) {
        for _ in 0..n {
            let i = self.size;
            self.append(format!("manifest {i}").as_bytes());
        }
    }

    /// The root of the first `n` leaves.
    pub fn root(&self, n: u64) -> [u8; 32] {
        tlog::tree_hash(n, &Stored(&self.stored))
            .expect("tree hash")
            .0
    }

    /// The consistency proof from `old` to `new` leaves (empty from 0).
    pub fn proof(&self, old: u64, new: u64) -> Vec<[u8; 32]> {
        if old == 0 {
            return Vec::new();
        }
        tlog::prove_tree(new, old, &Stored(&self.stored))
            .expect("proof")
            .into_iter()
            .map(|h| h.0)
            .collect()
    }

    /// The log-signed checkpoint note of the first `n` leaves.
    pub fn checkpoint(&self, n: u64) -> Vec<u8> {
        self.sign_tree(n, self.root(n))
    }

    /// A log-signed checkpoint naming any root: what a log mounting a split view signs.
    pub fn sign_tree(&self, n: u64, root: [u8; 32]) -> Vec<u8> {
        let cp =
            tlog_tiles::Checkpoint::new(&self.origin, n, tlog::Hash(root), "").expect("checkpoint");
        let mut note = Note::new(&cp.to_bytes(), &[]).expect("note");
        note.add_sigs(&[&self.signer]).expect("sign");
        note.to_bytes()
    }

    /// The log's key ID.
    pub fn key_id(&self) -> u32 {
        self.signer.key_id()
    }

    /// `text`, a blank line and the log's signature line of `text`, built by hand with no note
    /// library checking `text` (as siglog's conformance suite builds its checkpoints).
    pub fn sign_raw(&self, text: &str) -> Vec<u8> {
        let sig = self.signer.sign(text.as_bytes()).expect("sign");
        let mut raw = self.signer.key_id().to_be_bytes().to_vec();
        raw.extend_from_slice(&sig);
        format!(
            "{text}\n\u{2014} {} {}\n",
            self.origin,
            STANDARD.encode(raw)
        )
        .into_bytes()
    }
}

/// An `add-checkpoint` body.
pub fn body(old: u64, proof: &[[u8; 32]], note: &[u8]) -> Vec<u8> {
    let mut out = format!("old {old}\n").into_bytes();
    for h in proof {
        out.extend_from_slice(STANDARD.encode(h).as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(note);
    out
}

/// The witness's cosigning key used by the tests.
pub fn witness_key() -> CosignatureSigner {
    CosignatureSigner::from_seed("witness.test/w1", &[7; 32]).expect("witness key")
}

/// A SQLite URL for a file in `dir`.
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("witness.db").display())
}

/// A witness served on 127.0.0.1 (an OS-chosen port) until dropped or stopped.
pub struct Running {
    pub addr: SocketAddr,
    pub witness: Arc<Witness>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// Starts a witness on `db_url` knowing `logs`.
    pub async fn start(db_url: &str, logs: &[&TestLog]) -> Running {
        let mut known = KnownLogs::new();
        for log in logs {
            known.add(
                hashguard_transparency::note::Ed25519Verifier::from_vkey(&log.vkey).expect("vkey"),
            );
        }
        let db = WitnessDb::open(db_url).await.expect("open database");
        let witness = Arc::new(Witness::new(witness_key(), known, db));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("address");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hashguard_witness::http::serve(
            listener,
            witness.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Running {
            addr,
            witness,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server (graceful shutdown) and closes the database.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(REQUEST_TIMEOUT, task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server result");
        }
        self.witness.db().close().await;
    }
}

/// An HTTP client with a timeout, never going through a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .expect("client")
}

/// A response's status, content type and body.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// POSTs `body` to `url`.
pub async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> Answer {
    let r = client.post(url).body(body).send().await.expect("request");
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.text().await.expect("body");
    Answer {
        status,
        content_type,
        body,
    }
}

/// A `cosignature/v1` verifier for `signed_note` (which has no such key type): the key ID is
/// `signed_note::key_id(name, 0x04 || key)`, the signature is an 8-byte big-endian timestamp
/// and an Ed25519 signature of `"cosignature/v1\ntime <t>\n" || text`.
pub struct CosignatureV1 {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl CosignatureV1 {
    /// From the 32 key bytes and the name.
    pub fn new(name: &str, key: [u8; 32]) -> Self {
        let mut typed = vec![0x04];
        typed.extend_from_slice(&key);
        CosignatureV1 {
            name: name.to_string(),
            id: signed_note::key_id(name, &typed),
            key: ed25519_dalek::VerifyingKey::from_bytes(&key).expect("key"),
        }
    }

    /// The timestamp of a signature line's bytes (after the key ID).
    pub fn timestamp(sig: &[u8]) -> u64 {
        u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"))
    }
}

impl Verifier for CosignatureV1 {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        if sig.len() != 72 {
            return false;
        }
        let ts = Self::timestamp(sig);
        let mut m = format!("cosignature/v1\ntime {ts}\n").into_bytes();
        m.extend_from_slice(msg);
        let Ok(s) = ed25519_dalek::Signature::from_slice(&sig[8..]) else {
            return false;
        };
        ts != 0 && self.key.verify_strict(&m, &s).is_ok()
    }
}

/// Checks, with `signed_note` and `tlog_tiles` only, that `lines` (an `add-checkpoint` 200
/// body) hold a valid cosignature of the witness on `note` (a log-signed checkpoint of `log`),
/// and that the log's signature still verifies on the same note; returns the cosignature's
/// timestamp and the checkpoint's size.
pub fn verify_independently(log: &TestLog, note: &[u8], lines: &str) -> (u64, u64) {
    assert!(lines.starts_with('\u{2014}'), "signature lines: {lines:?}");
    assert!(lines.ends_with('\n'));
    let mut combined = note.to_vec();
    combined.extend_from_slice(lines.as_bytes());
    let parsed = Note::from_bytes(&combined).expect("signed_note parses note + cosignature");
    let w = witness_key().verifier();
    let cosig = CosignatureV1::new("witness.test/w1", w.public_key());
    let (verified, _) = parsed
        .verify(&VerifierList::new(vec![Box::new(cosig)]))
        .expect("signed_note verifies the cosignature");
    assert_eq!(verified.len(), 1);
    let ts = CosignatureV1::timestamp(verified[0].signature());
    assert!(ts > 0, "the timestamp must not be zero");
    let log_key = StandardVerifier::new(&log.vkey).expect("signed_note reads our vkey");
    parsed
        .verify(&VerifierList::new(vec![Box::new(log_key)]))
        .expect("the log signature verifies too");
    let cp = tlog_tiles::Checkpoint::from_bytes(parsed.text()).expect("tlog_tiles parses");
    assert_eq!(cp.origin(), log.origin);
    (ts, cp.size())
}

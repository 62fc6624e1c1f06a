//! Issue 13, crash safety of `hashguard serve`: the real binary is killed with SIGKILL while a
//! bounded load of benign uploads is in flight, then restarted on the same database and data
//! folder. Every upload that was answered 201 must download bit-identical, no upload may be
//! stored twice, every attachment row must name a complete blob of its recorded length and
//! SHA-256, and the database must pass its integrity check. Blobs without a row (written before
//! the kill, their row never committed) are allowed and counted: no row and no answer names
//! them.
//!
//! Loopback only; every loop is bounded in count and every phase in time. The child processes
//! are killed when the test ends, whether it passes or panics.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::Manifest;
use hashguard_protocol::params::{PinnedParams, Policy, Preset};
use hashguard_protocol::prelude::*;
use hashguard_store::{AttachmentState, DatabaseLocation, OpenMode, Store};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Uploads prepared in advance (the load never exceeds them).
const UPLOADS: usize = 60;
/// Uploads in flight at once.
const CONCURRENCY: usize = 4;
/// Answers received before the server is killed.
const KILL_AFTER_ANSWERS: usize = 20;
/// The server is killed after this long at the latest, whatever the number of answers.
const KILL_AFTER: Duration = Duration::from_secs(15);
/// One request's limit (the client gives up on it and the upload is not counted).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// One `hashguard list`/`table` command's limit.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Lines of the server's standard error kept for a failure message.
const LOG_LINES: usize = 400;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary with none of the caller's `HASHGUARD_*` settings, in `dir`.
fn hashguard(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hashguard"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HASHGUARD_") {
            cmd.env_remove(name);
        }
    }
    cmd.current_dir(dir).stdin(Stdio::null());
    cmd
}

/// Runs one setup command to completion within [`CLI_TIMEOUT`] (killed after it).
fn run_cli(dir: &Path, args: &[&str]) {
    let out = dir.join("cli.stdout");
    let err = dir.join("cli.stderr");
    let mut child = hashguard(dir)
        .args(args)
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("hashguard starts");
    let deadline = Instant::now() + CLI_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "hashguard {args:?} failed ({status}):\n{}{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hashguard {args:?} did not finish within {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `hashguard serve` process, killed (SIGKILL) and reaped when dropped, so no test outcome
/// leaves it running.
struct ServeProcess {
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServeProcess {
    /// Starts `hashguard serve` on 127.0.0.1 with a free port over the files in `dir`, and
    /// waits (bounded) for the line that names its address.
    async fn start(dir: &Path) -> ServeProcess {
        let mut child = hashguard(dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.join("serve.db"))
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--table")
            .arg(dir.join("table"))
            .arg("--key")
            .arg(dir.join("table.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hashguard serve starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let mut server = ServeProcess {
            child: Some(child),
            base: String::new(),
            log: log.clone(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        // Drains standard error until the process ends (a full pipe would stall the server),
        // keeping the last lines and handing over the address once.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(addr);
                    }
                }
                let mut log = log.lock().expect("log lock");
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        let base = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(base)) => base,
            Ok(Err(_)) => panic!(
                "hashguard serve ended without listening:\n{}",
                server.log_tail()
            ),
            Err(_) => panic!(
                "hashguard serve did not listen within {START_TIMEOUT:?}:\n{}",
                server.log_tail()
            ),
        };
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "not on loopback: {base}"
        );
        server.base = base;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, then reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
        log.into_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One upload, built before the load starts.
struct Prepared {
    ciphertext: Vec<u8>,
    sha256: [u8; 32],
    voucher: Vec<u8>,
    vd: Vec<u8>,
}

/// What the client saw of one upload.
#[derive(Debug)]
enum Seen {
    /// 201 with its attachment id.
    Created { index: usize, id: String },
    /// An answer other than 201, or a 201 whose body could not be read.
    Other {
        index: usize,
        status: StatusCode,
        body: String,
    },
    /// No answer (connection refused or reset, timeout): not counted.
    NoAnswer,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client")
}

/// Registers an account: (account id, token).
async fn register(http: &reqwest::Client, server: &ServeProcess) -> ([u8; 16], String) {
    let r = http
        .post(server.url("/v1/accounts"))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    let mut account = [0u8; 16];
    hex::decode_to_slice(body["account_id"].as_str().expect("id"), &mut account).expect("hex");
    (account, body["token"].as_str().expect("token").to_string())
}

/// Fetches the manifest and its shards and verifies them as a client must before it builds any
/// voucher (`hashguard table build`'s defaults: V1, intervene).
async fn fetch_table(http: &reqwest::Client, server: &ServeProcess) -> (ClientTable, Params) {
    let params = Preset::V1.params(Policy::Intervene);
    let r = http
        .get(server.url("/v1/table/manifest"))
        .send()
        .await
        .expect("manifest");
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.expect("bytes");
    // `hashguard table build` alone publishes no signed bundle: this test's client trusts the
    // served manifest as a throwaway sandbox signs it.
    let manifest = hashguard_protocol::trust_sandbox::accept_alone(
        Manifest::decode(&bytes).expect("manifest decodes"),
        PinnedParams::exactly(params.clone()),
        hashguard_service::publish::now(),
    )
    .expect("the client accepts the manifest");
    let mut shards = Vec::new();
    for entry in manifest.table(TableKind::Pdq).expect("pdq table").shards() {
        let r = http
            .get(server.url(&format!("/v1/table/shards/{}", hex::encode(entry.root))))
            .send()
            .await
            .expect("shard");
        assert_eq!(r.status(), StatusCode::OK);
        shards.push(TableShard::decode(&r.bytes().await.expect("bytes")).expect("shard decodes"));
    }
    let table =
        ClientTable::load(&manifest, TableKind::Pdq, &shards, 1 << 24).expect("the shards verify");
    (table, params)
}

/// [`UPLOADS`] benign uploads: random PDQ values no list holds, distinct random ciphertexts of
/// 2 to 8 KiB, valid vouchers bound to the account and the ciphertext.
fn prepare(account: [u8; 16], table: &ClientTable, params: &Params) -> Vec<Prepared> {
    let mut rng = ChaCha20Rng::seed_from_u64(0x13_c0a5);
    let mut client = Client::new(AccountState::generate(&mut rng), params.clone());
    (0..UPLOADS)
        .map(|_| {
            let len = 2048 + usize::try_from(rng.next_u32() % 6144).expect("small");
            let mut ciphertext = vec![0u8; len];
            rng.fill_bytes(&mut ciphertext);
            let mut margins = [0f32; 256];
            for m in margins.iter_mut() {
                *m = f32::from(u16::try_from(rng.next_u32() % 1000).expect("small")) + 1.0;
            }
            let input = PdqInput {
                hash: Hash256::from_words([
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                    rng.next_u64(),
                ]),
                margins,
                quality: 90,
            };
            let mut content = [0u8; 32];
            rng.fill_bytes(&mut content);
            let item = Item {
                pdq: Some(input),
                content_sha256: content,
                media_kind: MediaKind::Image,
                frame_idx: 0,
                thumbnail: b"a small benign thumbnail",
            };
            let binding = UploadBinding::new(account, &ciphertext);
            let built = client
                .build_pdq_voucher(table, &item, &binding, &mut rng)
                .expect("voucher");
            Prepared {
                sha256: Sha256::digest(&ciphertext).into(),
                ciphertext,
                voucher: built.voucher.encode(),
                vd: built.vd_blob.clone(),
            }
        })
        .collect()
}

async fn send(http: &reqwest::Client, url: &str, token: &str, index: usize, p: &Prepared) -> Seen {
    let form = reqwest::multipart::Form::new()
        .text("media", "image")
        .part(
            "ciphertext",
            reqwest::multipart::Part::bytes(p.ciphertext.clone()),
        )
        .part(
            "voucher",
            reqwest::multipart::Part::bytes(p.voucher.clone()),
        )
        .part("vd", reqwest::multipart::Part::bytes(p.vd.clone()));
    let Ok(r) = http
        .post(url)
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
    else {
        return Seen::NoAnswer;
    };
    let status = r.status();
    let body = r.text().await;
    match (status, body) {
        (StatusCode::CREATED, Ok(body)) => {
            match serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["attachment_id"].as_str().map(str::to_string))
            {
                Some(id) => Seen::Created { index, id },
                None => Seen::Other {
                    index,
                    status,
                    body,
                },
            }
        }
        (status, body) => Seen::Other {
            index,
            status,
            body: body.unwrap_or_else(|e| format!("(body not read: {e})")),
        },
    }
}

/// Numbers of one run.
#[derive(Debug, Default)]
struct Measured {
    answers_before_kill: usize,
    in_flight_at_kill: usize,
    created: usize,
    stored_unanswered: usize,
    orphans: usize,
    tmp_leftovers: usize,
}

#[test]
fn kill_9_under_load_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let db = d.join("serve.db").display().to_string();
    let standin = repo().join("assets/standin");
    for (bank, org, jurisdiction, file) in [
        ("standin-a", "Stand-in Org A", "GB", "org-a.txt"),
        ("standin-b", "Stand-in Org B", "US", "org-b.txt"),
    ] {
        run_cli(
            d,
            &[
                "list",
                "--db",
                &db,
                "create",
                bank,
                "--org",
                org,
                "--jurisdiction",
                jurisdiction,
            ],
        );
        let list = standin.join(file).display().to_string();
        run_cli(d, &["list", "--db", &db, "import", bank, &list]);
    }
    let table = d.join("table").display().to_string();
    let key = d.join("table.key").display().to_string();
    run_cli(
        d,
        &[
            "table",
            "build",
            "--db",
            &db,
            "--out",
            &table,
            "--key",
            &key,
            "--threads",
            "1",
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let measured = runtime.block_on(crash_and_restart(d, &db));
    eprintln!(
        "serve_crash: {} answers before the kill, {} uploads in flight at the kill, {} answered 201, \
         {} stored but unanswered, {} orphan blobs, {} temporary files left, {:.1} s",
        measured.answers_before_kill,
        measured.in_flight_at_kill,
        measured.created,
        measured.stored_unanswered,
        measured.orphans,
        measured.tmp_leftovers,
        started.elapsed().as_secs_f64()
    );
}

async fn crash_and_restart(d: &Path, db: &str) -> Measured {
    let mut measured = Measured::default();
    let http = http_client();
    let mut first = ServeProcess::start(d).await;

    // Register, fetch and verify the table, and build every upload before the load.
    let ((account, token), (table, params)) =
        tokio::time::timeout(Duration::from_secs(20), async {
            let who = register(&http, &first).await;
            (who, fetch_table(&http, &first).await)
        })
        .await
        .expect("registration and the table within 20 s");
    let prepare_started = Instant::now();
    let uploads = Arc::new(prepare(account, &table, &params));
    assert!(
        prepare_started.elapsed() < Duration::from_secs(30),
        "building {UPLOADS} vouchers took {:?}",
        prepare_started.elapsed()
    );

    // The load: CONCURRENCY workers take uploads from one queue until it is empty or the
    // server has been killed.
    let queue = Arc::new(Mutex::new((0..UPLOADS).collect::<VecDeque<usize>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let begun = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Seen>();
    let url = first.url("/v1/attachments");
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (queue, stop, begun, ended, tx) = (
            queue.clone(),
            stop.clone(),
            begun.clone(),
            ended.clone(),
            tx.clone(),
        );
        let (http, url, token, uploads) =
            (http.clone(), url.clone(), token.clone(), uploads.clone());
        workers.push(tokio::spawn(async move {
            // At most UPLOADS iterations in all: each takes one upload off the queue.
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(index) = queue.lock().expect("queue lock").pop_front() else {
                    break;
                };
                begun.fetch_add(1, Ordering::SeqCst);
                let seen = send(&http, &url, &token, index, &uploads[index]).await;
                ended.fetch_add(1, Ordering::SeqCst);
                if tx.send(seen).is_err() {
                    break;
                }
            }
        }));
    }
    drop(tx);
    let mut seen = Vec::new();
    let kill_at = tokio::time::Instant::now() + KILL_AFTER;
    while measured.answers_before_kill < KILL_AFTER_ANSWERS {
        match tokio::time::timeout_at(kill_at, rx.recv()).await {
            Ok(Some(s)) => {
                if !matches!(s, Seen::NoAnswer) {
                    measured.answers_before_kill += 1;
                }
                seen.push(s);
            }
            Ok(None) | Err(_) => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    measured.in_flight_at_kill = begun.load(Ordering::SeqCst) - ended.load(Ordering::SeqCst);
    first.kill();
    let first_log = first.log_tail();
    drop(first);
    assert_eq!(
        measured.answers_before_kill, KILL_AFTER_ANSWERS,
        "the server answered only {} uploads within {KILL_AFTER:?}:\n{first_log}",
        measured.answers_before_kill
    );
    assert!(
        measured.in_flight_at_kill >= 1,
        "no upload was in flight when the server was killed"
    );
    // The uploads in flight end (answered before the kill, or failed) within the client's
    // timeout.
    let drain = tokio::time::Instant::now() + REQUEST_TIMEOUT + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(drain, rx.recv()).await {
            Ok(Some(s)) => seen.push(s),
            Ok(None) => break,
            Err(_) => panic!("the uploads in flight did not end after the kill"),
        }
    }
    for w in workers {
        w.await.expect("worker");
    }
    assert!(seen.len() <= UPLOADS);
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for s in &seen {
        match s {
            Seen::Created { index, id } => {
                assert!(
                    created.insert(id.clone(), *index).is_none(),
                    "attachment id {id} was answered twice"
                );
            }
            Seen::Other {
                index,
                status,
                body,
            } => panic!(
                "upload {index} of a benign image was answered {status}: {body}\n{first_log}"
            ),
            Seen::NoAnswer => {}
        }
    }
    measured.created = created.len();
    assert!(measured.created >= KILL_AFTER_ANSWERS);

    // Restart on the same database and data folder.
    let second = ServeProcess::start(d).await;
    tokio::time::timeout(Duration::from_secs(30), async {
        let r = http
            .get(second.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(r.status(), StatusCode::OK, "readyz after the restart");
        // Every upload answered 201 downloads bit-identical.
        for (id, index) in &created {
            let r = http
                .get(second.url(&format!("/v1/attachments/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .expect("download");
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "upload {index}, answered 201 as {id}, is not downloadable after the restart:\n{}",
                second.log_tail()
            );
            let bytes = r.bytes().await.expect("bytes");
            assert!(
                bytes[..] == uploads[*index].ciphertext[..],
                "upload {index} ({id}) downloads {} bytes that differ from the {} uploaded",
                bytes.len(),
                uploads[*index].ciphertext.len()
            );
        }
    })
    .await
    .expect("readyz and the downloads within 30 s");

    // The database and the data folder.
    tokio::time::timeout(Duration::from_secs(30), async {
        let by_sha: BTreeMap<[u8; 32], usize> = uploads
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sha256, i))
            .collect();
        assert_eq!(
            by_sha.len(),
            UPLOADS,
            "the prepared ciphertexts are distinct"
        );
        let store = Store::open_location(&DatabaseLocation::parse(db), OpenMode::Read)
            .await
            .expect("store");
        store.integrity_check().await.expect("integrity check");
        let blobs = d.join("data/blobs");
        let ids = store.attachment_ids().await.expect("attachment ids");
        let mut rows = BTreeSet::new();
        let mut stored_uploads = BTreeSet::new();
        for id in &ids {
            let id_hex = id.to_string();
            let record = store
                .attachment(id)
                .await
                .expect("attachment")
                .expect("the row of a listed id");
            assert_eq!(record.state, AttachmentState::Stored, "{id_hex}");
            let index = *by_sha
                .get(&record.sha256)
                .unwrap_or_else(|| panic!("row {id_hex} records a SHA-256 that no upload has"));
            assert!(
                stored_uploads.insert(index),
                "upload {index} is stored twice (second row {id_hex})"
            );
            if let Some(answered) = created.iter().find(|(_, i)| **i == index) {
                assert_eq!(
                    answered.0, &id_hex,
                    "upload {index} was answered with another id than its row's"
                );
            }
            let blob = std::fs::read(blobs.join(format!("att-{id_hex}")))
                .unwrap_or_else(|e| panic!("row {id_hex} (upload {index}) names no blob: {e}"));
            assert_eq!(
                u64::try_from(blob.len()).expect("len"),
                record.length,
                "blob {id_hex}'s length"
            );
            let sha: [u8; 32] = Sha256::digest(&blob).into();
            assert_eq!(sha, record.sha256, "blob {id_hex}'s SHA-256");
            rows.insert(id_hex);
        }
        assert_eq!(rows.len(), ids.len(), "attachment ids are distinct");
        for id in created.keys() {
            assert!(rows.contains(id), "201 {id} has no row");
        }
        measured.stored_unanswered = ids.len() - created.len();
        // Every ciphertext file is complete (a blob is renamed into place whole); those
        // without a row are orphans that nothing names.
        let mut with_row = 0;
        for entry in std::fs::read_dir(&blobs).expect("blobs folder") {
            let name = entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned();
            let Some(id_hex) = name.strip_prefix("att-") else {
                continue;
            };
            let blob = std::fs::read(blobs.join(&name)).expect("blob");
            let sha: [u8; 32] = Sha256::digest(&blob).into();
            assert!(
                by_sha.contains_key(&sha),
                "blob {name} is not the complete ciphertext of any upload"
            );
            if rows.contains(id_hex) {
                with_row += 1;
            } else {
                assert!(!created.contains_key(id_hex), "201 {id_hex} is an orphan");
                measured.orphans += 1;
            }
        }
        assert_eq!(
            with_row,
            ids.len(),
            "attachment rows and the ciphertext blobs they name"
        );
        measured.tmp_leftovers = std::fs::read_dir(blobs.join("tmp"))
            .map(|r| r.count())
            .unwrap_or(0);
        store.close().await;
    })
    .await
    .expect("the checks of the database and the data folder within 30 s");
    drop(second);
    measured
}

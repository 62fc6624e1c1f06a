//! What the HTTP test files share: a database per test (a SQLite file, or a fresh PostgreSQL
//! schema at `DATABASE_URL`; unreachable PostgreSQL is a `SKIPPED` line, or a failure with
//! `HASHGUARD_REQUIRE_POSTGRES=1`), a table published from stand-in lists, the server on
//! loopback over them ([`Fixture`]), registration, and `on_both!`, which runs a test on both
//! databases.

// Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hashguard_hashing::{Hashed, Hasher, Options};
use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType};
use hashguard_protocol::params::{Params, Policy, Preset};
use hashguard_server::config::{Bucket, Config, Intervention, Limits, LogFormat};
use hashguard_server::Server;
use hashguard_service::banks::entry_for_original;
use hashguard_store::{DatabaseLocation, ImportMeta, OpenMode, Store};
use reqwest::StatusCode;
use serde_json::Value;

/// The review API's staff token in these tests.
pub const STAFF_TOKEN: &str = "a-staff-token-for-the-tests-only";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A database for one test: a SQLite file, or a fresh PostgreSQL schema (None when PostgreSQL
/// is unreachable and not required).
pub async fn database(kind: &str, dir: &Path, test: &str) -> Option<String> {
    if kind == "sqlite" {
        return Some(dir.join("serve.db").display().to_string());
    }
    hashguard_testsupport::postgres::fresh_schema(test).await
}

/// Publishes the next epoch of the table in `table` from the banks of `db` (epoch 1 in an
/// empty directory), with the opening key in `key` (created if missing).
pub async fn publish_epoch(db: &str, table: &Path, key: &Path, preset: Preset, policy: Policy) {
    hashguard_server::sandbox::publish_next_epoch(db, table, key, preset, policy)
        .await
        .expect("publish");
}

/// A running server over a published table.
pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub config: Config,
    pub base: String,
    pub db: String,
    pub http: reqwest::Client,
    pub params: Params,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    /// Banks from `lists` (name, organisation, jurisdiction, list text), a table published from
    /// their consensus view under `preset`, and the server on 127.0.0.1 with a free port.
    pub async fn start(
        kind: &str,
        test: &str,
        lists: &[(&str, &str, &str, String)],
        preset: Preset,
        policy: Policy,
    ) -> Option<Fixture> {
        Fixture::start_with(kind, test, lists, preset, policy, wide_match_limits()).await
    }

    pub async fn start_with(
        kind: &str,
        test: &str,
        lists: &[(&str, &str, &str, String)],
        preset: Preset,
        policy: Policy,
        limits: Limits,
    ) -> Option<Fixture> {
        Fixture::start_configured(kind, test, lists, preset, policy, limits, |_| {}).await
    }

    /// Like [`Fixture::start_with`], with `tweak` applied to the configuration first. The
    /// listed demo image's second hash is on file for every bank that lists it
    /// ([`DEFAULT_SECOND_HASHES`]).
    pub async fn start_configured(
        kind: &str,
        test: &str,
        lists: &[(&str, &str, &str, String)],
        preset: Preset,
        policy: Policy,
        limits: Limits,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Fixture> {
        Fixture::start_full(
            kind,
            test,
            lists,
            preset,
            policy,
            limits,
            DEFAULT_SECOND_HASHES,
            tweak,
        )
        .await
    }

    /// Like [`Fixture::start_configured`], with these second hashes on file: for each
    /// (original, hashed) pair of `assets/demo` images, the entry of `original` in every bank
    /// that lists it gets the second hash of `hashed` (a pair of different images records a
    /// wrong one).
    #[allow(clippy::too_many_arguments)]
    pub async fn start_full(
        kind: &str,
        test: &str,
        lists: &[(&str, &str, &str, String)],
        preset: Preset,
        policy: Policy,
        limits: Limits,
        second_hashes: &[(&str, &str)],
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Fixture> {
        // The server's own log on standard error: what a failed test's output shows.
        hashguard_server::init_logging(LogFormat::Text);
        let dir = tempfile::tempdir().expect("tempdir");
        let db = database(kind, dir.path(), test).await?;
        let store = Store::open_location(&DatabaseLocation::parse(&db), OpenMode::Create)
            .await
            .expect("store");
        for (name, org, jurisdiction, text) in lists {
            let bank = Bank::new(
                name.parse().expect("name"),
                org,
                jurisdiction.parse().expect("jurisdiction"),
                SignalType::Pdq,
                BankKind::Block,
            )
            .expect("bank");
            store.create_bank(&bank).await.expect("create bank");
            let list = parse_list(text.as_bytes(), SignalType::Pdq, None).expect("list");
            let meta = ImportMeta::new("serve-test", Some("standin.txt"), text.as_bytes());
            store
                .import_next(bank.name(), &list, &meta)
                .await
                .expect("import");
            let entries = store.entries(bank.name()).await.expect("entries");
            for (original, hashed) in second_hashes {
                let demo = |f: &str| {
                    std::fs::read(repo().join("assets/demo").join(f)).expect("demo image")
                };
                let mut hasher = Hasher::new(Options::default());
                let Ok(Hashed::Image { hash, .. }) = hasher.hash_bytes(&demo(original)) else {
                    panic!("{original} is an image");
                };
                let Some((value, _)) = entry_for_original(&entries, &hash.hash, 31) else {
                    continue;
                };
                let second = hasher
                    .second_hash_bytes(&demo(hashed))
                    .expect("second hash");
                store
                    .set_second_hash(bank.name(), &value, &second.to_hex(), "serve-test", 0)
                    .await
                    .expect("second hash");
            }
        }
        store.close().await;
        let params = preset.params(policy);
        let key = dir.path().join("table.key");
        let table = dir.path().join("table");
        publish_epoch(&db, &table, &key, preset, policy).await;
        let config = Config {
            trusted_proxies: Vec::new(),
            listen: "127.0.0.1:0".parse().expect("addr"),
            db: db.clone(),
            data: dir.path().join("data"),
            table,
            key,
            tls: None,
            log_format: LogFormat::Text,
            max_attachment_bytes: 1 << 20,
            upload_slot_lifetime: hashguard_server::config::DEFAULT_UPLOAD_SLOT_LIFETIME,
            intervention: Intervention::default(),
            limits,
            staff_tokens: vec![hashguard_server::state::token_hash(STAFF_TOKEN)],
            review: hashguard_review::ReviewConfig::default(),
            purge_every: hashguard_server::config::DEFAULT_PURGE_EVERY,
        };
        let mut config = config;
        tweak(&mut config);
        let server = Server::bind(config.clone()).await.expect("server starts");
        let addr: SocketAddr = server.local_addr();
        assert!(addr.ip().is_loopback());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Some(Fixture {
            _dir: dir,
            config,
            base: format!("http://{addr}"),
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            params,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// A second server on the same database, data folder and table, as another process
    /// behind the same load balancer would be: it shares nothing with the first but them.
    pub async fn second_server(
        &self,
    ) -> (
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let server = Server::bind(self.config.clone())
            .await
            .expect("second server");
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("second server runs");
        });
        (base, stop, task)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops the server and waits until it has finished its requests.
    pub async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the server stops")
                .expect("the server task ends cleanly");
        }
    }

    /// Stops the server and starts a new one on the same database, data folder and table, as
    /// a restart of the process does (on another port: `base` follows it).
    pub async fn restart(&mut self) {
        self.halt().await;
        let server = Server::bind(self.config.clone())
            .await
            .expect("the server starts again");
        self.base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        }));
    }

    /// Stops the server and removes its folder.
    pub async fn stop(mut self) {
        self.halt().await;
    }
}

pub async fn register(f: &Fixture) -> (String, [u8; 16], String) {
    let r = f
        .http
        .post(f.url("/v1/accounts"))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    let mut account = [0u8; 16];
    hex::decode_to_slice(body["account_id"].as_str().expect("id"), &mut account).expect("hex");
    (
        body["device_id"].as_str().expect("device").to_string(),
        account,
        body["token"].as_str().expect("token").to_string(),
    )
}

/// The default limits with room for many key matches: the threshold tests hold T + 2 items
/// from one account and address, more than the default key-match limits allow (they have their
/// own test).
pub fn wide_match_limits() -> Limits {
    let wide = Bucket {
        burst: 1_000,
        per_hour: 1_000,
    };
    Limits {
        matches_per_account: wide,
        matches_per_source: wide,
        ..Limits::default()
    }
}

/// The second hashes a fixture records by default: the listed demo image's own.
pub const DEFAULT_SECOND_HASHES: &[(&str, &str)] = &[("hills.png", "hills.png")];

pub fn standin_lists() -> Vec<(&'static str, &'static str, &'static str, String)> {
    let read = |f: &str| {
        std::fs::read_to_string(repo().join("assets/standin").join(f)).expect("stand-in list")
    };
    vec![
        ("standin-a", "Stand-in Org A", "GB", read("org-a.txt")),
        ("standin-b", "Stand-in Org B", "US", read("org-b.txt")),
    ]
}

/// Defines each named `async fn name(kind: &str)` as two tests, `sqlite::name` and
/// `postgres::name`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("sqlite").await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("postgres").await;
                }
            )*
        }
    };
}

//! A whole deployment on this machine in one call: banks loaded from lists, the private table
//! published from their consensus view, and the server listening on loopback. `hashguard demo`
//! runs the product's story on it, and the client SDK's and the messenger's tests run against
//! it over real HTTP, so what they exercise is the service as deployed, not a mock.
//!
//! Every epoch is co-signed by two sandbox organisations (GB and DE), signed by the service,
//! appended to the manifest log and witnessed by two sandbox witnesses, with keys generated
//! for this sandbox alone ([`TrustSandbox`]); its clients pin [`Sandbox::trust_anchors`] and
//! accept a table only through the full acceptance rules (R/E10). The witnesses cosign in
//! process here; a real deployment runs `hashguard witness` on other machines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType};
use hashguard_protocol::acceptance::TrustAnchors;
use hashguard_protocol::params::{Params, PinnedParams, Policy, Preset};
use hashguard_protocol::signed::SignedManifest;
use hashguard_protocol::trust_sandbox::TrustSandbox;
use hashguard_service::keyset::{load_key_set, ConsensusSpec};
use hashguard_service::manifest_log::ManifestLog;
use hashguard_service::publish::{opening_key, os_rng, publish, BuildOptions, TableDir};
use hashguard_store::{DatabaseLocation, ImportMeta, OpenMode, Store};

use crate::config::{Config, Intervention, Limits, LogFormat};
use crate::state::token_hash;
use crate::{ServeError, Server};

/// One organisation's list, as it would arrive from that organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSource {
    /// The bank's name (lower-case letters, digits and dashes).
    pub bank: String,
    /// The organisation that supplies it.
    pub organisation: String,
    /// The organisation's jurisdiction (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// The list in hashguard's list format.
    pub text: String,
}

/// The two bundled stand-in lists (`assets/standin`): benign, made for the demo and the
/// tests. Each lists the PDQ of `assets/demo/hills.png` among random values, so the consensus
/// view of the two (two organisations, two jurisdictions) lists exactly that image.
pub fn standin_lists() -> Vec<ListSource> {
    let list = |bank: &str, organisation: &str, jurisdiction: &str, text: &str| ListSource {
        bank: bank.to_string(),
        organisation: organisation.to_string(),
        jurisdiction: jurisdiction.to_string(),
        text: text.to_string(),
    };
    vec![
        list(
            "standin-a",
            "Stand-in Org A",
            "GB",
            include_str!("../../../assets/standin/org-a.txt"),
        ),
        list(
            "standin-b",
            "Stand-in Org B",
            "US",
            include_str!("../../../assets/standin/org-b.txt"),
        ),
    ]
}

/// The second hashes of the stand-in lists' picture (`assets/standin/second-hashes.txt`): one
/// `<PDQ value> <second hash>` per line, the PDQ entry of `assets/demo/hills.png` and the
/// second hash of that original, so that the automatic check runs both of its checks in the
/// demo. Server-side only, as a deployment's would be.
pub fn standin_second_hashes() -> Vec<(String, String)> {
    include_str!("../../../assets/standin/second-hashes.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (value, second) = l.split_once(' ')?;
            Some((value.trim().to_string(), second.trim().to_string()))
        })
        .collect()
}

/// What to deploy.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Holds the SQLite database (unless `db` names another), the table, its key and the
    /// data folder. The caller owns it (a temporary directory, usually).
    pub dir: PathBuf,
    /// The database; `None` is a SQLite file in `dir`.
    pub db: Option<String>,
    /// The organisations' lists.
    pub lists: Vec<ListSource>,
    /// Second hashes on file, as (PDQ value of the original, second hash): recorded in every
    /// bank for its entry equal to that value, else its nearest within the bank's threshold.
    pub second_hashes: Vec<(String, String)>,
    /// Table parameters.
    pub preset: Preset,
    /// What the server does with a match.
    pub policy: Policy,
    /// Rate limits.
    pub limits: Limits,
    /// The intervention's words and help resources.
    pub intervention: Intervention,
    /// Staff tokens for the review API (kept only as hashes).
    pub staff_tokens: Vec<String>,
    /// The largest attachment accepted.
    pub max_attachment_bytes: u64,
    /// The review UI's settings.
    pub review: hashguard_review::ReviewConfig,
    /// How often the server deletes review material whose retention ended.
    pub purge_every: std::time::Duration,
}

impl SandboxOptions {
    /// The bundled stand-in lists under the deployed parameters and `intervene`, in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> SandboxOptions {
        SandboxOptions {
            dir: dir.into(),
            db: None,
            lists: standin_lists(),
            second_hashes: standin_second_hashes(),
            preset: Preset::V1,
            policy: Policy::Intervene,
            limits: Limits::default(),
            intervention: Intervention::default(),
            staff_tokens: Vec::new(),
            max_attachment_bytes: crate::config::DEFAULT_MAX_ATTACHMENT_BYTES,
            review: hashguard_review::ReviewConfig::default(),
            purge_every: crate::config::DEFAULT_PURGE_EVERY,
        }
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A list or bank is malformed.
    #[error("list of bank {bank}: {message}")]
    List {
        /// The bank.
        bank: String,
        /// What is wrong.
        message: String,
    },
    /// The database refused.
    #[error("database: {0}")]
    Store(#[from] hashguard_store::StoreError),
    /// Publishing the table failed.
    #[error("publishing the table: {0}")]
    Publish(#[from] hashguard_service::ServiceError),
    /// The sandbox's folder cannot be created.
    #[error("cannot create {}: {source}", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Signing, co-signing or logging the manifest failed.
    #[error("publishing to the manifest log: {0}")]
    Transparency(String),
    /// The server did not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A running deployment: the server on 127.0.0.1 with a free port.
pub struct Sandbox {
    config: Config,
    params: Params,
    preset: Preset,
    policy: Policy,
    trust: TrustSandbox,
    base_url: String,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Loads the lists, publishes epoch 1 and starts the server.
    pub async fn start(options: SandboxOptions) -> Result<Sandbox, SandboxError> {
        std::fs::create_dir_all(&options.dir).map_err(|e| SandboxError::Folder {
            dir: options.dir.clone(),
            source: e,
        })?;
        let db = options
            .db
            .clone()
            .unwrap_or_else(|| options.dir.join("hashguard.db").display().to_string());
        load_lists(&db, &options.lists, &options.second_hashes).await?;
        let table = options.dir.join("table");
        let key = options.dir.join("table.key");
        publish_next_epoch(&db, &table, &key, options.preset, options.policy).await?;
        let deployment_id = *TableDir::new(&table)
            .read_manifest()?
            .ok_or_else(|| SandboxError::Transparency("no manifest was built".into()))?
            .deployment_id();
        let params = options.preset.params(options.policy);
        let mut trust = TrustSandbox::generate(
            &mut os_rng()?,
            deployment_id,
            PinnedParams::exactly(params.clone()),
        );
        log_epoch(&table, &mut trust)?;
        let config = Config {
            trusted_proxies: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            data: options.dir.join("data"),
            table,
            key,
            tls: None,
            log_format: LogFormat::Text,
            max_attachment_bytes: options.max_attachment_bytes,
            upload_slot_lifetime: crate::config::DEFAULT_UPLOAD_SLOT_LIFETIME,
            intervention: options.intervention.clone(),
            limits: options.limits,
            staff_tokens: options.staff_tokens.iter().map(|t| token_hash(t)).collect(),
            review: options.review.clone(),
            purge_every: options.purge_every,
        };
        let mut sandbox = Sandbox {
            config,
            params,
            preset: options.preset,
            policy: options.policy,
            trust,
            base_url: String::new(),
            running: None,
        };
        sandbox.run().await?;
        Ok(sandbox)
    }

    /// Binds and runs the server.
    async fn run(&mut self) -> Result<(), ServeError> {
        let server = Server::bind(self.config.clone()).await?;
        // A restart listens where the first server did, so clients keep their base URL.
        self.config.listen = server.local_addr();
        self.base_url = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        self.running = Some(Running { stop, task });
        Ok(())
    }

    /// Where the service answers, e.g. `http://127.0.0.1:40123`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The published table's parameters (what a client pins).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// What this sandbox's clients pin: its service, organisation, log and witness keys and
    /// its parameters.
    pub fn trust_anchors(&self) -> TrustAnchors {
        self.trust.anchors()
    }

    /// Builds the next epoch from the banks as they are now, has it co-signed, signed, logged
    /// and witnessed; the server serves it after [`Sandbox::restart`].
    pub async fn publish_next_epoch(&mut self) -> Result<(), SandboxError> {
        publish_next_epoch(
            &self.config.db,
            &self.config.table,
            &self.config.key,
            self.preset,
            self.policy,
        )
        .await?;
        log_epoch(&self.config.table, &mut self.trust)
    }

    /// The sandbox's throwaway keys and in-memory log (for tests that play a compromised
    /// service, e.g. one showing a client another view of the log).
    pub fn trust_sandbox_mut(&mut self) -> &mut TrustSandbox {
        &mut self.trust
    }

    /// The server's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database the server uses.
    pub fn db(&self) -> &str {
        &self.config.db
    }

    /// The folder the server keeps blobs in.
    pub fn data_dir(&self) -> &Path {
        &self.config.data
    }

    /// Stops the server gracefully (in-flight requests finish).
    pub async fn stop(&mut self) -> Result<(), ServeError> {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            match running.task.await {
                Ok(result) => result?,
                Err(e) => tracing::error!(error = %e, "the sandbox server task failed"),
            }
        }
        Ok(())
    }

    /// Stops the server and starts a new one on the same address, database, data folder and
    /// table (which picks up a newly published epoch).
    pub async fn restart(&mut self) -> Result<(), ServeError> {
        self.stop().await?;
        self.run().await
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
        }
    }
}

/// Co-signs (both organisations), signs and appends the table's current manifest to its log,
/// and has both witnesses cosign the new checkpoint now.
fn log_epoch(table: &Path, trust: &mut TrustSandbox) -> Result<(), SandboxError> {
    let dir = TableDir::new(table);
    let fail = |e: &dyn std::fmt::Display| SandboxError::Transparency(e.to_string());
    let manifest = dir
        .read_manifest()?
        .ok_or_else(|| fail(&"no manifest was built"))?;
    let cosignatures = trust.cosign(&[0, 1], &manifest).map_err(|e| fail(&e))?;
    let signed =
        SignedManifest::sign(manifest, cosignatures, trust.service_key()).map_err(|e| fail(&e))?;
    let log = ManifestLog::of_table(&dir);
    let mut checkpoint = log.append(&signed, trust.log_signer())?;
    let now = hashguard_service::publish::now();
    for (_, witness) in trust.witnesses() {
        checkpoint
            .add_cosignature(witness, now)
            .map_err(|e| fail(&e))?;
    }
    Ok(log.store_checkpoint(checkpoint.signed())?)
}

/// Creates one block bank per list in `db`, imports the list into it, and records the second
/// hashes of the originals it lists (equal or nearest entry within the bank's threshold).
async fn load_lists(
    db: &str,
    lists: &[ListSource],
    second_hashes: &[(String, String)],
) -> Result<(), SandboxError> {
    let store = Store::open_location(&DatabaseLocation::parse(db), OpenMode::Create).await?;
    let result = async {
        for source in lists {
            let bad = |message: String| SandboxError::List {
                bank: source.bank.clone(),
                message,
            };
            let bank = Bank::new(
                source.bank.parse().map_err(|e| bad(format!("{e}")))?,
                &source.organisation,
                source
                    .jurisdiction
                    .parse()
                    .map_err(|e| bad(format!("{e}")))?,
                SignalType::Pdq,
                BankKind::Block,
            )
            .map_err(|e| bad(e.to_string()))?;
            store.create_bank(&bank).await?;
            let list = parse_list(source.text.as_bytes(), SignalType::Pdq, None)
                .map_err(|e| bad(e.to_string()))?;
            let meta = ImportMeta::new("sandbox", Some("list.txt"), source.text.as_bytes());
            store.import_next(bank.name(), &list, &meta).await?;
            // Each original's entry: the value itself, or the list's nearest (Org B lists the
            // picture with two bits changed, as another organisation's hasher might).
            let entries = store.entries(bank.name()).await?;
            for (value, second) in second_hashes {
                let original: hashguard_pdq::Hash256 = value
                    .parse()
                    .map_err(|e| bad(format!("second hash of {value}: {e}")))?;
                let second = hashguard_hashing::SecondHash::from_hex(second)
                    .map_err(|e| bad(format!("second hash of {value}: {e}")))?;
                let Some((entry, _)) = hashguard_service::banks::entry_for_original(
                    &entries,
                    &original,
                    bank.threshold(),
                ) else {
                    continue;
                };
                store
                    .set_second_hash(bank.name(), &entry, &second.to_hex(), "sandbox", 0)
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Publishes the next epoch of the table in `table` from the consensus view of `db`'s banks
/// (at least two organisations in two jurisdictions), with the opening key in `key` (created
/// when missing).
pub async fn publish_next_epoch(
    db: &str,
    table: &Path,
    key: &Path,
    preset: Preset,
    policy: Policy,
) -> Result<(), SandboxError> {
    let store = Store::open_location(&DatabaseLocation::parse(db), OpenMode::Read).await?;
    let params = preset.params(policy);
    let consensus = ConsensusSpec {
        banks: Vec::new(),
        min_organisations: 2,
        min_jurisdictions: 2,
        distance: 10,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key_set = load_key_set(&store, &consensus, &params, threads).await;
    store.close().await;
    let key_set = key_set?;
    let mut rng = os_rng()?;
    let (secret, _) = opening_key(key, &mut rng)?;
    publish(
        &TableDir::new(table),
        &secret,
        &key_set,
        &consensus,
        &BuildOptions {
            preset,
            policy,
            shards: None,
            threads: 1,
            valid_days: 30,
            beacon: None,
        },
        &mut rng,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed stand-in second hash is the one this library computes for the listed demo
    /// picture, and its PDQ value is that picture's entry on both stand-in lists: a changed
    /// picture, hash or list cannot leave the demo checking against a stale value.
    #[test]
    fn the_standin_second_hash_is_the_listed_pictures() {
        let picture = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/demo/hills.png"),
        )
        .expect("hills.png");
        let mut hasher = hashguard_hashing::Hasher::new(hashguard_hashing::Options::default());
        let Ok(hashguard_hashing::Hashed::Image { hash, .. }) = hasher.hash_bytes(&picture) else {
            panic!("hills.png is an image");
        };
        let second = hasher.second_hash_bytes(&picture).expect("second hash");
        let recorded = standin_second_hashes();
        assert_eq!(
            recorded,
            vec![(hash.hash.to_string(), second.to_hex())],
            "assets/standin/second-hashes.txt"
        );
        for list in standin_lists() {
            let parsed = hashguard_hashlist::parse_list(
                list.text.as_bytes(),
                hashguard_hashlist::SignalType::Pdq,
                None,
            )
            .expect("list");
            let listed = parsed.items().iter().any(|item| {
                matches!(item.value(), hashguard_hashlist::Signal::Pdq(h) if h.distance(&hash.hash) <= 2)
            });
            assert!(listed, "{} lists the picture", list.bank);
        }
    }
}

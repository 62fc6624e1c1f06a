//! The manifest log's commands (G5): `hashguard keys generate`, `hashguard table cosign`,
//! `hashguard table publish`, `hashguard log witness|verify|audit`. Flags, HTTP and printing
//! only: the work is `hashguard_service::transparency`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hashguard_protocol::acceptance::{AcceptedState, TrustAnchors};
use hashguard_protocol::params::{PinnedParams, Policy, Preset};
use hashguard_protocol::signed::ServiceSigningKey;
use hashguard_service::publish::{now, TableDir};
use hashguard_service::transparency::{
    self as tp, DirSource, KeyKind, LogSource, WitnessReply, WitnessTransport,
};

use crate::db::DbArgs;

/// Largest file fetched from a served log (a manifest is at most 4 MiB).
const MAX_FETCH: usize = 8 << 20;
/// How long one HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `hashguard keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a key: writes the secret to a new file (mode 0600; never printed, never
    /// overwritten) and prints the public key as the trust file pins it.
    Generate {
        /// What the key is for.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Its name: for a log key the log's origin (e.g. `example.org/hashguard/manifests`),
        /// for a witness the name in its cosignatures, otherwise a label.
        #[arg(long)]
        name: String,
        /// The secret key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// The service's manifest-signing key (Ed25519).
    Service,
    /// The manifest log's checkpoint key (a signed-note key named after the log's origin).
    Log,
    /// An organisation's co-signing key (Ed25519).
    Organisation,
    /// A witness's cosigning key (cosignature/v1).
    Witness,
}

impl From<KindArg> for KeyKind {
    fn from(k: KindArg) -> KeyKind {
        match k {
            KindArg::Service => KeyKind::Service,
            KindArg::Log => KeyKind::Log,
            KindArg::Organisation => KeyKind::Organisation,
            KindArg::Witness => KeyKind::Witness,
        }
    }
}

/// Arguments of `hashguard table cosign`.
#[derive(Debug, Args)]
pub struct CosignArgs {
    /// The table directory (its manifest.bin is co-signed).
    #[arg(long, value_name = "DIR")]
    table: PathBuf,
    /// This organisation's id, as clients pin it.
    #[arg(long, value_name = "N")]
    org_id: u16,
    /// This organisation's co-signing key (`hashguard keys generate --kind organisation`).
    #[arg(long, value_name = "FILE")]
    org_key: PathBuf,
    /// This organisation's co-signer state (created at the first co-signature; keep it: it is
    /// what stops two signatures for one epoch).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// The banks holding every participating organisation's list, to rebuild the key set.
    #[command(flatten)]
    db: DbArgs,
    /// Threads for the key separation and the shard checks (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Arguments of `hashguard table publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The table directory: manifest.bin and the co-signature files in `cosignatures/`; the
    /// log is kept in its `log/` folder.
    #[arg(long, value_name = "DIR")]
    table: PathBuf,
    /// The service's manifest-signing key.
    #[arg(long, value_name = "FILE")]
    service_key: PathBuf,
    /// The log's checkpoint key.
    #[arg(long, value_name = "FILE")]
    log_key: PathBuf,
    /// A witness to ask for a cosignature (its URL prefix; `add-checkpoint` is appended).
    /// Default: the witnesses with a URL in the trust file.
    #[arg(long = "witness", value_name = "URL")]
    witnesses: Vec<String>,
    /// The clients' trust file: the co-signatures are checked before appending, witness
    /// cosignatures are verified, and the published manifest is accepted as a client would.
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
}

/// Arguments of `hashguard log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Refresh the witnesses' cosignatures of the current checkpoint. Clients refuse a
    /// checkpoint whose witness quorum is older than 72 hours, so run this at least daily
    /// (e.g. from cron), also when no new epoch is published.
    Witness(WitnessArgs),
    /// Check the log as a client does: the checkpoint under the trust file's policy, then the
    /// manifest in force through every acceptance rule (R/E10).
    Verify(VerifyArgs),
    /// Audit the whole log: download every tile, entry and manifest, recompute every root, and
    /// check one manifest per epoch, the chain, every signature and co-signature (and, with
    /// --tables, the table roots from the shard files). Exits 1 naming the first problem.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
struct WitnessArgs {
    /// The table directory whose `log/` holds the checkpoint.
    #[arg(long, value_name = "DIR")]
    table: PathBuf,
    /// The log's checkpoint key.
    #[arg(long, value_name = "FILE")]
    log_key: PathBuf,
    /// A witness's URL prefix (repeatable). Default: the witnesses with a URL in the trust file.
    #[arg(long = "witness", value_name = "URL")]
    witnesses: Vec<String>,
    /// The clients' trust file: cosignatures are verified and the quorum is checked.
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ClientOpts {
    /// The log: a folder (a table's `log/` or the table folder) or the URL it is served at
    /// (e.g. `https://example.org/v1/log/`).
    #[arg(long, value_name = "DIR_OR_URL")]
    log: String,
    /// The clients' trust file (deployment, service key, organisations, log and witness policy).
    #[arg(long, value_name = "FILE")]
    trust: PathBuf,
    /// The parameter set the client pins.
    #[arg(long, value_enum, default_value_t = ParamsArg::V1)]
    params: ParamsArg,
    /// The matching policy the client pins.
    #[arg(long, value_enum, default_value_t = PolicyArg::Intervene)]
    policy: PolicyArg,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// What the last run accepted (created if missing, updated after each acceptance): the log
    /// must then extend the checkpoint accepted before (a fork is printed as evidence) and the
    /// epoch must not go back, as for a client that keeps its state.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AuditArgs {
    #[command(flatten)]
    client: ClientOpts,
    /// The published table folder: its manifest must be logged and its shard files must give
    /// the logged roots.
    #[arg(long, value_name = "DIR")]
    tables: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ParamsArg {
    /// k = 48, f = 2, w = 12.
    V1,
    /// k = 48, f = 1, w = 12.
    Lite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    /// The server learns each match bit and holds matching uploads.
    Intervene,
    /// No per-upload bit; synthetic vouchers.
    Silent,
}

impl ClientOpts {
    fn pinned(&self) -> PinnedParams {
        let preset = match self.params {
            ParamsArg::V1 => Preset::V1,
            ParamsArg::Lite => Preset::Lite,
        };
        let policy = match self.policy {
            PolicyArg::Intervene => Policy::Intervene,
            PolicyArg::Silent => Policy::Silent,
        };
        PinnedParams::exactly(preset.params(policy))
    }
}

/// Runs `hashguard keys ...`.
pub fn run_keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    let KeysCommand::Generate { kind, name, out } = args.command;
    let key = tp::generate_key(kind.into(), &name, &out)?;
    outln!("{}", key.public)?;
    eprintln!(
        "wrote the secret {} key to {} (mode 0600; keep it secret); pin it in the trust file as:\n  {}",
        KeyKind::from(kind).name(),
        out.display(),
        key.trust_line
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs `hashguard log ...`.
pub fn run_log(args: LogArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LogCommand::Witness(a) => refresh(a),
        LogCommand::Verify(a) => verify(a),
        LogCommand::Audit(a) => audit(a),
    }
}

/// `hashguard table cosign`: the organisation's checks, then its co-signature.
pub fn cosign(a: CosignArgs) -> anyhow::Result<ExitCode> {
    let dir = TableDir::new(&a.table);
    let key = tp::read_ed25519_key(&a.org_key, KeyKind::Organisation)?;
    let manifest = dir
        .read_manifest()?
        .with_context(|| format!("no manifest.bin in {}", a.table.display()))?;
    let record = dir.read_record()?;
    let key_set = crate::table_cmd::load_key_set(
        &a.db,
        &record.consensus(),
        &record.protocol_params(),
        crate::hashing::thread_count(a.threads)?,
    )?;
    let shards = manifest
        .table(hashguard_protocol::keys::TableKind::Pdq)
        .map_or(1, |t| t.shards().len());
    let pool = crate::hashing::worker_pool(a.threads, shards)?;
    let checks = tp::organisation_checks(&dir, &record, &key_set, &pool, now())?;
    let mut failed = Vec::new();
    for (name, result) in &checks {
        match result {
            Ok(detail) if detail.is_empty() => outln!("{name}: ok")?,
            Ok(detail) => outln!("{name}: ok ({detail})")?,
            Err(reason) => {
                outln!("{name}: FAILED: {reason}")?;
                failed.push(name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "hashguard: refusing to co-sign epoch {}: organisation {} found problems ({})",
            manifest.epoch(),
            a.org_id,
            failed.join(", ")
        );
        return Ok(ExitCode::from(1));
    }
    let done = tp::cosign_table(&dir, a.org_id, &key, &a.state)?;
    if done.first {
        eprintln!(
            "note: {} did not exist: this is organisation {}'s first co-signature",
            a.state.display(),
            a.org_id
        );
    }
    outln!(
        "co-signed epoch {} (manifest {}) as organisation {}: {}",
        done.epoch,
        hex(&done.manifest_hash),
        a.org_id,
        done.file.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The trust file for the parameters of `dir`'s manifest (the service's own tools check
/// signatures, co-signers and the log against it; the parameters are the table's).
fn trust_for_table(path: &Path, dir: &TableDir) -> anyhow::Result<TrustAnchors> {
    let manifest = dir
        .read_manifest()?
        .with_context(|| format!("no manifest.bin in {}", dir.path().display()))?;
    Ok(tp::read_trust_file(
        path,
        PinnedParams::exactly(manifest.params().clone()),
    )?)
}

/// The witnesses to ask: those given, else the trust file's with a URL.
fn witness_urls(given: &[String], trust: Option<&TrustAnchors>) -> Vec<String> {
    if !given.is_empty() {
        return given.to_vec();
    }
    trust
        .map(|t| {
            t.log_policy
                .witnesses()
                .iter()
                .filter_map(|w| w.url.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Prints each witness's result; the names of those that cosigned.
fn report_witnesses(results: &[tp::WitnessResult]) -> anyhow::Result<(Vec<String>, bool)> {
    let mut names = Vec::new();
    let mut all_ok = true;
    for r in results {
        match &r.outcome {
            Ok((name, ts)) => {
                outln!("witness {}: cosigned as {name} (time {ts})", r.url)?;
                names.push(name.clone());
            }
            Err(e) => {
                all_ok = false;
                outln!("witness {}: FAILED: {e}", r.url)?;
            }
        }
    }
    Ok((names, all_ok))
}

/// `hashguard table publish`.
pub fn publish(a: PublishArgs) -> anyhow::Result<ExitCode> {
    let dir = TableDir::new(&a.table);
    let service = ServiceSigningKey::new(tp::read_ed25519_key(&a.service_key, KeyKind::Service)?);
    let log = tp::read_log_key(&a.log_key)?;
    let trust = a
        .trust
        .as_deref()
        .map(|p| trust_for_table(p, &dir))
        .transpose()?;
    let logged = tp::publish_manifest(&dir, &service, &log, trust.as_ref())?;
    for note in &logged.notes {
        eprintln!("note: {note}");
    }
    let epoch = logged.signed.manifest().epoch();
    if logged.appended {
        outln!(
            "logged epoch {epoch} as entry {} (co-signed by organisations {})",
            logged.index,
            org_ids(&logged.signed)
        )?;
    } else {
        outln!(
            "epoch {epoch} is already the log's entry {}: not appended again",
            logged.index
        )?;
    }
    let urls = witness_urls(&a.witnesses, trust.as_ref());
    let (names, witnesses_ok) = if urls.is_empty() {
        eprintln!("note: no witness asked (give --witness URL): clients require the trust file's witness quorum");
        (Vec::new(), true)
    } else {
        let mut transport = HttpWitness::new()?;
        let (_, results) = tp::collect_cosignatures(
            &dir,
            &log,
            &urls,
            logged.previous_size,
            trust.as_ref().map(|t| &t.log_policy),
            &mut transport,
        )?;
        report_witnesses(&results)?
    };
    let mut source = DirSource(dir.path().join("log"));
    let checkpoint = source
        .fetch("checkpoint")
        .map_err(|e| anyhow::anyhow!("cannot read the stored checkpoint: {e}"))?;
    let size = logged.index + 1;
    outln!(
        "{}",
        tp::settings_line(logged.signed.manifest(), logged.index, size, &names)
    )?;
    if let Some(t) = logged
        .signed
        .manifest()
        .table(hashguard_protocol::keys::TableKind::Pdq)
    {
        outln!("table root {}", hex(&t.table_root()))?;
    }
    outln!("checkpoint:")?;
    for line in String::from_utf8_lossy(&checkpoint).lines() {
        outln!("  {line}")?;
    }
    let mut code = if witnesses_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    if let (Some(trust), Some(path)) = (&trust, &a.trust) {
        match tp::verify_as_client(&mut source, trust, None, now()) {
            Ok(view) => outln!(
                "verified as a client would ({}): epoch {} accepted",
                path.display(),
                view.accepted.signed.manifest().epoch()
            )?,
            Err(e) => {
                outln!("NOT accepted by a client with {}: {e}", path.display())?;
                code = ExitCode::from(1);
            }
        }
    }
    Ok(code)
}

fn org_ids(signed: &hashguard_protocol::signed::SignedManifest) -> String {
    signed
        .entry()
        .cosignatures()
        .iter()
        .map(|c| c.org_id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `hashguard log witness`.
fn refresh(a: WitnessArgs) -> anyhow::Result<ExitCode> {
    let dir = TableDir::new(&a.table);
    let log = tp::read_log_key(&a.log_key)?;
    let trust = a
        .trust
        .as_deref()
        .map(|p| trust_for_table(p, &dir))
        .transpose()?;
    let urls = witness_urls(&a.witnesses, trust.as_ref());
    anyhow::ensure!(
        !urls.is_empty(),
        "no witness to ask: give --witness URL (or a --trust file whose witnesses have URLs)"
    );
    let mut source = DirSource(dir.path().join("log"));
    let size = source
        .fetch("checkpoint")
        .ok()
        .and_then(|b| hashguard_transparency_size(&b))
        .with_context(|| format!("{} holds no log checkpoint", dir.path().display()))?;
    let mut transport = HttpWitness::new()?;
    let (_, results) = tp::collect_cosignatures(
        &dir,
        &log,
        &urls,
        size,
        trust.as_ref().map(|t| &t.log_policy),
        &mut transport,
    )?;
    let (names, ok) = report_witnesses(&results)?;
    outln!(
        "checkpoint of {size} entries now cosigned by {}",
        if names.is_empty() {
            "no witness".to_string()
        } else {
            names.join(", ")
        }
    )?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The tree size a checkpoint note states (its second line), unverified: only used as the
/// old size a witness is told, which the witness checks itself.
fn hashguard_transparency_size(note: &[u8]) -> Option<u64> {
    std::str::from_utf8(note).ok()?.lines().nth(1)?.parse().ok()
}

/// The log named by `--log`: a URL, a log folder, or a table folder holding `log/`.
fn open_source(log: &str) -> anyhow::Result<Box<dyn LogSource>> {
    if log.starts_with("http://") || log.starts_with("https://") {
        return Ok(Box::new(HttpSource::new(log)?));
    }
    let path = PathBuf::from(log);
    if !path.join("checkpoint").exists() && path.join("log").join("checkpoint").exists() {
        return Ok(Box::new(DirSource(path.join("log"))));
    }
    Ok(Box::new(DirSource(path)))
}

/// `hashguard log verify`.
fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let anchors = tp::read_trust_file(&a.client.trust, a.client.pinned())?;
    let mut source = open_source(&a.client.log)?;
    let previous = match &a.state {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => Some(
                AcceptedState::from_bytes(&bytes, &anchors)
                    .with_context(|| format!("{} is not an accepted state", path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        },
        None => None,
    };
    match tp::verify_as_client(source.as_mut(), &anchors, previous.as_ref(), now()) {
        Ok(view) => {
            if let Some(path) = &a.state {
                tp::write_durably(path, &view.accepted.state.to_bytes())?;
                match &previous {
                    Some(p) => outln!(
                        "state: the log of {} entries extends the one of {} accepted before (epoch {} then, {} now)",
                        view.checkpoint.checkpoint().size(),
                        p.checkpoint().checkpoint().size(),
                        p.epoch(),
                        view.accepted.state.epoch()
                    )?,
                    None => outln!("state: first acceptance, kept in {}", path.display())?,
                }
            }
            let cp = view.checkpoint.checkpoint();
            let witnesses: Vec<String> = view
                .checkpoint
                .cosignatures()
                .iter()
                .map(|c| c.witness.clone())
                .collect();
            let manifest = view.accepted.signed.manifest();
            outln!(
                "{}",
                tp::settings_line(manifest, view.index, cp.size(), &witnesses)
            )?;
            if let Some(t) = manifest.table(hashguard_protocol::keys::TableKind::Pdq) {
                outln!("table root {}", hex(&t.table_root()))?;
            }
            let cosigners: Vec<String> = view
                .accepted
                .signed
                .verified_cosigners(&anchors.organisations)
                .unwrap_or_default()
                .iter()
                .map(|o| format!("{} ({})", o.name, String::from_utf8_lossy(&o.jurisdiction)))
                .collect();
            outln!(
                "accepted: service signature, co-signed by {}, in the log of {} entries (root {}) cosigned by {}, valid until {}",
                cosigners.join(", "),
                cp.size(),
                cp.root_hash().to_hex(),
                if witnesses.is_empty() { "no witness (quorum none)".to_string() } else { witnesses.join(", ") },
                manifest.not_after()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            outln!("NOT accepted: {e}")?;
            Ok(ExitCode::from(1))
        }
    }
}

/// `hashguard log audit`.
fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    let anchors = tp::read_trust_file(&a.client.trust, a.client.pinned())?;
    let mut source = open_source(&a.client.log)?;
    let tables = a.tables.as_ref().map(TableDir::new);
    match tp::audit_log(source.as_mut(), &anchors, tables.as_ref(), now()) {
        Ok(report) => {
            for line in &report.lines {
                outln!("{line}")?;
            }
            outln!("audit: ok")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            outln!("audit FAILED: {problem}")?;
            Ok(ExitCode::from(1))
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .context("cannot start the HTTP client")
}

/// A log served over HTTP (the tiles layout under a URL prefix).
struct HttpSource {
    base: String,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl HttpSource {
    fn new(base: &str) -> anyhow::Result<Self> {
        let base = if base.ends_with('/') {
            base.to_string()
        } else {
            format!("{base}/")
        };
        Ok(HttpSource {
            base,
            client: http_client()?,
            rt: crate::db::runtime()?,
        })
    }
}

impl LogSource for HttpSource {
    fn fetch(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(async {
            let response = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("GET {url}: {status}"));
            }
            read_limited(response)
                .await
                .map_err(|e| format!("GET {url}: {e}"))
        })
    }
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_FETCH {
            return Err(format!("more than {MAX_FETCH} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Witnesses reached over HTTP: `POST <prefix>/add-checkpoint`.
struct HttpWitness {
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl HttpWitness {
    fn new() -> anyhow::Result<Self> {
        Ok(HttpWitness {
            client: http_client()?,
            rt: crate::db::runtime()?,
        })
    }
}

impl WitnessTransport for HttpWitness {
    fn add_checkpoint(&mut self, url: &str, body: &[u8]) -> Result<WitnessReply, String> {
        let endpoint = if url.ends_with("/add-checkpoint") {
            url.to_string()
        } else {
            format!("{}/add-checkpoint", url.trim_end_matches('/'))
        };
        self.rt.block_on(async {
            let response = self
                .client
                .post(&endpoint)
                .body(body.to_vec())
                .send()
                .await
                .map_err(|e| format!("POST {endpoint}: {e}"))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = read_limited(response).await?;
            Ok(WitnessReply {
                status,
                content_type,
                body,
            })
        })
    }
}

//! `hashguard table`: build the private-matching table (protocol.md 3.5) from the consensus view
//! of the database's PDQ banks, and verify a built table.
//!
//! A table directory holds only public files: `manifest.bin` (the canonical unsigned manifest),
//! `manifest.txt` (its summary), `shard-NNNN.bin` (one blinded OKVS shard each) and `build.json`
//! (which banks and consensus parameters it was built from, so that an organisation holding the
//! lists can recompute the key set and check the proofs). The opening key α is written only to
//! the `--key` file, never into the directory; the key set K is never written at all.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hashguard_hashlist::{consensus, BankEntries, BankKind, ConsensusParams, SignalType};
use hashguard_protocol::keys::{pdq_key, prune_separated, KeyBytes, TableKind};
use hashguard_protocol::manifest::{Manifest, TableDescriptor};
use hashguard_protocol::params::{Params, Policy};
use hashguard_protocol::table::{
    build_table_after, key_set_digest, verify_shard_for_org, ClientTable, EpochInput, OpeningKey,
    PreviousShard, PublicKey, TableShard, TableSpec,
};
use rand_chacha::rand_core::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::db::{runtime, Access, DbArgs};

/// Keys per shard the default shard count aims at (the size the protocol benchmarks use).
const KEYS_PER_SHARD: usize = 16_384;

/// The build record format this version writes.
const BUILD_RECORD_FORMAT: u32 = 1;

const SECONDS_PER_DAY: u64 = 86_400;

/// The longest validity window `--valid-days` accepts: clients refresh tables far more often,
/// and an expiry years away would keep a withdrawn list usable.
const MAX_VALID_DAYS: u64 = 3_650;

/// Arguments of `hashguard table`.
#[derive(Debug, Args)]
pub struct TableArgs {
    #[command(subcommand)]
    command: TableCommand,
}

#[derive(Debug, Subcommand)]
enum TableCommand {
    /// Build the PDQ table of the next epoch from the consensus view of the database's banks.
    Build(BuildArgs),
    /// Check a table directory: shard roots, layouts and points against the manifest, and
    /// (with the database the table was built from) every shard's DLEQ proof.
    Verify(VerifyArgs),
}

/// The protocol's matching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum PolicyArg {
    /// The server learns each match bit and holds matching uploads (the default).
    Intervene,
    /// No per-upload bit; synthetic vouchers (Apple's 2021 design).
    Silent,
}

/// The parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ParamsArg {
    /// k = 48, f = 2, w = 12: P = 79 probes per image.
    V1,
    /// k = 48, f = 1, w = 12: P = 13 probes per image.
    Lite,
}

#[derive(Debug, Args)]
pub(crate) struct ConsensusOpts {
    /// Only these PDQ banks (default: every enabled PDQ block bank).
    #[arg(long = "bank", value_name = "NAME")]
    pub(crate) banks: Vec<String>,
    /// N: minimum number of supporting organisations.
    #[arg(long, default_value_t = 2)]
    pub(crate) min_organisations: usize,
    /// M: minimum number of supporting jurisdictions.
    #[arg(long, default_value_t = 2)]
    pub(crate) min_jurisdictions: usize,
    /// d: distance within which two organisations support the same item.
    #[arg(long, default_value_t = 10)]
    pub(crate) distance: u32,
}

#[derive(Debug, Args)]
struct BuildArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    consensus: ConsensusOpts,
    /// Output directory (public files only). If it holds a previous epoch's table of the same
    /// deployment, the new manifest continues its chain.
    #[arg(long)]
    out: PathBuf,
    /// The opening key file (secret; created, mode 0600, if it does not exist).
    #[arg(long)]
    key: PathBuf,
    /// Matching policy.
    #[arg(long, value_enum, default_value_t = PolicyArg::Intervene)]
    policy: PolicyArg,
    /// Parameter set.
    #[arg(long, value_enum, default_value_t = ParamsArg::V1)]
    params: ParamsArg,
    /// Number of shards (default: the previous epoch's, or one per 16,384 keys).
    #[arg(long)]
    shards: Option<u16>,
    /// Shards built at once (default: one per core). The table does not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Days the manifest is valid for (1 to 3650).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_VALID_DAYS))]
    valid_days: u64,
    /// A public beacon value fixed after the list was frozen (64 hex digits); default: random.
    #[arg(long)]
    beacon: Option<String>,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The table directory.
    dir: PathBuf,
    #[command(flatten)]
    db: DbArgs,
    /// Skip the DLEQ proofs (they need the key set, i.e. the banks): check only what a client
    /// can.
    #[arg(long)]
    client_only: bool,
    /// Shards checked at once (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The opening key file: also check that it is this table's key and that build.json's
    /// per-shard key digests are those of the rebuilt key set (only the key's holder can).
    #[arg(long)]
    key: Option<PathBuf>,
}

/// What a table was built from: enough for an organisation holding the banks to recompute K.
#[derive(Debug, Serialize, Deserialize)]
struct BuildRecord {
    format: u32,
    banks: Vec<String>,
    min_organisations: usize,
    min_jurisdictions: usize,
    distance: u32,
    params: ParamsArg,
    policy: PolicyArg,
    epoch: u32,
    consensus_values: usize,
    distinct_keys: usize,
    pruned_keys: usize,
    keys: u64,
    shards: u16,
    created_at: u64,
    /// Per shard, `key_set_digest` of its keys: how the next epoch's build knows, without
    /// keeping K, which shards it may leave unchanged. Keyed by the opening key, so it says
    /// nothing about K to anyone else. Absent in older records: then every shard is rebuilt.
    #[serde(default)]
    shard_key_digests: Vec<String>,
    /// `--valid-days` of the build (the manifest's window is this many days). Absent in older
    /// records.
    #[serde(default)]
    valid_days: Option<u64>,
}

/// Runs `hashguard table ...`; `verify` exits 1 if a check fails.
pub fn run(args: TableArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TableCommand::Build(a) => build(a),
        TableCommand::Verify(a) => verify(a),
    }
}

fn params_for(p: ParamsArg, policy: PolicyArg) -> Params {
    let policy = match policy {
        PolicyArg::Intervene => Policy::Intervene,
        PolicyArg::Silent => Policy::Silent,
    };
    match p {
        ParamsArg::V1 => Params::v1(policy),
        ParamsArg::Lite => Params::lite(policy),
    }
}

/// The key set K of a table, and how it was obtained.
pub(crate) struct KeySet {
    /// The banks it came from.
    pub(crate) banks: Vec<String>,
    /// Values in the consensus view.
    pub(crate) consensus_values: usize,
    /// Distinct keys of those values.
    pub(crate) distinct: usize,
    /// The keys kept after separation: K.
    pub(crate) keys: Vec<KeyBytes>,
    /// Keys dropped for separation.
    pub(crate) pruned: usize,
}

/// The consensus view's PDQ keys, separated (protocol.md 3.5 steps 1-2).
pub(crate) fn key_set(
    db: &DbArgs,
    opts: &ConsensusOpts,
    params: &Params,
) -> anyhow::Result<KeySet> {
    let loaded = runtime()?.block_on(async {
        let store = db.open(Access::Read).await?;
        let loaded = store.load_enabled(Some(SignalType::Pdq)).await;
        store.close().await;
        anyhow::Ok(loaded?)
    })?;
    for name in &opts.banks {
        anyhow::ensure!(
            loaded.iter().any(|l| l.bank.name().as_str() == name),
            "no enabled PDQ bank named {name}"
        );
    }
    let chosen: Vec<_> = loaded
        .iter()
        .filter(|l| l.bank.kind() == BankKind::Block)
        .filter(|l| opts.banks.is_empty() || opts.banks.iter().any(|n| n == l.bank.name().as_str()))
        .collect();
    let names = chosen.iter().map(|l| l.bank.name().to_string()).collect();
    let banks: Vec<BankEntries<'_>> = chosen
        .iter()
        .map(|l| BankEntries {
            bank: &l.bank,
            entries: &l.entries,
        })
        .collect();
    let cp = ConsensusParams::new(
        opts.min_organisations,
        opts.min_jurisdictions,
        opts.distance,
    )?;
    let view = consensus(SignalType::Pdq, &banks, &cp);
    let keys: Vec<u64> = view
        .iter()
        .filter_map(|c| c.value.as_pdq())
        .map(|h| pdq_key(h, params))
        .collect();
    let pruned = prune_separated(&keys, params.k(), params.sep());
    let distinct = pruned.kept.len() + pruned.removed.len();
    let kept = pruned
        .kept
        .iter()
        .map(|&k| KeyBytes::from_pdq_key(k, params.k()))
        .collect();
    Ok(KeySet {
        banks: names,
        consensus_values: view.len(),
        distinct,
        keys: kept,
        pruned: pruned.removed.len(),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let s = s.trim();
    anyhow::ensure!(s.len() == 64, "expected 64 hex digits, got {}", s.len());
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
            .context("not hexadecimal")?;
    }
    Ok(out)
}

/// A ChaCha20 generator seeded from the operating system.
pub(crate) fn os_rng() -> anyhow::Result<rand_chacha::ChaCha20Rng> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut()).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(rand_chacha::ChaCha20Rng::from_seed(*seed))
}

/// Reads the opening key from its file.
fn read_opening_key(path: &Path) -> anyhow::Result<OpeningKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    let bytes = zeroize::Zeroizing::new(
        unhex32(&text).with_context(|| format!("key file {}", path.display()))?,
    );
    OpeningKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))
}

/// Reads the opening key, or creates it (readable by the owner only) if the file is missing.
fn opening_key(path: &Path, rng: &mut rand_chacha::ChaCha20Rng) -> anyhow::Result<OpeningKey> {
    if path.exists() {
        return read_opening_key(path);
    }
    let key = OpeningKey::generate(rng);
    let text = zeroize::Zeroizing::new(format!("{}\n", hex(key.to_bytes().as_ref())));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .with_context(|| format!("cannot write the key file {}", path.display()))?;
    eprintln!(
        "generated a new opening key in {} (keep it secret)",
        path.display()
    );
    Ok(key)
}

fn shard_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("shard-{i:04}.bin"))
}

fn read_manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = dir.join("manifest.bin");
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Manifest::decode(&bytes)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The table spec and epoch input of a build: the next epoch of `previous` (same deployment
/// id, shard salt and shard count, chained to its manifest), or epoch 1 of a new deployment
/// (random id and salt); the beacon given, or a random one. `table build` and `demo` both
/// start their tables here.
pub(crate) fn next_epoch(
    previous: Option<&Manifest>,
    params: &Params,
    public_key: PublicKey,
    shard_count: u16,
    beacon: Option<[u8; 32]>,
    rng: &mut rand_chacha::ChaCha20Rng,
) -> anyhow::Result<(TableSpec, EpochInput)> {
    use rand_chacha::rand_core::Rng;
    let (deployment_id, shard_salt, epoch, prev_manifest_hash) = match previous {
        Some(m) => {
            anyhow::ensure!(
                m.public_key == public_key,
                "it was built with another opening key; use its key or another directory"
            );
            let t = m
                .table(TableKind::Pdq)
                .context("the previous manifest has no PDQ table")?;
            anyhow::ensure!(
                t.shard_count == shard_count,
                "the previous epoch has {} shards; a deployment keeps its shard count",
                t.shard_count
            );
            let epoch = m.epoch.checked_add(1).context("epoch overflow")?;
            (m.deployment_id, t.shard_salt, epoch, m.hash())
        }
        None => {
            let mut id = [0u8; 16];
            let mut salt = [0u8; 32];
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut salt);
            (id, salt, 1, [0u8; 32])
        }
    };
    let beacon = beacon.unwrap_or_else(|| {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        b
    });
    let spec = TableSpec {
        deployment_id,
        kind: TableKind::Pdq,
        params: params.clone(),
        public_key,
        shard_count,
        shard_salt,
    };
    let epoch = EpochInput {
        epoch,
        prev_manifest_hash,
        beacon,
    };
    Ok((spec, epoch))
}

/// The previous epoch's shards as `build_table_after` can reuse them: the spec the manifest
/// describes, and per shard its file, manifest entry and recorded key digest. `None` (every
/// shard is rebuilt, with a note) when build.json has no digests for that epoch or a shard
/// file is missing or unreadable.
fn previous_shards(
    dir: &Path,
    m: &Manifest,
) -> anyhow::Result<Option<(TableSpec, Vec<PreviousShard>)>> {
    let Some(t) = m.table(TableKind::Pdq) else {
        return Ok(None);
    };
    let record: Option<BuildRecord> = std::fs::read_to_string(dir.join("build.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok());
    let digests = match record {
        Some(r) if r.epoch == m.epoch && r.shard_key_digests.len() == t.shards.len() => {
            r.shard_key_digests
        }
        _ => {
            eprintln!(
                "note: no key digests for epoch {} in {}: every shard is rebuilt",
                m.epoch,
                dir.join("build.json").display()
            );
            return Ok(None);
        }
    };
    let mut shards = Vec::with_capacity(t.shards.len());
    for (i, (entry, digest)) in t.shards.iter().zip(&digests).enumerate() {
        let path = shard_path(dir, i);
        let shard = std::fs::read(&path)
            .ok()
            .and_then(|bytes| TableShard::decode(&bytes).ok());
        let Some(shard) = shard else {
            eprintln!(
                "note: {} is missing or unreadable: every shard is rebuilt",
                path.display()
            );
            return Ok(None);
        };
        shards.push(PreviousShard {
            shard,
            entry: *entry,
            key_digest: unhex32(digest).context("build.json shard_key_digests")?,
        });
    }
    let spec = TableSpec {
        deployment_id: m.deployment_id,
        kind: TableKind::Pdq,
        params: m.params.clone(),
        public_key: m.public_key,
        shard_count: t.shard_count,
        shard_salt: t.shard_salt,
    };
    Ok(Some((spec, shards)))
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let params = params_for(a.params, a.policy);
    let mut rng = os_rng()?;
    let secret = opening_key(&a.key, &mut rng)?;
    let KeySet {
        banks,
        consensus_values,
        distinct,
        keys,
        pruned,
    } = key_set(&a.db, &a.consensus, &params)?;
    anyhow::ensure!(
        !keys.is_empty(),
        "the consensus view is empty ({} banks): nothing to build",
        banks.len()
    );
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let previous = read_manifest(&a.out)?;
    let public_key = secret.public_key();
    let shard_count = match a.shards {
        Some(s) => {
            anyhow::ensure!(s >= 1, "--shards must be at least 1");
            s
        }
        // A deployment keeps its shard count: the next epoch takes the previous one's.
        None => match previous.as_ref().and_then(|m| m.table(TableKind::Pdq)) {
            Some(t) => t.shard_count,
            None => u16::try_from(keys.len().div_ceil(KEYS_PER_SHARD).max(1)).unwrap_or(u16::MAX),
        },
    };
    let beacon = a
        .beacon
        .as_deref()
        .map(|b| unhex32(b).context("--beacon"))
        .transpose()?;
    let (spec, epoch_input) = next_epoch(
        previous.as_ref(),
        &params,
        public_key,
        shard_count,
        beacon,
        &mut rng,
    )
    .with_context(|| format!("the table in {}", a.out.display()))?;
    let epoch = epoch_input.epoch;
    let threads = crate::hashing::thread_count(a.threads)?;
    let reusable = match &previous {
        Some(m) => previous_shards(&a.out, m)?,
        None => None,
    };
    let started = std::time::Instant::now();
    let built = build_table_after(
        &spec,
        &secret,
        &keys,
        &epoch_input,
        reusable.as_ref().map(|(s, p)| (s, &p[..])),
        threads,
        &mut rng,
    )?;
    let elapsed = started.elapsed();
    let created_at = now();
    let not_after = a
        .valid_days
        .checked_mul(SECONDS_PER_DAY)
        .and_then(|window| created_at.checked_add(window))
        .context("--valid-days reaches past the end of time")?;
    let manifest = Manifest {
        deployment_id: spec.deployment_id,
        epoch,
        not_before: created_at,
        not_after,
        prev_manifest_hash: epoch_input.prev_manifest_hash,
        params,
        public_key,
        tables: vec![TableDescriptor {
            kind: TableKind::Pdq,
            shard_count,
            shard_salt: spec.shard_salt,
            shards: built.entries(),
        }],
        revokes: Vec::new(),
    };
    // Shards first, the manifest last: a directory with a new manifest has its shards. A kept
    // shard's file is left as it is, so mirrors and clients see it unchanged.
    let (mut kept, mut rebuilt) = (0usize, 0u64);
    for (i, s) in built.shards.iter().enumerate() {
        let unchanged = reusable
            .as_ref()
            .and_then(|(_, p)| p.get(i))
            .is_some_and(|p| p.entry == s.entry);
        if unchanged {
            kept += 1;
            continue;
        }
        rebuilt += u64::from(s.entry.n_keys);
        let path = shard_path(&a.out, i);
        std::fs::write(&path, s.shard.encode())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let shard_key_digests = built.shards.iter().map(|s| hex(&s.key_digest())).collect();
    let record = BuildRecord {
        format: BUILD_RECORD_FORMAT,
        banks,
        min_organisations: a.consensus.min_organisations,
        min_jurisdictions: a.consensus.min_jurisdictions,
        distance: a.consensus.distance,
        params: a.params,
        policy: a.policy,
        epoch,
        consensus_values,
        distinct_keys: distinct,
        pruned_keys: pruned,
        keys: built.n_keys(),
        shards: shard_count,
        created_at,
        shard_key_digests,
        valid_days: Some(a.valid_days),
    };
    std::fs::write(
        a.out.join("build.json"),
        serde_json::to_string_pretty(&record)? + "\n",
    )
    .context("cannot write build.json")?;
    std::fs::write(a.out.join("manifest.txt"), manifest.to_string())
        .context("cannot write manifest.txt")?;
    // Every epoch's manifest is kept, so that `verify` can walk the chain back to epoch 1.
    let archived = epoch_manifest_path(&a.out, epoch);
    std::fs::write(&archived, manifest.encode())
        .with_context(|| format!("cannot write {}", archived.display()))?;
    std::fs::write(a.out.join("manifest.bin"), manifest.encode())
        .context("cannot write manifest.bin")?;
    out!("{manifest}")?;
    eprintln!(
        "built epoch {epoch}: {} consensus values, {distinct} distinct keys, {pruned} pruned for separation, {} keys in {shard_count} shard(s), {kept} kept unchanged, {rebuilt} keys in rebuilt shards in {:.1} s{}",
        consensus_values,
        built.n_keys(),
        elapsed.as_secs_f64(),
        if rebuilt > 0 {
            format!(
                " ({:.0} us/key on {threads} thread(s))",
                elapsed.as_secs_f64() * 1e6 / rebuilt as f64
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The outcome of one named check of `table verify`: printed as `NAME: ok (...)` or
/// `NAME: FAILED: ...`.
struct Checks {
    failed: bool,
}

impl Checks {
    fn report(&mut self, name: &str, result: Result<String, String>) -> anyhow::Result<()> {
        match result {
            Ok(detail) if detail.is_empty() => outln!("{name}: ok"),
            Ok(detail) => outln!("{name}: ok ({detail})"),
            Err(reason) => {
                self.failed = true;
                outln!("{name}: FAILED: {reason}")
            }
        }
    }
}

/// What can be checked of a table without signatures: manifest.txt says what manifest.bin
/// says, the window is current, the chain of kept manifests reaches epoch 1, and build.json
/// agrees with the manifest.
fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let manifest = read_manifest(&a.dir)?
        .with_context(|| format!("no manifest.bin in {}", a.dir.display()))?;
    let table = manifest
        .table(TableKind::Pdq)
        .context("the manifest has no PDQ table")?;
    let spec = manifest
        .table_spec(TableKind::Pdq)
        .context("the manifest has no PDQ table")?;
    let mut shards = Vec::with_capacity(table.shards.len());
    for i in 0..table.shards.len() {
        let path = shard_path(&a.dir, i);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let shard =
            TableShard::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        shards.push(shard);
    }
    out!("{manifest}")?;
    let mut checks = Checks { failed: false };
    checks.report("manifest.txt", check_summary(&a.dir, &manifest))?;
    checks.report("validity", check_window(&manifest, now()))?;
    checks.report("chain", check_chain(&a.dir, &manifest))?;
    // What every client checks: roots, layouts, counts, every point valid and not the identity.
    checks.report(
        "client checks",
        ClientTable::load(
            spec.clone(),
            manifest.epoch,
            &table.shards,
            &shards,
            u64::MAX,
        )
        .map(|_| format!("{} shards, roots, layouts, points", shards.len()))
        .map_err(|e| e.to_string()),
    )?;
    let record_path = a.dir.join("build.json");
    let record = if a.client_only && !record_path.exists() {
        None
    } else {
        let record = read_record(&record_path);
        let checked = record
            .as_ref()
            .map_err(|e| format!("{e:#}"))
            .and_then(|r| check_record(r, &manifest));
        checks.report("build.json", checked)?;
        record.ok()
    };
    if let Some(key) = &a.key {
        let secret = read_opening_key(key)?;
        checks.report(
            "opening key",
            (secret.public_key() == manifest.public_key)
                .then(String::new)
                .ok_or_else(|| "it is not the key of this table".to_string()),
        )?;
    }
    if a.client_only {
        outln!("DLEQ proofs: not checked (--client-only)")?;
        return Ok(checks.exit_code());
    }
    let Some(record) = record else {
        return Ok(checks.exit_code());
    };
    let opts = ConsensusOpts {
        banks: record.banks.clone(),
        min_organisations: record.min_organisations,
        min_jurisdictions: record.min_jurisdictions,
        distance: record.distance,
    };
    let params = params_for(record.params, record.policy);
    let key_set = key_set(&a.db, &opts, &params)?;
    checks.report("build.json counts", check_record_counts(&record, &key_set))?;
    if let Some(key) = &a.key {
        let secret = read_opening_key(key)?;
        checks.report(
            "shard key digests",
            check_key_digests(&record, &spec, &secret, &key_set.keys),
        )?;
    } else {
        outln!("shard key digests: not checked (they need the opening key: --key)")?;
    }
    let mut per_shard: Vec<Vec<KeyBytes>> = vec![Vec::new(); shards.len()];
    for k in key_set.keys {
        if let Some(v) = per_shard.get_mut(usize::from(spec.shard_of(&k))) {
            v.push(k);
        }
    }
    // Shards are independent: check them in parallel, report in shard order.
    let results: Vec<_> = crate::hashing::worker_pool(a.threads, shards.len())?.install(|| {
        use rayon::prelude::*;
        shards
            .par_iter()
            .zip(&table.shards)
            .zip(&per_shard)
            .map(|((shard, entry), ks)| verify_shard_for_org(&spec, shard, entry, ks))
            .collect()
    });
    let mut bad = 0usize;
    for (shard, result) in shards.iter().zip(results) {
        if let Err(e) = result {
            outln!("shard {}: FAILED: {e}", shard.header.shard)?;
            bad += 1;
        }
    }
    checks.report(
        "DLEQ proofs",
        if bad == 0 {
            Ok(format!(
                "{} shards encode exactly the key set of the {} from banks {:?}",
                shards.len(),
                a.db.describe(),
                record.banks
            ))
        } else {
            Err(format!("{bad} of {} shards", shards.len()))
        },
    )?;
    Ok(checks.exit_code())
}

impl Checks {
    fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// manifest.txt must be the summary of manifest.bin, byte for byte.
fn check_summary(dir: &Path, manifest: &Manifest) -> Result<String, String> {
    let path = dir.join("manifest.txt");
    let text = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text == manifest.to_string().as_bytes() {
        Ok(String::new())
    } else {
        Err("it does not say what manifest.bin says".into())
    }
}

/// The manifest must be valid now, as clients check it.
fn check_window(manifest: &Manifest, now: u64) -> Result<String, String> {
    if now < manifest.not_before {
        Err(format!(
            "not valid before {} (now {now})",
            manifest.not_before
        ))
    } else if now >= manifest.not_after {
        Err(format!("expired at {} (now {now})", manifest.not_after))
    } else {
        Ok(format!(
            "{} more day(s)",
            (manifest.not_after - now) / SECONDS_PER_DAY
        ))
    }
}

/// The manifest file of `epoch` that `table build` keeps beside manifest.bin.
fn epoch_manifest_path(dir: &Path, epoch: u32) -> PathBuf {
    dir.join(format!("manifest-{epoch:06}.bin"))
}

/// The kept manifests from `manifest`'s epoch down to epoch 1 must form one chain: each the
/// previous epoch of the same deployment and key, its hash the next one's
/// `prev_manifest_hash`. manifest.bin must be the kept manifest of its epoch.
fn check_chain(dir: &Path, manifest: &Manifest) -> Result<String, String> {
    let read = |epoch: u32| -> Result<Manifest, String> {
        let path = epoch_manifest_path(dir, epoch);
        let bytes = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {} (every epoch's manifest is kept to check the chain): {e}",
                path.display()
            )
        })?;
        Manifest::decode(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    };
    if &read(manifest.epoch)? != manifest {
        return Err(format!(
            "manifest.bin differs from {}",
            epoch_manifest_path(dir, manifest.epoch).display()
        ));
    }
    let mut later = manifest.clone();
    while later.epoch > 1 {
        let earlier = read(later.epoch - 1)?;
        if earlier.hash() != later.prev_manifest_hash {
            return Err(format!(
                "epoch {}'s prev_manifest_hash is not the hash of epoch {}",
                later.epoch, earlier.epoch
            ));
        }
        if earlier.deployment_id != later.deployment_id || earlier.public_key != later.public_key {
            return Err(format!(
                "epoch {} belongs to another deployment or key than epoch {}",
                earlier.epoch, later.epoch
            ));
        }
        if earlier.not_before > later.not_before {
            return Err(format!(
                "epoch {} starts before epoch {}",
                later.epoch, earlier.epoch
            ));
        }
        later = earlier;
    }
    Ok(format!("epochs 1 to {}", manifest.epoch))
}

fn read_record(path: &Path) -> anyhow::Result<BuildRecord> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a build record", path.display()))
}

/// The build record's fields that the manifest also states must agree with it.
fn check_record(record: &BuildRecord, manifest: &Manifest) -> Result<String, String> {
    let table = manifest
        .table(TableKind::Pdq)
        .ok_or("the manifest has no PDQ table")?;
    let mut wrong = Vec::new();
    if record.format != BUILD_RECORD_FORMAT {
        wrong.push(format!(
            "format {} (this version writes {BUILD_RECORD_FORMAT})",
            record.format
        ));
    }
    if params_for(record.params, record.policy) != manifest.params {
        wrong.push("params or policy".to_string());
    }
    if record.epoch != manifest.epoch {
        wrong.push(format!(
            "epoch {} (the manifest's is {})",
            record.epoch, manifest.epoch
        ));
    }
    if record.shards != table.shard_count {
        wrong.push(format!(
            "shards {} (the manifest has {})",
            record.shards, table.shard_count
        ));
    }
    if record.keys != table.n_keys() {
        wrong.push(format!(
            "keys {} (the manifest has {})",
            record.keys,
            table.n_keys()
        ));
    }
    if record.distinct_keys.checked_sub(record.pruned_keys) != usize::try_from(record.keys).ok() {
        wrong.push("distinct_keys - pruned_keys is not keys".to_string());
    }
    if record.created_at != manifest.not_before {
        wrong.push(format!(
            "created_at {} (the manifest's not_before is {})",
            record.created_at, manifest.not_before
        ));
    }
    if let Some(days) = record.valid_days {
        if days.checked_mul(SECONDS_PER_DAY) != Some(manifest.not_after - manifest.not_before) {
            wrong.push(format!("valid_days {days} (not the manifest's window)"));
        }
    }
    if !record.shard_key_digests.is_empty()
        && record.shard_key_digests.len() != usize::from(table.shard_count)
    {
        wrong.push(format!(
            "{} shard_key_digests for {} shards",
            record.shard_key_digests.len(),
            table.shard_count
        ));
    }
    if wrong.is_empty() {
        Ok(String::new())
    } else {
        Err(format!("disagrees with the manifest: {}", wrong.join(", ")))
    }
}

/// The build record's counts must be those of the key set rebuilt from the banks.
fn check_record_counts(record: &BuildRecord, key_set: &KeySet) -> Result<String, String> {
    let mut wrong = Vec::new();
    if record.banks != key_set.banks {
        wrong.push(format!(
            "banks {:?} (the key set comes from {:?})",
            record.banks, key_set.banks
        ));
    }
    for (what, recorded, rebuilt) in [
        (
            "consensus_values",
            record.consensus_values,
            key_set.consensus_values,
        ),
        ("distinct_keys", record.distinct_keys, key_set.distinct),
        ("pruned_keys", record.pruned_keys, key_set.pruned),
    ] {
        if recorded != rebuilt {
            wrong.push(format!("{what} {recorded} (rebuilt: {rebuilt})"));
        }
    }
    if wrong.is_empty() {
        Ok(format!(
            "{} consensus values, {} distinct keys, {} pruned",
            key_set.consensus_values, key_set.distinct, key_set.pruned
        ))
    } else {
        Err(wrong.join(", "))
    }
}

/// Each shard's recorded key digest must be the digest of its rebuilt keys under the key.
fn check_key_digests(
    record: &BuildRecord,
    spec: &TableSpec,
    secret: &OpeningKey,
    keys: &[KeyBytes],
) -> Result<String, String> {
    if record.shard_key_digests.is_empty() {
        return Err("build.json records none".into());
    }
    let mut per_shard: Vec<Vec<KeyBytes>> = vec![Vec::new(); record.shard_key_digests.len()];
    for k in keys {
        if let Some(v) = per_shard.get_mut(usize::from(spec.shard_of(k))) {
            v.push(k.clone());
        }
    }
    let bad: Vec<String> = record
        .shard_key_digests
        .iter()
        .zip(&per_shard)
        .enumerate()
        .filter(|(i, (recorded, ks))| {
            let shard = u16::try_from(*i).unwrap_or(u16::MAX);
            recorded.as_str() != hex(&key_set_digest(secret, spec, shard, ks))
        })
        .map(|(i, _)| i.to_string())
        .collect();
    if bad.is_empty() {
        Ok(format!("{} shards", per_shard.len()))
    } else {
        Err(format!("wrong for shard(s) {}", bad.join(", ")))
    }
}

//! `hashguard table`: build the private-matching table (protocol.md 3.5) from the consensus view
//! of the database's PDQ banks, and verify a built table. Flags and printing only: the work is
//! `hashguard_service`'s (`publish`, `verify`).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::db::{runtime, DbArgs};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::params::{Params, Policy, Preset};
use hashguard_service::keyset::{self, ConsensusSpec, KeySet};
use hashguard_service::publish::{
    now, opening_key, os_rng, publish, read_opening_key, BuildOptions, Published, TableDir,
    MAX_VALID_DAYS,
};
use hashguard_service::verify::{self, CheckResult};
use hashguard_store::OpenMode;

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
    /// An organisation's co-signature (R/E11): rebuild the key set from the banks, check
    /// everything `verify` checks, then co-sign unless this organisation already co-signed
    /// another manifest for the epoch or the manifest does not continue the last it co-signed.
    Cosign(crate::transparency_cmd::CosignArgs),
    /// Sign the manifest with the organisations' co-signatures, append it to the manifest log
    /// (`DIR/log`), collect witness cosignatures and print what users will see.
    Publish(crate::transparency_cmd::PublishArgs),
}

/// The protocol's matching policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyArg {
    /// The server learns each match bit and holds matching uploads (the default).
    Intervene,
    /// No per-upload bit; synthetic vouchers (Apple's 2021 design).
    Silent,
}

/// The parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
    /// Threads for the key separation and the shards (default: one per core). The table does
    /// not depend on it.
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
    /// Threads for the key separation and the shard checks (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The opening key file: also check that it is this table's key and that build.json's
    /// per-shard key digests are those of the rebuilt key set (only the key's holder can).
    #[arg(long)]
    key: Option<PathBuf>,
}

impl From<PolicyArg> for Policy {
    fn from(p: PolicyArg) -> Policy {
        match p {
            PolicyArg::Intervene => Policy::Intervene,
            PolicyArg::Silent => Policy::Silent,
        }
    }
}

impl From<ParamsArg> for Preset {
    fn from(p: ParamsArg) -> Preset {
        match p {
            ParamsArg::V1 => Preset::V1,
            ParamsArg::Lite => Preset::Lite,
        }
    }
}

impl ConsensusOpts {
    fn spec(&self) -> ConsensusSpec {
        ConsensusSpec {
            banks: self.banks.clone(),
            min_organisations: self.min_organisations,
            min_jurisdictions: self.min_jurisdictions,
            distance: self.distance,
        }
    }
}

/// Runs `hashguard table ...`; `verify` exits 1 if a check fails.
pub fn run(args: TableArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        TableCommand::Build(a) => build(a),
        TableCommand::Verify(a) => verify(a),
        TableCommand::Cosign(a) => crate::transparency_cmd::cosign(a),
        TableCommand::Publish(a) => crate::transparency_cmd::publish(a),
    }
}

/// The key set of the consensus view of the database's banks, its key separation on `threads`
/// threads.
pub(crate) fn load_key_set(
    db: &DbArgs,
    spec: &ConsensusSpec,
    params: &Params,
    threads: usize,
) -> anyhow::Result<KeySet> {
    runtime()?.block_on(async {
        let store = db.open(OpenMode::Read).await?;
        let key_set = keyset::load_key_set(&store, spec, params, threads).await;
        store.close().await;
        anyhow::Ok(key_set?)
    })
}

fn build(a: BuildArgs) -> anyhow::Result<ExitCode> {
    let options = BuildOptions {
        preset: a.params.into(),
        policy: a.policy.into(),
        shards: a.shards,
        threads: crate::hashing::thread_count(a.threads)?,
        valid_days: a.valid_days,
        beacon: a
            .beacon
            .as_deref()
            .map(|b| hashguard_service::unhex32(b).map_err(|e| anyhow::anyhow!("--beacon: {e}")))
            .transpose()?,
    };
    let mut rng = os_rng()?;
    let (secret, created) = opening_key(&a.key, &mut rng)?;
    if created {
        eprintln!(
            "generated a new opening key in {} (keep it secret)",
            a.key.display()
        );
    }
    let consensus = a.consensus.spec();
    let key_set = load_key_set(
        &a.db,
        &consensus,
        &options.preset.params(options.policy),
        options.threads,
    )?;
    let published = publish(
        &TableDir::new(&a.out),
        &secret,
        &key_set,
        &consensus,
        &options,
        &mut rng,
    )?;
    if let Some(why) = &published.no_reuse {
        eprintln!("note: {why}");
    }
    let Published {
        manifest,
        record,
        kept,
        rebuilt_keys,
        elapsed,
        ..
    } = &published;
    out!("{manifest}")?;
    eprintln!(
        "built epoch {}: {} consensus values, {} distinct keys, {} pruned for separation ({} related, {} unrelated; by PDQ distance to the kept key's entry 0-15/16-31/32-63/64-95/96-127/128+: {:?}), {} kept closer than sep as related entries, {} keys in {} shard(s), {kept} kept unchanged, {rebuilt_keys} keys in rebuilt shards in {:.1} s{}",
        record.epoch,
        record.consensus_values,
        record.distinct_keys,
        record.pruned_keys,
        record.pruned_related,
        record.pruned_unrelated,
        record.pruned_histogram,
        record.kept_close,
        record.keys,
        record.shards,
        elapsed.as_secs_f64(),
        if *rebuilt_keys > 0 {
            format!(
                " ({:.0} us/key on {} thread(s))",
                elapsed.as_secs_f64() * 1e6 / *rebuilt_keys as f64,
                options.threads
            )
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// The checks of `table verify`, printed as `NAME: ok (...)` or `NAME: FAILED: ...`.
struct Checks {
    failed: bool,
}

impl Checks {
    fn report(&mut self, name: &str, result: CheckResult) -> anyhow::Result<()> {
        match result {
            Ok(detail) if detail.is_empty() => outln!("{name}: ok"),
            Ok(detail) => outln!("{name}: ok ({detail})"),
            Err(reason) => {
                self.failed = true;
                outln!("{name}: FAILED: {reason}")
            }
        }
    }

    fn exit_code(&self) -> ExitCode {
        if self.failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// What can be checked of a table without signatures: manifest.txt says what manifest.bin
/// says, the window is current, the chain of kept manifests reaches epoch 1, and build.json
/// agrees with the manifest; then the client's checks and (with the banks) the proofs.
fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let dir = TableDir::new(&a.dir);
    let manifest = dir
        .read_manifest()?
        .with_context(|| format!("no manifest.bin in {}", a.dir.display()))?;
    let table = manifest
        .table(TableKind::Pdq)
        .context("the manifest has no PDQ table")?;
    let spec = manifest
        .table_spec(TableKind::Pdq)
        .context("the manifest has no PDQ table")?;
    let shards = dir.read_shards(table)?;
    out!("{manifest}")?;
    let mut checks = Checks { failed: false };
    checks.report("manifest.txt", verify::check_summary(&dir, &manifest))?;
    checks.report("validity", verify::check_window(&manifest, now()))?;
    checks.report("chain", verify::check_chain(&dir, &manifest))?;
    checks.report("client checks", verify::check_client(&manifest, &shards))?;
    let record = if a.client_only && !dir.record_path().exists() {
        None
    } else {
        let record = dir.read_record();
        let checked = record
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|r| verify::check_record(r, &manifest));
        checks.report("build.json", checked)?;
        record.ok()
    };
    let secret = a.key.as_deref().map(read_opening_key).transpose()?;
    if let Some(secret) = &secret {
        checks.report("opening key", verify::check_opening_key(secret, &manifest))?;
    }
    if a.client_only {
        outln!("DLEQ proofs: not checked (--client-only)")?;
        return Ok(checks.exit_code());
    }
    let Some(record) = record else {
        return Ok(checks.exit_code());
    };
    let key_set = load_key_set(
        &a.db,
        &record.consensus(),
        &record.protocol_params(),
        crate::hashing::thread_count(a.threads)?,
    )?;
    checks.report(
        "build.json counts",
        verify::check_record_counts(&record, &key_set),
    )?;
    match &secret {
        Some(secret) => checks.report(
            "shard key digests",
            verify::check_key_digests(&record, &spec, secret, &key_set.keys),
        )?,
        None => outln!("shard key digests: not checked (they need the opening key: --key)")?,
    }
    let pool = crate::hashing::worker_pool(a.threads, shards.len())?;
    let failures = verify::check_proofs(&pool, &spec, table, &shards, &key_set.keys);
    for (shard, e) in &failures {
        outln!("shard {shard}: FAILED: {e}")?;
    }
    checks.report(
        "DLEQ proofs",
        if failures.is_empty() {
            Ok(format!(
                "{} shards encode exactly the key set of the {} from banks {:?}",
                shards.len(),
                a.db.location().describe(),
                record.banks
            ))
        } else {
            Err(format!("{} of {} shards", failures.len(), shards.len()))
        },
    )?;
    Ok(checks.exit_code())
}

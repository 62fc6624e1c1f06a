//! `hashguard list`: banks of hashes in the database: create, import a list version, export,
//! stats, and the consensus view the private-matching table is built from.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use hashguard_hashing::{Hashed, Hasher, Options};
use hashguard_hashlist::{
    consensus, parse_list_with, write_list, Bank, BankEntries, BankKind, BankName, ConsensusParams,
    Format, ListItem, ParseError, ParsedList, Repeats, SignalType, Version, MAX_LINE_BYTES,
};
use hashguard_service::banks::entry_for_original;
use hashguard_store::{ImportMeta, ImportOutcome, Store};

use crate::db::{runtime, DbArgs};
use hashguard_store::OpenMode;

/// Arguments of `hashguard list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(subcommand)]
    command: ListCommand,
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Debug, Subcommand)]
enum ListCommand {
    /// Create a bank.
    Create(CreateArgs),
    /// Change a bank's threshold or enable/disable it.
    Update(UpdateArgs),
    /// Import a list file as the bank's next version (or --version N): additions and
    /// tombstones so the bank equals the file; all or nothing.
    Import(ImportArgs),
    /// Write a bank's list (latest or --version N) in a list format.
    Export(ExportArgs),
    /// Counts, versions and the last import of every bank (or the named ones).
    Stats(StatsArgs),
    /// The consensus view: values supported by at least N organisations in at least M
    /// jurisdictions (two organisations support the same item when within distance d).
    Consensus(ConsensusArgs),
    /// Record the second hash of listed PDQ entries from their original images (server-side
    /// only; the automatic check compares it with the item's visual derivative).
    SecondHash(SecondHashArgs),
}

/// `block` or `allow`, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    /// Matches are reported.
    Block,
    /// Matches suppress block matches (known false positives).
    Allow,
}

/// A list format, for clap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One hex value per line.
    Hex,
    /// ThreatExchange `local_file`: `<signal_type> <value>`.
    LocalFile,
    /// `signal_type,signal_str,collab,category,tags`.
    Csv,
    /// PDQ CLI output `hash,quality,filename`.
    PdqCli,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Hex => Format::PlainHex,
            FormatArg::LocalFile => Format::LocalFile,
            FormatArg::Csv => Format::Csv,
            FormatArg::PdqCli => Format::PdqCli,
        }
    }
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Bank name (letters, digits, `_ - .`; up to 64).
    name: String,
    /// The supplying organisation.
    #[arg(long)]
    org: String,
    /// Its jurisdiction, an ISO 3166-1 alpha-2 code (e.g. GB, US).
    #[arg(long)]
    jurisdiction: String,
    /// Signal type: pdq, md5, sha256 or vpdq.
    #[arg(long, default_value = "pdq")]
    signal_type: String,
    /// Block (report matches) or allow (suppress matches of its entries).
    #[arg(long, value_enum, default_value_t = KindArg::Block)]
    kind: KindArg,
    /// Match threshold (default: 31 for pdq, 0 for exact types).
    #[arg(long)]
    threshold: Option<u32>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// Bank name.
    name: String,
    /// New match threshold.
    #[arg(long)]
    threshold: Option<u32>,
    /// Enable the bank.
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    /// Disable the bank (it keeps its entries but matches nothing).
    #[arg(long)]
    disable: bool,
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Bank name.
    name: String,
    /// List file, or `-` for standard input.
    file: PathBuf,
    /// Format of the file (default: detected from its first data line).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Version number to record, 1 to 2^53 (default: the next one; an unchanged list imports
    /// nothing).
    #[arg(long)]
    version: Option<u64>,
    /// Import a list with no entry (an empty or comments-only file), which removes every entry
    /// of the bank; refused without this flag.
    #[arg(long)]
    allow_empty: bool,
    /// Who imports it, for the audit trail (default: $USER).
    #[arg(long)]
    by: Option<String>,
    #[command(flatten)]
    read: ListReadArgs,
}

/// Arguments of `list second-hash`.
#[derive(Debug, Args)]
struct SecondHashArgs {
    /// The PDQ bank whose entries the originals are.
    name: String,
    /// The listed originals (image files). Each is matched to the bank's live entry equal to
    /// its PDQ hash, else the nearest within the bank's threshold.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Who records them, for the audit trail (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// How a list file is read: shared by `list import` and `match --list`, so both read a file the
/// same way.
#[derive(Debug, Clone, Args)]
pub struct ListReadArgs {
    /// Refuse a list that repeats a value (each repeat is a bad line). By default the lines of a
    /// value are merged into one entry that keeps every line's metadata (file names, CSV
    /// collab/category/tags), and one line on stderr says how many were merged.
    #[arg(long)]
    pub strict: bool,
    /// Largest list file to read, in bytes, or with a suffix K, M, G (powers of 1024); for
    /// `match`, query files too. A file or stream that grows past it is refused as soon as it
    /// does, as is a line longer than 16 MiB (longer than any list line can be).
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_size)]
    pub max_list_size: u64,
}

/// A size in bytes: digits, optionally followed by K, M, G or T (powers of 1024; `KiB`, `kb`
/// and the like are read the same).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 500M, 2G, 1048576)"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use K, M, G or T)"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Why reading a list file stopped.
#[derive(Debug)]
enum ReadLimit {
    /// The file grew past the size limit.
    Size(u64),
    /// Line `line` grew past [`MAX_LINE_BYTES`].
    Line(usize),
    /// Reading failed.
    Io(std::io::Error),
}

/// Reads `reader` to its end, but stops as soon as it has given more than `max_bytes`, or a line
/// of more than [`MAX_LINE_BYTES`] (so `/dev/zero` or a binary file costs one limit's worth of
/// memory, not all it has).
fn read_limited(mut reader: impl Read, max_bytes: u64) -> Result<Vec<u8>, ReadLimit> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    let (mut line, mut line_len) = (1usize, 0usize);
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadLimit::Io(e)),
        };
        if out.len() as u64 + n as u64 > max_bytes {
            return Err(ReadLimit::Size(max_bytes));
        }
        for &b in &chunk[..n] {
            if b == b'\n' {
                line += 1;
                line_len = 0;
            } else {
                line_len += 1;
                if line_len > MAX_LINE_BYTES {
                    return Err(ReadLimit::Line(line));
                }
            }
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

impl ListReadArgs {
    /// Reads the list or query file `path` (`-`: standard input) whole, within the limits: a
    /// directory, a file over `--max-list-size` and a line over 16 MiB are refused with an error
    /// naming the file and the limit, before more than that is read.
    pub fn read(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        let name = path.display();
        let result = if path.as_os_str() == "-" {
            read_limited(std::io::stdin().lock(), self.max_list_size)
        } else {
            let meta = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
            anyhow::ensure!(
                !meta.is_dir(),
                "{name} is a directory; a list is one file (give the file inside it)"
            );
            let file = std::fs::File::open(path).with_context(|| format!("cannot read {name}"))?;
            read_limited(file, self.max_list_size)
        };
        result.map_err(|e| match e {
            ReadLimit::Size(max) => anyhow::anyhow!(
                "{name} is larger than {max} bytes, the --max-list-size limit; nothing was read from it (raise the limit to read a larger list)"
            ),
            ReadLimit::Line(line) => anyhow::anyhow!(
                "{name}:{line}: a line longer than {MAX_LINE_BYTES} bytes, longer than any list line can be (the longest is a vPDQ value of {} frames); not a list file, nothing was read from it",
                hashguard_hashlist::MAX_VPDQ_FRAMES
            ),
            ReadLimit::Io(e) => anyhow::Error::new(e).context(format!("cannot read {name}")),
        })
    }

    /// Parses the list file `path` (already read into `bytes`): every bad line reported as
    /// `FILE:LINE: reason` (see [`report_parse_error`]), and repeats merged or refused as
    /// `--strict` says; the number of merged lines goes to stderr.
    pub fn parse(
        &self,
        path: &Path,
        bytes: &[u8],
        signal_type: SignalType,
        format: Option<Format>,
    ) -> anyhow::Result<ParsedList> {
        let repeats = if self.strict {
            Repeats::Refuse
        } else {
            Repeats::Merge
        };
        let list = parse_list_with(bytes, signal_type, format, repeats)
            .map_err(|e| report_parse_error(path, e))?;
        if list.merged() > 0 {
            eprintln!(
                "hashguard: {}: {} line(s) repeat a value of an earlier line and were merged into its entry ({} entries; --strict refuses repeats)",
                path.display(),
                list.merged(),
                list.items().len()
            );
        }
        Ok(list)
    }
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Bank name.
    name: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::LocalFile)]
    format: FormatArg,
    /// The list as it stood at this version (default: the latest).
    #[arg(long)]
    version: Option<u64>,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StatsArgs {
    /// Banks to show (default: all).
    names: Vec<String>,
    /// One JSON object per bank instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ConsensusArgs {
    /// Signal type of the view.
    #[arg(long, default_value = "pdq")]
    signal_type: String,
    /// N: minimum number of supporting organisations.
    #[arg(long, default_value_t = 2)]
    min_organisations: usize,
    /// M: minimum number of supporting jurisdictions.
    #[arg(long, default_value_t = 2)]
    min_jurisdictions: usize,
    /// d: PDQ distance within which two organisations' hashes support the same item.
    #[arg(long, default_value_t = 10)]
    distance: u32,
    /// Output format of the view.
    #[arg(long, value_enum, default_value_t = FormatArg::LocalFile)]
    format: FormatArg,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

/// Runs `hashguard list ...`.
pub fn run(args: ListArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        // Only `create` may create a SQLite file; reading commands open it read-only.
        let access = match args.command {
            ListCommand::Create(_) => OpenMode::Create,
            ListCommand::Update(_) | ListCommand::Import(_) | ListCommand::SecondHash(_) => {
                OpenMode::Write
            }
            ListCommand::Export(_) | ListCommand::Stats(_) | ListCommand::Consensus(_) => {
                OpenMode::Read
            }
        };
        let store = args.db.open(access).await?;
        let result = match args.command {
            ListCommand::Create(a) => create(&store, a).await,
            ListCommand::Update(a) => update(&store, a).await,
            ListCommand::Import(a) => import(&store, a).await,
            ListCommand::Export(a) => export(&store, a).await,
            ListCommand::Stats(a) => stats(&store, a).await,
            ListCommand::Consensus(a) => consensus_view(&store, a).await,
            ListCommand::SecondHash(a) => second_hash(&store, a).await,
        };
        store.close().await;
        result
    })
}

fn bank_name(s: &str) -> anyhow::Result<BankName> {
    s.parse().map_err(|e| anyhow::anyhow!("{e}"))
}

async fn existing_bank(store: &Store, name: &BankName) -> anyhow::Result<Bank> {
    store
        .bank(name)
        .await?
        .with_context(|| format!("no bank named {name} (see `hashguard list stats`)"))
}

async fn create(store: &Store, a: CreateArgs) -> anyhow::Result<ExitCode> {
    let signal_type: SignalType = a.signal_type.parse()?;
    let kind = match a.kind {
        KindArg::Block => BankKind::Block,
        KindArg::Allow => BankKind::Allow,
    };
    let mut bank = Bank::new(
        bank_name(&a.name)?,
        &a.org,
        a.jurisdiction.parse()?,
        signal_type,
        kind,
    )?;
    if let Some(t) = a.threshold {
        bank = bank.with_threshold(t)?;
    }
    bank = bank.with_enabled(!a.disabled);
    store.create_bank(&bank).await?;
    eprintln!(
        "created {} bank {} ({}, {}), threshold {}{}",
        bank.signal_type(),
        bank.name(),
        bank.organisation(),
        bank.jurisdiction(),
        bank.threshold(),
        if bank.enabled() { "" } else { ", disabled" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn second_hash(store: &Store, a: SecondHashArgs) -> anyhow::Result<ExitCode> {
    let name = bank_name(&a.name)?;
    let bank = existing_bank(store, &name).await?;
    if bank.signal_type() != SignalType::Pdq {
        anyhow::bail!(
            "bank {name} holds {} values; second hashes belong to PDQ entries",
            bank.signal_type()
        );
    }
    let entries = store.entries(&name).await?;
    let by =
        a.by.or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".to_string());
    let mut hasher = Hasher::new(Options::default());
    let mut failed = 0usize;
    for path in &a.images {
        let shown = path.display();
        let recorded = async {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {shown}"))?;
            let pdq = match hasher.hash_bytes(&bytes)? {
                Hashed::Image { hash, .. } => hash.hash,
                Hashed::Video { .. } => anyhow::bail!("a video; second hashes are for images"),
            };
            let second = hasher.second_hash_bytes(&bytes)?;
            let Some((value, distance)) = entry_for_original(&entries, &pdq, bank.threshold())
            else {
                anyhow::bail!(
                    "its PDQ {pdq} is not within {} of any live entry of bank {name}",
                    bank.threshold()
                );
            };
            store
                .set_second_hash(&name, &value, &second.to_hex(), &by, unix_now())
                .await?;
            anyhow::Ok((value, distance, second))
        }
        .await;
        match recorded {
            Ok((value, distance, second)) => {
                println!("{shown}: entry {value} (PDQ distance {distance}): second hash {second}")
            }
            Err(e) => {
                failed += 1;
                eprintln!("{shown}: {e:#}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} images recorded nothing", a.images.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn update(store: &Store, a: UpdateArgs) -> anyhow::Result<ExitCode> {
    let name = bank_name(&a.name)?;
    let mut bank = existing_bank(store, &name).await?;
    if let Some(t) = a.threshold {
        bank = bank.with_threshold(t)?;
    }
    if a.enable || a.disable {
        bank = bank.with_enabled(a.enable);
    }
    store.update_bank(&bank).await?;
    eprintln!(
        "bank {}: threshold {}, {}",
        bank.name(),
        bank.threshold(),
        if bank.enabled() {
            "enabled"
        } else {
            "disabled"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints every bad line of a refused list, `FILE:LINE: reason`, and the summary error.
pub fn report_parse_error(file: &Path, err: ParseError) -> anyhow::Error {
    if let ParseError::BadLines { format, lines } = &err {
        for bad in lines {
            eprintln!("{}:{}: {}", file.display(), bad.line, bad.reason);
        }
        anyhow::anyhow!(
            "{}: {} bad line(s) in a {format} list; nothing was read from it",
            file.display(),
            lines.len()
        )
    } else {
        anyhow::anyhow!("{}: {err}", file.display())
    }
}

async fn import(store: &Store, a: ImportArgs) -> anyhow::Result<ExitCode> {
    let name = bank_name(&a.name)?;
    let bank = existing_bank(store, &name).await?;
    let bytes = a.read.read(&a.file)?;
    let list = a.read.parse(
        &a.file,
        &bytes,
        bank.signal_type(),
        a.format.map(Format::from),
    )?;
    if list.items().is_empty() && !a.allow_empty {
        let live = store.export(&name, None).await?.len();
        anyhow::bail!(
            "{}: no entry (an empty or comments-only file); importing it would remove all {live} entries of bank {name}. Nothing was imported; pass --allow-empty to import an empty list",
            a.file.display()
        );
    }
    let by =
        a.by.or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".to_string());
    let source = a.file.display().to_string();
    let meta = ImportMeta::new(&by, Some(&source), &bytes);
    let (version, outcome) = match a.version {
        Some(v) => {
            let version = Version::chosen(v).with_context(|| {
                format!(
                    "--version {v}: a list's version must be 1 to {} (2^53), so that the bank can always take a next version",
                    Version::MAX_CHOSEN
                )
            })?;
            (version, store.import(&name, &list, version, &meta).await?)
        }
        None => {
            let next = store.import_next(&name, &list, &meta).await?;
            (next.version, next.outcome)
        }
    };
    match outcome {
        ImportOutcome::NoOp => eprintln!(
            "{name}: {} is version {version} already; nothing imported",
            a.file.display()
        ),
        ImportOutcome::Imported {
            version,
            added,
            removed,
            unchanged,
        } => eprintln!(
            "{name}: imported version {version} ({} format, {} items): {added} added, {removed} removed, {unchanged} unchanged",
            list.format(),
            list.items().len()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write output")
        }
    }
}

async fn export(store: &Store, a: ExportArgs) -> anyhow::Result<ExitCode> {
    let name = bank_name(&a.name)?;
    let bank = existing_bank(store, &name).await?;
    let version = a
        .version
        .map(|v| Version::new(v).context("versions start at 1"))
        .transpose()?;
    let items = store.export(&name, version).await?;
    // Each entry's own collab, category and tags: a CSV import exports back unchanged.
    let text = write_list(a.format.into(), bank.signal_type(), &items)?;
    write_out(a.out.as_deref(), &text)?;
    Ok(ExitCode::SUCCESS)
}

async fn stats(store: &Store, a: StatsArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<BankName> = if a.names.is_empty() {
        store
            .banks()
            .await?
            .iter()
            .map(|b| b.name().clone())
            .collect()
    } else {
        a.names
            .iter()
            .map(|n| bank_name(n))
            .collect::<anyhow::Result<_>>()?
    };
    let mut out = String::new();
    if !a.json {
        out.push_str("bank\tsignal\tkind\tenabled\tthreshold\torganisation\tjurisdiction\tversion\tlive\ttombstones\tlast import\n");
    }
    for name in &names {
        let s = store.stats(name).await?;
        let b = &s.bank;
        let last = s.last_import.as_ref();
        if a.json {
            let obj = serde_json::json!({
                "bank": b.name().as_str(),
                "signal_type": b.signal_type().as_str(),
                "kind": b.kind().as_str(),
                "enabled": b.enabled(),
                "threshold": b.threshold(),
                "organisation": b.organisation().as_str(),
                "jurisdiction": b.jurisdiction().as_str(),
                "latest_version": s.latest_version.map(Version::get),
                "versions": s.versions,
                "live": s.live,
                "tombstones": s.tombstones,
                "last_import": last.map(|r| serde_json::json!({
                    "version": r.version.get(),
                    "imported_at": r.imported_at,
                    "imported_by": r.imported_by,
                    "source": r.source_name,
                    "file_sha256": r.file_sha256,
                    "format": r.format,
                    "items": r.items,
                    "added": r.added,
                    "removed": r.removed,
                })),
            });
            out.push_str(&format!("{obj}\n"));
        } else {
            out.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                b.name(),
                b.signal_type(),
                b.kind().as_str(),
                if b.enabled() { "yes" } else { "no" },
                b.threshold(),
                b.organisation(),
                b.jurisdiction(),
                s.latest_version.map_or("-".to_string(), |v| v.to_string()),
                s.live,
                s.tombstones,
                last.map_or("-".to_string(), |r| format!(
                    "v{} by {} from {} (+{} -{})",
                    r.version,
                    r.imported_by,
                    r.source_name.as_deref().unwrap_or("-"),
                    r.added,
                    r.removed
                )),
            ));
        }
    }
    write_out(None, &out)?;
    Ok(ExitCode::SUCCESS)
}

async fn consensus_view(store: &Store, a: ConsensusArgs) -> anyhow::Result<ExitCode> {
    let signal_type: SignalType = a.signal_type.parse()?;
    let params = ConsensusParams::new(a.min_organisations, a.min_jurisdictions, a.distance)?;
    let loaded = store.load_enabled(Some(signal_type)).await?;
    let banks: Vec<BankEntries<'_>> = loaded.iter().map(BankEntries::from).collect();
    let view = consensus(signal_type, &banks, &params);
    let items: Vec<ListItem> = view
        .iter()
        .map(|c| ListItem::new(c.value.clone(), c.quality))
        .collect::<Result<_, _>>()?;
    let text = write_list(a.format.into(), signal_type, &items)?;
    write_out(a.out.as_deref(), &text)?;
    let block_banks = loaded
        .iter()
        .filter(|l| l.bank.kind() == BankKind::Block)
        .count();
    eprintln!(
        "consensus: {} {signal_type} values supported by >= {} organisations in >= {} jurisdictions (d = {}), from {block_banks} enabled block banks",
        items.len(),
        params.min_organisations(),
        params.min_jurisdictions(),
        params.max_distance()
    );
    Ok(ExitCode::SUCCESS)
}

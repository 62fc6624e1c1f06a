//! `hashguard match`: hash images (PDQ, plus MD5 and SHA-256 of the bytes for exact banks) and
//! videos (vPDQ frames, plus MD5 and SHA-256 of the bytes) and print every match in the enabled
//! banks of the database or in one list file; or, with `--hashes`, match the lines of a query
//! file against a list file. The matching is `hashguard_service::banks`; this file parses the
//! flags and prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hashguard_hashing::Hasher;
use hashguard_hashlist::{detect_signal_type, parse_queries, Hit, Lookup, QueryLine, SignalType};
use hashguard_index::Scratch;
use hashguard_service::banks::{BankSet, Query, VideoHit};
use rayon::prelude::*;

use crate::db::{runtime, DbArgs};
use crate::hashing::{for_each_in_order, hash_input, progress_bar, worker_pool, MediaArgs};
use crate::inputs::{expand, Input};
use crate::list_cmd::{report_parse_error, FormatArg, ListReadArgs};
use crate::output::{csv_field, csv_path, json_path};
use hashguard_store::OpenMode;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `path,bank,entry_id,signal_type,distance` per match (with `--hashes`:
    /// `query_line,list_line,distance`); no header line.
    Csv,
    /// One JSON object per match, with the query and matched values added.
    Json,
}

/// Arguments of `hashguard match`.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Images or videos, directories (walked recursively) or `-` for standard input.
    #[arg(required_unless_present = "hashes", conflicts_with = "hashes")]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    db: DbArgs,
    /// Match against this list file instead of the database's banks.
    #[arg(long, conflicts_with = "db", value_name = "FILE")]
    list: Option<PathBuf>,
    /// Format of the list file (default: detected).
    #[arg(long, value_enum, requires = "list")]
    list_format: Option<FormatArg>,
    /// Signal type of the list file: pdq, md5, sha256 or vpdq (default: named by its lines,
    /// else pdq).
    #[arg(long, requires = "list")]
    signal_type: Option<String>,
    /// How the list file is read (`--strict`, `--max-list-size`).
    #[command(flatten)]
    list_read: ListReadArgs,
    /// Match the hash lines of this file (any list format) instead of images; prints
    /// `query_line,list_line,distance` for every pair within the radius. Needs --list.
    #[arg(long, requires = "list", value_name = "QUERIES")]
    hashes: Option<PathBuf>,
    /// Largest PDQ distance that matches, for every block bank (default: each bank's own
    /// threshold; 31 for a list file).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=256))]
    radius: Option<u32>,
    /// Images whose PDQ quality is below this are not PDQ-matched (the field's rule: 50);
    /// their MD5/SHA-256 still are.
    #[arg(long, default_value_t = hashguard_pdq::QUALITY_THRESHOLD)]
    min_quality: u8,
    /// Also look up the 7 rotated and mirrored variants of each image's PDQ hash (catches
    /// flipped and rotated copies; JSON names the variant that matched).
    #[arg(long)]
    dihedral: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    media: MediaArgs,
}

/// Runs `hashguard match`; exits 1 if any input failed.
pub fn run(args: MatchArgs) -> anyhow::Result<ExitCode> {
    // A bad --threads is a usage error before any list is loaded.
    crate::hashing::thread_count(args.threads)?;
    let banks = match &args.list {
        Some(path) => load_list_file(path, &args)?,
        None => load_database(&args)?,
    };
    match &args.hashes {
        Some(queries) => match_hash_lines(&args, &banks, queries),
        None => match_media(&args, &banks),
    }
}

fn load_list_file(path: &Path, args: &MatchArgs) -> anyhow::Result<BankSet> {
    let bytes = args.list_read.read(path)?;
    let format = args.list_format.map(Into::into);
    let signal_type = match &args.signal_type {
        Some(t) => t.parse()?,
        None => detect_signal_type(&bytes, format).unwrap_or(SignalType::Pdq),
    };
    let list = args.list_read.parse(path, &bytes, signal_type, format)?;
    let lines = list.line_numbers().to_vec();
    Ok(BankSet::from_list(
        signal_type,
        list.into_items(),
        lines,
        path.display().to_string(),
        args.radius,
    )?)
}

fn load_database(args: &MatchArgs) -> anyhow::Result<BankSet> {
    let banks = runtime()?.block_on(async {
        let store = args.db.open(OpenMode::Read).await?;
        let banks = BankSet::load(&store, args.radius).await;
        store.close().await;
        anyhow::Ok(banks?)
    })?;
    if !banks.has_block_bank() {
        eprintln!(
            "hashguard: warning: the {} has no enabled block bank; nothing can match",
            args.db.location().describe()
        );
    }
    Ok(banks)
}

fn match_media(args: &MatchArgs, banks: &BankSet) -> anyhow::Result<ExitCode> {
    let inputs = expand(&args.paths);
    if inputs.iter().filter(|i| **i == Input::Stdin).count() > 1 {
        anyhow::bail!("`-` (standard input) can be given only once");
    }
    let pool = &worker_pool(args.threads, inputs.len())?;
    let options = args.media.options(args.dihedral, true);
    let progress = progress_bar(inputs.len());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut matched_inputs = 0usize;
    let failures = for_each_in_order(
        pool,
        &progress,
        &inputs,
        &mut out,
        || (Hasher::new(options), Scratch::new()),
        |(hasher, scratch), input| {
            hash_input(hasher, input)
                .map(|hashed| banks.match_media(&hashed, args.min_quality, scratch))
        },
        |out, input, matched| {
            let name = &input.display_name();
            if !matched.suppressed_by.is_empty() {
                let allow: Vec<&str> = matched
                    .suppressed_by
                    .iter()
                    .map(|&b| banks.label(b))
                    .collect();
                progress.suspend(|| {
                    eprintln!(
                        "hashguard: {name}: matches suppressed by allow bank(s) {}",
                        allow.join(", ")
                    )
                });
            }
            for (qi, hit) in &matched.reported {
                let line = match_line(args.format, banks, input, &matched.queries[*qi], hit);
                out.write_all(&line).context("cannot write output")?;
            }
            for hit in &matched.videos {
                let line = video_line(args.format, banks, input, hit);
                out.write_all(&line).context("cannot write output")?;
            }
            matched_inputs += usize::from(matched.any());
            Ok(())
        },
    )?;
    out.flush().context("cannot write output")?;
    progress.finish_and_clear();
    eprintln!(
        "hashguard: {matched_inputs} of {} inputs matched{}",
        inputs.len(),
        if failures > 0 {
            format!(", {failures} failed")
        } else {
            String::new()
        }
    );
    Ok(if failures > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A CSV line that starts with the input's exact name.
fn csv_line(input: &Input, rest: std::fmt::Arguments<'_>) -> Vec<u8> {
    let mut line = csv_path(input);
    line.extend_from_slice(format!(",{rest}\n").as_bytes());
    line
}

fn match_line(format: Format, banks: &BankSet, input: &Input, query: &Query, hit: &Hit) -> Vec<u8> {
    let Some(item) = banks.item(hit.bank, hit.item) else {
        return Vec::new();
    };
    let bank = banks.label(hit.bank);
    let entry_id = BankSet::entry_id(item);
    let signal_type = query.value.signal_type();
    match format {
        Format::Csv => csv_line(
            input,
            format_args!(
                "{},{},{signal_type},{}",
                csv_field(bank),
                csv_field(&entry_id),
                hit.distance
            ),
        ),
        Format::Json => {
            let mut obj = serde_json::json!({
                "bank": bank,
                "entry_id": entry_id,
                "signal_type": signal_type.as_str(),
                "distance": hit.distance,
                "query": query.value.to_string(),
                "matched": item.value().to_string(),
            });
            if let Some(q) = query.quality {
                obj["quality"] = q.into();
            }
            if let Some(v) = query.variant {
                obj["variant"] = v.into();
            }
            if let Some(line) = banks.list_line(hit.item) {
                obj["list_line"] = line.into();
            }
            json_path(&mut obj, input);
            format!("{obj}\n").into_bytes()
        }
    }
}

/// One vPDQ match: the CSV's last column is the query match percentage (the share of the
/// video's distinct good frames that match the entry); JSON gives both percentages.
fn video_line(format: Format, banks: &BankSet, input: &Input, hit: &VideoHit) -> Vec<u8> {
    let Some(item) = banks.item(hit.bank, hit.item) else {
        return Vec::new();
    };
    let bank = banks.label(hit.bank);
    let entry_id = BankSet::entry_id(item);
    match format {
        Format::Csv => csv_line(
            input,
            format_args!(
                "{},{},vpdq,{:.2}",
                csv_field(bank),
                csv_field(&entry_id),
                hit.query_percent
            ),
        ),
        Format::Json => {
            let mut obj = serde_json::json!({
                "bank": bank,
                "entry_id": entry_id,
                "signal_type": "vpdq",
                "query_percent": hit.query_percent,
                "compared_percent": hit.compared_percent,
            });
            if let Some(line) = banks.list_line(hit.item) {
                obj["list_line"] = line.into();
            }
            json_path(&mut obj, input);
            format!("{obj}\n").into_bytes()
        }
    }
}

/// Queries looked up at once by `--hashes`: their result lines are written before the next
/// chunk is searched, so output starts at once and memory stays bounded at any radius.
const QUERY_CHUNK: usize = 256;

fn match_hash_lines(
    args: &MatchArgs,
    banks: &BankSet,
    queries_path: &Path,
) -> anyhow::Result<ExitCode> {
    let bytes = args.list_read.read(queries_path)?;
    let signal_type = banks.first_signal_type().unwrap_or(SignalType::Pdq);
    anyhow::ensure!(
        signal_type != SignalType::Vpdq,
        "--hashes matches single hash values; a vpdq list is matched by giving videos instead"
    );
    let queries = parse_queries(&bytes, signal_type, None)
        .map_err(|e| report_parse_error(queries_path, e))?;
    let pool = worker_pool(args.threads, queries.len())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut pairs = 0u64;
    for chunk in queries.chunks(QUERY_CHUNK) {
        let formatted: Vec<(u64, String)> = pool.install(|| {
            chunk
                .par_iter()
                .map_init(Scratch::new, |scratch, q| {
                    let lookup = banks.lookup(&q.value, scratch);
                    query_result_lines(args.format, banks, q, &lookup)
                })
                .collect()
        });
        for (count, text) in formatted {
            pairs += count;
            out.write_all(text.as_bytes())
                .context("cannot write output")?;
        }
    }
    out.flush().context("cannot write output")?;
    eprintln!(
        "hashguard: {pairs} pair(s) within the radius, {} queries against {} listed values",
        queries.len(),
        banks.list_len()
    );
    Ok(ExitCode::SUCCESS)
}

/// One query's result lines, closest first (then by list line), and how many there are.
fn query_result_lines(
    format: Format,
    banks: &BankSet,
    q: &QueryLine,
    lookup: &Lookup,
) -> (u64, String) {
    let mut hits: Vec<(usize, u32, &Hit)> = lookup
        .block
        .iter()
        .map(|h| (banks.list_line(h.item).unwrap_or(0), h.distance, h))
        .collect();
    hits.sort_by_key(|&(line, distance, _)| (distance, line));
    let mut text = String::new();
    for &(list_line, distance, hit) in &hits {
        match format {
            Format::Csv => text.push_str(&format!("{},{list_line},{distance}\n", q.line)),
            Format::Json => {
                let matched = banks
                    .item(hit.bank, hit.item)
                    .map(|i| i.value().to_string())
                    .unwrap_or_default();
                let obj = serde_json::json!({
                    "query_line": q.line,
                    "list_line": list_line,
                    "distance": distance,
                    "query": q.value.to_string(),
                    "matched": matched,
                });
                text.push_str(&format!("{obj}\n"));
            }
        }
    }
    (hits.len() as u64, text)
}

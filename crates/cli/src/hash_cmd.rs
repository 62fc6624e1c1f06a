//! `hashguard hash`: PDQ hashes of images and vPDQ hashes of videos, in the PDQ CLI's CSV
//! convention or JSON lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use hashguard_hashing::{Hashed, Hasher};

use crate::hashing::{for_each_in_order, hash_input, progress_bar, worker_pool, MediaArgs};
use crate::inputs::{expand, Input};
use crate::output::{csv_path, json_path};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `hash,quality,path` per image (the PDQ CLI convention); per hashed video frame the vPDQ
    /// line `frame,quality,hash,timestamp` followed by `,path`. The path is quoted as RFC
    /// 4180 says when it holds a comma, quote or line break, and written as its exact bytes.
    Csv,
    /// One JSON object per line: `{"path","pdq","quality"}` (+ `"dihedral"`) for an image,
    /// `{"path","vpdq":[{"frame","quality","pdq","timestamp"}...]}` for a video; a path that
    /// is not UTF-8 also gets `"path_base64"`, its exact bytes.
    Json,
}

/// Arguments of `hashguard hash`.
#[derive(Debug, Args)]
pub struct HashArgs {
    /// Image files, directories (walked recursively) or `-` for standard input.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Also output the 7 dihedral variants (rotations and mirrors), JSON only.
    #[arg(long, requires = "format")]
    dihedral: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    media: MediaArgs,
}

fn format_lines(format: Format, input: &Input, hashed: &Hashed) -> Vec<u8> {
    match (format, hashed) {
        (Format::Csv, Hashed::Image { hash, .. }) => {
            let mut line = format!("{},{},", hash.hash, hash.quality).into_bytes();
            line.extend_from_slice(&csv_path(input));
            line.push(b'\n');
            line
        }
        (Format::Csv, Hashed::Video { features, .. }) => {
            let path = csv_path(input);
            let mut lines = Vec::new();
            for f in features {
                lines.extend_from_slice(format!("{f},").as_bytes());
                lines.extend_from_slice(&path);
                lines.push(b'\n');
            }
            lines
        }
        (Format::Json, Hashed::Image { hash, dihedral, .. }) => {
            let mut obj = serde_json::json!({
                "pdq": hash.hash.to_string(),
                "quality": hash.quality,
            });
            json_path(&mut obj, input);
            if let Some(d) = dihedral {
                let variants: serde_json::Map<String, serde_json::Value> = d
                    .named_variants()
                    .iter()
                    .map(|(name, h)| (name.to_string(), serde_json::Value::String(h.to_string())))
                    .collect();
                obj["dihedral"] = serde_json::Value::Object(variants);
            }
            format!("{obj}\n").into_bytes()
        }
        (Format::Json, Hashed::Video { features, .. }) => {
            let frames: Vec<serde_json::Value> = features
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "frame": f.frame,
                        "quality": f.quality,
                        "pdq": f.hash.to_string(),
                        "timestamp": format!("{:.3}", f.timestamp).parse::<f64>().unwrap_or(0.0),
                    })
                })
                .collect();
            let mut obj = serde_json::json!({ "vpdq": frames });
            json_path(&mut obj, input);
            format!("{obj}\n").into_bytes()
        }
    }
}

/// Runs `hashguard hash`; exits 1 if any input failed.
pub fn run(args: HashArgs) -> anyhow::Result<ExitCode> {
    if args.dihedral && args.format != Format::Json {
        anyhow::bail!("--dihedral needs --format json (the CSV format has one hash per line)");
    }
    let inputs = expand(&args.paths);
    if inputs.iter().filter(|i| **i == Input::Stdin).count() > 1 {
        anyhow::bail!("`-` (standard input) can be given only once");
    }
    let options = args.media.options(args.dihedral, false);
    let pool = worker_pool(args.threads, inputs.len())?;
    let progress = progress_bar(inputs.len());

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let failures = for_each_in_order(
        &pool,
        &progress,
        &inputs,
        &mut out,
        || Hasher::new(options),
        hash_input,
        |out, input, hashed| {
            out.write_all(&format_lines(args.format, input, &hashed))
                .context("cannot write output")
        },
    )?;
    out.flush().context("cannot write output")?;
    progress.finish_and_clear();
    if failures > 0 {
        eprintln!("hashguard: {failures} of {} inputs failed", inputs.len());
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

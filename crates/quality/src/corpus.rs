//! The benign corpus manifest: images under `<dir>/<package>/...` (as bench/quality/corpus.sh
//! extracts them), decoded with crates/media, PDQ-hashed with crates/pdq, filtered and
//! deduplicated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hashguard_pdq::{Hash256, PdqHasher, RgbImage as PdqRgb};
use rayon::prelude::*;

/// One image of the corpus (a manifest row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Debian package it came from (the first path component under the corpus folder).
    pub package: String,
    /// Its path inside the package.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// PDQ hash.
    pub pdq: Hash256,
    /// PDQ quality (0..=100).
    pub quality: u8,
}

/// The filters applied before deduplication.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    /// Lowest PDQ quality kept (the protocol's q_min, 50: the client sends no real probe below
    /// it, and the field drops such hashes).
    pub q_min: u8,
    /// Smallest width and height kept (smaller images are icons and sprites that PDQ upscales).
    pub min_side: u32,
    /// Images within this PDQ distance of an image kept earlier are dropped.
    pub radius: u32,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            q_min: 50,
            min_side: 64,
            radius: 31,
        }
    }
}

/// What happened to every file looked at.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Files looked at.
    pub files: usize,
    /// Files that did not decode (not an image, or a format or variant not supported).
    pub undecodable: usize,
    /// Decoded but smaller than `min_side`.
    pub too_small: usize,
    /// Decoded but of quality below `q_min`.
    pub low_quality: usize,
    /// Dropped as within `radius` of an image kept earlier.
    pub near_duplicates: usize,
    /// Kept.
    pub kept: usize,
}

/// Hashes one file; `None` if it does not decode.
fn hash_file(root: &Path, file: &Path) -> Option<Entry> {
    let bytes = std::fs::read(file).ok()?;
    hashguard_media::sniff(&bytes)?;
    let d = hashguard_media::decode(&bytes, &hashguard_media::DecodeOptions::default()).ok()?;
    let rgb = PdqRgb::new(&d.rgb, d.width, d.height).ok()?;
    let out = PdqHasher::new().hash_rgb(&rgb);
    let rel = file.strip_prefix(root).ok()?;
    let mut comps = rel.components();
    let package = comps.next()?.as_os_str().to_str()?.to_owned();
    let path = comps.as_path().to_str()?.to_owned();
    Some(Entry {
        package,
        path,
        size: bytes.len() as u64,
        width: u32::try_from(d.width).ok()?,
        height: u32::try_from(d.height).ok()?,
        pdq: out.hash,
        quality: out.quality,
    })
}

/// Scans `root` (every regular file, in name order), hashes in parallel, filters and
/// deduplicates greedily in (package, path) order: an image is kept unless it is within
/// `filter.radius` of one kept before it.
pub fn build(root: &Path, filter: Filter) -> Result<(Vec<Entry>, Counts)> {
    let files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name() != ".done")
        .map(|e| e.into_path())
        .collect();
    let hashed: Vec<Option<Entry>> = files.par_iter().map(|f| hash_file(root, f)).collect();
    let mut counts = Counts {
        files: files.len(),
        ..Counts::default()
    };
    let mut kept: Vec<Entry> = Vec::new();
    for h in hashed {
        let Some(e) = h else {
            counts.undecodable += 1;
            continue;
        };
        if e.width.min(e.height) < filter.min_side {
            counts.too_small += 1;
        } else if e.quality < filter.q_min {
            counts.low_quality += 1;
        } else if kept.iter().any(|k| k.pdq.distance(&e.pdq) <= filter.radius) {
            counts.near_duplicates += 1;
        } else {
            kept.push(e);
        }
    }
    counts.kept = kept.len();
    Ok((kept, counts))
}

/// The manifest's header line.
pub const HEADER: &str = "package,path,size,width,height,pdq,quality";

/// Writes the manifest (CSV; paths are quoted when they hold a comma or a quote).
pub fn write_manifest(out: &Path, entries: &[Entry]) -> Result<()> {
    let mut s = String::from(HEADER);
    s.push('\n');
    for e in entries {
        s.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            e.package,
            csv_field(&e.path),
            e.size,
            e.width,
            e.height,
            e.pdq,
            e.quality
        ));
    }
    std::fs::write(out, s).with_context(|| format!("writing {}", out.display()))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Splits one CSV line into fields (RFC 4180 quoting; no line breaks inside fields).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The analysis examples' sample: the entries of `packages` (all when empty) whose long side
/// is at least `min_long`, in a fixed order (FNV-1a of package and path, so that runs with the
/// same `limit` take the same originals whatever the manifest's order), the first `limit`.
pub fn hashed_order_sample(
    mut entries: Vec<Entry>,
    min_long: u32,
    packages: &[String],
    limit: usize,
) -> Vec<Entry> {
    entries.retain(|e| {
        e.width.max(e.height) >= min_long && (packages.is_empty() || packages.contains(&e.package))
    });
    entries.sort_by_key(|e| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in e.package.bytes().chain(e.path.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        h
    });
    entries.truncate(limit);
    entries
}

/// Reads a manifest written by [`write_manifest`].
pub fn read_manifest(path: &Path) -> Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let f = split_csv(line);
        let bad = || format!("{}:{}: bad manifest line", path.display(), i + 1);
        anyhow::ensure!(f.len() == 7, bad());
        out.push(Entry {
            package: f[0].clone(),
            path: f[1].clone(),
            size: f[2].parse().with_context(bad)?,
            width: f[3].parse().with_context(bad)?,
            height: f[4].parse().with_context(bad)?,
            pdq: f[5]
                .parse::<Hash256>()
                .map_err(|e| anyhow::anyhow!("{}: {e}", bad()))?,
            quality: f[6].parse().with_context(bad)?,
        });
    }
    Ok(out)
}

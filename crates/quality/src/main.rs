//! `hashguard-quality`: builds the corpus manifest and measures detection quality (issue 17).
//! See docs/quality.md.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hashguard_protocol::params::{low_frequency_positions, ParamsSpec};
use hashguard_protocol::prelude::{Params, Policy};
use hashguard_quality::{corpus, generated, measure, plots, transforms};

#[derive(Parser)]
#[command(about = "Detection quality of the deployed protocol (issue 17)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hash, filter and deduplicate the extracted corpus; write the manifest.
    Corpus {
        /// The folder of extracted packages (`<dir>/<package>/...`).
        #[arg(long)]
        dir: PathBuf,
        /// The manifest to write.
        #[arg(long, default_value = "bench/quality/corpus.csv")]
        out: PathBuf,
        /// Lowest PDQ quality kept.
        #[arg(long, default_value_t = 50)]
        q_min: u8,
        /// Smallest width and height kept.
        #[arg(long, default_value_t = 64)]
        min_side: u32,
    },
    /// Count chance key matches over all ordered pairs of the corpus.
    Collisions {
        /// The folder of extracted packages.
        #[arg(long)]
        corpus: PathBuf,
        /// The manifest naming the images.
        #[arg(long, default_value = "bench/quality/corpus.csv")]
        manifest: PathBuf,
        /// Write the JSON results here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Use only images from these packages (comma-separated; all when absent).
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// Also measure the rate onto images of these packages (the stand-in list's kind, e.g.
        /// the photo-like ones) from images of every other package.
        #[arg(long, value_delimiter = ',')]
        listed_packages: Vec<String>,
    },
    /// Draw the figures of docs/quality.md (PNG) from `measure --json` and `collisions --json`.
    Plot {
        /// The JSON written by `measure --json`.
        #[arg(long)]
        measure: PathBuf,
        /// The JSON written by `collisions --json` (the list-size and false-flag figures use it).
        #[arg(long)]
        collisions: Option<PathBuf>,
        /// Distinct images a heavy user uploads a year (the false-flag figure).
        #[arg(long, default_value_t = 10_000.0)]
        images_per_year: f64,
        /// Extra per-image chance-open probabilities for the false-flag figure, as NAME=P
        /// (e.g. "calibration.md photos, 1M keys=5e-6").
        #[arg(long = "image-rate")]
        image_rates: Vec<String>,
        /// Folder for the PNG files.
        #[arg(long, default_value = "docs/quality")]
        out: PathBuf,
    },
    /// Measure recall and false opens through the real protocol client and opener.
    Measure {
        /// The folder of extracted packages; with the manifest, the originals.
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// The manifest naming the originals.
        #[arg(long, default_value = "bench/quality/corpus.csv")]
        manifest: PathBuf,
        /// Use this many generated images instead of the corpus.
        #[arg(long)]
        generated: Option<usize>,
        /// Use at most this many originals (a seeded random sample of the manifest).
        #[arg(long)]
        limit: Option<usize>,
        /// Seed of the sample, the split and every transform.
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Write the JSON results here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the markdown tables here (they are printed too).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Use only originals from these packages (comma-separated; all when absent).
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// Use only originals whose long side is at least this many pixels.
        #[arg(long, default_value_t = 0)]
        min_long: u32,
        /// Scale every original down to this long side first (small originals: 512, 256).
        #[arg(long)]
        small: Option<u32>,
        /// Measure only these transforms of the suite, by name (comma-separated, e.g.
        /// `webp-q75,jpeg-q75`; all when absent). Each keeps its seed from the full suite, so
        /// its numbers equal those of a full run.
        #[arg(long, value_delimiter = ',')]
        transforms: Vec<String>,
        /// Key bits k: v1's 48, or another count of the same low-frequency positions (e.g.
        /// protocol.md's 51 for lists above 2M entries), everything else as v1.
        #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u8).range(1..=64))]
        key_bits: u8,
    },
    /// Measure the second-hash candidates (item 6; crates/quality/src/second_hash.rs).
    SecondHash {
        /// The folder of extracted packages.
        #[arg(long)]
        corpus: PathBuf,
        /// The manifest naming the images.
        #[arg(long, default_value = "bench/quality/corpus.csv")]
        manifest: PathBuf,
        /// Originals for the transform suite, images for random pairs, closest PDQ pairs,
        /// crafted collisions.
        #[arg(long, num_args = 4, default_values_t = [300, 1500, 1000, 100])]
        sizes: Vec<usize>,
        /// Use only images from these packages (comma-separated; all when absent).
        #[arg(long, value_delimiter = ',')]
        packages: Vec<String>,
        /// Seed of the samples and transforms.
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Write the JSON results here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Corpus {
            dir,
            out,
            q_min,
            min_side,
        } => {
            let filter = corpus::Filter {
                q_min,
                min_side,
                ..corpus::Filter::default()
            };
            let (entries, counts) = corpus::build(&dir, filter)?;
            corpus::write_manifest(&out, &entries)?;
            let mut per: std::collections::BTreeMap<&str, usize> = Default::default();
            for e in &entries {
                *per.entry(&e.package).or_default() += 1;
            }
            for (p, n) in per {
                eprintln!("{p}: {n}");
            }
            eprintln!("{counts:?}");
            eprintln!(
                "wrote {} distinct images to {}",
                entries.len(),
                out.display()
            );
        }
        Cmd::Plot {
            measure,
            collisions,
            images_per_year,
            image_rates,
            out,
        } => {
            let read = |p: &PathBuf| -> Result<serde_json::Value> {
                let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not JSON", p.display()))
            };
            let measure = read(&measure)?;
            let collisions = collisions.as_ref().map(read).transpose()?;
            let mut extra = Vec::new();
            for r in image_rates {
                let (name, p) = r
                    .rsplit_once('=')
                    .with_context(|| format!("--image-rate {r:?}: expected NAME=P"))?;
                let p: f64 = p
                    .parse()
                    .with_context(|| format!("--image-rate {r:?}: {p:?} is not a number"))?;
                extra.push(plots::ImageRate {
                    name: name.to_owned(),
                    p,
                });
            }
            let params = Params::v1(Policy::Intervene);
            let written = plots::draw_all(
                &plots::PlotInputs {
                    measure: &measure,
                    collisions: collisions.as_ref(),
                    extra_image_rates: extra,
                    images_per_year,
                    probes: u32::from(params.probes()),
                    key_bits: u32::from(params.k()),
                },
                &out,
            )?;
            for p in written {
                println!("{}", p.display());
            }
        }
        Cmd::Collisions {
            corpus: dir,
            manifest,
            json,
            packages,
            listed_packages,
        } => {
            let params = Params::v1(Policy::Intervene);
            let names: Vec<(String, String)> = corpus::read_manifest(&manifest)?
                .into_iter()
                .filter(|e| packages.is_empty() || packages.contains(&e.package))
                .map(|e| (format!("{}/{}", e.package, e.path), e.package))
                .collect();
            let images = hashguard_quality::collisions::hash_all(
                names,
                |name| {
                    let bytes =
                        std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"))?;
                    transforms::decode(&bytes)
                },
                &params,
            )?;
            let report =
                hashguard_quality::collisions::pairwise(&images, &params, &listed_packages);
            println!("{}", report.markdown());
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
        }
        Cmd::Measure {
            corpus: dir,
            manifest,
            generated: gen,
            limit,
            seed,
            json,
            markdown,
            small,
            min_long,
            packages,
            transforms: only,
            key_bits,
        } => {
            let suite = transforms::Transform::suite();
            if let Some(bad) = only.iter().find(|n| !suite.iter().any(|t| t.name() == **n)) {
                let names: Vec<String> = suite.iter().map(|t| t.name()).collect();
                anyhow::bail!(
                    "--transforms: no transform {bad:?}; the suite has {}",
                    names.join(", ")
                );
            }
            let selected: Vec<(usize, transforms::Transform)> = suite
                .into_iter()
                .enumerate()
                .filter(|(_, t)| only.is_empty() || only.contains(&t.name()))
                .collect();
            let mut originals: Vec<measure::Original> = Vec::new();
            if let Some(n) = gen {
                for s in 0..n as u64 {
                    originals.push(measure::Original {
                        name: format!("generated/{s}"),
                        load: Box::new(move || Ok(generated::generated(s, 1024, 768))),
                    });
                }
            } else {
                let dir = Arc::new(dir.context("--corpus DIR (or --generated N) is needed")?);
                let mut entries = corpus::read_manifest(&manifest)?;
                entries.retain(|e| {
                    e.width.max(e.height) >= min_long
                        && (packages.is_empty() || packages.contains(&e.package))
                });
                if let Some(l) = limit {
                    // Seeded sample: sort by a keyed hash of the name, keep the first l.
                    entries.sort_by_key(|e| {
                        let mut h: u64 = seed ^ 0xcbf2_9ce4_8422_2325;
                        for b in e.package.bytes().chain(e.path.bytes()) {
                            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                        }
                        h
                    });
                    entries.truncate(l);
                }
                for e in entries {
                    let dir = Arc::clone(&dir);
                    let name = format!("{}/{}", e.package, e.path);
                    originals.push(measure::Original {
                        name: name.clone(),
                        load: Box::new(move || {
                            let bytes = std::fs::read(dir.join(&name))
                                .with_context(|| format!("reading {name}"))?;
                            transforms::decode(&bytes)
                        }),
                    });
                }
            }
            let params = Params::new(ParamsSpec {
                key_positions: low_frequency_positions(key_bits),
                ..Params::v1(Policy::Intervene).to_spec()
            })
            .with_context(|| format!("--key-bits {key_bits}"))?;
            let report = measure::run_indexed(&originals, &selected, &params, seed, small)?;
            let md = report.markdown();
            println!("{md}");
            if let Some(p) = markdown {
                std::fs::write(&p, &md).with_context(|| format!("writing {}", p.display()))?;
            }
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
        }
        Cmd::SecondHash {
            corpus: dir,
            manifest,
            sizes,
            packages,
            seed,
            json,
        } => {
            let mut entries = corpus::read_manifest(&manifest)?;
            entries.retain(|e| {
                (packages.is_empty() || packages.contains(&e.package))
                    && dir.join(&e.package).join(&e.path).is_file()
            });
            let report =
                hashguard_quality::second_hash::run(hashguard_quality::second_hash::Setup {
                    dir: &dir,
                    entries,
                    originals: sizes[0],
                    pair_images: sizes[1],
                    close_pairs: sizes[2],
                    crafted: sizes[3],
                    seed,
                })?;
            println!("{}", report.markdown());
            if let Some(p) = json {
                std::fs::write(&p, serde_json::to_string_pretty(&report)?)?;
            }
        }
    }
    Ok(())
}

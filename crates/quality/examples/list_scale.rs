//! What a list of 1M or 10M entries does (issue 17 item 3, "directly against a stand-in list"):
//! the listed corpus images (`--listed-packages`, e.g. the photo-like part) are put into a list
//! filled up to `--size` entries with stand-in hashes (uniform random 256-bit values, as
//! bench/table uses; no real list), the table build's key selection (`separate_related`, as
//! `hashguard table build` runs it) is timed, the corpus images whose keys it prunes are counted
//! (their copies can never open), and then every other corpus image's voucher probes (all 237 of
//! v1 under `intervene`, dihedral variants hashed from pixels as the SDK does) are looked up in
//! the kept keys: the chance opens an innocent image gets from that list, counted directly
//! instead of extrapolated from the pairwise rate.
//!
//! ```sh
//! cargo run --release -p hashguard-quality --example list_scale -- \
//!     --corpus ~/.cache/hashguard-corpus/extract --listed-packages <list> --size 1000000 [--k 51] \
//!     [--threads 1 --threads 2]
//! ```
//!
//! Each `--threads` value runs the separation again on that many threads (timed), and the run
//! stops with an error if two of them keep different keys.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use hashguard_pdq::Hash256;
use hashguard_protocol::keys::separate_related_with_threads;
use hashguard_protocol::prelude::*;
use hashguard_quality::{collisions, corpus, transforms};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

struct Args {
    corpus: Option<PathBuf>,
    manifest: PathBuf,
    listed: Vec<String>,
    sizes: Vec<usize>,
    seed: u64,
    k: u8,
    threads: Vec<usize>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        corpus: None,
        manifest: PathBuf::from("bench/quality/corpus.csv"),
        listed: Vec::new(),
        sizes: Vec::new(),
        seed: 17,
        k: 48,
        threads: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--corpus" => a.corpus = Some(v.into()),
            "--manifest" => a.manifest = v.into(),
            "--listed-packages" => a.listed = v.split(',').map(str::to_owned).collect(),
            "--size" => a.sizes.push(v.parse()?),
            "--seed" => a.seed = v.parse()?,
            "--k" => a.k = v.parse()?,
            "--threads" => a.threads.push(v.parse()?),
            _ => anyhow::bail!("unknown flag {k}"),
        }
    }
    if a.sizes.is_empty() {
        a.sizes = vec![1_000_000];
    }
    if a.threads.is_empty() {
        a.threads = vec![1];
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = args()?;
    // v1 under `intervene`, with protocol.md's k = 51 for lists above 2M entries on request
    // (`--k 51`: the next low-frequency positions, protocol.md 3.3).
    let params = Params::new(ParamsSpec {
        key_positions: low_frequency_positions(a.k),
        ..Params::v1(Policy::Intervene).to_spec()
    })?;
    println!("k = {}, P = {}", params.k(), params.probes());
    let entries = corpus::read_manifest(&a.manifest)?;
    let is_listed = |p: &str| a.listed.iter().any(|l| l == p);
    let listed: Vec<Hash256> = entries
        .iter()
        .filter(|e| is_listed(&e.package))
        .map(|e| e.pdq)
        .collect();
    println!(
        "{} listed corpus images (packages {:?}), {} other corpus images",
        listed.len(),
        a.listed,
        entries.len() - listed.len()
    );
    // The probers: every other corpus image, with every probe of its voucher.
    let probers: Vec<collisions::HashedImage> = match &a.corpus {
        Some(dir) => {
            let t = Instant::now();
            let names = entries
                .iter()
                .filter(|e| !is_listed(&e.package))
                .map(|e| (format!("{}/{}", e.package, e.path), e.package.clone()))
                .collect();
            let load = |name: &str| {
                let bytes =
                    std::fs::read(dir.join(name)).with_context(|| format!("reading {name}"))?;
                transforms::decode(&bytes)
            };
            let v = collisions::hash_all(names, load, &params)?;
            println!(
                "hashed {} probers in {:.0} s",
                v.len(),
                t.elapsed().as_secs_f64()
            );
            v
        }
        None => Vec::new(),
    };
    let listed_keys: HashSet<u64> = listed.iter().map(|h| pdq_key(h, &params)).collect();
    // The probes against every listed corpus key before separation (what the pairwise count,
    // `collisions`, sees): the same for every list size.
    let (mut before, mut images_before) = (0usize, 0usize);
    for p in &probers {
        let hits = p.probes.iter().filter(|k| listed_keys.contains(k)).count();
        before += hits;
        images_before += usize::from(hits > 0);
    }
    let mut rng = ChaCha20Rng::seed_from_u64(a.seed);
    for &size in &a.sizes {
        let mut list = listed.clone();
        while list.len() < size {
            let mut w = [0u64; 4];
            for x in &mut w {
                *x = rng.next_u64();
            }
            list.push(Hash256::from_words(w));
        }
        let mut sep = None;
        let mut timings = Vec::new();
        for &threads in &a.threads {
            let t = Instant::now();
            let s = separate_related_with_threads(&list, &params, threads);
            timings.push(format!(
                "{:.1} s on {threads} thread(s)",
                t.elapsed().as_secs_f64()
            ));
            match &sep {
                Some(first) if *first != s => {
                    anyhow::bail!("the separation on {threads} threads kept other keys")
                }
                Some(_) => {}
                None => sep = Some(s),
            }
        }
        let sep = sep.context("no --threads")?;
        let secs = timings.join(", ");
        let kept: HashSet<u64> = sep.kept.iter().copied().collect();
        let lost = listed_keys.iter().filter(|k| !kept.contains(k)).count();
        println!(
            "\nlist of {size} entries: separate_related {secs}; {} keys kept, {} pruned ({} related, {} unrelated; by PDQ distance {:?}); {} kept closer than sep",
            sep.kept.len(),
            sep.removed(),
            sep.pruned_related.len(),
            sep.pruned_unrelated.len(),
            sep.pruned_histogram,
            sep.kept_close
        );
        println!(
            "  listed corpus images whose key was pruned: {lost} of {} ({:.2e})",
            listed_keys.len(),
            lost as f64 / listed_keys.len().max(1) as f64
        );
        if probers.is_empty() {
            continue;
        }
        let (mut onto_corpus, mut onto_standin, mut images_opening) = (0usize, 0usize, 0usize);
        for p in &probers {
            let mut any = false;
            for k in &p.probes {
                if kept.contains(k) {
                    any = true;
                    if listed_keys.contains(k) {
                        onto_corpus += 1;
                    } else {
                        onto_standin += 1;
                    }
                }
            }
            images_opening += usize::from(any);
        }
        let n = probers.len() as f64;
        println!(
            "  {} probers: {} probe keys opened onto listed corpus images, {} onto stand-in entries; {} images opened at least one ({:.2e} per image); before separation {} probe keys onto listed corpus keys, {} images",
            probers.len(),
            onto_corpus,
            onto_standin,
            images_opening,
            images_opening as f64 / n,
            before,
            images_before
        );
    }
    Ok(())
}

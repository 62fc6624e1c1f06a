//! `hashguard demo`: the whole path on embedded defaults, in one command. Two stand-in
//! organisations' lists (bundled, benign: see `assets/standin`) go into a fresh SQLite database;
//! the demo images are matched in the clear (what a server-side matcher such as HMA does); then
//! the private table is built from the consensus view and each image is uploaded as a voucher,
//! which the server can open only if the image is listed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use hashguard_hashing::{Hashed, Hasher, Options};
use hashguard_hashlist::{parse_list, Bank, BankKind, MatchRules, Matcher, Signal, SignalType};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::prelude::*;
use hashguard_service::keyset::ConsensusSpec;
use hashguard_service::publish::{next_epoch, now, os_rng, SECONDS_PER_DAY};
use hashguard_store::ImportMeta;
use rand_chacha::rand_core::Rng;

use crate::db::{runtime, DbArgs};
use crate::table_cmd::load_key_set;
use hashguard_store::OpenMode;

/// The bundled stand-in lists: (bank, organisation, jurisdiction, file name, contents).
const STANDIN: [(&str, &str, &str, &str, &str); 2] = [
    (
        "standin-a",
        "Stand-in Org A",
        "GB",
        "org-a.txt",
        include_str!("../../../assets/standin/org-a.txt"),
    ),
    (
        "standin-b",
        "Stand-in Org B",
        "US",
        "org-b.txt",
        include_str!("../../../assets/standin/org-b.txt"),
    ),
];

/// Arguments of `hashguard demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Images to upload [default: the repository's assets/demo].
    paths: Vec<PathBuf>,
    /// Database for the demo banks [default: a fresh SQLite file in a temporary directory].
    #[arg(long, value_name = "URL")]
    db: Option<String>,
}

/// Runs the demo.
pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let db = DbArgs {
        db: Some(
            args.db
                .clone()
                .unwrap_or_else(|| temp.path().join("demo.db").display().to_string()),
        ),
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/demo"
        ))]
    } else {
        args.paths.clone()
    };
    let inputs: Vec<PathBuf> = crate::inputs::expand(&paths)
        .into_iter()
        .filter_map(|i| match i {
            crate::inputs::Input::File(p) => Some(p),
            _ => None,
        })
        .collect();
    anyhow::ensure!(!inputs.is_empty(), "no images to upload");

    outln!(
        "1. Lists: two stand-in organisations' lists into the {}",
        db.location().describe()
    )?;
    let banks = runtime()?.block_on(async {
        let store = db.open(OpenMode::Create).await?;
        let mut banks = Vec::new();
        for (name, org, jurisdiction, file, text) in STANDIN {
            let bank = Bank::new(
                name.parse()?,
                org,
                jurisdiction.parse()?,
                SignalType::Pdq,
                BankKind::Block,
            )?;
            store.create_bank(&bank).await?;
            let list = parse_list(text.as_bytes(), SignalType::Pdq, None)?;
            let meta = ImportMeta::new("hashguard demo", Some(file), text.as_bytes());
            store
                .import(
                    bank.name(),
                    &list,
                    hashguard_hashlist::Version::FIRST,
                    &meta,
                )
                .await?;
            outln!(
                "   bank {name}: {} PDQ hashes from {org} ({jurisdiction}), assets/standin/{file}",
                list.items().len()
            )?;
            banks.push((MatchRules::from(&bank), list.into_items()));
        }
        store.close().await;
        anyhow::Ok(banks)
    })?;
    let labels: Vec<&str> = STANDIN.iter().map(|s| s.0).collect();
    let matcher = Matcher::new(banks, None)?;

    outln!("\n2. Matching in the clear (the server sees every hash; what hashguard replaces):")?;
    let mut hasher = Hasher::new(Options {
        floats: true,
        ..Options::default()
    });
    let mut images = Vec::new();
    for path in &inputs {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        let floats = match hasher.hash_path(path) {
            Ok(Hashed::Image {
                floats: Some(floats),
                ..
            }) => floats,
            Ok(_) => {
                outln!("   {name}: not an image")?;
                continue;
            }
            Err(e) => {
                outln!("   {name}: not an image ({e})")?;
                continue;
            }
        };
        let hash = floats.hash();
        let hits = matcher.lookup(&Signal::Pdq(hash));
        let found: Vec<String> = hits
            .reported()
            .iter()
            .map(|h| format!("{} at distance {}", labels[h.bank], h.distance))
            .collect();
        outln!(
            "   {name}: PDQ {hash} quality {}: {}",
            floats.quality,
            if found.is_empty() {
                "no match".to_string()
            } else {
                format!("matches {}", found.join(", "))
            }
        )?;
        images.push((name, floats));
    }

    outln!("\n3. The private table: the consensus view (>= 2 organisations in >= 2 jurisdictions) as blinded keys")?;
    let params = Params::v1(Policy::Intervene);
    let consensus = ConsensusSpec {
        banks: Vec::new(),
        min_organisations: 2,
        min_jurisdictions: 2,
        distance: 10,
    };
    let keyset = load_key_set(&db, &consensus, &params)?;
    let mut rng = os_rng()?;
    let secret = OpeningKey::generate(&mut rng);
    let (spec, epoch) = next_epoch(None, &params, secret.public_key(), 1, None, &mut rng)
        .map_err(anyhow::Error::msg)?;
    let built = build_table(&spec, &secret, &keyset.keys, &epoch, None, &mut rng)?;
    let shards: Vec<TableShard> = built.shards.iter().map(|s| s.shard.clone()).collect();
    let table_bytes: usize = shards.iter().map(|s| s.encode().len()).sum();
    // The client accepts the table only through a manifest it checked against the parameters
    // pinned in its binary.
    let start = now();
    let manifest = Manifest::for_table(&built, &epoch, start, start + SECONDS_PER_DAY)?
        .check_client(&PinnedParams::exactly(params.clone()), start, None)?;
    let table = ClientTable::load(&manifest, TableKind::Pdq, &shards, 1 << 24)?;
    outln!(
        "   {} consensus values -> {} keys ({} pruned for separation); table {} bytes; the client verifies it and never sees a hash",
        keyset.consensus_values,
        built.n_keys(),
        keyset.pruned,
        table_bytes
    )?;

    outln!("\n4. Uploads: each image carries a voucher; the server opens only listed ones (policy intervene, P = {} probes)", params.probes())?;
    let opener = Opener::new(secret, params.clone());
    let layout = VoucherLayout::pdq(&params);
    let mut client = Client::new(AccountState::generate(&mut rng), params.clone());
    for (name, floats) in &images {
        let mut ciphertext = [0u8; 64];
        rng.fill_bytes(&mut ciphertext);
        let content = {
            use sha2::Digest;
            let d: [u8; 32] = sha2::Sha256::digest(ciphertext).into();
            d
        };
        let item = Item {
            pdq: Some(PdqInput::from_floats(floats)),
            content_sha256: content,
            media_kind: MediaKind::Image,
            frame_idx: 0,
            thumbnail: b"",
        };
        let binding = UploadBinding::new([1; 16], &ciphertext);
        let started = Instant::now();
        let voucher = client.build_pdq_voucher(&table, &item, &binding, &mut rng)?;
        let client_ms = started.elapsed().as_secs_f64() * 1e3;
        let bytes = voucher.voucher.encode();
        let decoded = Voucher::decode(&bytes, &layout)?;
        let started = Instant::now();
        let outcome = opener.open(&decoded, &layout, &binding);
        let server_ms = started.elapsed().as_secs_f64() * 1e3;
        let verdict = match outcome {
            OpenOutcome::Opened(_) => "OPENED: listed, held for the sender's consented check",
            _ => "not opened: the server learns nothing about it",
        };
        outln!(
            "   {name}: voucher {} bytes (client {client_ms:.1} ms, server {server_ms:.1} ms): {verdict}",
            bytes.len()
        )?;
    }
    outln!("\nThe stand-in lists are random values plus a benign demo image; no real hash list is used.")?;
    Ok(ExitCode::SUCCESS)
}

//! Times loading the consensus view's input ([`Store::load_enabled`]) of 1.9 million PDQ entries,
//! on SQLite and on PostgreSQL. Run through `bench/store/run.sh` (release build); the results
//! are recorded in `docs/store.md`.
//!
//! The data: `--n` random PDQ hashes (default 1,900,000) in 4 banks of `--n / 4` entries each,
//! from 4 organisations in 2 jurisdictions (GB, GB, US, US). Consecutive banks share half of
//! their values (bank k lists values `k * n/8 .. k * n/8 + n/4` of one random sequence), so the
//! consensus view has values listed by 1, 2 and 3 organisations in 1 or 2 jurisdictions. The
//! lists are plain hex, as most shared lists are, or with `--format pdq-cli` the PDQ CLI's
//! `hash,quality,file name` (every entry then has a quality and a source id). The values are generated (SplitMix64, fixed
//! seed): no real list is involved.
//!
//! ```text
//! consensus_load [--db sqlite|postgres|both] [--n N] [--reps R] [--format hex|pdq-cli] [--sqlite-file PATH]
//! ```
//!
//! `--sqlite-file` keeps the SQLite database in PATH and, when PATH already holds the banks,
//! times the load without importing again.
//!
//! PostgreSQL is `$DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); the bench
//! works in a schema of its own (`hashguard_bench_<pid>`) and drops it at the end. SQLite is a
//! file in a fresh temporary directory, removed at the end.

use std::time::{Duration, Instant};

use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType, Version};
use hashguard_store::{ImportMeta, Store};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    sqlite: bool,
    postgres: bool,
    n: usize,
    reps: usize,
    /// Each list line as `hash,quality,file name` (PDQ CLI output) instead of the hash alone.
    pdq_cli: bool,
    /// A SQLite file to use (and keep) instead of a temporary one; its banks are imported only
    /// if it has none yet, so a load can be timed again without importing again.
    sqlite_file: Option<std::path::PathBuf>,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        sqlite: true,
        postgres: true,
        n: 1_900_000,
        reps: 3,
        pdq_cli: false,
        sqlite_file: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => match value()?.as_str() {
                "sqlite" => (args.sqlite, args.postgres) = (true, false),
                "postgres" => (args.sqlite, args.postgres) = (false, true),
                "both" => (args.sqlite, args.postgres) = (true, true),
                other => return Err(format!("--db {other}: use sqlite, postgres or both").into()),
            },
            "--n" => args.n = value()?.parse()?,
            "--reps" => args.reps = value()?.parse()?,
            "--format" => match value()?.as_str() {
                "hex" => args.pdq_cli = false,
                "pdq-cli" => args.pdq_cli = true,
                other => return Err(format!("--format {other}: use hex or pdq-cli").into()),
            },
            "--sqlite-file" => args.sqlite_file = Some(value()?.into()),
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: consensus_load [--db sqlite|postgres|both] [--n N] [--reps R] [--format hex|pdq-cli] [--sqlite-file PATH]"
                )
                .into())
            }
        }
    }
    if args.n < 8 || args.reps == 0 {
        return Err("--n must be at least 8 and --reps at least 1".into());
    }
    Ok(args)
}

/// SplitMix64: a fixed, dependency-free sequence of random 64-bit words.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The four banks' list files (plain hex, one value a line).
fn lists(n: usize, pdq_cli: bool) -> Vec<(Bank, String)> {
    let per_bank = n / 4;
    let step = per_bank / 2;
    let distinct = 3 * step + per_bank;
    let mut rng = SplitMix(0x6861_7368_6775_6172);
    let values: Vec<String> = (0..distinct)
        .map(|_| {
            format!(
                "{:016x}{:016x}{:016x}{:016x}",
                rng.next(),
                rng.next(),
                rng.next(),
                rng.next()
            )
        })
        .collect();
    let orgs = [
        ("bench-a", "Bench Org A", "GB"),
        ("bench-b", "Bench Org B", "GB"),
        ("bench-c", "Bench Org C", "US"),
        ("bench-d", "Bench Org D", "US"),
    ];
    orgs.iter()
        .enumerate()
        .map(|(k, (name, org, j))| {
            let bank = Bank::new(
                name.parse().expect("a valid bank name"),
                org,
                j.parse().expect("a valid jurisdiction"),
                SignalType::Pdq,
                BankKind::Block,
            )
            .expect("a valid bank");
            let mut text = String::with_capacity(per_bank * 65);
            for (i, v) in values[k * step..k * step + per_bank].iter().enumerate() {
                text.push_str(v);
                if pdq_cli {
                    text.push_str(&format!(",{},{name}-{i}.jpg", 50 + i % 51));
                }
                text.push('\n');
            }
            (bank, text)
        })
        .collect()
}

async fn bench(store: &Store, label: &str, args: &Args) -> Result<(), Error> {
    let banks = lists(args.n, args.pdq_cli);
    let mut total = 0;
    for (bank, text) in &banks {
        if store.bank(bank.name()).await?.is_some() {
            total += store.stats(bank.name()).await?.live as usize;
            continue;
        }
        store.create_bank(bank).await?;
        let list = parse_list(text.as_bytes(), SignalType::Pdq, None)?;
        total += list.items().len();
        let meta = ImportMeta::new("bench", Some("generated"), text.as_bytes());
        let start = Instant::now();
        store
            .import(bank.name(), &list, Version::FIRST, &meta)
            .await?;
        println!(
            "{label}: import {} ({} entries): {:.2} s",
            bank.name(),
            list.items().len(),
            start.elapsed().as_secs_f64()
        );
    }
    let mut times: Vec<Duration> = Vec::with_capacity(args.reps);
    for rep in 1..=args.reps {
        let start = Instant::now();
        let loaded = store.load_enabled(Some(SignalType::Pdq)).await?;
        let took = start.elapsed();
        let entries: usize = loaded.iter().map(|l| l.entries.len()).sum();
        if entries != total {
            return Err(format!("loaded {entries} entries, imported {total}").into());
        }
        println!(
            "{label}: load_enabled run {rep}: {} banks, {entries} entries: {:.2} s",
            loaded.len(),
            took.as_secs_f64()
        );
        drop(loaded);
        times.push(took);
    }
    times.sort();
    println!(
        "{label}: load_enabled of {total} entries: median {:.2} s, best {:.2} s ({} runs)",
        times[times.len() / 2].as_secs_f64(),
        times[0].as_secs_f64(),
        times.len()
    );
    Ok(())
}

async fn run_sqlite(args: &Args) -> Result<(), Error> {
    if let Some(file) = &args.sqlite_file {
        let store = Store::open(&Store::sqlite_url(file)).await?;
        let result = bench(&store, "sqlite", args).await;
        store.close().await;
        return result;
    }
    let dir = std::env::temp_dir().join(format!("hashguard-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = async {
        let store = Store::open(&Store::sqlite_url(&dir.join("bench.db"))).await?;
        let result = bench(&store, "sqlite", args).await;
        store.close().await;
        result
    }
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_postgres(args: &Args) -> Result<(), Error> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&url).await?;
    // Digits and underscores only: an identifier cannot be a bind parameter.
    let schema = format!("hashguard_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await?;
    let sep = if url.contains('?') { '&' } else { '?' };
    let bench_url = format!("{url}{sep}options[search_path]={schema}");
    let result = async {
        let store = Store::open(&bench_url).await?;
        let result = bench(&store, "postgres", args).await;
        store.close().await;
        result
    }
    .await;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await?;
    admin.close().await;
    result
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.sqlite {
            run_sqlite(&args).await?;
        }
        if args.postgres {
            run_postgres(&args).await?;
        }
        Ok(())
    })
}

//! The upload service under load (issue 13): uploads per second and latency over real HTTP on
//! loopback, with real vouchers (P = 79, the deployed parameters), against the protocol's own
//! opening rate measured in the same run on the same vouchers. Run through `bench/serve/run.sh`
//! (release build); the results are recorded in `docs/serve.md`, "Performance".
//!
//! ```text
//! serve_load [--db sqlite|postgres] [--server-threads N] [--client-threads N]
//!            [--accounts N] [--sources N] [--listed-keys N] [--ciphertext-bytes N]
//!            [--benign-pool N] [--listed-pool N] [--listed-every N] [--levels 1,2,4,...]
//!            [--warmup-secs S] [--step-secs S] [--open-loop-secs S] [--open-secs S]
//!            [--quiet-wait S] [--rows] [--print-header main|cpu]
//! ```
//!
//! What it does, in one process:
//! 1. Banks of `--listed-keys` random stand-in values (default 4,096) listed by two
//!    organisations in two jurisdictions, as the server's threshold test has them; a table
//!    published from their consensus view with `Preset::V1` (P = 79) and `Policy::Intervene`.
//!    No real list and no real image is involved.
//! 2. The server (`Server::bind`, `Server::run`) on 127.0.0.1:0 inside a tokio runtime of
//!    exactly `--server-threads` worker threads (its threads are named `hg-server-*`), with
//!    rate limits so high they never trigger. The database is SQLite (a file in a temporary
//!    directory) or PostgreSQL at `$DATABASE_URL` (default
//!    `postgres://postgres@127.0.0.1:5432/test`) in a fresh schema, dropped at the end.
//! 3. The load generator on a runtime of its own (`--client-threads`, default 1; threads
//!    `hg-client-*`): `--accounts` accounts (default 64) registered from `--sources` loopback
//!    addresses (default 16: 127.0.0.10 and up, so the per-address limit bucket is not one
//!    row every upload updates), the table fetched and verified as a client does, and every
//!    voucher built before anything is timed (building vouchers is the client's cost). Benign
//!    uploads (random hashes no list holds, random margins) come from a pool of
//!    `--benign-pool` distinct uploads reused in turn: a voucher that does not open leaves no
//!    trace on the server, so a reused one costs it exactly what a fresh one does. Every
//!    `--listed-every`-th upload (default 100: 1%) is a listed stand-in value, each one fresh
//!    (a voucher that opened is refused if sent again). Each upload carries a random
//!    `--ciphertext-bytes` ciphertext (default 102,400, a compressed phone photo).
//! 4. The protocol's opening rate: `Voucher::decode` and `Opener::open` on one thread, on the
//!    same mix of vouchers, for `--open-secs` before the HTTP phases and again after them
//!    (the mean is the reference).
//! 5. Phase A, closed loop: at each concurrency of `--levels` (default 1, 2, 4, 8, 16, 32, 64),
//!    that many uploads in flight for `--warmup-secs` plus `--step-secs`, counting the uploads
//!    completed in the window after the warm-up; it stops early once two levels in a row do
//!    not beat the best by 3%. The peak is the best level's rate.
//! 6. Phase B, open loop: uploads started at a fixed rate of 80% of the peak for
//!    `--open-loop-secs` (a fixed count), each latency measured from the moment it was due
//!    (so a server that falls behind shows it), p50, p99 and max.
//!
//! With `--quiet-wait S` it first waits (up to S seconds) until the machine was less than 10%
//! busy for 3 s in a row: on a shared machine another build would otherwise take the cores.
//!
//! It prints one row per configuration (and the headers unless `--rows`), and a second row
//! with the CPU time per upload of each part of the machine in the peak's window and in phase
//! B: the server runtime's worker threads (and the share of their wall time they ran and
//! waited, runnable, for a core: what is left is time with nothing to run), its blocking pool
//! (blob writes), SQLite's connection threads, the load generator, PostgreSQL's processes, and
//! the rest of the machine (the kernel's own work, and any other process: a large figure there
//! means the run shared the cores), from `/proc` (Linux only; `n/a` elsewhere). Every loop is
//! bounded in count and in time, and everything stays on loopback.
//!
//! The SQLite file and the data folder are in a temporary directory, so `TMPDIR=/dev/shm` puts
//! them on tmpfs, where `fsync` costs nothing: a diagnostic of what durable writes cost, never
//! a result (a server that loses acknowledged uploads on a crash is not a deployment).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::Manifest;
use hashguard_protocol::params::{Params, PinnedParams, Policy, Preset};
use hashguard_protocol::prelude::*;
use hashguard_server::config::{Bucket, Config, Limits, LogFormat, Overrides, Shield};
use hashguard_server::Server;
use hashguard_service::keyset::{load_key_set, ConsensusSpec};
use hashguard_service::publish::{opening_key, os_rng, publish, BuildOptions, TableDir};
use hashguard_service::serving::ServedTable;
use hashguard_store::{DatabaseLocation, ImportMeta, OpenMode, Store};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use reqwest::StatusCode;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const USAGE: &str = "usage: serve_load [--db sqlite|postgres] [--server-threads N] [--client-threads N] [--accounts N] [--sources N] [--listed-keys N] [--ciphertext-bytes N] [--benign-pool N] [--listed-pool N] [--listed-every N] [--levels 1,2,4,...] [--warmup-secs S] [--step-secs S] [--open-loop-secs S] [--open-secs S] [--quiet-wait S] [--rows] [--print-header main|cpu]";
/// Most uploads one closed-loop level or the open-loop phase may send.
const MAX_UPLOADS_PER_PHASE: usize = 50_000;
/// Most uploads in flight in the open-loop phase (beyond it the dispatcher waits, and the
/// wait shows in the latencies, which run from the moment an upload was due).
const MAX_IN_FLIGHT: usize = 2_048;
/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Most time the direct opening measurement may take, whatever `--open-secs` says.
const MAX_OPEN_SECS: f64 = 30.0;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, Clone)]
struct Args {
    db: Db,
    server_threads: usize,
    client_threads: usize,
    accounts: usize,
    sources: usize,
    listed_keys: usize,
    ciphertext_bytes: usize,
    benign_pool: usize,
    listed_pool: usize,
    listed_every: usize,
    levels: Vec<usize>,
    warmup: Duration,
    step: Duration,
    open_loop: Duration,
    open_secs: f64,
    quiet_wait: Duration,
    rows: bool,
}

fn secs(text: &str) -> Result<Duration, Error> {
    let s: f64 = text.parse()?;
    if !(0.0..=600.0).contains(&s) {
        return Err(format!("{text}: give 0 to 600 seconds").into());
    }
    Ok(Duration::from_secs_f64(s))
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        db: Db::Sqlite,
        server_threads: 1,
        client_threads: 1,
        accounts: 64,
        sources: 16,
        listed_keys: 4096,
        ciphertext_bytes: 102_400,
        benign_pool: 512,
        listed_pool: 400,
        listed_every: 100,
        levels: vec![1, 2, 4, 8, 16, 32, 64],
        warmup: Duration::from_millis(500),
        step: Duration::from_secs(3),
        open_loop: Duration::from_secs(10),
        open_secs: 2.0,
        quiet_wait: Duration::ZERO,
        rows: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--db" => {
                a.db = match value()?.as_str() {
                    "sqlite" => Db::Sqlite,
                    "postgres" => Db::Postgres,
                    other => return Err(format!("--db {other}: use sqlite or postgres").into()),
                }
            }
            "--server-threads" => a.server_threads = value()?.parse()?,
            "--client-threads" => a.client_threads = value()?.parse()?,
            "--accounts" => a.accounts = value()?.parse()?,
            "--sources" => a.sources = value()?.parse()?,
            "--listed-keys" => a.listed_keys = value()?.parse()?,
            "--ciphertext-bytes" => a.ciphertext_bytes = value()?.parse()?,
            "--benign-pool" => a.benign_pool = value()?.parse()?,
            "--listed-pool" => a.listed_pool = value()?.parse()?,
            "--listed-every" => a.listed_every = value()?.parse()?,
            "--levels" => {
                a.levels = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<usize>, _>>()?
            }
            "--warmup-secs" => a.warmup = secs(&value()?)?,
            "--step-secs" => a.step = secs(&value()?)?,
            "--open-loop-secs" => a.open_loop = secs(&value()?)?,
            "--open-secs" => a.open_secs = value()?.parse()?,
            "--quiet-wait" => a.quiet_wait = secs(&value()?)?,
            "--rows" => a.rows = true,
            "--print-header" => {
                match value()?.as_str() {
                    "main" => println!("{MAIN_HEADER}"),
                    "cpu" => println!("{CPU_HEADER}"),
                    other => return Err(format!("--print-header {other}: use main or cpu").into()),
                }
                std::process::exit(0);
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}; {USAGE}").into()),
        }
    }
    if !(1..=64).contains(&a.server_threads)
        || !(1..=64).contains(&a.client_threads)
        || !(1..=10_000).contains(&a.accounts)
        || !(1..=200).contains(&a.sources)
        || !(8..=1_000_000).contains(&a.listed_keys)
        || !(1..=(16 << 20)).contains(&a.ciphertext_bytes)
        || !(1..=100_000).contains(&a.benign_pool)
        || a.listed_pool > 100_000
        || a.levels.is_empty()
        || a.levels.iter().any(|&c| !(1..=1024).contains(&c))
        || a.step.is_zero()
        || !(0.1..=MAX_OPEN_SECS).contains(&a.open_secs)
    {
        return Err(format!("an argument is out of range; {USAGE}").into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serve_load: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("serve_load: {e}");
        std::process::exit(1);
    }
}

/// One prepared upload: its account, ciphertext, voucher and visual derivative, and the
/// binding the server will compute (for the direct opening).
struct Prepared {
    account: usize,
    ciphertext: Vec<u8>,
    voucher: Vec<u8>,
    vd: Vec<u8>,
    binding: UploadBinding,
}

/// The uploads in the order they are sent: benign ones from the pool in turn, and every
/// `listed_every`-th a fresh listed one while they last.
struct Feed {
    benign: Vec<Prepared>,
    listed: Vec<Prepared>,
    listed_every: usize,
    next: AtomicUsize,
    next_listed: AtomicUsize,
}

impl Feed {
    fn next(&self) -> (&Prepared, bool) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if self.listed_every > 0 && i % self.listed_every == self.listed_every - 1 {
            let j = self.next_listed.fetch_add(1, Ordering::Relaxed);
            if let Some(p) = self.listed.get(j) {
                return (p, true);
            }
        }
        (&self.benign[i % self.benign.len()], false)
    }

    /// The `i`-th upload of the same mix, without using up a listed one (opening directly
    /// records nothing, so a listed voucher can be opened again).
    fn mix(&self, i: usize) -> &Prepared {
        if self.listed_every > 0 && !self.listed.is_empty() && i.is_multiple_of(self.listed_every) {
            return &self.listed[(i / self.listed_every) % self.listed.len()];
        }
        &self.benign[i % self.benign.len()]
    }
}

/// What the load generator shares between its tasks.
struct Load {
    feed: Feed,
    url: String,
    /// One HTTP client per source address.
    http: Vec<reqwest::Client>,
    tokens: Vec<String>,
    sources: usize,
}

/// How one upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Held,
    Failed,
}

struct Sample {
    done: Instant,
    latency: Duration,
    outcome: Outcome,
}

impl Load {
    async fn upload(&self) -> (Outcome, Option<String>) {
        let (p, listed) = self.feed.next();
        let form = reqwest::multipart::Form::new()
            .text("media", "image")
            .part(
                "ciphertext",
                reqwest::multipart::Part::bytes(p.ciphertext.clone()),
            )
            .part(
                "voucher",
                reqwest::multipart::Part::bytes(p.voucher.clone()),
            )
            .part("vd", reqwest::multipart::Part::bytes(p.vd.clone()));
        let sent = self.http[p.account % self.sources]
            .post(&self.url)
            .bearer_auth(&self.tokens[p.account])
            .multipart(form)
            .send()
            .await;
        let r = match sent {
            Ok(r) => r,
            Err(e) => return (Outcome::Failed, Some(e.to_string())),
        };
        let status = r.status();
        let body = r.bytes().await;
        match (status, listed) {
            (StatusCode::CREATED, _) if body.is_ok() => (Outcome::Delivered, None),
            (StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, true) if body.is_ok() => {
                (Outcome::Held, None)
            }
            _ => (
                Outcome::Failed,
                Some(format!(
                    "{status}: {}",
                    body.map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_else(|e| e.to_string())
                )),
            ),
        }
    }
}

/// A phase's result.
struct Step {
    rate: f64,
    latencies: Vec<Duration>,
    delivered: usize,
    held: usize,
    failed: usize,
    first_failure: Option<String>,
    cpu: Option<CpuSplit>,
}

impl Step {
    fn from_samples(
        samples: Vec<Sample>,
        from: Instant,
        to: Instant,
        first_failure: Option<String>,
        cpu: Option<CpuSplit>,
    ) -> Step {
        let counted: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.done >= from && s.done <= to)
            .collect();
        let window = to.saturating_duration_since(from).as_secs_f64().max(1e-9);
        let mut latencies: Vec<Duration> = counted.iter().map(|s| s.latency).collect();
        latencies.sort();
        let count = |o| samples.iter().filter(|s| s.outcome == o).count();
        Step {
            rate: counted
                .iter()
                .filter(|s| s.outcome != Outcome::Failed)
                .count() as f64
                / window,
            latencies,
            delivered: count(Outcome::Delivered),
            held: count(Outcome::Held),
            failed: count(Outcome::Failed),
            first_failure,
            cpu,
        }
    }

    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let n = self.latencies.len();
        let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// Phase A at one concurrency: `c` uploads in flight, counted in the window after `warmup`.
async fn closed_loop(
    load: Arc<Load>,
    c: usize,
    warmup: Duration,
    window: Duration,
    workers: usize,
) -> Step {
    let start = Instant::now();
    let from = start + warmup;
    let to = from + window;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let load = load.clone();
        let started = started.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            let mut failure = None;
            while Instant::now() < to
                && started.fetch_add(1, Ordering::Relaxed) < MAX_UPLOADS_PER_PHASE
            {
                let t = Instant::now();
                let (outcome, why) = load.upload().await;
                let done = Instant::now();
                samples.push(Sample {
                    done,
                    latency: done - t,
                    outcome,
                });
                if failure.is_none() {
                    failure = why;
                }
            }
            (samples, failure)
        });
    }
    tokio::time::sleep_until(from.into()).await;
    let before = cpu_snapshot();
    tokio::time::sleep_until(to.into()).await;
    let after = cpu_snapshot();
    let (samples, failure) = collect(tasks).await;
    let counted = samples
        .iter()
        .filter(|s| s.done >= from && s.done <= to)
        .count();
    let cpu = before
        .zip(after)
        .map(|(b, a)| CpuSplit::between(&b, &a, counted, workers));
    Step::from_samples(samples, from, to, failure, cpu)
}

/// Phase B: `n` uploads due at `rate` per second, each latency from the moment it was due.
async fn open_loop(load: Arc<Load>, rate: f64, n: usize, workers: usize) -> Step {
    let t0 = Instant::now() + Duration::from_millis(100);
    let gate = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::time::sleep_until(t0.into()).await;
    let before = cpu_snapshot();
    for i in 0..n {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let load = load.clone();
        tasks.spawn(async move {
            let (outcome, why) = load.upload().await;
            let done = Instant::now();
            drop(permit);
            (
                vec![Sample {
                    done,
                    latency: done - due,
                    outcome,
                }],
                why,
            )
        });
    }
    let (samples, failure) = collect(tasks).await;
    let after = cpu_snapshot();
    let last = samples.iter().map(|s| s.done).max().unwrap_or(t0);
    let cpu = before
        .zip(after)
        .map(|(b, a)| CpuSplit::between(&b, &a, samples.len(), workers));
    Step::from_samples(samples, t0, last, failure, cpu)
}

/// Waits for every task (each bounded by the request timeout) and merges their samples.
async fn collect(
    mut tasks: tokio::task::JoinSet<(Vec<Sample>, Option<String>)>,
) -> (Vec<Sample>, Option<String>) {
    let mut samples = Vec::new();
    let mut failure = None;
    let deadline = Instant::now() + REQUEST_TIMEOUT * 4;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline.into(), tasks.join_next()).await {
        if let Ok((s, f)) = joined {
            samples.extend(s);
            if failure.is_none() {
                failure = f;
            }
        }
    }
    tasks.abort_all();
    (samples, failure)
}

/// CPU time (ns) by thread id with its name, and the machine's busy time (ns), from `/proc`.
struct CpuSnapshot {
    at: Instant,
    /// Name, time on a CPU and time waiting for one, by thread id.
    threads: HashMap<u32, (String, u64, u64)>,
    /// PostgreSQL's processes (its backends are one thread each).
    postgres: HashMap<u32, u64>,
    machine_busy_ns: u64,
}

fn cpu_snapshot() -> Option<CpuSnapshot> {
    let mut threads = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(entry) = entry else { continue };
        let Some(tid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(entry.path().join("comm")),
            std::fs::read_to_string(entry.path().join("schedstat")),
        ) else {
            continue;
        };
        // schedstat: time on a CPU, time runnable but waiting for one (ns), timeslices.
        let mut fields = stat.split_whitespace().map(|s| s.parse::<u64>().ok());
        let (Some(Some(ns)), Some(Some(queued))) = (fields.next(), fields.next()) else {
            continue;
        };
        threads.insert(tid, (comm.trim().to_string(), ns, queued));
    }
    let mut postgres = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_to_string(entry.path().join("comm"))
            .map_or(true, |c| c.trim() != "postgres")
        {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
            })
        {
            postgres.insert(pid, ns);
        }
    }
    let machine_busy_ns = machine_busy_ns()?;
    Some(CpuSnapshot {
        at: Instant::now(),
        threads,
        postgres,
        machine_busy_ns,
    })
}

/// The machine's busy time so far (ns): the first line of /proc/stat (user nice system idle
/// iowait irq softirq steal ..., in USER_HZ, 100 a second on Linux).
fn machine_busy_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    if fields.len() < 7 {
        return None;
    }
    let busy_ticks = fields[0] + fields[1] + fields[2] + fields[5] + fields[6];
    Some(busy_ticks * 10_000_000)
}

/// Waits (at most `limit`) until the machine was less than 10% busy for 3 s in a row, so
/// that other work does not take the cores the run measures; returns how busy it was last.
fn wait_for_quiet(limit: Duration) -> Option<f64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let start = Instant::now();
    let mut quiet = 0;
    loop {
        let before = machine_busy_ns()?;
        std::thread::sleep(Duration::from_secs(1));
        let busy = machine_busy_ns()?.saturating_sub(before) as f64 / 1e9 / cores;
        quiet = if busy < 0.10 { quiet + 1 } else { 0 };
        if quiet >= 3 || start.elapsed() >= limit {
            return Some(busy);
        }
    }
}

/// CPU milliseconds per upload, by part, and how busy the machine was.
#[derive(Debug, Clone, Copy)]
struct CpuSplit {
    server_workers: f64,
    server_blocking: f64,
    sqlite: f64,
    client: f64,
    postgres: f64,
    /// Other threads of this process, the kernel's own work and every other process.
    rest: f64,
    /// The share of the machine's cores that were busy.
    machine_busy: f64,
    /// The share of the workers' wall time they ran, and waited for a core while runnable.
    workers_running: f64,
    workers_queued: f64,
}

impl CpuSplit {
    fn between(
        before: &CpuSnapshot,
        after: &CpuSnapshot,
        uploads: usize,
        workers: usize,
    ) -> CpuSplit {
        let mut by = HashMap::<&str, u64>::new();
        let mut process = 0u64;
        let mut queued = 0u64;
        for (tid, (name, ns, q)) in &after.threads {
            let (start, start_q) = before
                .threads
                .get(tid)
                .map_or((0, 0), |(_, b, bq)| (*b, *bq));
            let d = ns.saturating_sub(start);
            process += d;
            let group = if name.starts_with("hg-server-w") {
                queued += q.saturating_sub(start_q);
                "server_workers"
            } else if name.starts_with("hg-server") {
                "server_blocking"
            } else if name.starts_with("sqlx-sqlite") {
                "sqlite"
            } else if name.starts_with("hg-client") {
                "client"
            } else {
                "other"
            };
            *by.entry(group).or_default() += d;
        }
        let mut postgres = 0u64;
        for (pid, ns) in &after.postgres {
            postgres += ns.saturating_sub(before.postgres.get(pid).copied().unwrap_or(0));
        }
        let machine = after.machine_busy_ns.saturating_sub(before.machine_busy_ns);
        let other = by.get("other").copied().unwrap_or(0);
        let per = |ns: u64| ns as f64 / 1e6 / uploads.max(1) as f64;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let worker_wall = (after.at - before.at).as_nanos() as f64 * workers.max(1) as f64;
        let running = by.get("server_workers").copied().unwrap_or(0);
        CpuSplit {
            workers_running: running as f64 / worker_wall.max(1.0),
            workers_queued: queued as f64 / worker_wall.max(1.0),
            server_workers: per(running),
            server_blocking: per(by.get("server_blocking").copied().unwrap_or(0)),
            sqlite: per(by.get("sqlite").copied().unwrap_or(0)),
            client: per(by.get("client").copied().unwrap_or(0)),
            postgres: per(postgres),
            rest: per(machine.saturating_sub(process + postgres) + other),
            machine_busy: machine as f64 / (worker_wall / workers.max(1) as f64 * cores).max(1.0),
        }
    }

    /// CPU ms per upload of the service itself: its workers, its blocking pool and its
    /// database (SQLite's threads or the PostgreSQL processes); not the load generator.
    fn service(&self) -> f64 {
        self.server_workers + self.server_blocking + self.sqlite + self.postgres
    }

    fn total(&self) -> f64 {
        self.server_workers
            + self.server_blocking
            + self.sqlite
            + self.client
            + self.postgres
            + self.rest
    }
}

/// The database for this run: a SQLite file, or a fresh PostgreSQL schema (returned so it can
/// be dropped).
async fn database(db: Db, dir: &Path) -> Result<(String, Option<(String, String)>), Error> {
    if db == Db::Sqlite {
        return Ok((dir.join("serve.db").display().to_string(), None));
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.to_string());
    sqlx::any::install_default_drivers();
    let admin = tokio::time::timeout(Duration::from_secs(10), sqlx::AnyPool::connect(&url))
        .await
        .map_err(|_| format!("PostgreSQL at {url}: timed out"))?
        .map_err(|e| format!("PostgreSQL at {url}: {e}"))?;
    // Our own identifier (digits and underscores), never user data.
    let schema = format!("hashguard_serve_bench_{}", std::process::id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok((
        format!("{url}{sep}options[search_path]={schema}"),
        Some((url, schema)),
    ))
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), Error> {
    let admin = sqlx::AnyPool::connect(url).await?;
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}

fn random_hash(r: &mut ChaCha20Rng) -> Hash256 {
    Hash256::from_words([r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64()])
}

/// Two stand-in banks listing the same random values, and the table published from their
/// consensus view (P = 79, intervene). Returns the listed values, the table directory and
/// the key file.
async fn publish_table(
    db: &str,
    dir: &Path,
    n: usize,
    params: &Params,
) -> Result<(Vec<Hash256>, PathBuf, PathBuf), Error> {
    let mut gen = ChaCha20Rng::seed_from_u64(13);
    let values: Vec<Hash256> = (0..n).map(|_| random_hash(&mut gen)).collect();
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    let store = Store::open_location(&DatabaseLocation::parse(db), OpenMode::Create).await?;
    for (name, org, jurisdiction) in [
        ("standin-a", "Stand-in Org A", "GB"),
        ("standin-b", "Stand-in Org B", "US"),
    ] {
        let bank = Bank::new(
            name.parse()?,
            org,
            jurisdiction.parse()?,
            SignalType::Pdq,
            BankKind::Block,
        )?;
        store.create_bank(&bank).await?;
        let list = parse_list(text.as_bytes(), SignalType::Pdq, None)?;
        let meta = ImportMeta::new("serve-load", Some("standin.txt"), text.as_bytes());
        store.import_next(bank.name(), &list, &meta).await?;
    }
    let consensus = ConsensusSpec {
        banks: Vec::new(),
        min_organisations: 2,
        min_jurisdictions: 2,
        distance: 10,
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let key_set = load_key_set(&store, &consensus, params, threads).await?;
    store.close().await;
    let mut rng = os_rng()?;
    let key = dir.join("table.key");
    let (secret, _) = opening_key(&key, &mut rng)?;
    let table = dir.join("table");
    publish(
        &TableDir::new(&table),
        &secret,
        &key_set,
        &consensus,
        &BuildOptions {
            preset: Preset::V1,
            policy: Policy::Intervene,
            shards: None,
            threads: 2,
            valid_days: 30,
            beacon: None,
        },
        &mut rng,
    )?;
    Ok((values, table, key))
}

/// The load generator's HTTP client from loopback source address `k`.
fn http_client(k: usize) -> Result<reqwest::Client, Error> {
    let last = u8::try_from(10 + k).map_err(|_| "too many sources")?;
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(REQUEST_TIMEOUT)
        .build()?)
}

async fn register(http: &reqwest::Client, base: &str) -> Result<([u8; 16], String), Error> {
    let r = http
        .post(format!("{base}/v1/accounts"))
        .send()
        .await?
        .error_for_status()?;
    let body: serde_json::Value = r.json().await?;
    let mut account = [0u8; 16];
    hex::decode_to_slice(
        body["account_id"].as_str().ok_or("no account_id")?,
        &mut account,
    )?;
    let token = body["token"].as_str().ok_or("no token")?.to_string();
    Ok((account, token))
}

/// The manifest and shards over HTTP, checked and verified as the client must before it
/// builds a voucher.
async fn fetch_table(
    http: &reqwest::Client,
    base: &str,
    params: &Params,
) -> Result<ClientTable, Error> {
    let bytes = http
        .get(format!("{base}/v1/table/manifest"))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    // The benchmark's server publishes with `hashguard table build` alone (no signed bundle):
    // its client trusts the served manifest as a throwaway sandbox signs it.
    let manifest = hashguard_protocol::trust_sandbox::accept_alone(
        Manifest::decode(&bytes)?,
        PinnedParams::exactly(params.clone()),
        hashguard_service::publish::now(),
    )?;
    let mut shards = Vec::new();
    for entry in manifest
        .table(TableKind::Pdq)
        .ok_or("the manifest has no PDQ table")?
        .shards()
    {
        let r = http
            .get(format!(
                "{base}/v1/table/shards/{}",
                hex::encode(entry.root)
            ))
            .send()
            .await?
            .error_for_status()?;
        shards.push(TableShard::decode(&r.bytes().await?)?);
    }
    Ok(ClientTable::load(
        &manifest,
        TableKind::Pdq,
        &shards,
        1 << 24,
    )?)
}

/// Builds every voucher before anything is timed, on every core: `benign` uploads of random
/// hashes and `listed` uploads of listed values, spread over the accounts.
fn build_vouchers(
    args: &Args,
    table: &ClientTable,
    params: &Params,
    accounts: &[[u8; 16]],
    listed_values: &[Hash256],
) -> Result<(Vec<Prepared>, Vec<Prepared>), Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Which account sends which upload: benign ones in turn, listed ones spread (stride 7).
    let mut jobs: Vec<Vec<(usize, usize, bool)>> = vec![Vec::new(); accounts.len()];
    for b in 0..args.benign_pool {
        jobs[b % accounts.len()].push((b, b, false));
    }
    for l in 0..args.listed_pool {
        jobs[(l * 7) % accounts.len()].push((l, l, true));
    }
    let work = std::sync::Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let results = std::sync::Mutex::new(Vec::<(usize, bool, Prepared)>::new());
    let failure = std::sync::Mutex::new(None::<String>);
    // The lock is released inside the closure, before the job runs.
    let next_job = || work.lock().ok().and_then(|mut w| w.pop());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while let Some((account, items)) = next_job() {
                    let mut rng = ChaCha20Rng::seed_from_u64(1000 + account as u64);
                    let mut client = Client::new(AccountState::generate(&mut rng), params.clone());
                    for (slot, index, listed) in items {
                        let mut ciphertext = vec![0u8; args.ciphertext_bytes];
                        rng.fill_bytes(&mut ciphertext);
                        let mut content = [0u8; 32];
                        rng.fill_bytes(&mut content);
                        let input = if listed {
                            PdqInput {
                                hash: listed_values[index % listed_values.len()],
                                margins: [1.0; 256],
                                quality: 90,
                            }
                        } else {
                            let mut margins = [0f32; 256];
                            for m in margins.iter_mut() {
                                *m = (rng.next_u32() % 10_000) as f32 + 1.0;
                            }
                            PdqInput {
                                hash: random_hash(&mut rng),
                                margins,
                                quality: 90,
                            }
                        };
                        let item = Item {
                            pdq: Some(input),
                            content_sha256: content,
                            media_kind: MediaKind::Image,
                            frame_idx: 0,
                            thumbnail: b"a small benign thumbnail",
                        };
                        let binding = UploadBinding::new(accounts[account], &ciphertext);
                        match client.build_pdq_voucher(table, &item, &binding, &mut rng) {
                            Ok(built) => {
                                let p = Prepared {
                                    account,
                                    voucher: built.voucher.encode(),
                                    vd: built.vd_blob,
                                    ciphertext,
                                    binding,
                                };
                                if let Ok(mut r) = results.lock() {
                                    r.push((slot, listed, p));
                                }
                            }
                            Err(e) => {
                                if let Ok(mut f) = failure.lock() {
                                    *f = Some(e.to_string());
                                }
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(format!("building a voucher: {e}").into());
    }
    let mut all = results.into_inner().map_err(|_| "a builder panicked")?;
    all.sort_by_key(|(slot, listed, _)| (*listed, *slot));
    let (listed, benign): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, l, _)| *l);
    Ok((
        benign.into_iter().map(|(_, _, p)| p).collect(),
        listed.into_iter().map(|(_, _, p)| p).collect(),
    ))
}

/// Opens vouchers of the feed's mix with the table's secret on this thread for `secs`:
/// opens per second, and how many opened.
fn direct_opens(served: &ServedTable, feed: &Feed, secs: f64) -> Result<(f64, usize), Error> {
    let layout = VoucherLayout::pdq(served.params());
    let opener = served.opener();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs.min(MAX_OPEN_SECS));
    let (mut n, mut opened) = (0usize, 0usize);
    while start.elapsed() < limit && n < 1_000_000 {
        let p = feed.mix(n);
        let v = Voucher::decode(&p.voucher, &layout)?;
        if matches!(opener.open(&v, &layout, &p.binding), OpenOutcome::Opened(_)) {
            opened += 1;
        }
        n += 1;
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), opened))
}

fn all_limits_off() -> Limits {
    let wide = Bucket {
        burst: 1_000_000,
        per_hour: 3_600_000,
    };
    Limits {
        uploads_per_account: wide,
        uploads_per_source: wide,
        checks_per_account: wide,
        registrations_per_source: wide,
        matches_per_account: wide,
        matches_per_source: wide,
        deliveries_per_device: wide,
        flood_shield: Shield {
            per_second: 1_000_000,
            burst: 1_000_000,
        },
    }
}

fn run(args: &Args) -> Result<(), Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .thread_name("hg-client")
        .enable_all()
        .build()?;
    let workers = args.server_threads;
    let spawned = AtomicUsize::new(0);
    // The runtime's worker threads are spawned when it is built, before any blocking thread.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name_fn(move || {
            let i = spawned.fetch_add(1, Ordering::Relaxed);
            if i < workers {
                format!("hg-server-w{i}")
            } else {
                "hg-server-b".to_string()
            }
        })
        .enable_all()
        .build()?;
    hashguard_server::init_logging(LogFormat::Text);
    let dir = tempfile::tempdir()?;
    let params = Preset::V1.params(Policy::Intervene);
    eprintln!(
        "serve_load: {} with {} server thread(s), {} load-generator thread(s), {cores} cores; P = {}",
        args.db.name(),
        args.server_threads,
        args.client_threads,
        params.probes()
    );
    let (db, schema) = client_rt.block_on(database(args.db, dir.path()))?;
    let result = measure(args, &client_rt, &server_rt, dir.path(), &db, &params);
    if let Some((url, schema)) = schema {
        if let Err(e) = client_rt.block_on(drop_schema(&url, &schema)) {
            eprintln!("serve_load: could not drop the schema {schema}: {e}");
        }
    }
    server_rt.shutdown_timeout(Duration::from_secs(10));
    client_rt.shutdown_timeout(Duration::from_secs(10));
    let row = result?;
    if !args.rows {
        println!("{}", MAIN_HEADER);
    }
    println!("{}", row.0);
    if !args.rows {
        println!();
        println!("{}", CPU_HEADER);
    }
    for line in row.1 {
        println!("{line}");
    }
    Ok(())
}

const MAIN_HEADER: &str = "| database | server threads | protocol opens/s (1 thread, direct) | peak uploads/s over HTTP (at concurrency) | per server thread | per thread / opens/s (goal >= 70%) | per core of the service's CPU / opens/s | p50 / p99 at the peak (ms) | open loop at 80% of the peak: uploads/s | p50 / p99 / max (ms) (goal p99 <= 50) | held / failed |\n|---|---|---|---|---|---|---|---|---|---|---|";
const CPU_HEADER: &str = "| database | server threads | phase | server workers | workers running / waiting for a core | server blocking pool | SQLite threads | load generator | PostgreSQL | rest of the machine | total CPU ms / upload | machine busy |\n|---|---|---|---|---|---|---|---|---|---|---|---|";

/// Sets up, runs both phases, and returns the main row and the CPU rows.
fn measure(
    args: &Args,
    client_rt: &tokio::runtime::Runtime,
    server_rt: &tokio::runtime::Runtime,
    dir: &Path,
    db: &str,
    params: &Params,
) -> Result<(String, Vec<String>), Error> {
    let (values, table, key) =
        client_rt.block_on(publish_table(db, dir, args.listed_keys, params))?;
    // Resolved as the command line resolves it (so fields added later keep their defaults),
    // then the bench's own attachment size and limits.
    let mut config = Config::resolve(
        None,
        Overrides {
            listen: Some("127.0.0.1:0".to_string()),
            db: Some(db.to_string()),
            data: Some(dir.join("data")),
            table: Some(table.clone()),
            key: Some(key.clone()),
            ..Overrides::default()
        },
    )?;
    config.max_attachment_bytes = u64::try_from(args.ciphertext_bytes.max(1 << 20))?;
    config.limits = all_limits_off();
    let server = server_rt.block_on(Server::bind(config))?;
    let addr: SocketAddr = server.local_addr();
    let base = format!("http://{addr}");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = server_rt.spawn(server.run(async {
        let _ = stopped.await;
    }));
    let outcome = drive(args, client_rt, &base, params, &values, &table, &key);
    let _ = stop.send(());
    match server_rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), task).await }) {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("serve_load: the server ended with {e}"),
        Ok(Err(e)) => eprintln!("serve_load: the server task failed: {e}"),
        Err(_) => eprintln!("serve_load: the server did not stop within 30 s"),
    }
    outcome
}

fn drive(
    args: &Args,
    client_rt: &tokio::runtime::Runtime,
    base: &str,
    params: &Params,
    values: &[Hash256],
    table_dir: &Path,
    key: &Path,
) -> Result<(String, Vec<String>), Error> {
    let http: Vec<reqwest::Client> = (0..args.sources)
        .map(http_client)
        .collect::<Result<_, _>>()?;
    let (accounts, tokens, table) = client_rt.block_on(async {
        let mut accounts = Vec::new();
        let mut tokens = Vec::new();
        for a in 0..args.accounts {
            let (account, token) = register(&http[a % args.sources], base).await?;
            accounts.push(account);
            tokens.push(token);
        }
        let table = fetch_table(&http[0], base, params).await?;
        Ok::<_, Error>((accounts, tokens, table))
    })?;
    let t = Instant::now();
    let (benign, listed) = build_vouchers(args, &table, params, &accounts, values)?;
    eprintln!(
        "serve_load: {} benign and {} listed uploads prepared in {:.1} s ({} accounts, {} source addresses, {} B ciphertexts)",
        benign.len(),
        listed.len(),
        t.elapsed().as_secs_f64(),
        args.accounts,
        args.sources,
        args.ciphertext_bytes
    );
    let feed = Feed {
        benign,
        listed,
        listed_every: args.listed_every,
        next: AtomicUsize::new(0),
        next_listed: AtomicUsize::new(0),
    };
    let served = ServedTable::load(&TableDir::new(table_dir), key)?;
    if !args.quiet_wait.is_zero() {
        match wait_for_quiet(args.quiet_wait) {
            Some(busy) if busy >= 0.10 => eprintln!(
                "serve_load: WARNING: the machine is still {:.0}% busy with other work after waiting {} s; the figures are low",
                100.0 * busy,
                args.quiet_wait.as_secs()
            ),
            Some(_) => {}
            None => eprintln!("serve_load: cannot read /proc/stat; not waiting for a quiet machine"),
        }
    }
    let (opens_before, opened) = direct_opens(&served, &feed, args.open_secs)?;
    eprintln!(
        "serve_load: protocol opening, 1 thread: {opens_before:.0} opens/s ({opened} opened)"
    );
    let load = Arc::new(Load {
        feed,
        url: format!("{base}/v1/attachments"),
        http,
        tokens,
        sources: args.sources,
    });

    // Phase A: closed loop at increasing concurrency.
    let mut best: Option<(usize, Step)> = None;
    let mut flat = 0;
    let mut failures = 0;
    let mut first_failure = None;
    let mut held = 0;
    for &c in &args.levels {
        let step = client_rt.block_on(closed_loop(
            load.clone(),
            c,
            args.warmup,
            args.step,
            args.server_threads,
        ));
        eprintln!(
            "serve_load: phase A, concurrency {c:>3}: {:>7.1} uploads/s, p50 {:.1} ms, p99 {:.1} ms ({} delivered, {} held, {} failed)",
            step.rate,
            step.quantile_ms(0.50),
            step.quantile_ms(0.99),
            step.delivered,
            step.held,
            step.failed
        );
        failures += step.failed;
        held += step.held;
        if first_failure.is_none() {
            first_failure = step.first_failure.clone();
        }
        let best_rate = best.as_ref().map_or(0.0, |(_, b)| b.rate);
        if step.rate > best_rate * 1.03 {
            flat = 0;
        } else {
            flat += 1;
        }
        if step.rate > best_rate {
            best = Some((c, step));
        }
        if flat >= 2 {
            break;
        }
    }
    let (peak_c, peak) = best.ok_or("no level ran")?;

    // Phase B: open loop at 80% of the peak.
    let rate = 0.8 * peak.rate;
    let n =
        ((rate * args.open_loop.as_secs_f64()).round() as usize).clamp(1, MAX_UPLOADS_PER_PHASE);
    let open = if rate > 0.0 {
        client_rt.block_on(open_loop(load.clone(), rate, n, args.server_threads))
    } else {
        return Err("the peak rate is zero: every upload failed".into());
    };
    eprintln!(
        "serve_load: phase B, {n} uploads due at {rate:.1}/s: {:.1} uploads/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} held, {} failed)",
        open.rate,
        open.quantile_ms(0.50),
        open.quantile_ms(0.99),
        open.quantile_ms(1.0),
        open.held,
        open.failed
    );
    failures += open.failed;
    held += open.held;
    if first_failure.is_none() {
        first_failure = open.first_failure.clone();
    }
    if let Some(why) = &first_failure {
        eprintln!("serve_load: first failed upload: {why}");
    }
    let (opens_after, _) = direct_opens(&served, &load.feed, args.open_secs)?;
    let opens = (opens_before + opens_after) / 2.0;
    eprintln!(
        "serve_load: protocol opening again: {opens_after:.0} opens/s; reference {opens:.0} opens/s"
    );
    let per_thread = peak.rate / args.server_threads as f64;
    // Uploads per second of CPU the service (workers, blocking pool, database) used in the
    // peak's window: the rate per core when the service has cores of its own, which this
    // machine's two cores, shared with the load generator, cannot give it.
    let per_service_core = peak
        .cpu
        .as_ref()
        .filter(|c| c.service() > 0.0)
        .map_or("n/a".to_string(), |c| {
            format!("{:.0}%", 100.0 * (1000.0 / c.service()) / opens)
        });
    let main = format!(
        "| {} | {} | {:.0} | {:.0} ({}) | {:.0} | {:.0}% | {per_service_core} | {:.1} / {:.1} | {:.0} | {:.1} / {:.1} / {:.1} | {} / {} |",
        args.db.name(),
        args.server_threads,
        opens,
        peak.rate,
        peak_c,
        per_thread,
        100.0 * per_thread / opens,
        peak.quantile_ms(0.50),
        peak.quantile_ms(0.99),
        open.rate,
        open.quantile_ms(0.50),
        open.quantile_ms(0.99),
        open.quantile_ms(1.0),
        held,
        failures
    );
    let mut cpu_rows = Vec::new();
    for (phase, cpu) in [
        (format!("peak (concurrency {peak_c})"), peak.cpu),
        ("open loop at 80%".to_string(), open.cpu),
    ] {
        let row = match cpu {
            Some(c) => format!(
                "| {} | {} | {phase} | {:.2} | {:.0}% / {:.0}% | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
                args.db.name(),
                args.server_threads,
                c.server_workers,
                100.0 * c.workers_running,
                100.0 * c.workers_queued,
                c.server_blocking,
                c.sqlite,
                c.client,
                c.postgres,
                c.rest,
                c.total(),
                100.0 * c.machine_busy
            ),
            None => format!(
                "| {} | {} | {phase} | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |",
                args.db.name(),
                args.server_threads
            ),
        };
        cpu_rows.push(row);
    }
    Ok((main, cpu_rows))
}

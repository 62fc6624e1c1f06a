//! `hashguard witness`: run a C2SP tlog-witness for the manifest log (hashguard-witness).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hashguard_server::config::LogFormat;
use hashguard_server::{init_logging, shutdown_signal};
use hashguard_store::DatabaseLocation;
use hashguard_transparency::cosignature::CosignatureSigner;
use hashguard_witness::{KnownLogs, Witness, WitnessDb};

/// The witness's default database file.
const DEFAULT_DB: &str = "witness.db";

/// Run a transparency-log witness (c2sp.org/tlog-witness) for hashguard's manifest log.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Make a cosigning key: writes the secret key (mode 0600) and prints the public vkey.
    Keygen {
        /// The witness's name (e.g. `witness.example.org/w1`), in its cosignature lines.
        #[arg(long)]
        name: String,
        /// Where to write the secret key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Serve the witness until SIGINT or SIGTERM.
    Serve {
        /// The secret key file `hashguard witness keygen` wrote.
        #[arg(long, env = "HASHGUARD_WITNESS_KEY", value_name = "FILE")]
        key: PathBuf,
        /// The logs to witness: `log <vkey>` or `log <origin> <vkey>` lines (docs/witness.md).
        #[arg(long, env = "HASHGUARD_WITNESS_LOGS", value_name = "FILE")]
        logs: PathBuf,
        /// Database: `postgres://...`, `sqlite://PATH`, or a path to a SQLite file
        /// [default: witness.db, created if missing].
        #[arg(long, env = "HASHGUARD_WITNESS_DB", value_name = "URL")]
        db: Option<String>,
        /// Address to listen on.
        #[arg(
            long,
            env = "HASHGUARD_WITNESS_LISTEN",
            value_name = "ADDR",
            default_value = "127.0.0.1:8650"
        )]
        listen: String,
        /// The organisation operating the witness: its statement then carries the
        /// organisation's manifest co-signing rule (protocol.md R/E11).
        #[arg(long, value_name = "NAME")]
        organisation: Option<String>,
    },
    /// Print each log's latest cosigned tree and any fork evidence (exit status 1 if any).
    Status {
        /// The witness's database [default: witness.db].
        #[arg(long, env = "HASHGUARD_WITNESS_DB", value_name = "URL")]
        db: Option<String>,
    },
}

/// Runs `hashguard witness`.
pub fn run(args: WitnessArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        WitnessCommand::Keygen { name, out } => keygen(&name, &out),
        WitnessCommand::Serve {
            key,
            logs,
            db,
            listen,
            organisation,
        } => serve(&key, &logs, db.as_deref(), &listen, organisation.as_deref()),
        WitnessCommand::Status { db } => status(db.as_deref()),
    }
}

/// Writes `text` to a new file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let signer = CosignatureSigner::generate(name).context("cannot make a key")?;
    let skey = signer.to_skey();
    write_secret(out, &format!("{}\n", skey.as_str()))?;
    outln!("{}", signer.verifier().to_vkey())?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the cosigning key file.
fn read_key(path: &Path) -> anyhow::Result<CosignatureSigner> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    CosignatureSigner::from_skey(text.trim()).with_context(|| {
        format!(
            "{} is not a witness key (cosignature/v1 skey)",
            path.display()
        )
    })
}

/// Reads the logs file.
fn read_logs(path: &Path) -> anyhow::Result<KnownLogs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the logs file {}", path.display()))?;
    let logs = KnownLogs::parse(&text).with_context(|| format!("in {}", path.display()))?;
    if logs.is_empty() {
        bail!("{} lists no log", path.display());
    }
    Ok(logs)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn serve(
    key: &Path,
    logs: &Path,
    db: Option<&str>,
    listen: &str,
    organisation: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let signer = read_key(key)?;
    let logs = read_logs(logs)?;
    let location = DatabaseLocation::parse(db.unwrap_or(DEFAULT_DB));
    init_logging(LogFormat::Text);
    runtime()?.block_on(async {
        let db = WitnessDb::open(location.url())
            .await
            .with_context(|| format!("cannot open the {}", location.describe()))?;
        let vkey = signer.verifier().to_vkey();
        let mut witness = Witness::new(signer, logs, db);
        if let Some(org) = organisation {
            witness = witness.with_organisation(org);
        }
        let witness = Arc::new(witness);
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "hashguard witness: {vkey} listening on http://{} for {} log(s), state in the {} (Ctrl-C stops it)",
            listener.local_addr()?,
            witness.logs().len(),
            location.describe()
        );
        hashguard_witness::http::serve(listener, witness.clone(), shutdown_signal()).await?;
        witness.db().close().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn status(db: Option<&str>) -> anyhow::Result<ExitCode> {
    let location = DatabaseLocation::parse(db.unwrap_or(DEFAULT_DB));
    if let Some(file) = location.sqlite_file() {
        if !file.is_file() {
            bail!("no witness database at {}", file.display());
        }
    }
    let forks = runtime()?.block_on(async {
        let db = WitnessDb::open(location.url())
            .await
            .with_context(|| format!("cannot open the {}", location.describe()))?;
        let latest = db.all_latest().await?;
        if latest.is_empty() {
            outln!("no checkpoint cosigned yet")?;
        }
        for (origin, tree) in &latest {
            let count = db.history(origin).await?.len();
            outln!(
                "{origin}: size {} root {} ({count} checkpoint(s) cosigned)",
                tree.size,
                tree.root
            )?;
        }
        let forks = db.forks(None).await?;
        for f in &forks {
            outln!(
                "FORK {}: size {}: cosigned root {}, the log also signed root {} (seen by {} at {})",
                f.origin,
                f.size,
                f.cosigned_root,
                f.other_root,
                f.source.as_str(),
                f.recorded_at
            )?;
            for line in f.note.lines() {
                outln!("    {line}")?;
            }
        }
        db.close().await;
        anyhow::Ok(forks.len())
    })?;
    Ok(if forks == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_an_owner_only_key_that_serve_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.key");
        keygen("witness.test/w1", &path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let signer = read_key(&path).unwrap();
        assert!(signer.verifier().to_vkey().starts_with("witness.test/w1+"));
        // Never overwritten.
        assert!(keygen("witness.test/w1", &path).is_err());
        assert_eq!(
            read_key(&path).unwrap().verifier(),
            signer.verifier(),
            "the key is unchanged"
        );
    }

    #[test]
    fn logs_file_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs");
        std::fs::write(&path, "# none\n").unwrap();
        assert!(read_logs(&path)
            .unwrap_err()
            .to_string()
            .contains("lists no log"));
        std::fs::write(&path, "\nlog nonsense\n").unwrap();
        let e = format!("{:#}", read_logs(&path).unwrap_err());
        assert!(e.contains("line 2"), "{e}");
    }
}

//! `hashguard admin` (the review UI's staff accounts) and `hashguard audit` (its hash-chained
//! audit log), issue 16. The rules (roles, password length, argon2id, the audit events and
//! their chain) are the review and store crates'; this only reads the arguments and the
//! password and prints the result.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use hashguard_review::auth::{self, Role};
use hashguard_store::OpenMode;
use zeroize::Zeroizing;

use crate::db::{runtime, DbArgs};

/// Who the audit log names for a change made with this command.
const ACTOR: &str = "cli";

/// Administer the review UI: staff accounts.
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Staff accounts of the review UI.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Add a member of staff. The password is read from standard input (its first line) or,
    /// on a terminal, prompted for twice without echo; never from a flag.
    Add {
        /// The name they log in with: 1 to 64 of a-z, 0-9, '.', '_' and '-'.
        username: String,
        /// reviewer, senior-reviewer, auditor or admin.
        #[arg(long)]
        role: String,
    },
    /// List the staff: username, role, created, disabled.
    List,
    /// Disable a member of staff and end all their sessions.
    Disable {
        /// Their username.
        username: String,
    },
}

/// Runs `hashguard admin`.
pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    match args.command {
        AdminCommand::Staff { command } => match command {
            StaffCommand::Add { username, role } => {
                let role: Role = role.parse().map_err(anyhow::Error::msg)?;
                auth::check_username(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
                let password = read_password()?;
                rt.block_on(async {
                    let store = args.db.open(OpenMode::Create).await?;
                    let record = auth::add_staff(&store, &username, role, &password, ACTOR)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    outln!("added {} ({})", record.username, role.words())?;
                    anyhow::Ok(ExitCode::SUCCESS)
                })
            }
            StaffCommand::List => rt.block_on(async {
                let store = args.db.open(OpenMode::Read).await?;
                let staff = store.list_staff().await?;
                outln!("username,role,created,disabled")?;
                for s in staff {
                    let role = s
                        .role
                        .parse::<Role>()
                        .map_or(s.role.as_str(), |r| r.words());
                    outln!(
                        "{},{},{},{}",
                        s.username,
                        role,
                        hashguard_review::web::utc(s.created_at),
                        s.disabled_at
                            .map_or_else(String::new, hashguard_review::web::utc)
                    )?;
                }
                anyhow::Ok(ExitCode::SUCCESS)
            }),
            StaffCommand::Disable { username } => rt.block_on(async {
                let store = args.db.open(OpenMode::Write).await?;
                if !auth::disable_staff(&store, &username, ACTOR)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    bail!("there is no member of staff called {username:?}");
                }
                outln!("disabled {username}; their sessions are ended")?;
                anyhow::Ok(ExitCode::SUCCESS)
            }),
        },
    }
}

/// The new password: on a terminal prompted twice without echo, otherwise the first line of
/// standard input (without its line ending).
fn read_password() -> anyhow::Result<Zeroizing<String>> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("Password for the new member of staff: ")
                .context("cannot read the password")?,
        );
        let again = Zeroizing::new(
            rpassword::prompt_password("The same password again: ")
                .context("cannot read the password")?,
        );
        if *first != *again {
            bail!("the two passwords differ; nothing was added");
        }
        return Ok(first);
    }
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let trimmed = line.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        bail!("no password on standard input (give it as the first line)");
    }
    Ok(Zeroizing::new(trimmed.to_string()))
}

/// The review UI's audit log: verify its hash chain, export it.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    db: DbArgs,
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain from the first event to the head; exit status 1 naming the first
    /// event that was edited or deleted.
    Verify,
    /// Write every event with its chain hash as JSON lines, in order.
    Export {
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// Runs `hashguard audit`.
pub fn run_audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let store = args.db.open(OpenMode::Read).await?;
        match args.command {
            AuditCommand::Verify => {
                let check = hashguard_review::audit::verify(&store).await?;
                match check.problem {
                    None => {
                        outln!("audit log intact: {} events, chain verified", check.events)?;
                        Ok(ExitCode::SUCCESS)
                    }
                    Some(problem) => {
                        eprintln!(
                            "hashguard: audit log broken: {problem} ({} events verified before it)",
                            check.events
                        );
                        Ok(ExitCode::from(1))
                    }
                }
            }
            AuditCommand::Export { out } => {
                let n = match &out {
                    Some(path) => {
                        let file = std::fs::File::create(path)
                            .with_context(|| format!("cannot create {}", path.display()))?;
                        let mut w = std::io::BufWriter::new(file);
                        let n = hashguard_review::audit::export(&store, &mut w).await?;
                        w.into_inner()
                            .map_err(|e| e.into_error())
                            .and_then(|f| f.sync_all())
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        n
                    }
                    None => {
                        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                        let n = hashguard_review::audit::export(&store, &mut w).await?;
                        w.flush().context("cannot write output")?;
                        n
                    }
                };
                eprintln!("hashguard audit export: {n} events");
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

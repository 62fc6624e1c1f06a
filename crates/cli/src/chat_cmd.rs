//! `hashguard chat`: the reference end-to-end encrypted messenger (flags and printing only; the
//! work is in `hashguard-messenger`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use hashguard_messenger::{Checked, Event, FileSent, Messenger, Options};

/// Send and receive end-to-end encrypted messages and files in MLS groups.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The user's folder: keys, groups and received files, readable only by the user. Two
    /// users on one machine use two folders.
    #[arg(long, env = "HASHGUARD_CHAT_DIR")]
    dir: PathBuf,
    #[command(subcommand)]
    command: ChatCommand,
}

#[derive(Debug, Subcommand)]
enum ChatCommand {
    /// Create an account at the service and keep it in the folder.
    Register {
        /// The service, e.g. http://127.0.0.1:8640.
        #[arg(long)]
        server: String,
        /// The deployment's trust file (its service, organisation, log and witness keys): what
        /// an app ships with. Kept in the folder; tables it does not vouch for are refused.
        #[arg(long)]
        trust: PathBuf,
    },
    /// Print the account id to give to people who want to add you to a group.
    Whoami,
    /// Groups.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Add every device of an account to a group.
    Invite {
        /// The group.
        group: String,
        /// Their account id (`hashguard chat whoami` prints it).
        account: String,
    },
    /// Send a text, or a file with --file.
    Send {
        /// The group.
        group: String,
        /// The text.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// A photo or video to send.
        #[arg(long)]
        file: Option<PathBuf>,
        /// If the file is held, run the automatic check without asking.
        #[arg(long, conflicts_with = "no_check")]
        check: bool,
        /// If the file is held, do not offer the automatic check.
        #[arg(long)]
        no_check: bool,
    },
    /// Fetch what arrived: print messages, save files in the folder's received/.
    Receive,
    /// Run the automatic check of a held file (only in the session that sent it).
    Check {
        /// The case number shown when the file was held.
        case: String,
    },
    /// Appeal a file the automatic check kept blocked: another person reviews it.
    Appeal {
        /// The case number shown when the file was held.
        case: String,
        /// What you want the reviewer to know (optional).
        #[arg(default_value = "")]
        message: String,
    },
    /// Show where a case stands, and the answer to its appeal.
    Case {
        /// The case number shown when the file was held.
        case: String,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a group with you as its only member.
    Create {
        /// Its name (yours; the people you add see it too).
        name: String,
    },
    /// List your groups.
    List,
}

/// Runs `hashguard chat`.
pub fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    // OpenMLS's processing is deep; a thread of our own gives it room whatever the platform's
    // main-thread stack is.
    std::thread::Builder::new()
        .name("chat".into())
        .stack_size(16 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(chat(args))
        })
        .context("cannot start a thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the chat thread panicked"))?
}

async fn chat(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir;
    if let ChatCommand::Register { server, trust } = &args.command {
        let options = Options::default();
        let text = std::fs::read_to_string(trust)
            .with_context(|| format!("cannot read the trust file {}", trust.display()))?;
        let anchors = hashguard_client::TrustAnchors::parse(&text, options.pinned.clone())
            .with_context(|| format!("the trust file {} is not valid", trust.display()))?;
        let options = Options {
            trust: Some(anchors),
            ..options
        };
        let messenger = Messenger::register(server, &dir, options).await?;
        outln!("Registered. Your account id (share it so people can add you):")?;
        outln!("{}", messenger.account_id())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut messenger = Messenger::open(&dir, Options::default())?;
    match args.command {
        ChatCommand::Register { .. } => unreachable!("handled above"),
        ChatCommand::Whoami => outln!("{}", messenger.account_id())?,
        ChatCommand::Group(GroupCommand::Create { name }) => {
            messenger.create_group(&name).await?;
            outln!("Created group {name:?}. Add people with: hashguard chat --dir {} invite {name:?} ACCOUNT_ID", dir.display())?;
        }
        ChatCommand::Group(GroupCommand::List) => {
            for name in messenger.groups() {
                outln!("{name}")?;
            }
        }
        ChatCommand::Invite { group, account } => {
            let devices = messenger.invite(&group, &account).await?;
            let n = devices.len();
            outln!(
                "Added {account} ({n} device{}) to {group:?}.",
                if n == 1 { "" } else { "s" }
            )?;
        }
        ChatCommand::Send {
            group,
            text: Some(text),
            ..
        } => {
            messenger.send_text(&group, &text).await?;
            outln!("Sent.")?;
        }
        ChatCommand::Send {
            group,
            file: Some(file),
            check,
            no_check,
            ..
        } => return send_file(&mut messenger, &group, &file, check, no_check).await,
        ChatCommand::Send { .. } => anyhow::bail!("give a text or --file PATH"),
        ChatCommand::Receive => {
            let events = messenger.receive().await?;
            if events.is_empty() {
                outln!("Nothing new.")?;
            }
            for event in &events {
                print_event(event)?;
            }
        }
        ChatCommand::Check { case } => print_checked(messenger.check(&case).await?)?,
        ChatCommand::Appeal { case, message } => {
            let status = messenger.appeal(&case, &message).await?;
            outln!("Your appeal is recorded: {}.", status.state_words)?;
            outln!("See the answer later with: hashguard chat case {case}")?;
        }
        ChatCommand::Case { case } => {
            let status = messenger.case(&case).await?;
            outln!("Case {}: {}.", status.case_id, status.state_words)?;
            match status.appeal {
                Some(a) => outln!("Appeal: {}.", a.state_words)?,
                None => outln!("No appeal.")?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn send_file(
    messenger: &mut Messenger,
    group: &str,
    file: &Path,
    check: bool,
    no_check: bool,
) -> anyhow::Result<ExitCode> {
    match messenger.send_file(group, file).await? {
        FileSent::Sent { .. } => {
            outln!("Sent {}.", file.display())?;
            Ok(ExitCode::SUCCESS)
        }
        FileSent::RateLimited {
            retry_after,
            message,
        } => {
            outln!("Not sent: {message}")?;
            if let Some(wait) = retry_after {
                outln!("Try again in {} seconds.", wait.as_secs().max(1))?;
            }
            Ok(ExitCode::from(1))
        }
        FileSent::Rejected { message } => {
            outln!("Not sent: {message}")?;
            Ok(ExitCode::from(1))
        }
        FileSent::Held(intervention) => {
            outln!()?;
            // The service's reason begins with "This file was not sent."
            outln!("{} Nobody in the group got it.", intervention.reason)?;
            outln!()?;
            outln!("{}", intervention.what_happens)?;
            outln!()?;
            outln!("{}", intervention.check_offer)?;
            outln!()?;
            outln!("{}", intervention.appeal_how)?;
            outln!()?;
            if !intervention.help.is_empty() {
                outln!("You are not in trouble for asking for help. People you can talk to:")?;
                for h in &intervention.help {
                    outln!("  - {}: {}", h.name, h.url)?;
                    outln!("    {}", h.description)?;
                }
                outln!()?;
            }
            outln!("Your case number is {}.", intervention.case_id)?;
            let run = if check {
                true
            } else if no_check {
                false
            } else {
                ask("Run the automatic check now? [y/N] ")?
            };
            if run {
                print_checked(messenger.check(&intervention.case_id).await?)?;
            } else {
                outln!("The file stays blocked.")?;
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Reads a yes/no answer; no answer (end of input) is no.
fn ask(question: &str) -> anyhow::Result<bool> {
    out!("{question}")?;
    std::io::stdout().flush().context("cannot write output")?;
    let mut line = String::new();
    let stdin = std::io::stdin();
    if !stdin.is_terminal() && stdin.lock().read_line(&mut line).unwrap_or(0) == 0 {
        outln!()?;
        return Ok(false);
    }
    if stdin.is_terminal() {
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the answer")?;
    }
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

fn print_checked(checked: Checked) -> anyhow::Result<()> {
    match checked {
        Checked::Released { .. } => {
            outln!("The check found it was a mistake. The file has been sent to the group.")?
        }
        Checked::BlockedForReview { message } => outln!("{message}")?,
    }
    Ok(())
}

fn print_event(event: &Event) -> anyhow::Result<()> {
    match event {
        Event::Joined { group, by } => outln!("[{group}] {by} added you to a group")?,
        Event::Named { from, to } => outln!("[{to}] is the name of the group {from}")?,
        Event::Text { group, from, text } => outln!("[{group}] {from}: {text}")?,
        Event::File {
            group, from, path, ..
        } => outln!("[{group}] {from} sent a file, saved as {}", path.display())?,
        Event::FileDelayed { group, from, reason } => outln!(
            "[{group}] {from} sent a file that could not be downloaded yet ({reason}); `receive` tries again"
        )?,
        Event::FileLost { group, from, reason } => {
            outln!("[{group}] {from} sent a file that cannot be opened: {reason}")?
        }
        Event::MembersChanged { group, members } => {
            outln!("[{group}] members now: {}", members.join(", "))?
        }
        Event::Removed { group } => outln!("[{group}] you were removed from this group")?,
        Event::Unreadable { seq, reason } => {
            outln!("(message {seq} could not be read: {reason})")?
        }
    }
    Ok(())
}

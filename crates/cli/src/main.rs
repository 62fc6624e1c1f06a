//! `hashguard`: the command-line front of hashguard.
//!
//! Subcommands are thin: they parse arguments, call the library crates and format output. The
//! work (decoding, hashing, matching) lives in the crates so the server and SDK share it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// `println!` that returns a write failure (a closed pipe, a full disk) as an error for the
/// caller to pass up with `?`, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::Error::new(e).context("cannot write output"))
    }};
}

/// `print!` that returns a write failure as an error (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
            .map_err(|e| anyhow::Error::new(e).context("cannot write output"))
    }};
}

mod admin_cmd;
mod chat_cmd;
mod db;
mod demo_cmd;
mod hash_cmd;
mod hashing;
mod inputs;
mod list_cmd;
mod match_cmd;
mod output;
mod serve_cmd;
mod table_cmd;
mod transparency_cmd;
mod witness_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stops known abuse images in end-to-end encrypted messaging, privately.
#[derive(Debug, Parser)]
#[command(name = "hashguard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Administer the review UI: staff accounts.
    Admin(admin_cmd::AdminArgs),
    /// The review UI's audit log: verify its hash chain, export it.
    Audit(admin_cmd::AuditArgs),
    /// The reference end-to-end encrypted messenger: MLS groups, files checked at upload.
    Chat(chat_cmd::ChatArgs),
    /// Run the whole path on embedded defaults: stand-in lists, matching, private table, vouchers.
    Demo(demo_cmd::DemoArgs),
    /// Hash images with PDQ and videos with vPDQ (bit-exact with Meta's reference).
    Hash(hash_cmd::HashArgs),
    /// Make the transparency keys: service, log, organisation, witness.
    Keys(transparency_cmd::KeysArgs),
    /// Manage banks of hashes: create, import, export, stats, consensus.
    List(list_cmd::ListArgs),
    /// The manifest log: refresh witness cosignatures, verify as a client, audit everything.
    Log(transparency_cmd::LogArgs),
    /// Match images and videos (or hash lines) against the banks or a list file.
    Match(match_cmd::MatchArgs),
    /// Run the upload service: accounts, table distribution, uploads held or delivered.
    Serve(serve_cmd::ServeArgs),
    /// Build and verify the private-matching table from the consensus view.
    Table(table_cmd::TableArgs),
    /// Run a transparency-log witness (C2SP tlog-witness) for the manifest log.
    Witness(witness_cmd::WitnessArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Admin(args) => admin_cmd::run(args),
        Command::Audit(args) => admin_cmd::run_audit(args),
        Command::Chat(args) => chat_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args),
        Command::Hash(args) => hash_cmd::run(args),
        Command::Keys(args) => transparency_cmd::run_keys(args),
        Command::List(args) => list_cmd::run(args),
        Command::Log(args) => transparency_cmd::run_log(args),
        Command::Match(args) => match_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Table(args) => table_cmd::run(args),
        Command::Witness(args) => witness_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): not an error, as in ripgrep; stop quietly.
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hashguard: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}

/// Whether `err` comes from writing to a pipe whose reader has closed it.
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, `: `-separated, each cause once: libraries often put their
/// source's text in their own message too (sqlx's "error returned from database: X" over X),
/// and a cause already said adds nothing.
fn error_chain(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if message.is_empty() || text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

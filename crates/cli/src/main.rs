//! `hashguard`: the command-line front of hashguard.
//!
//! Subcommands are thin: they parse arguments, call the library crates and format output. The
//! work (decoding, hashing, matching) lives in the crates so the server and SDK share it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod hash_cmd;
mod inputs;

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
    /// Hash images with PDQ and videos with vPDQ (bit-exact with Meta's reference).
    Hash(hash_cmd::HashArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hashguard: {err:#}");
            ExitCode::from(2)
        }
    }
}

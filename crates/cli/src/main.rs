//! `hashguard`: the command-line front of hashguard.
//!
//! Subcommands are thin: they parse arguments, call the library crates and format output. The
//! work (decoding, hashing, matching) lives in the crates so the server and SDK share it.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod db;
mod hash_cmd;
mod hashing;
mod inputs;
mod list_cmd;
mod match_cmd;
mod table_cmd;

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
    /// Manage banks of hashes: create, import, export, stats, consensus.
    List(list_cmd::ListArgs),
    /// Match images and videos (or hash lines) against the banks or a list file.
    Match(match_cmd::MatchArgs),
    /// Build and verify the private-matching table from the consensus view.
    Table(table_cmd::TableArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hash(args) => hash_cmd::run(args),
        Command::List(args) => list_cmd::run(args),
        Command::Match(args) => match_cmd::run(args),
        Command::Table(args) => table_cmd::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hashguard: {err:#}");
            ExitCode::from(2)
        }
    }
}

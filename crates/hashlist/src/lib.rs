//! Banks of hashes with provenance, the list formats of the ecosystem, incremental list
//! versions and the consensus view that the private-matching table is built from.
//!
//! This crate is pure: it parses and validates bytes and strings and computes views. It opens
//! no file and no database (`hashguard-store` persists banks; the CLI reads files), so every
//! rule here is testable without I/O and reusable by the server and by auditors.
//!
//! # Design decisions
//!
//! - **Misuse is unrepresentable.** [`Bank`], [`ListItem`], [`Entry`], [`Jurisdiction`],
//!   [`BankName`], [`Text`], [`Tag`], [`Quality`] and [`Version`] validate in their
//!   constructors and keep their fields private: a bank's threshold fits its signal type
//!   (0 for MD5/SHA-256), a jurisdiction is an assigned ISO 3166-1 alpha-2 code, a PDQ item never
//!   has a quality under 50, a tombstone is never removed before it was added, text never holds
//!   a newline that would break a line format.
//! - **Nothing is dropped silently.** [`parse_list`] returns either every item of a file or every
//!   bad line with its 1-based number and a typed [`LineError`] (bad hex, wrong length, quality
//!   under 50, unknown signal type, wrong column count, ...). A file with one bad line
//!   yields no item, so a caller cannot import half a list. Blank lines and `#` comments are the
//!   only lines skipped, and that is documented per format on [`Format`].
//! - **A repeated value is one item that keeps every line's metadata.** Real lists repeat values
//!   (merged sources, several images with one hash, python-threatexchange's CSV with one row per
//!   collaboration), and python-threatexchange reads them. [`parse_list`] merges the lines of a
//!   value into one [`ListItem`]: the union of their source ids (PDQ CLI file names) and of their
//!   [`Label`]s (CSV collab, category, tags), and the highest quality; [`ParsedList::merged`]
//!   counts the merged lines. [`parse_list_with`] and [`Repeats::Refuse`] refuse repeats
//!   instead ([`LineError::Duplicate`]), for those who want a list to be a set.
//! - **Formats are detected, never trusted blindly.** [`Format::detect`] guesses from the first
//!   data line; a wrong guess can only turn into rejected lines, and callers can name the format.
//! - **Versions are immutable and only grow.** [`plan_import`] turns a newer list version into
//!   additions and tombstones so the bank's live entries equal the new list; the same version
//!   with the same content is a no-op; the same version with other content, or an older one, is
//!   refused. Tombstones keep the history, so any past version can be exported and audited
//!   ([`Entry::live_at`]).
//! - **Consensus is defined first, then made fast.** [`consensus_brute_force`] is the definition
//!   in code; [`consensus()`] searches each PDQ value's neighbours in the exact index crate (multi-index hashing) and is
//!   property-tested to return exactly the same view. See the [`consensus`](mod@consensus) module
//!   for the exact semantics (no cluster representative: every qualifying listed value is
//!   output; allow banks, disabled banks and tombstones are excluded).
//! - **Matching is defined by brute force.** [`Matcher`] answers "which entries of which enabled
//!   banks are within their bank's threshold of this value" with one multi-index search
//!   (`hashguard-index`) for PDQ and a hash map for exact types; allow banks suppress block
//!   matches. It is property-tested against comparing with every entry. It compares a vPDQ
//!   value by equality only; videos are matched frame by frame with
//!   `hashguard_vpdq::VideoBankIndex` (below).
//! - **Queries are not lists.** [`parse_queries`] reads the same formats but keeps duplicates and
//!   low qualities, which are normal in a batch of uploads and wrong in a list.
//! - **A vPDQ entry is one video.** Its value, [`Signal::Vpdq`] holding a [`VpdqSignal`], is the
//!   video's frame features in order (hash, quality, timestamp; frame numbers are positions), in
//!   python-threatexchange's `signal_str` text form: the JSON list `["<hex>,<quality>,<t>", ...]`
//!   with timestamps at Python's `.3` (three significant digits), written byte for byte as
//!   `vpdq_to_json` writes it, so lists round-trip with that tool (see the [`vpdq`](mod@vpdq)
//!   module). Parsing is strict and typed ([`VpdqError`], inside [`LineError::Vpdq`] with the
//!   line number): bad JSON, bad hex, a quality outside 0..=100, a bad timestamp, no frame, or
//!   more than [`MAX_VPDQ_FRAMES`] frames. Formats: `local_file` (`vpdq <json>`, the value is
//!   the rest of the line) and CSV (the `signal_str` field quoted as RFC 4180 says); plain hex and
//!   PDQ CLI output cannot hold vPDQ and refuse it whole.
//! - **vPDQ identity is the canonical text.** Two vPDQ values are the same (a duplicate in a
//!   list, the same entry across versions) exactly when their canonical `signal_str`s are equal:
//!   the same frames in the same order. Near-identical videos are different values.
//! - **vPDQ banks match frame by frame.** A vPDQ bank's threshold (default 31) is the largest
//!   Hamming distance at which two *frames* match; the video rule on top is
//!   python-threatexchange's (frames of quality >= 50, distance <= 31, >= 80% of the query's
//!   distinct frames matched), implemented and documented in `hashguard_vpdq`
//!   (`MatchRule`, and `VideoBankIndex` for whole banks).
//! - **Consensus is PDQ-only** (and the exact types): vPDQ banks never enter the consensus view
//!   that clients' tables are built from, since videos reach clients as keyframe PDQ hashes
//!   (see the [`consensus`](mod@consensus) module).
//!
//! # Example
//!
//! ```
//! use hashguard_hashlist::*;
//! let file = format!("# stand-in list\npdq {}\npdq {}\n", "f0".repeat(32), "0f".repeat(32));
//! let list = parse_list(file.as_bytes(), SignalType::Pdq, None)?;
//! let ImportPlan::Apply(changes) = plan_import(None, &[], list.items(), Version::FIRST)? else {
//!     unreachable!()
//! };
//! let entries = apply(&[], &changes);
//! assert_eq!(entries.len(), 2);
//! let items: Vec<ListItem> = entries.iter().map(|e| e.item().clone()).collect();
//! let csv = write_list(Format::Csv, SignalType::Pdq, &items)?;
//! assert!(csv.starts_with("signal_type,signal_str,collab,category,tags\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bank;
pub mod consensus;
mod diff;
mod entry;
mod format;
mod iso_codes;
mod matcher;
mod queries;
mod signal;
mod text;
pub mod vpdq;

pub use bank::{Bank, BankError, BankKind, BankName, Jurisdiction};
pub use consensus::{
    consensus, consensus_brute_force, BankEntries, ConsensusItem, ConsensusParams,
    ConsensusParamsError,
};
pub use diff::{apply, plan_import, Changes, ImportPlan, VersionError};
pub use entry::{Entry, EntryError, ItemError, Label, ListItem, Version};
pub use format::{
    parse_list, parse_list_with, write_list, BadLine, Format, LineError, ParseError, ParsedList,
    Repeats, UnknownFormat, WriteError, CSV_HEADER, MAX_LINE_BYTES,
};
pub use matcher::{Hit, Lookup, MatchRules, Matcher, MatcherError};
pub use queries::{detect_signal_type, parse_queries, QueryLine};
pub use signal::{
    Quality, QualityOutOfRange, Signal, SignalType, UnknownSignalType, ValueError, MIN_PDQ_QUALITY,
};
pub use text::{Tag, Text, TextError};
pub use vpdq::{format_timestamp, VpdqError, VpdqSignal, MAX_VPDQ_FRAMES};

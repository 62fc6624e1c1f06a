//! Persistence of hash banks, their entries (with tombstones) and list versions, on SQLite (the
//! embedded default: one file, WAL mode) or PostgreSQL (for deployments that outgrow one
//! machine), through one schema and one set of migrations.
//!
//! # Design decisions
//!
//! - **One SQL text per operation, run by each database's own driver.** Every statement is one
//!   text that runs unchanged on both databases, so the two backends cannot drift apart: there
//!   is no second implementation to forget to update, and the one test suite exercises the same
//!   code on both. The store holds the concrete pool (`SqlitePool` or `PgPool`, not
//!   `sqlx::AnyPool`), and a macro compiles each statement once per driver, so rows are decoded
//!   by the driver's own types: `sqlx::Any` converted every value of every row into an owned
//!   `AnyValue` first, which made loading 1.9 million entries take 16.6 s on SQLite (see
//!   `docs/store.md`). The SQL stays in the portable subset: `$n` placeholders (PostgreSQL's,
//!   which SQLite also accepts), `TEXT` and `BIGINT` columns, natural keys instead of
//!   auto-increment, partial unique indexes, no `RETURNING` or `ON CONFLICT`. The one place the
//!   databases differ is how a writer locks (below).
//! - **One schema, one migration set** (`migrations/`, embedded at build time with
//!   `sqlx::migrate!`, which needs no database at build time). A migration that may have been
//!   applied is never edited; changes come as new migrations in the same portable SQL
//!   (`0002_vpdq.sql` rebuilds the tables to change a CHECK constraint, which neither database
//!   can alter portably). No compile-time checked `query!`
//!   macros, for the same reason. User data only ever reaches the database as bind parameters;
//!   the only SQL built at run time is a list of placeholders (`($1,$2,...)`) for batched inserts.
//! - **Hash values are lowercase hex text.** Portable, readable from `sqlite3` and `psql`, and the
//!   same text as the list files; the pure `hashguard-hashlist` crate validates them on the way
//!   in and again on the way out (a row that fails validation is reported as corrupt, never
//!   skipped).
//! - **A vPDQ entry is keyed by a digest of its text.** A vPDQ value (one video) is a JSON
//!   `signal_str` of 77 bytes per frame, too long for a PostgreSQL B-tree key (checked: a
//!   60-frame `signal_str` of 4.5 kB is refused as a `TEXT PRIMARY KEY`: "index row size 4504
//!   exceeds btree version 4 maximum 2704"; at one hashed frame per second that is a one-minute
//!   video), so its row has
//!   `value` = SHA-256 (lowercase hex) of the canonical `signal_str` and `payload` = the
//!   `signal_str` itself (migration `0002_vpdq.sql`). The digest is the identity
//!   (`hashguard-hashlist` defines vPDQ identity as the canonical text, and equal texts have
//!   equal digests), so keys, tombstones and the one-live-row-per-value index work unchanged.
//!   On the way out the payload is parsed and its digest checked against `value`; a mismatch is
//!   reported as corrupt. For the other types `payload` is NULL.
//! - **An entry keeps each list line's metadata in the entry's row.** A list that repeats a value
//!   gives one entry with several source ids (PDQ CLI file names) and several labels (CSV collab,
//!   category and tags; see `hashguard_hashlist::ListItem`). They are kept in the `source_id`,
//!   `collab`, `category` and `tags` columns, one line per id or label, since none of those texts
//!   can hold a newline (migration `0003_collab.sql`): no extra table, no join on every load, and
//!   a row with one id and one label, or one written by an earlier version, reads as before.
//! - **An import is one transaction that locks before it reads.** On SQLite the transaction is
//!   `BEGIN IMMEDIATE`, which takes the database's write lock at once; on PostgreSQL its first
//!   statement is `SELECT ... FROM banks WHERE name = $1 FOR UPDATE`, which locks the bank's
//!   row. Either way two concurrent imports into one bank serialise, the second waiting (up to
//!   the busy timeout of [`StoreOptions`]) and then planning from what the first committed,
//!   instead of both planning from the same state. [`Store::import_next`] chooses the version
//!   inside that transaction, so concurrent imports get consecutive versions. The plan itself
//!   is [`hashguard_hashlist::plan_import`]: the store only executes it, so the versioning rules
//!   are defined (and property-tested) once. Bank deletion and renaming lock the same way.
//! - **The upload service's state is bookkeeping, and every cross-process rule is one
//!   statement or a key.** `hashguard serve` keeps accounts, devices, attachments, opened
//!   records, cases, audit events and rate buckets here (migration `0004_upload_service.sql`),
//!   so several server processes can share one database. Under guarantee G1 (the server learns
//!   nothing about uploads that do not match) the tables hold only ids, owners, the ciphertext's
//!   SHA-256 and length, states and times, plus the bytes of records whose voucher opened; no
//!   column may hold anything else derived from a voucher. A bearer token is kept only as its
//!   SHA-256. Ids are 16 random bytes as 32 lowercase hex digits, natural keys like the rest.
//!   Races between processes are settled by the database, portably: an opened record's key is
//!   (account, seq), so of two appends at one seq the second is refused
//!   ([`Appended::SeqTaken`]); a case moves by compare-and-set on its state; an audit seq is
//!   chosen inside a writing transaction and retried if another writer took it; a token bucket
//!   is refilled and taken from by one `UPDATE` whose condition is "enough tokens".
//! - **Tombstones, not deletes.** Removing a value sets `removed_in`; any past version can be
//!   exported, and the `list_versions` table is the audit trail (who, when, file SHA-256,
//!   counts). Only [`Store::delete_bank`] deletes rows: the whole bank with its history.
//!
//! # Modules
//!
//! `open` (URLs, connection set-up, pool, migrations; [`StoreOptions`] in `options`), `banks`
//! (create, update, delete, rename, and the bank lock), `import` (the import transaction and
//! its batched writes), `read` (entries, export, audit rows, counts), `load` (the hot path:
//! [`Store::load_enabled`]), `rows` (row to type conversion and back) and `pool` (the
//! concrete pool and the macro that runs one statement on either driver). The upload service's
//! state: `state` (its types: ids, states, records), `accounts` (accounts and devices),
//! `attachments`, `slots` (upload slots of the two-phase upload), `shares` (opened records,
//! frozen share stores), `cases`, `audit` (hash-chained), `limits`
//! (token buckets) and `integrity` ([`Store::integrity_check`]). The MLS delivery service's:
//! `delivery` (key packages, groups with compare-and-swap epochs, per-device queues).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use hashguard_hashlist::{parse_list, Bank, BankKind, SignalType, Version};
//! use hashguard_store::{ImportMeta, ImportOutcome, Store};
//!
//! let dir = std::env::temp_dir().join(format!("hashguard-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let store = Store::open(&Store::sqlite_url(&dir.join("lists.db"))).await?;
//! let bank = Bank::new("standin".parse()?, "Stand-in Org", "GB".parse()?, SignalType::Md5, BankKind::Block)?;
//! store.create_bank(&bank).await?;
//!
//! let file = format!("md5 {}\n", "0".repeat(32));
//! let list = parse_list(file.as_bytes(), SignalType::Md5, None)?;
//! let meta = ImportMeta::new("doc-test", Some("standin.txt"), file.as_bytes());
//! let outcome = store.import(bank.name(), &list, Version::FIRST, &meta).await?;
//! assert!(matches!(outcome, ImportOutcome::Imported { added: 1, .. }));
//! assert_eq!(store.import(bank.name(), &list, Version::FIRST, &meta).await?, ImportOutcome::NoOp);
//! // The next version is the store's choice: unchanged, the list is version 1 again.
//! let next = store.import_next(bank.name(), &list, &meta).await?;
//! assert_eq!((next.version, next.outcome), (Version::FIRST, ImportOutcome::NoOp));
//! assert_eq!(store.export(bank.name(), None).await?.len(), 1);
//! store.close().await;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accounts;
mod appeals;
mod attachments;
mod audit;
mod banks;
mod campaigns;
mod cases;
mod delivery;
mod error;
mod import;
mod integrity;
mod limits;
mod load;
mod location;
mod open;
mod options;
mod pool;
mod read;
mod review;
mod rows;
mod second_hashes;
mod shares;
mod slots;
mod staff;
mod state;

pub use appeals::Appeal;
pub use audit::{audit_hash, AuditCheck, AuditProblem, AUDIT_GENESIS};
pub use banks::DeletedBank;
pub use campaigns::{Campaign, ReleasedCheck};
pub use delivery::{
    ClaimedKeyPackages, CommitBundle, CommitOutcome, CommitRefusal, Delivery, DeliveryKind,
    GroupId, GroupIdError, GroupView, KeyPackagesPublished, SendOutcome, MAX_GROUP_ID_BYTES,
    MAX_KEY_PACKAGES_PER_DEVICE,
};
pub use error::StoreError;
pub use import::{ImportMeta, ImportOutcome, NextImport};
pub use limits::{Refused, TokenTake};
pub use load::LoadedBank;
pub use location::{DatabaseLocation, OpenMode, DEFAULT_DATABASE};
pub use open::{redact_url, sqlite_file};
pub use options::StoreOptions;
pub use read::{BankStats, ImportRecord};
pub use review::{Reveal, ReviewDecision, ReviewMaterial, ReviewOutcome, ReviewReport};
pub use second_hashes::SecondHashRow;
pub use slots::SlotRecord;
pub use staff::{StaffRecord, StaffSession};
pub use state::{
    AccountId, AppealState, Appended, AttachmentId, AttachmentRecord, AttachmentState, AuditEvent,
    CampaignId, CaseId, CaseKind, CaseRecord, CaseState, Device, DeviceId, ParseIdError,
    ParseStateError, SlotId, StoredRecord,
};

/// The schema migrations, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: one file, WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A connection pool to a hashguard database, migrated to the current schema. Cloning it is
/// cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: pool::Pool,
    /// The rate buckets' pool: on a SQLite file, connections of their own whose commits do
    /// not wait for the disk (see [`Store::take_tokens_together`]); otherwise `pool` again.
    limits_pool: pool::Pool,
    options: StoreOptions,
}

//! Imports: one transaction that locks the bank, plans the version with
//! [`hashguard_hashlist::plan_import`] and writes the audit row, the tombstones and the new
//! entries.

use std::collections::HashMap;

use hashguard_hashlist::{
    plan_import, BankName, Changes, Entry, ImportPlan, ListItem, ParsedList, Signal, Text, Version,
};
use sha2::{Digest, Sha256};

use crate::banks::{begin_write, lock_bank};
use crate::error::{corrupt, StoreError};
use crate::load::entries_in;
use crate::pool::{on_conn, Conn};
use crate::read::latest_in;
use crate::rows::{hex, label_columns, now, to_i64, value_columns};
use crate::Store;

/// Rows per batched `INSERT` (10 parameters each). Measured on 100,000 PDQ entries when there
/// were 9 (release build, loaded 2-core machine): SQLite took 6.4 s with 500 rows per statement,
/// 1.8 s with 100 and 1.2 s with 40 (binding cost grows faster than linearly with the parameter
/// count); PostgreSQL took 1.7-1.8 s either way.
const INSERT_BATCH: usize = 40;

/// Payload bytes per batched `INSERT` of vPDQ entries (a video's `signal_str` can be megabytes):
/// a batch ends at 40 rows or once it holds this many payload bytes.
const INSERT_BATCH_BYTES: usize = 4 << 20;

/// Who imports a list, from which file: the audit row's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMeta {
    imported_by: String,
    source_name: Option<String>,
    file_sha256: String,
}

impl ImportMeta {
    /// The audit data of an import of `file_bytes` (their SHA-256 is recorded, not the bytes)
    /// by `imported_by`, from a file called `source_name`.
    pub fn new(imported_by: &str, source_name: Option<&str>, file_bytes: &[u8]) -> ImportMeta {
        let digest = Sha256::digest(file_bytes);
        ImportMeta {
            imported_by: imported_by.to_string(),
            source_name: source_name.map(str::to_string),
            file_sha256: hex(&digest),
        }
    }

    /// The SHA-256 of the file, lowercase hex.
    pub fn file_sha256(&self) -> &str {
        &self.file_sha256
    }
}

/// The result of [`Store::import`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The version was the bank's latest with the same content: nothing was written.
    NoOp,
    /// The version was recorded and applied.
    Imported {
        /// The version.
        version: Version,
        /// Entries added.
        added: u64,
        /// Entries tombstoned.
        removed: u64,
        /// Entries left as they were.
        unchanged: u64,
    },
}

/// The result of [`Store::import_next`]: the version the store chose, and what importing the
/// list as that version did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextImport {
    /// The version: the bank's latest plus one (1 for a bank without versions) when the list
    /// was imported, or the bank's latest when the list equals it ([`ImportOutcome::NoOp`]).
    pub version: Version,
    /// What was written.
    pub outcome: ImportOutcome,
}

/// Which version an import writes.
#[derive(Debug, Clone, Copy)]
enum Choice {
    /// This one, as [`Store::import`] is told.
    Given(Version),
    /// The next one, as [`Store::import_next`] decides.
    Next,
}

/// The version to write and its plan, decided from the bank's state inside the transaction.
fn decide(
    name: &BankName,
    choice: Choice,
    latest: Option<Version>,
    live: &[Entry],
    items: &[ListItem],
) -> Result<(Version, ImportPlan), StoreError> {
    match (choice, latest) {
        (Choice::Given(version), _) => Ok((version, plan_import(latest, live, items, version)?)),
        (Choice::Next, None) => Ok((
            Version::FIRST,
            plan_import(None, live, items, Version::FIRST)?,
        )),
        (Choice::Next, Some(latest)) => match latest.next() {
            Some(next) => match plan_import(Some(latest), live, items, next)? {
                // An unchanged list is the latest version again: a no-op, not a new version.
                ImportPlan::Apply(c) if c.added.is_empty() && c.removed.is_empty() => {
                    Ok((latest, ImportPlan::NoOp))
                }
                plan => Ok((next, plan)),
            },
            None => match plan_import(Some(latest), live, items, latest) {
                Ok(ImportPlan::NoOp) => Ok((latest, ImportPlan::NoOp)),
                _ => Err(StoreError::VersionsExhausted {
                    bank: name.clone(),
                    latest,
                }),
            },
        },
    }
}

impl Store {
    /// Imports `list` as `version` of bank `name`, in one transaction: either the version row,
    /// every addition and every tombstone are written, or nothing is. Re-importing the latest
    /// version with the same content is [`ImportOutcome::NoOp`] (and writes nothing, not even an
    /// audit row); the rules are [`hashguard_hashlist::plan_import`]'s.
    pub async fn import(
        &self,
        name: &BankName,
        list: &ParsedList,
        version: Version,
        meta: &ImportMeta,
    ) -> Result<ImportOutcome, StoreError> {
        Ok(self
            .import_as(name, list, Choice::Given(version), meta)
            .await?
            .outcome)
    }

    /// Imports `list` into bank `name` as the bank's next version, chosen inside the import's
    /// transaction: the latest version plus one ([`Version::FIRST`] for a bank without
    /// versions), or, when the list equals the latest version, nothing
    /// ([`ImportOutcome::NoOp`], with the latest version in [`NextImport::version`]). Fails
    /// with [`StoreError::VersionsExhausted`] when the bank is at the largest version there is.
    ///
    /// Two imports into one bank at the same time, from one process or several, both succeed,
    /// one after the other, with consecutive versions: the second waits for the first's lock
    /// (up to the [busy timeout](crate::StoreOptions::with_busy_timeout), then
    /// [`StoreError::Busy`]) and plans from what the first committed.
    pub async fn import_next(
        &self,
        name: &BankName,
        list: &ParsedList,
        meta: &ImportMeta,
    ) -> Result<NextImport, StoreError> {
        self.import_as(name, list, Choice::Next, meta).await
    }

    async fn import_as(
        &self,
        name: &BankName,
        list: &ParsedList,
        choice: Choice,
        meta: &ImportMeta,
    ) -> Result<NextImport, StoreError> {
        let mut tx = begin_write(self).await?;
        let mut conn = tx.conn();
        // Lock the bank first (see the crate documentation).
        let bank = lock_bank(self, &mut conn, name).await?;
        if bank.signal_type() != list.signal_type() {
            return Err(StoreError::SignalTypeMismatch {
                bank: name.clone(),
                expected: bank.signal_type(),
                found: list.signal_type(),
            });
        }
        let latest = latest_in(&mut conn, name).await?;
        let live = entries_in(&mut conn, &bank, true).await?;
        let (version, changes) = match decide(name, choice, latest, &live, list.items())? {
            (version, ImportPlan::NoOp) => {
                tx.rollback().await?;
                return Ok(NextImport {
                    version,
                    outcome: ImportOutcome::NoOp,
                });
            }
            (version, ImportPlan::Apply(changes)) => (version, changes),
        };
        let live_since: HashMap<Signal, Version> = live
            .iter()
            .map(|e| (e.value().clone(), e.added_in()))
            .collect();
        write_changes(&mut conn, name, list, &changes, &live_since, meta).await?;
        tx.commit().await?;
        Ok(NextImport {
            version,
            outcome: ImportOutcome::Imported {
                version,
                added: changes.added.len() as u64,
                removed: changes.removed.len() as u64,
                unchanged: changes.unchanged as u64,
            },
        })
    }
}

/// `($k+1,...,$k+width),(...)` for `rows` rows: placeholders only, never data.
fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let cols: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", cols.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn write_changes(
    conn: &mut Conn<'_>,
    name: &BankName,
    list: &ParsedList,
    changes: &Changes,
    live_since: &HashMap<Signal, Version>,
    meta: &ImportMeta,
) -> Result<(), StoreError> {
    let version = to_i64(changes.version.get());
    on_conn!(&mut *conn, |c| {
        sqlx::query(
        "INSERT INTO list_versions (bank, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(name.as_str())
    .bind(version)
    .bind(now())
    .bind(meta.imported_by.as_str())
    .bind(meta.source_name.as_deref())
    .bind(meta.file_sha256.as_str())
    .bind(list.format().as_str())
    .bind(to_i64(list.items().len() as u64))
    .bind(to_i64(changes.added.len() as u64))
    .bind(to_i64(changes.removed.len() as u64))
    .bind(to_i64(changes.unchanged as u64))
    .execute(&mut *c)
    .await
    .map(|_| ())?
    });

    // Tombstones first: a value whose metadata changed is removed and added in this version, and
    // the partial unique index allows one live row per value. One statement per row, on the full
    // primary key: a batched `value IN ($3, ..., $502)` looked fine but PostgreSQL's generic plan
    // for it, on a table without statistics yet, scanned every row of the bank and compared it
    // with all 500 parameters (measured: 113 s to tombstone 33,334 of 100,000 entries; row by row
    // on the key it is an index lookup each, whatever the statistics).
    for value in &changes.removed {
        let key = value_columns(value).0;
        let added_in = live_since
            .get(value)
            .ok_or_else(|| corrupt("entries", format!("{key} is not live")))?;
        let done = on_conn!(&mut *conn, |c| sqlx::query(
            "UPDATE entries SET removed_in = $1 \
             WHERE bank = $2 AND value = $3 AND added_in = $4 AND removed_in IS NULL",
        )
        .bind(version)
        .bind(name.as_str())
        .bind(key.as_str())
        .bind(to_i64(added_in.get()))
        .execute(&mut *c)
        .await?
        .rows_affected());
        if done != 1 {
            return Err(corrupt(
                "entries",
                format!("{key}: expected one live row, found {done}"),
            ));
        }
    }

    let mut rest: &[ListItem] = &changes.added;
    while !rest.is_empty() {
        let mut rows = Vec::with_capacity(INSERT_BATCH);
        let mut bytes = 0;
        for item in rest.iter().take(INSERT_BATCH) {
            if !rows.is_empty() && bytes >= INSERT_BATCH_BYTES {
                break;
            }
            let (value, payload) = value_columns(item.value());
            bytes += payload.as_ref().map_or(0, String::len);
            let source_ids = (!item.source_ids().is_empty()).then(|| {
                item.source_ids()
                    .iter()
                    .map(Text::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            let (collab, category, tags) = label_columns(item.labels());
            rows.push(NewRow {
                value,
                quality: item.quality().map(|q| i64::from(q.get())),
                source_ids,
                category,
                tags,
                payload,
                collab,
            });
        }
        rest = &rest[rows.len()..];
        let sql = format!(
            "INSERT INTO entries (bank, value, added_in, removed_in, quality, source_id, category, tags, payload, collab) VALUES {}",
            placeholders(rows.len(), 10)
        );
        on_conn!(&mut *conn, |c| {
            let mut q = sqlx::query(&sql);
            for row in &rows {
                q = q
                    .bind(name.as_str())
                    .bind(row.value.as_str())
                    .bind(version)
                    .bind(None::<i64>)
                    .bind(row.quality)
                    .bind(row.source_ids.as_deref())
                    .bind(row.category.as_deref())
                    .bind(row.tags.as_str())
                    .bind(row.payload.as_deref())
                    .bind(row.collab.as_deref());
            }
            q.execute(&mut *c).await.map(|_| ())?
        });
    }
    Ok(())
}

/// The columns of one new entry row.
struct NewRow {
    value: String,
    quality: Option<i64>,
    source_ids: Option<String>,
    category: Option<String>,
    tags: String,
    payload: Option<String>,
    collab: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_then_columns() {
        assert_eq!(placeholders(2, 3), "($1,$2,$3),($4,$5,$6)");
    }
}

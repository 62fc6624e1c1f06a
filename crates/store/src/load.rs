//! The hot path: a bank's entries, read by the driver's own types (no `sqlx::Any` conversion),
//! many entries per row (all but vPDQ entries, whose payloads can be large), and
//! [`Store::load_enabled`], the input of the matcher and of the consensus view.

use hashguard_hashlist::{Bank, BankEntries, Entry, SignalType};

use crate::error::{corrupt, from_mapped, into_mapped, StoreError};
use crate::pool::{on_conn, Conn};
use crate::rows::{entry_columns, entry_from_columns, EntryColumns, ENTRY_COLUMNS};
use crate::Store;

/// A bank with entries, as [`Store::load_enabled`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedBank {
    /// The bank.
    pub bank: Bank,
    /// Its live entries, ordered by value (vPDQ: by digest).
    pub entries: Vec<Entry>,
}

impl<'a> From<&'a LoadedBank> for BankEntries<'a> {
    /// The bank and its entries as the consensus view reads them.
    fn from(loaded: &'a LoadedBank) -> Self {
        BankEntries {
            bank: &loaded.bank,
            entries: &loaded.entries,
        }
    }
}

/// Separates the fields of one row in a group of [`grouped_sql`]: a control character, which
/// no stored text can hold (`hashguard-hashlist`'s `Text` and `Tag` refuse them, values are
/// hex).
const FIELD: char = '\u{1f}';

/// Separates the rows of a group.
const RECORD: char = '\u{1e}';

/// The rows of a bank without a payload (every type but vPDQ) in groups of about a 4,096th of
/// the bank (by the first three hex digits of the value): each group is one text of rows
/// separated by [`RECORD`], each row its columns separated by [`FIELD`] (a nullable text
/// column as `+text` or `-` for NULL), with the count of its rows. One SQL text for both
/// databases (`string_agg` is PostgreSQL's and, since 3.44, SQLite's). A row per entry would
/// cost more than the entry is worth: the SQLite driver copies every value of every row on its
/// worker thread, and fetching 1.9 million rows of 9 columns took 10.1 s on the benchmark
/// machine, 1.0 s in groups (`docs/store.md`).
fn grouped_sql(live_only: bool) -> String {
    let f = format!("'{FIELD}'");
    format!(
        "SELECT COUNT(*), string_agg(value || {f} || CAST(added_in AS TEXT) || {f} || \
         COALESCE(CAST(removed_in AS TEXT), '') || {f} || COALESCE(CAST(quality AS TEXT), '') || {f} || \
         COALESCE('+' || source_id, '-') || {f} || COALESCE('+' || category, '-') || {f} || \
         COALESCE('+' || collab, '-') || {f} || tags, '{RECORD}') \
         FROM entries WHERE bank = $1{} AND payload IS NULL GROUP BY substr(value, 1, 3)",
        if live_only { " AND removed_in IS NULL" } else { "" }
    )
}

/// The rows with a payload (vPDQ: a video's frames can be megabytes), one per entry.
fn payload_sql(live_only: bool) -> String {
    format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE bank = $1{} AND payload IS NOT NULL",
        if live_only {
            " AND removed_in IS NULL"
        } else {
            ""
        }
    )
}

/// The rows of a group that [`grouped_sql`] made of `count` rows.
fn parse_group<'a>(
    group: &'a str,
    count: i64,
    out: &mut Vec<EntryColumns<'a>>,
) -> Result<(), StoreError> {
    let bad = |row: &str| corrupt("entries", format!("unreadable row {row:?}"));
    let int = |field: &str, row: &str| field.parse::<i64>().map_err(|_| bad(row));
    let optional_int = |field: &str, row: &str| {
        (!field.is_empty())
            .then(|| field.parse::<i64>().map_err(|_| bad(row)))
            .transpose()
    };
    let optional_text = |field: &'a str, row: &str| match field.strip_prefix('+') {
        Some(text) => Ok(Some(text)),
        None if field == "-" => Ok(None),
        None => Err(bad(row)),
    };
    let before = out.len();
    for row in group.split(RECORD) {
        let mut fields = row.split(FIELD);
        let mut next = || fields.next().ok_or_else(|| bad(row));
        let columns = EntryColumns {
            value: next()?,
            added_in: int(next()?, row)?,
            removed_in: optional_int(next()?, row)?,
            quality: optional_int(next()?, row)?,
            source_id: optional_text(next()?, row)?,
            category: optional_text(next()?, row)?,
            collab: optional_text(next()?, row)?,
            tags: next()?,
            payload: None,
        };
        if fields.next().is_some() {
            return Err(bad(row));
        }
        out.push(columns);
    }
    // Every row adds at least one item: as many items as rows means that no text held a
    // separator (written behind the store's back) that could make one row pass as two.
    if i64::try_from(out.len() - before).ok() != Some(count) {
        return Err(corrupt(
            "entries",
            format!(
                "a group of {count} rows reads as {} rows",
                out.len() - before
            ),
        ));
    }
    Ok(())
}

/// The bank's entries (only the live ones if `live_only`), ordered by value then version (the
/// values are hex, whose order is the same in every collation).
pub(crate) async fn entries_in(
    conn: &mut Conn<'_>,
    bank: &Bank,
    live_only: bool,
) -> Result<Vec<Entry>, StoreError> {
    let signal_type = bank.signal_type();
    let name = bank.name().as_str();
    let grouped_sql = grouped_sql(live_only);
    let groups: Vec<(i64, String)> = on_conn!(&mut *conn, |c| sqlx::query_as(&grouped_sql)
        .bind(name)
        .fetch_all(&mut *c)
        .await?);
    let mut grouped = Vec::with_capacity(
        groups
            .iter()
            .map(|(count, _)| usize::try_from(*count).unwrap_or(0))
            .sum(),
    );
    for (count, group) in &groups {
        parse_group(group, *count, &mut grouped)?;
    }
    grouped.sort_unstable_by(|a, b| (a.value, a.added_in).cmp(&(b.value, b.added_in)));

    // Each row with a payload becomes an entry as it arrives; an invalid row stops the load
    // with its reason.
    let payload_sql = payload_sql(live_only);
    let mut other: Vec<(String, i64, Entry)> = on_conn!(&mut *conn, |c| sqlx::query(&payload_sql)
        .bind(name)
        .try_map(|row| {
            entry_columns(&row)
                .map_err(StoreError::from)
                .and_then(|columns| {
                    let (value, added_in) = (columns.value.to_string(), columns.added_in);
                    Ok((value, added_in, entry_from_columns(columns, signal_type)?))
                })
                .map_err(into_mapped)
        })
        .fetch_all(&mut *c)
        .await)
    .map_err(from_mapped)?;
    other.sort_unstable_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));

    // Both in order: merge them.
    let mut out = Vec::with_capacity(grouped.len() + other.len());
    let mut other = other.into_iter().peekable();
    for row in grouped {
        while let Some((_, _, entry)) = other
            .next_if(|(value, added_in, _)| (value.as_str(), *added_in) < (row.value, row.added_in))
        {
            out.push(entry);
        }
        out.push(entry_from_columns(row, signal_type)?);
    }
    out.extend(other.map(|(_, _, entry)| entry));
    Ok(out)
}

impl Store {
    /// Every enabled bank (of `signal_type`, if given) with its live entries, by bank name: the
    /// input of the matcher and of [`hashguard_hashlist::consensus()`]. Allow banks are included
    /// (the matcher needs them); the consensus view leaves them out by itself. The banks are
    /// read at the same time on up to [`StoreOptions::max_connections`](crate::StoreOptions::max_connections)
    /// connections (each bank in one statement, not all banks in one transaction, as before).
    pub async fn load_enabled(
        &self,
        signal_type: Option<SignalType>,
    ) -> Result<Vec<LoadedBank>, StoreError> {
        let banks: Vec<Bank> = self
            .banks()
            .await?
            .into_iter()
            .filter(|b| b.enabled() && signal_type.is_none_or(|t| t == b.signal_type()))
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, bank) in banks.iter().enumerate() {
            let (store, bank) = (self.clone(), bank.clone());
            tasks.spawn(async move {
                let mut pooled = store.pool.acquire().await?;
                let entries = entries_in(&mut pooled.conn(), &bank, true).await?;
                Ok::<_, StoreError>((i, entries))
            });
        }
        let mut loaded: Vec<(usize, Vec<Entry>)> = Vec::with_capacity(banks.len());
        // Dropping the set on an error aborts the other loads.
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(result) => loaded.push(result?),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => {
                    return Err(StoreError::Database(sqlx::Error::Io(
                        std::io::Error::other(format!("a bank's load was cancelled: {e}")),
                    )))
                }
            }
        }
        // Every task gave its bank's entries: back in the order of the banks.
        loaded.sort_unstable_by_key(|(i, _)| *i);
        Ok(banks
            .into_iter()
            .zip(loaded)
            .map(|(bank, (_, entries))| LoadedBank { bank, entries })
            .collect())
    }
}

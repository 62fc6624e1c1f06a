//! The hot path: a bank's entries, read by the driver's own types (no `sqlx::Any` conversion),
//! entries without metadata in groups of many per row, and [`Store::load_enabled`], the input
//! of the matcher and of the consensus view.

use hashguard_hashlist::{Bank, Entry, SignalType};

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

/// A row that holds nothing but its value, versions and quality: every entry of a list without
/// metadata (plain hex, or PDQ CLI output without file names), which is most of them.
const PLAIN: &str =
    "source_id IS NULL AND category IS NULL AND tags = '' AND payload IS NULL AND collab IS NULL";

/// The other rows (`tags` is never NULL, so this is exactly `NOT PLAIN`).
const NOT_PLAIN: &str = "(source_id IS NOT NULL OR category IS NOT NULL OR tags <> '' OR payload IS NOT NULL OR collab IS NOT NULL)";

/// The plain rows of a bank in groups of about a 4,096th of the bank (by the first three hex
/// digits of the value): each group is one text of `value,added_in,removed_in,quality` items
/// separated by `;`, with the count of its rows. One SQL text for both databases
/// (`string_agg` is PostgreSQL's and, since 3.44, SQLite's). A row per entry would cost more
/// than the entry is worth: the SQLite driver copies every value of every row on its worker
/// thread, and fetching 1.9 million rows of 9 columns took 10.1 s on the benchmark machine,
/// 1.0 s in groups (`docs/store.md`).
fn plain_sql(live_only: bool) -> String {
    format!(
        "SELECT COUNT(*), string_agg(value || ',' || CAST(added_in AS TEXT) || ',' || \
         COALESCE(CAST(removed_in AS TEXT), '') || ',' || COALESCE(CAST(quality AS TEXT), ''), ';') \
         FROM entries WHERE bank = $1{} AND {PLAIN} GROUP BY substr(value, 1, 3)",
        if live_only { " AND removed_in IS NULL" } else { "" }
    )
}

/// The other rows of a bank, one per entry.
fn other_sql(live_only: bool) -> String {
    format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE bank = $1{} AND {NOT_PLAIN}",
        if live_only {
            " AND removed_in IS NULL"
        } else {
            ""
        }
    )
}

/// One item of a group of plain rows.
struct PlainRow<'a> {
    value: &'a str,
    added_in: i64,
    removed_in: Option<i64>,
    quality: Option<i64>,
}

/// The items of a group that [`plain_sql`] made of `count` rows.
fn parse_group<'a>(
    group: &'a str,
    count: i64,
    out: &mut Vec<PlainRow<'a>>,
) -> Result<(), StoreError> {
    let bad = |item: &str| corrupt("entries", format!("unreadable plain row {item:?}"));
    let int = |field: &str, item: &str| field.parse::<i64>().map_err(|_| bad(item));
    let optional = |field: &str, item: &str| {
        (!field.is_empty())
            .then(|| field.parse::<i64>().map_err(|_| bad(item)))
            .transpose()
    };
    let before = out.len();
    for item in group.split(';') {
        let mut fields = item.split(',');
        let (Some(value), Some(added_in), Some(removed_in), Some(quality), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(bad(item));
        };
        out.push(PlainRow {
            value,
            added_in: int(added_in, item)?,
            removed_in: optional(removed_in, item)?,
            quality: optional(quality, item)?,
        });
    }
    // A value holding `;` or `,` (written behind the store's back) must not pass as two rows.
    if i64::try_from(out.len() - before).ok() != Some(count) {
        return Err(corrupt(
            "entries",
            format!(
                "a group of {count} plain rows reads as {} items",
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
    let plain_sql = plain_sql(live_only);
    let groups: Vec<(i64, String)> = on_conn!(&mut *conn, |c| sqlx::query_as(&plain_sql)
        .bind(name)
        .fetch_all(&mut *c)
        .await?);
    let mut plain = Vec::with_capacity(
        groups
            .iter()
            .map(|(count, _)| usize::try_from(*count).unwrap_or(0))
            .sum(),
    );
    for (count, group) in &groups {
        parse_group(group, *count, &mut plain)?;
    }
    plain.sort_unstable_by(|a, b| (a.value, a.added_in).cmp(&(b.value, b.added_in)));

    // Each other row becomes an entry as it arrives; an invalid row stops the load with its
    // reason.
    let other_sql = other_sql(live_only);
    let mut other: Vec<(String, i64, Entry)> = on_conn!(&mut *conn, |c| sqlx::query(&other_sql)
        .bind(name)
        .try_map(|row| {
            entry_columns(&row)
                .map_err(StoreError::from)
                .and_then(|columns| {
                    let key = (columns.value.to_string(), columns.added_in);
                    Ok((key.0, key.1, entry_from_columns(columns, signal_type)?))
                })
                .map_err(into_mapped)
        })
        .fetch_all(&mut *c)
        .await)
    .map_err(from_mapped)?;
    other.sort_unstable_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));

    // Both in order: merge them.
    let mut out = Vec::with_capacity(plain.len() + other.len());
    let mut other = other.into_iter().peekable();
    for row in plain {
        while let Some((_, _, entry)) = other
            .next_if(|(value, added_in, _)| (value.as_str(), *added_in) < (row.value, row.added_in))
        {
            out.push(entry);
        }
        let columns = EntryColumns {
            value: row.value,
            added_in: row.added_in,
            removed_in: row.removed_in,
            quality: row.quality,
            source_id: None,
            category: None,
            tags: "",
            payload: None,
            collab: None,
        };
        out.push(entry_from_columns(columns, signal_type)?);
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

//! Conversion between rows and the `hashguard-hashlist` types, both ways: every value read back
//! is validated again (a row that fails is [`StoreError::Corrupt`], never skipped).

use std::time::{SystemTime, UNIX_EPOCH};

use hashguard_hashlist::{
    Bank, BankKind, BankName, Entry, Jurisdiction, Label, ListItem, Quality, Signal, SignalType,
    Tag, Text, Version,
};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::error::{corrupt, StoreError};
use crate::ImportRecord;

/// The columns of a bank, in the order of [`BANK_COLUMNS`].
pub(crate) type BankRow = (String, String, String, String, i64, i64, String);

/// The `SELECT` list of a [`BankRow`].
pub(crate) const BANK_COLUMNS: &str =
    "name, organisation, jurisdiction, signal_type, threshold, enabled, kind";

/// The columns of an audit row, in the order of [`IMPORT_COLUMNS`].
pub(crate) type ImportRow = (
    i64,
    i64,
    String,
    Option<String>,
    String,
    String,
    i64,
    i64,
    i64,
    i64,
);

/// The `SELECT` list of an [`ImportRow`].
pub(crate) const IMPORT_COLUMNS: &str = "version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged";

/// The `SELECT` list that [`entry_columns`] reads.
pub(crate) const ENTRY_COLUMNS: &str =
    "value, added_in, removed_in, quality, source_id, category, tags, payload, collab";

/// Unix time in seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A version column's value, or a [`StoreError::Corrupt`] naming `table`.
pub(crate) fn version(table: &'static str, v: i64) -> Result<Version, StoreError> {
    u64::try_from(v)
        .ok()
        .and_then(Version::new)
        .ok_or_else(|| corrupt(table, format!("version {v} out of range")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn bank_from_row(r: BankRow) -> Result<Bank, StoreError> {
    let c = |e: &dyn std::fmt::Display| corrupt("banks", e);
    let (name, organisation, jurisdiction, signal_type, threshold, enabled, kind) = r;
    let name: BankName = name.parse().map_err(|e| c(&e))?;
    let jurisdiction: Jurisdiction = jurisdiction.parse().map_err(|e| c(&e))?;
    let signal_type: SignalType = signal_type.parse().map_err(|e| c(&e))?;
    let threshold = u32::try_from(threshold).map_err(|e| c(&e))?;
    let kind: BankKind = kind.parse().map_err(|e| c(&e))?;
    Bank::new(name, &organisation, jurisdiction, signal_type, kind)
        .and_then(|b| b.with_threshold(threshold))
        .map(|b| b.with_enabled(enabled != 0))
        .map_err(|e| c(&e))
}

pub(crate) fn import_from_row(r: ImportRow) -> Result<ImportRecord, StoreError> {
    let (
        v,
        imported_at,
        imported_by,
        source_name,
        file_sha256,
        format,
        items,
        added,
        removed,
        unchanged,
    ) = r;
    Ok(ImportRecord {
        version: version("list_versions", v)?,
        imported_at,
        imported_by,
        source_name,
        file_sha256,
        format,
        items: to_u64(items),
        added: to_u64(added),
        removed: to_u64(removed),
        unchanged: to_u64(unchanged),
    })
}

/// An entry's columns as the driver holds them (texts borrowed from the row, not copied).
pub(crate) struct EntryColumns<'r> {
    pub(crate) value: &'r str,
    pub(crate) added_in: i64,
    pub(crate) removed_in: Option<i64>,
    pub(crate) quality: Option<i64>,
    pub(crate) source_id: Option<&'r str>,
    pub(crate) category: Option<&'r str>,
    pub(crate) tags: &'r str,
    pub(crate) payload: Option<&'r str>,
    pub(crate) collab: Option<&'r str>,
}

/// The [`ENTRY_COLUMNS`] of a row of either driver, decoded by the driver's own types.
pub(crate) fn entry_columns<'r, R>(r: &'r R) -> Result<EntryColumns<'r>, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(EntryColumns {
        value: r.try_get(0)?,
        added_in: r.try_get(1)?,
        removed_in: r.try_get(2)?,
        quality: r.try_get(3)?,
        source_id: r.try_get(4)?,
        category: r.try_get(5)?,
        tags: r.try_get(6)?,
        payload: r.try_get(7)?,
        collab: r.try_get(8)?,
    })
}

/// A hex value of a fixed-size type, decoded from the bytes (the store writes lowercase hex;
/// upper case is accepted, as [`Signal::parse`] accepts it). `None` if it is not `2 * N` hex
/// digits.
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The value of a row whose type has a fixed-size hex value: the hot path of every load. A
/// value that does not decode goes through [`Signal::parse`], for its error message.
fn hex_value(signal_type: SignalType, key: &str) -> Result<Signal, StoreError> {
    let fast = match signal_type {
        SignalType::Pdq => {
            decode_hex::<32>(key).map(|b| Signal::Pdq(hashguard_pdq::Hash256::from_be_bytes(&b)))
        }
        SignalType::Md5 => decode_hex::<16>(key).map(Signal::Md5),
        SignalType::Sha256 => decode_hex::<32>(key).map(Signal::Sha256),
        SignalType::Vpdq => None,
    };
    match fast {
        Some(value) => Ok(value),
        None => Signal::parse(signal_type, key).map_err(|e| corrupt("entries", e)),
    }
}

/// The entry a row of `signal_type`'s bank holds, validated.
pub(crate) fn entry_from_columns(
    r: EntryColumns<'_>,
    signal_type: SignalType,
) -> Result<Entry, StoreError> {
    let c = |e: &dyn std::fmt::Display| corrupt("entries", e);
    let key = r.value;
    let value = match (signal_type, r.payload) {
        (SignalType::Vpdq, Some(text)) => {
            let value = Signal::parse(signal_type, text).map_err(|e| c(&e))?;
            let (want, _) = value_columns(&value);
            if want != key {
                return Err(c(&format!(
                    "vpdq entry {key}: its payload's digest is {want}"
                )));
            }
            value
        }
        (SignalType::Vpdq, None) => {
            return Err(c(&format!("vpdq entry {key} has no payload")));
        }
        (_, Some(_)) => {
            return Err(c(&format!("{signal_type} entry {key} has a payload")));
        }
        (_, None) => hex_value(signal_type, key)?,
    };
    let added_in = version("entries", r.added_in)?;
    let removed_in = r.removed_in.map(|v| version("entries", v)).transpose()?;
    let quality = r
        .quality
        .map(|q| {
            u8::try_from(q)
                .ok()
                .and_then(|q| Quality::new(q).ok())
                .ok_or_else(|| corrupt("entries", format!("quality {q}")))
        })
        .transpose()?;
    let mut item = ListItem::new(value, quality).map_err(|e| c(&e))?;
    if let Some(ids) = r.source_id {
        let ids = ids
            .split('\n')
            .map(Text::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| c(&e))?;
        item = item.with_source_ids(ids);
    }
    if r.collab.is_some() || r.category.is_some() || !r.tags.is_empty() {
        let labels = labels_from_columns(r.collab, r.category, r.tags)
            .map_err(|e| c(&format!("entry {key}: {e}")))?;
        item = item.with_labels(labels);
    }
    Entry::new(item, added_in, removed_in).map_err(|e| c(&e))
}

/// The `collab`, `category` and `tags` columns of an item's labels: one line per label (see the
/// crate documentation); NULL, NULL and empty for none, and NULL for a column no label fills.
pub(crate) fn label_columns(labels: &[Label]) -> (Option<String>, Option<String>, String) {
    let column = |field: &dyn Fn(&Label) -> Option<&Text>| {
        labels.iter().any(|l| field(l).is_some()).then(|| {
            labels
                .iter()
                .map(|l| field(l).map_or("", Text::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
    };
    let tags = labels
        .iter()
        .map(|l| {
            l.tags()
                .iter()
                .map(Tag::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n");
    (column(&Label::collab), column(&Label::category), tags)
}

/// The labels that [`label_columns`] wrote (and the one label of a row of an earlier version:
/// a category and tags, no collab).
pub(crate) fn labels_from_columns(
    collab: Option<&str>,
    category: Option<&str>,
    tags: &str,
) -> Result<Vec<Label>, String> {
    if collab.is_none() && category.is_none() && tags.is_empty() {
        return Ok(Vec::new());
    }
    let count = tags.split('\n').count();
    let texts = |column: Option<&str>, name: &str| -> Result<Vec<Option<Text>>, String> {
        let Some(column) = column else {
            return Ok(vec![None; count]);
        };
        let parts: Vec<&str> = column.split('\n').collect();
        if parts.len() != count {
            return Err(format!("{} {name} lines for {count} labels", parts.len()));
        }
        parts
            .into_iter()
            .map(|p| {
                (!p.is_empty())
                    .then(|| Text::new(p).map_err(|e| format!("{name}: {e}")))
                    .transpose()
            })
            .collect()
    };
    let collabs = texts(collab, "collab")?;
    let categories = texts(category, "category")?;
    tags.split('\n')
        .zip(collabs.into_iter().zip(categories))
        .map(|(tags, (collab, category))| {
            let tags = tags
                .split_whitespace()
                .map(|t| t.parse::<Tag>().map_err(|e| format!("tag {t:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Label::new(collab, category, tags))
        })
        .collect()
}

/// The `value` and `payload` columns of a value: the hex and nothing, or for vPDQ the SHA-256 of
/// the canonical `signal_str` and the `signal_str` (see the crate documentation).
pub(crate) fn value_columns(value: &Signal) -> (String, Option<String>) {
    match value {
        Signal::Vpdq(v) => (v.sha256_hex(), Some(v.to_string())),
        other => (other.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_columns_round_trip() {
        let t = |s: &str| Some(Text::new(s).unwrap());
        let tags = |t: &[&str]| t.iter().map(|t| t.parse().unwrap()).collect::<Vec<Tag>>();
        let cases = [
            vec![],
            vec![Label::new(None, None, tags(&["a"]))],
            vec![Label::new(t("Org"), None, vec![])],
            vec![Label::new(None, t("c"), tags(&["b", "a"]))],
            vec![
                Label::new(t("A"), None, vec![]),
                Label::new(None, t("c"), tags(&["x"])),
                Label::new(t("B"), t("d"), vec![]),
            ],
        ];
        for labels in cases {
            let (collab, category, tags) = label_columns(&labels);
            assert_eq!(
                labels_from_columns(collab.as_deref(), category.as_deref(), &tags).unwrap(),
                labels
            );
        }
        // A row of an earlier version: a category and tags, no collab column.
        assert_eq!(
            labels_from_columns(None, Some("c"), "b a").unwrap(),
            vec![Label::new(None, t("c"), tags(&["a", "b"]))]
        );
        assert!(labels_from_columns(Some("A\nB"), None, "x").is_err());
    }

    #[test]
    fn hex_fast_path_agrees_with_signal_parse() {
        let lower = "0123456789abcdef".repeat(4);
        for s in [lower.clone(), lower.to_uppercase()] {
            assert_eq!(
                hex_value(SignalType::Pdq, &s).unwrap(),
                Signal::parse(SignalType::Pdq, &s).unwrap()
            );
            assert_eq!(
                hex_value(SignalType::Sha256, &s).unwrap(),
                Signal::parse(SignalType::Sha256, &s).unwrap()
            );
            assert_eq!(
                hex_value(SignalType::Md5, &s[..32]).unwrap(),
                Signal::parse(SignalType::Md5, &s[..32]).unwrap()
            );
        }
        // Anything else is refused, with Signal::parse's reason.
        for bad in [
            &lower[..63],
            "g".repeat(64).as_str(),
            "é".repeat(32).as_str(),
        ] {
            assert!(matches!(
                hex_value(SignalType::Pdq, bad),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }
}

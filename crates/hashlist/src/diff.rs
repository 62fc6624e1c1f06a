//! Incremental list versions: what importing a newer version of a list changes in a bank.

use std::collections::HashMap;

use crate::entry::{Entry, ListItem, Version};
use crate::signal::Signal;

/// Why a list version cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The version is older than the bank's latest.
    #[error("version {version} is older than the bank's latest version {latest}")]
    Stale {
        /// The refused version.
        version: Version,
        /// The bank's latest version.
        latest: Version,
    },
    /// The version equals the bank's latest but the content differs: a list version, once
    /// imported, is immutable.
    #[error("version {version} was already imported with different content ({added} to add, {removed} to remove); publish a new version")]
    Conflict {
        /// The version.
        version: Version,
        /// Items in the new content and not in the bank.
        added: usize,
        /// Items in the bank and not in the new content.
        removed: usize,
    },
}

/// The changes that turn a bank's live entries into a list version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The version being imported.
    pub version: Version,
    /// Items to add as new entries (`added_in = version`).
    pub added: Vec<ListItem>,
    /// Values of live entries to tombstone (`removed_in = version`).
    pub removed: Vec<Signal>,
    /// Live entries that stay as they are.
    pub unchanged: usize,
}

/// What to do with an imported list version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportPlan {
    /// The version is the bank's latest and the content is the same: nothing to do.
    NoOp,
    /// Record the version and apply the changes (which may be empty).
    Apply(Changes),
}

/// Plans the import of `items` as list `version` into a bank whose latest version is `latest`
/// and whose entries (live and tombstones) are `current`.
///
/// Rules:
/// - a version newer than `latest` (or any version of a new bank) is applied: every live entry
///   whose value is absent from `items` is tombstoned; every item whose value is not live is
///   added; an item whose value is live but whose metadata (quality, source ids, labels)
///   differs is tombstoned and added again, so the history shows the change;
/// - the same version as `latest` is a no-op when the content is equal, and a
///   [`VersionError::Conflict`] otherwise;
/// - an older version is [`VersionError::Stale`].
///
/// After [`apply`] of the changes, the bank's live entries equal `items` (as a set; items of one
/// value are merged into one, as [`parse_list`](crate::parse_list) merges repeated lines).
///
/// ```
/// use hashguard_hashlist::*;
/// let item = |h: &str| ListItem::new(Signal::parse(SignalType::Md5, &h.repeat(32)).unwrap(), None).unwrap();
/// let v1 = Version::FIRST;
/// let v2 = v1.next().unwrap();
/// let ImportPlan::Apply(c1) = plan_import(None, &[], &[item("a"), item("b")], v1)? else { panic!() };
/// let bank = apply(&[], &c1);
/// assert_eq!(plan_import(Some(v1), &bank, &[item("b"), item("a")], v1)?, ImportPlan::NoOp);
/// let ImportPlan::Apply(c2) = plan_import(Some(v1), &bank, &[item("b")], v2)? else { panic!() };
/// assert_eq!((c2.added.len(), c2.removed.len(), c2.unchanged), (0, 1, 1));
/// let bank = apply(&bank, &c2);
/// assert_eq!(bank.iter().filter(|e| e.is_live()).count(), 1);
/// # Ok::<(), VersionError>(())
/// ```
pub fn plan_import(
    latest: Option<Version>,
    current: &[Entry],
    items: &[ListItem],
    version: Version,
) -> Result<ImportPlan, VersionError> {
    if let Some(latest) = latest {
        if version < latest {
            return Err(VersionError::Stale { version, latest });
        }
    }
    // Parsed lists have no repeated value; for other callers the items of one value are merged
    // as `parse_list` merges repeated lines.
    let mut index: HashMap<&Signal, usize> = HashMap::new();
    let mut merged: Vec<ListItem> = Vec::with_capacity(items.len());
    for item in items {
        match index.get(item.value()) {
            Some(&i) => merged[i].absorb(item.clone()),
            None => {
                index.insert(item.value(), merged.len());
                merged.push(item.clone());
            }
        }
    }
    let items: Vec<&ListItem> = merged.iter().collect();
    let live: HashMap<&Signal, &ListItem> = current
        .iter()
        .filter(|e| e.is_live())
        .map(|e| (e.value(), e.item()))
        .collect();
    let wanted: HashMap<&Signal, &ListItem> = items.iter().map(|i| (i.value(), *i)).collect();
    let mut added: Vec<ListItem> = Vec::new();
    let mut removed: Vec<Signal> = Vec::new();
    let mut unchanged = 0;
    for item in items {
        match live.get(item.value()) {
            Some(old) if **old == *item => unchanged += 1,
            Some(_) => {
                removed.push(item.value().clone());
                added.push((*item).clone());
            }
            None => added.push((*item).clone()),
        }
    }
    for value in live.keys() {
        if !wanted.contains_key(value) {
            removed.push((*value).clone());
        }
    }
    removed.sort();
    removed.dedup();
    added.sort_by(|a, b| a.value().cmp(b.value()));
    if latest == Some(version) {
        if added.is_empty() && removed.is_empty() {
            return Ok(ImportPlan::NoOp);
        }
        return Err(VersionError::Conflict {
            version,
            added: added.len(),
            removed: removed.len(),
        });
    }
    Ok(ImportPlan::Apply(Changes {
        version,
        added,
        removed,
        unchanged,
    }))
}

/// Applies `changes` to `current` without a database: tombstones the removed live entries and
/// appends the added ones. The store does the same in SQL; this is the reference it is tested
/// against.
pub fn apply(current: &[Entry], changes: &Changes) -> Vec<Entry> {
    let removed: std::collections::HashSet<&Signal> = changes.removed.iter().collect();
    let mut out: Vec<Entry> = current
        .iter()
        .map(|e| {
            if e.is_live() && removed.contains(e.value()) {
                Entry::new(e.item().clone(), e.added_in(), Some(changes.version))
                    .unwrap_or_else(|_| e.clone())
            } else {
                e.clone()
            }
        })
        .collect();
    out.extend(
        changes
            .added
            .iter()
            .filter_map(|i| Entry::new(i.clone(), changes.version, None).ok()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Quality, SignalType};
    use proptest::prelude::*;

    fn item(byte: u8, q: Option<u8>) -> ListItem {
        let v = Signal::Pdq(hashguard_pdq::Hash256::from_be_bytes(&[byte; 32]));
        ListItem::new(v, q.map(|q| Quality::new(q).unwrap())).unwrap()
    }

    fn live_set(entries: &[Entry]) -> Vec<ListItem> {
        let mut v: Vec<ListItem> = entries
            .iter()
            .filter(|e| e.is_live())
            .map(|e| e.item().clone())
            .collect();
        v.sort_by(|a, b| a.value().cmp(b.value()));
        v
    }

    #[test]
    fn stale_and_conflict() {
        let v1 = Version::FIRST;
        let v2 = v1.next().unwrap();
        let ImportPlan::Apply(c) = plan_import(None, &[], &[item(1, None)], v2).unwrap() else {
            panic!()
        };
        let bank = apply(&[], &c);
        assert!(matches!(
            plan_import(Some(v2), &bank, &[item(1, None)], v1),
            Err(VersionError::Stale { .. })
        ));
        assert!(matches!(
            plan_import(Some(v2), &bank, &[item(2, None)], v2),
            Err(VersionError::Conflict {
                added: 1,
                removed: 1,
                ..
            })
        ));
        // Changed metadata is a remove and an add.
        let v3 = v2.next().unwrap();
        let ImportPlan::Apply(c) = plan_import(Some(v2), &bank, &[item(1, Some(90))], v3).unwrap()
        else {
            panic!()
        };
        assert_eq!((c.added.len(), c.removed.len(), c.unchanged), (1, 1, 0));
        let bank = apply(&bank, &c);
        assert_eq!(bank.len(), 2);
        assert_eq!(live_set(&bank), vec![item(1, Some(90))]);
        assert_eq!(SignalType::Pdq, bank[0].value().signal_type());
    }

    proptest! {
        /// A sequence of versions: after each import the live entries equal that version's list,
        /// `live_at` reconstructs every earlier version, and re-importing is a no-op.
        #[test]
        fn versions_converge(lists in proptest::collection::vec(
            proptest::collection::btree_map(0u8..12, proptest::option::of(50u8..=100), 0..8), 1..6)) {
            let mut bank: Vec<Entry> = Vec::new();
            let mut latest = None;
            let mut history = Vec::new();
            for (i, list) in lists.iter().enumerate() {
                let version = Version::new(i as u64 + 1).unwrap();
                let items: Vec<ListItem> = list.iter().map(|(&b, &q)| item(b, q)).collect();
                let ImportPlan::Apply(c) = plan_import(latest, &bank, &items, version).unwrap() else {
                    panic!("a new version is never a no-op");
                };
                bank = apply(&bank, &c);
                latest = Some(version);
                let mut want = items.clone();
                want.sort_by(|a, b| a.value().cmp(b.value()));
                prop_assert_eq!(&live_set(&bank), &want);
                prop_assert_eq!(plan_import(latest, &bank, &items, version).unwrap(), ImportPlan::NoOp);
                history.push((version, want));
            }
            for (version, want) in history {
                let mut at: Vec<ListItem> = bank.iter().filter(|e| e.live_at(version)).map(|e| e.item().clone()).collect();
                at.sort_by(|a, b| a.value().cmp(b.value()));
                prop_assert_eq!(at, want);
            }
        }
    }
}

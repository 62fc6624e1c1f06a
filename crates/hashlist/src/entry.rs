//! List items (what a list file says about one hash) and bank entries (an item with the list
//! versions in which it was added and, for tombstones, removed).

use std::fmt;

use crate::signal::{Quality, Signal, SignalType, MIN_PDQ_QUALITY};
use crate::text::{Tag, Text};

/// A list version number: 1 to `i64::MAX` (so it fits a signed 64-bit database column).
/// Versions of a bank only grow.
///
/// ```
/// use hashguard_hashlist::Version;
/// assert_eq!(Version::new(3).map(|v| v.get()), Some(3));
/// assert!(Version::new(0).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    /// The first version.
    pub const FIRST: Version = Version(1);

    /// A version, if `v` is in 1..=`i64::MAX`.
    pub fn new(v: u64) -> Option<Version> {
        (v >= 1 && v <= i64::MAX as u64).then_some(Version(v))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next version, if there is one.
    pub fn next(self) -> Option<Version> {
        Version::new(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a list item cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// A quality on a value of an exact type (only PDQ has a quality).
    #[error("only pdq values have a quality")]
    QualityOnExactType,
    /// A PDQ quality under 50.
    #[error("quality under {MIN_PDQ_QUALITY}: {0}")]
    LowQuality(u8),
    /// A quality on a vPDQ value (its qualities are per frame, inside the value).
    #[error("a vpdq value has a quality per frame, not one for the video")]
    QualityOnVpdq,
}

/// What a list says about one hash: the value, its PDQ quality if known, the source's id for it,
/// a category and tags. Tags are kept sorted and without repeats, so two items that say the same
/// thing compare equal.
///
/// ```
/// use hashguard_hashlist::{ListItem, Quality, Signal, SignalType};
/// let v = Signal::parse(SignalType::Pdq, &"f".repeat(64))?;
/// let item = ListItem::new(v.clone(), Some(Quality::new(90)?))?
///     .with_tags(vec!["b".parse()?, "a".parse()?, "a".parse()?]);
/// assert_eq!(item.tags().len(), 2);
/// assert!(ListItem::new(v, Some(Quality::new(49)?)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListItem {
    value: Signal,
    quality: Option<Quality>,
    source_id: Option<Text>,
    category: Option<Text>,
    tags: Vec<Tag>,
}

impl ListItem {
    /// An item; refuses a quality on an exact type or a vPDQ value, and a PDQ quality under 50.
    /// (A vPDQ value's frames may have any quality in 0..=100: matching ignores frames under 50,
    /// as the field does, so a video whose every frame is under 50 never matches.)
    pub fn new(value: Signal, quality: Option<Quality>) -> Result<ListItem, ItemError> {
        if let Some(q) = quality {
            if value.signal_type() == SignalType::Vpdq {
                return Err(ItemError::QualityOnVpdq);
            }
            if value.signal_type().is_exact() {
                return Err(ItemError::QualityOnExactType);
            }
            if q.get() < MIN_PDQ_QUALITY {
                return Err(ItemError::LowQuality(q.get()));
            }
        }
        Ok(ListItem {
            value,
            quality,
            source_id: None,
            category: None,
            tags: Vec::new(),
        })
    }

    /// The same item with a source id.
    pub fn with_source_id(mut self, source_id: Option<Text>) -> ListItem {
        self.source_id = source_id;
        self
    }

    /// The same item with a category.
    pub fn with_category(mut self, category: Option<Text>) -> ListItem {
        self.category = category;
        self
    }

    /// The same item with these tags (sorted, repeats removed).
    pub fn with_tags(mut self, mut tags: Vec<Tag>) -> ListItem {
        tags.sort();
        tags.dedup();
        self.tags = tags;
        self
    }

    /// The hash.
    pub fn value(&self) -> &Signal {
        &self.value
    }
    /// The PDQ quality, if the list gave one (never for vPDQ, whose qualities are per frame).
    pub fn quality(&self) -> Option<Quality> {
        self.quality
    }
    /// The source's id (PDQ CLI: the file name).
    pub fn source_id(&self) -> Option<&Text> {
        self.source_id.as_ref()
    }
    /// The category (CSV `category` column).
    pub fn category(&self) -> Option<&Text> {
        self.category.as_ref()
    }
    /// The tags, sorted.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

/// Why an entry cannot be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an entry cannot be removed in version {removed_in}, not after it was added in {added_in}")]
pub struct EntryError {
    /// The version it was added in.
    pub added_in: Version,
    /// The refused removal version.
    pub removed_in: Version,
}

/// One item of a bank with its history: added in one list version and, if it is a tombstone,
/// removed in a later one. An entry is *live at* version `v` when `added_in <= v` and it was not
/// removed at or before `v`.
///
/// ```
/// use hashguard_hashlist::{Entry, ListItem, Signal, SignalType, Version};
/// let item = ListItem::new(Signal::parse(SignalType::Md5, &"0".repeat(32))?, None)?;
/// let e = Entry::new(item, Version::FIRST, Version::new(3))?;
/// assert!(e.live_at(Version::new(2).unwrap()));
/// assert!(!e.live_at(Version::new(3).unwrap()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    item: ListItem,
    added_in: Version,
    removed_in: Option<Version>,
}

impl Entry {
    /// An entry; refuses a removal version that is not after the addition version.
    pub fn new(
        item: ListItem,
        added_in: Version,
        removed_in: Option<Version>,
    ) -> Result<Entry, EntryError> {
        if let Some(r) = removed_in {
            if r <= added_in {
                return Err(EntryError {
                    added_in,
                    removed_in: r,
                });
            }
        }
        Ok(Entry {
            item,
            added_in,
            removed_in,
        })
    }

    /// What the list said.
    pub fn item(&self) -> &ListItem {
        &self.item
    }
    /// The hash (shorthand for `item().value()`).
    pub fn value(&self) -> &Signal {
        self.item.value()
    }
    /// The version that added it.
    pub fn added_in(&self) -> Version {
        self.added_in
    }
    /// The version that removed it, for a tombstone.
    pub fn removed_in(&self) -> Option<Version> {
        self.removed_in
    }
    /// Whether it has not been removed (it is in the bank's latest version).
    pub fn is_live(&self) -> bool {
        self.removed_in.is_none()
    }
    /// Whether it was in the list at version `v`.
    pub fn live_at(&self, v: Version) -> bool {
        self.added_in <= v && self.removed_in.is_none_or(|r| r > v)
    }
}

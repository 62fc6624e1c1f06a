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

    /// The largest version number a list may be given explicitly: 2^53. Automatic numbering
    /// (the latest version plus one) continues above it up to `i64::MAX`, so a bank given the
    /// largest explicit version can still take 2^63 - 2^53 - 1 more versions: a chosen number
    /// can never leave a bank without a next version. 2^53 is also the largest integer every
    /// JSON reader holds exactly (`stats --json` prints versions as numbers), and far above
    /// any list's own numbering (dates, Unix times in seconds or milliseconds).
    pub const MAX_CHOSEN: u64 = 1 << 53;

    /// A version chosen by the caller (a list's own version number): 1 to
    /// [`Version::MAX_CHOSEN`].
    ///
    /// ```
    /// use hashguard_hashlist::Version;
    /// assert!(Version::chosen(Version::MAX_CHOSEN).is_some());
    /// assert!(Version::chosen(Version::MAX_CHOSEN + 1).is_none());
    /// assert!(Version::chosen(Version::MAX_CHOSEN).unwrap().next().is_some());
    /// ```
    pub fn chosen(v: u64) -> Option<Version> {
        (v <= Self::MAX_CHOSEN).then_some(()).and(Version::new(v))
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

/// What one list line says about a value besides the value: the CSV format's `collab`,
/// `category` and `tags` columns (python-threatexchange writes one such row per collaboration
/// that lists a value). Tags are kept sorted and without repeats, so two labels that say the
/// same thing compare equal.
///
/// ```
/// use hashguard_hashlist::{Label, Text};
/// let l = Label::new(Some(Text::new("Stand-in Collab")?), None, vec!["b".parse()?, "a".parse()?, "a".parse()?]);
/// assert_eq!(l.tags().len(), 2);
/// assert!(Label::new(None, None, vec![]).is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    collab: Option<Text>,
    category: Option<Text>,
    tags: Vec<Tag>,
}

impl Label {
    /// A label; the tags are sorted and repeats removed.
    pub fn new(collab: Option<Text>, category: Option<Text>, mut tags: Vec<Tag>) -> Label {
        tags.sort();
        tags.dedup();
        Label {
            collab,
            category,
            tags,
        }
    }

    /// The collaboration (CSV `collab` column): who supplied the value.
    pub fn collab(&self) -> Option<&Text> {
        self.collab.as_ref()
    }
    /// The category (CSV `category` column).
    pub fn category(&self) -> Option<&Text> {
        self.category.as_ref()
    }
    /// The tags, sorted.
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }
    /// Whether it says nothing (no collab, no category, no tag).
    pub fn is_empty(&self) -> bool {
        self.collab.is_none() && self.category.is_none() && self.tags.is_empty()
    }
}

/// What a list says about one hash: the value, its PDQ quality if known, the source's ids for it
/// (PDQ CLI file names) and its [`Label`]s (CSV collab, category and tags).
///
/// A list that repeats a value says several things about it (several images with one hash, one
/// hash listed by several collaborations); [`parse_list`](crate::parse_list) merges the lines
/// into one item, and the item keeps what every line said: all source ids, all distinct labels,
/// and the highest quality. Source ids and labels are kept sorted and without repeats (and
/// empty labels are dropped), so two items that say the same thing compare equal whatever the
/// order of the lines was.
///
/// ```
/// use hashguard_hashlist::{Label, ListItem, Quality, Signal, SignalType};
/// let v = Signal::parse(SignalType::Pdq, &"f".repeat(64))?;
/// let item = ListItem::new(v.clone(), Some(Quality::new(90)?))?
///     .with_labels(vec![Label::new(None, None, vec!["b".parse()?, "a".parse()?]), Label::new(None, None, vec![])]);
/// assert_eq!(item.labels().len(), 1);
/// assert!(ListItem::new(v, Some(Quality::new(49)?)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListItem {
    value: Signal,
    quality: Option<Quality>,
    source_ids: Vec<Text>,
    labels: Vec<Label>,
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
            source_ids: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// The same item with this one source id (or none).
    pub fn with_source_id(self, source_id: Option<Text>) -> ListItem {
        self.with_source_ids(source_id.into_iter().collect())
    }

    /// The same item with these source ids (sorted, repeats removed).
    pub fn with_source_ids(mut self, mut source_ids: Vec<Text>) -> ListItem {
        source_ids.sort();
        source_ids.dedup();
        self.source_ids = source_ids;
        self
    }

    /// The same item with these labels (sorted, repeats and empty labels removed).
    pub fn with_labels(mut self, mut labels: Vec<Label>) -> ListItem {
        labels.retain(|l| !l.is_empty());
        labels.sort();
        labels.dedup();
        self.labels = labels;
        self
    }

    /// The same item with one label (none if it is empty).
    pub fn with_label(self, label: Label) -> ListItem {
        self.with_labels(vec![label])
    }

    /// Merges another line's item of the same value into this one: every source id and label of
    /// both, and the higher quality (the caller checks that the values are equal).
    pub(crate) fn absorb(&mut self, other: ListItem) {
        debug_assert_eq!(self.value, other.value);
        self.quality = self.quality.max(other.quality);
        self.source_ids.extend(other.source_ids);
        self.source_ids.sort();
        self.source_ids.dedup();
        self.labels
            .extend(other.labels.into_iter().filter(|l| !l.is_empty()));
        self.labels.sort();
        self.labels.dedup();
    }

    /// The hash.
    pub fn value(&self) -> &Signal {
        &self.value
    }
    /// The PDQ quality, if the list gave one (never for vPDQ, whose qualities are per frame).
    pub fn quality(&self) -> Option<Quality> {
        self.quality
    }
    /// The source's id (PDQ CLI: the file name); for a merged item with several, the first in
    /// sorted order (the id a match reports).
    pub fn source_id(&self) -> Option<&Text> {
        self.source_ids.first()
    }
    /// Every source id, sorted.
    pub fn source_ids(&self) -> &[Text] {
        &self.source_ids
    }
    /// The labels (CSV collab, category and tags), sorted; empty when the list gave none.
    pub fn labels(&self) -> &[Label] {
        &self.labels
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

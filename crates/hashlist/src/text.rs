//! Validated free text (organisations, source ids, categories) and tags.

use std::fmt;
use std::str::FromStr;

/// Why a string is not valid [`Text`] or a valid [`Tag`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only whitespace.
    #[error("empty")]
    Empty,
    /// Longer than the limit, in characters.
    #[error("longer than {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Leading or trailing whitespace.
    #[error("leading or trailing whitespace")]
    Untrimmed,
    /// A control character (including tab and newline) or, for tags, whitespace or a comma.
    #[error("forbidden character {0:?}")]
    Forbidden(char),
}

/// Free text of 1 to 256 characters without control characters or surrounding whitespace: an
/// organisation, a source id (for example the file name in PDQ CLI output) or a category.
/// Because it has no newline, it can be written into any of the line formats.
///
/// ```
/// use hashguard_hashlist::Text;
/// assert_eq!(Text::new("Stand-in Org, Inc.")?.as_str(), "Stand-in Org, Inc.");
/// assert!(Text::new("two\nlines").is_err());
/// # Ok::<(), hashguard_hashlist::TextError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(String);

impl Text {
    /// The longest text, in characters.
    pub const MAX: usize = 256;

    /// Validates `s`.
    pub fn new(s: &str) -> Result<Text, TextError> {
        if s.trim().is_empty() {
            return Err(TextError::Empty);
        }
        if s.chars().count() > Self::MAX {
            return Err(TextError::TooLong { max: Self::MAX });
        }
        if s.trim() != s {
            return Err(TextError::Untrimmed);
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(TextError::Forbidden(c));
        }
        Ok(Text(s.to_string()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Text {
    type Err = TextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Text::new(s)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: 1 to 64 characters, no whitespace, no comma, no control character, so a set of tags
/// can be written space-separated in one CSV field and read back unchanged.
///
/// ```
/// use hashguard_hashlist::Tag;
/// assert!("category:standin".parse::<Tag>().is_ok());
/// assert!("a b".parse::<Tag>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

impl Tag {
    /// The longest tag, in characters.
    pub const MAX: usize = 64;

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = TextError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(TextError::Empty);
        }
        if s.chars().count() > Self::MAX {
            return Err(TextError::TooLong { max: Self::MAX });
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || *c == ',')
        {
            return Err(TextError::Forbidden(c));
        }
        Ok(Tag(s.to_string()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

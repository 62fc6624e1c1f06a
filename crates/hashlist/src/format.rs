//! List file formats: detection, parsing with a reason for every rejected line, and writing.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use crate::entry::{ItemError, Label, ListItem};
use crate::signal::{Quality, Signal, SignalType, ValueError, MIN_PDQ_QUALITY};
use crate::text::{Tag, Text, TextError};
use crate::vpdq::VpdqError;

/// The CSV header, in order.
pub const CSV_HEADER: [&str; 5] = ["signal_type", "signal_str", "collab", "category", "tags"];

/// The longest line a list or query file may have, in bytes (16 MiB). The longest valid line is
/// a vPDQ value of [`MAX_VPDQ_FRAMES`](crate::MAX_VPDQ_FRAMES) frames: about 85 bytes per frame
/// in python-threatexchange's `signal_str` (64 hex digits, quality, a `.3` timestamp, quotes and
/// a separator), about 90 in CSV, where the quotes are doubled: under 6 MiB. The limit leaves room
/// for spacing, and lets a reader refuse a file that is not a list (`/dev/zero`, a binary file)
/// after reading one limit's worth of it instead of all of it. Readers of files (the CLI) apply
/// it while reading; the parsers here work on bytes already read.
pub const MAX_LINE_BYTES: usize = 16 << 20;

/// The UTF-8 byte-order mark, which some editors (and Windows tools) put at the start of a text
/// file. A list file may start with it; it is not part of the first line.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The bytes of a list or query file without a leading UTF-8 byte-order mark.
pub(crate) fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes)
}

/// A list file format.
///
/// | format | a line | carries |
/// |---|---|---|
/// | [`PlainHex`](Format::PlainHex) | `<hex>` | the value |
/// | [`LocalFile`](Format::LocalFile) | `<signal_type> <hex>` (ThreatExchange `local_file`) | the value |
/// | [`Csv`](Format::Csv) | `signal_type,signal_str,collab,category,tags` (header optional) | value, a [`Label`]: collab, category, tags (space-separated) |
/// | [`PdqCli`](Format::PdqCli) | `hash,quality,filename` (PDQ only) | value, quality, source id (the file name) |
///
/// In every format, blank lines and lines whose first non-blank character is `#` are comments,
/// and a UTF-8 byte-order mark at the start of the file is ignored. Nothing else is ever
/// skipped: every other line is either imported or reported. A CSV record is one line (no field
/// this crate accepts can hold a newline).
///
/// A value on several lines is one item that keeps what every line said (see
/// [`parse_list_with`] and [`ListItem`]); writing such an item writes one line per source id
/// (PDQ CLI) or per label (CSV), as python-threatexchange writes one CSV row per collaboration,
/// so that reading the written list gives the same item back.
///
/// vPDQ values (python-threatexchange's JSON `signal_str`, see [`VpdqSignal`](crate::VpdqSignal))
/// go in `local_file`, where the value is the rest of the line after `vpdq` and whitespace, as
/// ThreatExchange's reader takes it (`vpdq ["<hex>,100,0.0", ...]`), and in CSV, where the
/// `signal_str` field is quoted as RFC 4180 says (`"[""<hex>,100,0.0"", ...]"`, as Python's
/// `csv` module writes it; any RFC 4180 quoting is read). Plain hex and PDQ CLI output cannot
/// hold them: parsing or writing a `vpdq` list in those formats is refused whole
/// ([`ParseError::FormatSignalType`], [`WriteError::FormatSignalType`]).
/// [`Format::projection`] says exactly what survives a write and a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One hex value per line; the signal type is the bank's.
    PlainHex,
    /// The ThreatExchange `local_file` format: `<signal_type> <value>` per line.
    LocalFile,
    /// The CSV `signal_type,signal_str,collab,category,tags`.
    Csv,
    /// The PDQ CLI output `hash,quality,filename`.
    PdqCli,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [
        Format::PlainHex,
        Format::LocalFile,
        Format::Csv,
        Format::PdqCli,
    ];

    /// The format's name on the command line: `hex`, `local-file`, `csv`, `pdq-cli`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::PlainHex => "hex",
            Format::LocalFile => "local-file",
            Format::Csv => "csv",
            Format::PdqCli => "pdq-cli",
        }
    }

    /// Guesses the format from the first line that is not blank or a comment:
    /// a comma and a first field that is `signal_type` or a signal type name means CSV; a first
    /// whitespace-separated field that is a signal type name, followed by more, means
    /// `local_file` (a vPDQ value holds commas); another line with a comma means PDQ CLI output;
    /// two or more whitespace-separated fields mean `local_file`; anything else (and an empty
    /// file) means plain hex. The guess only chooses the parser: a wrong guess shows up as
    /// rejected lines, never as a silent misreading, and the caller can always name the format
    /// instead.
    ///
    /// ```
    /// use hashguard_hashlist::Format;
    /// assert_eq!(Format::detect(b"# stand-in\npdq ffff\n"), Format::LocalFile);
    /// assert_eq!(Format::detect(b"signal_type,signal_str,collab,category,tags\n"), Format::Csv);
    /// assert_eq!(Format::detect(b"ffff,100,a.jpg\n"), Format::PdqCli);
    /// assert_eq!(Format::detect(b"ffff\n"), Format::PlainHex);
    /// assert_eq!(Format::detect(b"vpdq [\"ab,100,0.0\", \"cd,100,1.0\"]\n"), Format::LocalFile);
    /// ```
    pub fn detect(bytes: &[u8]) -> Format {
        let Some(line) = without_bom(bytes).split(|&b| b == b'\n').find_map(|l| {
            let l = String::from_utf8_lossy(l);
            let t = l.trim();
            (!t.is_empty() && !t.starts_with('#')).then(|| t.to_string())
        }) else {
            return Format::PlainHex;
        };
        let mut words = line.split_whitespace();
        let typed_words = words
            .next()
            .is_some_and(|w| w.parse::<SignalType>().is_ok())
            && words.next().is_some();
        if let Some((first, _)) = line.split_once(',') {
            let first = first.trim();
            if first == CSV_HEADER[0] || first.parse::<SignalType>().is_ok() {
                Format::Csv
            } else if typed_words {
                Format::LocalFile
            } else {
                Format::PdqCli
            }
        } else if line.split_whitespace().count() >= 2 {
            Format::LocalFile
        } else {
            Format::PlainHex
        }
    }

    /// Whether this format can hold values of `signal_type`: PDQ CLI output holds only PDQ,
    /// plain hex every type but `vpdq`, the others every type.
    pub fn holds(self, signal_type: SignalType) -> bool {
        match self {
            Format::PdqCli => signal_type == SignalType::Pdq,
            Format::PlainHex => signal_type != SignalType::Vpdq,
            Format::LocalFile | Format::Csv => true,
        }
    }

    /// What of `item` a write followed by a read in this format preserves: the item that
    /// [`parse_list`] returns for the line [`write_list`] wrote.
    pub fn projection(self, item: &ListItem) -> ListItem {
        let bare = |quality| ListItem::new(item.value().clone(), quality);
        let projected = match self {
            Format::PlainHex | Format::LocalFile => bare(None),
            Format::Csv => bare(None).map(|i| i.with_labels(item.labels().to_vec())),
            Format::PdqCli => {
                bare(item.quality()).map(|i| i.with_source_ids(item.source_ids().to_vec()))
            }
        };
        // `bare` only fails on a quality, which came from a valid item.
        projected.unwrap_or_else(|_| item.clone())
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of `hex`, `local-file`, `csv`, `pdq-cli`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown list format {0:?} (known: hex, local-file, csv, pdq-cli)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Why one line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line (or a CSV field) is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// A character of the value is not a hex digit.
    #[error("bad hex: character {position} ({character:?}) is not a hex digit")]
    BadHex {
        /// 1-based position within the value.
        position: usize,
        /// The character.
        character: char,
    },
    /// The value has the wrong length for its signal type.
    #[error("wrong length: a {signal_type} value has {expected} hex digits, this has {found}")]
    WrongLength {
        /// The signal type.
        signal_type: SignalType,
        /// Expected hex digits.
        expected: usize,
        /// Characters found.
        found: usize,
    },
    /// A PDQ quality under 50.
    #[error("quality under {MIN_PDQ_QUALITY}: {0}")]
    LowQuality(u8),
    /// The quality field is not an integer in 0..=100.
    #[error("bad quality {0:?}: not an integer in 0..=100")]
    BadQuality(String),
    /// The same value appeared on an earlier line (only when repeats are refused,
    /// [`Repeats::Refuse`]).
    #[error("duplicate of line {first_line}")]
    Duplicate {
        /// The line that has the value first.
        first_line: usize,
    },
    /// The signal type name is not known.
    #[error("unknown signal type {0:?}")]
    UnknownSignalType(String),
    /// A known signal type other than the bank's.
    #[error("signal type {found} in a {expected} list")]
    SignalTypeMismatch {
        /// The bank's type.
        expected: SignalType,
        /// The line's type.
        found: SignalType,
    },
    /// The line has the wrong number of fields.
    #[error("wrong column count: expected {expected}, found {found}")]
    WrongColumnCount {
        /// Fields expected.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// A CSV header whose names are not `signal_type,signal_str,collab,category,tags`.
    #[error("bad CSV header {0:?}")]
    BadHeader(String),
    /// A field that is not valid text or tags.
    #[error("bad {column}: {error}")]
    BadField {
        /// The column's name.
        column: &'static str,
        /// Why.
        error: TextError,
    },
    /// The CSV reader could not read the record.
    #[error("unreadable CSV: {0}")]
    Csv(String),
    /// Not a vPDQ value: bad JSON, bad hex, a quality outside 0..=100, a bad timestamp, no
    /// frame, too many frames ([`VpdqError`] says which, and which frame).
    #[error("bad vpdq value: {0}")]
    Vpdq(VpdqError),
}

impl From<ValueError> for LineError {
    fn from(e: ValueError) -> Self {
        match e {
            ValueError::WrongLength {
                signal_type,
                expected,
                found,
            } => LineError::WrongLength {
                signal_type,
                expected,
                found,
            },
            ValueError::BadHex {
                position,
                character,
            } => LineError::BadHex {
                position,
                character,
            },
            // Callers refuse unsupported types before reading lines.
            ValueError::Unsupported(t) => LineError::UnknownSignalType(t.to_string()),
            ValueError::Vpdq(e) => LineError::Vpdq(e),
        }
    }
}

impl From<ItemError> for LineError {
    fn from(e: ItemError) -> Self {
        match e {
            ItemError::LowQuality(q) => LineError::LowQuality(q),
            ItemError::QualityOnExactType => LineError::BadQuality("on an exact type".into()),
            ItemError::QualityOnVpdq => LineError::BadQuality("on a vpdq value".into()),
        }
    }
}

/// A rejected line: its 1-based number and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct BadLine {
    /// 1-based line number (for a CSV record, the line it starts on).
    pub line: usize,
    /// Why it was rejected.
    pub reason: LineError,
}

/// Why a list was not accepted. A list with any bad line is refused whole: no item of it is
/// returned, so no caller can import part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Lines were rejected; every one is listed, in line order.
    #[error("{} bad line(s) in a {format} list, nothing imported; first: {}", .lines.len(), .lines.first().map(|l| l.to_string()).unwrap_or_default())]
    BadLines {
        /// The format the file was read as.
        format: Format,
        /// Every rejected line.
        lines: Vec<BadLine>,
    },
    /// The format cannot hold this signal type (PDQ CLI output holds only PDQ; plain hex holds
    /// no vPDQ).
    #[error("the {format} format cannot hold {signal_type} values")]
    FormatSignalType {
        /// The format.
        format: Format,
        /// The signal type.
        signal_type: SignalType,
    },
    /// The signal type is not supported by this version (no longer produced: every type is).
    #[error("signal type {0} is not supported by this version")]
    UnsupportedSignalType(SignalType),
}

/// A list file that parsed without a single bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedList {
    format: Format,
    signal_type: SignalType,
    items: Vec<ListItem>,
    lines: Vec<usize>,
    merged: usize,
}

impl ParsedList {
    /// The format it was read as.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The signal type of every item.
    pub fn signal_type(&self) -> SignalType {
        self.signal_type
    }
    /// The items, in file order, no two with the same value.
    pub fn items(&self) -> &[ListItem] {
        &self.items
    }
    /// The 1-based line number of each item (parallel to [`ParsedList::items`]): the first line
    /// that has its value.
    pub fn line_numbers(&self) -> &[usize] {
        &self.lines
    }
    /// How many lines repeated the value of an earlier line and were merged into its item (a
    /// value on three lines counts 2). Always 0 under [`Repeats::Refuse`].
    pub fn merged(&self) -> usize {
        self.merged
    }
    /// The items, consuming the list.
    pub fn into_items(self) -> Vec<ListItem> {
        self.items
    }
}

/// What [`parse_list_with`] does with a line whose value an earlier line already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repeats {
    /// Merge it into the earlier line's item, which then keeps what both lines said (see
    /// [`ListItem`]); [`ParsedList::merged`] counts such lines. Real lists repeat values
    /// (merged sources, several images with one hash, one row per collaboration), and
    /// python-threatexchange reads them so.
    #[default]
    Merge,
    /// Report it as a bad line ([`LineError::Duplicate`]), so the list is refused.
    Refuse,
}

/// Collects items and bad lines, and merges or refuses repeated values.
struct Collector {
    repeats: Repeats,
    items: Vec<ListItem>,
    lines: Vec<usize>,
    bad: Vec<BadLine>,
    /// The index in `items` of each value seen.
    seen: HashMap<Signal, usize>,
    merged: usize,
}

impl Collector {
    fn push(&mut self, line: usize, item: Result<ListItem, LineError>) {
        match item {
            Ok(item) => match self.seen.get(item.value()) {
                Some(&index) => match self.repeats {
                    Repeats::Refuse => self.bad.push(BadLine {
                        line,
                        reason: LineError::Duplicate {
                            first_line: self.lines[index],
                        },
                    }),
                    Repeats::Merge => {
                        self.items[index].absorb(item);
                        self.merged += 1;
                    }
                },
                None => {
                    self.seen.insert(item.value().clone(), self.items.len());
                    self.items.push(item);
                    self.lines.push(line);
                }
            },
            Err(reason) => self.bad.push(BadLine { line, reason }),
        }
    }
}

/// Checks a line's signal-type field against the type being read.
pub(crate) fn check_signal_type(field: &str, expected: SignalType) -> Result<(), LineError> {
    let found: SignalType = field
        .parse()
        .map_err(|_| LineError::UnknownSignalType(field.to_string()))?;
    if found != expected {
        return Err(LineError::SignalTypeMismatch { expected, found });
    }
    Ok(())
}

/// The format a file of `signal_type` values is read in: `format`, or the detected one. A guess
/// that cannot hold the type (plain hex or PDQ CLI for vPDQ: an empty file, or lines of bare
/// JSON) is read as local_file, so it shows up as rejected lines like any wrong guess; a named
/// format that cannot hold it is refused. Shared by [`parse_list`] and
/// [`parse_queries`](crate::parse_queries) so both read a file the same way.
pub(crate) fn resolve_format(
    bytes: &[u8],
    signal_type: SignalType,
    format: Option<Format>,
) -> Result<Format, ParseError> {
    if !signal_type.is_supported() {
        return Err(ParseError::UnsupportedSignalType(signal_type));
    }
    let format = format.unwrap_or_else(|| {
        Some(Format::detect(bytes))
            .filter(|f| f.holds(signal_type))
            .unwrap_or(Format::LocalFile)
    });
    if !format.holds(signal_type) {
        return Err(ParseError::FormatSignalType {
            format,
            signal_type,
        });
    }
    Ok(format)
}

/// Parses a list file of `signal_type` values, in `format` or (for `None`) the format
/// [`Format::detect`] guesses (read as `local_file` when the guess cannot hold `signal_type`).
/// Returns every item, or every bad line and no item; a named format that cannot hold
/// `signal_type` is refused whole ([`ParseError::FormatSignalType`]). A value repeated on
/// several lines is merged into one item ([`Repeats::Merge`]; [`parse_list_with`] can refuse
/// repeats instead).
///
/// ```
/// use hashguard_hashlist::{parse_list, Format, LineError, ParseError, SignalType};
/// let ok = format!("pdq {0}\npdq {0}\n", "ab".repeat(32));
/// let list = parse_list(ok.as_bytes(), SignalType::Pdq, None)?;
/// assert_eq!((list.format(), list.items().len(), list.merged()), (Format::LocalFile, 1, 1));
///
/// let bad = format!("pdq {0}\nmd5 {1}\npdq xyz\n", "ab".repeat(32), "0".repeat(32));
/// let Err(ParseError::BadLines { lines, .. }) = parse_list(bad.as_bytes(), SignalType::Pdq, None)
/// else { panic!() };
/// let got: Vec<_> = lines.iter().map(|b| b.line).collect();
/// assert_eq!(got, [2, 3]);
/// # Ok::<(), ParseError>(())
/// ```
pub fn parse_list(
    bytes: &[u8],
    signal_type: SignalType,
    format: Option<Format>,
) -> Result<ParsedList, ParseError> {
    parse_list_with(bytes, signal_type, format, Repeats::Merge)
}

/// [`parse_list`], with repeated values merged or refused as `repeats` says.
///
/// ```
/// use hashguard_hashlist::{parse_list_with, LineError, ParseError, Repeats, SignalType};
/// let text = format!("pdq {0}\npdq {0}\n", "ab".repeat(32));
/// let Err(ParseError::BadLines { lines, .. }) =
///     parse_list_with(text.as_bytes(), SignalType::Pdq, None, Repeats::Refuse)
/// else { panic!() };
/// assert_eq!((lines[0].line, &lines[0].reason), (2, &LineError::Duplicate { first_line: 1 }));
/// # Ok::<(), ParseError>(())
/// ```
pub fn parse_list_with(
    bytes: &[u8],
    signal_type: SignalType,
    format: Option<Format>,
    repeats: Repeats,
) -> Result<ParsedList, ParseError> {
    let format = resolve_format(bytes, signal_type, format)?;
    let mut c = Collector {
        repeats,
        items: Vec::new(),
        lines: Vec::new(),
        bad: Vec::new(),
        seen: HashMap::new(),
        merged: 0,
    };
    let mut first = true;
    for (line, raw) in data_lines(bytes) {
        let is_first = std::mem::replace(&mut first, false);
        match read_line(raw, format, signal_type, is_first) {
            Ok(Some(fields)) => c.push(line, fields.into_list_item()),
            Ok(None) => {}
            Err(reason) => c.bad.push(BadLine { line, reason }),
        }
    }
    if c.bad.is_empty() {
        Ok(ParsedList {
            format,
            signal_type,
            items: c.items,
            lines: c.lines,
            merged: c.merged,
        })
    } else {
        Err(ParseError::BadLines {
            format,
            lines: c.bad,
        })
    }
}

/// The lines of a list or query file that are neither blank nor `#` comments, with their
/// 1-based numbers and without a trailing CR (or the leading UTF-8 byte-order mark). Every reader
/// of these files walks lines with this, so all of them skip, number and report the same lines.
pub(crate) fn data_lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    without_bom(bytes)
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, raw)| (i + 1, raw.strip_suffix(b"\r").unwrap_or(raw)))
        .filter(|(_, raw)| {
            // Blank means blank in Unicode where the line is text (a no-break space too).
            let data = match std::str::from_utf8(raw) {
                Ok(text) => text.trim().bytes().next().map(|b| b != b'#'),
                Err(_) => raw.trim_ascii().first().map(|&b| b != b'#'),
            };
            data.unwrap_or(false)
        })
}

/// The columns of one data line, read by its format's rules. What a list or a query then asks
/// of them (the PDQ quality floor, unique values, valid entry text) is the caller's: this is the
/// one place that knows each format's columns.
pub(crate) struct LineFields {
    /// The value.
    pub(crate) value: Signal,
    /// The quality column (PDQ CLI).
    pub(crate) quality: Option<Quality>,
    /// The file name column (PDQ CLI); empty in other formats.
    pub(crate) name: String,
    /// The collab column (CSV); empty in other formats.
    pub(crate) collab: String,
    /// The category column (CSV); empty in other formats.
    pub(crate) category: String,
    /// The tags column, space-separated (CSV); empty in other formats.
    pub(crate) tags: String,
}

impl LineFields {
    fn value(value: Signal) -> LineFields {
        LineFields {
            value,
            quality: None,
            name: String::new(),
            collab: String::new(),
            category: String::new(),
            tags: String::new(),
        }
    }

    /// The list entry these columns make, under a list's rules.
    fn into_list_item(self) -> Result<ListItem, LineError> {
        let text = |field: &str, column: &'static str| -> Result<Option<Text>, LineError> {
            if field.is_empty() {
                return Ok(None);
            }
            Text::new(field)
                .map(Some)
                .map_err(|error| LineError::BadField { column, error })
        };
        let source_id = text(&self.name, "filename")?;
        let collab = text(&self.collab, "collab")?;
        let category = text(&self.category, "category")?;
        let tags = self
            .tags
            .split_whitespace()
            .map(|t| {
                t.parse::<Tag>().map_err(|error| LineError::BadField {
                    column: "tags",
                    error,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ListItem::new(self.value, self.quality)?
            .with_source_id(source_id)
            .with_label(Label::new(collab, category, tags)))
    }
}

/// Reads one data line of a file in `format` holding `signal_type` values: its columns,
/// `None` for a CSV header (allowed only as the file's first data line), or why it is bad.
pub(crate) fn read_line(
    raw: &[u8],
    format: Format,
    signal_type: SignalType,
    first: bool,
) -> Result<Option<LineFields>, LineError> {
    let columns = |expected: usize, found: usize| LineError::WrongColumnCount { expected, found };
    if format == Format::Csv {
        let fields = csv_fields(raw)?;
        if first && fields.first().map(String::as_str) == Some(CSV_HEADER[0]) {
            return if fields.len() != CSV_HEADER.len() {
                Err(columns(CSV_HEADER.len(), fields.len()))
            } else if fields != CSV_HEADER {
                Err(LineError::BadHeader(fields.join(",")))
            } else {
                Ok(None)
            };
        }
        let [kind, value, collab, category, tags] = <[String; 5]>::try_from(fields)
            .map_err(|fields| columns(CSV_HEADER.len(), fields.len()))?;
        check_signal_type(&kind, signal_type)?;
        // The collaboration is the entry's: one bank may hold a list merged from several
        // collaborations (python-threatexchange's CSV has one row per collaboration and value).
        return Ok(Some(LineFields {
            collab,
            category,
            tags,
            ..LineFields::value(Signal::parse(signal_type, &value)?)
        }));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| LineError::NotUtf8)?
        .trim();
    match format {
        Format::PlainHex => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            match fields[..] {
                [value] => Ok(Some(LineFields::value(Signal::parse(signal_type, value)?))),
                _ => Err(columns(1, fields.len())),
            }
        }
        Format::LocalFile => {
            let fields: Vec<&str> = text.split_whitespace().collect();
            if fields.len() < 2 {
                return Err(columns(2, fields.len()));
            }
            check_signal_type(fields[0], signal_type)?;
            // A vPDQ value is the rest of the line after the type and whitespace (it holds
            // spaces; ThreatExchange's reader splits at the first space); others are one field.
            let value = if signal_type == SignalType::Vpdq {
                text.split_once(char::is_whitespace)
                    .map(|(_, rest)| rest.trim())
                    .unwrap_or("")
            } else if fields.len() == 2 {
                fields[1]
            } else {
                return Err(columns(2, fields.len()));
            };
            Ok(Some(LineFields::value(Signal::parse(signal_type, value)?)))
        }
        Format::PdqCli => {
            let fields: Vec<&str> = text.splitn(3, ',').map(str::trim).collect();
            let [value, quality, name] = fields[..] else {
                return Err(columns(3, fields.len()));
            };
            let value = Signal::parse(SignalType::Pdq, value)?;
            let quality = quality
                .parse::<u8>()
                .ok()
                .and_then(|q| Quality::new(q).ok())
                .ok_or_else(|| LineError::BadQuality(quality.to_string()))?;
            Ok(Some(LineFields {
                quality: Some(quality),
                name: name.to_string(),
                ..LineFields::value(value)
            }))
        }
        Format::Csv => Err(LineError::Csv(
            "internal: CSV reached the text line reader".into(),
        )),
    }
}

/// Reads one physical line as one CSV record. Lines are split before the CSV reader sees them, so
/// line numbers are exact (the `csv` crate's record positions point at a preceding comment or
/// blank line), and a quoted field cannot run over a line end: no field this crate accepts holds
/// a newline, so a line with an unterminated quote is reported, not joined to the next.
pub(crate) fn csv_fields(line: &[u8]) -> Result<Vec<String>, LineError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(line);
    let mut records = reader.byte_records();
    let record = match records.next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(LineError::Csv(e.to_string())),
        None => return Ok(Vec::new()),
    };
    if records.next().is_some() {
        return Err(LineError::Csv("more than one record on a line".into()));
    }
    record
        .iter()
        .map(|f| {
            std::str::from_utf8(f)
                .map(str::to_string)
                .map_err(|_| LineError::NotUtf8)
        })
        .collect()
}

/// Why a list could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The format cannot hold this signal type (PDQ CLI output holds only PDQ; plain hex holds
    /// no vPDQ).
    #[error("the {format} format cannot hold {signal_type} values")]
    FormatSignalType {
        /// The format.
        format: Format,
        /// The signal type.
        signal_type: SignalType,
    },
    /// PDQ CLI output needs a quality and this item has none.
    #[error("{} has no quality, which the pdq-cli format needs", abbreviated(.value))]
    MissingQuality {
        /// The item's value.
        value: Signal,
    },
    /// An item of another signal type.
    #[error("{} is not a {expected} value", abbreviated(.value))]
    SignalTypeMismatch {
        /// The list's type.
        expected: SignalType,
        /// The item's value.
        value: Signal,
    },
    /// The CSV writer failed.
    #[error("CSV writer: {0}")]
    Csv(String),
}

/// A value for an error message: whole if short, else its start and length (a vPDQ value can
/// be megabytes).
fn abbreviated(value: &Signal) -> String {
    let text = value.to_string();
    match text.char_indices().nth(96) {
        Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], text.len()),
        None => text,
    }
}

/// Writes `items` (all of `signal_type`) in `format`. For CSV a header is written, then one row
/// per label of each item (its own collab, category and tags; one row of empty columns for an
/// item without labels); for PDQ CLI output one line per source id (the file name; one line with
/// an empty name for an item without). Fields are quoted where RFC 4180 needs it (a vPDQ
/// `signal_str` always is). Values are lowercase hex, and vPDQ values their canonical
/// `signal_str` (what python-threatexchange writes). Reading the text back with [`parse_list`]
/// merges an item's lines into the same item again ([`Format::projection`] of it).
///
/// ```
/// use hashguard_hashlist::{parse_list, write_list, Format, ListItem, Signal, SignalType};
/// let item = ListItem::new(Signal::parse(SignalType::Sha256, &"0a".repeat(32))?, None)?;
/// let text = write_list(Format::LocalFile, SignalType::Sha256, &[item.clone()])?;
/// assert_eq!(text, format!("sha256 {}\n", "0a".repeat(32)));
/// let back = parse_list(text.as_bytes(), SignalType::Sha256, None)?;
/// assert_eq!(back.items(), &[item]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_list(
    format: Format,
    signal_type: SignalType,
    items: &[ListItem],
) -> Result<String, WriteError> {
    if !format.holds(signal_type) {
        return Err(WriteError::FormatSignalType {
            format,
            signal_type,
        });
    }
    if let Some(item) = items
        .iter()
        .find(|i| i.value().signal_type() != signal_type)
    {
        return Err(WriteError::SignalTypeMismatch {
            expected: signal_type,
            value: item.value().clone(),
        });
    }
    let mut out = String::new();
    match format {
        Format::PlainHex => items.iter().for_each(|i| {
            out.push_str(&i.value().to_string());
            out.push('\n');
        }),
        Format::LocalFile => items.iter().for_each(|i| {
            out.push_str(&format!("{signal_type} {}\n", i.value()));
        }),
        Format::PdqCli => {
            for i in items {
                let quality = i.quality().ok_or_else(|| WriteError::MissingQuality {
                    value: i.value().clone(),
                })?;
                let value = i.value().to_string();
                if i.source_ids().is_empty() {
                    out.push_str(&format!("{value},{quality},\n"));
                }
                for name in i.source_ids() {
                    out.push_str(&format!("{value},{quality},{name}\n"));
                }
            }
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .terminator(csv::Terminator::Any(b'\n'))
                .from_writer(Vec::new());
            let err = |e: csv::Error| WriteError::Csv(e.to_string());
            w.write_record(CSV_HEADER).map_err(err)?;
            let no_label = [Label::new(None, None, Vec::new())];
            for i in items {
                let value = i.value().to_string();
                let labels = if i.labels().is_empty() {
                    &no_label[..]
                } else {
                    i.labels()
                };
                for label in labels {
                    let tags: Vec<&str> = label.tags().iter().map(Tag::as_str).collect();
                    w.write_record([
                        signal_type.as_str(),
                        value.as_str(),
                        label.collab().map_or("", Text::as_str),
                        label.category().map_or("", Text::as_str),
                        tags.join(" ").as_str(),
                    ])
                    .map_err(err)?;
                }
            }
            let bytes = w.into_inner().map_err(|e| WriteError::Csv(e.to_string()))?;
            out = String::from_utf8(bytes).map_err(|e| WriteError::Csv(e.to_string()))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod abbreviation_tests {
    use super::*;

    #[test]
    fn write_errors_abbreviate_long_values() {
        let frames: Vec<String> = (0..200)
            .map(|i| format!("\"{},100,{i}\"", "ab".repeat(32)))
            .collect();
        let value = Signal::parse(SignalType::Vpdq, &format!("[{}]", frames.join(", "))).unwrap();
        let long = value.to_string().len();
        let err = WriteError::SignalTypeMismatch {
            expected: SignalType::Pdq,
            value,
        };
        let message = err.to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains(&format!("({long} bytes)")), "{message}");
        let short = Signal::parse(SignalType::Md5, &"0".repeat(32)).unwrap();
        let err = WriteError::MissingQuality { value: short };
        assert!(err.to_string().starts_with(&"0".repeat(32)));
    }
}

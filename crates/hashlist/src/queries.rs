//! Reading *query* hash files: the values to look up, not a list to import.
//!
//! A query file is read in any list [`Format`], but with a query's rules rather than a list's:
//! the same value may appear on several lines (two uploads of one image) and a PDQ line may
//! have any quality (it is the caller's decision whether to look up weak hashes). Every line
//! still yields either a value or a [`BadLine`] with its number, and a file with any bad line
//! yields no query, as with [`parse_list`](crate::parse_list), so a typo cannot silently shrink
//! a query run.

use crate::format::{csv_fields, data_lines, read_line, resolve_format, CSV_HEADER};
use crate::{BadLine, Format, ParseError, Signal, SignalType};

/// One query value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLine {
    /// 1-based line number.
    pub line: usize,
    /// The value.
    pub value: Signal,
    /// The quality the line gave (PDQ CLI lines), 0..=100.
    pub quality: Option<u8>,
}

/// The signal type a list or query file names on its first data line (`local_file` and CSV
/// lines carry it; plain hex and PDQ CLI lines do not, and give `None`).
///
/// ```
/// use hashguard_hashlist::{detect_signal_type, SignalType};
/// assert_eq!(detect_signal_type(b"# x\nmd5 00\n", None), Some(SignalType::Md5));
/// assert_eq!(detect_signal_type(b"signal_type,signal_str,collab,category,tags\nsha256,00,,,\n", None),
///     Some(SignalType::Sha256));
/// assert_eq!(detect_signal_type(b"ffff\n", None), None);
/// ```
pub fn detect_signal_type(bytes: &[u8], format: Option<Format>) -> Option<SignalType> {
    let format = format.unwrap_or_else(|| Format::detect(bytes));
    let mut lines = data_lines(bytes).map(|(_, l)| l);
    match format {
        Format::LocalFile => {
            let text = std::str::from_utf8(lines.next()?).ok()?;
            text.split_whitespace().next()?.parse().ok()
        }
        Format::Csv => {
            let mut fields = csv_fields(lines.next()?).ok()?;
            if fields.first().map(String::as_str) == Some(CSV_HEADER[0]) {
                fields = csv_fields(lines.next()?).ok()?;
            }
            fields.first()?.parse().ok()
        }
        Format::PlainHex | Format::PdqCli => None,
    }
}

/// Reads every query value of `signal_type` from a file in `format` (or the detected one).
/// Duplicates and low PDQ qualities are allowed; anything else that [`parse_list`] would reject
/// is a bad line, and any bad line refuses the whole file.
///
/// ```
/// use hashguard_hashlist::{parse_queries, SignalType};
/// let h = "ab".repeat(32);
/// let text = format!("{h},100,a.jpg\n{h},10,b.jpg\n");
/// let q = parse_queries(text.as_bytes(), SignalType::Pdq, None)?;
/// assert_eq!((q.len(), q[1].line, q[1].quality), (2, 2, Some(10)));
/// assert!(parse_queries(b"zz,100,a.jpg\n", SignalType::Pdq, None).is_err());
/// # Ok::<(), hashguard_hashlist::ParseError>(())
/// ```
///
/// [`parse_list`]: crate::parse_list
pub fn parse_queries(
    bytes: &[u8],
    signal_type: SignalType,
    format: Option<Format>,
) -> Result<Vec<QueryLine>, ParseError> {
    let format = resolve_format(bytes, signal_type, format)?;
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut first = true;
    for (line, raw) in data_lines(bytes) {
        let is_first = std::mem::replace(&mut first, false);
        match read_line(raw, format, signal_type, is_first) {
            Ok(Some(fields)) => out.push(QueryLine {
                line,
                value: fields.value,
                quality: fields.quality.map(|q| q.get()),
            }),
            Ok(None) => {}
            Err(reason) => bad.push(BadLine { line, reason }),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(ParseError::BadLines { format, lines: bad })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_list;

    #[test]
    fn every_list_that_parses_reads_as_the_same_queries() {
        let h1 = "0f".repeat(32);
        let h2 = "f0".repeat(32);
        for (text, format) in [
            (format!("{h1}\n\n# c\n{h2}\n"), Format::PlainHex),
            (format!("pdq {h1}\npdq {h2}\n"), Format::LocalFile),
            (
                format!(
                    "signal_type,signal_str,collab,category,tags\npdq,{h1},o,c,t\npdq,{h2},,,\n"
                ),
                Format::Csv,
            ),
            (format!("{h1},100,a\n{h2},50,b\n"), Format::PdqCli),
        ] {
            let list = parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap();
            let queries = parse_queries(text.as_bytes(), SignalType::Pdq, None).unwrap();
            assert_eq!(list.format(), format);
            let values: Vec<Signal> = queries.iter().map(|q| q.value.clone()).collect();
            let lines: Vec<usize> = queries.iter().map(|q| q.line).collect();
            assert_eq!(
                values,
                list.items()
                    .iter()
                    .map(|i| i.value().clone())
                    .collect::<Vec<_>>()
            );
            assert_eq!(lines, list.line_numbers());
        }
    }

    #[test]
    fn bad_lines_are_all_reported_with_numbers() {
        let h = "ab".repeat(32);
        let text = format!("pdq {h}\npdq xyz\nmd5 {h}\npdq {h}\npdq\n");
        let Err(ParseError::BadLines { lines, .. }) =
            parse_queries(text.as_bytes(), SignalType::Pdq, None)
        else {
            panic!("expected bad lines");
        };
        let numbers: Vec<usize> = lines.iter().map(|b| b.line).collect();
        assert_eq!(numbers, [2, 3, 5]);
    }

    #[test]
    fn quality_above_100_is_refused() {
        let text = format!("{},101,a\n", "ab".repeat(32));
        assert!(parse_queries(text.as_bytes(), SignalType::Pdq, None).is_err());
    }
}

//! What the hashlist fuzz targets share: how an input chooses what to parse.

use hashguard_hashlist::{Format, SignalType};

/// Splits a fuzz input into the signal type and the format (or `None`: detect) chosen by its
/// first byte, and the file bytes after it. `None` for an empty input.
pub fn split_input(data: &[u8]) -> Option<(SignalType, Option<Format>, &[u8])> {
    let (&selector, bytes) = data.split_first()?;
    let signal_type = SignalType::ALL[usize::from(selector % 4)];
    let format = match (selector / 4) % 5 {
        0 => None,
        k => Some(Format::ALL[usize::from(k - 1)]),
    };
    Some((signal_type, format, bytes))
}

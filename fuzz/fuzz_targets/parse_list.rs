//! Fuzzes the list parsers: any bytes, any signal type, any format (or detection). A parse
//! never panics; bad line numbers exist in the input; an accepted list written back in its
//! format parses to the same items (as far as the format carries them).
#![no_main]

use hashguard_hashlist::{parse_list, write_list, ParseError};
use hashguard_fuzz::hashlist::split_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((signal_type, format, bytes)) = split_input(data) else {
        return;
    };
    let lines = bytes.split(|&b| b == b'\n').count();
    match parse_list(bytes, signal_type, format) {
        Ok(list) => {
            assert!(list.line_numbers().iter().all(|&l| l >= 1 && l <= lines));
            let text = write_list(list.format(), signal_type, list.items())
                .expect("an accepted list can be written in its own format");
            let back = parse_list(text.as_bytes(), signal_type, Some(list.format()))
                .expect("a written list parses");
            let want: Vec<_> = list
                .items()
                .iter()
                .map(|i| list.format().projection(i))
                .collect();
            assert_eq!(back.items(), &want[..]);
        }
        Err(ParseError::BadLines { lines: bad, .. }) => {
            assert!(!bad.is_empty());
            assert!(bad.iter().all(|b| b.line >= 1 && b.line <= lines));
            assert!(bad.windows(2).all(|w| w[0].line <= w[1].line));
        }
        Err(ParseError::FormatSignalType {
            format: refused, ..
        }) => {
            // Only a named format that cannot hold the type is refused whole.
            assert_eq!(Some(refused), format);
            assert!(!refused.holds(signal_type));
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
});

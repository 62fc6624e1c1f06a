//! Fuzzes the query reader (`hashguard match --hashes`) and the signal-type detection: any
//! bytes, any signal type, any format (or detection). Nothing panics; line numbers exist in the
//! input and increase; every list that `parse_list` accepts reads as the same values on the
//! same lines (a query file is a list with duplicates and low qualities allowed).
#![no_main]

use hashguard_hashlist::{detect_signal_type, parse_list, parse_queries, ParseError};
use hashguard_fuzz::hashlist::split_input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((signal_type, format, bytes)) = split_input(data) else {
        return;
    };
    let _ = detect_signal_type(bytes, format);
    let lines = bytes.split(|&b| b == b'\n').count();
    match parse_queries(bytes, signal_type, format) {
        Ok(queries) => {
            assert!(queries.iter().all(|q| q.line >= 1 && q.line <= lines));
            assert!(queries.windows(2).all(|w| w[0].line < w[1].line));
            assert!(queries.iter().all(|q| q.value.signal_type() == signal_type));
            if let Ok(list) = parse_list(bytes, signal_type, format) {
                let values: Vec<_> = list.items().iter().map(|i| i.value().clone()).collect();
                let got: Vec<_> = queries.iter().map(|q| q.value.clone()).collect();
                assert_eq!(got, values);
                let got_lines: Vec<usize> = queries.iter().map(|q| q.line).collect();
                assert_eq!(&got_lines[..], list.line_numbers());
            }
        }
        Err(ParseError::BadLines { lines: bad, .. }) => {
            assert!(!bad.is_empty());
            assert!(bad.iter().all(|b| b.line >= 1 && b.line <= lines));
        }
        Err(_) => {}
    }
});

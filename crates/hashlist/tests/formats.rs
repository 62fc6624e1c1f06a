//! List formats: every bad line reported, nothing partial, round trips, detection, and the
//! shared stand-in lists.

use hashguard_hashlist::*;
use hashguard_pdq::Hash256;
use proptest::prelude::*;

fn pdq_hex(b: u8) -> String {
    format!("{:02x}", b).repeat(32)
}

#[test]
fn every_bad_line_is_reported_and_nothing_is_returned() {
    let good = pdq_hex(0xab);
    let text = [
        "# stand-in list with every kind of bad line".to_string(),
        format!("pdq {good}"),             // 2 ok
        format!("pdq {}", &good[..63]),    // 3 wrong length
        format!("pdq {}g", &good[..63]),   // 4 bad hex
        format!("pdq {good}"),             // 5 duplicate of 2
        format!("sha1 {good}"),            // 6 unknown signal type
        format!("md5 {}", "0".repeat(32)), // 7 signal type mismatch
        format!("pdq {good} extra"),       // 8 wrong column count
        String::new(),                     // 9 blank: skipped
        format!("pdq {}", pdq_hex(0x01)),  // 10 ok
    ]
    .join("\n");
    // Refusing repeats, the repeated value is a bad line too; merging them, it is not.
    let merged = parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap_err();
    let ParseError::BadLines { lines: merged, .. } = merged else {
        panic!("{merged:?}")
    };
    let merged: Vec<usize> = merged.iter().map(|b| b.line).collect();
    assert_eq!(merged, [3, 4, 6, 7, 8]);
    let err = parse_list_with(text.as_bytes(), SignalType::Pdq, None, Repeats::Refuse).unwrap_err();
    let ParseError::BadLines { format, lines } = err else {
        panic!("{err:?}")
    };
    assert_eq!(format, Format::LocalFile);
    let got: Vec<(usize, LineError)> = lines.into_iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        got,
        vec![
            (
                3,
                LineError::WrongLength {
                    signal_type: SignalType::Pdq,
                    expected: 64,
                    found: 63
                }
            ),
            (
                4,
                LineError::BadHex {
                    position: 64,
                    character: 'g'
                }
            ),
            (5, LineError::Duplicate { first_line: 2 }),
            (6, LineError::UnknownSignalType("sha1".into())),
            (
                7,
                LineError::SignalTypeMismatch {
                    expected: SignalType::Pdq,
                    found: SignalType::Md5
                }
            ),
            (
                8,
                LineError::WrongColumnCount {
                    expected: 2,
                    found: 3
                }
            ),
        ]
    );
}

#[test]
fn pdq_cli_quality_rules() {
    let text = format!(
        "{},100,a.jpg\n{},49,b.jpg\n{},abc,c.jpg\n{},101,d.jpg\n{},50\n{},50,\n",
        pdq_hex(1),
        pdq_hex(2),
        pdq_hex(3),
        pdq_hex(4),
        pdq_hex(5),
        pdq_hex(6)
    );
    let ParseError::BadLines { format, lines } =
        parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(format, Format::PdqCli);
    let got: Vec<(usize, LineError)> = lines.into_iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        got,
        vec![
            (2, LineError::LowQuality(49)),
            (3, LineError::BadQuality("abc".into())),
            (4, LineError::BadQuality("101".into())),
            (
                5,
                LineError::WrongColumnCount {
                    expected: 3,
                    found: 2
                }
            ),
        ]
    );
    // A file name may hold commas; an empty one is no source id.
    let text = format!("{},90,a,b.jpg\n{},90,\n", pdq_hex(1), pdq_hex(2));
    let list = parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap();
    assert_eq!(list.items()[0].source_id().unwrap().as_str(), "a,b.jpg");
    assert_eq!(list.items()[1].source_id(), None);
    assert_eq!(list.line_numbers(), &[1, 2]);
    // PDQ CLI output is PDQ only.
    assert!(matches!(
        parse_list(text.as_bytes(), SignalType::Md5, Some(Format::PdqCli)),
        Err(ParseError::FormatSignalType { .. })
    ));
}

#[test]
fn csv_rules() {
    let md5 = "0123456789abcdef0123456789ABCDEF";
    let text = format!(
        "signal_type,signal_str,collab,category,tags\n\
         md5,{md5},Stand-in Org,standin,b a\n\
         # a comment\n\
         md5,{md5},x,,\n\
         pdq,{md5},x,,\n\
         md5,{md5}\n\
         md5,zz,x,,\n\
         md5,{},x,\"two words, comma\",t\n",
        "1".repeat(32)
    );
    let ParseError::BadLines { format, lines } =
        parse_list_with(text.as_bytes(), SignalType::Md5, None, Repeats::Refuse).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(format, Format::Csv);
    let got: Vec<usize> = lines.iter().map(|b| b.line).collect();
    assert_eq!(got, [4, 5, 6, 7], "{lines:?}");
    assert_eq!(lines[0].reason, LineError::Duplicate { first_line: 2 });
    // The good lines alone import, with collab, category and sorted tags.
    let text = format!(
        "md5,{md5},Stand-in Org,standin,b a\nmd5,{},x,\"two words, comma\",t\n",
        "1".repeat(32)
    );
    let list = parse_list(text.as_bytes(), SignalType::Md5, None).unwrap();
    let i = &list.items()[0];
    assert_eq!(i.value().to_string(), md5.to_lowercase());
    let [label] = i.labels() else {
        panic!("{:?}", i.labels())
    };
    assert_eq!(label.collab().unwrap().as_str(), "Stand-in Org");
    assert_eq!(label.category().unwrap().as_str(), "standin");
    let tags: Vec<&str> = label.tags().iter().map(Tag::as_str).collect();
    assert_eq!(tags, ["a", "b"]);
    assert_eq!(
        list.items()[1].labels()[0].category().unwrap().as_str(),
        "two words, comma"
    );
    // A wrong header is reported too.
    let ParseError::BadLines { lines, .. } = parse_list(
        b"signal_type,value,collab,category,tags\n",
        SignalType::Md5,
        Some(Format::Csv),
    )
    .unwrap_err() else {
        panic!()
    };
    assert!(matches!(lines[0].reason, LineError::BadHeader(_)));
}

#[test]
fn plain_hex_and_utf8() {
    let mut bytes = format!("{}\n\n# c\n", pdq_hex(7)).into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\n");
    bytes.extend_from_slice(format!("{} {}\r\n", pdq_hex(8), pdq_hex(9)).as_bytes());
    let ParseError::BadLines { lines, .. } =
        parse_list(&bytes, SignalType::Pdq, Some(Format::PlainHex)).unwrap_err()
    else {
        panic!()
    };
    let got: Vec<(usize, LineError)> = lines.into_iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        got,
        vec![
            (4, LineError::NotUtf8),
            (
                5,
                LineError::WrongColumnCount {
                    expected: 1,
                    found: 2
                }
            )
        ]
    );
    // CRLF line ends and upper case are accepted; an empty file is an empty list.
    let text = format!("{}\r\n", pdq_hex(0xAB).to_uppercase());
    let list = parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap();
    assert_eq!(list.items()[0].value().to_string(), pdq_hex(0xab));
    assert!(parse_list(b"", SignalType::Pdq, None)
        .unwrap()
        .items()
        .is_empty());
    assert!(parse_list(b"", SignalType::Vpdq, None)
        .unwrap()
        .items()
        .is_empty());
}

fn arb_text() -> impl Strategy<Value = Text> {
    "[A-Za-z0-9][A-Za-z0-9 ,.\"#_-]{0,20}[A-Za-z0-9]".prop_map(|s| Text::new(&s).unwrap())
}

fn arb_tag() -> impl Strategy<Value = Tag> {
    "[A-Za-z0-9:_#\"-]{1,12}".prop_map(|s| s.parse().unwrap())
}

fn arb_item(signal_type: SignalType) -> impl Strategy<Value = ListItem> {
    let value = proptest::array::uniform32(any::<u8>()).prop_map(move |b| match signal_type {
        SignalType::Pdq => Signal::Pdq(Hash256::from_be_bytes(&b)),
        SignalType::Md5 => {
            let mut m = [0u8; 16];
            m.copy_from_slice(&b[..16]);
            Signal::Md5(m)
        }
        _ => Signal::Sha256(b),
    });
    let quality = if signal_type == SignalType::Pdq {
        proptest::option::of(50u8..=100).boxed()
    } else {
        Just(None).boxed()
    };
    let label = (
        proptest::option::of(arb_text()),
        proptest::option::of(arb_text()),
        proptest::collection::vec(arb_tag(), 0..4),
    )
        .prop_map(|(collab, category, tags)| Label::new(collab, category, tags));
    (
        value,
        quality,
        proptest::collection::vec(arb_text(), 0..3),
        proptest::collection::vec(label, 0..3),
    )
        .prop_map(|(v, q, s, l)| {
            ListItem::new(v, q.map(|q| Quality::new(q).unwrap()))
                .unwrap()
                .with_source_ids(s)
                .with_labels(l)
        })
}

fn arb_case() -> impl Strategy<Value = (SignalType, Format, Vec<ListItem>)> {
    prop_oneof![
        Just(SignalType::Pdq),
        Just(SignalType::Md5),
        Just(SignalType::Sha256)
    ]
    .prop_flat_map(|t| {
        let formats: Vec<Format> = Format::ALL
            .into_iter()
            .filter(|f| *f != Format::PdqCli || t == SignalType::Pdq)
            .collect();
        (
            Just(t),
            proptest::sample::select(formats),
            proptest::collection::vec(arb_item(t), 0..20),
        )
    })
    .prop_map(|(t, f, mut items)| {
        // Distinct values, as a list has; PDQ CLI needs a quality on every item.
        let mut seen = std::collections::HashSet::new();
        items.retain(|i| seen.insert(i.value().clone()));
        if f == Format::PdqCli {
            items.retain(|i| i.quality().is_some());
        }
        (t, f, items)
    })
}

proptest! {
    /// Export then import gives the same entries, as far as the format carries them, both with
    /// the format named and with the format detected.
    #[test]
    fn round_trip((signal_type, format, items) in arb_case()) {
        let text = write_list(format, signal_type, &items).unwrap();
        let want: Vec<ListItem> = items.iter().map(|i| format.projection(i)).collect();
        let named = parse_list(text.as_bytes(), signal_type, Some(format)).unwrap();
        prop_assert_eq!(named.items(), &want[..]);
        let detected = parse_list(text.as_bytes(), signal_type, None).unwrap();
        if !items.is_empty() {
            prop_assert_eq!(detected.format(), format);
        }
        prop_assert_eq!(detected.items(), &want[..]);
    }

    /// Arbitrary bytes never panic the parsers, and a parse either returns items or bad lines
    /// whose numbers exist in the input.
    #[test]
    fn arbitrary_input_is_reported_not_panicked(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lines = bytes.split(|&b| b == b'\n').count();
        for format in Format::ALL {
            match parse_list(&bytes, SignalType::Pdq, Some(format)) {
                Ok(list) => prop_assert!(list.line_numbers().iter().all(|&l| l >= 1 && l <= lines)),
                Err(ParseError::BadLines { lines: bad, .. }) => {
                    prop_assert!(!bad.is_empty());
                    prop_assert!(bad.iter().all(|b| b.line >= 1 && b.line <= lines.max(1)));
                }
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}

/// The stand-in lists shipped with the PDQ test data (plain hex from the reference's regression
/// inputs) import as plain hex, and survive every format.
#[test]
fn shared_standin_lists() {
    let Some(dir) = hashguard_testsupport::testdata("shared_standin_lists", "pdq/hashlists", "")
    else {
        return;
    };
    let mut checked = 0;
    for name in ["haystack.txt", "needles.txt"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let list =
            parse_list(&bytes, SignalType::Pdq, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(list.format(), Format::PlainHex);
        assert!(!list.items().is_empty());
        for format in [Format::PlainHex, Format::LocalFile, Format::Csv] {
            let text = write_list(format, SignalType::Pdq, list.items()).unwrap();
            let back = parse_list(text.as_bytes(), SignalType::Pdq, None).unwrap();
            assert_eq!(back.items(), list.items());
        }
        checked += list.items().len();
    }
    // The .dat files hold 64-bit and 256-bit regression hashes with other layouts; whatever they
    // hold, each line is accepted or reported, never dropped.
    for name in ["long64.dat", "short256.dat"] {
        let Ok(bytes) = std::fs::read(dir.join(name)) else {
            continue;
        };
        match parse_list(&bytes, SignalType::Pdq, Some(Format::PlainHex)) {
            Ok(list) => checked += list.items().len(),
            Err(ParseError::BadLines { lines, .. }) => assert!(!lines.is_empty()),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(checked > 0);
}

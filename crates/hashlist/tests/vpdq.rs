//! vPDQ lists: byte-for-byte agreement with python-threatexchange's serialisation (reference
//! outputs written by `tests/data/make_python_vpdq.py` with Python's own `json`, `format` and
//! `csv`), strict per-line errors, formats that refuse vPDQ, identity, versions and consensus.

use std::path::PathBuf;

use hashguard_hashlist::*;
use hashguard_pdq::Hash256;
use hashguard_vpdq::Feature;
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn f32_from_hex(s: &str) -> f32 {
    f32::from_bits(u32::from_str_radix(s, 16).unwrap())
}

/// The stand-in videos of `vpdq_frames.txt`, as features.
fn python_videos() -> Vec<Vec<Feature>> {
    let mut videos: Vec<Vec<Feature>> = Vec::new();
    for line in read("vpdq_frames.txt").lines() {
        if line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(' ').collect();
        let (video, index): (usize, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        if videos.len() <= video {
            videos.push(Vec::new());
        }
        videos[video].push(Feature {
            frame: index * 30, // not carried by the text form
            quality: f[3].parse().unwrap(),
            hash: f[2].parse().unwrap(),
            timestamp: f32_from_hex(f[4]),
        });
    }
    videos
}

fn hex(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut w = [0u64; 4];
    for word in &mut w {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *word = x;
    }
    Hash256::from_words(w).to_string()
}

fn json(frames: &[(String, &str, &str)]) -> String {
    let items: Vec<String> = frames
        .iter()
        .map(|(h, q, t)| format!("\"{h},{q},{t}\""))
        .collect();
    format!("[{}]", items.join(", "))
}

#[test]
fn timestamps_are_formatted_as_python_does() {
    let mut checked = 0;
    for line in read("timestamps.txt").lines() {
        if line.starts_with('#') {
            continue;
        }
        let (bits, want) = line.split_once(' ').unwrap();
        let t = f32_from_hex(bits);
        assert_eq!(format_timestamp(f64::from(t)), want, "{t:e}");
        checked += 1;
    }
    assert!(checked > 5_000, "{checked}");
}

#[test]
fn lists_are_byte_identical_to_python_threatexchange() {
    let videos = python_videos();
    assert_eq!(videos.len(), 4);
    let items: Vec<ListItem> = videos
        .iter()
        .map(|v| ListItem::new(Signal::Vpdq(VpdqSignal::from_features(v).unwrap()), None).unwrap())
        .collect();
    // Frames are renumbered by position, and keep hash and quality.
    for (item, video) in items.iter().zip(&videos) {
        let v = item.value().as_vpdq().unwrap();
        assert_eq!(v.frame_count(), video.len());
        for (i, (got, want)) in v.features().iter().zip(video).enumerate() {
            assert_eq!(got.frame, i as u64);
            assert_eq!((got.hash, got.quality), (want.hash, want.quality));
        }
    }

    // local_file: what the tool writes, and what it reads back.
    let local = read("vpdq_local_file.txt");
    assert_eq!(
        write_list(Format::LocalFile, SignalType::Vpdq, &items).unwrap(),
        local
    );
    let parsed = parse_list(local.as_bytes(), SignalType::Vpdq, None).unwrap();
    assert_eq!(parsed.format(), Format::LocalFile);
    assert_eq!(parsed.items(), &items[..]);

    // CSV: RFC 4180 quoting of the signal_str, as Python's csv module writes it.
    let csv = read("vpdq.csv");
    let parsed = parse_list(csv.as_bytes(), SignalType::Vpdq, None).unwrap();
    assert_eq!(parsed.format(), Format::Csv);
    assert_eq!(parsed.items().len(), items.len());
    for (got, want) in parsed.items().iter().zip(&items) {
        assert_eq!(got.value(), want.value());
    }
    let first = &parsed.items()[0].labels()[0];
    assert_eq!(first.collab().unwrap().as_str(), "Stand-in Org");
    assert_eq!(first.category().unwrap().as_str(), "Stand-in, category");
    let tags: Vec<&str> = first.tags().iter().map(Tag::as_str).collect();
    assert_eq!(tags, ["standin", "video"]);
    assert_eq!(
        write_list(Format::Csv, SignalType::Vpdq, parsed.items()).unwrap(),
        csv
    );
}

#[test]
fn every_bad_vpdq_line_is_reported_with_its_reason() {
    let (a, b) = (hex(1), hex(2));
    let good = json(&[(a.clone(), "100", "0.0"), (b.clone(), "50", "1.0")]);
    // The same value spelled otherwise: upper-case hex, another timestamp spelling.
    let same = json(&[(a.to_uppercase(), "100", "0"), (b.clone(), "50", "1.0001")]);
    let many = format!(
        "[{}]",
        vec![format!("\"{a},100,0.0\""); MAX_VPDQ_FRAMES + 1].join(",")
    );
    let lines = [
        format!("vpdq {good}"),                                              // 1 ok
        "vpdq [\"abc\"".to_string(),                                         // 2 bad JSON
        format!("vpdq {}", json(&[(format!("{}x", &a[..63]), "1", "0.0")])), // 3 bad hex
        format!("vpdq {}", json(&[(a.clone(), "101", "0.0")])),              // 4 quality
        "vpdq []".to_string(),                                               // 5 empty
        format!("vpdq {many}"),                                              // 6 too many
        format!("vpdq {same}"),                                              // 7 duplicate of 1
        format!("pdq {a}"),                                                  // 8 mismatch
        format!("vpdq {}", json(&[(a.clone(), "1", "-1.0")])),               // 9 timestamp
        "vpdq".to_string(),                                                  // 10 no value
        format!("vpdq {}", json(&[(b.clone(), "0", "2.0")])),                // 11 ok
    ];
    let text = lines.join("\n");
    let Err(ParseError::BadLines { format, lines: bad }) =
        parse_list_with(text.as_bytes(), SignalType::Vpdq, None, Repeats::Refuse)
    else {
        panic!("must be refused")
    };
    assert_eq!(format, Format::LocalFile);
    let got: Vec<(usize, LineError)> = bad.into_iter().map(|b| (b.line, b.reason)).collect();
    let json_err = |line: usize| {
        got.iter()
            .any(|(l, r)| *l == line && matches!(r, LineError::Vpdq(VpdqError::Json(_))))
    };
    assert!(json_err(2), "{got:?}");
    let rest: Vec<(usize, LineError)> = got.iter().filter(|(l, _)| *l != 2).cloned().collect();
    assert_eq!(
        rest,
        vec![
            (
                3,
                LineError::Vpdq(VpdqError::BadHex {
                    index: 0,
                    position: 64,
                    character: 'x'
                })
            ),
            (
                4,
                LineError::Vpdq(VpdqError::Quality {
                    index: 0,
                    text: "101".into()
                })
            ),
            (5, LineError::Vpdq(VpdqError::Empty)),
            (
                6,
                LineError::Vpdq(VpdqError::TooManyFrames {
                    found: MAX_VPDQ_FRAMES + 1,
                    max: MAX_VPDQ_FRAMES
                })
            ),
            (7, LineError::Duplicate { first_line: 1 }),
            (
                8,
                LineError::SignalTypeMismatch {
                    expected: SignalType::Vpdq,
                    found: SignalType::Pdq
                }
            ),
            (
                9,
                LineError::Vpdq(VpdqError::Timestamp {
                    index: 0,
                    text: "-1.0".into()
                })
            ),
            (
                10,
                LineError::WrongColumnCount {
                    expected: 2,
                    found: 1
                }
            ),
        ]
    );

    // The same in CSV, with the JSON quoted; an unquoted JSON splits into columns.
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let csv = [
        "signal_type,signal_str,collab,category,tags".to_string(),
        format!("vpdq,{},Org,,", q(&good)),
        format!("vpdq,{},Org,,", q(&json(&[(a.clone(), "x", "0.0")]))),
        format!("vpdq,{good},Org,,"),
        format!("vpdq,{},Org,,", q(&same)),
        format!("vpdq,{},Org,,", q("[]")),
    ]
    .join("\r\n");
    let Err(ParseError::BadLines { format, lines: bad }) =
        parse_list_with(csv.as_bytes(), SignalType::Vpdq, None, Repeats::Refuse)
    else {
        panic!("must be refused")
    };
    assert_eq!(format, Format::Csv);
    let got: Vec<(usize, LineError)> = bad.into_iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(
        got[0],
        (
            3,
            LineError::Vpdq(VpdqError::Quality {
                index: 0,
                text: "x".into()
            })
        )
    );
    assert_eq!(got[1].0, 4);
    assert!(matches!(got[1].1, LineError::WrongColumnCount { .. }));
    assert_eq!(got[2], (5, LineError::Duplicate { first_line: 2 }));
    assert_eq!(got[3], (6, LineError::Vpdq(VpdqError::Empty)));
}

#[test]
fn plain_hex_and_pdq_cli_refuse_vpdq() {
    let item = ListItem::new(
        Signal::parse(SignalType::Vpdq, &json(&[(hex(3), "90", "0.0")])).unwrap(),
        None,
    )
    .unwrap();
    for format in [Format::PlainHex, Format::PdqCli] {
        assert!(!format.holds(SignalType::Vpdq));
        assert_eq!(
            parse_list(b"", SignalType::Vpdq, Some(format)),
            Err(ParseError::FormatSignalType {
                format,
                signal_type: SignalType::Vpdq
            })
        );
        assert_eq!(
            write_list(format, SignalType::Vpdq, std::slice::from_ref(&item)),
            Err(WriteError::FormatSignalType {
                format,
                signal_type: SignalType::Vpdq
            })
        );
    }
    // A vPDQ item has no item-level quality.
    let v = item.value().clone();
    assert_eq!(
        ListItem::new(v, Some(Quality::new(90).unwrap())),
        Err(ItemError::QualityOnVpdq)
    );
    // An empty file is an empty list, in the formats that hold vPDQ.
    for format in [Format::LocalFile, Format::Csv] {
        let list = parse_list(b"# nothing\n", SignalType::Vpdq, Some(format)).unwrap();
        assert!(list.items().is_empty());
    }
}

#[test]
fn versions_of_a_vpdq_bank() {
    let item = |seeds: &[u64]| {
        let frames: Vec<(String, &str, &str)> =
            seeds.iter().map(|&s| (hex(s), "100", "0.0")).collect();
        ListItem::new(
            Signal::parse(SignalType::Vpdq, &json(&frames)).unwrap(),
            None,
        )
        .unwrap()
    };
    let (v1, v2) = (Version::FIRST, Version::new(2).unwrap());
    let list1 = [item(&[1, 2]), item(&[3]), item(&[2, 1])];
    let ImportPlan::Apply(c1) = plan_import(None, &[], &list1, v1).unwrap() else {
        panic!()
    };
    assert_eq!(c1.added.len(), 3, "reordered frames are another video");
    let bank = apply(&[], &c1);
    assert_eq!(
        plan_import(Some(v1), &bank, &list1, v1).unwrap(),
        ImportPlan::NoOp
    );
    let list2 = [item(&[3]), item(&[4])];
    let ImportPlan::Apply(c2) = plan_import(Some(v1), &bank, &list2, v2).unwrap() else {
        panic!()
    };
    assert_eq!((c2.added.len(), c2.removed.len(), c2.unchanged), (1, 2, 1));
    let bank = apply(&bank, &c2);
    let mut live: Vec<&ListItem> = bank
        .iter()
        .filter(|e| e.is_live())
        .map(|e| e.item())
        .collect();
    live.sort_by(|a, b| a.value().cmp(b.value()));
    let mut want: Vec<&ListItem> = list2.iter().collect();
    want.sort_by(|a, b| a.value().cmp(b.value()));
    assert_eq!(live, want);
}

#[test]
fn consensus_leaves_vpdq_out() {
    let bank = |name: &str, org: &str, j: &str, t: SignalType| {
        Bank::new(
            name.parse().unwrap(),
            org,
            j.parse().unwrap(),
            t,
            BankKind::Block,
        )
        .unwrap()
    };
    let entry =
        |v: Signal| Entry::new(ListItem::new(v, None).unwrap(), Version::FIRST, None).unwrap();
    let video = Signal::parse(SignalType::Vpdq, &json(&[(hex(7), "100", "0.0")])).unwrap();
    let pdq = Signal::parse(SignalType::Pdq, &hex(7)).unwrap();
    let (va, vb) = (
        bank("va", "Org C", "FR", SignalType::Vpdq),
        bank("vb", "Org D", "DE", SignalType::Vpdq),
    );
    let (pa, pb) = (
        bank("pa", "Org A", "GB", SignalType::Pdq),
        bank("pb", "Org B", "US", SignalType::Pdq),
    );
    let ve = [entry(video)];
    let pe = [entry(pdq)];
    let all = [
        BankEntries {
            bank: &va,
            entries: &ve,
        },
        BankEntries {
            bank: &vb,
            entries: &ve,
        },
        BankEntries {
            bank: &pa,
            entries: &pe,
        },
        BankEntries {
            bank: &pb,
            entries: &pe,
        },
    ];
    let params = ConsensusParams::default();
    // Two organisations in two jurisdictions list the same video: still no consensus item.
    assert!(consensus(SignalType::Vpdq, &all, &params).is_empty());
    assert!(consensus_brute_force(SignalType::Vpdq, &all, &params).is_empty());
    // The PDQ view is the same with or without the vPDQ banks (the video's only frame has the
    // same hash as the PDQ entries, and still adds no support).
    let pdq_only = consensus(SignalType::Pdq, &all[2..], &params);
    assert_eq!(pdq_only.len(), 1);
    assert_eq!(consensus(SignalType::Pdq, &all, &params), pdq_only);
    let one_pdq = ConsensusParams::new(3, 1, 10).unwrap();
    assert!(consensus(SignalType::Pdq, &all, &one_pdq).is_empty());
}

fn arb_video() -> impl Strategy<Value = Vec<Feature>> {
    // Clustered hashes (few distinct words) make duplicates and near frames likely.
    let word = prop_oneof![any::<u64>(), 0u64..4];
    let feature = (
        proptest::array::uniform4(word),
        0u8..=100,
        prop_oneof![0f32..1.0, 0f32..100_000.0, Just(0.0f32)],
    )
        .prop_map(|(w, quality, timestamp)| Feature {
            frame: 0,
            quality,
            hash: Hash256::from_words(w),
            timestamp,
        });
    proptest::collection::vec(feature, 1..12)
}

proptest! {
    /// Any valid video survives local_file and CSV, named and detected, and its text is a fixed
    /// point: parse(to_string(v)) == v and equality is equality of the canonical text.
    #[test]
    fn vpdq_round_trip(videos in proptest::collection::vec(arb_video(), 0..6)) {
        let mut seen = std::collections::HashSet::new();
        let items: Vec<ListItem> = videos
            .iter()
            .map(|v| ListItem::new(Signal::Vpdq(VpdqSignal::from_features(v).unwrap()), None).unwrap())
            .filter(|i| seen.insert(i.value().clone()))
            .collect();
        for item in &items {
            let v = item.value().as_vpdq().unwrap();
            let text = v.to_string();
            let back = VpdqSignal::parse(&text).unwrap();
            prop_assert_eq!(&back, v);
            prop_assert_eq!(back.to_string(), text);
        }
        for pair in items.windows(2) {
            let (a, b) = (pair[0].value(), pair[1].value());
            prop_assert_eq!(a == b, a.to_string() == b.to_string());
            prop_assert_eq!(a.cmp(b) == std::cmp::Ordering::Equal, a == b);
        }
        for format in [Format::LocalFile, Format::Csv] {
            let text = write_list(format, SignalType::Vpdq, &items).unwrap();
            let named = parse_list(text.as_bytes(), SignalType::Vpdq, Some(format)).unwrap();
            prop_assert_eq!(named.items(), &items[..]);
            let detected = parse_list(text.as_bytes(), SignalType::Vpdq, None).unwrap();
            if !items.is_empty() {
                prop_assert_eq!(detected.format(), format);
            }
            prop_assert_eq!(detected.items(), &items[..]);
        }
    }

    /// Arbitrary text in a vPDQ list never panics the parsers.
    #[test]
    fn arbitrary_vpdq_lines_are_reported_not_panicked(s in "(vpdq |vpdq,)?\\[?(\"[0-9a-fA-F,.e+-]{0,80}\"[, ]{0,2}){0,3}\\]?") {
        for format in [None, Some(Format::LocalFile), Some(Format::Csv)] {
            match parse_list(s.as_bytes(), SignalType::Vpdq, format) {
                Ok(_) | Err(ParseError::BadLines { .. }) => {}
                Err(e) => prop_assert!(false, "{e}"),
            }
        }
    }
}

/// Query files of videos read like lists (local_file and CSV, the value being the rest of the
/// line), keep repeats, and name their signal type.
#[test]
fn vpdq_queries() {
    let local = read("vpdq_local_file.txt");
    let csv = read("vpdq.csv");
    let list = parse_list(local.as_bytes(), SignalType::Vpdq, None).unwrap();
    let want: Vec<Signal> = list.items().iter().map(|i| i.value().clone()).collect();
    for text in [local.clone(), csv] {
        assert_eq!(
            detect_signal_type(text.as_bytes(), None),
            Some(SignalType::Vpdq)
        );
        let got = parse_queries(text.as_bytes(), SignalType::Vpdq, None).unwrap();
        let values: Vec<Signal> = got.iter().map(|q| q.value.clone()).collect();
        assert_eq!(values, want);
    }
    let twice = format!("{local}{local}");
    let got = parse_queries(twice.as_bytes(), SignalType::Vpdq, None).unwrap();
    assert_eq!(got.len(), 2 * want.len());
    assert!(parse_queries(b"vpdq []\n", SignalType::Vpdq, None).is_err());
    assert!(matches!(
        parse_queries(local.as_bytes(), SignalType::Vpdq, Some(Format::PlainHex)),
        Err(ParseError::FormatSignalType { .. })
    ));
}

//! Lists that repeat a value (merged into one item that keeps every line's metadata, or refused
//! with `Repeats::Refuse`), and lists that start with a UTF-8 byte-order mark.

use hashguard_hashlist::*;
use hashguard_pdq::Hash256;
use proptest::prelude::*;

fn pdq_hex(b: u8) -> String {
    format!("{:02x}", b).repeat(32)
}

fn text(s: &str) -> Text {
    Text::new(s).unwrap()
}

fn tags(t: &[&str]) -> Vec<Tag> {
    t.iter().map(|t| t.parse().unwrap()).collect()
}

/// PDQ CLI output of several images with one hash: one item, every file name kept (sorted; the
/// first is the source id a match reports), the highest quality, the first line's number.
#[test]
fn pdq_cli_repeats_keep_every_file_name() {
    let (a, b) = (pdq_hex(1), pdq_hex(2));
    let text_in =
        format!("{a},80,img-b.jpg\n{b},90,other.jpg\n{a},95,img-a.jpg\n{a},60,img-b.jpg\n");
    let list = parse_list(text_in.as_bytes(), SignalType::Pdq, None).unwrap();
    assert_eq!(list.format(), Format::PdqCli);
    assert_eq!(list.items().len(), 2);
    assert_eq!(list.merged(), 2);
    assert_eq!(list.line_numbers(), &[1, 2]);
    let merged = &list.items()[0];
    let names: Vec<&str> = merged.source_ids().iter().map(Text::as_str).collect();
    assert_eq!(names, ["img-a.jpg", "img-b.jpg"]);
    assert_eq!(merged.source_id().unwrap().as_str(), "img-a.jpg");
    assert_eq!(merged.quality().unwrap().get(), 95);

    // Written back: one line per file name; read again: the same item.
    let written = write_list(Format::PdqCli, SignalType::Pdq, list.items()).unwrap();
    assert_eq!(
        written,
        format!("{a},95,img-a.jpg\n{a},95,img-b.jpg\n{b},90,other.jpg\n")
    );
    let back = parse_list(written.as_bytes(), SignalType::Pdq, None).unwrap();
    assert_eq!(back.items(), list.items());
    assert_eq!(back.merged(), 1);

    // Refusing repeats reports each repeated line against the first.
    let ParseError::BadLines { lines, .. } =
        parse_list_with(text_in.as_bytes(), SignalType::Pdq, None, Repeats::Refuse).unwrap_err()
    else {
        panic!()
    };
    let got: Vec<(usize, LineError)> = lines.into_iter().map(|b| (b.line, b.reason)).collect();
    assert_eq!(
        got,
        [
            (3, LineError::Duplicate { first_line: 1 }),
            (4, LineError::Duplicate { first_line: 1 })
        ]
    );
}

/// python-threatexchange's CSV (`threatexchange dataset --csv`) has one row per collaboration
/// that lists a value: the rows merge into one item with one label per distinct row, and writing
/// it gives the rows back.
#[test]
fn csv_repeats_keep_every_row_as_a_label() {
    let (a, b) = (pdq_hex(3), pdq_hex(4));
    let csv = format!(
        "signal_type,signal_str,collab,category,tags\n\
         pdq,{a},Collab B,POSITIVE_CLASS,x y\n\
         pdq,{b},Collab A,,\n\
         pdq,{a},Collab A,INVESTIGATION_SEED,\n\
         pdq,{a},Collab B,POSITIVE_CLASS,y x\n\
         pdq,{a},,,\n"
    );
    let list = parse_list(csv.as_bytes(), SignalType::Pdq, None).unwrap();
    assert_eq!((list.items().len(), list.merged()), (2, 3));
    let item = &list.items()[0];
    assert_eq!(
        item.labels(),
        &[
            Label::new(
                Some(text("Collab A")),
                Some(text("INVESTIGATION_SEED")),
                vec![]
            ),
            Label::new(
                Some(text("Collab B")),
                Some(text("POSITIVE_CLASS")),
                tags(&["x", "y"])
            ),
        ],
        "the repeated row is one label, the empty row none"
    );
    let written = write_list(Format::Csv, SignalType::Pdq, list.items()).unwrap();
    assert_eq!(
        written,
        format!(
            "signal_type,signal_str,collab,category,tags\n\
             pdq,{a},Collab A,INVESTIGATION_SEED,\n\
             pdq,{a},Collab B,POSITIVE_CLASS,x y\n\
             pdq,{b},Collab A,,\n"
        )
    );
    assert_eq!(
        parse_list(written.as_bytes(), SignalType::Pdq, None)
            .unwrap()
            .items(),
        list.items()
    );
}

/// A repeated value in local_file or plain hex is one item; a line that is bad for another
/// reason is still bad.
#[test]
fn local_file_repeats_merge_and_bad_lines_stay_bad() {
    let a = pdq_hex(5);
    let list = parse_list(
        format!("pdq {a}\npdq {}\npdq {a}\n", a.to_uppercase()).as_bytes(),
        SignalType::Pdq,
        None,
    )
    .unwrap();
    assert_eq!((list.items().len(), list.merged()), (1, 2));
    let ParseError::BadLines { lines, .. } = parse_list(
        format!("pdq {a}\npdq {a}\npdq {}\n", &a[..10]).as_bytes(),
        SignalType::Pdq,
        None,
    )
    .unwrap_err() else {
        panic!()
    };
    let got: Vec<usize> = lines.iter().map(|b| b.line).collect();
    assert_eq!(got, [3]);
}

/// A UTF-8 byte-order mark before the first line is not part of it, in every format, for lists,
/// detection and queries; anywhere else it is still a bad character.
#[test]
fn a_leading_byte_order_mark_is_ignored() {
    let bom = "\u{feff}";
    let (a, b) = (pdq_hex(6), pdq_hex(7));
    for (body, format) in [
        (format!("{a}\n{b}\n"), Format::PlainHex),
        (format!("pdq {a}\npdq {b}\n"), Format::LocalFile),
        (
            format!("signal_type,signal_str,collab,category,tags\npdq,{a},,,\npdq,{b},,,\n"),
            Format::Csv,
        ),
        (format!("{a},100,a.jpg\n{b},100,b.jpg\n"), Format::PdqCli),
        (
            format!("# comment first\npdq {a}\npdq {b}\n"),
            Format::LocalFile,
        ),
    ] {
        let plain = parse_list(body.as_bytes(), SignalType::Pdq, None).unwrap();
        let marked = format!("{bom}{body}");
        assert_eq!(Format::detect(marked.as_bytes()), format, "{body}");
        let list = parse_list(marked.as_bytes(), SignalType::Pdq, None)
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(list, plain, "{format}");
        let queries = parse_queries(marked.as_bytes(), SignalType::Pdq, None).unwrap();
        assert_eq!(queries.len(), 2);
        if format == Format::LocalFile || format == Format::Csv {
            assert_eq!(
                detect_signal_type(marked.as_bytes(), None),
                Some(SignalType::Pdq)
            );
        }
    }
    // Only at the very start: on a later line it is a bad character of the value.
    let later = format!("pdq {a}\n{bom}pdq {b}\n");
    let ParseError::BadLines { lines, .. } =
        parse_list(later.as_bytes(), SignalType::Pdq, None).unwrap_err()
    else {
        panic!()
    };
    assert_eq!(lines[0].line, 2);
}

/// A value with the quality, names and labels its lines gave, merged by hand.
type Merge = (Signal, Option<Quality>, Vec<Text>, Vec<Label>);

fn arb_item() -> impl Strategy<Value = ListItem> {
    let label = (
        proptest::option::of("[A-Z][a-z]{0,3}"),
        proptest::option::of("[a-z]{1,3}"),
        proptest::collection::vec("[a-c]{1,2}", 0..3),
    )
        .prop_map(|(c, k, t)| {
            Label::new(
                c.map(|c| text(&c)),
                k.map(|k| text(&k)),
                t.iter().map(|t| t.parse().unwrap()).collect(),
            )
        });
    (
        0u8..6,
        proptest::option::of(50u8..=100),
        proptest::collection::vec("[a-c]{1,2}\\.jpg", 0..3),
        proptest::collection::vec(label, 0..3),
    )
        .prop_map(|(v, q, names, labels)| {
            ListItem::new(
                Signal::Pdq(Hash256::from_be_bytes(&[v; 32])),
                q.map(|q| Quality::new(q).unwrap()),
            )
            .unwrap()
            .with_source_ids(names.iter().map(|n| text(n)).collect())
            .with_labels(labels)
        })
}

proptest! {
    /// Items written with repeated values (few distinct values, so most repeat) read back as one
    /// item per value, in first-appearance order, each the merge of the projections of its
    /// items: the union of names and labels and the highest quality; `merged` counts the rest.
    #[test]
    fn repeated_values_read_as_their_merge(items in proptest::collection::vec(arb_item(), 0..12)) {
        for format in Format::ALL {
            let items: Vec<ListItem> = items
                .iter()
                .filter(|i| format != Format::PdqCli || i.quality().is_some())
                .cloned()
                .collect();
            let text = write_list(format, SignalType::Pdq, &items).unwrap();
            let list = parse_list(text.as_bytes(), SignalType::Pdq, Some(format)).unwrap();
            // The expected merge, computed independently of the parser.
            let mut want: Vec<Merge> = Vec::new();
            for i in items.iter().map(|i| format.projection(i)) {
                match want.iter_mut().find(|w| &w.0 == i.value()) {
                    Some(w) => {
                        w.1 = w.1.max(i.quality());
                        w.2.extend(i.source_ids().iter().cloned());
                        w.3.extend(i.labels().iter().cloned());
                    }
                    None => want.push((
                        i.value().clone(),
                        i.quality(),
                        i.source_ids().to_vec(),
                        i.labels().to_vec(),
                    )),
                }
            }
            let want: Vec<ListItem> = want
                .into_iter()
                .map(|(v, q, n, l)| ListItem::new(v, q).unwrap().with_source_ids(n).with_labels(l))
                .collect();
            prop_assert_eq!(list.items(), &want[..], "{}", format);
            let lines = text.lines().filter(|l| !l.starts_with("signal_type,")).count();
            prop_assert_eq!(list.merged(), lines - want.len());
            // Refusing repeats accepts the text exactly when no value repeats.
            let refused = parse_list_with(text.as_bytes(), SignalType::Pdq, Some(format), Repeats::Refuse);
            prop_assert_eq!(refused.is_ok(), list.merged() == 0);
        }
    }
}

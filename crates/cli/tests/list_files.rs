//! List files through the binary: lists that repeat values (merged, or refused with `--strict`)
//! for `match --list` and `list import`; CSV metadata (collab, category, tags) through a bank and
//! back.

mod common;

use std::path::Path;

use common::{hashguard, hashguard_ok};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A 160x120 image of random 8x8 blocks, different for every seed: strong edges, so a PDQ
/// quality of 100.
fn blocks_png(seed: u64, path: &Path) {
    let mut rng = hashguard_testsupport::TestGen::seeded(seed);
    let blocks: Vec<u8> = (0..20 * 15).map(|_| rng.word() as u8).collect();
    let img = image::RgbImage::from_fn(160, 120, |x, y| {
        let l = blocks[(y / 8 * 20 + x / 8) as usize];
        image::Rgb([l, 255 - l, l / 2])
    });
    img.save(path).unwrap();
}

fn pdq_of(path: &Path) -> String {
    let out = hashguard_ok(&["hash", &s(path)]);
    let (hash, quality, _) = common::csv_fields(out.trim());
    assert!(quality.parse::<u8>().unwrap() >= 50, "{out}");
    hash.to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `match --list` on a list that repeats a value: one entry per value (reported once, at the
/// first line that has it), the merge said in one stderr line; `--strict` refuses the list as
/// before, naming each repeated line. A PDQ CLI list of two images with one hash reports the
/// first file name in sorted order as the entry id.
#[test]
fn match_list_merges_repeated_values() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    blocks_png(1, &a);
    blocks_png(2, &b);
    let (ha, hb) = (pdq_of(&a), pdq_of(&b));
    assert_ne!(ha, hb);
    let list = dir.path().join("repeats.txt");
    std::fs::write(&list, format!("pdq {ha}\npdq {hb}\npdq {ha}\npdq {ha}\n")).unwrap();

    let out = hashguard(&["match", "--list", &s(&list), &s(&a), &s(&b)]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{},{},{ha},pdq,0\n{},{},{hb},pdq,0\n",
            s(&a),
            s(&list),
            s(&b),
            s(&list)
        )
    );
    assert!(
        err.contains(&format!(
            "{}: 2 line(s) repeat a value of an earlier line and were merged into its entry (2 entries",
            list.display()
        )),
        "{err}"
    );
    let json = hashguard_ok(&["match", "--list", &s(&list), "--format", "json", &s(&a)]);
    let obj: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(obj["list_line"], 1, "the first line of the value");

    // Hash lines against the same list: each query pairs with the value once.
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, format!("pdq {hb}\npdq {ha}\n")).unwrap();
    let pairs = hashguard_ok(&[
        "match",
        "--list",
        &s(&list),
        "--hashes",
        &s(&queries),
        "--radius",
        "0",
    ]);
    assert_eq!(pairs, "1,2,0\n2,1,0\n");

    // --strict: refused whole, every repeat named against its first line.
    let out = hashguard(&["match", "--list", &s(&list), "--strict", &s(&a)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    for line in [3, 4] {
        assert!(
            err.contains(&format!("{}:{line}: duplicate of line 1", list.display())),
            "{err}"
        );
    }
    assert!(err.contains("nothing was read from it"), "{err}");

    // PDQ CLI output of two images with one hash: the entry id is the first name in sorted
    // order, whichever line comes first.
    let cli = dir.path().join("hashes.csv");
    std::fs::write(
        &cli,
        format!("{ha},100,zz.png\n{hb},100,b.png\n{ha},100,aa.png\n"),
    )
    .unwrap();
    let got = hashguard_ok(&["match", "--list", &s(&cli), &s(&a)]);
    assert_eq!(got, format!("{},{},aa.png,pdq,0\n", s(&a), s(&cli)));
}

/// `list import` of a list that repeats values: imported, one entry per value, the merge said on
/// stderr; export writes a merged PDQ CLI entry as one line per file name, and importing that
/// export is a no-op. `--strict` refuses the list and imports nothing.
#[test]
fn import_merges_repeated_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    let list_cmd = |args: &[&str]| {
        let mut all = vec!["list", "--db", db.as_str()];
        all.extend_from_slice(args);
        hashguard(&all)
    };
    let ok = |args: &[&str]| {
        let out = list_cmd(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        (String::from_utf8(out.stdout).unwrap(), err)
    };
    ok(&[
        "create",
        "standin",
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
    ]);
    let (h1, h2) = ("1f".repeat(32), "2e".repeat(32));
    let file = dir.path().join("standin.csv");
    std::fs::write(
        &file,
        format!("{h1},90,img-b.jpg\n{h2},80,other.jpg\n{h1},95,img-a.jpg\n{h1},90,img-b.jpg\n"),
    )
    .unwrap();

    let strict = list_cmd(&["import", "standin", &s(&file), "--strict"]);
    let err = stderr(&strict);
    assert!(!strict.status.success());
    assert!(
        err.contains(&format!("{}:3: duplicate of line 1", file.display())),
        "{err}"
    );
    assert!(
        err.contains(&format!("{}:4: duplicate of line 1", file.display())),
        "{err}"
    );
    let (stats, _) = ok(&["stats", "standin", "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(
        (stats["versions"].as_u64(), stats["live"].as_u64()),
        (Some(0), Some(0))
    );

    let (_, err) = ok(&["import", "standin", &s(&file)]);
    assert!(
        err.contains("2 line(s) repeat a value of an earlier line and were merged"),
        "{err}"
    );
    assert!(
        err.contains("imported version 1 (pdq-cli format, 2 items): 2 added"),
        "{err}"
    );
    let (exported, _) = ok(&["export", "standin", "--format", "pdq-cli"]);
    let mut lines: Vec<&str> = exported.lines().collect();
    lines.sort_unstable();
    let want = [
        format!("{h1},95,img-a.jpg"),
        format!("{h1},95,img-b.jpg"),
        format!("{h2},80,other.jpg"),
    ];
    assert_eq!(lines, want);
    let again = dir.path().join("exported.csv");
    std::fs::write(&again, &exported).unwrap();
    let (_, err) = ok(&["import", "standin", &s(&again)]);
    assert!(err.contains("nothing imported"), "{err}");
}

/// A CSV list exports back unchanged: every entry's own collab (not the bank's organisation),
/// category and tags, also for a value listed by two collaborations (two rows, as
/// python-threatexchange's `dataset --csv` writes them) and rows with empty columns.
#[test]
fn csv_import_exports_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    let run = |args: &[&str]| {
        let mut all = vec!["list", "--db", db.as_str()];
        all.extend_from_slice(args);
        hashguard_ok(&all)
    };
    run(&[
        "create",
        "standin",
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
    ]);
    // Rows in the order export writes them (by value, then by row).
    let csv = format!(
        "signal_type,signal_str,collab,category,tags\n\
         pdq,{},Collab A,POSITIVE_CLASS,standin x\n\
         pdq,{},\"Collab B, Inc.\",INVESTIGATION_SEED,\n\
         pdq,{},,,\n\
         pdq,{},Collab C,,y z\n",
        "1f".repeat(32),
        "1f".repeat(32),
        "2e".repeat(32),
        "3d".repeat(32),
    );
    let file = dir.path().join("standin.csv");
    std::fs::write(&file, &csv).unwrap();
    run(&["import", "standin", &s(&file)]);
    assert_eq!(run(&["export", "standin", "--format", "csv"]), csv);
    let out = dir.path().join("out.csv");
    run(&["export", "standin", "--format", "csv", "-o", &s(&out)]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), csv);
}

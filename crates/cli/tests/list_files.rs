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

/// A list or query file may start with a UTF-8 byte-order mark (Windows editors write one):
/// `list import`, `match --list` and `match --hashes` read it as if it were not there.
#[test]
fn a_byte_order_mark_is_not_part_of_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    blocks_png(3, &a);
    let h = pdq_of(&a);
    let bom = "\u{feff}";
    let local = dir.path().join("bom.txt");
    std::fs::write(&local, format!("{bom}pdq {h}\npdq {}\n", "0f".repeat(32))).unwrap();
    let csv = dir.path().join("bom.csv");
    std::fs::write(
        &csv,
        format!("{bom}signal_type,signal_str,collab,category,tags\npdq,{h},Collab,,\n"),
    )
    .unwrap();
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, format!("{bom}{h}\n")).unwrap();

    for (list, line) in [(&local, 1), (&csv, 2)] {
        let got = hashguard_ok(&["match", "--list", &s(list), &s(&a)]);
        assert_eq!(got, format!("{},{},{h},pdq,0\n", s(&a), s(list)));
        let pairs = hashguard_ok(&["match", "--list", &s(list), "--hashes", &s(&queries)]);
        assert_eq!(pairs, format!("1,{line},0\n"));
    }
    let db = s(&dir.path().join("lists.db"));
    hashguard_ok(&[
        "list",
        "--db",
        &db,
        "create",
        "b",
        "--org",
        "O",
        "--jurisdiction",
        "GB",
    ]);
    hashguard_ok(&["list", "--db", &db, "import", "b", &s(&local)]);
    let exported = hashguard_ok(&["list", "--db", &db, "export", "b", "--format", "hex"]);
    assert!(exported.lines().any(|l| l == h), "{exported}");
    hashguard_ok(&["list", "--db", &db, "import", "b", &s(&csv)]);
    let exported = hashguard_ok(&["list", "--db", &db, "export", "b", "--format", "csv"]);
    assert!(
        exported.ends_with(&format!("pdq,{h},Collab,,\n")),
        "{exported}"
    );
}

fn db_list(db: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["list", "--db", db];
    all.extend_from_slice(args);
    hashguard(&all)
}

fn live_and_versions(db: &str, bank: &str) -> (u64, u64) {
    let out = db_list(db, &["stats", bank, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["live"].as_u64().unwrap(), v["versions"].as_u64().unwrap())
}

/// Importing an empty or comments-only file would remove every entry of the bank: refused with
/// a message saying so, unless `--allow-empty`.
#[test]
fn an_empty_import_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    assert!(
        db_list(&db, &["create", "b", "--org", "O", "--jurisdiction", "GB"])
            .status
            .success()
    );
    let full = dir.path().join("full.txt");
    std::fs::write(
        &full,
        format!("md5 {}\nmd5 {}\n", "a".repeat(32), "b".repeat(32)),
    )
    .unwrap();
    assert!(db_list(
        &db,
        &[
            "create",
            "m",
            "--org",
            "O",
            "--jurisdiction",
            "GB",
            "--signal-type",
            "md5"
        ]
    )
    .status
    .success());
    assert!(db_list(&db, &["import", "m", &s(&full)]).status.success());
    assert_eq!(live_and_versions(&db, "m"), (2, 1));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let comments = dir.path().join("comments.txt");
    std::fs::write(&comments, "# stand-in list, nothing listed yet\n\n   \n").unwrap();
    for file in [&empty, &comments] {
        let out = db_list(&db, &["import", "m", &s(file)]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains(&s(file))
                && err.contains("remove all 2 entries")
                && err.contains("--allow-empty"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(live_and_versions(&db, "m"), (2, 1), "nothing imported");
    }
    let out = db_list(&db, &["import", "m", &s(&comments), "--allow-empty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(live_and_versions(&db, "m"), (0, 2));
}

/// `export --version N` for a version the bank does not have yet is an error, not the latest.
#[test]
fn exporting_a_version_after_the_latest_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    assert!(
        db_list(&db, &["create", "b", "--org", "O", "--jurisdiction", "GB"])
            .status
            .success()
    );
    let out = db_list(&db, &["export", "b", "--version", "1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bank b has no version 1 (nothing was imported into it yet)"),
        "{}",
        stderr(&out)
    );
    let list = dir.path().join("v1.txt");
    std::fs::write(&list, format!("pdq {}\n", "3c".repeat(32))).unwrap();
    assert!(db_list(&db, &["import", "b", &s(&list)]).status.success());
    let out = db_list(&db, &["export", "b", "--version", "5"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("bank b has no version 5 (its latest is 1)"),
        "{err}"
    );
    let out = db_list(&db, &["export", "b", "--version", "1"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("pdq {}\n", "3c".repeat(32))
    );
}

/// An explicit version is at most 2^53, so the bank can always take a next version: the probe
/// `--version 9223372036854775807` is refused (it used to be accepted and then every later
/// import failed), and after the largest explicit version the next import still works.
#[test]
fn explicit_versions_leave_room_for_a_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    assert!(
        db_list(&db, &["create", "b", "--org", "O", "--jurisdiction", "GB"])
            .status
            .success()
    );
    let v1 = dir.path().join("v1.txt");
    std::fs::write(&v1, format!("pdq {}\n", "3c".repeat(32))).unwrap();
    let v2 = dir.path().join("v2.txt");
    std::fs::write(&v2, format!("pdq {}\n", "c3".repeat(32))).unwrap();
    for refused in ["9223372036854775807", "9007199254740993", "0"] {
        let out = db_list(&db, &["import", "b", &s(&v1), "--version", refused]);
        let err = stderr(&out);
        assert!(!out.status.success(), "--version {refused}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(live_and_versions(&db, "b"), (0, 0));
    }
    let out = db_list(
        &db,
        &["import", "b", &s(&v1), "--version", "9007199254740992"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = db_list(&db, &["import", "b", &s(&v2)]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("imported version 9007199254740993"), "{err}");
}

/// Runs hashguard with a 4 GiB address-space limit and a deadline, so that a command that reads
/// an endless stream whole fails the test instead of taking the machine's memory.
fn hashguard_bounded(args: &[&str]) -> (Option<i32>, String) {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hashguard"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("hashguard {args:?} still running after 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// List and query files are read with limits: `/dev/zero` (one endless line), a long line, a
/// file over `--max-list-size` and a directory each give one clear error naming the file and the
/// limit, at once and without a panic.
#[test]
fn list_files_are_read_within_limits() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    assert!(
        db_list(&db, &["create", "b", "--org", "O", "--jurisdiction", "GB"])
            .status
            .success()
    );
    let good = dir.path().join("good.txt");
    let lines: String = (0..30_000u32)
        .map(|i| {
            format!(
                "pdq {:064x}\n",
                u128::from(i) * 0x9e37_79b9_7f4a_7c15_u128 + 1
            )
        })
        .collect();
    std::fs::write(&good, &lines).unwrap();
    let image = dir.path().join("a.png");
    blocks_png(4, &image);

    let zero_cases: [&[&str]; 3] = [
        &["list", "--db", &db, "import", "b", "/dev/zero"],
        &["match", "--list", "/dev/zero", image.to_str().unwrap()],
        &[
            "match",
            "--list",
            good.to_str().unwrap(),
            "--hashes",
            "/dev/zero",
        ],
    ];
    for args in zero_cases {
        let (code, err) = hashguard_bounded(args);
        assert_ne!(code, Some(0), "{args:?}: {err}");
        assert!(
            err.contains("/dev/zero:1: a line longer than 16777216 bytes")
                && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }

    let long = dir.path().join("long.txt");
    std::fs::write(
        &long,
        format!("pdq {}\n{}\n", "ab".repeat(32), "a".repeat(17 << 20)),
    )
    .unwrap();
    let (code, err) = hashguard_bounded(&["match", "--list", &s(&long), &s(&image)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:2: a line longer than", long.display())),
        "{err}"
    );

    // 30,000 lines of 69 bytes: over a 1M limit, under the default and under 4M.
    let (code, err) = hashguard_bounded(&[
        "match",
        "--list",
        &s(&good),
        "--max-list-size",
        "1M",
        &s(&image),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{} is larger than 1048576 bytes, the --max-list-size limit",
            good.display()
        )),
        "{err}"
    );
    let (code, err) = hashguard_bounded(&[
        "list",
        "--db",
        &db,
        "import",
        "b",
        &s(&good),
        "--max-list-size",
        "1M",
    ]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("the --max-list-size limit"), "{err}");
    assert_eq!(live_and_versions(&db, "b"), (0, 0));
    let (code, err) = hashguard_bounded(&[
        "list",
        "--db",
        &db,
        "import",
        "b",
        &s(&good),
        "--max-list-size",
        "4M",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, err) = hashguard_bounded(&["match", "--list", &s(&good), &s(&image)]);
    assert_eq!(code, Some(0), "{err}");

    // A directory is not a list.
    for args in [
        vec![
            "list",
            "--db",
            db.as_str(),
            "import",
            "b",
            dir.path().to_str().unwrap(),
        ],
        vec![
            "match",
            "--list",
            dir.path().to_str().unwrap(),
            image.to_str().unwrap(),
        ],
    ] {
        let (code, err) = hashguard_bounded(&args);
        assert_ne!(code, Some(0), "{err}");
        assert!(
            err.contains(&format!(
                "{} is a directory; a list is one file",
                dir.path().display()
            )),
            "{args:?}: {err}"
        );
    }
}

//! `hashguard list` and `hashguard match` end to end, through the binary: bank life cycle on
//! SQLite and PostgreSQL, malformed lists, matching images against the database (PDQ, MD5,
//! allow banks) and against a list file, and hash-line matching checked against brute force.

mod common;

use std::collections::BTreeSet;
use std::io::Cursor;
use std::path::Path;

use common::{hashguard, hashguard_ok};
use hashguard_testsupport::TestGen;

/// A 200x160 image of a few random smooth waves: structured enough for a stable PDQ hash,
/// different for every seed.
fn wave_image(seed: u64) -> image::RgbImage {
    let mut r = TestGen::seeded(seed);
    let waves: Vec<[f32; 4]> = (0..4)
        .map(|_| {
            [
                r.unit() * 0.08,
                r.unit() * 0.08,
                r.unit() * std::f32::consts::TAU,
                r.unit() * 90.0 + 20.0,
            ]
        })
        .collect();
    image::RgbImage::from_fn(200, 160, |x, y| {
        let v: f32 = waves
            .iter()
            .map(|w| w[3] * (w[0] * x as f32 + w[1] * y as f32 + w[2]).sin())
            .sum();
        let l = (128.0 + v).clamp(0.0, 255.0) as u8;
        image::Rgb([l, l.wrapping_add(30), 255 - l])
    })
}

fn save(img: &image::RgbImage, path: &Path, format: image::ImageFormat) {
    let mut bytes = Vec::new();
    if format == image::ImageFormat::Jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80)
            .encode_image(img)
            .unwrap();
    } else {
        img.write_to(&mut Cursor::new(&mut bytes), format).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The PostgreSQL URL to test against, or `None` (with a message) when it is not reachable and
/// not required.
fn postgres(test: &str) -> Option<String> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let reachable = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .is_ok()
        || !url.contains("127.0.0.1:5432");
    if reachable {
        Some(url)
    } else if std::env::var("HASHGUARD_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("PostgreSQL is required (HASHGUARD_REQUIRE_POSTGRES=1) but {url} is unreachable");
    } else {
        hashguard_testsupport::skipped(test, &format!("PostgreSQL not reachable at {url}"));
        None
    }
}

fn hex(words: [u64; 4]) -> String {
    words.iter().map(|w| format!("{w:016x}")).collect()
}

/// Create, import, re-import (no-op), import a newer version with a deletion, refuse a
/// malformed list without changing anything, export, stats: on the given database.
fn bank_life_cycle(db: &str, bank: &str, dir: &Path) {
    let h: Vec<String> = (1u64..=4)
        .map(|i| hex([i, i * 7, i * 13, i * 31]))
        .collect();
    let v1 = dir.join(format!("{bank}-v1.txt"));
    std::fs::write(
        &v1,
        format!(
            "# stand-in list\npdq {}\npdq {}\npdq {}\n",
            h[0], h[1], h[2]
        ),
    )
    .unwrap();
    let v2 = dir.join(format!("{bank}-v2.txt"));
    std::fs::write(&v2, format!("pdq {}\npdq {}\npdq {}\n", h[0], h[2], h[3])).unwrap();
    let bad = dir.join(format!("{bank}-bad.txt"));
    std::fs::write(
        &bad,
        format!(
            "pdq {}\npdq xyz\npdq {}\nmd5 {}\npdq {}\n",
            h[0],
            h[1],
            "0".repeat(32),
            h[1]
        ),
    )
    .unwrap();
    let list = |args: &[&str]| {
        let mut all = vec!["list", "--db", db];
        all.extend_from_slice(args);
        hashguard(&all)
    };
    let ok = |args: &[&str]| {
        let out = list(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    ok(&[
        "create",
        bank,
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
    ]);
    let again = list(&[
        "create",
        bank,
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
    ]);
    assert!(!again.status.success(), "a bank name is unique");

    let (_, err) = ok(&["import", bank, &s(&v1)]);
    assert!(
        err.contains("imported version 1") && err.contains("3 added"),
        "{err}"
    );
    let (_, err) = ok(&["import", bank, &s(&v1)]);
    assert!(
        err.contains("nothing imported"),
        "re-import is a no-op: {err}"
    );
    let (_, err) = ok(&["import", bank, &s(&v1), "--version", "1"]);
    assert!(err.contains("nothing imported"), "{err}");

    let (_, err) = ok(&["import", bank, &s(&v2)]);
    assert!(
        err.contains("imported version 2") && err.contains("1 added, 1 removed, 2 unchanged"),
        "{err}"
    );
    let refused = list(&["import", bank, &s(&v1), "--version", "2"]);
    assert!(!refused.status.success(), "version 2 is immutable");

    // Every bad line reported with its number; nothing imported. Line 5 repeats line 3's
    // value: merged by default, a bad line with --strict.
    for (strict, bad_lines) in [(false, &[2, 4][..]), (true, &[2, 4, 5][..])] {
        let mut args = vec!["import", bank, bad.to_str().unwrap()];
        if strict {
            args.push("--strict");
        }
        let out = list(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        for line in 1..=5 {
            assert_eq!(
                err.contains(&format!("{}:{line}:", bad.display())),
                bad_lines.contains(&line),
                "line {line}, strict {strict}: {err}"
            );
        }
    }

    let (stats, _) = ok(&["stats", bank, "--json"]);
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(stats["latest_version"], 2);
    assert_eq!(stats["versions"], 2);
    assert_eq!(stats["live"], 3);
    assert_eq!(stats["tombstones"], 1);

    // The bank equals the newer list; version 1 can still be exported.
    let (latest, _) = ok(&["export", bank, "--format", "hex"]);
    let latest: BTreeSet<&str> = latest.lines().collect();
    assert_eq!(latest, [h[0].as_str(), h[2].as_str(), h[3].as_str()].into());
    let (first, _) = ok(&["export", bank, "--format", "hex", "--version", "1"]);
    let first: BTreeSet<&str> = first.lines().collect();
    assert_eq!(first, [h[0].as_str(), h[1].as_str(), h[2].as_str()].into());
}

#[test]
fn bank_life_cycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("lists.db"));
    bank_life_cycle(&db, "standin", dir.path());
    assert!(dir.path().join("lists.db").is_file());
}

#[test]
fn bank_life_cycle_on_postgres() {
    let Some(url) = postgres("bank_life_cycle_on_postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Bank names are unique per run, so runs against one database do not collide.
    let bank = format!(
        "cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    bank_life_cycle(&url, &bank, dir.path());
}

#[test]
fn reading_commands_do_not_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing.db");
    let out = hashguard(&["list", "--db", &s(&db), "stats"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
    assert!(!db.exists());
}

/// Listed images and their re-encoded copies match with the bank, entry id and distance;
/// unrelated images do not; an exact MD5 bank matches the file's bytes; an allow bank
/// suppresses; a disabled bank matches nothing.
#[test]
fn match_images_against_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let listed = dir.path().join("listed");
    let uploads = dir.path().join("uploads");
    std::fs::create_dir_all(&listed).unwrap();
    std::fs::create_dir_all(&uploads).unwrap();
    for seed in 0..4u64 {
        let img = wave_image(seed);
        save(
            &img,
            &listed.join(format!("img{seed}.png")),
            image::ImageFormat::Png,
        );
        save(
            &img,
            &uploads.join(format!("copy{seed}.jpg")),
            image::ImageFormat::Jpeg,
        );
    }
    for seed in 100..104u64 {
        save(
            &wave_image(seed),
            &uploads.join(format!("other{seed}.png")),
            image::ImageFormat::Png,
        );
    }
    std::fs::copy(listed.join("img3.png"), uploads.join("exact3.png")).unwrap();

    // The list: `hashguard hash` output of img0..img2 (pdq-cli format, file names as ids).
    let hashes = hashguard_ok(&[
        "hash",
        &s(&listed.join("img0.png")),
        &s(&listed.join("img1.png")),
        &s(&listed.join("img2.png")),
    ]);
    let hashes: String = hashes
        .lines()
        .map(|l| {
            let (h, q, p) = common::csv_fields(l);
            let name = Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_string();
            format!("{h},{q},{name}\n")
        })
        .collect();
    let list_file = dir.path().join("standin.csv");
    std::fs::write(&list_file, &hashes).unwrap();
    let img3_hash = hashguard_ok(&["hash", &s(&listed.join("img3.png"))]);
    let (img3_hash, _, _) = common::csv_fields(img3_hash.trim());
    let img3_md5 = format!(
        "{:x}",
        md5_of(&std::fs::read(listed.join("img3.png")).unwrap())
    );

    let db = s(&dir.path().join("hashguard.db"));
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
    run(&["import", "standin", &s(&list_file)]);
    let md5_file = dir.path().join("md5.txt");
    std::fs::write(&md5_file, format!("md5 {img3_md5}\n")).unwrap();
    run(&[
        "create",
        "exact",
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "US",
        "--signal-type",
        "md5",
    ]);
    run(&["import", "exact", &s(&md5_file)]);

    let matches = |extra: &[&str]| -> BTreeSet<(String, String, String, String)> {
        let mut all = vec!["match", "--db", db.as_str()];
        all.extend_from_slice(extra);
        all.push(uploads.to_str().unwrap());
        hashguard_ok(&all)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                assert_eq!(f.len(), 5, "{l}");
                let d: u32 = f[4].parse().unwrap();
                if f[3] == "pdq" {
                    assert!(d <= 31, "{l}");
                } else {
                    assert_eq!(d, 0, "{l}");
                }
                let name = Path::new(f[0])
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                (name, f[1].to_string(), f[2].to_string(), f[3].to_string())
            })
            .collect()
    };
    let t = |a: &str, b: &str, c: &str, d: &str| {
        (a.to_string(), b.to_string(), c.to_string(), d.to_string())
    };
    let expected: BTreeSet<_> = [
        t("copy0.jpg", "standin", "img0.png", "pdq"),
        t("copy1.jpg", "standin", "img1.png", "pdq"),
        t("copy2.jpg", "standin", "img2.png", "pdq"),
        t("exact3.png", "exact", &img3_md5, "md5"),
    ]
    .into();
    assert_eq!(matches(&[]), expected);

    // JSON adds the query and matched values.
    let json = hashguard_ok(&[
        "match",
        "--db",
        &db,
        "--format",
        "json",
        &s(&uploads.join("copy1.jpg")),
    ]);
    let obj: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(obj["bank"], "standin");
    assert_eq!(obj["entry_id"], "img1.png");
    assert_eq!(obj["query"].as_str().unwrap().len(), 64);
    assert_eq!(obj["matched"].as_str().unwrap().len(), 64);

    // An allow bank with img1's listed hash suppresses copy1's match.
    let img1 = hashes
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    let allow_file = dir.path().join("allow.txt");
    std::fs::write(&allow_file, format!("{img1}\n")).unwrap();
    run(&[
        "create",
        "known-benign",
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
        "--kind",
        "allow",
    ]);
    run(&["import", "known-benign", &s(&allow_file)]);
    let mut without_copy1 = expected.clone();
    without_copy1.remove(&t("copy1.jpg", "standin", "img1.png", "pdq"));
    assert_eq!(matches(&[]), without_copy1);

    // A disabled bank matches nothing; --radius 0 keeps only exact PDQ equality.
    run(&["update", "exact", "--disable"]);
    let mut pdq_only = without_copy1.clone();
    pdq_only.retain(|m| m.3 == "pdq");
    assert_eq!(matches(&[]), pdq_only);
    let at_zero = matches(&["--radius", "0"]);
    assert!(at_zero.is_subset(&pdq_only));
    let _ = img3_hash;
}

fn md5_of(bytes: &[u8]) -> u128 {
    use md5::Digest;
    u128::from_be_bytes(md5::Md5::digest(bytes).into())
}

/// `match --list FILE` needs no database and names the file as the bank.
#[test]
fn match_images_against_a_list_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.png");
    let b = dir.path().join("b.png");
    save(&wave_image(7), &a, image::ImageFormat::Png);
    save(&wave_image(8), &b, image::ImageFormat::Png);
    let out = hashguard_ok(&["hash", &s(&a)]);
    let (h, _, _) = common::csv_fields(out.trim());
    let list = dir.path().join("list.txt");
    std::fs::write(&list, format!("# stand-in\npdq {h}\n")).unwrap();
    let got = hashguard_ok(&["match", "--list", &s(&list), &s(&a), &s(&b)]);
    assert_eq!(got, format!("{},{},{h},pdq,0\n", s(&a), s(&list)));
    let json = hashguard_ok(&["match", "--list", &s(&list), "--format", "json", &s(&a)]);
    let obj: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(obj["list_line"], 2);

    // A mirrored copy matches only when the dihedral variants are looked up too.
    let mirrored = dir.path().join("mirrored.png");
    save(
        &image::imageops::flip_horizontal(&wave_image(7)),
        &mirrored,
        image::ImageFormat::Png,
    );
    let plain = hashguard_ok(&["match", "--list", &s(&list), &s(&mirrored)]);
    assert_eq!(plain, "", "a mirror is far from the original's hash");
    let json = hashguard_ok(&[
        "match",
        "--list",
        &s(&list),
        "--dihedral",
        "--format",
        "json",
        &s(&mirrored),
    ]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 1, "one line per listed entry: {json}");
    let obj: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(obj["variant"], "flipy", "{obj}");
    assert!(obj["distance"].as_u64().unwrap() <= 31);

    // A malformed list file is refused with its line numbers.
    std::fs::write(&list, format!("pdq {h}\npdq 12\n")).unwrap();
    let out = hashguard(&["match", "--list", &s(&list), &s(&a)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:2:", list.display())));
}

/// `match --list FILE --hashes QUERIES` prints exactly the brute-force pairs within R, for a
/// clustered list and queries with duplicates and low qualities, with and without threads.
#[test]
fn hash_lines_match_exactly_the_brute_force_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = TestGen::seeded(42);
    let centres: Vec<[u64; 4]> = (0..5).map(|_| r.code()).collect();
    let near = |r: &mut TestGen, c: [u64; 4], flips: usize| {
        let mut w = c;
        for _ in 0..flips {
            let b = (r.word() % 256) as usize;
            w[b / 64] ^= 1 << (b % 64);
        }
        w
    };
    let mut listed: Vec<[u64; 4]> = Vec::new();
    while listed.len() < 300 {
        let c = centres[(r.word() % 5) as usize];
        let flips = (r.word() % 40) as usize;
        let w = near(&mut r, c, flips);
        if !listed.contains(&w) {
            listed.push(w);
        }
    }
    let queries: Vec<[u64; 4]> = (0..60)
        .map(|i| {
            if i % 10 == 9 {
                listed[i] // an exact duplicate of a listed value, twice below
            } else {
                let c = centres[(r.word() % 5) as usize];
                let flips = (r.word() % 48) as usize;
                near(&mut r, c, flips)
            }
        })
        .collect();
    // List in local_file format with a comment line; queries in PDQ CLI format with one
    // repeated line and low qualities.
    let list_path = dir.path().join("list.txt");
    let mut list_text = String::from("# stand-in clustered list\n");
    for w in &listed {
        list_text.push_str(&format!("pdq {}\n", hex(*w)));
    }
    std::fs::write(&list_path, list_text).unwrap();
    let query_path = dir.path().join("queries.csv");
    let mut query_text = String::new();
    for (i, w) in queries.iter().chain([&queries[9]]).enumerate() {
        query_text.push_str(&format!("{},{},q{i}.jpg\n", hex(*w), i % 101));
    }
    std::fs::write(&query_path, query_text).unwrap();
    let all_queries: Vec<[u64; 4]> = queries.iter().chain([&queries[9]]).copied().collect();

    let dist = |a: &[u64; 4], b: &[u64; 4]| -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    };
    for radius in [0u32, 10, 31, 63] {
        let mut expected = BTreeSet::new();
        for (qi, q) in all_queries.iter().enumerate() {
            for (li, l) in listed.iter().enumerate() {
                let d = dist(q, l);
                if d <= radius {
                    expected.insert((qi + 1, li + 2, d));
                }
            }
        }
        for threads in ["1", "2"] {
            let out = hashguard_ok(&[
                "match",
                "--list",
                &s(&list_path),
                "--hashes",
                &s(&query_path),
                "--radius",
                &radius.to_string(),
                "--threads",
                threads,
            ]);
            let got: BTreeSet<(usize, usize, u32)> = out
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    (
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                    )
                })
                .collect();
            assert_eq!(got.len(), out.lines().count(), "no pair is printed twice");
            assert_eq!(got, expected, "radius {radius}, {threads} thread(s)");
        }
        if radius == 31 {
            assert!(
                expected.len() > 60,
                "the data must produce pairs: {}",
                expected.len()
            );
        }
    }

    // A bad query line refuses the run, naming the line.
    std::fs::write(
        &query_path,
        format!("{},100,a\nnot-a-hash,100,b\n", hex(listed[0])),
    )
    .unwrap();
    let out = hashguard(&[
        "match",
        "--list",
        &s(&list_path),
        "--hashes",
        &s(&query_path),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:2:", query_path.display())));
}

/// Two banks of different organisations and jurisdictions that list near-identical hashes form
/// the consensus view; a hash listed by one organisation only does not.
#[test]
fn consensus_view_needs_two_organisations_in_two_jurisdictions() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("c.db"));
    let shared = [1u64, 2, 3, 4];
    let mut near = shared;
    near[0] ^= 0b111; // distance 3
    let lone = [9u64, 9, 9, 9];
    let run = |args: &[&str]| {
        let mut all = vec!["list", "--db", db.as_str()];
        all.extend_from_slice(args);
        hashguard_ok(&all)
    };
    let a = dir.path().join("a.txt");
    let b = dir.path().join("b.txt");
    std::fs::write(&a, format!("{}\n{}\n", hex(shared), hex(lone))).unwrap();
    std::fs::write(&b, format!("{}\n", hex(near))).unwrap();
    run(&["create", "org-a", "--org", "Org A", "--jurisdiction", "GB"]);
    run(&["create", "org-b", "--org", "Org B", "--jurisdiction", "US"]);
    run(&["import", "org-a", &s(&a)]);
    run(&["import", "org-b", &s(&b)]);
    let view: BTreeSet<String> = run(&["consensus", "--format", "hex"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(view, [hex(shared), hex(near)].into());
    let strict: BTreeSet<String> = run(&["consensus", "--format", "hex", "--distance", "2"])
        .lines()
        .map(str::to_string)
        .collect();
    assert!(strict.is_empty(), "{strict:?}");
}

/// `table build` turns the consensus view into a table directory that `table verify` accepts
/// (client checks and every DLEQ proof against the key set recomputed from the banks); a changed
/// shard point, or a bank changed after the build, fails verification; the next build continues
/// the manifest chain; the opening key never enters the directory.
#[test]
fn table_build_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("t.db"));
    let mut r = TestGen::seeded(9);
    let values: Vec<[u64; 4]> = (0..40).map(|_| r.code()).collect();
    // A plain-hex list file of the first `n` values.
    let hex_list = |name: &str, n: usize| {
        let path = dir.path().join(name);
        let text: String = values[..n].iter().map(|v| hex(*v) + "\n").collect();
        std::fs::write(&path, text).unwrap();
        path
    };
    let a = hex_list("a.txt", 40);
    let b = hex_list("b.txt", 30);
    let c = hex_list("c.txt", 20);
    let run = |args: &[&str]| {
        let mut all = vec!["list", "--db", db.as_str()];
        all.extend_from_slice(args);
        hashguard_ok(&all)
    };
    run(&["create", "org-a", "--org", "Org A", "--jurisdiction", "GB"]);
    run(&["create", "org-b", "--org", "Org B", "--jurisdiction", "US"]);
    run(&["import", "org-a", &s(&a)]);
    run(&["import", "org-b", &s(&b)]);

    let out_dir = dir.path().join("table");
    let key = dir.path().join("opening.key");
    let build = |extra: &[&str]| {
        let mut all = vec![
            "table",
            "build",
            "--db",
            db.as_str(),
            "--out",
            out_dir.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--shards",
            "2",
        ];
        all.extend_from_slice(extra);
        hashguard(&all)
    };
    let out = build(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(summary.contains("epoch 1 "), "{summary}");
    assert!(summary.contains("2 shards, 30 keys"), "{summary}");
    let key_text = std::fs::read_to_string(&key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(key_text.trim()),
            "the opening key leaked into the table directory"
        );
        for v in &values {
            assert!(
                !text.contains(&hex(*v)),
                "a listed hash is in the table directory"
            );
        }
    }

    let verify = |extra: &[&str]| {
        let mut all = vec![
            "table",
            "verify",
            out_dir.to_str().unwrap(),
            "--db",
            db.as_str(),
        ];
        all.extend_from_slice(extra);
        hashguard(&all)
    };
    let ok = verify(&[]);
    let text = String::from_utf8_lossy(&ok.stdout).to_string();
    assert!(
        ok.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        text.contains("client checks: ok") && text.contains("DLEQ proofs: ok"),
        "{text}"
    );

    // A bank changed after the build: the recomputed key set no longer matches the proofs.
    run(&["import", "org-b", &s(&c)]);
    let stale = verify(&[]);
    assert_eq!(
        stale.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&stale.stdout)
    );
    run(&["import", "org-b", &s(&b)]);
    assert!(verify(&[]).status.success());

    // One changed point: the client checks (root) fail.
    let shard0 = out_dir.join("shard-0000.bin");
    let original = std::fs::read(&shard0).unwrap();
    let mut bad = original.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&shard0, &bad).unwrap();
    let tampered = verify(&["--client-only"]);
    assert!(
        !tampered.status.success(),
        "{}",
        String::from_utf8_lossy(&tampered.stdout)
    );
    std::fs::write(&shard0, &original).unwrap();

    // The next epoch chains to the first.
    let shards = |n: usize| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| std::fs::read(out_dir.join(format!("shard-{i:04}.bin"))).unwrap())
            .collect()
    };
    let epoch1_shards = shards(2);
    let first_manifest = std::fs::read(out_dir.join("manifest.bin")).unwrap();
    let again = build(&[]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let summary = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(summary.contains("epoch 2 "), "{summary}");
    let prev = {
        use sha2::Digest;
        hex_bytes(&sha2::Sha256::digest(&first_manifest))
    };
    assert!(
        summary.contains(&format!("prev {prev}")),
        "{summary}\nexpected prev {prev}"
    );
    assert!(verify(&[]).status.success());
    // Nothing changed in the banks: both shards are kept as they were, byte for byte.
    let note = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(note.contains("2 kept unchanged"), "{note}");
    assert_eq!(shards(2), epoch1_shards);

    // One more value in the consensus view changes exactly one shard.
    let b2 = hex_list("b2.txt", 31);
    run(&["import", "org-b", &s(&b2)]);
    let third = build(&[]);
    let note = String::from_utf8_lossy(&third.stderr).to_string();
    assert!(third.status.success(), "{note}");
    assert!(
        note.contains("31 keys") && note.contains("1 kept unchanged"),
        "{note}"
    );
    let epoch3_shards = shards(2);
    let same: Vec<bool> = (0..2)
        .map(|i| epoch3_shards[i] == epoch1_shards[i])
        .collect();
    assert_eq!(same.iter().filter(|&&x| x).count(), 1, "{same:?}");
    assert!(verify(&[]).status.success());

    // Another opening key cannot continue this deployment.
    let other_key = dir.path().join("other.key");
    let refused = hashguard(&[
        "table",
        "build",
        "--db",
        &db,
        "--out",
        out_dir.to_str().unwrap(),
        "--key",
        other_key.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("another opening key"), "{why}");
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Videos match `vpdq` banks (database and list file) under the python-threatexchange rule: a
/// listed video matches itself at 100%, another video does not; the bank round-trips through
/// import and export.
#[test]
fn videos_match_vpdq_banks() {
    let Some(data) = common::testdata("videos_match_vpdq_banks") else {
        return;
    };
    let videos = data.join("vpdq/videos");
    let listed = videos.join("chair-20-sd-bar.mp4");
    let other = videos.join("doorknob-hd-no-bar.mp4");
    let dir = tempfile::tempdir().unwrap();
    // The list line: python-threatexchange's signal_str of the listed video's frames.
    let csv = hashguard_ok(&["hash", &s(&listed)]);
    let frames: Vec<String> = csv
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let t: f64 = f[3].parse().unwrap();
            format!("\"{},{},{}\"", f[2], f[1], t)
        })
        .collect();
    assert!(frames.len() > 5, "{csv}");
    let list = dir.path().join("videos.txt");
    std::fs::write(&list, format!("# stand-in\nvpdq [{}]\n", frames.join(", "))).unwrap();

    let got = hashguard_ok(&["match", "--list", &s(&list), &s(&listed), &s(&other)]);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines.len(), 1, "{got}");
    let f: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(
        (f[0], f[3], f[4]),
        (s(&listed).as_str(), "vpdq", "100.00"),
        "{got}"
    );

    let db = s(&dir.path().join("v.db"));
    hashguard_ok(&[
        "list",
        "--db",
        &db,
        "create",
        "videos",
        "--org",
        "Stand-in Org",
        "--jurisdiction",
        "GB",
        "--signal-type",
        "vpdq",
    ]);
    hashguard_ok(&["list", "--db", &db, "import", "videos", &s(&list)]);
    let json = hashguard_ok(&[
        "match",
        "--db",
        &db,
        "--format",
        "json",
        &s(&listed),
        &s(&other),
    ]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 1, "{json}");
    let obj: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(obj["bank"], "videos");
    assert_eq!(obj["query_percent"], 100.0);
    assert!(obj["entry_id"].as_str().unwrap().starts_with("sha256:"));
    let exported = hashguard_ok(&["list", "--db", &db, "export", "videos"]);
    let reimport = dir.path().join("exported.txt");
    std::fs::write(&reimport, exported).unwrap();
    let out = hashguard(&["list", "--db", &db, "import", "videos", &s(&reimport)]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing imported"),
        "export round-trips"
    );
}

/// `list second-hash`: a listed original's second hash is recorded against its entry (the
/// stand-in Org B lists the demo picture two bits off, so the nearest entry is named with its
/// distance), and the server-side table then holds exactly that hash; a picture that no entry
/// is near, a non-PDQ bank and an unreadable file record nothing and fail with a reason.
#[test]
fn second_hashes_are_recorded_against_their_entries() {
    let dir = tempfile::tempdir().unwrap();
    let db = s(&dir.path().join("second.db"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let demo = |f: &str| s(&repo.join("assets/demo").join(f));
    let list = s(&repo.join("assets/standin/org-b.txt"));
    hashguard_ok(&[
        "list",
        "--db",
        &db,
        "create",
        "org-b",
        "--org",
        "Stand-in Org B",
        "--jurisdiction",
        "US",
        "--signal-type",
        "pdq",
    ]);
    hashguard_ok(&["list", "--db", &db, "import", "org-b", &list]);
    let out = hashguard_ok(&[
        "list",
        "--db",
        &db,
        "second-hash",
        "org-b",
        &demo("hills.png"),
        "--by",
        "tester",
    ]);
    let picture = std::fs::read(repo.join("assets/demo/hills.png")).unwrap();
    let hasher = hashguard_hashing::Hasher::new(hashguard_hashing::Options::default());
    let second = hasher.second_hash_bytes(&picture).unwrap().to_hex();
    assert!(out.contains("(PDQ distance 2)"), "{out}");
    assert!(out.contains(&second), "{out}");

    let refused = hashguard(&[
        "list",
        "--db",
        &db,
        "second-hash",
        "org-b",
        &demo("blocks.webp"),
    ]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("is not within 31 of any live entry of bank org-b"),
        "{err}"
    );
    let missing = hashguard(&[
        "list",
        "--db",
        &db,
        "second-hash",
        "org-b",
        "/nonexistent.png",
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent.png"));
    hashguard_ok(&[
        "list",
        "--db",
        &db,
        "create",
        "digests",
        "--org",
        "Stand-in Org B",
        "--jurisdiction",
        "US",
        "--signal-type",
        "md5",
    ]);
    let wrong_type = hashguard(&[
        "list",
        "--db",
        &db,
        "second-hash",
        "digests",
        &demo("hills.png"),
    ]);
    assert!(!wrong_type.status.success());
    assert!(
        String::from_utf8_lossy(&wrong_type.stderr).contains("second hashes belong to PDQ entries")
    );

    // Exactly one row, the picture's, against the entry the command named.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let store = hashguard_store::Store::open_location(
            &hashguard_store::DatabaseLocation::parse(&db),
            hashguard_store::OpenMode::Read,
        )
        .await
        .unwrap();
        let rows = store.second_hashes().await.unwrap();
        store.close().await;
        rows
    });
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].second, second);
    assert!(out.contains(&rows[0].value));
}

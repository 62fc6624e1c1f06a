//! Acceptance for the hostile-input probe of issue 11: each input below once panicked, hung,
//! read without limit, hid its cause or printed a secret. Each now gives a clear error (or the
//! right output), and nothing panics.

mod common;

use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{hashguard, hashguard_ok};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails the test if the command panicked.
fn assert_no_panic(out: &std::process::Output) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && out.status.code().is_some(),
        "the command panicked or was killed: {err}"
    );
}

/// A 64x48 PNG with some structure.
fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([
            (x * 4) as u8 ^ seed,
            (y * 5) as u8,
            ((x * y) as u8).wrapping_add(seed),
        ])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A YUV4MPEG2 (Y4M) video of `frames` grey-gradient frames of `width` x `height`, 4:2:0; or
/// just its header when `frames` is 0.
fn y4m(width: usize, height: usize, frames: usize) -> Vec<u8> {
    let mut v = format!("YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    for f in 0..frames {
        v.extend_from_slice(b"FRAME\n");
        for y in 0..height {
            for x in 0..width {
                v.push(((x * 3 + y * 2 + f) % 256) as u8);
            }
        }
        v.extend(std::iter::repeat_n(
            128u8,
            2 * width.div_ceil(2) * height.div_ceil(2),
        ));
    }
    v
}

/// Runs the binary with its standard output closed before it writes anything (the reader of
/// `| head -0`), and checks it stops quietly with status 0: a closed pipe is not an error (as
/// in ripgrep).
fn assert_quiet_on_closed_pipe(args: &[&str]) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

/// A PDQ hash in hex.
fn hex(code: [u64; 4]) -> String {
    code.iter().map(|w| format!("{w:016x}")).collect()
}

/// Runs the binary with a deadline: a hang is a failure, not a stuck test.
fn hashguard_within(args: &[&str], limit: Duration) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hashguard"));
    command.args(args);
    run_within(command, limit)
}

/// Runs `command` with its output captured; kills it and fails the test if it has not
/// finished within `limit`.
fn run_within(mut command: Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{command:?} did not finish within {limit:?}: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn video_resize_beyond_the_frame_limit_is_an_error_and_the_other_inputs_are_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.y4m");
    std::fs::write(&video, y4m(32, 32, 3)).unwrap();
    let image = dir.path().join("i.png");
    std::fs::write(&image, png(1)).unwrap();
    for command in ["hash", "match"] {
        let mut args = vec![command, "--video-resize", "16256"];
        let list = dir.path().join("list.txt");
        std::fs::write(&list, format!("{}\n", "ab".repeat(32))).unwrap();
        let list_arg = s(&list);
        if command == "match" {
            args.extend(["--list", &list_arg]);
        }
        let (v, i) = (s(&video), s(&image));
        args.extend([v.as_str(), i.as_str()]);
        let out = hashguard(&args);
        assert_no_panic(&out);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{}: ", video.display()))
                && err.contains("resize size 16256")
                && err.contains("frame limit"),
            "{err}"
        );
        if command == "hash" {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                stdout.contains("i.png"),
                "the image was not hashed: {stdout}"
            );
        }
    }
    // A resize within the limit still works.
    let out = hashguard_ok(&["hash", "--video-resize", "64", &s(&video)]);
    assert_eq!(out.lines().count(), 1, "{out}");
}

#[test]
fn y4m_frames_over_the_limit_are_refused_by_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("wide.y4m");
    // The header alone: the size is refused before libav reads a frame.
    std::fs::write(&video, y4m(20_000, 20_000, 0)).unwrap();
    let out = hashguard(&["hash", &s(&video)]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("video frames of 20000x20000 are outside the limit"),
        "{err}"
    );
}

#[test]
fn absurd_numbers_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("i.png");
    std::fs::write(&image, png(2)).unwrap();
    let out = hashguard(&["hash", "--threads", "100000", &s(&image)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--threads 100000 is more than the maximum of 1024"),
        "{}",
        stderr(&out)
    );
    // More threads than inputs is allowed (and capped internally).
    hashguard_ok(&["hash", "--threads", "64", &s(&image)]);

    let out = hashguard(&[
        "table",
        "build",
        "--out",
        &s(&dir.path().join("t")),
        "--key",
        &s(&dir.path().join("k")),
        "--valid-days",
        "213503982334601",
    ]);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--valid-days"), "{}", stderr(&out));
    assert!(!dir.path().join("t").exists() && !dir.path().join("k").exists());
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(dir.path().join(format!("{i}.png")), png(i)).unwrap();
    }
    assert_quiet_on_closed_pipe(&["hash", &s(dir.path())]);
}

#[test]
fn non_images_are_refused_after_their_first_bytes_and_streams_are_read_with_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    // 64 GiB of zeros (sparse): reading it whole would exhaust memory.
    let huge = dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let out = hashguard_within(&["hash", &s(&huge), "/dev/zero"], Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for name in [s(&huge), "/dev/zero".to_string()] {
        assert!(
            err.contains(&format!(
                "{name}: not a supported image (first bytes 00 00 00 00"
            )),
            "{err}"
        );
    }

    // An image larger than --max-file-bytes, as a file and on standard input.
    let image = dir.path().join("i.png");
    let bytes = png(3);
    std::fs::write(&image, &bytes).unwrap();
    let limit = (bytes.len() - 1).to_string();
    let out = hashguard(&["hash", "--max-file-bytes", &limit, &s(&image)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("larger than the limit of {limit} bytes")),
        "{}",
        stderr(&out)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(["hash", "--max-file-bytes", &limit, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // An endless stream after a PNG signature: the limit ends the reading.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
        let zeros = vec![0u8; 1 << 16];
        for _ in 0..(1 << 14) {
            if stdin.write_all(&zeros).is_err() {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("-: larger than the limit"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn special_files_in_a_directory_are_reported_and_a_named_fifo_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let good = png(4);
    std::fs::write(dir.path().join("a.png"), &good).unwrap();
    let fifo = dir.path().join("b.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out = hashguard_within(&["hash", &s(dir.path())], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "{}: a FIFO, not a regular file: not read",
            fifo.display()
        )),
        "{}",
        stderr(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let expected = stdout
        .lines()
        .next()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert!(stdout.contains("a.png"), "{stdout}");

    // Named, the FIFO is a stream: its first bytes are not lost to recognising the format.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, good).unwrap())
    };
    let out = hashguard_within(&["hash", &s(&fifo)], Duration::from_secs(30));
    writer.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line.starts_with(&expected), "{line} vs {expected}");
}

#[cfg(unix)]
#[test]
fn csv_paths_are_quoted_and_file_names_are_kept_exactly() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a,\"b\"\nc.png");
    std::fs::write(&odd, png(5)).unwrap();
    let out = hashguard_ok(&["hash", &s(&odd)]);
    let quoted = format!("\"{}\"", s(&odd).replace('"', "\"\""));
    assert!(out.ends_with(&format!(",{quoted}\n")), "{out:?}");
    assert_eq!(
        out.matches('\n').count(),
        2,
        "one record, its path holding one line break"
    );

    // Two names that differ only in bytes that are not UTF-8.
    let sub = dir.path().join("raw");
    std::fs::create_dir(&sub).unwrap();
    let names = [&b"x\xff.png"[..], &b"x\xfe.png"[..]];
    for (i, n) in names.iter().enumerate() {
        std::fs::write(sub.join(OsStr::from_bytes(n)), png(6 + i as u8)).unwrap();
    }
    let out = hashguard(&["hash", &s(&sub)]);
    assert!(out.status.success(), "{}", stderr(&out));
    for n in names {
        let mut path = sub.as_os_str().as_bytes().to_vec();
        path.push(b'/');
        path.extend_from_slice(n);
        assert!(
            out.stdout.windows(path.len()).any(|w| w == path),
            "{:?} is not in the CSV output",
            String::from_utf8_lossy(&path)
        );
    }
    let out = hashguard_ok(&["hash", "--format", "json", &s(&sub)]);
    let encoded: Vec<String> = out
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["path_base64"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(encoded.len(), 2);
    assert_ne!(encoded[0], encoded[1]);
}

/// A PostgreSQL URL to a closed port and a file that is not SQLite fail at once with the real
/// cause, printed once; a password in the URL is never printed.
#[test]
fn databases_that_cannot_be_opened_fail_fast_with_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://alice:s3cret@127.0.0.1:{port}/banks?password=s3cret");
    let out = hashguard_within(&["list", "--db", &url, "stats"], Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("refused"), "{err}");
    assert!(!err.contains("timed out"), "{err}");
    assert!(!err.contains("s3cret") && !err.contains("alice"), "{err}");

    let not_sqlite = dir.path().join("notes.db");
    std::fs::write(&not_sqlite, "these are notes, not a database\n".repeat(200)).unwrap();
    for args in [
        vec!["list", "--db", not_sqlite.to_str().unwrap(), "stats"],
        vec![
            "list",
            "--db",
            not_sqlite.to_str().unwrap(),
            "create",
            "b",
            "--org",
            "O",
            "--jurisdiction",
            "GB",
        ],
    ] {
        let started = Instant::now();
        let out = hashguard_within(&args, Duration::from_secs(15));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert_eq!(err.matches("file is not a database").count(), 1, "{err}");
    }
    // The file is left as it was.
    assert!(std::fs::read_to_string(&not_sqlite)
        .unwrap()
        .starts_with("these are notes"));
}

#[test]
fn sqlite_urls_create_a_database_like_a_path_and_errors_say_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    hashguard_ok(&[
        "list",
        "--db",
        &url,
        "create",
        "b",
        "--org",
        "O",
        "--jurisdiction",
        "GB",
    ]);
    assert!(path.exists());
    let stats = hashguard_ok(&["list", "--db", &url, "stats"]);
    assert!(stats.contains('b'), "{stats}");

    let missing_dir = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    let out = hashguard(&[
        "list",
        "--db",
        &missing_dir,
        "create",
        "b",
        "--org",
        "O",
        "--jurisdiction",
        "GB",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.matches("unable to open database file").count(),
        1,
        "{err}"
    );
}

/// Reading commands open SQLite read-only: they work where the directory cannot be written
/// (as another user when the tests run as root) and never create a file.
#[cfg(unix)]
#[test]
fn reading_commands_work_in_a_directory_that_cannot_be_written() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let db = shared.join("banks.db");
    let list = dir.path().join("l.txt");
    std::fs::write(&list, format!("{}\n", "cd".repeat(32))).unwrap();
    let d = s(&db);
    hashguard_ok(&[
        "list",
        "--db",
        &d,
        "create",
        "b",
        "--org",
        "O",
        "--jurisdiction",
        "GB",
    ]);
    hashguard_ok(&["list", "--db", &d, "import", "b", &s(&list)]);
    let names = |d: &Path| -> Vec<std::ffi::OsString> {
        let mut n: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        n.sort();
        n
    };
    let before = names(&shared);
    for p in [dir.path(), shared.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let run = |args: &[&str]| {
        let mut command = if root {
            // Root ignores permissions: run as nobody, who cannot write here.
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            c.arg(env!("CARGO_BIN_EXE_hashguard"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_hashguard"))
        };
        command.args(args);
        run_within(command, Duration::from_secs(20))
    };
    let stats = run(&["list", "--db", &d, "stats"]);
    let export = run(&["list", "--db", &d, "export", "b"]);
    let mut stdout = String::new();
    Cursor::new(&export.stdout)
        .read_to_string(&mut stdout)
        .unwrap();
    let writing = run(&["list", "--db", &d, "import", "b", &s(&list)]);
    for p in [dir.path(), shared.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(stats.status.success(), "{}", stderr(&stats));
    assert!(export.status.success(), "{}", stderr(&export));
    assert!(stdout.contains(&"cd".repeat(32)), "{stdout}");
    // A writing command fails at once and says why.
    assert_eq!(writing.status.code(), Some(2));
    assert!(
        stderr(&writing).contains("readonly")
            || stderr(&writing).contains("read-only")
            || stderr(&writing).contains("unable to open"),
        "{}",
        stderr(&writing)
    );
    let after = names(&shared);
    assert_eq!(after, before, "a reading command created files");
}

/// A table built from two banks in two jurisdictions that list the same 30 values, 5 of them
/// at distance exactly 10 (the default consensus distance), in `dir/table`, with its key and
/// database; returns (database, table directory, key file).
fn built_table(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let db = s(&dir.join("t.db"));
    let mut r = hashguard_testsupport::TestGen::seeded(11);
    let codes: Vec<[u64; 4]> = (0..30).map(|_| r.code()).collect();
    let a: String = codes.iter().map(|c| hex(*c) + "\n").collect();
    let b: String = codes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut c = *c;
            if i < 5 {
                c[1] ^= 0x3ff; // 10 bits
            }
            hex(c) + "\n"
        })
        .collect();
    for (bank, jurisdiction, text) in [("org-a", "GB", a), ("org-b", "US", b)] {
        let list = dir.join(format!("{bank}.txt"));
        std::fs::write(&list, text).unwrap();
        hashguard_ok(&[
            "list",
            "--db",
            &db,
            "create",
            bank,
            "--org",
            bank,
            "--jurisdiction",
            jurisdiction,
        ]);
        hashguard_ok(&["list", "--db", &db, "import", bank, &s(&list)]);
    }
    let table = dir.join("table");
    let key = dir.join("opening.key");
    hashguard_ok(&[
        "table",
        "build",
        "--db",
        &db,
        "--out",
        &s(&table),
        "--key",
        &s(&key),
        "--shards",
        "2",
    ]);
    (db, table, key)
}

/// `table verify` refuses every edit of the manifest, its summary and the build record that
/// can be detected without signatures, each with the check that caught it.
#[test]
fn table_verify_refuses_edited_manifests_and_build_records() {
    use hashguard_protocol::manifest::{Manifest, ManifestFields};
    let dir = tempfile::tempdir().unwrap();
    let (db, table, key) = built_table(dir.path());
    let verify = || {
        hashguard(&[
            "table",
            "verify",
            &s(&table),
            "--db",
            &db,
            "--key",
            &s(&key),
        ])
    };
    let ok = verify();
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.status.success(), "{text}{}", stderr(&ok));
    for line in [
        "manifest.txt: ok",
        "validity: ok (30 more day(s))",
        "chain: ok (epochs 1 to 1)",
        "build.json: ok",
        "build.json counts: ok",
        "shard key digests: ok (2 shards)",
        "opening key: ok",
        "DLEQ proofs: ok",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }

    // Each field of build.json, changed.
    let record_path = table.join("build.json");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let fields: Vec<String> = record.as_object().unwrap().keys().cloned().collect();
    assert!(fields.len() >= 16, "{fields:?}");
    for field in &fields {
        let mut edited = record.clone();
        let value = &mut edited[field.as_str()];
        *value = match value {
            // A smaller distance drops the 5 pairs at distance 10 from the consensus view.
            serde_json::Value::Number(n) if field == "distance" => (n.as_u64().unwrap() - 1).into(),
            serde_json::Value::Number(n) => (n.as_u64().unwrap() + 1).into(),
            serde_json::Value::String(t) if field == "params" => {
                (if t == "v1" { "lite" } else { "v1" }).into()
            }
            serde_json::Value::String(t) if field == "policy" => {
                (if t == "silent" { "intervene" } else { "silent" }).into()
            }
            serde_json::Value::Array(items) if field == "banks" => {
                items.reverse();
                value.clone()
            }
            // The pruned-key histogram: one more key in its first bucket.
            serde_json::Value::Array(items) if items.first().is_some_and(|v| v.is_u64()) => {
                items[0] = (items[0].as_u64().unwrap() + 1).into();
                value.clone()
            }
            serde_json::Value::Array(items) => {
                let first = items[0]
                    .as_str()
                    .unwrap()
                    .replace('0', "1")
                    .replace('a', "b");
                items[0] = if first == items[0] {
                    "00".repeat(32).into()
                } else {
                    first.into()
                };
                value.clone()
            }
            other => panic!("{field}: unexpected {other}"),
        };
        std::fs::write(&record_path, serde_json::to_vec_pretty(&edited).unwrap()).unwrap();
        let out = verify();
        assert_eq!(
            out.status.code(),
            Some(1),
            "an edit of build.json's {field} passed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("FAILED"));
    }
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();

    // manifest.txt that says something else.
    let summary_path = table.join("manifest.txt");
    let summary = std::fs::read_to_string(&summary_path).unwrap();
    std::fs::write(&summary_path, summary.replace("epoch 1 ", "epoch 7 ")).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("manifest.txt: FAILED"));
    std::fs::write(&summary_path, &summary).unwrap();

    // Edited manifests (with a matching manifest.txt, as a forger would write it).
    let manifest_path = table.join("manifest.bin");
    let original = std::fs::read(&manifest_path).unwrap();
    let manifest = Manifest::decode(&original).unwrap();
    let write_and_verify = |bytes: &[u8], text: &str| {
        std::fs::write(&manifest_path, bytes).unwrap();
        std::fs::write(&summary_path, text).unwrap();
        let out = verify();
        std::fs::write(&manifest_path, &original).unwrap();
        std::fs::write(&summary_path, &summary).unwrap();
        out
    };
    // Edits a valid manifest can carry: re-encoded through the checking constructor.
    let with = |edit: &dyn Fn(&mut ManifestFields)| {
        let mut fields = manifest.clone().into_fields();
        edit(&mut fields);
        let edited = Manifest::new(fields).unwrap();
        write_and_verify(&edited.encode(), &edited.to_string())
    };
    for (what, edit, caught_by) in [
        (
            "a later epoch",
            &(|m: &mut ManifestFields| {
                m.epoch = 2;
                m.prev_manifest_hash = [7; 32];
            }) as &dyn Fn(&mut ManifestFields),
            "chain: FAILED",
        ),
        (
            "a longer window",
            &|m: &mut ManifestFields| m.not_after += 86_400,
            "build.json: FAILED",
        ),
        (
            "an earlier start",
            &|m: &mut ManifestFields| m.not_before -= 1,
            "build.json: FAILED",
        ),
        (
            "an expired window",
            &|m: &mut ManifestFields| {
                m.not_before = 1_000;
                m.not_after = 2_000;
            },
            "validity: FAILED: expired",
        ),
    ] {
        let out = with(edit);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(1), "{what} passed:\n{text}");
        assert!(
            text.contains(caught_by),
            "{what}: {caught_by} missing from\n{text}"
        );
    }
    // Edits no Manifest value can hold, so a forger writes the bytes: the wire layout is
    // magic (8), version (2), deployment id (16), epoch (u32 LE at 26), not_before (u64 LE at
    // 30), not_after (u64 LE at 38), prev_manifest_hash (32 at 46).
    let patched = |at: usize, bytes: &[u8]| {
        let mut b = original.clone();
        b[at..at + bytes.len()].copy_from_slice(bytes);
        b
    };
    assert_eq!(original[26..30], manifest.epoch().to_le_bytes());
    assert_eq!(original[30..38], manifest.not_before().to_le_bytes());
    for (what, bytes, reason) in [
        ("epoch 0", patched(26, &0u32.to_le_bytes()), "epoch 0"),
        (
            "not_after before not_before",
            patched(38, &(manifest.not_before() - 1).to_le_bytes()),
            "validity window",
        ),
        (
            "a previous hash at epoch 1",
            patched(46, &[1; 32]),
            "prev_manifest_hash of epoch 1",
        ),
    ] {
        let out = write_and_verify(&bytes, &summary);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{what} passed: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(reason), "{what}: {}", stderr(&out));
    }
    assert!(verify().status.success());

    // `| head -0`: the report goes nowhere, quietly.
    assert_quiet_on_closed_pipe(&["table", "verify", &s(&table), "--db", &db]);
}

/// `match --hashes` writes each chunk of results before searching the next: at radius 256
/// (every pair matches) the first line comes while memory holds one chunk, not every pair.
#[cfg(target_os = "linux")]
#[test]
fn hash_line_matches_are_streamed() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut r = hashguard_testsupport::TestGen::seeded(12);
    let mut text = |n: usize| -> String { (0..n).map(|_| hex(r.code()) + "\n").collect() };
    let list = dir.path().join("list.txt");
    let queries = dir.path().join("queries.txt");
    std::fs::write(&list, text(5_000)).unwrap();
    std::fs::write(&queries, text(5_000)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args([
            "match",
            "--list",
            &s(&list),
            "--hashes",
            &s(&queries),
            "--radius",
            "256",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert!(first.starts_with("1,"), "{first:?}");
    // 25 million pairs would take about 600 MB as results; the child is now blocked writing.
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(
        peak_kb < 200_000,
        "peak resident memory {peak_kb} kB before the first line"
    );
}

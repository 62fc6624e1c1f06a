//! Acceptance for list files that repeat values: `hashguard match --list` finds the same matches
//! as Meta's python-threatexchange (PyPI `threatexchange`, its `threatexchange match` CLI with
//! the list as a `local_file` collaboration, run by `tools/oracle/pytx_match.py`) on the PDQ
//! reference images, for a list that repeats lines.
//!
//! The oracle needs Python with `threatexchange` (`tools/setup.sh` makes `.venv`). Without it the
//! test says SKIPPED, unless `HASHGUARD_REQUIRE_ORACLE=1` (set by `.ci/run`), where a missing
//! oracle is a failure. pytx keeps its state in a temporary directory (HOME, TX_STATEDIR and the
//! state directory all point there), so the test touches nothing outside it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const TEST: &str = "repeated_list_lines_match_like_python_threatexchange";

fn pytx_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HASHGUARD_ORACLE_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import threatexchange.cli.main"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// The oracle's Python, or `None` after saying the test is skipped (a failure when
/// `HASHGUARD_REQUIRE_ORACLE=1`).
fn pytx_or_skip(test: &str) -> Option<PathBuf> {
    let python = pytx_python();
    if python.is_none() {
        let required = std::env::var("HASHGUARD_REQUIRE_ORACLE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "HASHGUARD_REQUIRE_ORACLE=1 but no Python with threatexchange was found \
             (set HASHGUARD_ORACLE_PYTHON or run tools/setup.sh)"
        );
        hashguard_testsupport::skipped(test, "no Python with threatexchange");
    }
    python
}

/// `hash` with its first `bits` bits flipped: a value at exactly that distance.
fn flipped(hash: &str, bits: usize) -> String {
    let mut nibbles: Vec<u8> = hash
        .chars()
        .map(|c| c.to_digit(16).unwrap() as u8)
        .collect();
    for bit in 0..bits {
        nibbles[bit / 4] ^= 8 >> (bit % 4);
    }
    nibbles
        .iter()
        .map(|n| char::from_digit(u32::from(*n), 16).unwrap())
        .collect()
}

#[test]
fn repeated_list_lines_match_like_python_threatexchange() {
    let Some(data) = common::testdata(TEST) else {
        return;
    };
    let Some(python) = pytx_or_skip(TEST) else {
        return;
    };
    let pdq = data.join("pdq");
    // The reference hash and quality of every image, by its path under pdq/.
    let reference: BTreeMap<String, (String, u8)> = common::data_lines(&pdq.join("expected.txt"))
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[2].to_string(), (f[0].to_string(), f[1].parse().unwrap()))
        })
        .collect();
    let hash_of = |name: &str| reference[name].0.clone();

    // A local_file list that repeats values: lines repeated verbatim, two images with one hash
    // (aaa-orig.jpg and bridge-1-original.jpg are the same file), and values at distance 31
    // (matches) and 32 (does not) from a reference image's hash.
    let aaa = hash_of("images/bridge-mods/aaa-orig.jpg");
    let c = hash_of("images/misc-images/c.png");
    let rot90 = hash_of("images/reg-test-input/dih/bridge-2-rotate-90.jpg");
    let values = [
        aaa.clone(),
        c.clone(),
        hash_of("images/reg-test-input/labelme-subset/q0291.jpg"),
        aaa.clone(),
        rot90.clone(),
        hash_of("images/bridge-mods/square-128x128.jpg"),
        hash_of("images/reg-test-input/dih/bridge-1-original.jpg"),
        flipped(&hash_of("images/misc-images/wee.jpg"), 31),
        rot90,
        flipped(
            &hash_of("images/python-threatexchange/letterboxed_sample-b.jpg"),
            32,
        ),
        c,
        aaa,
    ];
    let distinct: std::collections::BTreeSet<&String> = values.iter().collect();
    let repeats = values.len() - distinct.len();
    assert!(repeats >= 4, "the list must repeat values");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("standin-repeats.txt");
    let text: String = values.iter().map(|v| format!("pdq {v}\n")).collect();
    std::fs::write(&list, text).unwrap();
    let images: Vec<PathBuf> = reference.keys().map(|name| pdq.join(name)).collect();
    let image_args: Vec<&str> = images.iter().map(|p| p.to_str().unwrap()).collect();

    // hashguard: one line per (image, entry); the distances per image.
    let mut args = vec!["match", "--list", list.to_str().unwrap()];
    args.extend(&image_args);
    let out = common::hashguard(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{repeats} line(s) repeat a value")),
        "the merge is reported: {stderr}"
    );
    let mut ours: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[3], "pdq", "{line}");
        ours.entry(f[0].to_string())
            .or_default()
            .push(f[4].parse().unwrap());
    }

    // python-threatexchange, its state in the temporary directory only.
    let state = dir.path().join("pytx-state");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/oracle/pytx_match.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&state)
        .arg(&list)
        .args(&images)
        .env("HOME", dir.path())
        .env("TX_STATEDIR", &state)
        .env("TX_VERBOSE", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut compared = 0;
    let mut matched = 0;
    let mut excluded = Vec::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "{line}");
        let path = Path::new(f[0]);
        let name = path.strip_prefix(&pdq).unwrap().to_str().unwrap();
        let (want_hash, want_quality) = &reference[name];
        // pytx hashes some images differently from the reference (it hands palette, CMYK and
        // 1-bit pixels to pdqhash without converting them to RGB): the list is not what differs
        // there, so those images are left out, and named.
        if f[1] != want_hash || f[2].parse::<u8>().unwrap() != *want_quality {
            excluded.push(name.to_string());
            ours.remove(f[0]);
            continue;
        }
        let theirs: Vec<u32> = match f[3] {
            "-" | "unhashable" => Vec::new(),
            d => d.split(',').map(|d| d.parse().unwrap()).collect(),
        };
        let mut mine = ours.remove(f[0]).unwrap_or_default();
        mine.sort_unstable();
        assert_eq!(
            mine, theirs,
            "{name}: the distances of the matched list entries, hashguard vs python-threatexchange"
        );
        compared += 1;
        matched += usize::from(!theirs.is_empty());
    }
    assert!(
        ours.is_empty(),
        "hashguard matched images pytx was not asked about: {ours:?}"
    );
    assert!(
        compared + excluded.len() == reference.len() && excluded.len() <= 4,
        "compared {compared}, excluded {excluded:?}"
    );
    assert!(
        matched >= 10 && matched + 5 <= compared,
        "some images match and some do not: {matched} of {compared}"
    );
    eprintln!(
        "{compared} reference images: the same matches as python-threatexchange ({matched} \
         matched) on a list of {} lines with {repeats} repeats; left out where pytx's own hash \
         differs from the reference: {}",
        values.len(),
        excluded.join(", ")
    );
}

//! Acceptance: a differential test against Meta's C++ PDQ reference, as compiled into the PyPI
//! package `pdqhash`, on 400+ images that the test generates (tools/oracle).
//!
//! Two oracles, both from the package:
//! - the C++ reference pipeline itself (`fillFloatLumaFromRGB` + `pdqHash256FromFloatLuma`,
//!   called through ctypes) on Pillow's RGB pixels: `hashguard hash` must equal it on every image;
//! - `pdqhash.compute()`, whose luma is computed in float64 and rounded to float32 (not the C++
//!   order): our `hash_luma` fed the same float64-rounded luma must equal it on every image.
//!
//! The oracle needs Python with `pdqhash`, `numpy` and `Pillow` (`.ci/run` makes a virtual
//! environment at `.venv`). Without it the test says SKIPPED, unless `HASHGUARD_REQUIRE_ORACLE=1`
//! (set by `.ci/run`), where a missing oracle is a failure.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use hashguard_pdq::{LumaImage, PdqHasher};

fn oracle_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HASHGUARD_ORACLE_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", "import pdqhash, numpy, PIL"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(python);
        }
    }
    None
}

/// The oracle's Python, or `None` after saying the test is skipped (a failure when
/// `HASHGUARD_REQUIRE_ORACLE=1`).
fn oracle_or_skip(test: &str) -> Option<PathBuf> {
    let python = oracle_python();
    if python.is_none() {
        let required = std::env::var("HASHGUARD_REQUIRE_ORACLE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "HASHGUARD_REQUIRE_ORACLE=1 but no Python with pdqhash was found \
             (set HASHGUARD_ORACLE_PYTHON or create .venv)"
        );
        hashguard_testsupport::skipped(test, "no Python with pdqhash");
    }
    python
}

fn run_generator(python: &PathBuf, script: &str, out: &std::path::Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/oracle")
        .join(script);
    let status = Command::new(python).arg(&script).arg(out).status().unwrap();
    assert!(status.success(), "{} failed", script.display());
}

#[test]
fn exif_orientation_matches_pillow_exif_transpose() {
    let Some(python) = oracle_or_skip("exif_orientation_matches_pillow_exif_transpose") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_generator(&python, "make_exif_corpus.py", dir.path());
    let images = dir.path().join("images");
    let stored = common::hashguard_ok(&["hash", images.to_str().unwrap()]);
    let turned = common::hashguard_ok(&["hash", "--exif-orient", images.to_str().unwrap()]);
    let expected = std::fs::read_to_string(dir.path().join("expected.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = expected.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 8);
    for ((row, plain), oriented) in rows.iter().zip(stored.lines()).zip(turned.lines()) {
        let (hash, _, path) = common::csv_fields(plain);
        assert!(path.ends_with(row[0]), "{path} vs {}", row[0]);
        assert_eq!(hash, row[1], "{}: stored pixels", row[0]);
        let (hash, _, _) = common::csv_fields(oriented);
        assert_eq!(hash, row[2], "{}: after the EXIF orientation", row[0]);
    }
}

#[test]
fn generated_images_equal_the_cpp_reference() {
    let Some(python) = oracle_or_skip("generated_images_equal_the_cpp_reference") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_generator(&python, "make_differential_corpus.py", dir.path());

    // file -> (reference hash, reference quality, pdqhash hash, pdqhash quality)
    let mut expected: HashMap<String, [String; 4]> = HashMap::new();
    for line in std::fs::read_to_string(dir.path().join("expected.tsv"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{line}");
        expected.insert(
            f[0].to_string(),
            [f[1], f[2], f[3], f[4]].map(str::to_string),
        );
    }
    assert!(expected.len() >= 300, "only {} images", expected.len());

    let images = dir.path().join("images");
    let stdout = common::hashguard_ok(&["hash", images.to_str().unwrap()]);
    let mut compared = 0;
    let mut wrapper_disagrees = 0;
    let mut hasher = PdqHasher::new();
    for line in stdout.lines() {
        let (hash, quality, path) = common::csv_fields(line);
        let name = path.rsplit('/').next().unwrap();
        let want = &expected[name];
        assert_eq!(
            (hash, quality),
            (want[0].as_str(), want[1].as_str()),
            "{name}: hashguard vs the C++ reference"
        );

        // The wrapper's float64 luma, rounded to float32, through our luma entry point.
        let bytes = std::fs::read(path).unwrap();
        let img = hashguard_media::decode(&bytes, &Default::default()).unwrap();
        let luma: Vec<f32> = img
            .rgb
            .chunks_exact(3)
            .map(|p| (p[0] as f64 * 0.299 + p[1] as f64 * 0.587 + p[2] as f64 * 0.114) as f32)
            .collect();
        let ours = hasher.hash_luma(&LumaImage::new(&luma, img.width, img.height).unwrap());
        assert_eq!(
            (ours.hash.to_string(), ours.quality.to_string()),
            (want[2].clone(), want[3].clone()),
            "{name}: hash_luma vs pdqhash.compute on the same float64-rounded luma"
        );
        if want[0] != want[2] || want[1] != want[3] {
            wrapper_disagrees += 1;
        }
        compared += 1;
    }
    assert_eq!(compared, expected.len());
    eprintln!(
        "{compared} images identical to the C++ reference and to pdqhash.compute on its own \
         luma; pdqhash.compute differs from the C++ float32 luma pipeline on {wrapper_disagrees}"
    );
}

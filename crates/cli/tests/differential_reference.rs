//! Acceptance: a differential test against Meta's C++ PDQ reference, as compiled into the PyPI
//! package `pdqhash`, on 400+ images that the test generates (tools/oracle), and on large images
//! (1,500 to 5,000 px) of the kind issue 11 reported, where intermediates are compared too.
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

use hashguard_pdq::{LumaImage, PdqHasher, RgbImage};

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

/// A generated corpus's answers for one image, from `expected.tsv`.
struct Expected {
    /// The C++ reference pipeline (float32 luma): hash and quality.
    reference: (String, String),
    /// `pdqhash.compute()` (float64-rounded luma): hash and quality.
    wrapper: (String, String),
}

/// Runs a corpus generator into a fresh directory and reads its `expected.tsv`.
fn generate(python: &PathBuf, script: &str) -> (tempfile::TempDir, HashMap<String, Expected>) {
    let dir = tempfile::tempdir().unwrap();
    run_generator(python, script, dir.path());
    let mut expected = HashMap::new();
    for line in std::fs::read_to_string(dir.path().join("expected.tsv"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 6, "{line}");
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        expected.insert(
            f[0].to_string(),
            Expected {
                reference: pair(f[1], f[2]),
                wrapper: pair(f[3], f[4]),
            },
        );
    }
    (dir, expected)
}

/// `pdqhash.compute()`'s luma: float64 products and sums, left to right, rounded to float32.
fn wrapper_luma(rgb: &[u8]) -> Vec<f32> {
    rgb.chunks_exact(3)
        .map(|p| (p[0] as f64 * 0.299 + p[1] as f64 * 0.587 + p[2] as f64 * 0.114) as f32)
        .collect()
}

/// The C++ reference's intermediates for one image (`floats/NAME.f32` of make_large_corpus.py):
/// 64x64 buffer and 16x16 coefficients on the reference's float32 luma, then on the
/// float64-rounded luma of `pdqhash.compute()`.
struct ReferenceFloats {
    buffer64: Vec<u32>,
    coefficients: Vec<u32>,
    wrapper_buffer64: Vec<u32>,
    wrapper_coefficients: Vec<u32>,
}

fn read_reference_floats(path: &std::path::Path) -> ReferenceFloats {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), 4 * 2 * (4096 + 256), "{}", path.display());
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (ours, wrapper) = words.split_at(4096 + 256);
    ReferenceFloats {
        buffer64: ours[..4096].to_vec(),
        coefficients: ours[4096..].to_vec(),
        wrapper_buffer64: wrapper[..4096].to_vec(),
        wrapper_coefficients: wrapper[4096..].to_vec(),
    }
}

/// Asserts two float arrays are the same bits; the message names the stage and the first
/// differing element (row, column in a `width`-wide matrix).
fn assert_same_bits(ours: &[f32], reference: &[u32], width: usize, what: &str) {
    let differing: Vec<usize> = (0..reference.len())
        .filter(|&k| ours[k].to_bits() != reference[k])
        .collect();
    if let Some(&k) = differing.first() {
        panic!(
            "{what}: {} of {} values differ from the C++ reference; first at [{}][{}]: ours {:e} \
             ({:#010x}), reference {:e} ({:#010x})",
            differing.len(),
            reference.len(),
            k / width,
            k % width,
            ours[k],
            ours[k].to_bits(),
            f32::from_bits(reference[k]),
            reference[k]
        );
    }
}

/// Checks `hashguard hash` on every image of a generated corpus against both oracles and, with
/// `intermediates` (the generator wrote `floats/`), our 64x64 buffers and coefficients against
/// the C++ ones. The in-process checks run on all cores. Returns (images compared, images where the two oracles'
/// hashes differ).
fn check_corpus(
    dir: &std::path::Path,
    expected: &HashMap<String, Expected>,
    intermediates: bool,
) -> (usize, usize) {
    let images = dir.join("images");
    let stdout = common::hashguard_ok(&["hash", images.to_str().unwrap()]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expected.len(), "one line per image");
    for line in &lines {
        let (hash, quality, path) = common::csv_fields(line);
        let name = path.rsplit('/').next().unwrap();
        let want = &expected[name];
        assert_eq!(
            (hash, quality),
            (want.reference.0.as_str(), want.reference.1.as_str()),
            "{name}: hashguard vs the C++ reference"
        );
    }

    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut hasher = PdqHasher::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(line) = lines.get(i) else { break };
                    let (_, _, path) = common::csv_fields(line);
                    check_image(&mut hasher, dir, path, expected, intermediates);
                }
            });
        }
    });
    let disagree = expected
        .values()
        .filter(|e| e.reference != e.wrapper)
        .count();
    (lines.len(), disagree)
}

/// The in-process checks of one image (see [`check_corpus`]).
fn check_image(
    hasher: &mut PdqHasher,
    dir: &std::path::Path,
    path: &str,
    expected: &HashMap<String, Expected>,
    intermediates: bool,
) {
    let name = path.rsplit('/').next().unwrap();
    let want = &expected[name];
    let bytes = std::fs::read(path).unwrap();
    let img = hashguard_media::decode(&bytes, &Default::default()).unwrap();
    let luma = wrapper_luma(&img.rgb);
    let luma_image = LumaImage::new(&luma, img.width, img.height).unwrap();
    if intermediates {
        // Stage by stage, so that a difference names the first stage where it appears.
        let floats = read_reference_floats(&dir.join("floats").join(format!("{name}.f32")));
        let rgb = RgbImage::new(&img.rgb, img.width, img.height).unwrap();
        let stage = |s: &str| format!("{name}: {s}");
        assert_same_bits(
            &hasher.downscaled_rgb(&rgb),
            &floats.buffer64,
            64,
            &stage("64x64 buffer (luma, Jarosz filter, decimation)"),
        );
        assert_same_bits(
            &hasher.floats_rgb(&rgb).coefficients,
            &floats.coefficients,
            16,
            &stage("DCT coefficients"),
        );
        assert_same_bits(
            &hasher.downscaled_luma(&luma_image),
            &floats.wrapper_buffer64,
            64,
            &stage("64x64 buffer of pdqhash.compute's luma (Jarosz filter, decimation)"),
        );
        assert_same_bits(
            &hasher.floats_luma(&luma_image).coefficients,
            &floats.wrapper_coefficients,
            16,
            &stage("DCT coefficients of pdqhash.compute's luma"),
        );
    }
    // The wrapper's float64 luma, rounded to float32, through our luma entry point.
    let ours = hasher.hash_luma(&luma_image);
    assert_eq!(
        (ours.hash.to_string(), ours.quality.to_string()),
        want.wrapper,
        "{name}: hash_luma vs pdqhash.compute on the same float64-rounded luma"
    );
}

#[test]
fn generated_images_equal_the_cpp_reference() {
    let Some(python) = oracle_or_skip("generated_images_equal_the_cpp_reference") else {
        return;
    };
    let (dir, expected) = generate(&python, "make_differential_corpus.py");
    assert!(expected.len() >= 300, "only {} images", expected.len());
    let (compared, wrapper_disagrees) = check_corpus(dir.path(), &expected, false);
    eprintln!(
        "{compared} images identical to the C++ reference and to pdqhash.compute on its own \
         luma; pdqhash.compute differs from the C++ float32 luma pipeline on {wrapper_disagrees}"
    );
}

/// Issue 11: large images of smooth periodic structure plus noise, where the two coefficients
/// next to the median are often closer than the float rounding of the filter's running sums.
/// Hashes alone catch a wrong float operation on a few percent of these; the 64x64 buffers and
/// coefficients compared bit for bit catch it on nearly every one, and say which stage it is in.
#[test]
fn large_periodic_images_equal_the_cpp_reference() {
    let Some(python) = oracle_or_skip("large_periodic_images_equal_the_cpp_reference") else {
        return;
    };
    let (dir, expected) = generate(&python, "make_large_corpus.py");
    assert!(expected.len() >= 20, "only {} images", expected.len());
    let (compared, wrapper_disagrees) = check_corpus(dir.path(), &expected, true);
    // What the issue reported: on some of these the luma conventions of the two oracles swap the
    // two bits next to the median. The generator's images are fixed by its seed (PNG, pixels
    // from exact float32 operations), so this holds wherever its numpy stream is the same.
    assert!(
        wrapper_disagrees >= 1,
        "no image where pdqhash.compute and the C++ pipeline differ: the corpus no longer \
         covers the case of issue 11"
    );
    eprintln!(
        "{compared} large images identical to the C++ reference (hash, quality, 64x64 buffer, \
         coefficients) and to pdqhash.compute on its own luma; pdqhash.compute differs from \
         the C++ float32 luma pipeline on {wrapper_disagrees}"
    );
}

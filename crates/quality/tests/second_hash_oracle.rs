//! The second-hash candidates against their reference, Python `imagehash` (tools/oracle/
//! second_hash_oracle.py, installed into `.venv` by tools/setup.sh), on benign images: generated
//! ones, the demo images of assets/demo and, when present, the shared PDQ test images.
//!
//! - **Exact**: both sides hash the same pixels, already at each hash's own size (Pillow's
//!   resize to an equal size is a copy), so only the hash arithmetic is compared: every bit must
//!   agree, except whash bits whose block ties the median exactly (in integers: a flat image has
//!   many), where pywt's float rounding and ours decide a tie differently.
//! - **End to end**: both sides start from the same greyscale derivative (<= 96 px) and resize
//!   it themselves (Pillow's LANCZOS vs `image`'s Lanczos3, which round differently): the mean
//!   distance must stay under 1.5 bits per 64 and no image may differ by more than a quarter of
//!   the bits.
//!
//! Without the oracle the test says SKIPPED, unless `HASHGUARD_REQUIRE_ORACLE=1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hashguard_quality::{generated::generated, second_hash as sh, transforms};
use image::imageops::{self, FilterType};
use image::GrayImage;

fn oracle_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HASHGUARD_ORACLE_PYTHON").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|python| {
        Command::new(python)
            .args(["-c", "import imagehash, pywt, scipy, PIL"])
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The benign images: generated, assets/demo, and the shared PDQ test images when present.
fn images() -> Vec<(String, image::RgbImage)> {
    let mut out: Vec<(String, image::RgbImage)> = (0..30u64)
        .map(|s| {
            let (w, h) = [(640, 480), (300, 500), (1024, 768), (120, 90)][s as usize % 4];
            (format!("gen{s:02}"), generated(s, w, h))
        })
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = std::env::var_os("HASHGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/testdata"))
        .join("pdq/images");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root.join("assets/demo"))
        .into_iter()
        .chain(walkdir::WalkDir::new(&shared))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for (i, f) in files.iter().enumerate() {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        // Videos, text and formats the decoder refuses are not images to hash.
        if let Ok(img) = transforms::decode(&bytes) {
            out.push((format!("file{i:03}"), img));
        }
    }
    out
}

/// The whash bits (first bit most significant) whose 4x4 block sum differs from the median of
/// the 64 block sums, in exact integer arithmetic (the median of an even count doubled: the sum
/// of the two middle values).
fn whash_untied(px: &[u8; 1024]) -> u64 {
    let sums: Vec<u32> = (0..64)
        .map(|b| {
            let (by, bx) = (b / 8, b % 8);
            (0..16)
                .map(|i| u32::from(px[(by * 4 + i / 4) * 32 + bx * 4 + i % 4]))
                .sum()
        })
        .collect();
    let mut sorted = sums.clone();
    sorted.sort_unstable();
    let twice_median = sorted[31] + sorted[32];
    sums.iter().fold(0u64, |acc, &s| {
        (acc << 1) | u64::from(2 * s != twice_median)
    })
}

fn save(dir: &Path, name: &str, img: &GrayImage) {
    img.save(dir.join(format!("{name}.png"))).unwrap();
}

fn hex(words: &[u64]) -> String {
    words.iter().map(|w| format!("{w:016x}")).collect()
}

#[test]
fn candidates_agree_with_imagehash() {
    let Some(python) = oracle_python() else {
        let required = std::env::var("HASHGUARD_REQUIRE_ORACLE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "HASHGUARD_REQUIRE_ORACLE=1 but no Python with imagehash was found \
             (tools/setup.sh makes .venv, or set HASHGUARD_ORACLE_PYTHON)"
        );
        eprintln!("SKIPPED candidates_agree_with_imagehash: no Python with imagehash");
        return;
    };
    let dir = std::env::temp_dir().join(format!("hashguard-second-hash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let images = images();
    assert!(images.len() >= 30);
    // Rust's values for each file the oracle will read: (kind, hex).
    let mut ours: HashMap<String, (&str, String, [String; 5])> = HashMap::new();
    // Per w32 file: the mask of whash bits whose block is not tied with the median.
    let mut untied: HashMap<String, u64> = HashMap::new();
    for (name, img) in &images {
        let grey = sh::derivative(img);
        let sized = |w, h| imageops::resize(&grey, w, h, FilterType::Lanczos3);
        let p32 = sized(32, 32);
        let px32: &[u8; 1024] = p32.as_raw().as_slice().try_into().unwrap();
        let h98 = sized(9, 8);
        let v89 = sized(8, 9);
        let h1716 = sized(17, 16);
        untied.insert(format!("{name}.w32.png"), whash_untied(px32));
        for (suffix, img, kind, value) in [
            ("p32", &p32, "phash", hex(&[sh::phash_32(px32)])),
            ("w32", &p32, "whash", hex(&[sh::whash_32(px32)])),
            (
                "h98",
                &h98,
                "dhash",
                hex(&[sh::dhash_9x8(h98.as_raw().as_slice().try_into().unwrap())]),
            ),
            (
                "v89",
                &v89,
                "dhash_vertical",
                hex(&[sh::dhash_vertical_8x9(
                    v89.as_raw().as_slice().try_into().unwrap(),
                )]),
            ),
            (
                "h1716",
                &h1716,
                "dhash16",
                hex(&sh::dhash16_17x16(
                    h1716.as_raw().as_slice().try_into().unwrap(),
                )),
            ),
        ] {
            let file = format!("{name}.{suffix}");
            save(&dir, &file, img);
            ours.insert(format!("{file}.png"), (kind, value, Default::default()));
        }
        let file = format!("{name}.vd");
        save(&dir, &file, &grey);
        let e2e = [
            hex(&[sh::phash(&grey)]),
            hex(&[sh::whash(&grey)]),
            hex(&[sh::dhash(&grey)]),
            hex(&[sh::dhash_vertical(&grey)]),
            hex(&sh::dhash16(&grey)),
        ];
        ours.insert(format!("{file}.png"), ("e2e", String::new(), e2e));
    }
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/oracle/second_hash_oracle.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg("hash")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let columns = ["phash", "whash", "dhash", "dhash_vertical", "dhash16"];
    let mut exact = 0;
    let mut e2e: Vec<Vec<u32>> = vec![Vec::new(); 5];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 7, "{line}"); // the profiles (last) are checked by crates/hashing
        let (kind, value, both) = &ours[f[0]];
        if *kind == "e2e" {
            for c in 0..5 {
                let a = u128::from_str_radix(&both[c][..both[c].len().min(32)], 16).unwrap();
                let b = u128::from_str_radix(&f[c + 1][..f[c + 1].len().min(32)], 16).unwrap();
                let mut d = (a ^ b).count_ones();
                if both[c].len() > 32 {
                    let a = u128::from_str_radix(&both[c][32..], 16).unwrap();
                    let b = u128::from_str_radix(&f[c + 1][32..], 16).unwrap();
                    d += (a ^ b).count_ones();
                }
                e2e[c].push(d);
            }
        } else {
            let c = columns.iter().position(|k| k == kind).unwrap();
            if *kind == "whash" {
                let mask = untied[f[0]];
                let (a, b) = (
                    u64::from_str_radix(value, 16).unwrap(),
                    u64::from_str_radix(f[c + 1], 16).unwrap(),
                );
                assert_eq!(a & mask, b & mask, "whash of {}: untied bits", f[0]);
            } else {
                assert_eq!(
                    value,
                    f[c + 1],
                    "{kind} of {}: ours vs imagehash on the same pixels",
                    f[0]
                );
            }
            exact += 1;
        }
    }
    assert_eq!(exact, 5 * images.len(), "every exact file was hashed");
    for (c, ds) in e2e.iter().enumerate() {
        assert_eq!(ds.len(), images.len());
        let bits = if c == 4 { 256.0 } else { 64.0 };
        let mean = ds.iter().map(|&d| f64::from(d)).sum::<f64>() / ds.len() as f64;
        let max = ds.iter().copied().max().unwrap_or(0);
        eprintln!(
            "end to end, {}: mean {mean:.2} bits, max {max} of {bits} over {} images",
            columns[c],
            ds.len()
        );
        assert!(mean <= 1.5 * bits / 64.0, "{}: mean {mean}", columns[c]);
        assert!(f64::from(max) <= bits / 4.0, "{}: max {max}", columns[c]);
    }
}

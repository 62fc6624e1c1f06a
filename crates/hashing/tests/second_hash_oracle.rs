//! The second hash against its references, through tools/oracle/second_hash_oracle.py
//! (installed into `.venv` by tools/setup.sh): Python `imagehash`'s `dhash` and
//! `dhash_vertical` for the gradients, and the profiles written from their definition in numpy;
//! on benign images:
//! generated ones, assets/demo and, when present, the shared PDQ test images.
//!
//! - **Exact**: the oracle hashes the very pixels ours are computed from, already resized to
//!   9x8, 8x9 and 64x64 (Pillow's resize to an equal size is a copy): every bit must agree.
//! - **End to end**: both start from the same greyscale derivative (<= 96 px) and resize it
//!   themselves (Pillow's LANCZOS and BILINEAR against `image`'s Lanczos3 and Triangle round
//!   and filter differently): the mean distance must stay at most 4 (of 192) and no image may
//!   differ by more than the match threshold.
//!
//! Without the oracle the test says SKIPPED, unless `HASHGUARD_REQUIRE_ORACLE=1`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use hashguard_hashing::second::{derivative, SecondHash, SECOND_MATCH_THRESHOLD};
use hashguard_hashing::{Hasher, Options};
use image::imageops::{self, FilterType};

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

/// Generated pictures (smooth waves, discs, texture) as PNG bytes, then the files.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for seed in 0..24u32 {
        let (w, h) = [(640, 480), (300, 500), (1024, 768), (120, 90)][seed as usize % 4];
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let s = seed as f32;
            let wave = ((fx * (2.0 + s * 0.7) + fy * (1.0 + s * 0.3)).sin() * 70.0) as i32;
            let disc = ((fx - 0.2 - 0.02 * s).powi(2) + (fy - 0.5).powi(2) < 0.05) as i32 * 80;
            let tex = ((x * 7 + y * 13 + seed * 31) % 29) as i32;
            let v = |c: i32| (c + wave + disc + tex).clamp(0, 255) as u8;
            image::Rgb([v(60 + seed as i32 * 7), v(120), v(200 - seed as i32 * 5)])
        });
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        out.push((format!("gen{seed:02}"), png.into_inner()));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = std::env::var_os("HASHGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/testdata"))
        .join("pdq/images");
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root.join("assets/demo"))
        .into_iter()
        .chain(walkdir::WalkDir::new(shared))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    files.sort();
    for (i, f) in files.iter().enumerate() {
        if let Ok(bytes) = std::fs::read(f) {
            out.push((format!("file{i:03}"), bytes));
        }
    }
    out
}

fn from_hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

#[test]
fn second_hash_agrees_with_imagehash() {
    let Some(python) = oracle_python() else {
        let required = std::env::var("HASHGUARD_REQUIRE_ORACLE").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "HASHGUARD_REQUIRE_ORACLE=1 but no Python with imagehash was found \
             (tools/setup.sh makes .venv, or set HASHGUARD_ORACLE_PYTHON)"
        );
        eprintln!("SKIPPED second_hash_agrees_with_imagehash: no Python with imagehash");
        return;
    };
    let dir = std::env::temp_dir().join(format!("hashguard-second-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hasher = Hasher::new(Options::default());
    // Per image: ours, from the pixels the oracle gets.
    let mut ours: HashMap<String, SecondHash> = HashMap::new();
    for (name, bytes) in inputs() {
        // What the hashing library computes from the file (the decoder PDQ uses)...
        let Ok(from_bytes) = hasher.second_hash_bytes(&bytes) else {
            continue; // a video or a format the decoder refuses
        };
        let decoded =
            hashguard_media::decode(&bytes, &hashguard_media::DecodeOptions::default()).unwrap();
        let grey = derivative(&decoded.rgb, decoded.width, decoded.height).unwrap();
        // ... is the hash of the derivative of the decoded pixels ...
        assert_eq!(from_bytes, SecondHash::of_derivative(&grey), "{name}");
        let h = imageops::resize(&grey, 9, 8, FilterType::Lanczos3);
        let v = imageops::resize(&grey, 8, 9, FilterType::Lanczos3);
        let p = imageops::resize(&grey, 64, 64, FilterType::Triangle);
        // ... and of its resized pixels, which the oracle reads.
        assert_eq!(
            from_bytes,
            SecondHash::from_resized(h.as_raw(), v.as_raw(), p.as_raw()),
            "{name}"
        );
        h.save(dir.join(format!("{name}.h98.png"))).unwrap();
        v.save(dir.join(format!("{name}.v89.png"))).unwrap();
        p.save(dir.join(format!("{name}.p64.png"))).unwrap();
        grey.save(dir.join(format!("{name}.vd.png"))).unwrap();
        ours.insert(name, from_bytes);
    }
    assert!(ours.len() >= 24, "only {} images", ours.len());
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
    let (mut exact, mut e2e) = (0, Vec::new());
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // name, phash, whash, dhash, dhash_vertical, dhash16, profiles
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 7, "{line}");
        let (name, kind) = f[0].trim_end_matches(".png").split_once('.').unwrap();
        let s = ours[name];
        let theirs = SecondHash {
            horizontal: from_hex(f[3]),
            vertical: from_hex(f[4]),
            profiles: u32::from_str_radix(f[6], 16).unwrap(),
        };
        match kind {
            "h98" => {
                assert_eq!(s.horizontal, theirs.horizontal, "{name}: dhash");
                exact += 1;
            }
            "v89" => {
                assert_eq!(s.vertical, theirs.vertical, "{name}: dhash_vertical");
                exact += 1;
            }
            "p64" => {
                assert_eq!(
                    s.profiles, theirs.profiles,
                    "{name}: profiles {:08x} against {:08x}",
                    s.profiles, theirs.profiles
                );
                exact += 1;
            }
            _ => e2e.push(s.distance(&theirs)),
        }
    }
    assert_eq!(exact, 3 * ours.len(), "every exact file was compared");
    assert_eq!(e2e.len(), ours.len());
    let mean = e2e.iter().map(|&d| f64::from(d)).sum::<f64>() / e2e.len() as f64;
    let max = e2e.iter().copied().max().unwrap_or(0);
    eprintln!(
        "end to end against the oracle (Pillow's resize): mean {mean:.2}, max {max} (of 192) \
         over {} images",
        e2e.len()
    );
    assert!(mean <= 4.0, "mean {mean}");
    assert!(max <= SECOND_MATCH_THRESHOLD, "max {max}");
}

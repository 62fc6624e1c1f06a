//! Acceptance: every reference image gives exactly its expected hash, quality and dihedral
//! hashes through `hashguard hash`, and the intermediate buffers equal the reference's.

mod common;

use std::collections::HashMap;

use common::{data_lines, hashguard, hashguard_ok, testdata};

#[test]
fn expected_hashes_and_qualities() {
    let Some(data) = testdata("expected_hashes_and_qualities") else {
        return;
    };
    let pdq = data.join("pdq");
    let expected = data_lines(&pdq.join("expected.txt"));
    assert!(
        expected.len() >= 47,
        "expected.txt has {} rows",
        expected.len()
    );
    let mut args = vec!["hash".to_string()];
    let mut want = HashMap::new();
    for line in &expected {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let path = pdq.join(fields[2]).display().to_string();
        want.insert(path.clone(), (fields[0].to_string(), fields[1].to_string()));
        args.push(path);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stdout = hashguard_ok(&args);
    let mut seen = 0;
    for line in stdout.lines() {
        let (hash, quality, path) = common::csv_fields(line);
        let (want_hash, want_quality) = &want[path];
        assert_eq!(
            (hash, quality),
            (want_hash.as_str(), want_quality.as_str()),
            "{path}"
        );
        seen += 1;
    }
    assert_eq!(seen, expected.len());
}

#[test]
fn expected_dihedral_hashes() {
    let Some(data) = testdata("expected_dihedral_hashes") else {
        return;
    };
    let pdq = data.join("pdq");
    let rows = data_lines(&pdq.join("expected_dihedral.txt"));
    assert!(!rows.is_empty());
    for row in rows {
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(f.len(), 10, "{row}");
        let path = pdq.join(f[9]).display().to_string();
        let out = hashguard(&["hash", "--format", "json", "--dihedral", &path]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["path"], path.as_str());
        assert_eq!(v["quality"].to_string(), f[0], "{path}");
        assert_eq!(v["pdq"], f[1], "{path}");
        let names = [
            "rot90",
            "rot180",
            "rot270",
            "flipx",
            "flipy",
            "flipplus1",
            "flipminus1",
        ];
        for (name, want) in names.iter().zip(&f[2..9]) {
            assert_eq!(v["dihedral"][name], *want, "{path} {name}");
        }
    }
}

fn float_bits_file(path: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            l.split_whitespace()
                .map(|t| u32::from_str_radix(t, 16).unwrap())
        })
        .collect()
}

#[test]
fn intermediate_buffers_match_reference() {
    let Some(data) = testdata("intermediate_buffers_match_reference") else {
        return;
    };
    let pdq = data.join("pdq");
    for (name, image) in [
        ("c.png", "images/misc-images/c.png"),
        (
            "random-26x28.png",
            "images/python-threatexchange/random-26x28.png",
        ),
        (
            "q0003.jpg",
            "images/reg-test-input/labelme-subset/q0003.jpg",
        ),
    ] {
        let bytes = std::fs::read(pdq.join(image)).unwrap();
        let decoded = hashguard_media::decode(&bytes, &Default::default()).unwrap();
        let view =
            hashguard_pdq::RgbImage::new(&decoded.rgb, decoded.width, decoded.height).unwrap();
        let luma_row0 =
            float_bits_file(&pdq.join(format!("intermediates/{name}.luma_row0_first64.txt")));
        let ours: Vec<u32> =
            hashguard_pdq::naive::luma_from_rgb(&decoded.rgb[..3 * luma_row0.len()])
                .iter()
                .map(|v| v.to_bits())
                .collect();
        assert_eq!(ours, luma_row0, "{name} luma");
        let buffer = float_bits_file(&pdq.join(format!("intermediates/{name}.buffer64x64.txt")));
        let mut hasher = hashguard_pdq::PdqHasher::new();
        let ours: Vec<u32> = hasher
            .downscaled_rgb(&view)
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(ours, buffer, "{name} 64x64 buffer");
        let dct = float_bits_file(&pdq.join(format!("intermediates/{name}.dct16x16.txt")));
        let ours: Vec<u32> = hasher
            .floats_rgb(&view)
            .coefficients
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(ours, dct, "{name} DCT");
    }
}

#[test]
fn videos_are_recognised_by_content_and_print_vpdq_lines() {
    let Some(data) = testdata("videos_are_recognised_by_content_and_print_vpdq_lines") else {
        return;
    };
    let video = data.join("vpdq/videos/test-padded-dimensions.mp4");
    // A misleading extension: recognition is by content.
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("clip.png");
    std::fs::copy(&video, &renamed).unwrap();
    let renamed = renamed.display().to_string();
    let stdout = hashguard_ok(&["hash", "--seconds-per-hash", "0", &renamed]);
    let reference = data_lines(&data.join("vpdq/sample-hashes/test-padded-dimensions.txt"));
    let ours: Vec<String> = stdout
        .lines()
        .map(|l| l.strip_suffix(&format!(",{renamed}")).unwrap().to_string())
        .collect();
    assert_eq!(ours, reference);

    let out = hashguard(&["hash", "--format", "json", &renamed]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let frames = v["vpdq"].as_array().unwrap();
    // 150 frames at 30 fps, one hash per second by default: frames 0, 30, ..., 120.
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[1]["frame"], 30);
    assert_eq!(frames[1]["timestamp"], 1.0);
}

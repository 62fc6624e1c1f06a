//! Acceptance: bad input gives one clear error per file, naming the file and the reason; the
//! command goes on with the other files, prints every good one, and exits 1. Nothing panics.

mod common;

use std::io::Cursor;
use std::path::Path;

fn encode(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG signature and IHDR declaring `width` x `height` RGB, with no image data.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // An IDAT with a few bytes of a zlib stream, and IEND: a header a real bomb would have.
    for (kind, data) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x63, 0x60][..]),
        (&b"IEND"[..], &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

/// A baseline JPEG whose SOF0 declares `width` x `height` (patched into a real JPEG).
fn jpeg_with_size(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = encode(image::ImageFormat::Jpeg, 16, 16);
    let sof = jpeg
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("baseline SOF0");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

fn gif_header(width: u16, height: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    // A 2-colour global palette, then one 1x1 frame, as a real file would start.
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    gif.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
    gif
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

#[test]
fn each_bad_file_gets_one_clear_error_and_the_rest_are_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let jpeg = encode(image::ImageFormat::Jpeg, 300, 200);
    let png = encode(image::ImageFormat::Png, 300, 200);
    let mut noise = vec![0u8; 4096];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for b in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    // (file, a word the reason must contain)
    let bad = [
        (write(d, "empty.jpg", b""), "empty"),
        (
            write(d, "truncated.jpg", &jpeg[..jpeg.len() / 2]),
            "truncated",
        ),
        (write(d, "truncated.png", &png[..png.len() / 2]), "png"),
        (write(d, "random.bin", &noise), "not a supported image"),
        (
            write(d, "text.txt", b"hello, this is not an image\n"),
            "not a supported image",
        ),
        (
            write(d, "text-named.png", b"hello, this is not an image\n"),
            "not a supported image",
        ),
        (write(d, "zero.png", &png_header(0, 10)), "png"),
        (write(d, "zero.jpg", &jpeg_with_size(0, 0)), "jpeg"),
        (write(d, "zero.gif", &gif_header(0, 0)), "gif"),
        (
            write(d, "huge.png", &png_header(100_000, 100_000)),
            "exceeds the limit",
        ),
        (
            write(d, "huge.jpg", &jpeg_with_size(65_000, 65_000)),
            "exceeds the limit",
        ),
        (
            write(d, "huge.gif", &gif_header(65_535, 65_535)),
            "exceeds the limit",
        ),
    ];
    let good = [
        write(d, "good.jpg", &jpeg),
        // A PNG named .jpg: formats are recognised by content, so this is fine.
        write(d, "png-named.jpg", &png),
        write(d, "good.bmp", &encode(image::ImageFormat::Bmp, 40, 30)),
        write(d, "good.tif", &encode(image::ImageFormat::Tiff, 40, 30)),
        write(d, "good.gif", &encode(image::ImageFormat::Gif, 40, 30)),
    ];
    let missing = d.join("does-not-exist.png").display().to_string();

    let mut args: Vec<&str> = vec!["hash"];
    args.extend(bad.iter().map(|(p, _)| p.as_str()));
    args.extend(good.iter().map(String::as_str));
    args.push(&missing);
    let out = common::hashguard(&args);

    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let printed: Vec<&str> = stdout
        .lines()
        .map(|l| l.splitn(3, ',').nth(2).unwrap())
        .collect();
    assert_eq!(printed, good.iter().map(String::as_str).collect::<Vec<_>>());

    let errors: Vec<&str> = stderr.lines().collect();
    // One line per bad file plus the missing one, then the summary.
    assert_eq!(errors.len(), bad.len() + 2, "{stderr}");
    for (path, word) in &bad {
        let matching: Vec<&&str> = errors
            .iter()
            .filter(|l| l.starts_with(&format!("hashguard: {path}: ")))
            .collect();
        assert_eq!(matching.len(), 1, "{path}: {stderr}");
        assert!(
            matching[0].to_lowercase().contains(word),
            "{path}: reason should mention {word:?}: {}",
            matching[0]
        );
    }
    assert!(errors
        .iter()
        .any(|l| l.starts_with(&format!("hashguard: {missing}: cannot read"))));
    assert_eq!(
        *errors.last().unwrap(),
        format!(
            "hashguard: {} of {} inputs failed",
            bad.len() + 1,
            args.len() - 1
        )
    );
}

#[test]
fn pixel_limit_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "img.png",
        &encode(image::ImageFormat::Png, 300, 200),
    );
    let out = common::hashguard(&["hash", "--max-pixels", "59999", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exceeds the limit of 59999 pixels"));
    let out = common::hashguard(&["hash", "--max-pixels", "60000", &path]);
    assert!(out.status.success());
}

#[test]
fn stdin_and_json_output() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let png = encode(image::ImageFormat::Png, 120, 90);
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(["hash", "--format", "json", "--dihedral", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&png).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], "-");
    assert_eq!(v["pdq"].as_str().unwrap().len(), 64);
    assert_eq!(v["dihedral"].as_object().unwrap().len(), 7);
    // --dihedral without JSON is refused rather than silently ignored.
    let out = common::hashguard(&["hash", "--dihedral", "-"]);
    assert_eq!(out.status.code(), Some(2));
}

//! The client's cost to prepare one attachment (issue 14), split into decode, hash (PDQ and the
//! visual derivative), voucher and encryption, one thread, through the SDK's real path: a
//! `Session` on a local deployment (`hashguard_server::sandbox`), `prepare` and
//! `build_vouchers`. The peer in the same run is the `image` crate's own JPEG decoder (pure
//! Rust, zune-jpeg), which an app would get by default, against our libjpeg-turbo (mozjpeg).
//!
//! ```text
//! cargo run --release -p hashguard-client --example client_prepare -- \
//!     [--photo JPEG] [--video FILE] [--runs N]
//! ```
//!
//! Without `--photo`, a 12-megapixel (4000 x 3000) JPEG is made from a photograph of the shared
//! test data (see `twelve_megapixels`). Without `--video`, no video is measured. `bench/client/run.sh` makes a 30 s
//! 1080p video with the `ffmpeg` command and runs the vouchers on all three of
//! curve25519-dalek's backends. Prints one Markdown table row per stage (median and minimum
//! over the runs, in milliseconds).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hashguard_client::{Session, SessionOptions};
use hashguard_server::sandbox::{Sandbox, SandboxOptions};

struct Args {
    photo: Option<PathBuf>,
    video: Option<PathBuf>,
    runs: usize,
}

fn args() -> Args {
    let mut out = Args {
        photo: None,
        video: None,
        runs: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--photo" => out.photo = it.next().map(PathBuf::from),
            "--video" => out.video = it.next().map(PathBuf::from),
            "--runs" => out.runs = it.next().and_then(|n| n.parse().ok()).unwrap_or(15).max(1),
            other => {
                eprintln!("unknown argument {other}; see the file's header");
                std::process::exit(2);
            }
        }
    }
    out
}

/// A 4000 x 3000 JPEG (quality 90) made from a real photograph of the shared test data
/// (`pdq/images/reg-test-input/dih/bridge-1-original.jpg`, upscaled, with fine noise so it
/// compresses like a camera's photo: several megabytes), or of synthetic scenery when the test
/// data is absent. PDQ's quality must reach 50 for the voucher to carry real probes; the bench
/// prints it.
fn twelve_megapixels() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let source = hashguard_testsupport::testdata_root()
        .join("pdq/images/reg-test-input/dih/bridge-1-original.jpg");
    let base = image::open(&source).ok().map(|i| {
        image::imageops::resize(&i.to_rgb8(), w, h, image::imageops::FilterType::Triangle)
    });
    if base.is_none() {
        eprintln!("{} is missing: synthetic scenery instead", source.display());
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state & 15) as f32 - 8.0;
        let pixel = match &base {
            Some(b) => b.get_pixel(x, y).0.map(f32::from),
            None => {
                let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
                let v = if ((fx * 12.0) as u32 + (fy * 9.0) as u32).is_multiple_of(2) {
                    60.0
                } else {
                    190.0
                };
                [v, v * 0.9, 255.0 - v]
            }
        };
        image::Rgb(pixel.map(|c| (c + noise).clamp(0.0, 255.0) as u8))
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encode the photo");
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and minimum in milliseconds.
fn summary(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (ms(v[v.len() / 2]), ms(v[0]))
}

fn row(what: &str, stage: &str, v: Vec<Duration>) {
    let (median, min) = summary(v);
    println!("| {what} | {stage} | {median:.1} | {min:.1} |");
}

async fn measure(
    session: &mut Session,
    what: &str,
    bytes: &[u8],
    runs: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let (mut decode, mut hash, mut voucher, mut encrypt, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut vouchers = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let prepared = session.prepare(bytes, None)?;
        let v_started = Instant::now();
        vouchers = session.build_vouchers(&prepared)?.len();
        let v = v_started.elapsed();
        total.push(started.elapsed());
        decode.push(prepared.timings.decode);
        hash.push(prepared.timings.hash);
        encrypt.push(prepared.timings.encrypt);
        voucher.push(v);
    }
    row(what, "decode", decode);
    row(what, "hash (PDQ + visual derivative)", hash);
    row(what, &format!("vouchers ({vouchers})"), voucher);
    row(what, "pad + encrypt + SHA-256", encrypt);
    row(what, "total", total);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let dir = tempfile::tempdir()?;
    let service = Sandbox::start(SandboxOptions::new(dir.path())).await?;
    let mut session = Session::register(
        service.base_url(),
        service.trust_anchors(),
        SessionOptions::default(),
    )
    .await?;
    session.refresh_table().await?;

    let photo = match &args.photo {
        Some(p) => std::fs::read(p)?,
        None => twelve_megapixels(),
    };
    let dims = image::ImageReader::new(std::io::Cursor::new(&photo))
        .with_guessed_format()?
        .into_dimensions()?;
    let quality = hashguard_client::media::analyse(&photo, 4076)?.frames[0]
        .as_ref()
        .map_or(0, |p| p.quality);
    println!(
        "curve25519-dalek backend: {}; photo {}x{} ({:.1} MB, PDQ quality {quality}{}); {} runs, one thread",
        hashguard_protocol::suite::field_backend(),
        dims.0,
        dims.1,
        photo.len() as f64 / 1e6,
        if quality >= 50 { ": real probes" } else { ": below 50, random probes only, not representative" },
        args.runs
    );
    println!();
    println!("| input | stage | median ms | min ms |");
    println!("|---|---|---:|---:|");
    measure(&mut session, "photo", &photo, args.runs).await?;

    // The peer: the `image` crate's JPEG decoder on the same file.
    let mut peer = Vec::new();
    for _ in 0..args.runs {
        let started = Instant::now();
        let decoded = image::load_from_memory_with_format(&photo, image::ImageFormat::Jpeg)?;
        std::hint::black_box(decoded);
        peer.push(started.elapsed());
    }
    row("photo", "peer: `image` crate decode (zune-jpeg)", peer);

    if let Some(video) = &args.video {
        let bytes = std::fs::read(video)?;
        // A video costs seconds; fewer runs keep the bench short.
        measure(
            &mut session,
            &format!("video ({:.1} MB)", bytes.len() as f64 / 1e6),
            &bytes,
            args.runs.min(3),
        )
        .await?;
    }
    Ok(())
}

//! The manifest's round trip and the transforms' determinism and geometry.

use hashguard_pdq::Hash256;
use hashguard_quality::corpus::{self, read_manifest, write_manifest, Entry};
use hashguard_quality::generated::generated;
use hashguard_quality::measure::floats;
use hashguard_quality::transforms::Transform;

#[test]
fn manifest_round_trips_paths_with_commas_and_quotes() {
    let pdq = floats(&generated(1, 128, 96)).expect("hash").hash();
    let entries = vec![
        Entry {
            package: "p".into(),
            path: "usr/share/a,b \"c\".png".into(),
            size: 10,
            width: 128,
            height: 96,
            pdq,
            quality: 100,
        },
        Entry {
            package: "q".into(),
            path: "plain.jpg".into(),
            size: 1,
            width: 64,
            height: 64,
            pdq,
            quality: 50,
        },
    ];
    let dir = std::env::temp_dir().join(format!("hg-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("m.csv");
    write_manifest(&file, &entries).expect("write");
    assert_eq!(read_manifest(&file).expect("read"), entries);
    std::fs::write(&file, "header\nonly,three,fields\n").expect("write");
    assert!(
        read_manifest(&file).is_err(),
        "a short line is an error, not a panic"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn transforms_are_deterministic_and_shaped_as_described() {
    let img = generated(7, 400, 300);
    for t in Transform::suite() {
        let a = t.apply(&img, 42).expect("apply");
        let b = t.apply(&img, 42).expect("apply");
        assert_eq!(a, b, "{} is not deterministic", t.name());
        let (w, h) = a.dimensions();
        match t {
            Transform::Identity | Transform::Jpeg(_) | Transform::Mirror | Transform::Rot180 => {
                assert_eq!((w, h), (400, 300))
            }
            Transform::Rot270 => assert_eq!((w, h), (300, 400)),
            Transform::MirrorMessenger512 => assert_eq!((w, h), (400, 300)),
            Transform::Messenger(l) => assert_eq!(w, l.min(400), "{}", t.name()),
            Transform::Screenshot => assert_eq!((w, h), (360, 270)),
            Transform::Rot90 => assert_eq!((w, h), (300, 400)),
            Transform::Letterbox => assert_eq!((w, h), (400, 330)),
            Transform::Crop(p) => {
                let lo = 400 - 400 * 3 * u32::from(p) / 100;
                assert!(w < 400 && w >= lo, "{} width {w}", t.name());
            }
            Transform::Brightness | Transform::Gamma | Transform::WebP(_) => {
                assert_eq!((w, h), (400, 300))
            }
            Transform::MessengerWebP(l) => assert_eq!(w, l.min(400), "{}", t.name()),
        }
    }
    assert_eq!(
        Transform::Mirror.apply(&img, 0).expect("mirror"),
        Transform::Mirror.apply(&img, 1).expect("mirror"),
        "seed-free transforms ignore the seed"
    );
}

#[test]
fn generated_images_differ_by_seed() {
    assert_ne!(generated(1, 64, 64), generated(2, 64, 64));
    assert_eq!(generated(3, 64, 48), generated(3, 64, 48));
}

#[test]
fn pairwise_counts_key_matches_and_the_interval_is_sane() {
    use hashguard_protocol::prelude::{Params, Policy};
    use hashguard_quality::collisions::{hashed, pairwise, wilson};
    let (p, lo, hi) = wilson(0.0, 1e6);
    assert_eq!((p, lo), (0.0, 0.0));
    assert!(hi > 3.0e-6 && hi < 4.0e-6, "upper bound {hi}");
    let (p, lo, hi) = wilson(10.0, 1e4);
    assert!(lo < p && p < hi && (p - 1e-3).abs() < 1e-12);
    let params = Params::v1(Policy::Intervene);
    let a = generated(11, 640, 480);
    let one = |name: &str, package: &str, img: &image::RgbImage| {
        hashed(name.into(), package.into(), img, &params)
            .expect("hash")
            .expect("quality")
    };
    let images = vec![
        one("a", "p", &a),
        one("a-copy", "q", &a),
        one("b", "p", &generated(12, 640, 480)),
        // a's mirror image: its own key differs, a's flipy probes reach it.
        one("a-mirrored", "r", &image::imageops::flip_horizontal(&a)),
    ];
    // The v1 voucher probes the identity and two turned variants: three times the identity
    // probes (fewer only where keys repeat).
    let identity = hashguard_protocol::prelude::probe_keys(
        &images[0].floats.hash(),
        &images[0].floats.margins(),
        &params,
    )
    .len();
    assert!(
        images[0].probes.len() > 2 * identity,
        "{}",
        images[0].probes.len()
    );
    let r = pairwise(&images, &params, &[]);
    assert_eq!(r.pairs, 12.0);
    // The two identical images open each other's key (both directions, across packages).
    assert!(r.hits >= 2 && r.hits_cross_package >= 2, "{r:?}");
    // With every probe, a (and its copy) also open the mirrored image's key; the identity
    // probes do not.
    let name = |i: usize| images[i].name.as_str();
    assert!(r.hits_all_probes > r.hits, "{r:?}");
    assert!(
        !r.examples
            .iter()
            .any(|h| h.matched == name(3) && h.prober == name(0)),
        "{r:?}"
    );
}

#[test]
fn webp_transforms_are_lossy_and_keep_dimensions() {
    use hashguard_quality::transforms::{decode, webp_encode, webp_roundtrip};
    use image::codecs::webp::WebPEncoder;
    use image::ExtendedColorType;
    let img = generated(8, 640, 480);
    let lossy = webp_encode(&img, 75).expect("lossy WebP");
    assert_eq!(&lossy[0..4], b"RIFF");
    assert_eq!(&lossy[8..12], b"WEBP");
    // "VP8 " is the lossy bitstream; a lossless file would carry "VP8L".
    assert_eq!(&lossy[12..16], b"VP8 ", "not a simple lossy WebP");
    let mut lossless = Vec::new();
    WebPEncoder::new_lossless(&mut lossless)
        .encode(img.as_raw(), 640, 480, ExtendedColorType::Rgb8)
        .expect("lossless WebP");
    assert!(
        lossy.len() < lossless.len(),
        "lossy {} bytes, lossless {}",
        lossy.len(),
        lossless.len()
    );
    let q50 = webp_encode(&img, 50).expect("q50");
    assert!(
        q50.len() < lossy.len(),
        "q50 {} >= q75 {}",
        q50.len(),
        lossy.len()
    );

    let back = webp_roundtrip(&img, 75).expect("round trip");
    assert_eq!(back.dimensions(), (640, 480));
    let changed = back
        .as_raw()
        .iter()
        .zip(img.as_raw())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > img.as_raw().len() / 10,
        "only {changed} channel values changed: not lossy"
    );
    // The transform is exactly this round trip, and the decoder the client's (crates/media).
    assert_eq!(Transform::WebP(75).apply(&img, 3).expect("apply"), back);
    assert_eq!(decode(&lossy).expect("decode"), back);

    let big = generated(9, 1600, 1000);
    let m = Transform::MessengerWebP(1024)
        .apply(&big, 0)
        .expect("messenger WebP");
    assert_eq!(m.dimensions(), (1024, 640));
}

#[test]
fn the_client_decodes_lossy_webp_exactly_as_libwebp_does() {
    // crates/media decodes WebP with the `image` crate; the PDQ reference pipeline (Pillow)
    // decodes it with libwebp. Any pixel difference would move the hashes of WebP copies.
    use hashguard_quality::transforms::{decode, webp_encode};
    for (seed, w, h) in [(7u64, 400u32, 300u32), (9, 333, 517)] {
        let img = generated(seed, w, h);
        for q in [50u8, 75, 90] {
            let bytes = webp_encode(&img, q).expect("encode");
            let ours = decode(&bytes).expect("crates/media decode");
            let lib = webp::Decoder::new(&bytes).decode().expect("libwebp decode");
            let lib: &[u8] = &lib;
            assert_eq!(ours.as_raw().as_slice(), lib, "{w}x{h} q{q}");
        }
    }
}

#[test]
fn webp_encode_refuses_sizes_libwebp_cannot_encode() {
    use hashguard_quality::transforms::webp_encode;
    assert!(webp_encode(&image::RgbImage::new(0, 0), 75).is_err());
    assert!(webp_encode(&image::RgbImage::new(16_384, 1), 75).is_err());
}

#[test]
fn the_examples_sample_filters_and_keeps_its_order_whatever_the_manifests() {
    let entry = |package: &str, path: &str, width: u32| Entry {
        package: package.into(),
        path: path.into(),
        size: 1,
        width,
        height: 64,
        pdq: Hash256::from_words([1, 2, 3, 4]),
        quality: 100,
    };
    let all: Vec<Entry> = (0..40)
        .map(|i| {
            entry(
                ["a", "b", "c"][i % 3],
                &format!("img{i}.png"),
                256 + 64 * (i as u32 % 10),
            )
        })
        .collect();
    let packages = vec!["a".to_string(), "b".to_string()];
    let sample = corpus::hashed_order_sample(all.clone(), 512, &packages, 10);
    assert_eq!(sample.len(), 10);
    assert!(sample
        .iter()
        .all(|e| e.package != "c" && e.width.max(e.height) >= 512));
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(
        corpus::hashed_order_sample(reversed, 512, &packages, 10),
        sample
    );
    // A larger limit extends the same order.
    let more = corpus::hashed_order_sample(all, 512, &packages, 15);
    assert_eq!(&more[..10], &sample[..]);
}

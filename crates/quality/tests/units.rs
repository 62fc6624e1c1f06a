//! The manifest's round trip and the transforms' determinism and geometry.

use hashguard_quality::corpus::{read_manifest, write_manifest, Entry};
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
            Transform::Brightness | Transform::Gamma => assert_eq!((w, h), (400, 300)),
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
    use hashguard_quality::collisions::{pairwise, wilson};
    let (p, lo, hi) = wilson(0.0, 1e6);
    assert_eq!((p, lo), (0.0, 0.0));
    assert!(hi > 3.0e-6 && hi < 4.0e-6, "upper bound {hi}");
    let (p, lo, hi) = wilson(10.0, 1e4);
    assert!(lo < p && p < hi && (p - 1e-3).abs() < 1e-12);
    let a = floats(&generated(11, 160, 120)).expect("hash");
    let b = floats(&generated(12, 160, 120)).expect("hash");
    let images = vec![
        ("a".to_string(), "p".to_string(), a.clone()),
        ("a-copy".to_string(), "q".to_string(), a),
        ("b".to_string(), "p".to_string(), b),
    ];
    let r = pairwise(&images, &Params::v1(Policy::Intervene), &[]);
    assert_eq!(r.pairs, 6.0);
    // The two identical images open each other's key (both directions, across packages).
    assert!(r.hits >= 2 && r.hits_cross_package >= 2, "{r:?}");
}

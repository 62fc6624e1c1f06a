//! Recall of the deployed protocol on JPEG re-encodes, messenger resizes, lossy WebP, mirrored
//! and rotated copies (dihedral probes), in CI (issue 17).
//!
//! CI has no corpus cache, so this runs on 200 generated benign images (1024 x 768; 100 listed,
//! 100 not), through the real client and opener at `Params::v1(Policy::Intervene)`. Generated
//! images are smooth colour fields with shapes, not photos: the corpus measurement is in
//! docs/quality.md. `ci_recall_does_not_regress` asserts the level measured on these images
//! when this test was written, so that a regression fails; the goals are asserted by
//! the tests named `goal_*`.

use std::sync::OnceLock;

use hashguard_protocol::prelude::{Params, Policy};
use hashguard_quality::generated::generated;
use hashguard_quality::measure::{run, Original, Report};
use hashguard_quality::transforms::Transform;

const IMAGES: u64 = 200;

/// The measurement, run once per test binary and shared by its tests.
fn measure() -> &'static Report {
    static REPORT: OnceLock<Report> = OnceLock::new();
    REPORT.get_or_init(measure_once)
}

fn measure_once() -> Report {
    let originals: Vec<Original> = (0..IMAGES)
        .map(|s| Original {
            name: format!("generated/{s}"),
            load: Box::new(move || Ok(generated(s, 1024, 768))),
        })
        .collect();
    let transforms = [
        Transform::Jpeg(95),
        Transform::Jpeg(75),
        Transform::Jpeg(40),
        Transform::Messenger(1280),
        Transform::Messenger(800),
        Transform::Messenger(512),
        Transform::Messenger(256),
        Transform::Mirror,
        Transform::Rot90,
        Transform::WebP(75),
        Transform::MessengerWebP(1024),
    ];
    let report = run(
        &originals,
        &transforms,
        &Params::v1(Policy::Intervene),
        17,
        None,
    )
    .expect("measurement runs");
    eprintln!("{}", report.markdown());
    report
}

fn recall(report: &Report, family: &str) -> (usize, usize, f64) {
    let t = report.per_family.get(family).expect("family measured");
    (t.opened, t.n, t.recall)
}

#[test]
fn ci_recall_does_not_regress() {
    let r = measure();
    assert_eq!(r.load_failures, 0);
    assert_eq!(r.listed, 100);
    assert_eq!(
        r.listed_below_q_min, 0,
        "generated images must be of quality >= 50"
    );
    assert_eq!(
        r.ideal_mismatches, 0,
        "the opener must equal the ideal functionality"
    );
    assert_eq!(r.multiple_opens, 0);
    assert_eq!(r.false_opens, 0, "no non-listed generated image may open");
    let (jo, jn, jr) = recall(r, "jpeg");
    let (mo, mn, mr) = recall(r, "messenger");
    let (wo, wn, wr) = recall(r, "webp");
    eprintln!("jpeg {jo}/{jn} = {jr:.3}; messenger {mo}/{mn} = {mr:.3}; webp {wo}/{wn} = {wr:.3}");
    // Measured when written (seed 17): see JPEG_MEASURED and MESSENGER_MEASURED.
    assert!(
        jo >= JPEG_MEASURED,
        "JPEG recall regressed: {jo}/{jn} < {JPEG_MEASURED}/{jn}"
    );
    assert!(
        mo >= MESSENGER_MEASURED,
        "messenger recall regressed: {mo}/{mn} < {MESSENGER_MEASURED}/{mn}"
    );
    assert!(
        wo >= WEBP_MEASURED,
        "WebP recall regressed: {wo}/{wn} < {WEBP_MEASURED}/{wn}"
    );
}

/// Opened JPEG copies (of 300) measured on these images when the test was written (all).
const JPEG_MEASURED: usize = 300;
/// Opened messenger copies (of 400) measured on these images when the test was written
/// (392/400 = 0.980; the 8 misses are 256 px and 800 px copies).
const MESSENGER_MEASURED: usize = 392;
/// Opened WebP copies (of 200: q75 at full size, and a 1024 px messenger copy at q75) measured
/// on these images when they were added (all).
const WEBP_MEASURED: usize = 200;

fn transform_recall(report: &Report, name: &str) -> (usize, usize, f64) {
    let (_, t) = report
        .per_transform
        .iter()
        .find(|(n, _)| n == name)
        .expect("transform measured");
    (t.opened, t.n, t.recall)
}

/// The goal for dihedral probes: recall >= 0.90 on mirrored and on rotated (90 degrees)
/// copies (JPEG q90), each.
#[test]
fn goal_mirror_and_rot90_0_90() {
    let r = measure();
    for name in ["mirror", "rot90"] {
        let (o, n, rec) = transform_recall(r, name);
        eprintln!("{name} {o}/{n} = {rec:.3}");
        assert!(rec >= 0.90, "{name} recall {o}/{n} = {rec:.3} < 0.90");
    }
}

/// The goal for small copies: recall >= 0.90 on 512 px messenger copies.
#[test]
fn goal_messenger_512_0_90() {
    let (o, n, rec) = transform_recall(measure(), "messenger-512");
    assert!(
        rec >= 0.90,
        "messenger-512 recall {o}/{n} = {rec:.3} < 0.90"
    );
}

/// The goals: recall >= 0.98 on JPEG re-encodes and >= 0.97 on messenger resizes.
#[test]
fn goal_jpeg_0_98_and_messenger_0_97() {
    let r = measure();
    let (_, _, jr) = recall(r, "jpeg");
    let (_, _, mr) = recall(r, "messenger");
    assert!(jr >= 0.98, "JPEG recall {jr:.3} < 0.98");
    assert!(mr >= 0.97, "messenger recall {mr:.3} < 0.97");
}

//! The key definition against calibration.md, and a recall measurement on real images.
//!
//! `probe_keys_equal_the_calibration_definition` rebuilds the multi-probe set from the words of
//! calibration.md with nothing but the PDQ coefficients (positions listed literally, bit
//! (row i, column j) = coefficient 16 i + j, weakest = smallest |coefficient − median| of the
//! client's own floats, flips of at most f of the w weakest) and requires `probe_keys` to give
//! exactly that set. A transposed or reordered position list, a bit-order slip between the hash
//! and the key, weak bits taken from anything but the client's own margins, or a wrong probe
//! enumeration all make it fail.
//!
//! `recall_of_reencoded_and_resized_copies` (ignored; run with
//! `cargo test --release -p hashguard-protocol --test recall -- --ignored --nocapture`) prints,
//! for every copy of the shared reference images: PDQ distance to its original, key Hamming
//! distance to the original's (listed) key, how many of the differing key bits lie among the
//! copy's w weakest key bits, and whether it should open; then recall by PDQ-distance bucket
//! beside calibration.md's figures.

mod images;

use hashguard_pdq::PdqFloats;
use hashguard_protocol::prelude::*;
use image::imageops::FilterType;
use image::RgbImage;
use images::{floats, jpeg, resize};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

/// calibration.md, verbatim: the 45 positions (row i, column j) with i + j ≤ 8, ordered by i + j
/// then i, then (0,9), (1,8), (2,7).
fn calibration_positions() -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for s in 0..=8 {
        for i in 0..=s {
            v.push((i, s - i));
        }
    }
    v.extend([(0, 9), (1, 8), (2, 7)]);
    assert_eq!(v.len(), 48);
    v
}

/// The reference probe set: every key (as a list of 48 bits, position 0 first) within at most
/// `f` flips of the w weakest key bits. Works on bits and coefficients only.
fn reference_probe_set(fl: &PdqFloats, w: usize, f: usize) -> Vec<Vec<bool>> {
    let pos = calibration_positions();
    let key: Vec<bool> = pos
        .iter()
        .map(|&(i, j)| fl.coefficients[16 * i + j] > fl.median)
        .collect();
    let weak = weakest(fl, w);
    // ∅, then the singletons, then the pairs, by rank of weakness (the documented order).
    let mut out = vec![key.clone()];
    if f >= 1 {
        for &a in &weak {
            let mut k1 = key.clone();
            k1[a] ^= true;
            out.push(k1);
        }
    }
    if f >= 2 {
        for (x, &a) in weak.iter().enumerate() {
            for &b in &weak[x + 1..] {
                let mut k2 = key.clone();
                k2[a] ^= true;
                k2[b] ^= true;
                out.push(k2);
            }
        }
    }
    out
}

/// Indices (into the 48 key bits) of the `w` smallest |coefficient − median|, ties by index.
fn weakest(fl: &PdqFloats, w: usize) -> Vec<usize> {
    let pos = calibration_positions();
    let mut idx: Vec<usize> = (0..pos.len()).collect();
    idx.sort_by(|&a, &b| {
        let (ia, ja) = pos[a];
        let (ib, jb) = pos[b];
        let ma = (fl.coefficients[16 * ia + ja] - fl.median).abs();
        let mb = (fl.coefficients[16 * ib + jb] - fl.median).abs();
        ma.total_cmp(&mb).then(a.cmp(&b))
    });
    idx.truncate(w);
    idx
}

fn bits_of(v: u64, k: usize) -> Vec<bool> {
    (0..k).map(|t| (v >> (k - 1 - t)) & 1 == 1).collect()
}

/// A random smooth image (random low-frequency waves plus a little noise).
fn generated(r: &mut ChaCha20Rng) -> RgbImage {
    let waves: Vec<[f32; 4]> = (0..12)
        .map(|_| {
            let mut f = || (r.next_u32() % 1000) as f32 / 1000.0;
            [
                f() * 0.25,
                f() * 0.25,
                f() * std::f32::consts::TAU,
                40.0 * f(),
            ]
        })
        .collect();
    let noise = r.next_u64();
    RgbImage::from_fn(96, 80, |x, y| {
        let mut v = 128.0f32;
        for w in &waves {
            v += w[3] * (w[0] * x as f32 + w[1] * y as f32 + w[2]).sin();
        }
        let n = (noise.wrapping_mul(u64::from(x * 131 + y * 7 + 1)) >> 60) as f32;
        let v = (v + n).clamp(0.0, 255.0) as u8;
        image::Rgb([v, v / 2 + 40, 255 - v])
    })
}

#[test]
fn probe_keys_equal_the_calibration_definition() {
    let params = Params::v1(Policy::Intervene);
    let pos = calibration_positions();
    let bit_index: Vec<u8> = pos.iter().map(|&(i, j)| (16 * i + j) as u8).collect();
    assert_eq!(params.key_positions(), &bit_index[..], "key positions");
    let mut r = ChaCha20Rng::seed_from_u64(0x5eed_ca1b);
    for case in 0..40 {
        let fl = floats(&generated(&mut r));
        // The hash's bit 16 i + j is coefficient (i, j) thresholded at the median.
        let h = fl.hash();
        for (b, c) in fl.coefficients.iter().enumerate() {
            assert_eq!(h.bit(b), *c > fl.median, "case {case}: hash bit {b}");
        }
        let input = PdqInput::from_floats(&fl);
        let got: Vec<Vec<bool>> = probe_keys(&input.hash, &input.margins, &params)
            .iter()
            .map(|&v| bits_of(v, 48))
            .collect();
        let want = reference_probe_set(&fl, 12, 2);
        assert_eq!(got.len(), 79);
        assert_eq!(got, want, "case {case}: probe set and its canonical order");
    }
}

fn long_side(img: &RgbImage, side: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    resize(img, side as f32 / w.max(h) as f32, FilterType::Lanczos3)
}

/// One measured copy.
struct Row {
    d_pdq: u32,
    d_key: u32,
    in_weak: u32,
    should: bool,
    opened: bool,
    transposed: bool,
}

fn measure(orig: &PdqFloats, copy: &PdqFloats, params: &Params) -> Row {
    let pos = calibration_positions();
    let key = |fl: &PdqFloats, tr: bool| -> Vec<bool> {
        pos.iter()
            .map(|&(i, j)| {
                let (a, b) = if tr { (j, i) } else { (i, j) };
                fl.coefficients[16 * a + b] > fl.median
            })
            .collect()
    };
    let (ko, kc) = (key(orig, false), key(copy, false));
    let diff: Vec<usize> = (0..48).filter(|&t| ko[t] != kc[t]).collect();
    let weak = weakest(copy, 12);
    let in_weak = diff.iter().filter(|t| weak.contains(t)).count() as u32;
    let should = diff.len() <= 2 && in_weak as usize == diff.len();
    // What the implementation does: is the original's key among the copy's probes?
    let listed = pdq_key(&orig.hash(), params);
    let input = PdqInput::from_floats(copy);
    let opened = probe_keys(&input.hash, &input.margins, params).contains(&listed);
    // The same rule with positions transposed ((j, i) for (i, j)), weak bits from the copy.
    let (to, tc) = (key(orig, true), key(copy, true));
    let tdiff: Vec<usize> = (0..48).filter(|&t| to[t] != tc[t]).collect();
    let mut tidx: Vec<usize> = (0..48).collect();
    tidx.sort_by(|&a, &b| {
        let m = |t: usize| {
            let (i, j) = pos[t];
            (copy.coefficients[16 * j + i] - copy.median).abs()
        };
        m(a).total_cmp(&m(b)).then(a.cmp(&b))
    });
    let tweak = &tidx[..12];
    let transposed = tdiff.len() <= 2 && tdiff.iter().all(|t| tweak.contains(t));
    Row {
        d_pdq: orig.hash().distance(&copy.hash()),
        d_key: diff.len() as u32,
        in_weak,
        should,
        opened,
        transposed,
    }
}

#[test]
#[ignore = "measurement; needs ../shared/testdata; run in release with --nocapture"]
fn recall_of_reencoded_and_resized_copies() {
    let Some(dir) =
        hashguard_testsupport::testdata("recall_of_reencoded_and_resized_copies", "pdq/images", "")
    else {
        return;
    };
    let params = Params::v1(Policy::Intervene);
    let open = |p: &str| {
        image::open(dir.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .to_rgb8()
    };
    let originals = [
        "reg-test-input/labelme-subset/q0122.jpg",
        "reg-test-input/labelme-subset/q0291.jpg",
        "reg-test-input/labelme-subset/q0746.jpg",
        "reg-test-input/labelme-subset/q1050.jpg",
        "reg-test-input/labelme-subset/q2821.jpg",
        "bridge-mods/aaa-orig.jpg",
    ];
    let mut rows: Vec<(String, String, Row)> = Vec::new();
    println!(
        "{:<10} {:<28} {:>5} {:>5} {:>7} {:>6} {:>6}",
        "image", "copy", "d_pdq", "d_key", "in_w12", "should", "opened"
    );
    for path in originals {
        let name = path
            .rsplit('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".jpg");
        let img = open(path);
        let orig = floats(&img);
        let mut copies: Vec<(String, RgbImage)> = vec![
            // The copies of tests/end_to_end.rs.
            ("e2e jpeg q80".into(), jpeg(&img, 80)),
            ("e2e jpeg q60".into(), jpeg(&img, 60)),
            (
                "e2e resize 0.75".into(),
                resize(&img, 0.75, FilterType::Triangle),
            ),
            (
                "e2e resize 0.9 + jpeg q85".into(),
                jpeg(&resize(&img, 0.9, FilterType::Triangle), 85),
            ),
            (
                "e2e resize 0.95".into(),
                resize(&img, 0.95, FilterType::Triangle),
            ),
            (
                "e2e resize 1.25 + jpeg q85".into(),
                jpeg(&resize(&img, 1.25, FilterType::Triangle), 85),
            ),
        ];
        for q in [95u8, 90, 70, 50, 40] {
            copies.push((format!("jpeg q{q}"), jpeg(&img, q)));
        }
        for (fname, filter) in [
            ("tri", FilterType::Triangle),
            ("cubic", FilterType::CatmullRom),
            ("lanczos", FilterType::Lanczos3),
        ] {
            for s in [0.5f32, 0.6, 0.7, 0.8, 0.85, 0.9, 1.1, 1.5, 2.0] {
                copies.push((format!("{fname} x{s}"), resize(&img, s, filter)));
                copies.push((
                    format!("{fname} x{s} + jpeg q80"),
                    jpeg(&resize(&img, s, filter), 80),
                ));
            }
        }
        if img.width().max(img.height()) > 1000 {
            // calibration.md's messenger transform: long side 1600..512 + JPEG q80.
            for side in [1600u32, 1280, 1024, 800, 640, 512] {
                copies.push((
                    format!("messenger {side}"),
                    jpeg(&long_side(&img, side), 80),
                ));
            }
        }
        for (t, c) in copies {
            let row = measure(&orig, &floats(&c), &params);
            assert_eq!(
                row.opened, row.should,
                "{name} {t}: the implementation disagrees with the calibration definition"
            );
            println!(
                "{:<10} {:<28} {:>5} {:>5} {:>7} {:>6} {:>6}",
                name, t, row.d_pdq, row.d_key, row.in_weak, row.should, row.opened
            );
            rows.push((name.to_string(), t, row));
        }
    }
    let buckets: [(u32, u32, &str); 8] = [
        (0, 0, "-"),
        (1, 4, "0.998"),
        (5, 8, "0.969"),
        (9, 12, "0.889"),
        (13, 16, "0.68"),
        (17, 24, "0.62"),
        (25, 31, "0.38"),
        (32, 256, "-"),
    ];
    println!();
    println!(
        "{:<8} {:>6} {:>8} {:>8} {:>12} {:>12}",
        "d_pdq", "copies", "opened", "recall", "calibration", "transposed"
    );
    let summarize = |label: &str, sel: &dyn Fn(&(String, String, Row)) -> bool| {
        println!("{label}");
        let mut expected = 0.0f64;
        let mut total_in = 0usize;
        for (lo, hi, cal) in buckets {
            let b: Vec<&Row> = rows
                .iter()
                .filter(|x| sel(x) && x.2.d_pdq >= lo && x.2.d_pdq <= hi)
                .map(|x| &x.2)
                .collect();
            if b.is_empty() {
                continue;
            }
            let o = b.iter().filter(|x| x.opened).count();
            let t = b.iter().filter(|x| x.transposed).count();
            if let Ok(c) = cal.parse::<f64>() {
                expected += c * b.len() as f64;
                total_in += b.len();
            }
            println!(
                "{:<8} {:>6} {:>8} {:>8.3} {:>12} {:>12}",
                format!("{lo}-{hi}"),
                b.len(),
                o,
                o as f64 / b.len() as f64,
                cal,
                t
            );
        }
        let n1_31: usize = rows
            .iter()
            .filter(|x| sel(x) && (1..=31).contains(&x.2.d_pdq) && x.2.opened)
            .count();
        println!(
            "  d 1-31: {n1_31} opened of {total_in}; calibration's per-bucket rates predict {expected:.1}"
        );
    };
    summarize("all copies", &|_| true);
    summarize("the 20 resized copies of end_to_end.rs", &|x| {
        x.1.starts_with("e2e resize")
    });
    summarize("labelme (256x256) copies", &|x| x.0.starts_with('q'));
    summarize("bridge (1600x1004) copies", &|x| x.0 == "aaa-orig");
}

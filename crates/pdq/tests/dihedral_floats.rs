//! `PdqFloats::dihedral_variants` (the floats the protocol's dihedral probes take their weak
//! bits from) must threshold to exactly the reference's dihedral hashes.

use hashguard_pdq::{PdqHasher, RgbImage};

fn image(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 23) as usize;
            // Smooth structure plus noise, so the hash is far from flat.
            out.extend_from_slice(&[
                ((x * 255 / width) + n) as u8,
                ((y * 200 / height) + n) as u8,
                (((x * y) / 7 + n) % 256) as u8,
            ]);
        }
    }
    out
}

#[test]
fn dihedral_variant_floats_hash_to_the_dihedral_hashes() {
    for (w, h, seed) in [(100, 80, 1u64), (257, 131, 2), (64, 200, 3), (500, 375, 4)] {
        let px = image(w, h, seed);
        let img = RgbImage::new(&px, w, h).expect("valid image");
        let mut hasher = PdqHasher::new();
        let floats = hasher.floats_rgb(&img);
        let dh = hasher.dihedral_rgb(&img);
        assert_eq!(floats.hash(), dh.original);
        let variants = floats.dihedral_variants();
        for ((name, want), got) in dh.named_variants().iter().zip(&variants) {
            assert_eq!(got.hash(), *want, "{name} of {w}x{h}");
            assert_eq!(got.quality, dh.quality);
            // Margins follow the same permutation: the multiset of |c - median| is that of
            // the variant's own coefficients, and a bit's margin is 0 only at the median.
            let m = got.margins();
            assert!(m.iter().all(|x| x.is_finite() && *x >= 0.0));
        }
        // rot180 twice is the identity on the coefficients.
        let back = variants[1].dihedral_variants()[1].clone();
        assert_eq!(back.coefficients, floats.coefficients);
    }
}

/// The pixel-domain variants are the PDQ of the rotated/mirrored luma. The transpose is exact
/// on a square image (the downscaler treats rows and columns alike); the other variants differ
/// from the DCT-domain ones because the downscaler's sampling is not mirror-symmetric, which is
/// why the protocol's dihedral probes use the pixel-domain variants. Each pixel-domain variant
/// is nearest to its own DCT-domain variant (the orientation mapping is right).
#[test]
fn pixel_domain_variants_follow_the_named_orientations() {
    for seed in [5u64, 6, 7] {
        let (w, h) = (512, 512);
        let px = smooth(w, h, seed);
        let img = RgbImage::new(&px, w, h).expect("valid image");
        let mut hasher = PdqHasher::new();
        let floats = hasher.floats_rgb(&img);
        let dct = floats.dihedral_variants();
        let pixel = hasher.dihedral_pixel_floats_rgb(&img);
        assert_eq!(pixel[5].hash(), dct[5].hash(), "transpose is exact");
        for (i, p) in pixel.iter().enumerate() {
            let all: Vec<u32> = dct.iter().map(|d| p.hash().distance(&d.hash())).collect();
            assert!(all[i] <= 90, "variant {i}: {all:?}");
            assert_eq!(
                all[i],
                *all.iter().min().expect("7"),
                "variant {i}: {all:?}"
            );
        }
    }
}

/// Hashing only the selected variants gives exactly those of the full computation and leaves
/// the others empty (quality 0), so a client hashes only what its parameters probe.
#[test]
fn selected_pixel_domain_variants_equal_the_full_ones() {
    let (w, h) = (300, 200);
    let px = smooth(w, h, 9);
    let img = RgbImage::new(&px, w, h).expect("valid image");
    let mut hasher = PdqHasher::new();
    let all = hasher.dihedral_pixel_floats_rgb(&img);
    for selected in [0u8, 1, 1 << 4 | 1, 0b101_0101, 0x7f] {
        let some = hasher.dihedral_pixel_floats_rgb_selected(&img, selected);
        for i in 0..7 {
            if selected & (1 << i) != 0 {
                assert_eq!(some[i], all[i], "variant {i} of {selected:#x}");
            } else {
                assert_eq!(some[i].quality, 0, "variant {i} of {selected:#x}");
                assert_eq!(some[i].coefficients, [0.0; 256]);
            }
        }
    }
}

/// A smooth asymmetric picture (no pixel noise): low-frequency waves and an off-centre block.
fn smooth(width: usize, height: usize, seed: u64) -> Vec<u8> {
    let s = seed as f32;
    let mut out = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let mut v =
                128.0 + 50.0 * (fx * (3.0 + s) + fy * 1.7).sin() * (fy * (2.0 + s / 2.0)).cos();
            if fx > 0.2 && fx < 0.45 && fy > 0.1 && fy < 0.6 {
                v += 60.0;
            }
            v += 30.0 * fx * fy;
            let v = v.clamp(0.0, 255.0) as u8;
            out.extend_from_slice(&[v, v / 2 + 60, 255 - v]);
        }
    }
    out
}

/// The RGB image `px` (`w` x `h`, tightly packed) turned as dihedral variant `i`
/// (`DihedralHashes::named_variants` order), by moving whole pixels: what a re-sharer's
/// rotated or mirrored copy is before any re-encoding.
fn turned(px: &[u8], w: usize, h: usize, i: usize) -> (Vec<u8>, usize, usize) {
    let swap = matches!(i, 0 | 2 | 5 | 6);
    let (nw, nh) = if swap { (h, w) } else { (w, h) };
    let mut out = Vec::with_capacity(px.len());
    for y in 0..nh {
        for x in 0..nw {
            let (row, col) = match i {
                0 => (x, w - 1 - y),
                1 => (h - 1 - y, w - 1 - x),
                2 => (h - 1 - x, y),
                3 => (h - 1 - y, x),
                4 => (y, w - 1 - x),
                5 => (x, y),
                _ => (h - 1 - x, w - 1 - y),
            };
            out.extend_from_slice(&px[3 * (row * w + col)..3 * (row * w + col) + 3]);
        }
    }
    (out, nw, nh)
}

/// The pixel-domain variants are, bit for bit, the PDQ floats of the actually rotated or
/// mirrored image: streaming the variant from the source pixels (no rotated copy) changes no
/// value and no order of operations. Odd sizes, sizes below a strip, exactly 64 x 64 (the
/// reference's copy-through path), sizes below PDQ's minimum, and padded rows.
#[test]
fn pixel_domain_variants_equal_the_pdq_of_the_turned_image() {
    let mut hasher = PdqHasher::new();
    for (w, h, seed) in [
        (300usize, 200usize, 11u64),
        (257, 131, 12),
        (17, 40, 13),
        (64, 64, 14),
        (64, 33, 15),
        (4, 90, 16),
        (1, 1, 17),
        (1031, 517, 18),
    ] {
        let px = image(w, h, seed);
        let img = RgbImage::new(&px, w, h).expect("valid image");
        let variants = hasher.dihedral_pixel_floats_rgb(&img);
        // The same pixels with 5 bytes of padding after each row.
        let stride = 3 * w + 5;
        let mut padded = vec![0xa5u8; stride * h];
        for y in 0..h {
            padded[y * stride..y * stride + 3 * w].copy_from_slice(&px[3 * w * y..3 * w * (y + 1)]);
        }
        let padded_img = RgbImage::with_stride(&padded, w, h, stride).expect("valid image");
        let padded_variants = hasher.dihedral_pixel_floats_rgb(&padded_img);
        for (i, got) in variants.iter().enumerate() {
            let (t, nw, nh) = turned(&px, w, h, i);
            let want = hasher.floats_rgb(&RgbImage::new(&t, nw, nh).expect("valid image"));
            let same = |a: &hashguard_pdq::PdqFloats| {
                a.coefficients
                    .iter()
                    .zip(&want.coefficients)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
                    && a.median.to_bits() == want.median.to_bits()
                    && a.quality == want.quality
            };
            assert!(same(got), "variant {i} of {w}x{h}");
            assert!(same(&padded_variants[i]), "variant {i} of padded {w}x{h}");
        }
    }
}

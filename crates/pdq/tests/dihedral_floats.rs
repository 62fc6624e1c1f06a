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

//! The fuzz body shared by the libFuzzer target and the plain replay harness.

use hashguard_index::{distance, reseal, Code, FrozenIndex, Layout, Match};

/// Loads `data` as an index file in one of three modes chosen by its first byte
/// and checks that nothing panics; whatever loads and passes deep verification
/// must answer exactly like brute force.
///
/// * mode 0: the bytes as they are (almost always refused by the checksum);
/// * mode 1: the bytes with a recomputed checksum (exercises header parsing);
/// * mode 2: a valid index built from codes derived from the bytes, then
///   overwritten at byte offsets the input chooses and resealed (exercises
///   the section and offset-table checks and queries on inconsistent data).
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        let _ = FrozenIndex::from_bytes(data);
        return;
    };
    match mode % 3 {
        0 => exercise(rest),
        1 => {
            let mut b = rest.to_vec();
            reseal(&mut b);
            exercise(&b);
        }
        _ => {
            let (n, rest) = rest
                .split_first()
                .map_or((0, rest), |(&n, r)| (n as usize, r));
            let (t, rest) = rest
                .split_first()
                .map_or((0, rest), |(&t, r)| (t as u32 % 9, r));
            let codes: Vec<Code> = (0..n)
                .map(|i| {
                    let x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    [x, x.rotate_left(17) ^ i as u64, !x, x >> 3]
                })
                .collect();
            let layout = Layout::uniform(8 + (t as usize % 9), t).ok();
            let Ok(idx) = FrozenIndex::build(&codes, None, layout.as_ref()) else {
                return;
            };
            let mut b = idx.as_bytes().to_vec();
            // Patches: (u16 little-endian offset, byte value) triples.
            for p in rest.chunks_exact(3) {
                if !b.is_empty() {
                    let at = u16::from_le_bytes([p[0], p[1]]) as usize % b.len();
                    b[at] = p[2];
                }
            }
            reseal(&mut b);
            exercise(&b);
        }
    }
}

fn exercise(bytes: &[u8]) {
    let Ok(mut idx) = FrozenIndex::from_bytes(bytes) else {
        return;
    };
    let qs: Vec<Code> = idx
        .codes()
        .iter()
        .take(2)
        .copied()
        .chain([[0; 4], [!0; 4]])
        .collect();
    let radii = [0u32, 5, 31, 63, 300];
    let deep_ok = idx.verify_deep().is_ok();
    for fraction in [hashguard_index::DEFAULT_LINEAR_FRACTION, f64::INFINITY] {
        idx.set_linear_fraction(fraction);
        for q in &qs {
            for &r in &radii {
                let got = idx.search(q, r);
                if deep_ok {
                    let mut want: Vec<Match> = idx
                        .codes()
                        .iter()
                        .zip(idx.ids())
                        .filter_map(|(c, &id)| {
                            let d = distance(c, q);
                            (d <= r).then_some(Match { distance: d, id })
                        })
                        .collect();
                    want.sort_unstable();
                    assert_eq!(got, want, "verified index disagrees with brute force");
                }
            }
        }
    }
}

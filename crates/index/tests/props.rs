//! Property tests: the index returns exactly the brute-force result set.

use hashguard_index::{distance, Code, FrozenIndex, Index, Layout, LoadError, Match};
use hashguard_testsupport::TestGen;
use proptest::prelude::*;

fn brute(codes: &[Code], ids: &[u32], q: &Code, r: u32) -> Vec<Match> {
    let mut v: Vec<Match> = codes
        .iter()
        .zip(ids)
        .filter_map(|(c, &id)| {
            let d = distance(c, q);
            (d <= r).then_some(Match { distance: d, id })
        })
        .collect();
    v.sort_unstable();
    v
}

fn flip(mut c: Code, bits: &[u16]) -> Code {
    for &b in bits {
        c[(b as usize / 64) % 4] ^= 1u64 << (b % 64);
    }
    c
}

/// Data shapes: uniform, clustered near-duplicates, adversarial (shared slot bits).
#[derive(Clone, Debug)]
enum Shape {
    Uniform,
    Clustered { centres: usize, max_flips: usize },
    Adversarial { shared_words: u8 },
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Uniform),
        (1usize..5, 0usize..48).prop_map(|(c, f)| Shape::Clustered {
            centres: c,
            max_flips: f
        }),
        (1u8..16).prop_map(|w| Shape::Adversarial { shared_words: w }),
    ]
}

/// `c` with `k` random bits flipped (a bit may be drawn twice). Data comes from a seeded
/// generator, so it can be large without proptest shrinking every word.
fn flips(rng: &mut TestGen, c: Code, k: usize) -> Code {
    let bits: Vec<u16> = (0..k).map(|_| rng.below(256) as u16).collect();
    flip(c, &bits)
}

fn make(shape: &Shape, n: usize, seed: u64) -> Vec<Code> {
    let mut rng = TestGen::seeded(seed);
    match *shape {
        Shape::Uniform => (0..n).map(|_| rng.code()).collect(),
        Shape::Clustered { centres, max_flips } => {
            let cs: Vec<Code> = (0..centres).map(|_| rng.code()).collect();
            (0..n)
                .map(|_| {
                    let c = cs[rng.below(centres as u64) as usize];
                    let k = rng.below(max_flips as u64 + 1) as usize;
                    flips(&mut rng, c, k)
                })
                .collect()
        }
        Shape::Adversarial { shared_words } => {
            // Most codes share some 16-bit words exactly (one giant bucket per slot
            // covering them), the rest of the bits random; a few are uniform.
            let common = rng.code();
            (0..n)
                .map(|i| {
                    let mut c = rng.code();
                    if i % 8 != 0 {
                        for w in 0..16 {
                            if shared_words & (1 << (w % 8)) != 0 && w % 2 == 0 {
                                let m = 0xffffu64 << ((w % 4) * 16);
                                c[w / 4] = (c[w / 4] & !m) | (common[w / 4] & m);
                            }
                        }
                    }
                    c
                })
                .collect()
        }
    }
}

fn queries(codes: &[Code], seed: u64, k: usize) -> Vec<Code> {
    let mut rng = TestGen::seeded(seed ^ 0x5555);
    let mut qs = Vec::new();
    for i in 0..k {
        if !codes.is_empty() && i % 3 != 2 {
            let c = codes[rng.below(codes.len() as u64) as usize];
            let f = rng.below(40) as usize;
            qs.push(flips(&mut rng, c, f));
        } else {
            qs.push(rng.code());
        }
    }
    qs
}

/// A random valid layout: widths summing to 256, each <= 32, random table bits.
fn layout() -> impl Strategy<Value = Option<Layout>> {
    prop_oneof![
        Just(None),
        (8usize..=20, 0u32..=12).prop_map(|(m, t)| Layout::uniform(m, t).ok()),
        (proptest::collection::vec(1u32..=32, 1..40), 0u32..=10).prop_map(|(ws, t)| {
            let mut out = Vec::new();
            let mut left = 256u32;
            for w in ws {
                if left == 0 || out.len() == 31 {
                    break;
                }
                let w = w.min(left);
                out.push(w);
                left -= w;
            }
            while left > 0 {
                let w = left.min(32);
                out.push(w);
                left -= w;
            }
            Layout::from_widths(&out, t).ok()
        }),
    ]
}

/// Queries at the pigeonhole boundary: `k` flips of a listed code spread
/// round-robin over the slots (in a random slot order), so that every slot's
/// distance is as close to its share of `k` as possible.
fn spread_queries(idx: &FrozenIndex, codes: &[Code], k: u32, seed: u64) -> Vec<Code> {
    let mut rng = TestGen::seeded(seed ^ u64::from(k) << 20);
    let slots = idx.layout().slots();
    let mut out = Vec::new();
    for _ in 0..2 {
        let Some(&c) = codes.get(rng.below(codes.len() as u64) as usize) else {
            break;
        };
        let mut order: Vec<usize> = (0..slots.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut q = c;
        let mut used = vec![0u32; slots.len()];
        let mut done = 0;
        let mut i = 0;
        while done < k.min(256) {
            let j = order[i % order.len()];
            i += 1;
            let s = slots[j];
            if used[j] >= s.width {
                continue;
            }
            // Flip a not-yet-flipped bit of slot j.
            loop {
                let b = s.start + rng.below(u64::from(s.width)) as u32;
                if (q[(b / 64) as usize] ^ c[(b / 64) as usize]) >> (b % 64) & 1 == 0 {
                    q[(b / 64) as usize] ^= 1 << (b % 64);
                    break;
                }
            }
            used[j] += 1;
            done += 1;
        }
        out.push(q);
    }
    out
}

fn check(idx: &FrozenIndex, codes: &[Code], ids: &[u32], qs: &[Code], radii: &[u32]) {
    for &r in radii {
        let mut all = qs.to_vec();
        for k in [r.saturating_sub(1), r, r + 1] {
            all.extend(spread_queries(idx, codes, k, u64::from(r)));
        }
        for q in &all {
            assert_eq!(idx.search(q, r), brute(codes, ids, q, r), "r={r}");
        }
    }
}

fn radii_strategy() -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(0u32..=63, 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    /// Frozen index == brute force, on the slot path (fallback disabled) and with
    /// the default fallback, for every data shape and radius 0..=63.
    #[test]
    fn frozen_matches_brute_force(
        shape in shape(), n in 0usize..400, seed: u64, layout in layout(),
        radii in radii_strategy(), with_ids: bool,
    ) {
        let codes = make(&shape, n, seed);
        let ids: Vec<u32> = if with_ids {
            (0..n as u32).map(|i| i.wrapping_mul(2_654_435_761) % 1000).collect()
        } else {
            (0..n as u32).collect()
        };
        let mut idx = FrozenIndex::build(&codes, with_ids.then_some(&ids[..]), layout.as_ref()).unwrap();
        idx.verify_deep().unwrap();
        let qs = queries(&codes, seed, 6);
        check(&idx, &codes, &ids, &qs, &radii);
        idx.set_linear_fraction(f64::INFINITY);
        check(&idx, &codes, &ids, &qs, &radii);
        // Every SIMD level gives the same answers.
        for cap in ["portable", "popcnt", "avx2"] {
            idx.set_simd_cap(cap);
            check(&idx, &codes, &ids, &qs[..2], &radii);
        }
        // Save/load round trip (bytes and memory map).
        let back = FrozenIndex::from_bytes(idx.as_bytes()).unwrap();
        let mut back2 = back;
        back2.set_linear_fraction(f64::INFINITY);
        check(&back2, &codes, &ids, &qs, &radii);
    }

    /// The updatable index after random adds and removes == brute force over the
    /// live set, before and after compaction and a save/load round trip.
    #[test]
    fn index_updates_match_brute_force(
        shape in shape(), n in 0usize..200, seed: u64,
        ops in proptest::collection::vec((any::<bool>(), 0u32..260), 0..60),
        radii in radii_strategy(),
    ) {
        let codes = make(&shape, n, seed);
        let ids: Vec<u32> = (0..n as u32).collect();
        let mut live: Vec<(Code, u32)> = codes.iter().copied().zip(ids.iter().copied()).collect();
        let mut idx = Index::build(&codes, Some(&ids)).unwrap();
        idx.frozen_mut().set_linear_fraction(f64::INFINITY);
        let mut rng = TestGen::seeded(seed ^ 77);
        let extra = make(&shape, 64, seed ^ 99);
        for (i, &(add, id)) in ops.iter().enumerate() {
            if add {
                let c = flips(&mut rng, extra[i % extra.len()], i % 9);
                idx.add(c, id);
                live.push((c, id));
            } else {
                let had = live.iter().any(|&(_, x)| x == id);
                prop_assert_eq!(idx.remove(id), had);
                live.retain(|&(_, x)| x != id);
            }
            prop_assert_eq!(idx.len(), live.len());
        }
        let (lc, li): (Vec<Code>, Vec<u32>) = live.iter().copied().unzip();
        let qs = queries(&lc, seed, 5);
        for q in &qs {
            for &r in &radii {
                prop_assert_eq!(idx.search(q, r), brute(&lc, &li, q, r));
            }
        }
        let path = std::env::temp_dir().join(format!("hgidx-prop-{}-{seed}.idx", std::process::id()));
        idx.save(&path).unwrap();
        prop_assert_eq!(idx.pending(), 0);
        let mut loaded = Index::open(&path).unwrap();
        std::fs::remove_file(&path).ok();
        loaded.frozen().verify_deep().unwrap();
        loaded.frozen_mut().set_linear_fraction(f64::INFINITY);
        for q in &qs {
            for &r in &radii {
                prop_assert_eq!(idx.search(q, r), brute(&lc, &li, q, r));
                prop_assert_eq!(loaded.search(q, r), brute(&lc, &li, q, r));
            }
        }
    }

    /// Any flipped bit, anywhere in the file, is refused.
    #[test]
    fn flipped_byte_is_refused(n in 0usize..120, seed: u64, at: proptest::sample::Index, bit in 0u8..8) {
        let codes = make(&Shape::Uniform, n, seed);
        let idx = FrozenIndex::build(&codes, None, None).unwrap();
        let mut bytes = idx.as_bytes().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(FrozenIndex::from_bytes(&bytes).is_err());
    }

    /// Any truncation (or extension) is refused.
    #[test]
    fn truncated_file_is_refused(n in 0usize..120, seed: u64, at: proptest::sample::Index, extra in 1usize..70) {
        let codes = make(&Shape::Uniform, n, seed);
        let idx = FrozenIndex::build(&codes, None, None).unwrap();
        let bytes = idx.as_bytes();
        let cut = at.index(bytes.len());
        let err = FrozenIndex::from_bytes(&bytes[..cut]).unwrap_err();
        let ok = matches!(err, LoadError::Truncated { .. } | LoadError::BadMagic);
        prop_assert!(ok, "{}", err);
        let mut longer = bytes.to_vec();
        longer.extend(std::iter::repeat_n(0u8, extra));
        let long_err = matches!(FrozenIndex::from_bytes(&longer), Err(LoadError::TrailingBytes { .. }));
        prop_assert!(long_err);
    }

    /// Arbitrary bytes, with or without a valid checksum, never panic the loader,
    /// and whatever loads can be queried without panicking.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600), seal: bool) {
        if seal {
            hashguard_index::reseal(&mut bytes);
        }
        if let Ok(idx) = FrozenIndex::from_bytes(&bytes) {
            let _ = idx.search(&[0; 4], 31);
            let _ = idx.verify_deep();
        }
    }
}

/// Structured corruption behind a valid checksum: mutate header fields of a real
/// image, reseal, and check the loader refuses (or loads something consistent)
/// without panicking.
#[test]
fn resealed_header_mutations_are_refused_or_safe() {
    let codes = make(&Shape::Uniform, 300, 5);
    let idx = FrozenIndex::build(&codes, None, None).unwrap();
    let orig = idx.as_bytes().to_vec();
    let mut rng = TestGen::seeded(1);
    for at in 0..(hashguard_index::HEADER_LEN + 16 * 32 + 64).min(orig.len()) {
        for _ in 0..3 {
            let mut b = orig.clone();
            b[at] = rng.word() as u8;
            hashguard_index::reseal(&mut b);
            if let Ok(i) = FrozenIndex::from_bytes(&b) {
                let _ = i.search(&codes[0], 31);
            }
        }
    }
    // Corrupt an offset table entry behind a valid checksum: must be refused.
    let mut b = orig.clone();
    let n = b.len();
    b[n - 4 * 300 - 8] ^= 0x40; // inside the last offsets table or postings
    hashguard_index::reseal(&mut b);
    if let Ok(i) = FrozenIndex::from_bytes(&b) {
        let _ = i.search(&codes[0], 31);
    }
}

#[test]
fn large_index_smoke() {
    // 20k uniform + near duplicates, default layout and fallback, a few radii.
    let mut codes = make(&Shape::Uniform, 20_000, 9);
    let near = make(
        &Shape::Clustered {
            centres: 3,
            max_flips: 20,
        },
        5_000,
        10,
    );
    codes.extend(near);
    let ids: Vec<u32> = (0..codes.len() as u32).collect();
    let idx = FrozenIndex::build(&codes, None, None).unwrap();
    let qs = queries(&codes, 3, 20);
    check(&idx, &codes, &ids, &qs, &[0, 8, 31, 47]);
}

#[test]
fn empty_and_tiny() {
    let idx = FrozenIndex::build(&[], None, None).unwrap();
    assert!(idx.search(&[1, 2, 3, 4], 63).is_empty());
    let back = FrozenIndex::from_bytes(idx.as_bytes()).unwrap();
    assert!(back.is_empty());
    let one = FrozenIndex::build(&[[5; 4]], None, None).unwrap();
    assert_eq!(one.search(&[5; 4], 0), vec![Match { distance: 0, id: 0 }]);
    assert!(matches!(
        FrozenIndex::build(&[[0; 4]], Some(&[1, 2]), None),
        Err(hashguard_index::BuildError::IdCount { .. })
    ));
}

#[test]
fn radius_up_to_256() {
    let codes = make(&Shape::Uniform, 500, 4);
    let ids: Vec<u32> = (0..500).collect();
    let idx = FrozenIndex::build(&codes, None, None).unwrap();
    check(
        &idx,
        &codes,
        &ids,
        &queries(&codes, 1, 4),
        &[64, 100, 128, 200, 255, 256, 1000],
    );
}

/// One giant cluster: every query near it would fetch every code several times
/// through the slots, so the query must fall back to a linear scan, and stay exact.
#[test]
fn giant_cluster_falls_back_to_linear_scan() {
    let codes = make(
        &Shape::Clustered {
            centres: 1,
            max_flips: 6,
        },
        20_000,
        11,
    );
    let ids: Vec<u32> = (0..codes.len() as u32).collect();
    let idx = FrozenIndex::build(&codes, None, None).unwrap();
    let mut scratch = hashguard_index::Scratch::new();
    let mut out = Vec::new();
    let st = idx.search_into(&codes[0], 31, &mut scratch, &mut out);
    assert!(st.linear, "{st:?}");
    out.sort_unstable();
    assert_eq!(out, brute(&codes, &ids, &codes[0], 31));
    assert_eq!(out.len(), codes.len());
    // A random query far from the cluster still uses the slots.
    let far = TestGen::seeded(3).code();
    let st = idx.search_into(&far, 31, &mut scratch, &mut Vec::new());
    assert!(!st.linear, "{st:?}");
}

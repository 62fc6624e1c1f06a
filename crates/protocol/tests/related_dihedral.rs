//! Related keys kept catchable and dihedral probes (issue 17 items 7 and 4): under `intervene`
//! the build keeps keys of related entries closer than `sep` (at most `cluster_cap` per
//! cluster), a voucher may open up to m = `max_opens` probes that all carry its one key and
//! counts as one match, more is an invalid voucher, and the client also probes the keys of its
//! image's dihedral variants. G1, G2 and PT6 are checked again with the new probes.

mod common;

use common::*;
use hashguard_pdq::PdqFloats;
use hashguard_protocol::keys::RELATED_DISTANCE;
use hashguard_protocol::params::{ParamsError, ParamsSpec, DIHEDRAL_ALL, MAX_DIHEDRAL_VARIANTS};
use hashguard_protocol::prelude::*;
use hashguard_protocol::sender::probe_key;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;

/// The common small parameters (k = 24, f = 1 over w = 4, sep = 3, T = 3) under `intervene`
/// with `m`, dihedral variants `dihedral` and `dihedral_f` flips per variant.
fn params_with(m: u8, dihedral: u8, dihedral_f: u8) -> Params {
    Params::new(ParamsSpec {
        max_opens: m,
        dihedral,
        dihedral_f,
        ..params(Policy::Intervene, 3).to_spec()
    })
    .expect("valid parameters")
}

struct Deployed {
    params: Params,
    secret_opener: Opener,
    table: ClientTable,
    secret: OpeningKey,
}

/// Builds a table from the list `entries` with `separate_related`, as the service does.
fn deploy(params: &Params, entries: &[Hash256], seed: u64) -> (Deployed, Separation) {
    let mut r = rng(seed);
    let secret = OpeningKey::generate(&mut r);
    let spec = spec_for(params, &secret, TableKind::Pdq, 2);
    let sep = separate_related(entries, params);
    let kb: Vec<KeyBytes> = sep.kept.iter().map(|&v| key_bytes(params, v)).collect();
    let built = build_table(&spec, &secret, &kb, &epoch(1), None, &mut r).expect("build");
    let table = load(&spec, &built, 1);
    let secret2 = OpeningKey::from_bytes(&secret.to_bytes()).expect("same key");
    (
        Deployed {
            params: params.clone(),
            secret_opener: Opener::new(secret2, params.clone()),
            table,
            secret,
        },
        sep,
    )
}

fn upload(
    d: &Deployed,
    client: &mut Client,
    p: &PdqInput,
    dihedral: Option<&DihedralInput>,
    r: &mut ChaCha20Rng,
) -> (Vec<u8>, OpenOutcome) {
    let c = cid(r);
    let it = item(Some(p.clone()), c, b"thumb");
    let b = binding(3, &c);
    let bv = match dihedral {
        Some(dh) => client.build_pdq_voucher_dihedral(&d.table, &it, dh, &b, r),
        None => client.build_pdq_voucher(&d.table, &it, &b, r),
    }
    .expect("builds");
    let layout = VoucherLayout::pdq(&d.params);
    let bytes = bv.voucher.encode();
    assert_eq!(bytes.len(), layout.voucher_len(), "fixed voucher length");
    let v = Voucher::decode(&bytes, &layout).expect("decodes");
    let out = d.secret_opener.open(&v, &layout, &b);
    (bytes, out)
}

/// Random PDQ floats (coefficients spread around 0, median recomputed as PDQ does by
/// thresholding at the lower median).
fn random_floats(r: &mut ChaCha20Rng) -> PdqFloats {
    let mut c = [0f32; 256];
    for x in c.iter_mut() {
        *x = (r.next_u32() % 20_001) as f32 - 10_000.0;
    }
    let mut sorted = c;
    sorted.sort_by(f32::total_cmp);
    PdqFloats {
        coefficients: c,
        median: sorted[127],
        quality: 90,
    }
}

/// `h` with key bit `i` (of the key's k bits) flipped and `extra` non-key bits flipped.
fn variant_of(params: &Params, h: &Hash256, key_bits: &[usize], extra: usize) -> Hash256 {
    let mut out = *h;
    for &i in key_bits {
        out = out.with_bit_flipped(usize::from(params.key_positions()[i]));
    }
    let mut flipped = 0;
    for b in (0..256usize).rev() {
        if flipped == extra {
            break;
        }
        if !params.key_positions().contains(&(b as u8)) {
            out = out.with_bit_flipped(b);
            flipped += 1;
        }
    }
    out
}

/// Margins that make key bit `i` of `params` the weakest.
fn weakest(params: &Params, i: usize, r: &mut ChaCha20Rng) -> [f32; 256] {
    let mut m = random_margins(r);
    m[usize::from(params.key_positions()[i])] = 0.25;
    m
}

// ---------------------------------------------------------------------------------------------
// Parameters: m and the dihedral field are pinned, validated and encoded.
// ---------------------------------------------------------------------------------------------

#[test]
fn max_opens_and_dihedral_are_pinned_and_checked() {
    let p = params_with(4, 0b1_0001, 0);
    assert_eq!(p.probes(), 5 + 2, "P = C(4,<=1) + 2 variants x 1");
    assert_eq!(p.cluster_cap(), 1, "4 / 3 orientations");
    assert_eq!(Params::decode(&p.encode()), Ok(p.clone()));
    let pin = PinnedParams::exactly(p.clone());
    assert_eq!(
        pin.check(&params_with(6, 0b1_0001, 0)),
        Err(ParamsError::NotPinned("max_opens"))
    );
    assert_eq!(
        pin.check(&params_with(4, 0b1_0000, 0)),
        Err(ParamsError::NotPinned("dihedral"))
    );
    assert_eq!(
        pin.check(&params_with(4, 0b1_0001, 1)),
        Err(ParamsError::NotPinned("dihedral_f"))
    );
    let base = params(Policy::Intervene, 3).to_spec();
    // m below the number of probed orientations, m = 0, or more than f flips per variant.
    for bad in [
        ParamsSpec {
            max_opens: 2,
            dihedral: 0b11,
            ..base.clone()
        },
        ParamsSpec {
            max_opens: 0,
            ..base.clone()
        },
        ParamsSpec {
            max_opens: 8,
            dihedral: 1,
            dihedral_f: 2,
            ..base.clone()
        },
        ParamsSpec {
            max_opens: 8,
            dihedral: 0x80,
            ..base.clone()
        },
    ] {
        assert!(Params::new(bad).is_err());
    }
    // The payload has MAX_DIHEDRAL_VARIANTS slots for the variants' PDQ: three variants are
    // refused by name, whatever m and P allow.
    assert_eq!(MAX_DIHEDRAL_VARIANTS, 2);
    for dihedral in [0b111, 0b1_0101, DIHEDRAL_ALL] {
        assert_eq!(
            Params::new(ParamsSpec {
                max_opens: 8,
                dihedral,
                ..base.clone()
            }),
            Err(ParamsError::TooManyDihedralVariants {
                got: dihedral.count_ones() as usize,
                max: MAX_DIHEDRAL_VARIANTS
            })
        );
    }
    assert!(Params::new(ParamsSpec {
        max_opens: 8,
        dihedral: 0b100_0001,
        ..base.clone()
    })
    .is_ok());
    // `silent`: synthetics open exactly one probe, so m = 1 and no dihedral probes.
    let silent = params(Policy::Silent, 3).to_spec();
    for bad in [
        ParamsSpec {
            max_opens: 2,
            ..silent.clone()
        },
        ParamsSpec {
            max_opens: 2,
            dihedral: 1,
            ..silent.clone()
        },
    ] {
        assert!(matches!(
            Params::new(bad),
            Err(ParamsError::PolicyMismatch(_))
        ));
    }
    // sep keeps its meaning for unrelated keys: still at least 2f + 1.
    assert!(matches!(
        Params::new(ParamsSpec {
            sep: 2,
            max_opens: 4,
            ..base
        }),
        Err(ParamsError::SeparationTooSmall { .. })
    ));
    // The presets.
    let v1 = Params::v1(Policy::Intervene);
    assert!(v1.max_opens() >= v1.orientations());
    assert_eq!(Params::v1(Policy::Silent).max_opens(), 1);
    assert_eq!(Params::v1(Policy::Silent).dihedral(), 0);
    assert_eq!(Params::v1(Policy::Silent).probes(), 79);
}

// ---------------------------------------------------------------------------------------------
// Item 7: related keys are kept and open as one match; unrelated ones stay separated.
// ---------------------------------------------------------------------------------------------

#[test]
fn related_keys_are_kept_and_open_as_one_match() {
    let params = params_with(2, 0, 0);
    assert_eq!(params.cluster_cap(), 2);
    let mut r = rng(700);
    let a = random_hash(&mut r);
    // Two colourways: key 1 bit apart (< sep = 3), full PDQ 9 bits apart (related).
    let b = variant_of(&params, &a, &[5], 8);
    assert!(a.distance(&b) <= RELATED_DISTANCE);
    let others: Vec<Hash256> = (0..30).map(|_| random_hash(&mut r)).collect();
    let mut list = vec![a, b];
    list.extend(&others);
    let (d, sep) = deploy(&params, &list, 701);
    let (ka, kb) = (pdq_key(&a, &params), pdq_key(&b, &params));
    assert!(sep.kept.binary_search(&ka).is_ok() && sep.kept.binary_search(&kb).is_ok());
    assert!(sep.kept_close >= 2);
    // Strict separation (m = 1, as before and as under `silent`) drops one of them.
    let strict = separate_related(&list, &common::params(Policy::Intervene, 3));
    assert_eq!(
        strict.kept.binary_search(&ka).is_ok() as u8 + strict.kept.binary_search(&kb).is_ok() as u8,
        1
    );
    assert!(strict.pruned_related.contains(&ka) || strict.pruned_related.contains(&kb));
    assert_eq!(strict.pruned_histogram[0], strict.pruned_related.len());

    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let mut store = AccountShares::new(params.clone());
    // A copy of b whose differing key bit is among its weakest probes both keys: two opens,
    // one match, one share.
    for (listed, n_open) in [(a, 2u16), (b, 2)] {
        let p = PdqInput {
            hash: listed,
            margins: weakest(&params, 5, &mut r),
            quality: 90,
        };
        let (_, out) = upload(&d, &mut client, &p, None, &mut r);
        let OpenOutcome::Opened(rec) = out else {
            panic!("a related pair opens as one match, got {out:?}")
        };
        assert_eq!(rec.opened_probes, n_open);
        let row = rec.encode();
        assert_eq!(OpenedRecord::decode(&row, &params).as_ref(), Ok(&*rec));
        assert_eq!(store.add(*rec), AddOutcome::Added);
    }
    assert_eq!(
        store.distinct(),
        2,
        "each voucher is one share, not one per probe"
    );
    // With other weak bits, each copy opens its own key only.
    let mut m = random_margins(&mut r);
    m[usize::from(params.key_positions()[5])] = 1e6;
    let p = PdqInput {
        hash: b,
        margins: m,
        quality: 90,
    };
    let (_, out) = upload(&d, &mut client, &p, None, &mut r);
    assert!(matches!(out, OpenOutcome::Opened(ref rec) if rec.opened_probes == 1));
}

#[test]
fn unrelated_keys_stay_separated_and_are_reported() {
    let params = params_with(2, 0, 0);
    let mut r = rng(710);
    let a = random_hash(&mut r);
    // Key 1 bit apart, but the pictures differ (full PDQ far apart): unrelated.
    let c = variant_of(&params, &a, &[7], 120);
    assert!(a.distance(&c) > RELATED_DISTANCE);
    let sep = separate_related(&[a, c], &params);
    assert_eq!(sep.kept.len(), 1);
    assert_eq!(sep.pruned_unrelated.len(), 1);
    assert!(sep.pruned_related.is_empty());
    assert_eq!(sep.kept_close, 0);
    assert_eq!(
        sep.pruned_histogram[4], 1,
        "distance 121 is in the 96-127 bucket"
    );
}

#[test]
fn old_opened_records_still_decode() {
    let params = params_with(2, 0, 0);
    let mut r = rng(720);
    let a = random_hash(&mut r);
    let (d, _) = deploy(&params, &[a], 721);
    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let p = PdqInput {
        hash: a,
        margins: random_margins(&mut r),
        quality: 90,
    };
    let (_, out) = upload(&d, &mut client, &p, None, &mut r);
    let OpenOutcome::Opened(rec) = out else {
        panic!("opens")
    };
    let v2 = rec.encode();
    // Version 1: no count (meaning one opened probe).
    let mut v1 = vec![1u8];
    v1.extend_from_slice(&v2[1..1 + 16 + 4 + 32 + 2]);
    v1.extend_from_slice(&v2[1 + 16 + 4 + 32 + 2 + 2..]);
    let back = OpenedRecord::decode(&v1, &params).expect("v1 decodes");
    assert_eq!(back.opened_probes, 1);
    assert_eq!(back.l1, rec.l1);
    // A count of 0 or above m is refused.
    for bad in [0u16, 3] {
        let mut b = v2.clone();
        b[55..57].copy_from_slice(&bad.to_le_bytes());
        assert!(OpenedRecord::decode(&b, &params).is_err());
    }
}

/// α·Q of probe `j` (the test plays the opener to forge probes, as a malicious client with a
/// second voucher's knowledge could not, to exercise the opener's rule).
fn alpha_times(d: &Deployed, q: &curve25519_dalek::ristretto::CompressedRistretto) -> [u8; 32] {
    d.secret
        .blind(&q.decompress().expect("valid Q"))
        .compress()
        .to_bytes()
}

#[test]
fn more_than_m_opens_or_mixed_keys_are_invalid() {
    let params = params_with(2, 0, 0);
    let mut r = rng(730);
    let a = random_hash(&mut r);
    let (d, _) = deploy(&params, &[a], 731);
    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let p = PdqInput {
        hash: a,
        margins: random_margins(&mut r),
        quality: 90,
    };
    let c = cid(&mut r);
    let b = binding(3, &c);
    let bv = client
        .build_pdq_voucher(&d.table, &item(Some(p), c, b"t"), &b, &mut r)
        .expect("builds");
    let layout = VoucherLayout::pdq(&params);
    let v = bv.voucher.clone();
    // Find the honest opening probe and its rkey.
    let mut rkey = None;
    let mut keys = Vec::new();
    for pr in &v.probes {
        let k = probe_key(
            &alpha_times(&d, &pr.q),
            &pr.q.to_bytes(),
            &v.voucher_id,
            &b.ctx_bind(),
        );
        let mut body = [0u8; 16];
        body.copy_from_slice(&pr.ct[..16]);
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&pr.ct[16..]);
        if hashguard_protocol::suite::open(&k, &[], &mut body, &tag) {
            rkey = Some(body);
        }
        keys.push(k);
    }
    let rkey = rkey.expect("the listed copy has an opening probe");
    let forge = |v: &mut Voucher, n: usize, body: [u8; 16]| {
        let mut done = 0;
        for (j, pr) in v.probes.iter_mut().enumerate() {
            if done == n {
                break;
            }
            let mut probe_body = [0u8; 16];
            probe_body.copy_from_slice(&pr.ct[..16]);
            let mut tag = [0u8; 16];
            tag.copy_from_slice(&pr.ct[16..]);
            if hashguard_protocol::suite::open(&keys[j], &[], &mut probe_body, &tag) {
                continue;
            }
            let mut body = body;
            let tag = hashguard_protocol::suite::seal(&keys[j], &[], &mut body);
            pr.ct[..16].copy_from_slice(&body);
            pr.ct[16..].copy_from_slice(&tag);
            done += 1;
        }
    };
    // One extra probe with the same key: 2 ≤ m opens, still one match.
    let mut two = v.clone();
    forge(&mut two, 1, rkey);
    assert!(matches!(
        d.secret_opener.open(&two, &layout, &b),
        OpenOutcome::Opened(ref rec) if rec.opened_probes == 2
    ));
    // Two extra: 3 > m opens, an invalid voucher.
    let mut three = v.clone();
    forge(&mut three, 2, rkey);
    assert_eq!(
        d.secret_opener.open(&three, &layout, &b),
        OpenOutcome::MultipleOpens(3)
    );
    // One extra with another key: no honest client builds that.
    let mut mixed = v.clone();
    let mut other = rkey;
    other[0] ^= 1;
    forge(&mut mixed, 1, other);
    assert_eq!(
        d.secret_opener.open(&mixed, &layout, &b),
        OpenOutcome::Invalid
    );
    // Under strict parameters (m = 1) two opens stay invalid, as before.
    let strict = Opener::new(
        OpeningKey::from_bytes(&d.secret.to_bytes()).expect("key"),
        common::params(Policy::Intervene, 3),
    );
    assert_eq!(
        strict.open(
            &two,
            &VoucherLayout::pdq(&common::params(Policy::Intervene, 3)),
            &b
        ),
        OpenOutcome::MultipleOpens(2)
    );
}

// A list with clusters of near-variants (keys within 2 bits, related or not) and random
// entries: whatever `separate_related` keeps, no image (own orientation and dihedral variants,
// any weak bits) reaches more than m kept keys. Checked on the ideal functionality (probe
// keys ∩ K), which the opener equals (PT1), so many lists are cheap.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn honest_vouchers_never_exceed_m(seed in any::<u64>(), m in 2u8..=8, dihedral in prop::sample::select(vec![0u8, 0b1_0000, 0b1_0001, 0b0_0101, 0b110_0000]), df in 0u8..=1) {
        let orientations = 1 + dihedral.count_ones() as u8;
        let m = m.max(orientations);
        let params = params_with(m, dihedral, df);
        let mut r = rng(seed);
        let mut list = Vec::new();
        let mut images = Vec::new();
        for _ in 0..6 {
            let fl = random_floats(&mut r);
            let base = fl.hash();
            list.push(base);
            images.push(fl);
            for _ in 0..(r.next_u32() % 6) {
                let bits: Vec<usize> = (0..=(r.next_u32() % 2) as usize)
                    .map(|_| (r.next_u32() % u32::from(params.k())) as usize)
                    .collect();
                let extra = if r.next_u32().is_multiple_of(2) { 4 } else { 100 };
                list.push(variant_of(&params, &base, &bits, extra));
            }
        }
        // Mirrored and rotated listed pictures too, so dihedral probes meet listed keys.
        let fl = random_floats(&mut r);
        for v in fl.dihedral_variants().iter().take(3) {
            list.push(v.hash());
        }
        images.push(fl);
        let sep = separate_related(&list, &params);
        let cap = params.cluster_cap();
        prop_assert!(sep.kept.len() + sep.removed() <= list.len());
        for (i, a) in sep.kept.iter().enumerate() {
            let close = sep.kept.iter().enumerate()
                .filter(|&(j, b)| j != i && (a ^ b).count_ones() < u32::from(params.sep()))
                .count();
            prop_assert!(close < usize::from(cap), "a kept key has {close} close kept keys");
        }
        for fl in &images {
            for _ in 0..8 {
                // Random weak bits: a re-encode moves margins, not the picture.
                let mut noisy = fl.clone();
                for c in noisy.coefficients.iter_mut() {
                    *c += (r.next_u32() % 201) as f32 - 100.0;
                }
                let p = PdqInput::from_floats(&noisy);
                let dh = DihedralInput::from_floats(&noisy);
                let keys = all_probe_keys(&p, Some(&dh), &params);
                prop_assert!(keys.len() <= usize::from(params.probes()));
                let opens = keys.iter().filter(|k| sep.kept.binary_search(k).is_ok()).count();
                prop_assert!(opens <= usize::from(m), "{opens} opens > m = {m}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Item 4: dihedral probes.
// ---------------------------------------------------------------------------------------------

#[test]
fn mirrored_and_rotated_copies_open_through_dihedral_probes() {
    let mut r = rng(740);
    let originals: Vec<PdqFloats> = (0..6).map(|_| random_floats(&mut r)).collect();
    let list: Vec<Hash256> = originals.iter().map(PdqFloats::hash).collect();
    // At most two variants per parameter set (MAX_DIHEDRAL_VARIANTS): pairs that together
    // cover all seven.
    for (n, pair) in [0b1_0001u8, 0b0_0110, 0b10_1000, 0b100_0001]
        .into_iter()
        .enumerate()
    {
        let params = params_with(8, pair, 0);
        let (d, sep) = deploy(&params, &list, 741 + n as u64);
        assert_eq!(sep.kept.len(), 6);
        let mut client = Client::new(AccountState::generate(&mut r), params.clone());
        for fl in &originals {
            // Every copy of a listed picture that a probed variant turns back (its floats are
            // exactly the copy's): variant `bit` undoes the copy turned by its inverse (rot90
            // and rot270 undo each other, the others undo themselves).
            let copies = fl.dihedral_variants();
            for bit in (0..7).filter(|b| pair & (1 << b) != 0) {
                let copy = &copies[[2, 1, 0, 3, 4, 5, 6][bit]];
                let p = PdqInput::from_floats(copy);
                let dh = DihedralInput::from_floats(copy);
                let (_, out) = upload(&d, &mut client, &p, Some(&dh), &mut r);
                assert!(
                    matches!(out, OpenOutcome::Opened(_)),
                    "dihedral copy {bit} opens, got {out:?}"
                );
                // Without the dihedral input the same copy probes only its own orientation.
                let (_, out) = upload(&d, &mut client, &p, None, &mut r);
                assert_eq!(out, OpenOutcome::NoMatch);
            }
        }
    }
}

#[test]
fn identical_variant_keys_are_deduplicated() {
    let params = params_with(8, 0b1_0001, 0);
    let mut r = rng(750);
    // A picture equal to its left-right mirror: the flipy transform keeps odd columns and
    // negates even ones, so with every even-column coefficient 0 the mirror's floats are equal.
    let mut fl = random_floats(&mut r);
    for i in 0..16 {
        for j in (0..16).step_by(2) {
            fl.coefficients[i * 16 + j] = 0.0;
        }
    }
    let mut sorted = fl.coefficients;
    sorted.sort_by(f32::total_cmp);
    fl.median = sorted[127];
    let mirror = &fl.dihedral_variants()[4];
    assert_eq!(mirror.hash(), fl.hash());
    let p = PdqInput::from_floats(&fl);
    let dh = DihedralInput::from_floats(&fl);
    let keys = all_probe_keys(&p, Some(&dh), &params);
    let mut distinct = keys.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len(), "no key probed twice");
    assert!(
        keys.len() < usize::from(params.probes()),
        "the mirror's key is dropped"
    );
    let (d, _) = deploy(&params, &[fl.hash()], 751);
    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let (bytes, out) = upload(&d, &mut client, &p, Some(&dh), &mut r);
    assert_eq!(bytes.len(), VoucherLayout::pdq(&params).voucher_len());
    // Own key and mirror key are one key: one opened probe, not two.
    assert!(
        matches!(out, OpenOutcome::Opened(ref rec) if rec.opened_probes == 1),
        "{out:?}"
    );
}

/// G1 and G2 with dihedral probes: the voucher of an image whose *mirror* is listed and of the
/// same image against a table without it differ only in probe ciphertext bytes (a probe's Q is
/// fresh either way, the client state is identical), and which variant a probe came from is
/// not visible: the same seed gives byte-identical vouchers up to probe ct.
#[test]
fn g1_g2_voucher_bytes_independent_of_membership_and_variant() {
    let params = params_with(8, 0b1_0001, 0);
    let mut r = rng(760);
    let secret = OpeningKey::generate(&mut r);
    let spec = spec_for(&params, &secret, TableKind::Pdq, 2);
    let fl = random_floats(&mut r);
    let mirror_key = pdq_key(&fl.dihedral_variants()[4].hash(), &params);
    let others: Vec<Hash256> = (0..20).map(|_| random_hash(&mut r)).collect();
    let base = separate_related(&others, &params).kept;
    let without: Vec<u64> = base
        .iter()
        .copied()
        .filter(|k| (k ^ mirror_key).count_ones() >= 3)
        .collect();
    let mut with = without.clone();
    with.push(mirror_key);
    let mk = |ks: &Vec<u64>| {
        let kb: Vec<KeyBytes> = ks.iter().map(|&v| key_bytes(&params, v)).collect();
        let built = build_table(&spec, &secret, &kb, &epoch(1), None, &mut rng(1)).expect("build");
        load(&spec, &built, 1)
    };
    let (t_with, t_without) = (mk(&with), mk(&without));
    let state = AccountState::generate(&mut r);
    let p = PdqInput::from_floats(&fl);
    let dh = DihedralInput::from_floats(&fl);
    let c = cid(&mut r);
    let run = |table: &ClientTable| {
        let mut client = Client::new(
            AccountState::decode(&state.encode()).expect("state"),
            params.clone(),
        );
        let bv = client
            .build_pdq_voucher_dihedral(
                table,
                &item(Some(p.clone()), c, b"thumb"),
                &dh,
                &binding(9, b"att"),
                &mut rng(99),
            )
            .expect("builds");
        (
            client.state().encode().to_vec(),
            bv.voucher.encode(),
            bv.vd_blob,
        )
    };
    let (s1, v1, vd1) = run(&t_with);
    let (s2, v2, vd2) = run(&t_without);
    assert_eq!(s1, s2);
    assert_eq!(vd1, vd2);
    assert_eq!(v1.len(), v2.len());
    let mut ct_diff = 0;
    for (i, (a, b)) in v1.iter().zip(&v2).enumerate() {
        if a != b {
            let in_probe = i >= 22 && i < 22 + 64 * usize::from(params.probes());
            assert!(
                in_probe && (i - 22) % 64 >= 32,
                "byte {i} outside a probe ct differs"
            );
            ct_diff += 1;
        }
    }
    assert!(ct_diff > 0);
    let opener = Opener::new(secret, params.clone());
    let layout = VoucherLayout::pdq(&params);
    let b = binding(9, b"att");
    assert!(matches!(
        opener.open(&Voucher::decode(&v1, &layout).expect("v1"), &layout, &b),
        OpenOutcome::Opened(_)
    ));
    assert_eq!(
        opener.open(&Voucher::decode(&v2, &layout).expect("v2"), &layout, &b),
        OpenOutcome::NoMatch
    );
    // G1: a non-matching voucher with dihedral probes opens nothing.
    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let stranger = random_floats(&mut r);
    let ps = PdqInput::from_floats(&stranger);
    let dhs = DihedralInput::from_floats(&stranger);
    let keys = all_probe_keys(&ps, Some(&dhs), &params);
    if !keys.iter().any(|k| without.contains(k)) {
        let c = cid(&mut r);
        let b = binding(9, &c);
        let bv = client
            .build_pdq_voucher_dihedral(&t_without, &item(Some(ps), c, b"x"), &dhs, &b, &mut r)
            .expect("builds");
        assert_eq!(opener.open(&bv.voucher, &layout, &b), OpenOutcome::NoMatch);
    }
}

/// PT6 with dihedral probes: the opened position of a mirrored copy is uniform over P.
#[test]
fn pt6_dihedral_opened_position_is_uniform() {
    let params = params_with(8, 0b1_0001, 0);
    let p_count = usize::from(params.probes());
    assert_eq!(p_count, 7);
    let mut r = rng(770);
    let originals: Vec<PdqFloats> = (0..4).map(|_| random_floats(&mut r)).collect();
    let list: Vec<Hash256> = originals.iter().map(PdqFloats::hash).collect();
    let (d, _) = deploy(&params, &list, 771);
    let mut client = Client::new(AccountState::generate(&mut r), params.clone());
    let runs = 600;
    let mut bins = vec![0u32; p_count];
    for i in 0..runs {
        let copy = &originals[i % originals.len()].dihedral_variants()[4];
        let p = PdqInput::from_floats(copy);
        let dh = DihedralInput::from_floats(copy);
        let (_, out) = upload(&d, &mut client, &p, Some(&dh), &mut r);
        match out {
            OpenOutcome::Opened(rec) => bins[usize::from(rec.probe_index)] += 1,
            other => panic!("expected an open, got {other:?}"),
        }
    }
    let e = f64::from(runs as u32) / p_count as f64;
    let chi2: f64 = bins.iter().map(|&o| (f64::from(o) - e).powi(2) / e).sum();
    // χ² with P − 1 = 6 degrees of freedom: p = 1e-3 at 22.46.
    assert!(
        chi2 < 22.46,
        "opened positions not uniform: {bins:?} (chi2 {chi2})"
    );
}

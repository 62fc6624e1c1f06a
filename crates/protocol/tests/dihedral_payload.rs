//! The payload carries the PDQ of each probed dihedral variant (issue 17 items 4 and 8): a
//! mirrored or rotated copy of a listed image opens through its variant's key, and the server's
//! full-distance check (PDQ <= 31 against the listed entry) can only hold it if it compares the
//! orientation that matched. Checked on the wire format (round trip, strict lengths and
//! padding, [`Payload::orientations`]) and end to end on real photographs through the real
//! client, opener and consented check at the v1 parameters.

mod common;
mod images;

use common::*;
use hashguard_pdq::{PdqHasher, RgbImage as PdqRgb, MATCH_THRESHOLD};
use hashguard_protocol::params::{DIHEDRAL_NAMES, MAX_DIHEDRAL_VARIANTS, V1_DIHEDRAL};
use hashguard_protocol::prelude::*;
use hashguard_protocol::voucher::{Payload, PAYLOAD_LEN};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;

fn payload(
    pdq: [u8; 32],
    quality: u8,
    video: bool,
    frame_idx: u16,
    fill: [u8; 3],
    variant_pdq: [[u8; 32]; MAX_DIHEDRAL_VARIANTS],
) -> Payload {
    Payload {
        pdq,
        quality,
        media_kind: if video {
            MediaKind::VideoFrame
        } else {
            MediaKind::Image
        },
        frame_idx,
        content_sha256: [fill[0]; 32],
        vd_key: [fill[1]; 32],
        vd_blob_id: [fill[2]; 16],
        variant_pdq,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Every field, the variant slots included, survives encode/decode; the encoding is 224
    /// bytes; one byte more or less, the old 160-byte format, or a non-zero padding byte is
    /// refused.
    #[test]
    fn payload_roundtrip_with_variant_slots(
        pdq in any::<[u8; 32]>(),
        quality in 0u8..=100,
        video in any::<bool>(),
        frame_idx in any::<u16>(),
        fill in any::<[u8; 3]>(),
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
        pad_at in 0usize..44,
        pad_byte in 1u8..=255,
    ) {
        let p = payload(pdq, quality, video, frame_idx, fill, [a, b]);
        let bytes = p.encode();
        prop_assert_eq!(bytes.len(), 224);
        prop_assert_eq!(PAYLOAD_LEN, 224);
        // The slots sit right after vd_blob_id, before the padding.
        prop_assert_eq!(&bytes[116..148], &a[..]);
        prop_assert_eq!(&bytes[148..180], &b[..]);
        prop_assert!(bytes[180..].iter().all(|&x| x == 0));
        let back = Payload::decode(&bytes).expect("decodes");
        prop_assert!(back == p);
        prop_assert_eq!(back.variant_pdq, [a, b]);
        for len in [0, 160, PAYLOAD_LEN - 1, PAYLOAD_LEN + 1] {
            let mut v = bytes.to_vec();
            v.resize(len, 0);
            let wrong_length = matches!(
                Payload::decode(&v),
                Err(DecodeError::WrongLength { what: "payload", expected: 224, got }) if got == len
            );
            prop_assert!(wrong_length);
        }
        let mut padded = bytes;
        padded[180 + pad_at] = pad_byte;
        prop_assert_eq!(
            Payload::decode(&padded),
            Err(DecodeError::InvalidValue("payload padding"))
        );
    }
}

#[test]
fn orientations_follow_the_probed_variants_and_skip_empty_slots() {
    let (own, rot90, flipy) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    let v1 = Params::v1(Policy::Intervene);
    assert_eq!(v1.dihedral(), V1_DIHEDRAL);
    assert_eq!((DIHEDRAL_NAMES[0], DIHEDRAL_NAMES[4]), ("rot90", "flipy"));
    let p = payload(own, 90, false, 0, [0; 3], [rot90, flipy]);
    assert_eq!(
        p.orientations(&v1),
        vec![(None, own), (Some(0), rot90), (Some(4), flipy)]
    );
    // An all-zero slot is skipped, whichever it is.
    let p = payload(own, 90, false, 0, [0; 3], [[0; 32], flipy]);
    assert_eq!(p.orientations(&v1), vec![(None, own), (Some(4), flipy)]);
    // Parameters without dihedral probes: only the item as sent.
    let silent = Params::v1(Policy::Silent);
    let p = payload(own, 90, false, 0, [0; 3], [[0; 32]; 2]);
    assert_eq!(p.orientations(&silent), vec![(None, own)]);
    // One probed variant (flipplus1, bit 5) uses the first slot.
    let one = Params::new(ParamsSpec {
        dihedral: 1 << 5,
        ..v1.to_spec()
    })
    .expect("valid");
    let p = payload(own, 90, false, 0, [0; 3], [rot90, [0; 32]]);
    assert_eq!(p.orientations(&one), vec![(None, own), (Some(5), rot90)]);
}

/// A v1 `intervene` deployment listing `listed` plus random filler keys.
struct V1 {
    params: Params,
    table: ClientTable,
    opener: Opener,
}

fn deploy_v1(listed: &[Hash256], r: &mut ChaCha20Rng) -> V1 {
    let params = Params::v1(Policy::Intervene);
    let secret = OpeningKey::generate(r);
    let spec = spec_for(&params, &secret, TableKind::Pdq, 2);
    let mut entries = listed.to_vec();
    entries.extend((0..300).map(|_| random_hash(r)));
    let sep = separate_related(&entries, &params);
    for h in listed {
        assert!(
            sep.kept.binary_search(&pdq_key(h, &params)).is_ok(),
            "listed key kept"
        );
    }
    let kb: Vec<KeyBytes> = sep.kept.iter().map(|&v| key_bytes(&params, v)).collect();
    let built = build_table(&spec, &secret, &kb, &epoch(1), None, r).expect("build");
    V1 {
        table: load(&spec, &built, 1),
        opener: Opener::new(secret, params.clone()),
        params,
    }
}

/// Uploads `img` as the SDK does (its PDQ and the PDQ of the variants the parameters probe,
/// hashed from its rotated and mirrored pixels), opens the voucher and, if it opened, reveals
/// the payload through the consented check.
fn upload_and_reveal(
    d: &V1,
    client: &mut Client,
    img: &image::RgbImage,
    r: &mut ChaCha20Rng,
) -> Option<Payload> {
    let (w, h) = img.dimensions();
    let view = PdqRgb::new(img.as_raw(), w as usize, h as usize).expect("valid image");
    let mut hasher = PdqHasher::new();
    let pdq = PdqInput::from_floats(&hasher.floats_rgb(&view));
    let dihedral = DihedralInput::from_variant_floats(
        &hasher.dihedral_pixel_floats_rgb_selected(&view, d.params.dihedral()),
    );
    let c = cid(r);
    let b = binding(4, &c);
    let bv = client
        .build_pdq_voucher_dihedral(&d.table, &item(Some(pdq), c, b"thumb"), &dihedral, &b, r)
        .expect("voucher");
    let layout = VoucherLayout::pdq(&d.params);
    let v = Voucher::decode(&bv.voucher.encode(), &layout).expect("decodes");
    match d.opener.open(&v, &layout, &b) {
        OpenOutcome::Opened(rec) => {
            let got = check_consent(&rec, &bv.held.consent(), &bv.vd_blob).expect("consent");
            Some(got.payload.clone())
        }
        OpenOutcome::NoMatch => None,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn dih_dir(test: &str) -> Option<std::path::PathBuf> {
    hashguard_testsupport::testdata(
        test,
        "pdq/images/reg-test-input/dih",
        "bridge-1-original.jpg",
    )
}

/// A mirrored and a rotated copy of a listed photograph (the reference's own transformed JPEG
/// files) open, and the payload's matching orientation is within 31 of the listed hash while
/// the PDQ as sent is not: the full-distance check holds them only through the variant slots.
#[test]
fn mirrored_and_rotated_copies_carry_their_matching_orientation() {
    let Some(dir) = dih_dir("mirrored_and_rotated_copies_carry_their_matching_orientation") else {
        return;
    };
    let open = |name: &str| {
        image::open(dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgb8()
    };
    let original = open("bridge-1-original.jpg");
    let listed = images::floats(&original).hash();
    let mut r = rng(1717);
    let d = deploy_v1(&[listed], &mut r);
    let mut client = Client::new(AccountState::generate(&mut r), d.params.clone());

    // The listed photograph itself: its own PDQ is the match.
    let p = upload_and_reveal(&d, &mut client, &original, &mut r).expect("the original opens");
    let own = Hash256::from_be_bytes(&p.pdq);
    assert_eq!(own, listed);

    // bridge-6-flipy is the left-right mirror; bridge-4-rotate-270 is the original turned 90
    // degrees clockwise, which v1's rot90 variant (counter-clockwise) turns back. Each also
    // as a messenger would pass it on: a JPEG re-encode (quality 80), and at half size
    // (bilinear) re-encoded at quality 75.
    for (name, variant) in [
        ("bridge-6-flipy.jpg", 4usize),
        ("bridge-4-rotate-270.jpg", 0usize),
    ] {
        let file = open(name);
        let half = images::resize(&file, 0.5, image::imageops::FilterType::Triangle);
        for (what, img) in [
            ("file", file.clone()),
            ("jpeg q80", images::jpeg(&file, 80)),
            ("half size + jpeg q75", images::jpeg(&half, 75)),
        ] {
            let p = upload_and_reveal(&d, &mut client, &img, &mut r)
                .unwrap_or_else(|| panic!("{name} ({what}) must open"));
            let sent = Hash256::from_be_bytes(&p.pdq).distance(&listed);
            assert!(
                sent > MATCH_THRESHOLD,
                "{name} ({what}): the PDQ as sent is {sent} from the listed hash; the test \
                 would not show the slots are needed"
            );
            let orientations = p.orientations(&d.params);
            assert_eq!(orientations.len(), 3, "both variant slots filled");
            let (best, distance) = orientations
                .iter()
                .map(|(o, h)| (*o, Hash256::from_be_bytes(h).distance(&listed)))
                .min_by_key(|&(_, dist)| dist)
                .expect("at least the PDQ as sent");
            eprintln!(
                "{name} ({what}): as sent {sent}, {} {distance}",
                best.map_or("as sent", |i| DIHEDRAL_NAMES[i])
            );
            assert_eq!(
                best,
                Some(variant),
                "{name} ({what}) matches through its variant"
            );
            assert!(
                distance <= MATCH_THRESHOLD,
                "{name} ({what}): the variant is {distance} from the listed hash"
            );
        }
    }
}

/// Only images with dihedral input fill the slots: a voucher built without it and video
/// keyframes carry zeros, and so does `silent`, which probes no variant.
#[test]
fn slots_are_zero_without_probed_variants() {
    let mut r = rng(1718);
    let fl = {
        let img = image::RgbImage::from_fn(96, 80, |x, y| {
            image::Rgb([(x * 2 + y) as u8, (y * 3) as u8, (x * y % 251) as u8])
        });
        images::floats(&img)
    };
    let d = deploy_v1(&[fl.hash()], &mut r);
    let mut client = Client::new(AccountState::generate(&mut r), d.params.clone());
    let pdq = PdqInput::from_floats(&fl);
    let dihedral = DihedralInput::from_floats(&fl);
    let layout = VoucherLayout::pdq(&d.params);
    let reveal = |bv: &BuiltVoucher, b: &UploadBinding, layout: &VoucherLayout| -> Payload {
        let OpenOutcome::Opened(rec) = d.opener.open(&bv.voucher, layout, b) else {
            panic!("the listed image opens")
        };
        check_consent(&rec, &bv.held.consent(), &bv.vd_blob)
            .expect("consent")
            .payload
            .clone()
    };
    // With dihedral input: both slots filled, in DIHEDRAL_NAMES order (rot90, then flipy).
    let c = cid(&mut r);
    let b = binding(5, &c);
    let bv = client
        .build_pdq_voucher_dihedral(
            &d.table,
            &item(Some(pdq.clone()), c, b""),
            &dihedral,
            &b,
            &mut r,
        )
        .expect("voucher");
    let p = reveal(&bv, &b, &layout);
    let v = dihedral.variants();
    assert_eq!(
        p.variant_pdq,
        [v[0].hash.to_be_bytes(), v[4].hash.to_be_bytes()]
    );
    // Without it: zeros.
    let c = cid(&mut r);
    let b = binding(5, &c);
    let bv = client
        .build_pdq_voucher(&d.table, &item(Some(pdq.clone()), c, b""), &b, &mut r)
        .expect("voucher");
    assert_eq!(reveal(&bv, &b, &layout).variant_pdq, [[0; 32]; 2]);
    // Video keyframes: zeros.
    let c = cid(&mut r);
    let b = binding(5, &c);
    let frame = Item {
        media_kind: MediaKind::VideoFrame,
        ..item(Some(pdq.clone()), c, b"")
    };
    let built = client
        .build_video_vouchers(&d.table, c, std::slice::from_ref(&frame), &b, &mut r)
        .expect("vouchers");
    assert_eq!(reveal(&built[0], &b, &layout).variant_pdq, [[0; 32]; 2]);
    // `silent` probes no variant: zeros even with dihedral input (the voucher may be a
    // synthetic one, whose payload is all zeros anyway; a real one is checked here).
    let silent = Params::v1(Policy::Silent);
    let mut n_real = 0;
    let secret = OpeningKey::generate(&mut r);
    let spec = spec_for(&silent, &secret, TableKind::Pdq, 1);
    let kb = [key_bytes(&silent, pdq_key(&fl.hash(), &silent))];
    let built = build_table(&spec, &secret, &kb, &epoch(1), None, &mut r).expect("build");
    let table = load(&spec, &built, 1);
    let opener = Opener::new(secret, silent.clone());
    let layout = VoucherLayout::pdq(&silent);
    for _ in 0..20 {
        // A fresh account each time: one account would reuse its first decision for the same
        // picture (dedup), synthetic or not.
        let mut sc = Client::new(AccountState::generate(&mut r), silent.clone());
        let c = cid(&mut r);
        let b = binding(6, &c);
        let bv = sc
            .build_pdq_voucher_dihedral(
                &table,
                &item(Some(pdq.clone()), c, b""),
                &dihedral,
                &b,
                &mut r,
            )
            .expect("voucher");
        if bv.decision.synthetic {
            continue;
        }
        let OpenOutcome::Opened(rec) = opener.open(&bv.voucher, &layout, &b) else {
            panic!("the listed image opens")
        };
        let p = check_consent(&rec, &bv.held.consent(), &bv.vd_blob)
            .expect("consent")
            .payload
            .clone();
        assert_eq!(p.variant_pdq, [[0; 32]; 2]);
        assert_eq!(p.orientations(&silent).len(), 1);
        n_real += 1;
    }
    assert!(n_real > 0, "some real vouchers under silent");
}

//! The upload service end to end over real HTTP on loopback, on SQLite and on PostgreSQL: a
//! client registers, fetches and verifies the table, uploads a benign image (201, fetched back
//! bit-identical), a listed stand-in image re-encoded (451 with the intervention), consents to
//! the automatic check (blocked for review), a chance key collision (released at once), and an
//! account reaching T matches (a case in the review queue); and the authorization rules.
//!
//! No real abuse material and no real hash list: the stand-in lists in `assets/standin` list a
//! benign demo image (`assets/demo/hills.png`) and random values.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::time::Duration;

use hashguard_hashing::{Hashed, Hasher, Options};
use hashguard_protocol::keys::TableKind;
use hashguard_protocol::manifest::Manifest;
use hashguard_protocol::params::{PinnedParams, Policy, Preset};
use hashguard_protocol::prelude::*;
use hashguard_protocol::sender::BuiltVoucher;
use hashguard_server::config::Limits;
use hashguard_service::blobs::LocalBlobs;
use hashguard_service::intake::{Intake, MediaType, Upload, UploadOutcome, VoucherPart};
use hashguard_service::publish::TableDir;
use hashguard_service::serving::ServedTable;
use hashguard_store::{CaseKind, DatabaseLocation, OpenMode, Store};
use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use reqwest::StatusCode;
use serde_json::Value;

use common::*;

/// A registered device with a verified table, as the SDK will hold them.
struct Device {
    account: [u8; 16],
    token: String,
    table: ClientTable,
    client: Client,
    rng: ChaCha20Rng,
}

/// Fetches the manifest and its shards (checking the validators) and verifies them as the
/// client must before it builds any voucher.
async fn fetch_table(f: &Fixture) -> ClientTable {
    let r = f
        .http
        .get(f.url("/v1/table/manifest"))
        .send()
        .await
        .expect("manifest");
    assert_eq!(r.status(), StatusCode::OK);
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    assert_eq!(r.headers()["cache-control"], "public, no-cache");
    let bytes = r.bytes().await.expect("bytes");
    let again = f
        .http
        .get(f.url("/v1/table/manifest"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let now = hashguard_service::publish::now();
    // This test's client trusts the served manifest as a sandbox would sign it (the signed
    // bundle and the log are tested with the SDK).
    let manifest = hashguard_protocol::trust_sandbox::accept_alone(
        Manifest::decode(&bytes).expect("manifest decodes"),
        PinnedParams::exactly(f.params.clone()),
        now,
    )
    .expect("the client accepts the manifest");
    let mut shards = Vec::new();
    for entry in manifest.table(TableKind::Pdq).expect("pdq table").shards() {
        let root = hex::encode(entry.root);
        let r = f
            .http
            .get(f.url(&format!("/v1/table/shards/{root}")))
            .send()
            .await
            .expect("shard");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        shards.push(TableShard::decode(&r.bytes().await.expect("bytes")).expect("shard decodes"));
    }
    let missing = f
        .http
        .get(f.url(&format!("/v1/table/shards/{}", "0".repeat(64))))
        .send()
        .await
        .expect("missing shard");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    ClientTable::load(&manifest, TableKind::Pdq, &shards, 1 << 24).expect("the shards verify")
}

async fn device(f: &Fixture, seed: u64) -> Device {
    let (_, account, token) = register(f).await;
    let table = fetch_table(f).await;
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let client = Client::new(AccountState::generate(&mut rng), f.params.clone());
    Device {
        account,
        token,
        table,
        client,
        rng,
    }
}

fn image_input(name: &str) -> PdqInput {
    let mut hasher = Hasher::new(Options {
        floats: true,
        ..Options::default()
    });
    match hasher.hash_path(&repo().join("assets/demo").join(name)) {
        Ok(Hashed::Image {
            floats: Some(floats),
            ..
        }) => PdqInput::from_floats(&floats),
        other => panic!("{name}: {other:?}"),
    }
}

/// The visual derivative the SDK would seal for `input`: for a demo image's hash, the JPEG of
/// that image's greyscale derivative (what the server's second hash reads); for any other
/// hash, bytes that are no picture.
fn thumbnail_for(input: &PdqInput) -> Vec<u8> {
    static DERIVATIVES: std::sync::OnceLock<Vec<(hashguard_pdq::Hash256, Vec<u8>)>> =
        std::sync::OnceLock::new();
    let known = DERIVATIVES.get_or_init(|| {
        [
            "hills.png",
            "hills-recompressed.jpg",
            "hills-small.jpg",
            "blocks.webp",
        ]
        .iter()
        .map(|name| {
            let picture = image::open(repo().join("assets/demo").join(name))
                .expect("demo image")
                .into_rgb8();
            let (w, h) = picture.dimensions();
            let grey =
                hashguard_hashing::second::derivative(picture.as_raw(), w as usize, h as usize)
                    .expect("derivative");
            let mut jpeg = std::io::Cursor::new(Vec::new());
            grey.write_to(&mut jpeg, image::ImageFormat::Jpeg)
                .expect("jpeg");
            (image_input(name).hash, jpeg.into_inner())
        })
        .collect()
    });
    known
        .iter()
        .find(|(hash, _)| *hash == input.hash)
        .map_or_else(
            || b"a small benign thumbnail".to_vec(),
            |(_, jpeg)| jpeg.clone(),
        )
}

/// Builds the voucher for `input` over a fresh random ciphertext (standing in for the SDK's
/// encrypted attachment) and uploads both; returns the status, the JSON body, the voucher and
/// the ciphertext.
async fn upload(
    f: &Fixture,
    d: &mut Device,
    input: PdqInput,
) -> (StatusCode, Value, BuiltVoucher, Vec<u8>) {
    let (ciphertext, built) = prepare(d, input);
    let (status, body) = upload_raw(f, &d.token, &ciphertext, &built).await;
    (status, body, built, ciphertext)
}

/// A random ciphertext and its voucher for an image with `input`'s hash, as the device's
/// client builds them.
fn prepare(d: &mut Device, input: PdqInput) -> (Vec<u8>, BuiltVoucher) {
    let thumbnail = thumbnail_for(&input);
    prepare_with(d, input, None, &thumbnail)
}

/// As [`prepare`], with this visual derivative, and the dihedral probes of `dihedral` if given.
fn prepare_with(
    d: &mut Device,
    input: PdqInput,
    dihedral: Option<&hashguard_protocol::sender::DihedralInput>,
    thumbnail: &[u8],
) -> (Vec<u8>, BuiltVoucher) {
    let mut ciphertext = vec![0u8; 3000];
    d.rng.fill_bytes(&mut ciphertext);
    let mut content = [0u8; 32];
    d.rng.fill_bytes(&mut content);
    let item = Item {
        pdq: Some(input),
        content_sha256: content,
        media_kind: MediaKind::Image,
        frame_idx: 0,
        thumbnail,
    };
    let binding = UploadBinding::new(d.account, &ciphertext);
    let built = match dihedral {
        Some(v) => d
            .client
            .build_pdq_voucher_dihedral(&d.table, &item, v, &binding, &mut d.rng),
        None => d
            .client
            .build_pdq_voucher(&d.table, &item, &binding, &mut d.rng),
    }
    .expect("voucher");
    (ciphertext, built)
}

/// Uploads `ciphertext` with `built`'s voucher and visual derivative as they are.
async fn upload_raw(
    f: &Fixture,
    token: &str,
    ciphertext: &[u8],
    built: &BuiltVoucher,
) -> (StatusCode, Value) {
    upload_to(f, &f.base, token, ciphertext, built).await
}

/// The multipart form of an image upload: `ciphertext` with `built`'s voucher and visual
/// derivative.
fn image_form(ciphertext: &[u8], built: &BuiltVoucher) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("media", "image")
        .part(
            "ciphertext",
            reqwest::multipart::Part::bytes(ciphertext.to_vec()),
        )
        .part(
            "voucher",
            reqwest::multipart::Part::bytes(built.voucher.encode()),
        )
        .part("vd", reqwest::multipart::Part::bytes(built.vd_blob.clone()))
}

/// [`upload_raw`] to the server at `base`.
async fn upload_to(
    f: &Fixture,
    base: &str,
    token: &str,
    ciphertext: &[u8],
    built: &BuiltVoucher,
) -> (StatusCode, Value) {
    let form = image_form(ciphertext, built);
    let r = f
        .http
        .post(format!("{base}/v1/attachments"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status();
    (status, r.json().await.expect("json body"))
}

async fn download(f: &Fixture, token: &str, id: &str) -> (StatusCode, Vec<u8>) {
    let r = f
        .http
        .get(f.url(&format!("/v1/attachments/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("download");
    (r.status(), r.bytes().await.expect("bytes").to_vec())
}

async fn consent(
    f: &Fixture,
    token: &str,
    case: &str,
    built: &BuiltVoucher,
) -> (StatusCode, Value) {
    let reveal = built.held.consent();
    let r = f
        .http
        .post(f.url(&format!("/v1/cases/{case}/check")))
        .bearer_auth(token)
        .json(&serde_json::json!({
            "voucher_id": hex::encode(reveal.voucher_id),
            "k_adct": hex::encode(reveal.k_adct),
            "vd_key": hex::encode(reveal.vd_key),
        }))
        .send()
        .await
        .expect("check");
    (r.status(), r.json().await.expect("json"))
}

/// The stored detail of case `case`, read from the database.
async fn case_detail(f: &Fixture, case: &str) -> Value {
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let id = case.parse().expect("case id");
    let record = store.case(&id).await.expect("case").expect("exists");
    store.close().await;
    serde_json::from_str(&record.detail).expect("detail")
}

/// The second check (R/E12 step 2, docs/second-hash.md): when the listed entry's second hash
/// on file is of another picture, a copy within 31 PDQ bits of it is released by the consented
/// check, and the case says why; the second hash never skips on the client's word.
async fn a_differing_second_hash_releases(kind: &str) {
    let Some(f) = Fixture::start_full(
        kind,
        "a_differing_second_hash_releases",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
        wide_match_limits(),
        &[("hills.png", "blocks.webp")],
        |_| {},
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 41).await;
    let (status, held, built, _) = upload(&f, &mut d, image_input("hills-recompressed.jpg")).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
    let case = held["case_id"].as_str().expect("case").to_string();
    let (status, result) = consent(&f, &d.token, &case, &built).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["outcome"], "released", "{result}");
    let detail = case_detail(&f, &case).await;
    assert!(
        detail["second_hash"]
            .as_str()
            .expect("words")
            .starts_with("differs"),
        "{detail}"
    );
    assert!(
        detail["nearest_listed"]["distance"]
            .as_u64()
            .expect("distance")
            <= 31
    );

    // The same copy with a derivative that is no picture: the second check cannot pass, so it
    // is released too (only a list without a second hash lets PDQ decide alone).
    let (ciphertext, built) = prepare_with(
        &mut d,
        image_input("hills-recompressed.jpg"),
        None,
        b"not a picture",
    );
    let (status, held) = upload_raw(&f, &d.token, &ciphertext, &built).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
    let case = held["case_id"].as_str().expect("case").to_string();
    let (status, result) = consent(&f, &d.token, &case, &built).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["outcome"], "released", "{result}");
    let detail = case_detail(&f, &case).await;
    assert!(
        detail["second_hash"]
            .as_str()
            .expect("words")
            .contains("could not be read"),
        "{detail}"
    );
    f.stop().await;
}

/// A mirrored copy of the listed picture (v1 probes the mirror, issue 17 item 4): it opens
/// through its variant's key, and the consented check keeps it blocked because its mirrored PDQ
/// (the payload's variant slot) is within 31 of the entry and its derivative, turned the same
/// way, matches the entry's second hash; the case names the orientation.
async fn a_mirrored_copy_is_checked_in_its_orientation(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "a_mirrored_copy_is_checked_in_its_orientation",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 43).await;
    let listed = image::open(repo().join("assets/demo/hills-recompressed.jpg"))
        .expect("image")
        .into_rgb8();
    let mirrored = image::imageops::flip_horizontal(&listed);
    let (w, h) = (mirrored.width() as usize, mirrored.height() as usize);
    let mut pdq = hashguard_pdq::PdqHasher::new();
    let view = hashguard_pdq::RgbImage::new(mirrored.as_raw(), w, h).expect("view");
    let own = PdqInput::from_floats(&pdq.floats_rgb(&view));
    let listed_hash = image_input("hills.png").hash;
    assert!(
        own.hash.distance(&listed_hash) > 31,
        "as sent, the mirror is far from the entry"
    );
    let dihedral = hashguard_protocol::sender::DihedralInput::from_variant_floats(
        &pdq.dihedral_pixel_floats_rgb_selected(&view, hashguard_protocol::params::V1_DIHEDRAL),
    );
    let grey = hashguard_hashing::second::derivative(mirrored.as_raw(), w, h).expect("derivative");
    let mut thumbnail = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut thumbnail, image::ImageFormat::Jpeg)
        .expect("jpeg");
    let (ciphertext, built) = prepare_with(&mut d, own, Some(&dihedral), thumbnail.get_ref());
    let (status, held) = upload_raw(&f, &d.token, &ciphertext, &built).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
    let case = held["case_id"].as_str().expect("case").to_string();
    let (status, result) = consent(&f, &d.token, &case, &built).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let detail = case_detail(&f, &case).await;
    assert_eq!(result["outcome"], "blocked_for_review", "{result} {detail}");
    assert_eq!(detail["nearest_listed"]["orientation"], "flipy", "{detail}");
    assert!(
        detail["nearest_listed"]["distance"]
            .as_u64()
            .expect("distance")
            <= 31
    );
    assert_eq!(
        detail["second_hash"], "matches the same listed entry",
        "{detail}"
    );
    f.stop().await;
}

/// An image with the listed stand-in image's key bits and the rest of its hash far away: what
/// a chance key collision, or an image crafted to collide, looks like.
fn key_collision(f: &Fixture) -> PdqInput {
    let listed = image_input("hills-recompressed.jpg");
    let mut far = listed.hash;
    let keys: Vec<u8> = f.params.key_positions().to_vec();
    let mut flipped = 0;
    for bit in 0..256u16 {
        if flipped == 70 {
            break;
        }
        let b = u8::try_from(bit).expect("bit");
        if !keys.contains(&b) {
            far = far.with_bit_flipped(usize::from(bit));
            flipped += 1;
        }
    }
    PdqInput {
        hash: far,
        margins: listed.margins,
        quality: listed.quality,
    }
}

async fn upload_hold_check_release(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "upload_hold_check_release",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let health = f.http.get(f.url("/readyz")).send().await.expect("readyz");
    assert_eq!(health.status(), StatusCode::OK);
    let mut d = device(&f, 1).await;

    // A benign image: delivered, and fetched back bit-identical.
    let (status, body, _, ciphertext) = upload(&f, &mut d, image_input("blocks.webp")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["attachment_id"].as_str().expect("id");
    assert_eq!(
        download(&f, &d.token, id).await,
        (StatusCode::OK, ciphertext)
    );

    // The listed stand-in image, re-encoded: held, with the intervention in plain words.
    let (status, held, built, ciphertext) =
        upload(&f, &mut d, image_input("hills-recompressed.jpg")).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
    assert_eq!(held["status"], "held_for_check");
    let case = held["case_id"].as_str().expect("case").to_string();
    assert!(held["reason"]
        .as_str()
        .expect("reason")
        .contains("not sent"));
    assert!(held["check"]["url"]
        .as_str()
        .expect("url")
        .ends_with("/check"));
    assert!(!held["help"].as_array().expect("help").is_empty());
    let status = f
        .http
        .get(f.url(&format!("/v1/cases/{case}")))
        .bearer_auth(&d.token)
        .send()
        .await
        .expect("case");
    assert_eq!(status.status(), StatusCode::OK);
    // Another account cannot see or check it.
    let mut other = device(&f, 2).await;
    let peek = f
        .http
        .get(f.url(&format!("/v1/cases/{case}")))
        .bearer_auth(&other.token)
        .send()
        .await
        .expect("peek");
    assert_eq!(peek.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        consent(&f, &other.token, &case, &built).await.0,
        StatusCode::NOT_FOUND
    );
    // The consented check: the full PDQ is within 31 of the listed hash and the second hash of
    // its derivative matches that same entry's, so it stays blocked.
    let (status, result) = consent(&f, &d.token, &case, &built).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["outcome"], "blocked_for_review");
    let detail = case_detail(&f, &case).await;
    assert_eq!(
        detail["second_hash"], "matches the same listed entry",
        "{detail}"
    );
    assert!(
        detail["nearest_listed"]["distance"]
            .as_u64()
            .expect("distance")
            <= 31
    );
    // A second check of the same case is refused.
    assert_eq!(
        consent(&f, &d.token, &case, &built).await.0,
        StatusCode::CONFLICT
    );
    // The appeal route the intervention offers: the blocked item's sender appeals once; the
    // case shows it, the review queue lists it, and nobody else can appeal the case.
    let appeal_url = held["appeal"]["url"]
        .as_str()
        .expect("appeal url")
        .to_string();
    assert_eq!(appeal_url, format!("/v1/cases/{case}/appeal"));
    let appeal = |token: &str, body: Value| {
        f.http
            .post(f.url(&appeal_url))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = appeal(&other.token, serde_json::json!({}))
        .await
        .expect("other");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = appeal(&d.token, serde_json::json!({"message": "x".repeat(2_001)}))
        .await
        .expect("long");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = appeal(
        &d.token,
        serde_json::json!({"message": "This is a photo of my garden."}),
    )
    .await
    .expect("appeal");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.json::<Value>().await.expect("json")["state"], "open");
    let r = appeal(&d.token, serde_json::json!({}))
        .await
        .expect("again");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let shown: Value = f
        .http
        .get(f.url(&format!("/v1/cases/{case}")))
        .bearer_auth(&d.token)
        .send()
        .await
        .expect("case")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["state"], "check_blocked", "{shown}");
    assert_eq!(shown["appeal"]["state"], "open", "{shown}");
    let queue: Value = f
        .http
        .get(f.url("/v1/review/queue"))
        .bearer_auth(STAFF_TOKEN)
        .send()
        .await
        .expect("queue")
        .json()
        .await
        .expect("json");
    assert!(
        queue["open_appeals"]
            .as_array()
            .expect("appeals")
            .iter()
            .any(|a| a["case_id"] == case.as_str()),
        "{queue}"
    );
    // The held ciphertext is served to nobody, and its voucher cannot be replayed: moved to
    // other bytes it does not open (delivered like any non-match, and nothing is learned);
    // with its own bytes again it opens and is refused as a reused voucher id.
    let mut moved = ciphertext.clone();
    moved[0] ^= 1;
    let (status, body) = upload_raw(&f, &d.token, &moved, &built).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload_raw(&f, &d.token, &ciphertext, &built).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "reused_voucher");
    // Under another account the same bytes do not open either.
    let (status, body) = upload_raw(&f, &other.token, &ciphertext, &built).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // A chance key collision: the voucher opens (a key match), the check finds the full hash
    // far from every listed one and releases the item at once.
    let (status, held, built, ciphertext) = upload(&f, &mut other, key_collision(&f)).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
    let case = held["case_id"].as_str().expect("case");
    // Before its check it cannot be appealed yet (the check comes first).
    let r = f
        .http
        .post(f.url(&format!("/v1/cases/{case}/appeal")))
        .bearer_auth(&other.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("early appeal");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let (status, result) = consent(&f, &other.token, case, &built).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["outcome"], "released", "{result}");
    let id = result["attachment_id"].as_str().expect("id");
    assert_eq!(
        download(&f, &d.token, id).await,
        (StatusCode::OK, ciphertext)
    );

    // Authorization: no token, a revoked device.
    let none = f
        .http
        .get(f.url(&format!("/v1/attachments/{id}")))
        .send()
        .await
        .expect("no token");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let (device_id, _, token) = register(&f).await;
    let revoke = f
        .http
        .delete(f.url(&format!("/v1/devices/{device_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let after = f
        .http
        .get(f.url(&format!("/v1/attachments/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoked");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    let bogus = f
        .http
        .post(f.url("/v1/devices"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .expect("bogus");
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);
    f.stop().await;
}

async fn threshold_opens_one_case(kind: &str) {
    let (values, lists) = shared_random_lists(77);
    let Some(f) = Fixture::start(
        kind,
        "threshold_opens_one_case",
        &lists,
        Preset::Lite,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 3).await;
    let t = usize::from(f.params.threshold());
    let mut held = 0;
    for v in values.iter().take(t + 2) {
        let input = PdqInput {
            hash: *v,
            margins: [1.0; 256],
            quality: 90,
        };
        let (status, body, _, _) = upload(&f, &mut d, input).await;
        // A value pruned for separation has no key and is delivered; every listed key holds.
        if status == StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS {
            held += 1;
        } else {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    // The review queue over HTTP: staff only; a user's token is refused with 403.
    let queue_url = f.url("/v1/review/queue");
    let r = f
        .http
        .get(&queue_url)
        .bearer_auth(STAFF_TOKEN)
        .send()
        .await
        .expect("queue");
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.expect("json");
    assert!(listed["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .any(|c| c["kind"] == "threshold"));
    let r = f
        .http
        .get(&queue_url)
        .bearer_auth(&d.token)
        .send()
        .await
        .expect("user");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = f.http.get(&queue_url).send().await.expect("anonymous");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let queue = store.case_queue(100).await.expect("queue");
    let threshold: Vec<_> = queue
        .iter()
        .filter(|c| c.kind == CaseKind::Threshold)
        .collect();
    if held >= t {
        assert_eq!(
            threshold.len(),
            1,
            "exactly one threshold case after {held} matches"
        );
        let detail: Value = serde_json::from_str(&threshold[0].detail).expect("detail");
        assert!(detail["items"].as_array().expect("items").len() >= t);
    } else {
        panic!("only {held} of {} uploads were held; T = {t}", t + 2);
    }
    store.close().await;
    f.stop().await;
}

/// The post-threshold pipeline (G4): T key matches that are chance collisions (each key equal
/// to a listed value's, the full PDQ 40 bits away) reach the threshold and are decrypted, but
/// none survives the full-distance check, so no case is queued and nobody sees anything; the
/// audit log records the false-positive incident as counts only.
async fn chance_matches_at_the_threshold_queue_no_case(kind: &str) {
    let (values, lists) = shared_random_lists(78);
    let Some(f) = Fixture::start(
        kind,
        "chance_matches_at_the_threshold_queue_no_case",
        &lists,
        Preset::Lite,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 4).await;
    let t = usize::from(f.params.threshold());
    let positions: Vec<usize> = f
        .params
        .key_positions()
        .iter()
        .map(|&p| usize::from(p))
        .collect();
    let mut held = 0;
    for v in values.iter().take(t + 2) {
        // The same key bits, 40 other bits flipped: a chance key collision, not a copy.
        let chance = (0..256)
            .filter(|b| !positions.contains(b))
            .take(40)
            .fold(*v, |h, b| h.with_bit_flipped(b));
        assert_eq!(chance.distance(v), 40);
        assert_eq!(
            hashguard_protocol::keys::pdq_key(&chance, &f.params),
            hashguard_protocol::keys::pdq_key(v, &f.params)
        );
        let input = PdqInput {
            hash: chance,
            margins: [1.0; 256],
            quality: 90,
        };
        let (status, body, _, _) = upload(&f, &mut d, input).await;
        if status == StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS {
            held += 1;
        } else {
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    }
    assert!(
        held >= t,
        "only {held} of {} chance collisions opened; T = {t}",
        t + 2
    );
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let queue = store.case_queue(100).await.expect("queue");
    assert!(
        queue.iter().all(|c| c.kind != CaseKind::Threshold),
        "a threshold case was queued for {held} chance collisions"
    );
    let events = store.audit_events(None, 10_000).await.expect("audit");
    let incidents: Vec<_> = events
        .iter()
        .filter(|e| e.action == "threshold_not_confirmed")
        .collect();
    assert!(!incidents.is_empty(), "the incident is audit-logged");
    let detail: Value = serde_json::from_str(&incidents[0].detail).expect("detail");
    assert_eq!(detail["survivors"], 0);
    assert!(detail["decrypted"].as_u64().expect("decrypted") >= t as u64);
    assert!(
        !incidents[0].detail.contains(&values[0].to_string()),
        "no hash in the incident"
    );
    assert!(!events.iter().any(|e| e.action == "threshold_reached"));
    store.close().await;
    f.stop().await;
}

/// G1 at the system level: after benign uploads (every other one by the two-phase upload), the
/// database and the data folder hold the ciphertexts and their bookkeeping, and nothing derived
/// from a voucher (no upload slot is left either).
async fn benign_uploads_leave_only_ciphertext_and_bookkeeping(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "benign_uploads_leave_only_ciphertext_and_bookkeeping",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 5).await;
    let mut uploaded = Vec::new();
    let mut vouchers = Vec::new();
    let mut gen = ChaCha20Rng::seed_from_u64(55);
    for i in 0..6 {
        let input = if i == 0 {
            image_input("blocks.webp")
        } else {
            random_input(&mut gen)
        };
        let (status, body, built, ciphertext) = if i % 2 == 1 {
            let (ciphertext, built) = prepare(&mut d, input);
            let (status, body) = upload_two_phase(&f, &d.token, &ciphertext, &built).await;
            (status, body, built, ciphertext)
        } else {
            upload(&f, &mut d, input).await
        };
        assert_eq!(status, StatusCode::CREATED, "{body}");
        uploaded.push((
            body["attachment_id"].as_str().expect("id").to_string(),
            ciphertext,
        ));
        vouchers.push(built);
    }
    // Every table of the database: only the banks, the accounts and the attachments'
    // bookkeeping have rows.
    let url = DatabaseLocation::parse(&f.db).url().to_string();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.expect("connect");
    let tables: Vec<String> = if kind == "sqlite" {
        sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&pool)
        .await
        .expect("tables")
    } else {
        sqlx::query_scalar("SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()")
            .fetch_all(&pool)
            .await
            .expect("tables")
    };
    assert!(tables.len() >= 10, "{tables:?}");
    let allowed = [
        "_sqlx_migrations",
        "banks",
        "entries",
        "list_versions",
        // The list's server-side second hashes: list data, not derived from any upload.
        "second_hashes",
        "superseded_second_hashes",
        "accounts",
        "devices",
        "attachments",
        "rate_buckets",
    ];
    for table in &tables {
        // Table names come from the database's own catalogue.
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .expect("count");
        assert!(
            rows == 0 || allowed.contains(&table.as_str()),
            "table {table} holds {rows} rows after benign uploads only"
        );
    }
    // The rate buckets count requests per account and per network source, nothing else. The
    // key-match buckets exist for every account that uploads (each upload checks them) and are
    // full after benign uploads.
    let keys: Vec<String> = sqlx::query_scalar("SELECT bucket FROM rate_buckets ORDER BY bucket")
        .fetch_all(&pool)
        .await
        .expect("bucket keys");
    assert!(
        keys.iter().all(|k| k.starts_with("uploads:account:")
            || k.starts_with("uploads:source:")
            || k.starts_with("matches:account:")
            || k.starts_with("matches:source:")
            || k.starts_with("registrations:source:")),
        "{keys:?}"
    );
    // The attachments table is bookkeeping: exactly these columns, one row per upload.
    let columns: Vec<String> = if kind == "sqlite" {
        sqlx::query_scalar("SELECT name FROM pragma_table_info('attachments') ORDER BY name")
            .fetch_all(&pool)
            .await
            .expect("columns")
    } else {
        sqlx::query_scalar("SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'attachments' ORDER BY column_name")
            .fetch_all(&pool)
            .await
            .expect("columns")
    };
    assert_eq!(
        columns,
        ["account", "created_at", "id", "length", "sha256", "state"]
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attachments")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(usize::try_from(rows).expect("rows"), uploaded.len());
    pool.close().await;
    // The data folder: one blob per upload, its ciphertext exactly; no visual derivative, no
    // temporary file.
    let blobs = f._dir.path().join("data/blobs");
    let mut names: Vec<String> = std::fs::read_dir(&blobs)
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "tmp" && n != "slots")
        .collect();
    names.sort();
    assert_eq!(
        slot_files(&f),
        Vec::<String>::new(),
        "no slot's bytes are left"
    );
    let mut expected: Vec<String> = uploaded.iter().map(|(id, _)| format!("att-{id}")).collect();
    expected.sort();
    assert_eq!(names, expected);
    for (id, ciphertext) in &uploaded {
        assert_eq!(
            &std::fs::read(blobs.join(format!("att-{id}"))).expect("blob"),
            ciphertext
        );
    }
    assert_eq!(
        std::fs::read_dir(blobs.join("tmp")).expect("tmp").count(),
        0
    );
    // On SQLite, the database files themselves contain no byte string of any voucher or visual
    // derivative (raw or as hex).
    if kind == "sqlite" {
        let db = PathBuf::from(&f.db);
        let mut bytes = std::fs::read(&db).expect("db file");
        if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
            bytes.extend_from_slice(&wal);
        }
        for built in &vouchers {
            let voucher = built.voucher.encode();
            for needle in [
                voucher[16..48].to_vec(),
                hex::encode(&voucher[16..48]).into_bytes(),
                built.vd_blob[..32].to_vec(),
                hex::encode(&built.vd_blob[..32]).into_bytes(),
                built.voucher.voucher_id.to_vec(),
                hex::encode(built.voucher.voucher_id).into_bytes(),
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                    "voucher-derived bytes in the database"
                );
            }
        }
    }
    f.stop().await;
}

/// PT18 at the HTTP level: under `silent` a listed image and a benign one get the same reply
/// (status, headers, body but for the attachment's random id), and the listed one is opened
/// afterwards.
async fn silent_reply_does_not_depend_on_opening(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "silent_reply_does_not_depend_on_opening",
        &standin_lists(),
        Preset::V1,
        Policy::Silent,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 9).await;
    let mut replies = Vec::new();
    for name in ["hills-recompressed.jpg", "blocks.webp"] {
        let mut ciphertext = vec![0u8; 3000];
        d.rng.fill_bytes(&mut ciphertext);
        let item = Item {
            pdq: Some(image_input(name)),
            content_sha256: [7; 32],
            media_kind: MediaKind::Image,
            frame_idx: 0,
            thumbnail: b"thumb",
        };
        let binding = UploadBinding::new(d.account, &ciphertext);
        let built = d
            .client
            .build_pdq_voucher(&d.table, &item, &binding, &mut d.rng)
            .expect("voucher");
        let form = image_form(&ciphertext, &built);
        let r = f
            .http
            .post(f.url("/v1/attachments"))
            .bearer_auth(&d.token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        let status = r.status();
        let mut headers: Vec<String> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date")
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
            .collect();
        headers.sort();
        let mut body: Value = r.json().await.expect("json");
        let id = body["attachment_id"].take();
        assert_eq!(
            download(&f, &d.token, id.as_str().expect("id")).await,
            (StatusCode::OK, ciphertext)
        );
        replies.push((status, headers, body));
    }
    assert_eq!(replies[0].0, StatusCode::ACCEPTED);
    assert_eq!(replies[0], replies[1], "the reply depends on the vouchers");
    // The listed image's voucher is opened after the reply (bounded wait).
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let account = hashguard_store::AccountId::new(d.account);
    let mut opened = 0;
    for _ in 0..100 {
        opened = store.opened_records(&account).await.expect("records").len();
        if opened >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        opened >= 1,
        "the listed image's voucher was not opened within 5 s"
    );
    // Opened, the vouchers are dropped from the disk too (the file goes after the threshold
    // is tried).
    let left = pending_files_settled(&f, 0).await;
    assert!(
        left.is_empty(),
        "pending vouchers left after opening: {left:?}"
    );
    store.close().await;
    f.stop().await;
}

/// The server's `/metrics` text.
async fn metrics_text(f: &Fixture) -> String {
    f.http
        .get(f.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// The pending openings once their count is `expected`, or after 5 s (bounded wait: a running
/// server deletes its pending files after it has opened them).
async fn pending_files_settled(f: &Fixture, expected: usize) -> Vec<String> {
    let mut left = pending_files(f);
    for _ in 0..100 {
        if left.len() == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = pending_files(f);
    }
    left
}

/// The pending openings in the server's data folder.
fn pending_files(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f.config.data.join("blobs"))
        .expect("data folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pending-"))
        .collect();
    names.sort();
    names
}

/// Under `silent` the vouchers wait on disk until they are opened: a process killed between
/// the reply and the opening loses nothing, because the next start opens them; a file that
/// cannot be read back is kept for a person, not deleted.
async fn silent_openings_survive_a_crash(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "silent_openings_survive_a_crash",
        &standin_lists(),
        Preset::V1,
        Policy::Silent,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 21).await;
    let account = hashguard_store::AccountId::new(d.account);
    let (ciphertext, built) = prepare(&mut d, image_input("hills-recompressed.jpg"));
    // A process that accepts the upload and is killed before it opens the vouchers: the
    // intake's own upload, and the opening never run.
    let table = ServedTable::load(&TableDir::new(&f.config.table), &f.config.key).expect("table");
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Create)
        .await
        .expect("store");
    let blobs = LocalBlobs::open(f.config.data.join("blobs")).expect("blobs");
    let killed = Intake::new(store.clone(), blobs, std::sync::Arc::new(table), None);
    let outcome = killed
        .upload(Upload {
            account,
            media: MediaType::Image,
            ciphertext: ciphertext.clone(),
            vouchers: vec![VoucherPart {
                voucher: built.voucher.encode(),
                vd_blob: built.vd_blob.clone(),
            }],
        })
        .await
        .expect("upload");
    let UploadOutcome::Accepted {
        attachment,
        pending,
    } = outcome
    else {
        panic!("not accepted under silent: {outcome:?}");
    };
    drop(pending);
    drop(killed);
    assert_eq!(pending_files(&f), vec![format!("pending-{attachment}")]);
    assert!(store
        .opened_records(&account)
        .await
        .expect("log")
        .is_empty());
    // A pending file that cannot be read back, for an upload that was answered.
    let (status, body, _, _) = upload(&f, &mut d, image_input("blocks.webp")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let answered = body["attachment_id"].as_str().expect("id").to_string();
    // Its own pending file goes once the running server has opened it.
    assert_eq!(
        pending_files_settled(&f, 1).await,
        vec![format!("pending-{attachment}")]
    );
    let garbage = f
        .config
        .data
        .join("blobs")
        .join(format!("pending-{answered}"));
    std::fs::write(&garbage, b"HGP1 and then nothing sensible").expect("write");

    // The next start opens the pending vouchers, keeps the unreadable file.
    let (_, stop, task) = f.second_server().await;
    let records = store.opened_records(&account).await.expect("log");
    assert_eq!(
        records.len(),
        1,
        "the accepted voucher was opened at the next start"
    );
    assert_eq!(records[0].attachment, Some(attachment));
    assert_eq!(pending_files(&f), vec![format!("pending-{answered}")]);
    assert_eq!(
        download(&f, &d.token, &attachment.to_string()).await,
        (StatusCode::OK, ciphertext)
    );
    let _ = stop.send(());
    task.await.expect("second server stops");
    store.close().await;
    f.stop().await;
}

/// Rate limits (429 with Retry-After), the metrics (no account in any label), hostile forms,
/// and the OpenAPI document against the routes.
async fn limits_metrics_and_the_document(kind: &str) {
    let mut limits = Limits::default();
    limits.uploads_per_account.burst = 2;
    limits.matches_per_account.burst = 1;
    limits.registrations_per_source.burst = 4;
    let Some(f) = Fixture::start_with(
        kind,
        "limits_metrics_and_the_document",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
        limits,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 11).await;
    for _ in 0..2 {
        let (status, body, _, _) = upload(&f, &mut d, image_input("blocks.webp")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body, _, _) = upload(&f, &mut d, image_input("blocks.webp")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "rate_limited");
    // Hostile forms: not multipart, and a part the form does not have.
    let r = f
        .http
        .post(f.url("/v1/attachments"))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"media": "image"}))
        .send()
        .await
        .expect("json upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("error body");
    assert_eq!(body["error"], "malformed_form");
    let r = f
        .http
        .post(f.url("/v1/cases/00000000000000000000000000000000/check"))
        .bearer_auth(&d.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("bad json");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("body")["error"],
        "malformed_json"
    );
    // Metrics: the outcomes are counted, and no account id, device id or token appears.
    let text = metrics_text(&f).await;
    assert!(
        text.contains("hashguard_uploads_total{outcome=\"delivered\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("hashguard_uploads_total{outcome=\"limited\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hashguard_http_request_duration_seconds"),
        "{text}"
    );
    assert!(!text.contains(&hex::encode(d.account)) && !text.contains(&d.token));
    // Key matches count (R/E12 step 6): after one held upload, the account's next upload is
    // refused until the limit refills, and the held one stays held.
    let mut matched = device(&f, 12).await;
    let (status, body, _, _) =
        upload(&f, &mut matched, image_input("hills-recompressed.jpg")).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    let (status, body, _, _) = upload(&f, &mut matched, image_input("blocks.webp")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("held uploads from this account"),
        "{body}"
    );
    // Every operation of the document is routed: its answer is never the router's own 404
    // (an empty body) or 405.
    let doc: Value = f
        .http
        .get(f.url("/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 11, "{paths:?}");
    for (path, ops) in paths {
        let concrete = path
            .replace("{root}", &"0".repeat(64))
            .replace("{attachment_id}", &"0".repeat(32))
            .replace("{case_id}", &"0".repeat(32))
            .replace("{device_id}", &"0".repeat(32))
            .replace("{slot_id}", &"0".repeat(32))
            .replace("{group_id}", "00")
            .replace("{path}", "0/000")
            .replace("{hash}", &"0".repeat(64));
        assert!(!concrete.contains('{'), "{path}");
        for method in ops.as_object().expect("ops").keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = f
                .http
                .request(m, f.url(&concrete))
                .bearer_auth(&d.token)
                .send()
                .await
                .expect("request");
            let status = r.status();
            // A HEAD answer has no body; the service's own 404 still says it is JSON.
            let typed = r.headers().contains_key("content-type");
            let body = r.bytes().await.expect("body");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                status != StatusCode::NOT_FOUND || !body.is_empty() || typed,
                "{method} {path} is documented but not routed"
            );
        }
    }
    // Registrations per address: two devices above and the document's two registering
    // operations used the four allowed; the fifth is refused.
    let r = f
        .http
        .post(f.url("/v1/accounts"))
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("body");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("registrations from this address"),
        "{body}"
    );
    f.stop().await;
}

/// A crafted-collision campaign (R/E12 step 6): one image with a listed key, sent from several
/// accounts, is released by each account's consented check; the third account's release
/// flags a campaign for staff, the fourth raises its count, and only the released items'
/// PDQ hashes are kept for it.
async fn one_image_released_for_many_accounts_is_a_campaign(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "one_image_released_for_many_accounts_is_a_campaign",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let campaigns = |f: &Fixture| {
        let r = f
            .http
            .get(f.url("/v1/review/campaigns"))
            .bearer_auth(STAFF_TOKEN)
            .send();
        async move {
            let r = r.await.expect("campaigns");
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.expect("json")
        }
    };
    let crafted = key_collision(&f);
    let mut users = Vec::new();
    for n in 0..4u8 {
        let mut d = device(&f, 40 + u64::from(n)).await;
        let (status, held, built, _) = upload(&f, &mut d, crafted.clone()).await;
        assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{held}");
        // The offer says what is kept, and for how long.
        assert!(
            held["check"]["what_it_does"]
                .as_str()
                .expect("offer")
                .contains("kept for 30 days"),
            "{held}"
        );
        let case = held["case_id"].as_str().expect("case").to_string();
        let (status, result) = consent(&f, &d.token, &case, &built).await;
        assert_eq!(status, StatusCode::OK, "{result}");
        assert_eq!(result["outcome"], "released", "{result}");
        // Nothing about the campaign reaches the user.
        assert!(!result.to_string().contains("campaign"), "{result}");
        let listed = campaigns(&f).await;
        let found = listed["campaigns"].as_array().expect("campaigns");
        if n < 2 {
            assert!(
                found.is_empty(),
                "flagged after {} accounts: {listed}",
                n + 1
            );
        } else {
            assert_eq!(found.len(), 1, "{listed}");
            assert_eq!(found[0]["accounts"], u64::from(n) + 1, "{listed}");
            assert_eq!(found[0]["pdq"], hex::encode(crafted.hash.to_be_bytes()));
        }
        users.push(d);
    }
    assert_eq!(campaigns(&f).await["accounts_needed"], 3);
    // A user's token cannot read campaigns.
    let r = f
        .http
        .get(f.url("/v1/review/campaigns"))
        .bearer_auth(&users[0].token)
        .send()
        .await
        .expect("user");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let text = metrics_text(&f).await;
    assert!(
        text.contains("hashguard_campaigns_flagged_total 1"),
        "{text}"
    );
    // What is kept: the four released items' PDQ hashes, each with its case and account.
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let kept = store.released_checks_since(0).await.expect("released");
    assert_eq!(kept.len(), 4);
    assert!(kept.iter().all(|r| r.pdq == crafted.hash.to_be_bytes()));
    let accounts: std::collections::BTreeSet<_> = kept.iter().map(|r| r.account).collect();
    assert_eq!(accounts.len(), 4);
    store.close().await;
    f.stop().await;
}

/// Two server processes on one database share an account's threshold state: uploads
/// alternate between them, every opened record lands in one dense log, and T is reached
/// exactly once.
async fn two_servers_share_one_threshold(kind: &str) {
    let (values, lists) = shared_random_lists(91);
    let Some(f) = Fixture::start(
        kind,
        "two_servers_share_one_threshold",
        &lists,
        Preset::Lite,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let (second, stop, task) = f.second_server().await;
    let mut d = device(&f, 13).await;
    let t = usize::from(f.params.threshold());
    let mut held = 0usize;
    // Two uploads at a time, one to each server, so their appends race.
    for pair in values.chunks(2).take(t / 2 + 2) {
        let mut jobs = Vec::new();
        for (i, v) in pair.iter().enumerate() {
            let mut ciphertext = vec![0u8; 500];
            d.rng.fill_bytes(&mut ciphertext);
            let item = Item {
                pdq: Some(PdqInput {
                    hash: *v,
                    margins: [1.0; 256],
                    quality: 90,
                }),
                content_sha256: [0; 32],
                media_kind: MediaKind::Image,
                frame_idx: 0,
                thumbnail: b"",
            };
            // Distinct content: each item is its own share (one content would dedup to one).
            let mut content = [0u8; 32];
            d.rng.fill_bytes(&mut content);
            let item = Item {
                content_sha256: content,
                ..item
            };
            let binding = UploadBinding::new(d.account, &ciphertext);
            let built = d
                .client
                .build_pdq_voucher(&d.table, &item, &binding, &mut d.rng)
                .expect("voucher");
            let base = if i == 0 {
                f.base.clone()
            } else {
                second.clone()
            };
            jobs.push((base, ciphertext, built));
        }
        let answers = futures_join(
            jobs.iter()
                .map(|(base, c, b)| upload_to(&f, base, &d.token, c, b)),
        )
        .await;
        for (status, body) in answers {
            if status == StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS {
                held += 1;
            } else {
                assert_eq!(status, StatusCode::CREATED, "{body}");
            }
        }
    }
    assert!(held >= t, "only {held} held; T = {t}");
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let account = hashguard_store::AccountId::new(d.account);
    let records = store.opened_records(&account).await.expect("records");
    assert_eq!(records.len(), held, "one log entry per opened voucher");
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.seq == u64::try_from(i).expect("seq")));
    let queue = store.case_queue(1000).await.expect("queue");
    assert_eq!(
        queue
            .iter()
            .filter(|c| c.kind == CaseKind::Threshold)
            .count(),
        1
    );
    store.integrity_check().await.expect("integrity");
    store.close().await;
    let _ = stop.send(());
    task.await.expect("second server stops");
    f.stop().await;
}

/// Runs the futures at once and returns their outputs in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// schemathesis (PyPI), a property-based API tester, against the served `/openapi.json`: no
/// 5xx, and no response that breaks the document's own schema. Bounded in examples and time,
/// loopback only.
async fn schemathesis_finds_nothing(kind: &str) {
    let tool = repo().join(".venv/bin/schemathesis");
    if !tool.exists() {
        assert!(
            std::env::var("HASHGUARD_REQUIRE_ORACLE").as_deref() != Ok("1"),
            "{} is missing (tools/setup.sh installs it) and HASHGUARD_REQUIRE_ORACLE=1",
            tool.display()
        );
        eprintln!(
            "SKIPPED schemathesis_finds_nothing: {} is missing; run tools/setup.sh",
            tool.display()
        );
        return;
    }
    let Some(f) = Fixture::start(
        kind,
        "schemathesis_finds_nothing",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let (_, _, token) = register(&f).await;
    let base = f.base.clone();
    let report = f._dir.path().join("schemathesis");
    // A voucher's or a key's validity is cryptographic, which no schema can state: for the
    // two operations that take them, a schema-valid request with random bytes is rightly
    // refused with 400. A random case id names no case (404), and the registrations per
    // address run out (429). The MLS routes take opaque base64 and hex whose sizes the schema
    // states only roughly (400), name groups and accounts that do not exist (404) or exist
    // already, and epochs that are not current (409).
    let config = f._dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        r#"[[operations]]
include-name = "POST /v1/attachments"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "413", "429", "451"]

[[operations]]
include-name = "POST /v1/attachments/slots"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "413", "429", "451"]

# TUS's `application/offset+octet-stream` has no serializer in schemathesis, so it cannot send
# a slot's bytes: that route is left to two_phase_upload's hostile writes.
[[operations]]
include-name = "PATCH /v1/attachments/slots/{slot_id}"
enabled = false

[[operations]]
include-name = "POST /v1/attachments/{attachment_id}/slot"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "429"]

[[operations]]
include-name = "HEAD /v1/attachments/slots/{slot_id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "410", "429"]

[[operations]]
include-name = "POST /v1/cases/{case_id}/check"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409", "429"]

[[operations]]
include-name = "POST /v1/cases/{case_id}/appeal"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "429"]

[[operations]]
include-name = "POST /v1/accounts"
checks.positive_data_acceptance.expected-statuses = ["2xx", "429"]

[[operations]]
include-name = "POST /v1/devices"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "429"]

[[operations]]
include-name = "POST /v1/mls/key-packages"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "413", "429"]

[[operations]]
include-name = "POST /v1/mls/key-packages/claim"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

[[operations]]
include-name = "POST /v1/mls/groups"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "409", "429"]

[[operations]]
include-name = "GET /v1/mls/groups/{group_id}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

[[operations]]
include-name = "POST /v1/mls/groups/{group_id}/commits"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409", "413", "429"]

[[operations]]
include-name = "POST /v1/mls/groups/{group_id}/messages"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "409", "413", "429"]

[[operations]]
include-name = "GET /v1/mls/queue"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429"]

[[operations]]
include-name = "POST /v1/mls/queue/ack"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429"]
"#,
    )
    .expect("config");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(tool)
            .arg("--config-file")
            .arg(&config)
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "all", "--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", "25", "--max-time", "45", "--workers", "1"])
            .args(["--seed", "20261205", "--request-timeout", "20"])
            .arg("--report-dir")
            .arg(&report)
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .expect("join")
    .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}"
    );
    f.stop().await;
}

/// A new epoch: vouchers built for the previous one still open during the grace period (the
/// key is the same), and a voucher naming any other epoch gets 409 with the current one.
async fn a_new_epoch_keeps_the_previous_one_in_grace(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "a_new_epoch_keeps_the_previous_one_in_grace",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 21).await;
    publish_epoch(
        &f.db,
        &f.config.table,
        &f.config.key,
        Preset::V1,
        Policy::Intervene,
    )
    .await;
    let (second, stop, task) = f.second_server().await;
    let manifest = f
        .http
        .get(format!("{second}/v1/table/manifest"))
        .send()
        .await
        .expect("manifest")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(Manifest::decode(&manifest).expect("decodes").epoch(), 2);
    // An epoch-1 voucher of the listed image, to the epoch-2 server: still opened (held).
    let mut ciphertext = vec![0u8; 800];
    d.rng.fill_bytes(&mut ciphertext);
    let item = Item {
        pdq: Some(image_input("hills-recompressed.jpg")),
        content_sha256: [3; 32],
        media_kind: MediaKind::Image,
        frame_idx: 0,
        thumbnail: b"",
    };
    let binding = UploadBinding::new(d.account, &ciphertext);
    let built = d
        .client
        .build_pdq_voucher(&d.table, &item, &binding, &mut d.rng)
        .expect("voucher");
    assert_eq!(built.voucher.epoch, 1);
    let (status, body) = upload_to(&f, &second, &d.token, &ciphertext, &built).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    // A voucher naming epoch 9 (its header edited): 409, before any opening.
    let mut stale = built.voucher.clone();
    stale.epoch = 9;
    let edited = BuiltVoucher {
        voucher: stale,
        ..built
    };
    let (status, body) = upload_to(&f, &second, &d.token, &ciphertext, &edited).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["current_epoch"], 2);
    let _ = stop.send(());
    task.await.expect("second server stops");
    f.stop().await;
}

/// Uploads a video of `frames` keyframes (their vouchers share one dedup decision).
async fn upload_video(
    f: &Fixture,
    d: &mut Device,
    frames: Vec<PdqInput>,
) -> (StatusCode, Value, Vec<u8>) {
    let mut ciphertext = vec![0u8; 5000];
    d.rng.fill_bytes(&mut ciphertext);
    let mut video_sha256 = [0u8; 32];
    d.rng.fill_bytes(&mut video_sha256);
    let items: Vec<Item<'_>> = frames
        .into_iter()
        .enumerate()
        .map(|(i, pdq)| Item {
            pdq: Some(pdq),
            content_sha256: video_sha256,
            media_kind: MediaKind::VideoFrame,
            frame_idx: u16::try_from(i).expect("few frames"),
            thumbnail: b"",
        })
        .collect();
    let binding = UploadBinding::new(d.account, &ciphertext);
    let built = d
        .client
        .build_video_vouchers(&d.table, video_sha256, &items, &binding, &mut d.rng)
        .expect("video vouchers");
    let mut form = reqwest::multipart::Form::new().text("media", "video").part(
        "ciphertext",
        reqwest::multipart::Part::bytes(ciphertext.clone()),
    );
    for b in &built {
        form = form
            .part(
                "voucher",
                reqwest::multipart::Part::bytes(b.voucher.encode()),
            )
            .part("vd", reqwest::multipart::Part::bytes(b.vd_blob.clone()));
    }
    let r = f
        .http
        .post(f.url("/v1/attachments"))
        .bearer_auth(&d.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status();
    (status, r.json().await.expect("json"), ciphertext)
}

fn random_hash(rng: &mut ChaCha20Rng) -> hashguard_pdq::Hash256 {
    hashguard_pdq::Hash256::from_words([
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
        rng.next_u64(),
    ])
}

/// A bank to create: name, organisation, jurisdiction, list text.
type BankList = (&'static str, &'static str, &'static str, String);

/// A random image's PDQ input: almost surely listed nowhere.
fn random_input(rng: &mut ChaCha20Rng) -> PdqInput {
    let mut margins = [0f32; 256];
    for m in margins.iter_mut() {
        *m = f32::from(u16::try_from(rng.next_u32() % 1000).expect("small")) + 1.0;
    }
    PdqInput {
        hash: random_hash(rng),
        margins,
        quality: 90,
    }
}

/// 40 random values that both stand-in organisations list, so the consensus view holds them
/// all; and the two lists.
fn shared_random_lists(seed: u64) -> (Vec<hashguard_pdq::Hash256>, Vec<BankList>) {
    let mut gen = ChaCha20Rng::seed_from_u64(seed);
    let values: Vec<hashguard_pdq::Hash256> = (0..40).map(|_| random_hash(&mut gen)).collect();
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    let lists = vec![
        ("standin-a", "Stand-in Org A", "GB", text.clone()),
        ("standin-b", "Stand-in Org B", "US", text),
    ];
    (values, lists)
}

/// Videos: keyframe vouchers of one upload; a listed keyframe holds the whole video; more than
/// 16 vouchers, or an image with two, is refused.
async fn videos_are_held_by_any_listed_keyframe(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "videos_are_held_by_any_listed_keyframe",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 31).await;
    let mut gen = ChaCha20Rng::seed_from_u64(32);
    let benign: Vec<PdqInput> = (0..3).map(|_| random_input(&mut gen)).collect();
    let (status, body, ciphertext) = upload_video(&f, &mut d, benign).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["attachment_id"].as_str().expect("id");
    assert_eq!(
        download(&f, &d.token, id).await,
        (StatusCode::OK, ciphertext)
    );
    let listed = vec![
        random_input(&mut gen),
        image_input("hills-recompressed.jpg"),
        random_input(&mut gen),
    ];
    let (status, body, _) = upload_video(&f, &mut d, listed).await;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    assert_eq!(body["status"], "held_for_check");
    // Counts the form refuses: 17 vouchers for a video, two for an image.
    let voucher = vec![0u8; 10];
    let mut form = reqwest::multipart::Form::new()
        .text("media", "video")
        .part("ciphertext", reqwest::multipart::Part::bytes(vec![1u8; 10]));
    for _ in 0..17 {
        form = form
            .part("voucher", reqwest::multipart::Part::bytes(voucher.clone()))
            .part("vd", reqwest::multipart::Part::bytes(voucher.clone()));
    }
    let r = f
        .http
        .post(f.url("/v1/attachments"))
        .bearer_auth(&d.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "voucher_count"
    );
    let mut form = reqwest::multipart::Form::new()
        .text("media", "image")
        .part("ciphertext", reqwest::multipart::Part::bytes(vec![1u8; 10]));
    for _ in 0..2 {
        form = form
            .part("voucher", reqwest::multipart::Part::bytes(voucher.clone()))
            .part("vd", reqwest::multipart::Part::bytes(voucher.clone()));
    }
    let r = f
        .http
        .post(f.url("/v1/attachments"))
        .bearer_auth(&d.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "voucher_count"
    );
    f.stop().await;
}

/// Per-source limits behind a proxy: with the proxy (here 127.0.0.1) trusted, each client the
/// proxy names in `X-Forwarded-For` has its own allowance; without it, the header is ignored
/// and a client cannot pick a fresh allowance by writing one.
async fn forwarded_for_counts_only_from_trusted_proxies(kind: &str) {
    for trusted in [true, false] {
        let mut limits = Limits::default();
        limits.registrations_per_source.burst = 2;
        let Some(f) = Fixture::start_configured(
            kind,
            "forwarded_for",
            &standin_lists(),
            Preset::V1,
            Policy::Intervene,
            limits,
            |c| {
                if trusted {
                    c.trusted_proxies = vec!["127.0.0.0/8".parse().expect("block")];
                }
            },
        )
        .await
        else {
            return;
        };
        let register = |client: &'static str| {
            let http = f.http.clone();
            let url = f.url("/v1/accounts");
            async move {
                http.post(url)
                    .header("x-forwarded-for", client)
                    .send()
                    .await
                    .expect("register")
                    .status()
            }
        };
        assert_eq!(register("198.51.100.1").await, StatusCode::CREATED);
        assert_eq!(register("198.51.100.1").await, StatusCode::CREATED);
        assert_eq!(
            register("198.51.100.1").await,
            StatusCode::TOO_MANY_REQUESTS,
            "trusted {trusted}"
        );
        // Another client behind the proxy: its own allowance only if the proxy is trusted. A
        // spoofed hop written by the client itself (left of the proxy's) changes nothing.
        let expected = if trusted {
            StatusCode::CREATED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(
            register("198.51.100.2").await,
            expected,
            "trusted {trusted}"
        );
        assert_eq!(
            register("203.0.113.9, 198.51.100.1").await,
            StatusCode::TOO_MANY_REQUESTS,
            "trusted {trusted}"
        );
        f.stop().await;
    }
}

mod schemathesis {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finds_no_server_error_and_no_schema_violation() {
        super::schemathesis_finds_nothing("sqlite").await;
    }
}

on_both!(
    upload_hold_check_release,
    threshold_opens_one_case,
    chance_matches_at_the_threshold_queue_no_case,
    a_differing_second_hash_releases,
    a_mirrored_copy_is_checked_in_its_orientation,
    benign_uploads_leave_only_ciphertext_and_bookkeeping,
    silent_reply_does_not_depend_on_opening,
    limits_metrics_and_the_document,
    two_servers_share_one_threshold,
    a_new_epoch_keeps_the_previous_one_in_grace,
    videos_are_held_by_any_listed_keyframe,
    one_image_released_for_many_accounts_is_a_campaign,
    silent_openings_survive_a_crash,
    forwarded_for_counts_only_from_trusted_proxies,
    two_phase_upload,
    two_phase_silent_always_gives_a_slot,
    upload_slots_expire,
    a_broken_patch_resumes,
);

/// The two-phase announcement of `ciphertext` with `built`'s voucher: the vouchers with the
/// ciphertext's SHA-256 and length, and no ciphertext.
fn announcement(ciphertext: &[u8], built: &BuiltVoucher) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let b64 = &base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "media": "image",
        "sha256": hex::encode(sha2::Sha256::digest(ciphertext)),
        "length": ciphertext.len(),
        "vouchers": [{
            "voucher": b64.encode(built.voucher.encode()),
            "vd": b64.encode(&built.vd_blob),
        }],
    })
}

async fn announce(f: &Fixture, token: &str, body: &Value) -> reqwest::Response {
    f.http
        .post(f.url("/v1/attachments/slots"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("announce")
}

/// `PATCH`es `bytes` to the slot at `url` from `offset`, as a TUS client does.
async fn patch_slot(
    f: &Fixture,
    token: &str,
    url: &str,
    offset: u64,
    bytes: &[u8],
) -> reqwest::Response {
    f.http
        .patch(f.url(url))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch")
}

/// The slot's status and `Upload-Offset` (TUS `HEAD`).
async fn head_slot(f: &Fixture, token: &str, url: &str) -> (StatusCode, Option<u64>) {
    let r = f
        .http
        .head(f.url(url))
        .bearer_auth(token)
        .send()
        .await
        .expect("head");
    let offset = r
        .headers()
        .get("upload-offset")
        .map(|v| v.to_str().expect("ascii").parse().expect("number"));
    (r.status(), offset)
}

/// Announces and then sends the whole ciphertext to its slot in one `PATCH`; the last answer.
async fn upload_two_phase(
    f: &Fixture,
    token: &str,
    ciphertext: &[u8],
    built: &BuiltVoucher,
) -> (StatusCode, Value) {
    let r = announce(f, token, &announcement(ciphertext, built)).await;
    let status = r.status();
    let slot: Value = r.json().await.expect("json");
    if status != StatusCode::CREATED {
        return (status, slot);
    }
    let url = slot["upload_url"].as_str().expect("url").to_string();
    let r = patch_slot(f, token, &url, 0, ciphertext).await;
    (r.status(), r.json().await.expect("json"))
}

/// The two-phase upload over HTTP (issue 13 item 7): a benign image announced, sent in two
/// resumed parts and delivered bit-identical; the slot's rules (offsets, content type, length,
/// digest, owner); a listed image held with the intervention and never given a slot (its
/// ciphertext never reaches the server); hostile announcements refused.
async fn two_phase_upload(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "two_phase_upload",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 21).await;
    let other = device(&f, 22).await;
    let mut gen = ChaCha20Rng::seed_from_u64(2121);
    let (ciphertext, built) = prepare(&mut d, random_input(&mut gen));
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["tus-resumable"], "1.0.0");
    let location = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let slot: Value = r.json().await.expect("json");
    let url = slot["upload_url"].as_str().expect("url").to_string();
    assert_eq!(location, url);
    assert_eq!(slot["status"], "upload_slot");
    assert_eq!(slot["length"], 3000);
    assert_eq!(slot["slot_id"].as_str().expect("id").len(), 32);
    assert!(slot["expires_at"].as_i64().expect("expiry") > hashguard_service::intake::unix_now());
    assert_eq!(
        head_slot(&f, &d.token, &url).await,
        (StatusCode::OK, Some(0))
    );
    // Another account's slot looks like no slot at all.
    assert_eq!(
        head_slot(&f, &other.token, &url).await.0,
        StatusCode::NOT_FOUND
    );
    let r = patch_slot(&f, &other.token, &url, 0, &ciphertext).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The first part, then the rest from where the slot says its bytes end.
    let r = patch_slot(&f, &d.token, &url, 0, &ciphertext[..1000]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["upload-offset"], "1000");
    let r = patch_slot(&f, &d.token, &url, 0, &ciphertext).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "a write must start at the offset"
    );
    assert_eq!(r.headers()["upload-offset"], "1000");
    // Hostile writes change nothing: wrong content type, no offset, other TUS version,
    // more bytes than announced.
    let r = f
        .http
        .patch(f.url(&url))
        .bearer_auth(&d.token)
        .header("upload-offset", "1000")
        .header("content-type", "application/octet-stream")
        .body(ciphertext[1000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = f
        .http
        .patch(f.url(&url))
        .bearer_auth(&d.token)
        .header("content-type", "application/offset+octet-stream")
        .body(ciphertext[1000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f
        .http
        .patch(f.url(&url))
        .bearer_auth(&d.token)
        .header("tus-resumable", "0.2.2")
        .header("upload-offset", "1000")
        .header("content-type", "application/offset+octet-stream")
        .body(ciphertext[1000..].to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let mut longer = ciphertext[1000..].to_vec();
    longer.push(0);
    let r = patch_slot(&f, &d.token, &url, 1000, &longer).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        head_slot(&f, &d.token, &url).await,
        (StatusCode::OK, Some(1000))
    );
    let r = patch_slot(&f, &d.token, &url, 1000, &ciphertext[1000..]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    let id = body["attachment_id"].as_str().expect("id").to_string();
    assert_eq!(body["status"], "delivered");
    assert_eq!(
        download(&f, &other.token, &id).await,
        (StatusCode::OK, ciphertext.clone()),
        "delivered bit-identical"
    );
    // Done: the slot is gone.
    assert_eq!(head_slot(&f, &d.token, &url).await.0, StatusCode::NOT_FOUND);
    let r = patch_slot(&f, &d.token, &url, 3000, &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // A wrong digest: the bytes are discarded, nothing is stored, and the slot takes the
    // right bytes afterwards.
    let (ciphertext, built) = prepare(&mut d, random_input(&mut gen));
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = r.json::<Value>().await.expect("json")["upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    let mut wrong = ciphertext.clone();
    wrong[1234] ^= 1;
    let before = att_blobs(&f);
    let r = patch_slot(&f, &d.token, &url, 0, &wrong).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "digest_mismatch");
    assert_eq!(att_blobs(&f), before, "nothing stored");
    assert_eq!(
        head_slot(&f, &d.token, &url).await,
        (StatusCode::OK, Some(0))
    );
    // A short body leaves a partial slot, never an attachment.
    let r = patch_slot(&f, &d.token, &url, 0, &ciphertext[..2999]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(att_blobs(&f), before, "a partial upload is no attachment");
    let r = patch_slot(&f, &d.token, &url, 2999, &ciphertext[2999..]).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.expect("json")["attachment_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        download(&f, &d.token, &id).await,
        (StatusCode::OK, ciphertext)
    );

    // A listed image: held with the intervention, and no slot; its ciphertext never reaches
    // the server.
    let (ciphertext, built) = prepare(&mut d, image_input("hills-recompressed.jpg"));
    let before = att_blobs(&f);
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(r.headers().get("location").is_none());
    let held: Value = r.json().await.expect("json");
    assert_eq!(held["status"], "held_for_check");
    assert!(held.get("upload_url").is_none() && held.get("slot_id").is_none());
    let case: hashguard_store::CaseId =
        held["case_id"].as_str().expect("case").parse().expect("id");
    assert_eq!(att_blobs(&f), before, "no ciphertext of a held item");
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let case = store.case(&case).await.expect("case").expect("exists");
    let attachment = store
        .attachment(&case.attachment.expect("attachment"))
        .await
        .expect("row")
        .expect("exists");
    assert_eq!(attachment.state, hashguard_store::AttachmentState::Held);
    {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(&ciphertext).into();
        assert_eq!((attachment.sha256, attachment.length), (digest, 3000));
    }
    // The case is the account's as for a one-request hold: the check runs on the voucher.
    let (status, _) = consent(&f, &d.token, &case.id.to_string(), &built).await;
    assert_eq!(status, StatusCode::OK);
    store.close().await;
    assert_eq!(slot_files(&f), Vec::<String>::new());

    // A chance key collision announced: held, released by the check, and only then its
    // ciphertext goes to a slot for exactly the announced bytes.
    let (ciphertext, built) = prepare(&mut d, key_collision(&f));
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let case = r.json::<Value>().await.expect("json")["case_id"]
        .as_str()
        .expect("case")
        .to_string();
    let (status, checked) = consent(&f, &d.token, &case, &built).await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["outcome"], "released", "{checked}");
    let id = checked["attachment_id"].as_str().expect("id").to_string();
    assert_eq!(
        download(&f, &other.token, &id).await.0,
        StatusCode::NOT_FOUND
    );
    let path = format!("/v1/attachments/{id}/slot");
    let r = f
        .http
        .post(f.url(&path))
        .bearer_auth(&other.token)
        .send()
        .await
        .expect("slot");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "another account's item");
    let r = f
        .http
        .post(f.url(&path))
        .bearer_auth(&d.token)
        .send()
        .await
        .expect("slot");
    assert_eq!(r.status(), StatusCode::CREATED);
    let slot: Value = r.json().await.expect("json");
    assert_eq!(slot["length"], 3000);
    let url = slot["upload_url"].as_str().expect("url").to_string();
    let r = patch_slot(&f, &d.token, &url, 0, &wrong).await;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "only the announced bytes"
    );
    let r = patch_slot(&f, &d.token, &url, 0, &ciphertext).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.json::<Value>().await.expect("json")["attachment_id"],
        Value::String(id.clone())
    );
    assert_eq!(
        download(&f, &other.token, &id).await,
        (StatusCode::OK, ciphertext)
    );
    assert_eq!(head_slot(&f, &d.token, &url).await.0, StatusCode::NOT_FOUND);
    // An unknown attachment gets no slot.
    let r = f
        .http
        .post(f.url(&format!("/v1/attachments/{}/slot", "cd".repeat(16))))
        .bearer_auth(&d.token)
        .send()
        .await
        .expect("slot");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Hostile announcements: each refused with a clear status, nothing stored.
    let (ciphertext, built) = prepare(&mut d, random_input(&mut gen));
    let good = announcement(&ciphertext, &built);
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, status, code) in [
        (
            with("length", serde_json::json!(2u64 << 20)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            with("length", serde_json::json!(i64::MAX)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            with("length", serde_json::json!(u64::MAX)),
            StatusCode::BAD_REQUEST,
            "malformed_length",
        ),
        (
            with("length", serde_json::json!(0)),
            StatusCode::BAD_REQUEST,
            "malformed_length",
        ),
        (
            with("length", serde_json::json!(-1)),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            with("sha256", serde_json::json!("AB".repeat(32))),
            StatusCode::BAD_REQUEST,
            "malformed_digest",
        ),
        (
            with("sha256", serde_json::json!("00")),
            StatusCode::BAD_REQUEST,
            "malformed_digest",
        ),
        (
            with("media", serde_json::json!("audio")),
            StatusCode::BAD_REQUEST,
            "malformed_form",
        ),
        (
            with("extra", serde_json::json!(1)),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            with("vouchers", serde_json::json!([])),
            StatusCode::BAD_REQUEST,
            "voucher_count",
        ),
        (
            with(
                "vouchers",
                serde_json::json!([{"voucher": "%%%", "vd": ""}]),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_voucher",
        ),
        (
            with(
                "vouchers",
                serde_json::json!([{"voucher": "AAAA", "vd": "AAAA"}]),
            ),
            StatusCode::BAD_REQUEST,
            "malformed_voucher",
        ),
    ] {
        let r = announce(&f, &d.token, &body).await;
        assert_eq!(r.status(), status, "{body}");
        let answer: Value = r.json().await.expect("error body");
        assert_eq!(answer["error"], code, "{body}");
    }
    // The wrong content type, broken JSON, no token.
    let r = f
        .http
        .post(f.url("/v1/attachments/slots"))
        .bearer_auth(&d.token)
        .header("content-type", "text/plain")
        .body(good.to_string())
        .send()
        .await
        .expect("announce");
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = f
        .http
        .post(f.url("/v1/attachments/slots"))
        .bearer_auth(&d.token)
        .header("content-type", "application/json")
        .body("{\"media\": \"image\", ")
        .send()
        .await
        .expect("announce");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = f
        .http
        .post(f.url("/v1/attachments/slots"))
        .json(&good)
        .send()
        .await
        .expect("announce");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let unknown = format!("/v1/attachments/slots/{}", "ab".repeat(16));
    assert_eq!(
        head_slot(&f, &d.token, &unknown).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        head_slot(&f, &d.token, "/v1/attachments/slots/not-hex")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    f.stop().await;
}

/// The names of the attachment blobs in the data folder.
fn att_blobs(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f._dir.path().join("data/blobs"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("att-"))
        .collect();
    names.sort();
    names
}

/// The slots' files in the data folder.
fn slot_files(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f._dir.path().join("data/blobs/slots"))
        .expect("slots")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Under `silent` an announcement's answer does not depend on the opening (R/E5 step 7,
/// PT18): a listed image and a benign one both get a slot, with equal answers but for the
/// random ids, and the listed one's voucher is opened afterwards. Both are delivered.
async fn two_phase_silent_always_gives_a_slot(kind: &str) {
    let Some(f) = Fixture::start(
        kind,
        "two_phase_silent_always_gives_a_slot",
        &standin_lists(),
        Preset::V1,
        Policy::Silent,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 23).await;
    let mut replies = Vec::new();
    for name in ["hills-recompressed.jpg", "blocks.webp"] {
        let (ciphertext, built) = prepare(&mut d, image_input(name));
        let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
        let status = r.status();
        let mut headers: Vec<String> = r
            .headers()
            .iter()
            .filter(|(k, _)| *k != "date" && *k != "location")
            .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
            .collect();
        headers.sort();
        let mut body: Value = r.json().await.expect("json");
        let url = body["upload_url"].as_str().expect("a slot").to_string();
        for random in ["slot_id", "upload_url", "sha256", "expires_at"] {
            body[random].take();
        }
        let r = patch_slot(&f, &d.token, &url, 0, &ciphertext).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<Value>().await.expect("json")["attachment_id"]
            .as_str()
            .expect("id")
            .to_string();
        assert_eq!(
            download(&f, &d.token, &id).await,
            (StatusCode::OK, ciphertext)
        );
        replies.push((status, headers, body));
    }
    assert_eq!(replies[0].0, StatusCode::CREATED);
    assert_eq!(replies[0], replies[1], "the answer depends on the vouchers");
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Read)
        .await
        .expect("store");
    let account = hashguard_store::AccountId::new(d.account);
    let mut opened = 0;
    for _ in 0..100 {
        opened = store.opened_records(&account).await.expect("records").len();
        if opened >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        opened, 1,
        "the listed image's voucher is opened after the answer"
    );
    let left = pending_files_settled(&f, 0).await;
    assert!(left.is_empty(), "pending vouchers left: {left:?}");
    store.close().await;
    f.stop().await;
}

/// A slot expires: its account gets 410, and the sweep deletes its row and its bytes (404
/// afterwards).
async fn upload_slots_expire(kind: &str) {
    let Some(f) = Fixture::start_configured(
        kind,
        "upload_slots_expire",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
        Limits::default(),
        |c| c.upload_slot_lifetime = Duration::from_secs(1),
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 24).await;
    let mut gen = ChaCha20Rng::seed_from_u64(2424);
    let (ciphertext, built) = prepare(&mut d, random_input(&mut gen));
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = r.json::<Value>().await.expect("json")["upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    let r = patch_slot(&f, &d.token, &url, 0, &ciphertext[..100]).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(slot_files(&f).len(), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(head_slot(&f, &d.token, &url).await.0, StatusCode::GONE);
    let r = patch_slot(&f, &d.token, &url, 100, &ciphertext[100..]).await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(att_blobs(&f).is_empty());
    // The sweep (the server runs it at start and every ten minutes).
    let store = Store::open_location(&DatabaseLocation::parse(&f.db), OpenMode::Create)
        .await
        .expect("store");
    let table = ServedTable::load(&TableDir::new(&f.config.table), &f.config.key).expect("table");
    let blobs = LocalBlobs::open(f.config.data.join("blobs")).expect("blobs");
    let intake = Intake::new(store.clone(), blobs, std::sync::Arc::new(table), None);
    assert_eq!(intake.sweep_slots(&[]).await.expect("sweep"), 1);
    assert_eq!(head_slot(&f, &d.token, &url).await.0, StatusCode::NOT_FOUND);
    assert!(slot_files(&f).is_empty(), "the slot's bytes are deleted");
    assert_eq!(intake.sweep_slots(&[]).await.expect("sweep"), 0);
    store.close().await;
    f.stop().await;
}

/// A `PATCH` whose connection breaks in the middle of its body (a raw socket that announces
/// the whole length, sends half and closes): the bytes that arrived are kept, `HEAD` says
/// how many, and the upload resumes from there to a bit-identical delivery.
async fn a_broken_patch_resumes(kind: &str) {
    use tokio::io::AsyncWriteExt as _;
    let Some(f) = Fixture::start(
        kind,
        "a_broken_patch_resumes",
        &standin_lists(),
        Preset::V1,
        Policy::Intervene,
    )
    .await
    else {
        return;
    };
    let mut d = device(&f, 25).await;
    let mut gen = ChaCha20Rng::seed_from_u64(2525);
    let (ciphertext, built) = prepare(&mut d, random_input(&mut gen));
    let r = announce(&f, &d.token, &announcement(&ciphertext, &built)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let url = r.json::<Value>().await.expect("json")["upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    let addr = f.base.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "PATCH {url} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        d.token,
        ciphertext.len()
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket.write_all(&ciphertext[..1500]).await.expect("half");
    socket.flush().await.expect("flush");
    // Let the server read the half before the connection goes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(socket);
    // The server notices the broken body and keeps what arrived (bounded wait).
    let mut offset = None;
    for _ in 0..50 {
        let (status, o) = head_slot(&f, &d.token, &url).await;
        assert_eq!(status, StatusCode::OK);
        if o.is_some_and(|o| o > 0) {
            offset = o;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offset = offset.expect("the bytes that arrived are kept");
    assert!(offset <= 1500, "{offset}");
    let at = usize::try_from(offset).expect("offset");
    // The broken request may still hold the slot while it flushes what it got: 423, and the
    // client tries again (bounded).
    let mut r = patch_slot(&f, &d.token, &url, offset, &ciphertext[at..]).await;
    for _ in 0..50 {
        if r.status() != StatusCode::LOCKED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = patch_slot(&f, &d.token, &url, offset, &ciphertext[at..]).await;
    }
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.expect("json")["attachment_id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        download(&f, &d.token, &id).await,
        (StatusCode::OK, ciphertext)
    );
    f.stop().await;
}

//! The MLS delivery endpoints over real HTTP on loopback, on SQLite and on PostgreSQL: three
//! devices of two accounts form a group from claimed key packages, messages reach exactly the
//! other members, an outsider learns nothing and can post nothing, a stale commit gets 409
//! with the current epoch, queues survive restarts without loss or duplicate, a revoked device
//! receives nothing, every route needs a token, and the per-device delivery limit answers 429.
//!
//! The MLS bytes here are random stand-ins: the server never parses them.

#[macro_use]
mod common;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hashguard_protocol::params::{Policy, Preset};
use hashguard_server::config::{Bucket, Limits};
use reqwest::StatusCode;
use serde_json::{json, Value};

use common::*;

on_both!(
    a_group_of_three_devices_of_two_accounts,
    queues_survive_restarts_exactly_once,
    revoked_device_receives_nothing,
    routes_need_a_token_and_deliveries_are_limited,
);

/// A registered device: its account, id and token.
struct Member {
    account: String,
    device: String,
    token: String,
}

async fn member(f: &Fixture) -> Member {
    let (device, account, token) = register(f).await;
    Member {
        account: hex::encode(account),
        device,
        token,
    }
}

/// A second device of `m`'s account.
async fn second_device(f: &Fixture, m: &Member) -> Member {
    let r = f
        .http
        .post(f.url("/v1/devices"))
        .bearer_auth(&m.token)
        .send()
        .await
        .expect("add device");
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.expect("json");
    Member {
        account: m.account.clone(),
        device: body["device_id"].as_str().expect("device").to_string(),
        token: body["token"].as_str().expect("token").to_string(),
    }
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

async fn call(
    f: &Fixture,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = f.http.request(method, f.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("request");
    let status = r.status();
    let text = r.text().await.expect("body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {status} with a body that is not JSON ({e}): {text}"));
    (status, value)
}

async fn post(f: &Fixture, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    call(f, reqwest::Method::POST, path, Some(token), Some(body)).await
}

async fn get(f: &Fixture, path: &str, token: &str) -> (StatusCode, Value) {
    call(f, reqwest::Method::GET, path, Some(token), None).await
}

/// The device's whole queue as (seq, kind, sender, body bytes, epoch), read page by page
/// (bounded), without acknowledging.
async fn inbox(f: &Fixture, m: &Member) -> Vec<(u64, String, String, Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let (status, page) =
            get(f, &format!("/v1/mls/queue?after={after}&limit=3"), &m.token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let messages = page["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            return out;
        }
        for msg in messages {
            let seq = msg["seq"].as_u64().expect("seq");
            assert!(seq > after);
            after = seq;
            out.push((
                seq,
                msg["kind"].as_str().expect("kind").to_string(),
                msg["sender_device"].as_str().expect("sender").to_string(),
                STANDARD
                    .decode(msg["body"].as_str().expect("body"))
                    .expect("base64"),
                msg["epoch"].as_u64().expect("epoch"),
            ));
        }
    }
    panic!("the queue does not end");
}

async fn ack(f: &Fixture, m: &Member, up_to: u64) -> u64 {
    let (status, body) = post(f, "/v1/mls/queue/ack", &m.token, json!({ "up_to": up_to })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["removed"].as_u64().expect("removed")
}

async fn publish_key_packages(f: &Fixture, m: &Member, n: u8) -> u64 {
    let kps: Vec<String> = (0..n)
        .map(|i| b64(format!("kp of {} #{i}", m.device).as_bytes()))
        .collect();
    let (status, body) = post(
        f,
        "/v1/mls/key-packages",
        &m.token,
        json!({ "key_packages": kps }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["available"].as_u64().expect("available")
}

async fn send(
    f: &Fixture,
    group: &str,
    m: &Member,
    epoch: u64,
    text: &[u8],
) -> (StatusCode, Value) {
    post(
        f,
        &format!("/v1/mls/groups/{group}/messages"),
        &m.token,
        json!({ "epoch": epoch, "message": b64(text) }),
    )
    .await
}

async fn start(kind: &str, test: &str, limits: Limits) -> Option<Fixture> {
    Fixture::start_with(
        kind,
        test,
        &standin_lists(),
        Preset::Lite,
        Policy::Intervene,
        limits,
    )
    .await
}

async fn a_group_of_three_devices_of_two_accounts(kind: &str) {
    let Some(f) = start(
        kind,
        "a_group_of_three_devices_of_two_accounts",
        Limits::default(),
    )
    .await
    else {
        return;
    };
    let alice = member(&f).await;
    let alice2 = second_device(&f, &alice).await;
    let bob = member(&f).await;
    let outsider = member(&f).await;
    assert_eq!(publish_key_packages(&f, &alice2, 2).await, 2);
    assert_eq!(publish_key_packages(&f, &bob, 3).await, 3);
    let (status, body) = get(&f, "/v1/mls/key-packages", &bob.token).await;
    assert_eq!(
        (status, body["available"].as_u64()),
        (StatusCode::OK, Some(3))
    );

    // Claims: one per active device, each once; Alice's own first device has none.
    let (status, claimed) = post(
        &f,
        "/v1/mls/key-packages/claim",
        &alice.token,
        json!({ "account_id": alice.account }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["exhausted"], json!([alice.device]));
    assert_eq!(
        claimed["key_packages"][0]["device_id"],
        json!(alice2.device)
    );
    let kp = STANDARD
        .decode(
            claimed["key_packages"][0]["key_package"]
                .as_str()
                .expect("kp"),
        )
        .expect("b64");
    assert_eq!(kp, format!("kp of {} #0", alice2.device).into_bytes());
    let (status, claimed) = post(
        &f,
        "/v1/mls/key-packages/claim",
        &alice.token,
        json!({ "account_id": bob.account }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claimed["key_packages"].as_array().map(Vec::len), Some(1));
    let (status, body) = get(&f, "/v1/mls/key-packages", &bob.token).await;
    assert_eq!(
        (status, body["available"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    let (status, body) = post(
        &f,
        "/v1/mls/key-packages/claim",
        &alice.token,
        json!({ "account_id": "0".repeat(32) }),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Alice's first device creates the group and adds her second device and Bob's.
    let group = "00112233445566778899aabbccddeeff";
    let (status, body) = post(
        &f,
        "/v1/mls/groups",
        &alice.token,
        json!({ "group_id": group }),
    )
    .await;
    assert_eq!((status, body), (StatusCode::CREATED, json!({ "epoch": 0 })));
    let (status, body) = post(
        &f,
        "/v1/mls/groups",
        &bob.token,
        json!({ "group_id": group }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice.token,
        json!({
            "epoch": 0,
            "commit": b64(b"commit 0"),
            "welcome": b64(b"welcome 1"),
            "group_info": b64(b"group info 1"),
            "added_devices": [alice2.device, bob.device],
            "removed_devices": [],
        }),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "epoch": 1 })));
    let (status, state) = get(&f, &format!("/v1/mls/groups/{group}"), &bob.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["epoch"], 1);
    let mut expected = vec![
        alice.device.clone(),
        alice2.device.clone(),
        bob.device.clone(),
    ];
    expected.sort();
    assert_eq!(state["members"], json!(expected));
    assert_eq!(state["group_info"], json!(b64(b"group info 1")));
    // Upper-case hex names the same group.
    let (status, _) = get(
        &f,
        &format!("/v1/mls/groups/{}", group.to_uppercase()),
        &bob.token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Messages reach exactly the other members.
    let (status, body) = send(&f, group, &bob, 1, b"hello from bob").await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({ "recipients": 2 }))
    );
    let (status, body) = send(&f, group, &alice2, 1, b"hello from alice2").await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({ "recipients": 2 }))
    );
    let seen =
        |q: Vec<(u64, String, String, Vec<u8>, u64)>| -> Vec<(String, String, Vec<u8>, u64)> {
            q.into_iter().map(|(_, k, s, b, e)| (k, s, b, e)).collect()
        };
    let entry =
        |k: &str, s: &Member, b: &[u8], e: u64| (k.to_string(), s.device.clone(), b.to_vec(), e);
    assert_eq!(
        seen(inbox(&f, &alice).await),
        vec![
            entry("application", &bob, b"hello from bob", 1),
            entry("application", &alice2, b"hello from alice2", 1),
        ]
    );
    assert_eq!(
        seen(inbox(&f, &alice2).await),
        vec![
            entry("welcome", &alice, b"welcome 1", 1),
            entry("application", &bob, b"hello from bob", 1),
        ]
    );
    assert_eq!(
        seen(inbox(&f, &bob).await),
        vec![
            entry("welcome", &alice, b"welcome 1", 1),
            entry("application", &alice2, b"hello from alice2", 1),
        ]
    );
    assert!(inbox(&f, &outsider).await.is_empty());

    // The outsider learns nothing and can post nothing: the answers of a group that does not
    // exist.
    let unknown = "ffff";
    for g in [group, unknown] {
        let (status, body) = get(&f, &format!("/v1/mls/groups/{g}"), &outsider.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = send(&f, g, &outsider, 1, b"spam").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = post(
            &f,
            &format!("/v1/mls/groups/{g}/commits"),
            &outsider.token,
            json!({ "epoch": 1, "commit": b64(b"c"), "removed_devices": [bob.device] }),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    assert_eq!(inbox(&f, &bob).await.len(), 2);

    // Two commits for epoch 1: Bob's wins, Alice's second device gets 409 with the epoch.
    let (status, body) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &bob.token,
        json!({ "epoch": 1, "commit": b64(b"bob's update") }),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "epoch": 2 })));
    let (status, body) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice2.token,
        json!({ "epoch": 1, "commit": b64(b"alice2's update"), "removed_devices": [bob.device] }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "stale_epoch");
    assert_eq!(body["current_epoch"], 2);
    let (status, body) = send(&f, group, &alice, 1, b"too late").await;
    assert_eq!(
        (status, &body["current_epoch"]),
        (StatusCode::CONFLICT, &json!(2))
    );
    // The loser's commit reached nobody; the winner's reached the two others.
    let commits = |q: Vec<(u64, String, String, Vec<u8>, u64)>| -> Vec<Vec<u8>> {
        q.into_iter()
            .filter(|e| e.1 == "commit")
            .map(|e| e.3)
            .collect()
    };
    assert_eq!(
        commits(inbox(&f, &alice).await),
        vec![b"bob's update".to_vec()]
    );
    assert_eq!(
        commits(inbox(&f, &alice2).await),
        vec![b"bob's update".to_vec()]
    );
    assert!(commits(inbox(&f, &bob).await).is_empty());
    // A membership change that does not fit the group: 409, nothing written.
    let (status, body) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice.token,
        json!({ "epoch": 2, "commit": b64(b"c"), "removed_devices": [outsider.device] }),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::CONFLICT, &json!("membership_conflict"))
    );
    let (_, state) = get(&f, &format!("/v1/mls/groups/{group}"), &bob.token).await;
    assert_eq!(state["epoch"], 2);
    // The group info is only kept from the commit that brought it.
    assert_eq!(state["group_info"], Value::Null);

    // Bad input: 400 naming the field, never 500.
    for (path, body, field) in [
        (
            format!("/v1/mls/groups/{group}/messages"),
            json!({ "epoch": 2, "message": "not base64!" }),
            "message",
        ),
        (
            format!("/v1/mls/groups/{group}/messages"),
            json!({ "epoch": 2, "message": "" }),
            "message",
        ),
        (
            format!("/v1/mls/groups/{group}/commits"),
            json!({ "epoch": 2, "commit": b64(b"c"), "added_devices": ["XYZ"], "welcome": b64(b"w") }),
            "added_devices[0]",
        ),
        (
            format!("/v1/mls/groups/{group}/commits"),
            json!({ "epoch": 2, "commit": b64(b"c"), "added_devices": [outsider.device] }),
            "welcome",
        ),
        (
            "/v1/mls/groups/xyz/messages".to_string(),
            json!({ "epoch": 2, "message": b64(b"m") }),
            "group_id",
        ),
        (
            "/v1/mls/groups".to_string(),
            json!({ "group_id": "ab".repeat(65) }),
            "group_id",
        ),
        (
            "/v1/mls/key-packages".to_string(),
            json!({ "key_packages": [b64(b"ok"), "@@@@"] }),
            "key_packages[1]",
        ),
        (
            "/v1/mls/key-packages".to_string(),
            json!({ "key_packages": [b64(&vec![7u8; 16 * 1024 + 1])] }),
            "key_packages[0]",
        ),
        (
            "/v1/mls/key-packages".to_string(),
            json!({ "key_packages": [] }),
            "key_packages",
        ),
        (
            "/v1/mls/key-packages/claim".to_string(),
            json!({ "account_id": "nope" }),
            "account_id",
        ),
        (
            "/v1/mls/queue/ack".to_string(),
            json!({ "up_to": -1 }),
            "up_to",
        ),
        (
            "/v1/mls/queue/ack".to_string(),
            json!({ "up_to": u64::MAX }),
            "up_to",
        ),
    ] {
        let (status, answer) = post(&f, &path, &alice.token, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(
            answer["message"].as_str().expect("message").contains(field),
            "{path}: {answer}"
        );
    }
    let (status, answer) = send(&f, group, &alice, 2, &vec![1u8; 256 * 1024 + 1]).await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
        "{status}: {answer}"
    );
    let (status, answer) = send(&f, group, &alice, 2, &vec![1u8; 256 * 1024]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    for query in [
        "limit=0",
        "limit=501",
        "after=-1",
        "limit=x",
        "after=9223372036854775808",
    ] {
        let (status, answer) = get(&f, &format!("/v1/mls/queue?{query}"), &alice.token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
    }
    // Acks delete only the caller's entries, up to the seq given.
    let before = inbox(&f, &bob).await;
    let first = before[0].0;
    assert_eq!(ack(&f, &alice, first).await, 1);
    assert_eq!(inbox(&f, &bob).await, before);
    assert_eq!(ack(&f, &bob, i64::MAX as u64).await, before.len() as u64);
    assert!(inbox(&f, &bob).await.is_empty());
    f.stop().await;
}

async fn queues_survive_restarts_exactly_once(kind: &str) {
    let Some(mut f) = start(
        kind,
        "queues_survive_restarts_exactly_once",
        Limits::default(),
    )
    .await
    else {
        return;
    };
    let alice = member(&f).await;
    let bob = member(&f).await;
    let group = "a1b2";
    post(
        &f,
        "/v1/mls/groups",
        &alice.token,
        json!({ "group_id": group }),
    )
    .await;
    let (status, _) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice.token,
        json!({ "epoch": 0, "commit": b64(b"c"), "welcome": b64(b"w"), "added_devices": [bob.device] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..5u8 {
        let (status, _) = send(&f, group, &alice, 1, &[i; 10]).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    f.restart().await;
    let got = inbox(&f, &bob).await;
    let bodies: Vec<Vec<u8>> = got.iter().map(|e| e.3.clone()).collect();
    let mut expected = vec![b"w".to_vec()];
    expected.extend((0..5u8).map(|i| vec![i; 10]));
    assert_eq!(bodies, expected);
    assert_eq!(ack(&f, &bob, got.last().expect("entries").0).await, 6);
    // Sent after the acknowledgement, before the next restart.
    let (status, _) = send(&f, group, &alice, 1, b"after").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    f.restart().await;
    let got = inbox(&f, &bob).await;
    assert_eq!(
        got.iter().map(|e| e.3.clone()).collect::<Vec<_>>(),
        [b"after".to_vec()]
    );
    assert_eq!(got[0].0, 7, "numbers are not reused across restarts");
    ack(&f, &bob, got[0].0).await;
    f.restart().await;
    assert!(inbox(&f, &bob).await.is_empty());
    // The group's state survived too.
    let (status, state) = get(&f, &format!("/v1/mls/groups/{group}"), &alice.token).await;
    assert_eq!((status, &state["epoch"]), (StatusCode::OK, &json!(1)));
    f.stop().await;
}

async fn revoked_device_receives_nothing(kind: &str) {
    let Some(f) = start(kind, "revoked_device_receives_nothing", Limits::default()).await else {
        return;
    };
    let alice = member(&f).await;
    let bob = member(&f).await;
    let bob2 = second_device(&f, &bob).await;
    publish_key_packages(&f, &bob2, 2).await;
    let group = "0a0b0c";
    post(
        &f,
        "/v1/mls/groups",
        &alice.token,
        json!({ "group_id": group }),
    )
    .await;
    let (status, _) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice.token,
        json!({ "epoch": 0, "commit": b64(b"c"), "welcome": b64(b"w"), "added_devices": [bob.device, bob2.device] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&f, group, &alice, 1, b"before").await;
    assert_eq!(
        (status, &body["recipients"]),
        (StatusCode::ACCEPTED, &json!(2))
    );
    let r = f
        .http
        .delete(f.url(&format!("/v1/devices/{}", bob2.device)))
        .bearer_auth(&bob.token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, body) = send(&f, group, &alice, 1, b"after").await;
    assert_eq!(
        (status, &body["recipients"]),
        (StatusCode::ACCEPTED, &json!(1))
    );
    let (status, _) = get(&f, "/v1/mls/queue", &bob2.token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, claimed) = post(
        &f,
        "/v1/mls/key-packages/claim",
        &alice.token,
        json!({ "account_id": bob.account }),
    )
    .await;
    assert_eq!(claimed["exhausted"], json!([bob.device]));
    assert_eq!(claimed["key_packages"], json!([]));
    // Its queue and key packages are gone from the database, not only hidden.
    let store = hashguard_store::Store::open_location(
        &hashguard_store::DatabaseLocation::parse(&f.db),
        hashguard_store::OpenMode::Read,
    )
    .await
    .expect("store");
    let bob2_id: hashguard_store::DeviceId = bob2.device.parse().expect("id");
    assert!(store
        .receive(&bob2_id, 0, 100, u64::MAX)
        .await
        .expect("queue")
        .is_empty());
    assert_eq!(
        store.key_packages_available(&bob2_id).await.expect("count"),
        0
    );
    store.close().await;
    // Bob's other device still gets everything.
    let bodies: Vec<Vec<u8>> = inbox(&f, &bob).await.into_iter().map(|e| e.3).collect();
    assert_eq!(
        bodies,
        [b"w".to_vec(), b"before".to_vec(), b"after".to_vec()]
    );
    f.stop().await;
}

async fn routes_need_a_token_and_deliveries_are_limited(kind: &str) {
    let limits = Limits {
        deliveries_per_device: Bucket {
            burst: 3,
            per_hour: 1,
        },
        ..Limits::default()
    };
    let Some(f) = start(
        kind,
        "routes_need_a_token_and_deliveries_are_limited",
        limits,
    )
    .await
    else {
        return;
    };
    use reqwest::Method;
    for (method, path) in [
        (Method::POST, "/v1/mls/key-packages"),
        (Method::GET, "/v1/mls/key-packages"),
        (Method::POST, "/v1/mls/key-packages/claim"),
        (Method::POST, "/v1/mls/groups"),
        (Method::GET, "/v1/mls/groups/00"),
        (Method::POST, "/v1/mls/groups/00/commits"),
        (Method::POST, "/v1/mls/groups/00/messages"),
        (Method::GET, "/v1/mls/queue"),
        (Method::POST, "/v1/mls/queue/ack"),
    ] {
        for token in [None, Some("not-a-token")] {
            let body = (method == Method::POST).then(|| json!({}));
            let (status, answer) = call(&f, method.clone(), path, token, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {answer}"
            );
            assert_eq!(answer["error"], "unauthorized");
        }
    }
    let alice = member(&f).await;
    let bob = member(&f).await;
    let group = "77";
    post(
        &f,
        "/v1/mls/groups",
        &alice.token,
        json!({ "group_id": group }),
    )
    .await;
    // The commit and two messages use the burst of 3; the fourth delivery waits.
    let (status, _) = post(
        &f,
        &format!("/v1/mls/groups/{group}/commits"),
        &alice.token,
        json!({ "epoch": 0, "commit": b64(b"c"), "welcome": b64(b"w"), "added_devices": [bob.device] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..2 {
        assert_eq!(
            send(&f, group, &alice, 1, b"m").await.0,
            StatusCode::ACCEPTED
        );
    }
    let r = f
        .http
        .post(f.url(&format!("/v1/mls/groups/{group}/messages")))
        .bearer_auth(&alice.token)
        .json(&json!({ "epoch": 1, "message": b64(b"one too many") }))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("this device"),
        "{body}"
    );
    // The limit is the device's: Bob still sends, and nothing of the refused one was queued.
    assert_eq!(
        send(&f, group, &bob, 1, b"bob").await.0,
        StatusCode::ACCEPTED
    );
    assert_eq!(inbox(&f, &bob).await.len(), 3);
    f.stop().await;
}

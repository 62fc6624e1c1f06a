//! The upload service's state (migration `0004_upload_service.sql`): accounts and devices,
//! attachments, opened records, cases, audit events, rate buckets and the integrity check. Every
//! check runs on SQLite and on PostgreSQL (see `common`); the concurrency checks open a second
//! `Store` on the same database, as a second server process would.

#[macro_use]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hashguard_store::*;
use sqlx::AnyPool;
use tokio::sync::Barrier;

suite!(
    accounts_and_devices,
    attachments,
    opened_records_round_trip,
    concurrent_appends_at_one_seq,
    share_stores_freeze,
    cases,
    case_queue_is_oldest_first,
    audit_log,
    concurrent_audit_appends_are_dense,
    token_bucket,
    concurrent_takers_never_over_spend,
    tokens_together_take_all_or_none,
    concurrent_joint_takers_never_over_spend,
    released_checks_and_campaigns,
    integrity_check,
);

/// An id of `n`, distinct per kind and per `n`, spelled with every hex digit position used.
fn bytes(kind: u8, n: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = kind;
    b[12..].copy_from_slice(&n.to_be_bytes());
    b[1] = 0xa5;
    b
}

fn acct(n: u32) -> AccountId {
    AccountId::new(bytes(1, n))
}

fn dev(n: u32) -> DeviceId {
    DeviceId::new(bytes(2, n))
}

fn att(n: u32) -> AttachmentId {
    AttachmentId::new(bytes(3, n))
}

fn case_id(n: u32) -> CaseId {
    CaseId::new(bytes(4, n))
}

/// A token digest of `n` (the store never sees the token itself).
fn token(n: u8) -> [u8; 32] {
    let mut t = [n; 32];
    t[31] = 0xfe;
    t
}

fn attachment(n: u32, account: AccountId) -> AttachmentRecord {
    let mut sha256 = [0u8; 32];
    for (i, b) in sha256.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(n as u8);
    }
    AttachmentRecord {
        id: att(n),
        account,
        sha256,
        length: 1_000 + u64::from(n),
        state: AttachmentState::Stored,
        created_at: 1_700_000_000 + i64::from(n),
    }
}

fn case(n: u32, account: AccountId, kind: CaseKind, state: CaseState, at: i64) -> CaseRecord {
    CaseRecord {
        id: case_id(n),
        account,
        kind,
        attachment: None,
        state,
        created_at: at,
        updated_at: at,
        detail: format!("{{\"n\":{n}}}"),
    }
}

async fn accounts_and_devices(store: Store, _url: String) {
    let (a, b) = (acct(1), acct(2));
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    store
        .create_account(&b, &dev(2), &token(2), 100)
        .await
        .unwrap();
    // Lookup by the token's digest.
    let d = store.device_for_token(&token(1)).await.unwrap();
    assert_eq!(
        d,
        Some(Device {
            account: a,
            device: dev(1),
            revoked: false
        })
    );
    assert_eq!(store.device_for_token(&token(9)).await.unwrap(), None);

    // A second device of an account; none for a missing account.
    store.add_device(&a, &dev(3), &token(3), 101).await.unwrap();
    assert_eq!(
        store
            .device_for_token(&token(3))
            .await
            .unwrap()
            .map(|d| d.account),
        Some(a)
    );
    let missing = store.add_device(&acct(99), &dev(4), &token(4), 101).await;
    assert!(
        matches!(missing, Err(StoreError::NoSuchAccount(x)) if x == acct(99)),
        "{missing:?}"
    );
    assert_eq!(store.device_for_token(&token(4)).await.unwrap(), None);

    // Taken keys: the account, a device id, a token digest. Nothing is half-written.
    let again = store.create_account(&a, &dev(5), &token(5), 102).await;
    assert!(
        matches!(again, Err(StoreError::AccountExists(x)) if x == a),
        "{again:?}"
    );
    assert_eq!(store.device_for_token(&token(5)).await.unwrap(), None);
    let same_token = store.add_device(&b, &dev(6), &token(1), 102).await;
    assert!(
        matches!(
            same_token,
            Err(StoreError::Duplicate {
                table: "devices",
                ..
            })
        ),
        "{same_token:?}"
    );
    let same_device = store.add_device(&b, &dev(1), &token(7), 102).await;
    assert!(
        matches!(
            same_device,
            Err(StoreError::Duplicate {
                table: "devices",
                ..
            })
        ),
        "{same_device:?}"
    );
    // The account of a create that failed on its device is not left behind.
    let half = store
        .create_account(&acct(3), &dev(8), &token(2), 103)
        .await;
    assert!(
        matches!(half, Err(StoreError::Duplicate { .. })),
        "{half:?}"
    );
    assert!(matches!(
        store.shares_frozen(&acct(3)).await,
        Err(StoreError::NoSuchAccount(_))
    ));
    store
        .create_account(&acct(3), &dev(8), &token(8), 103)
        .await
        .unwrap();

    // Revocation: not of another account's device; idempotent on one's own.
    assert!(!store.revoke_device(&b, &dev(1), 200).await.unwrap());
    assert!(!store.revoke_device(&a, &dev(99), 200).await.unwrap());
    assert!(
        !store
            .device_for_token(&token(1))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(store.revoke_device(&a, &dev(1), 200).await.unwrap());
    assert!(store.revoke_device(&a, &dev(1), 300).await.unwrap());
    let revoked = store.device_for_token(&token(1)).await.unwrap().unwrap();
    assert_eq!(
        revoked,
        Device {
            account: a,
            device: dev(1),
            revoked: true
        }
    );
    // The account's other device is untouched.
    assert!(
        !store
            .device_for_token(&token(3))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

async fn attachments(store: Store, url: String) {
    let a = acct(1);
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    let mut records: Vec<AttachmentRecord> = (0..5).map(|n| attachment(n, a)).collect();
    records[4].length = 0;
    for r in &records {
        store.insert_attachment(r).await.unwrap();
    }
    for r in &records {
        assert_eq!(store.attachment(&r.id).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(store.attachment(&att(77)).await.unwrap(), None);

    // Each state round-trips.
    for state in AttachmentState::ALL {
        assert!(store
            .set_attachment_state(&records[1].id, *state)
            .await
            .unwrap());
        assert_eq!(
            store
                .attachment(&records[1].id)
                .await
                .unwrap()
                .unwrap()
                .state,
            *state
        );
    }
    assert!(!store
        .set_attachment_state(&att(77), AttachmentState::Held)
        .await
        .unwrap());

    let mut ids: Vec<AttachmentId> = records.iter().map(|r| r.id).collect();
    ids.sort();
    assert_eq!(store.attachment_ids().await.unwrap(), ids);

    // Refused: a taken id, a missing account, a length the database cannot hold.
    let dup = store.insert_attachment(&records[0]).await;
    assert!(
        matches!(
            dup,
            Err(StoreError::Duplicate {
                table: "attachments",
                ..
            })
        ),
        "{dup:?}"
    );
    let orphan = store.insert_attachment(&attachment(10, acct(99))).await;
    assert!(
        matches!(orphan, Err(StoreError::NoSuchAccount(x)) if x == acct(99)),
        "{orphan:?}"
    );
    let mut huge = attachment(11, a);
    huge.length = u64::MAX;
    assert!(matches!(
        store.insert_attachment(&huge).await,
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(store.attachment_ids().await.unwrap().len(), records.len());

    // Stored as lowercase hex text: the row holds the digest, never anything else.
    let raw = AnyPool::connect(&url).await.unwrap();
    let (id, sha): (String, String) =
        sqlx::query_as("SELECT id, sha256 FROM attachments WHERE id = $1")
            .bind(records[0].id.to_string())
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(id, records[0].id.to_string());
    let hex: String = records[0]
        .sha256
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sha, hex);
    // A row that does not validate is reported, not skipped.
    sqlx::query("UPDATE attachments SET state = 'lost' WHERE id = $1")
        .bind(records[2].id.to_string())
        .execute(&raw)
        .await
        .expect_err("the CHECK constraint refuses an unknown state");
    sqlx::query("UPDATE attachments SET sha256 = 'XYZ' WHERE id = $1")
        .bind(records[2].id.to_string())
        .execute(&raw)
        .await
        .unwrap();
    assert!(matches!(
        store.attachment(&records[2].id).await,
        Err(StoreError::Corrupt {
            table: "attachments",
            ..
        })
    ));
    raw.close().await;
}

async fn opened_records_round_trip(store: Store, _url: String) {
    let (a, b) = (acct(1), acct(2));
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    store
        .create_account(&b, &dev(2), &token(2), 100)
        .await
        .unwrap();
    store.insert_attachment(&attachment(1, a)).await.unwrap();
    assert!(store.opened_records(&a).await.unwrap().is_empty());

    // Every byte value, an empty record, a long one: bit-identical, in seq order.
    let payloads: Vec<Vec<u8>> = vec![
        (0..=255u8).collect(),
        Vec::new(),
        vec![0u8; 3],
        (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        vec![0xff; 1],
    ];
    for (seq, p) in payloads.iter().enumerate() {
        let attachment = (seq % 2 == 0).then(|| att(1));
        let out = store
            .append_opened_record(&a, seq as u64, p, attachment.as_ref(), 500 + seq as i64)
            .await
            .unwrap();
        assert_eq!(out, Appended::Written);
    }
    let records = store.opened_records(&a).await.unwrap();
    assert_eq!(records.len(), payloads.len());
    for (seq, (r, p)) in records.iter().zip(&payloads).enumerate() {
        assert_eq!(r.seq, seq as u64);
        assert_eq!(&r.bytes, p);
        assert_eq!(r.attachment, (seq % 2 == 0).then(|| att(1)));
        assert_eq!(r.created_at, 500 + seq as i64);
    }

    // Not at the log's end: nothing written, whether the seq is taken or past the end.
    let n = payloads.len() as u64;
    for seq in [0, n - 1, n + 1, n + 100] {
        assert_eq!(
            store
                .append_opened_record(&a, seq, b"late", None, 900)
                .await
                .unwrap(),
            Appended::SeqTaken,
            "seq {seq}"
        );
    }
    assert_eq!(store.opened_records(&a).await.unwrap(), records);

    // Logs are per account.
    assert!(store.opened_records(&b).await.unwrap().is_empty());
    assert_eq!(
        store
            .append_opened_record(&b, 0, b"b0", None, 901)
            .await
            .unwrap(),
        Appended::Written
    );
    assert_eq!(store.opened_records(&b).await.unwrap().len(), 1);
    assert_eq!(store.opened_records(&a).await.unwrap(), records);

    // Missing parents.
    let no_account = store
        .append_opened_record(&acct(99), 0, b"x", None, 902)
        .await;
    assert!(
        matches!(no_account, Err(StoreError::NoSuchAccount(x)) if x == acct(99)),
        "{no_account:?}"
    );
    let no_attachment = store
        .append_opened_record(&b, 1, b"x", Some(&att(99)), 902)
        .await;
    assert!(
        matches!(no_attachment, Err(StoreError::NoSuchAttachment(x)) if x == att(99)),
        "{no_attachment:?}"
    );
    assert_eq!(store.opened_records(&b).await.unwrap().len(), 1);
    assert!(store.opened_records(&acct(99)).await.unwrap().is_empty());
}

/// Two server processes append at the same seq at the same moment: exactly one is written, the
/// other is told to reload. Several rounds, so the race is really run.
async fn concurrent_appends_at_one_seq(store: Store, url: String) {
    const ROUNDS: u64 = 12;
    let a = acct(1);
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    let other = Store::open(&url).await.unwrap();
    let barrier = Arc::new(Barrier::new(2));
    for seq in 0..ROUNDS {
        let mut tasks = Vec::new();
        for (who, s) in [(0u8, store.clone()), (1u8, other.clone())] {
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let bytes = [who; 40];
                let out = s
                    .append_opened_record(&a, seq, &bytes, None, 1_000)
                    .await
                    .unwrap();
                (who, out)
            }));
        }
        let mut outs = Vec::new();
        for t in tasks {
            outs.push(
                tokio::time::timeout(Duration::from_secs(60), t)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let written: Vec<u8> = outs
            .iter()
            .filter(|(_, o)| *o == Appended::Written)
            .map(|(w, _)| *w)
            .collect();
        let taken = outs
            .iter()
            .filter(|(_, o)| *o == Appended::SeqTaken)
            .count();
        assert_eq!((written.len(), taken), (1, 1), "round {seq}: {outs:?}");
        // The record at seq is the winner's.
        let log = store.opened_records(&a).await.unwrap();
        assert_eq!(log.len() as u64, seq + 1);
        assert_eq!(log[seq as usize].bytes, vec![written[0]; 40]);
    }
    other.close().await;
    store.integrity_check().await.unwrap();
}

async fn share_stores_freeze(store: Store, _url: String) {
    let a = acct(1);
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    assert!(!store.shares_frozen(&a).await.unwrap());
    store.freeze_shares(&a).await.unwrap();
    assert!(store.shares_frozen(&a).await.unwrap());
    store.freeze_shares(&a).await.unwrap();
    assert!(store.shares_frozen(&a).await.unwrap());
    assert!(matches!(
        store.freeze_shares(&acct(2)).await,
        Err(StoreError::NoSuchAccount(_))
    ));
    assert!(matches!(
        store.shares_frozen(&acct(2)).await,
        Err(StoreError::NoSuchAccount(_))
    ));
}

async fn cases(store: Store, _url: String) {
    let (a, b) = (acct(1), acct(2));
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    store
        .create_account(&b, &dev(2), &token(2), 100)
        .await
        .unwrap();
    store.insert_attachment(&attachment(1, a)).await.unwrap();

    let mut held = case(1, a, CaseKind::Held, CaseState::Held, 1_000);
    held.attachment = Some(att(1));
    store.insert_case(&held).await.unwrap();
    assert_eq!(store.case(&held.id).await.unwrap(), Some(held.clone()));
    assert_eq!(store.case(&case_id(99)).await.unwrap(), None);

    // Compare-and-set: a wrong `from` changes nothing.
    assert!(!store
        .set_case_state(
            &held.id,
            CaseState::Queued,
            CaseState::Closed,
            Some("{}"),
            1_100
        )
        .await
        .unwrap());
    assert_eq!(store.case(&held.id).await.unwrap(), Some(held.clone()));
    // The right `from` moves it, with the time and the new detail.
    assert!(store
        .set_case_state(
            &held.id,
            CaseState::Held,
            CaseState::CheckBlocked,
            Some("{\"check\":\"blocked\"}"),
            1_200
        )
        .await
        .unwrap());
    let moved = store.case(&held.id).await.unwrap().unwrap();
    assert_eq!(
        (moved.state, moved.updated_at, moved.detail.as_str()),
        (CaseState::CheckBlocked, 1_200, "{\"check\":\"blocked\"}")
    );
    assert_eq!(moved.created_at, held.created_at);
    // No detail keeps the detail; the same move twice succeeds once.
    assert!(store
        .set_case_state(
            &held.id,
            CaseState::CheckBlocked,
            CaseState::Queued,
            None,
            1_300
        )
        .await
        .unwrap());
    assert!(!store
        .set_case_state(
            &held.id,
            CaseState::CheckBlocked,
            CaseState::Queued,
            None,
            1_400
        )
        .await
        .unwrap());
    let queued = store.case(&held.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.state, queued.updated_at, queued.detail.as_str()),
        (CaseState::Queued, 1_300, "{\"check\":\"blocked\"}")
    );
    assert!(!store
        .set_case_state(
            &case_id(99),
            CaseState::Held,
            CaseState::Closed,
            None,
            1_500
        )
        .await
        .unwrap());

    // Threshold cases: at most one per account.
    assert!(!store.threshold_case_exists(&a).await.unwrap());
    let t = case(2, a, CaseKind::Threshold, CaseState::Queued, 2_000);
    store.insert_case(&t).await.unwrap();
    assert!(store.threshold_case_exists(&a).await.unwrap());
    assert!(!store.threshold_case_exists(&b).await.unwrap());
    let second = store
        .insert_case(&case(3, a, CaseKind::Threshold, CaseState::Queued, 2_100))
        .await;
    assert!(
        matches!(second, Err(StoreError::Duplicate { table: "cases", .. })),
        "{second:?}"
    );
    // Closing it does not make room for another.
    assert!(store
        .set_case_state(&t.id, CaseState::Queued, CaseState::Closed, None, 2_200)
        .await
        .unwrap());
    assert!(store.threshold_case_exists(&a).await.unwrap());
    store
        .insert_case(&case(4, b, CaseKind::Threshold, CaseState::Queued, 2_300))
        .await
        .unwrap();

    // Refused: a taken id, missing parents.
    let dup = store.insert_case(&held).await;
    assert!(
        matches!(dup, Err(StoreError::Duplicate { table: "cases", .. })),
        "{dup:?}"
    );
    let no_account = store
        .insert_case(&case(5, acct(99), CaseKind::Held, CaseState::Held, 1))
        .await;
    assert!(
        matches!(no_account, Err(StoreError::NoSuchAccount(x)) if x == acct(99)),
        "{no_account:?}"
    );
    let mut no_attachment = case(6, b, CaseKind::Held, CaseState::Held, 1);
    no_attachment.attachment = Some(att(99));
    let no_attachment = store.insert_case(&no_attachment).await;
    assert!(
        matches!(no_attachment, Err(StoreError::NoSuchAttachment(x)) if x == att(99)),
        "{no_attachment:?}"
    );
}

async fn case_queue_is_oldest_first(store: Store, _url: String) {
    let a = acct(1);
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    // Inserted out of time order, in every state; two share a time (then by id).
    let cases = [
        (10, CaseState::Queued, 5_000),
        (11, CaseState::Held, 1_000),
        (12, CaseState::CheckBlocked, 3_000),
        (13, CaseState::Closed, 500),
        (14, CaseState::Queued, 2_000),
        (15, CaseState::CheckReleased, 100),
        (16, CaseState::Queued, 3_000),
        (17, CaseState::CheckBlocked, 4_000),
    ];
    for (n, state, at) in cases {
        store
            .insert_case(&case(n, a, CaseKind::Held, state, at))
            .await
            .unwrap();
    }
    let ids = |q: Vec<CaseRecord>| q.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let all = store.case_queue(100).await.unwrap();
    assert!(all
        .iter()
        .all(|c| matches!(c.state, CaseState::Queued | CaseState::CheckBlocked)));
    assert_eq!(
        ids(all),
        vec![
            case_id(14),
            case_id(12),
            case_id(16),
            case_id(17),
            case_id(10)
        ]
    );
    assert_eq!(
        ids(store.case_queue(2).await.unwrap()),
        vec![case_id(14), case_id(12)]
    );
    assert!(store.case_queue(0).await.unwrap().is_empty());
    // Leaving the queue.
    assert!(store
        .set_case_state(
            &case_id(14),
            CaseState::Queued,
            CaseState::Closed,
            None,
            6_000
        )
        .await
        .unwrap());
    assert_eq!(ids(store.case_queue(1).await.unwrap()), vec![case_id(12)]);
}

async fn audit_log(store: Store, _url: String) {
    assert!(store.audit_events(None, 10).await.unwrap().is_empty());
    for i in 0..7u64 {
        let seq = store
            .append_audit(
                1_000 + i as i64,
                "admin",
                "case.close",
                &format!("case-{i}"),
                "{}",
            )
            .await
            .unwrap();
        assert_eq!(seq, i);
    }
    let all = store.audit_events(None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(
        all[3],
        AuditEvent {
            seq: 3,
            at: 1_003,
            actor: "admin".into(),
            action: "case.close".into(),
            subject: "case-3".into(),
            detail: "{}".into(),
        }
    );
    // Paging by the last seq seen.
    let page = store.audit_events(Some(2), 3).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let page = store.audit_events(Some(5), 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6]);
    assert!(store.audit_events(Some(6), 3).await.unwrap().is_empty());
    assert!(store
        .audit_events(Some(u64::MAX), 3)
        .await
        .unwrap()
        .is_empty());
    assert!(store.audit_events(None, 0).await.unwrap().is_empty());
}

/// Two server processes append 20 events each, all at once: the seqs are exactly 0..40.
async fn concurrent_audit_appends_are_dense(store: Store, url: String) {
    const EACH: u64 = 20;
    let other = Store::open(&url).await.unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let mut tasks = Vec::new();
    for (who, s) in [("one", store.clone()), ("two", other.clone())] {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut seqs = Vec::new();
            for i in 0..EACH {
                seqs.push(
                    s.append_audit(i as i64, who, "test", &i.to_string(), "")
                        .await
                        .unwrap(),
                );
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        let mine = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap();
        // Each writer's own events come in the order it wrote them.
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        seqs.extend(mine);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (0..2 * EACH).collect::<Vec<_>>());
    let events = store.audit_events(None, 1_000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..2 * EACH).collect::<Vec<_>>()
    );
    for who in ["one", "two"] {
        assert_eq!(
            events.iter().filter(|e| e.actor == who).count() as u64,
            EACH
        );
    }
    other.close().await;
}

async fn token_bucket(store: Store, _url: String) {
    let t0: i64 = 1_700_000_000_000;
    // Capacity 5, 2 tokens a second (one token every 500 ms); full when first seen.
    for i in 0..5 {
        assert_eq!(
            store.take_tokens("upload:a", 1, 5, 2, t0).await.unwrap(),
            None,
            "take {i}"
        );
    }
    let wait = store
        .take_tokens("upload:a", 1, 5, 2, t0)
        .await
        .unwrap()
        .expect("an empty bucket refuses");
    assert_eq!(wait, Duration::from_millis(500));
    // A millisecond early: still refused, with the rest of the wait.
    assert_eq!(
        store
            .take_tokens("upload:a", 1, 5, 2, t0 + 499)
            .await
            .unwrap(),
        Some(Duration::from_millis(1))
    );
    // On time: taken.
    assert_eq!(
        store
            .take_tokens("upload:a", 1, 5, 2, t0 + 500)
            .await
            .unwrap(),
        None
    );
    // Partial tokens count: 250 ms is half a token, a take of 2 needs 750 ms more.
    assert_eq!(
        store
            .take_tokens("upload:a", 2, 5, 2, t0 + 750)
            .await
            .unwrap(),
        Some(Duration::from_millis(750))
    );
    assert_eq!(
        store
            .take_tokens("upload:a", 2, 5, 2, t0 + 1_500)
            .await
            .unwrap(),
        None
    );

    // Other keys are other buckets.
    assert_eq!(
        store.take_tokens("upload:b", 5, 5, 2, t0).await.unwrap(),
        None
    );

    // A long idle time fills the bucket to its capacity, not beyond (and does not overflow).
    let later = t0 + 365 * 24 * 3_600 * 1_000;
    assert_eq!(
        store.take_tokens("upload:a", 5, 5, 2, later).await.unwrap(),
        None
    );
    assert!(store
        .take_tokens("upload:a", 1, 5, 2, later)
        .await
        .unwrap()
        .is_some_and(|w| w > Duration::ZERO));
    // A clock behind the bucket's (another process ahead) refills nothing and is no error.
    assert!(store
        .take_tokens("upload:a", 1, 5, 2, later - 10_000)
        .await
        .unwrap()
        .is_some());

    // Without refill, a refused take waits for ever.
    assert_eq!(store.take_tokens("fixed", 3, 3, 0, t0).await.unwrap(), None);
    assert_eq!(
        store
            .take_tokens("fixed", 1, 3, 0, t0 + 1_000_000)
            .await
            .unwrap(),
        Some(Duration::MAX)
    );
    // A take larger than the bucket is a configuration error.
    assert!(matches!(
        store.take_tokens("upload:c", 6, 5, 2, t0).await,
        Err(StoreError::BucketTooSmall {
            cost: 6,
            capacity: 5
        })
    ));
    assert!(matches!(
        store.take_tokens("upload:c", 1, 5, 2, -1).await,
        Err(StoreError::OutOfRange { .. })
    ));
    // A cost of 0 always succeeds; the largest parameters do not overflow.
    assert_eq!(
        store.take_tokens("upload:a", 0, 5, 2, later).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .take_tokens("big", u32::MAX, u32::MAX, u32::MAX, t0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_tokens("big", u32::MAX, u32::MAX, u32::MAX, t0 + 1_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_tokens("big", u32::MAX, u32::MAX, u32::MAX, i64::MAX)
            .await
            .unwrap(),
        None
    );
}

/// Two server processes take one token each, ten times each, all at once, from a new bucket of
/// ten that does not refill: exactly ten takes succeed (the first takers also race to create
/// the bucket).
async fn concurrent_takers_never_over_spend(store: Store, url: String) {
    let other = Store::open(&url).await.unwrap();
    let now = 1_700_000_000_000;
    for (round, per_second) in [(0, 0u32), (1, 1u32)] {
        let key = format!("shared-{round}");
        let barrier = Arc::new(Barrier::new(2));
        let mut tasks = Vec::new();
        for s in [store.clone(), other.clone()] {
            let (barrier, key) = (barrier.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut taken = 0;
                for _ in 0..10 {
                    if s.take_tokens(&key, 1, 10, per_second, now)
                        .await
                        .unwrap()
                        .is_none()
                    {
                        taken += 1;
                    }
                }
                taken
            }));
        }
        let mut taken = 0;
        for t in tasks {
            taken += tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(taken, 10, "round {round}");
    }
    other.close().await;
}

async fn integrity_check(store: Store, url: String) {
    store.integrity_check().await.unwrap();
    let a = acct(1);
    store
        .create_account(&a, &dev(1), &token(1), 100)
        .await
        .unwrap();
    store.insert_attachment(&attachment(1, a)).await.unwrap();
    for seq in 0..3 {
        store
            .append_opened_record(&a, seq, b"r", Some(&att(1)), 100)
            .await
            .unwrap();
        store.append_audit(100, "t", "t", "t", "").await.unwrap();
    }
    store.integrity_check().await.unwrap();

    // A gap in a log, made behind the store's back, is found.
    let raw = AnyPool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 1")
        .execute(&raw)
        .await
        .unwrap();
    let found = store.integrity_check().await;
    assert!(matches!(found, Err(StoreError::Integrity(_))), "{found:?}");
    sqlx::query("DELETE FROM audit_events")
        .execute(&raw)
        .await
        .unwrap();
    store.integrity_check().await.unwrap();
    sqlx::query("DELETE FROM opened_records WHERE seq = 0")
        .execute(&raw)
        .await
        .unwrap();
    let found = store.integrity_check().await;
    assert!(matches!(found, Err(StoreError::Integrity(_))), "{found:?}");
    raw.close().await;
}

/// Several buckets in one transaction: every take or none, the refused take named by its place
/// in the caller's slice, a check-only take (cost 0, at least 1) that draws nothing.
async fn tokens_together_take_all_or_none(store: Store, _url: String) {
    let t0: i64 = 1_700_000_000_000;
    let take = |key, cost, capacity, at_least| TokenTake {
        key,
        cost,
        capacity,
        per_second: 1,
        at_least,
    };
    // Two buckets of 3 and 1.
    let both = [take("a", 1, 3, 0), take("b", 1, 1, 0)];
    assert_eq!(store.take_tokens_together(&both, t0).await.unwrap(), None);
    // "b" is empty now: refused, and "a" keeps its two tokens.
    let refused = store
        .take_tokens_together(&both, t0)
        .await
        .unwrap()
        .expect("b is empty");
    assert_eq!(refused.index, 1);
    assert_eq!(refused.wait, Duration::from_secs(1));
    assert_eq!(store.take_tokens("a", 2, 3, 1, t0).await.unwrap(), None);
    assert!(store.take_tokens("a", 1, 3, 1, t0).await.unwrap().is_some());
    // The refused take is named by the caller's order, whatever order the keys lock in.
    let reversed = [take("z", 1, 5, 0), take("a", 1, 3, 0)];
    let refused = store
        .take_tokens_together(&reversed, t0)
        .await
        .unwrap()
        .expect("a is empty");
    assert_eq!(refused.index, 1);
    // "z" was created in the refused transaction: rolled back, so it is still full.
    assert_eq!(store.take_tokens("z", 5, 5, 1, t0).await.unwrap(), None);

    // A check-only take: needs one token, takes none.
    let check = [take("m", 0, 2, 1)];
    for _ in 0..3 {
        assert_eq!(store.take_tokens_together(&check, t0).await.unwrap(), None);
    }
    assert_eq!(store.take_tokens("m", 2, 2, 1, t0).await.unwrap(), None);
    let refused = store
        .take_tokens_together(&check, t0)
        .await
        .unwrap()
        .expect("m is empty");
    assert_eq!((refused.index, refused.wait), (0, Duration::from_secs(1)));
    assert_eq!(
        store
            .take_tokens_together(&check, t0 + 1_000)
            .await
            .unwrap(),
        None
    );
    // No takes: nothing to refuse. A need beyond the capacity is a configuration error.
    assert_eq!(store.take_tokens_together(&[], t0).await.unwrap(), None);
    assert!(matches!(
        store.take_tokens_together(&[take("n", 0, 2, 3)], t0).await,
        Err(StoreError::BucketTooSmall {
            cost: 3,
            capacity: 2
        })
    ));
}

/// Two processes take from two shared buckets at once, in opposite key orders (each take
/// also needs a third bucket to hold a token): no deadlock, and exactly the smaller bucket's
/// tokens are taken from both.
async fn concurrent_joint_takers_never_over_spend(store: Store, url: String) {
    let other = Store::open(&url).await.unwrap();
    let now = 1_700_000_000_000;
    let barrier = Arc::new(Barrier::new(2));
    let mut tasks = Vec::new();
    for (i, s) in [store.clone(), other.clone()].into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let small = TokenTake {
                key: "joint-small",
                cost: 1,
                capacity: 8,
                per_second: 0,
                at_least: 0,
            };
            let large = TokenTake {
                key: "joint-large",
                capacity: 100,
                ..small
            };
            let gate = TokenTake {
                key: "joint-gate",
                cost: 0,
                capacity: 1,
                at_least: 1,
                ..small
            };
            let takes = if i == 0 {
                [small, large, gate]
            } else {
                [gate, large, small]
            };
            barrier.wait().await;
            let mut taken = 0;
            for _ in 0..10 {
                if s.take_tokens_together(&takes, now).await.unwrap().is_none() {
                    taken += 1;
                }
            }
            taken
        }));
    }
    let mut taken = 0;
    for t in tasks {
        taken += tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(taken, 8);
    // The large bucket gave exactly as many: 92 are left, the gate's token is still there.
    assert_eq!(
        store
            .take_tokens("joint-large", 92, 100, 0, now)
            .await
            .unwrap(),
        None
    );
    assert!(store
        .take_tokens("joint-large", 1, 100, 0, now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.take_tokens("joint-gate", 1, 1, 0, now).await.unwrap(),
        None
    );
    other.close().await;
}

/// Released checks are kept from the retention's start on and deleted before it in the same
/// write; campaigns are added once and then only raised.
async fn released_checks_and_campaigns(store: Store, _url: String) {
    let (a, b) = (acct(1), acct(2));
    for (n, who) in [(1u32, a), (2, b)] {
        store
            .create_account(&who, &dev(n), &token(n as u8), 100)
            .await
            .unwrap();
    }
    for n in 1..=3 {
        let who = if n == 2 { b } else { a };
        store.insert_attachment(&attachment(n, who)).await.unwrap();
        store
            .insert_case(&case(n, who, CaseKind::Held, CaseState::CheckReleased, 100))
            .await
            .unwrap();
    }
    let check = |n: u32, who: AccountId, at: i64| ReleasedCheck {
        case: case_id(n),
        account: who,
        pdq: [n as u8; 32],
        released_at: at,
    };
    store
        .record_released_check(&check(1, a, 1_000), 0)
        .await
        .unwrap();
    store
        .record_released_check(&check(2, b, 2_000), 0)
        .await
        .unwrap();
    assert_eq!(
        store.released_checks_since(0).await.unwrap(),
        vec![check(1, a, 1_000), check(2, b, 2_000)]
    );
    assert_eq!(
        store.released_checks_since(1_500).await.unwrap(),
        vec![check(2, b, 2_000)]
    );
    // One release per case.
    assert!(matches!(
        store.record_released_check(&check(1, a, 3_000), 0).await,
        Err(StoreError::Duplicate { .. })
    ));
    // Unknown case or account: refused, nothing written.
    assert!(matches!(
        store.record_released_check(&check(9, a, 3_000), 0).await,
        Err(StoreError::NoSuchCase(_))
    ));
    assert!(matches!(
        store
            .record_released_check(&check(3, acct(9), 3_000), 0)
            .await,
        Err(StoreError::NoSuchAccount(_))
    ));
    // A write with a retention starting at 1,500 deletes the release at 1,000.
    store
        .record_released_check(&check(3, a, 3_000), 1_500)
        .await
        .unwrap();
    assert_eq!(
        store.released_checks_since(0).await.unwrap(),
        vec![check(2, b, 2_000), check(3, a, 3_000)]
    );

    let flagged = Campaign {
        id: CampaignId::new([7; 16]),
        pdq: [0xab; 32],
        accounts: 3,
        first_seen: 3_000,
        last_seen: 3_000,
    };
    store.upsert_campaign(&flagged).await.unwrap();
    // Raised: more accounts, a later release. A smaller count or an earlier time never lowers it.
    store
        .upsert_campaign(&Campaign {
            accounts: 5,
            last_seen: 4_000,
            ..flagged
        })
        .await
        .unwrap();
    store
        .upsert_campaign(&Campaign {
            accounts: 2,
            last_seen: 3_500,
            pdq: [0; 32],
            first_seen: 0,
            ..flagged
        })
        .await
        .unwrap();
    let other = Campaign {
        id: CampaignId::new([8; 16]),
        last_seen: 3_200,
        ..flagged
    };
    store.upsert_campaign(&other).await.unwrap();
    assert_eq!(
        store.campaigns(10).await.unwrap(),
        vec![
            Campaign {
                accounts: 5,
                last_seen: 4_000,
                ..flagged
            },
            other
        ]
    );
    assert_eq!(store.campaigns(1).await.unwrap().len(), 1);
}

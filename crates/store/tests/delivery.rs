//! MLS delivery (migration `0007_delivery.sql`): key packages claimed exactly once, epochs moved
//! only by compare-and-swap, commits as atomic bundles, recipients from membership, per-device
//! queues in order with acknowledgement, and revocation. Every check runs on SQLite and on
//! PostgreSQL (see `common`); the concurrency checks open a second `Store` on the same database,
//! as a second server process would.

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hashguard_store::*;
use tokio::sync::Barrier;

suite!(
    key_packages_publish_count_and_claim,
    concurrent_claims_never_share_a_key_package,
    epoch_compare_and_swap,
    concurrent_commits_for_one_epoch_one_wins,
    refused_commit_changes_nothing,
    recipients_come_from_membership,
    queue_pages_and_acknowledgements,
    concurrent_deliveries_become_visible_in_order,
    revoked_device_receives_nothing,
);

fn bytes(kind: u8, n: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = kind;
    b[1] = 0x5a;
    b[12..].copy_from_slice(&n.to_be_bytes());
    b
}

fn acct(n: u32) -> AccountId {
    AccountId::new(bytes(1, n))
}

fn dev(n: u32) -> DeviceId {
    DeviceId::new(bytes(2, n))
}

fn token(n: u32) -> [u8; 32] {
    let mut t = [0u8; 32];
    t[..4].copy_from_slice(&n.to_be_bytes());
    t[31] = 0xee;
    t
}

fn group(n: u8) -> GroupId {
    GroupId::new(vec![0xc0, n, 0x01]).unwrap()
}

/// Accounts 1..=accounts, each with the devices `devices(account)` names.
async fn accounts(store: &Store, layout: &[(u32, &[u32])]) {
    for (account, devices) in layout {
        let (first, rest) = devices.split_first().unwrap();
        store
            .create_account(&acct(*account), &dev(*first), &token(*first), 100)
            .await
            .unwrap();
        for d in rest {
            store
                .add_device(&acct(*account), &dev(*d), &token(*d), 100)
                .await
                .unwrap();
        }
    }
}

fn bundle<'a>(
    group: &'a GroupId,
    sender: DeviceId,
    epoch: u64,
    commit: &'a [u8],
    welcome: Option<&'a [u8]>,
    added: &'a [DeviceId],
    removed: &'a [DeviceId],
) -> CommitBundle<'a> {
    CommitBundle {
        group,
        sender,
        epoch,
        commit,
        welcome,
        group_info: Some(b"group info"),
        added,
        removed,
        now: 1_000,
    }
}

/// Everything in `device`'s queue (bounded pages).
async fn queue(store: &Store, device: DeviceId) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = Vec::new();
    for _ in 0..1_000 {
        let after = out.last().map_or(0, |d| d.seq);
        let page = store.receive(&device, after, 100, 1 << 30).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
    panic!("the queue of {device} does not end");
}

async fn key_packages_publish_count_and_claim(store: Store, _url: String) {
    accounts(&store, &[(1, &[1, 2, 3]), (2, &[4])]).await;
    assert!(store.revoke_device(&acct(1), &dev(3), 200).await.unwrap());
    let kp = |n: u8| vec![n; 40];
    assert_eq!(
        store
            .publish_key_packages(&dev(1), &[kp(1), kp(2), kp(3)], 300)
            .await
            .unwrap(),
        KeyPackagesPublished::Published { available: 3 }
    );
    assert_eq!(
        store
            .publish_key_packages(&dev(2), &[kp(9)], 300)
            .await
            .unwrap(),
        KeyPackagesPublished::Published { available: 1 }
    );
    assert_eq!(
        store
            .publish_key_packages(&dev(3), &[kp(7)], 300)
            .await
            .unwrap(),
        KeyPackagesPublished::Revoked
    );
    assert_eq!(store.key_packages_available(&dev(1)).await.unwrap(), 3);
    assert_eq!(store.key_packages_available(&dev(3)).await.unwrap(), 0);
    // One per active device, oldest first; the revoked device is neither served nor listed.
    let first = store.claim_key_packages(&acct(1)).await.unwrap().unwrap();
    assert_eq!(first.key_packages, vec![(dev(1), kp(1)), (dev(2), kp(9))]);
    assert!(first.exhausted.is_empty());
    let second = store.claim_key_packages(&acct(1)).await.unwrap().unwrap();
    assert_eq!(second.key_packages, vec![(dev(1), kp(2))]);
    assert_eq!(second.exhausted, vec![dev(2)]);
    assert_eq!(store.key_packages_available(&dev(1)).await.unwrap(), 1);
    // An account with no key package at all, and one that does not exist.
    let none = store.claim_key_packages(&acct(2)).await.unwrap().unwrap();
    assert_eq!((none.key_packages.len(), none.exhausted), (0, vec![dev(4)]));
    assert_eq!(store.claim_key_packages(&acct(9)).await.unwrap(), None);
    // The per-device limit: all or nothing.
    let many: Vec<Vec<u8>> = (0..999u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(
        store
            .publish_key_packages(&dev(4), &many, 400)
            .await
            .unwrap(),
        KeyPackagesPublished::Published { available: 999 }
    );
    assert_eq!(
        store
            .publish_key_packages(&dev(4), &[kp(1), kp(2)], 400)
            .await
            .unwrap(),
        KeyPackagesPublished::TooMany { available: 999 }
    );
    assert_eq!(store.key_packages_available(&dev(4)).await.unwrap(), 999);
    assert_eq!(
        store
            .publish_key_packages(&dev(4), &[kp(1)], 400)
            .await
            .unwrap(),
        KeyPackagesPublished::Published {
            available: MAX_KEY_PACKAGES_PER_DEVICE
        }
    );
    // Claimed in the order published, across the two publications.
    let c = store.claim_key_packages(&acct(2)).await.unwrap().unwrap();
    assert_eq!(c.key_packages, vec![(dev(4), 0u32.to_be_bytes().to_vec())]);
}

async fn concurrent_claims_never_share_a_key_package(store: Store, url: String) {
    const PACKAGES: u32 = 24;
    const CLAIMERS: usize = 16;
    accounts(&store, &[(1, &[1, 2])]).await;
    for d in [1, 2] {
        let kps: Vec<Vec<u8>> = (0..PACKAGES)
            .map(|i| [d, i].map(u32::to_be_bytes).concat())
            .collect();
        store
            .publish_key_packages(&dev(d), &kps, 100)
            .await
            .unwrap();
    }
    let other = Store::open(&url).await.unwrap();
    let barrier = Arc::new(Barrier::new(2 * CLAIMERS));
    let mut tasks = Vec::new();
    for i in 0..2 * CLAIMERS {
        let s = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.claim_key_packages(&acct(1)).await.unwrap().unwrap()
        }));
    }
    let mut got: BTreeMap<DeviceId, Vec<Vec<u8>>> = BTreeMap::new();
    let mut exhausted = 0;
    for t in tasks {
        let claimed = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap();
        for (d, kp) in claimed.key_packages {
            got.entry(d).or_default().push(kp);
        }
        exhausted += claimed.exhausted.len();
    }
    // 32 claims of 24 each: every key package exactly once, 8 claims per device came late.
    for d in [1, 2] {
        let mut kps = got.remove(&dev(d)).unwrap();
        kps.sort();
        let mut expected: Vec<Vec<u8>> = (0..PACKAGES)
            .map(|i| [d, i].map(u32::to_be_bytes).concat())
            .collect();
        expected.sort();
        assert_eq!(kps, expected, "device {d}");
        assert_eq!(store.key_packages_available(&dev(d)).await.unwrap(), 0);
    }
    assert_eq!(exhausted, 2 * (2 * CLAIMERS - PACKAGES as usize));
    other.close().await;
}

async fn epoch_compare_and_swap(store: Store, _url: String) {
    accounts(&store, &[(1, &[1]), (2, &[2]), (3, &[3])]).await;
    let g = group(1);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    assert!(matches!(
        store.create_group(&g, &dev(2), 10).await,
        Err(StoreError::Duplicate { .. })
    ));
    let view = store.group(&g, &dev(1)).await.unwrap().unwrap();
    assert_eq!(
        (view.epoch, view.members, view.group_info),
        (0, vec![dev(1)], None)
    );
    let add2 = [dev(2)];
    assert_eq!(
        store
            .commit(&bundle(&g, dev(1), 0, b"c0", Some(b"w0"), &add2, &[]))
            .await
            .unwrap(),
        CommitOutcome::Accepted { epoch: 1 }
    );
    // A second commit for epoch 0 loses, whoever sends it, and writes nothing.
    let add3 = [dev(3)];
    assert_eq!(
        store
            .commit(&bundle(&g, dev(2), 0, b"late", Some(b"w"), &add3, &[]))
            .await
            .unwrap(),
        CommitOutcome::Stale { current_epoch: 1 }
    );
    assert_eq!(
        store
            .commit(&bundle(&g, dev(1), 7, b"future", None, &[], &[]))
            .await
            .unwrap(),
        CommitOutcome::Stale { current_epoch: 1 }
    );
    assert_eq!(
        store
            .commit(&bundle(&g, dev(2), u64::MAX, b"far", None, &[], &[]))
            .await
            .unwrap(),
        CommitOutcome::Stale { current_epoch: 1 }
    );
    let view = store.group(&g, &dev(2)).await.unwrap().unwrap();
    assert_eq!(view.epoch, 1);
    assert_eq!(view.members, vec![dev(1), dev(2)]);
    assert_eq!(view.group_info.as_deref(), Some(&b"group info"[..]));
    assert!(queue(&store, dev(3)).await.is_empty());
    let q2 = queue(&store, dev(2)).await;
    assert_eq!(q2.len(), 1);
    assert_eq!(
        (q2[0].kind, q2[0].epoch, q2[0].body.as_slice(), q2[0].sender),
        (DeliveryKind::Welcome, 1, &b"w0"[..], dev(1))
    );
    // The creator was the only member of epoch 0 and sent the commit: nobody got it.
    assert!(queue(&store, dev(1)).await.is_empty());
    // Non-members and unknown groups get the same answer.
    assert_eq!(
        store
            .commit(&bundle(&g, dev(3), 1, b"x", None, &[], &[]))
            .await
            .unwrap(),
        CommitOutcome::NotMember
    );
    assert_eq!(
        store
            .commit(&bundle(&group(9), dev(1), 0, b"x", None, &[], &[]))
            .await
            .unwrap(),
        CommitOutcome::NotMember
    );
    assert_eq!(store.group(&g, &dev(3)).await.unwrap(), None);
    assert_eq!(store.group(&group(9), &dev(1)).await.unwrap(), None);
}

async fn concurrent_commits_for_one_epoch_one_wins(store: Store, url: String) {
    const ROUNDS: u64 = 10;
    accounts(&store, &[(1, &[1, 2, 3])]).await;
    let g = group(2);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    let added = [dev(2), dev(3)];
    store
        .commit(&bundle(&g, dev(1), 0, b"c", Some(b"w"), &added, &[]))
        .await
        .unwrap();
    let other = Store::open(&url).await.unwrap();
    let barrier = Arc::new(Barrier::new(3));
    for round in 1..=ROUNDS {
        let mut tasks = Vec::new();
        for (who, s) in [
            (1u32, store.clone()),
            (2, other.clone()),
            (3, store.clone()),
        ] {
            let barrier = barrier.clone();
            let g = g.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let body = [who as u8, round as u8];
                let out = s
                    .commit(&bundle(&g, dev(who), round, &body, None, &[], &[]))
                    .await
                    .unwrap();
                (who, out)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            let (who, out) = tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .unwrap()
                .unwrap();
            match out {
                CommitOutcome::Accepted { epoch } => {
                    assert_eq!(epoch, round + 1);
                    winners.push(who);
                }
                CommitOutcome::Stale { current_epoch } => assert_eq!(current_epoch, round + 1),
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
    }
    other.close().await;
    assert_eq!(
        store.group(&g, &dev(1)).await.unwrap().unwrap().epoch,
        ROUNDS + 1
    );
    // Each device holds exactly the winning commits of the others: one per round in all.
    let mut per_round: BTreeMap<u64, Vec<DeviceId>> = BTreeMap::new();
    for d in [1, 2, 3] {
        for entry in queue(&store, dev(d)).await {
            if entry.kind == DeliveryKind::Commit {
                assert_ne!(entry.sender, dev(d));
                assert_eq!(entry.body[1] as u64, entry.epoch);
                per_round.entry(entry.epoch).or_default().push(dev(d));
            }
        }
    }
    for round in 1..=ROUNDS {
        assert_eq!(
            per_round.get(&round).map_or(0, Vec::len),
            2,
            "round {round}"
        );
    }
}

async fn refused_commit_changes_nothing(store: Store, _url: String) {
    accounts(&store, &[(1, &[1, 2]), (2, &[3, 4])]).await;
    let g = group(3);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    let add2 = [dev(2)];
    store
        .commit(&bundle(&g, dev(1), 0, b"c", Some(b"w"), &add2, &[]))
        .await
        .unwrap();
    assert!(store.revoke_device(&acct(2), &dev(4), 20).await.unwrap());
    let before = store.group(&g, &dev(1)).await.unwrap().unwrap();
    let queued = |s: Store| async move {
        let mut n = 0;
        for d in 1..=4 {
            n += queue(&s, dev(d)).await.len();
        }
        n
    };
    let entries_before = queued(store.clone()).await;
    let (d1, d2, d3, d4, d9) = ([dev(1)], [dev(2)], [dev(3)], [dev(4)], [dev(9)]);
    let cases: Vec<(CommitBundle<'_>, CommitRefusal)> = vec![
        (
            bundle(&g, dev(1), 1, b"x", Some(b"w"), &d4, &[]),
            CommitRefusal::NotActive(dev(4)),
        ),
        (
            bundle(&g, dev(1), 1, b"x", Some(b"w"), &d9, &[]),
            CommitRefusal::NotActive(dev(9)),
        ),
        (
            bundle(&g, dev(1), 1, b"x", Some(b"w"), &d2, &[]),
            CommitRefusal::AlreadyMember(dev(2)),
        ),
        (
            bundle(&g, dev(1), 1, b"x", None, &[], &d3),
            CommitRefusal::NotAMember(dev(3)),
        ),
        (
            bundle(&g, dev(1), 1, b"x", None, &d3, &[]),
            CommitRefusal::WelcomeMismatch { added: true },
        ),
        (
            bundle(&g, dev(1), 1, b"x", Some(b"w"), &[], &d2),
            CommitRefusal::WelcomeMismatch { added: false },
        ),
        (
            bundle(&g, dev(1), 1, b"x", None, &[], &d1),
            CommitRefusal::RemovesSender,
        ),
        (
            bundle(&g, dev(1), 1, b"x", Some(b"w"), &d3, &d3),
            CommitRefusal::Repeated(dev(3)),
        ),
    ];
    for (b, refusal) in &cases {
        assert_eq!(
            store.commit(b).await.unwrap(),
            CommitOutcome::Refused(refusal.clone())
        );
    }
    // Valid adds and a refused remove in one commit: the whole bundle is refused.
    let d3_and_more = [dev(3)];
    let d9_removed = [dev(9)];
    assert_eq!(
        store
            .commit(&bundle(
                &g,
                dev(1),
                1,
                b"x",
                Some(b"w"),
                &d3_and_more,
                &d9_removed
            ))
            .await
            .unwrap(),
        CommitOutcome::Refused(CommitRefusal::NotAMember(dev(9)))
    );
    assert_eq!(store.group(&g, &dev(1)).await.unwrap().unwrap(), before);
    assert_eq!(queued(store.clone()).await, entries_before);
    // The same commit, made valid, goes through.
    assert_eq!(
        store
            .commit(&bundle(&g, dev(1), 1, b"x", Some(b"w"), &d3_and_more, &[]))
            .await
            .unwrap(),
        CommitOutcome::Accepted { epoch: 2 }
    );
}

async fn recipients_come_from_membership(store: Store, _url: String) {
    accounts(&store, &[(1, &[1, 2]), (2, &[3]), (3, &[4])]).await;
    let g = group(4);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    let added = [dev(2), dev(3)];
    store
        .commit(&bundle(&g, dev(1), 0, b"c0", Some(b"w1"), &added, &[]))
        .await
        .unwrap();
    assert_eq!(
        store
            .send_message(&g, &dev(1), 1, b"hello", 50)
            .await
            .unwrap(),
        SendOutcome::Sent { recipients: 2 }
    );
    // An outsider can neither send nor see; a stale epoch is refused.
    assert_eq!(
        store
            .send_message(&g, &dev(4), 1, b"spam", 50)
            .await
            .unwrap(),
        SendOutcome::NotMember
    );
    assert_eq!(
        store
            .send_message(&g, &dev(2), 0, b"old", 50)
            .await
            .unwrap(),
        SendOutcome::Stale { current_epoch: 1 }
    );
    assert!(queue(&store, dev(4)).await.is_empty());
    // Device 3 is removed: it gets the commit that removes it, then nothing.
    let removed = [dev(3)];
    store
        .commit(&bundle(&g, dev(2), 1, b"c1", None, &[], &removed))
        .await
        .unwrap();
    assert_eq!(
        store
            .send_message(&g, &dev(3), 2, b"still?", 60)
            .await
            .unwrap(),
        SendOutcome::NotMember
    );
    assert_eq!(
        store
            .send_message(&g, &dev(2), 2, b"bye", 60)
            .await
            .unwrap(),
        SendOutcome::Sent { recipients: 1 }
    );
    let seen = |q: Vec<Delivery>| -> Vec<(DeliveryKind, u64, Vec<u8>, DeviceId)> {
        q.into_iter()
            .map(|d| {
                assert_eq!(d.group, g);
                (d.kind, d.epoch, d.body, d.sender)
            })
            .collect()
    };
    use DeliveryKind::*;
    assert_eq!(
        seen(queue(&store, dev(1)).await),
        vec![
            (Application, 2, b"bye".to_vec(), dev(2)),
            (Commit, 1, b"c1".to_vec(), dev(2)),
        ]
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
    );
    assert_eq!(
        seen(queue(&store, dev(2)).await),
        vec![
            (Welcome, 1, b"w1".to_vec(), dev(1)),
            (Application, 1, b"hello".to_vec(), dev(1)),
        ]
    );
    assert_eq!(
        seen(queue(&store, dev(3)).await),
        vec![
            (Welcome, 1, b"w1".to_vec(), dev(1)),
            (Application, 1, b"hello".to_vec(), dev(1)),
            (Commit, 1, b"c1".to_vec(), dev(2)),
        ]
    );
    let seqs: Vec<u64> = queue(&store, dev(3)).await.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
}

async fn queue_pages_and_acknowledgements(store: Store, _url: String) {
    accounts(&store, &[(1, &[1]), (2, &[2])]).await;
    let g = group(5);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    let add = [dev(2)];
    store
        .commit(&bundle(&g, dev(1), 0, b"c", Some(b"w"), &add, &[]))
        .await
        .unwrap();
    for i in 0..9u8 {
        let body = vec![i; 100];
        store.send_message(&g, &dev(1), 1, &body, 70).await.unwrap();
    }
    // seq 1 is the welcome, 2..=10 the messages.
    let page = store.receive(&dev(2), 0, 4, 1 << 20).await.unwrap();
    assert_eq!(page.iter().map(|d| d.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(page[1].received_at, 70);
    let page = store.receive(&dev(2), 4, 100, 250).await.unwrap();
    assert_eq!(page.iter().map(|d| d.seq).collect::<Vec<_>>(), [5, 6]);
    // One entry is always given, even above the byte budget.
    let page = store.receive(&dev(2), 6, 100, 1).await.unwrap();
    assert_eq!(page.iter().map(|d| d.seq).collect::<Vec<_>>(), [7]);
    assert!(store
        .receive(&dev(2), 10, 100, 1 << 20)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .receive(&dev(2), u64::MAX, 100, 1 << 20)
        .await
        .unwrap()
        .is_empty());
    // Acks delete up to and including, and only the caller's.
    assert_eq!(store.acknowledge(&dev(1), 10).await.unwrap(), 0);
    assert_eq!(store.acknowledge(&dev(2), 3).await.unwrap(), 3);
    assert_eq!(store.acknowledge(&dev(2), 3).await.unwrap(), 0);
    let rest = queue(&store, dev(2)).await;
    assert_eq!(rest.first().map(|d| d.seq), Some(4));
    assert_eq!(rest.len(), 7);
    assert_eq!(store.acknowledge(&dev(2), u64::MAX).await.unwrap(), 7);
    assert!(queue(&store, dev(2)).await.is_empty());
    // Numbers go on after an emptied queue: never reused.
    store
        .send_message(&g, &dev(1), 1, b"next", 80)
        .await
        .unwrap();
    assert_eq!(queue(&store, dev(2)).await[0].seq, 11);
}

/// Many senders in many groups deliver to one device at once (from two stores, as two server
/// processes), while it reads and acknowledges what it read. Every read must continue exactly
/// where the last one ended: an entry that became visible after a higher one would show as a
/// gap, and the ack after that read could delete it unseen.
async fn concurrent_deliveries_become_visible_in_order(store: Store, url: String) {
    const SENDERS: u32 = 6;
    const EACH: u32 = 15;
    let receiver = dev(100);
    accounts(&store, &[(100, &[100])]).await;
    for s in 1..=SENDERS {
        accounts(&store, &[(s, &[s])]).await;
        let g = group(s as u8);
        store.create_group(&g, &dev(s), 10).await.unwrap();
        let add = [receiver];
        store
            .commit(&bundle(&g, dev(s), 0, b"c", Some(b"w"), &add, &[]))
            .await
            .unwrap();
    }
    // The welcomes.
    let welcomes = queue(&store, receiver).await;
    assert_eq!(welcomes.len(), SENDERS as usize);
    let mut last = welcomes.last().unwrap().seq;
    store.acknowledge(&receiver, last).await.unwrap();
    let other = Store::open(&url).await.unwrap();
    let mut senders = Vec::new();
    for s in 1..=SENDERS {
        let st = if s % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        senders.push(tokio::spawn(async move {
            for i in 0..EACH {
                let body = [s.to_be_bytes(), i.to_be_bytes()].concat();
                let out = st
                    .send_message(&group(s as u8), &dev(s), 1, &body, 90)
                    .await
                    .unwrap();
                assert_eq!(out, SendOutcome::Sent { recipients: 1 });
            }
        }));
    }
    let mut received: BTreeSet<Vec<u8>> = BTreeSet::new();
    let total = (SENDERS * EACH) as usize;
    let started = std::time::Instant::now();
    while received.len() < total {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} of {total} arrived",
            received.len()
        );
        let page = store.receive(&receiver, last, 7, 1 << 20).await.unwrap();
        for d in &page {
            assert_eq!(d.seq, last + 1, "a gap after seq {last}");
            last = d.seq;
            assert!(
                received.insert(d.body.clone()),
                "a duplicate at seq {}",
                d.seq
            );
        }
        if page.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        } else {
            store.acknowledge(&receiver, last).await.unwrap();
        }
    }
    for t in senders {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap();
    }
    other.close().await;
    assert!(queue(&store, receiver).await.is_empty());
    // Per sender, in the order sent.
    let mut by_sender: BTreeMap<[u8; 4], Vec<[u8; 4]>> = BTreeMap::new();
    for b in &received {
        let (s, i) = b.split_at(4);
        by_sender
            .entry(s.try_into().unwrap())
            .or_default()
            .push(i.try_into().unwrap());
    }
    assert_eq!(by_sender.len(), SENDERS as usize);
    assert!(by_sender.values().all(|v| v.len() == EACH as usize));
}

async fn revoked_device_receives_nothing(store: Store, url: String) {
    accounts(&store, &[(1, &[1]), (2, &[2, 3])]).await;
    let g = group(6);
    store.create_group(&g, &dev(1), 10).await.unwrap();
    let add = [dev(2), dev(3)];
    store
        .commit(&bundle(&g, dev(1), 0, b"c", Some(b"w"), &add, &[]))
        .await
        .unwrap();
    store
        .send_message(&g, &dev(1), 1, b"one", 20)
        .await
        .unwrap();
    store
        .publish_key_packages(&dev(3), &[vec![3; 10], vec![4; 10]], 20)
        .await
        .unwrap();
    assert_eq!(queue(&store, dev(3)).await.len(), 2);
    // Another account cannot revoke it; its own account can.
    assert!(!store.revoke_device(&acct(1), &dev(3), 30).await.unwrap());
    assert_eq!(queue(&store, dev(3)).await.len(), 2);
    assert!(store.revoke_device(&acct(2), &dev(3), 30).await.unwrap());
    assert!(queue(&store, dev(3)).await.is_empty());
    assert_eq!(store.key_packages_available(&dev(3)).await.unwrap(), 0);
    let claimed = store.claim_key_packages(&acct(2)).await.unwrap().unwrap();
    assert_eq!(
        (claimed.key_packages.len(), claimed.exhausted),
        (0, vec![dev(2)])
    );
    // Still a member (until a commit removes it), but no recipient of messages or commits.
    assert_eq!(
        store
            .send_message(&g, &dev(1), 1, b"two", 40)
            .await
            .unwrap(),
        SendOutcome::Sent { recipients: 1 }
    );
    assert!(queue(&store, dev(3)).await.is_empty());
    assert_eq!(
        store.group(&g, &dev(1)).await.unwrap().unwrap().members,
        vec![dev(1), dev(2), dev(3)]
    );
    let removed = [dev(3)];
    assert_eq!(
        store
            .commit(&bundle(&g, dev(2), 1, b"out", None, &[], &removed))
            .await
            .unwrap(),
        CommitOutcome::Accepted { epoch: 2 }
    );
    assert!(queue(&store, dev(3)).await.is_empty());
    assert_eq!(queue(&store, dev(1)).await.last().unwrap().body, b"out");
    // A revocation racing deliveries (from another store): whatever order they take, the
    // revoked device's queue ends empty and stays so.
    let other = Store::open(&url).await.unwrap();
    let sender = tokio::spawn({
        let s = other.clone();
        let g = g.clone();
        async move {
            for i in 0..30u8 {
                s.send_message(&g, &dev(1), 2, &[i], 50).await.unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(store.revoke_device(&acct(2), &dev(2), 50).await.unwrap());
    tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    assert!(queue(&store, dev(2)).await.is_empty());
    other.close().await;
    store.integrity_check().await.unwrap();
}

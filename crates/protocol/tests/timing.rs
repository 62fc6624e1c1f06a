//! Timing tests of the steps where a secret meets attacker-chosen or private data, in the
//! manner of dudect (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017):
//! time one operation on two classes of secret input, randomly interleaved so that machine
//! noise falls on both classes alike, drop the slowest tenth (interrupts, preemption) at a
//! threshold common to both, and compare the classes with Welch's t-test. |t| above
//! [`T_LEAK`] means the time depends on the class: dudect's bound for a definite leak.
//!
//! - The opening service multiplies every probe's attacker-chosen Q by its secret α
//!   (review m8: a variable-time multiplication would be a remote timing oracle on α). Class A
//!   is α = 2 (the opener multiplies by α/2 = 1, the fastest case of any variable-time method),
//!   class B a random α.
//! - The client builds the same voucher work whether or not the image is listed (G2: nothing
//!   on the client depends on membership). Class A is a listed image, class B an unlisted one.
//!
//! [`the_check_detects_a_variable_time_multiplication`] shows that the check has the power to
//! fail: the same harness on a variable-time multiplication reports a leak.
//! A passing check is evidence, not proof: it covers these inputs on this machine.

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::*;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use curve25519_dalek::{RistrettoPoint, Scalar};
use hashguard_protocol::prelude::*;
use rand_core::Rng;

/// Welch's |t| above which the two classes differ for certain (dudect's threshold).
const T_LEAK: f64 = 10.0;
/// Measurements per class.
const SAMPLES: usize = 1500;

/// Welch's t statistic of two samples.
fn welch_t(a: &[f64], b: &[f64]) -> f64 {
    let stats = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var, n)
    };
    let (ma, va, na) = stats(a);
    let (mb, vb, nb) = stats(b);
    (ma - mb) / (va / na + vb / nb).sqrt()
}

/// Times `op(class)` `SAMPLES` times per class in a random order and returns Welch's t of the
/// two classes after cropping both at the pooled 90th percentile.
fn t_statistic(seed: u64, mut op: impl FnMut(bool)) -> f64 {
    let mut r = rng(seed);
    let mut order: Vec<bool> = (0..2 * SAMPLES).map(|i| i % 2 == 0).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (r.next_u64() % (i as u64 + 1)) as usize);
    }
    for &class in order.iter().take(50) {
        op(class); // warm caches and branch predictors for both classes
    }
    let mut times = Vec::with_capacity(order.len());
    for &class in &order {
        let start = Instant::now();
        op(class);
        times.push((class, start.elapsed().as_nanos() as f64));
    }
    let mut pooled: Vec<f64> = times.iter().map(|t| t.1).collect();
    pooled.sort_by(f64::total_cmp);
    let cut = pooled[pooled.len() * 9 / 10];
    let class = |c: bool| -> Vec<f64> {
        times
            .iter()
            .filter(|t| t.0 == c && t.1 <= cut)
            .map(|t| t.1)
            .collect()
    };
    welch_t(&class(true), &class(false))
}

/// Whether `op` shows no class dependence. A measurement over the bound is repeated once with
/// a fresh order, and only two in a row count as a leak: a real dependence shows every time,
/// a burst of machine noise rarely twice.
fn no_leak(name: &str, mut op: impl FnMut(bool)) -> bool {
    for attempt in 0..2 {
        let t = t_statistic(attempt, &mut op);
        eprintln!("{name}: Welch t = {t:.2} (leak above {T_LEAK})");
        if t.abs() <= T_LEAK {
            return true;
        }
    }
    false
}

fn non_matching_vouchers(w: &World, n: usize) -> Vec<(Voucher, UploadBinding)> {
    let mut r = rng(7);
    let mut client = Client::new(AccountState::generate(&mut r), w.params.clone());
    let layout = VoucherLayout::pdq(&w.params);
    (0..n)
        .map(|i| {
            let pdq = w.non_member(&mut r);
            let b = binding(1, &[i as u8]);
            let it = item(Some(pdq), cid(&mut r), b"");
            let bv = client
                .build_pdq_voucher(&w.table, &it, &b, &mut r)
                .expect("voucher");
            let v = Voucher::decode(&bv.voucher.encode(), &layout).expect("decodes");
            (v, b)
        })
        .collect()
}

#[test]
fn opening_time_does_not_depend_on_the_opening_key() {
    let w = world(Policy::Intervene, 3, 64, 11);
    let layout = VoucherLayout::pdq(&w.params);
    let vouchers = non_matching_vouchers(&w, 16);
    let mut two = [0u8; 32];
    two[0] = 2;
    let structured = Opener::new(
        OpeningKey::from_bytes(&two).expect("2 is a valid key"),
        w.params.clone(),
    );
    let random = Opener::new(OpeningKey::generate(&mut rng(12)), w.params.clone());
    let mut i = 0;
    assert!(no_leak("opening, alpha = 2 vs random", |class| {
        let (v, b) = &vouchers[i % vouchers.len()];
        i += 1;
        let opener = if class { &structured } else { &random };
        black_box(opener.open(black_box(v), &layout, b));
    }));
}

#[test]
fn voucher_time_does_not_depend_on_membership() {
    let w = world(Policy::Intervene, 3, 64, 13);
    let mut r = rng(14);
    let listed = PdqInput {
        hash: w.listed[0],
        margins: random_margins(&mut r),
        quality: 90,
    };
    assert!(w.ideal_match(&listed));
    let unlisted = w.non_member(&mut r);
    let mut client = Client::new(AccountState::generate(&mut r), w.params.clone());
    let mut n = 0u32;
    assert!(no_leak("client voucher, listed vs unlisted", |class| {
        n += 1;
        let pdq = if class {
            listed.clone()
        } else {
            unlisted.clone()
        };
        // A new content id each time, so that dedup treats every call as a new item.
        let mut c = [0u8; 32];
        c[..4].copy_from_slice(&n.to_le_bytes());
        let it = item(Some(pdq), c, b"");
        let b = binding(2, &n.to_le_bytes());
        black_box(
            client
                .build_pdq_voucher(&w.table, &it, &b, &mut r)
                .expect("voucher"),
        );
    }));
}

#[test]
fn the_check_detects_a_variable_time_multiplication() {
    let q = RistrettoPoint::mul_base(&Scalar::from(7u64));
    let one = Scalar::ONE;
    let random = Scalar::from_bytes_mod_order([0x5c; 32]);
    // Noise can only hide a dependence, so the check needs to see it once in three tries.
    let mut seen = Vec::new();
    for attempt in 0..3 {
        let t = t_statistic(attempt, |class| {
            let s = if class { &one } else { &random };
            black_box(RistrettoPoint::vartime_multiscalar_mul(
                [black_box(s)],
                [black_box(&q)],
            ));
        });
        eprintln!("variable-time multiplication, 1 vs random: Welch t = {t:.2}");
        if t.abs() > T_LEAK {
            return;
        }
        seen.push(t);
    }
    panic!("the check must see the variable-time multiplication's dependence (t = {seen:.2?})");
}

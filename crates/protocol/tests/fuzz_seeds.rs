//! Writes valid encodings of every fuzzed format into `fuzz/corpus/<target>/` as seeds.
//! Run with `cargo test -p hashguard-protocol --test fuzz_seeds -- --ignored`.

mod common;

use common::*;
use hashguard_protocol::prelude::*;

fn write(target: &str, name: &str, bytes: &[u8]) {
    // The workspace's one fuzz crate, two folders up from this crate.
    let dir = format!("{}/../../fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(format!("{dir}/{name}"), bytes).expect("write");
}

#[test]
#[ignore = "writes files; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    for (policy, tag) in [(Policy::Intervene, "i"), (Policy::Silent, "s")] {
        let w = world(policy, 3, 20, 7);
        let mut r = rng(8);
        let mut client = Client::new(AccountState::generate(&mut r), w.params.clone());
        let opener = w.opener();
        let p = PdqInput {
            hash: w.listed[0],
            margins: random_margins(&mut r),
            quality: 90,
        };
        let b = binding(1, b"c");
        let bv = client
            .build_pdq_voucher(&w.table, &item(Some(p), cid(&mut r), b"t"), &b, &mut r)
            .expect("voucher");
        write("voucher", &format!("small-{tag}"), &bv.voucher.encode());
        let layout = VoucherLayout::pdq(&w.params);
        if let OpenOutcome::Opened(rec) = opener.open(&bv.voucher, &layout, &b) {
            write("inner", &format!("l1-{tag}"), &rec.l1.encode());
            let k = bv.held.consent();
            write("inner", &format!("consent-{tag}"), &*k.encode());
        }
        write(
            "table_shard",
            &format!("shard-{tag}"),
            &w.built.shards[0].shard.encode(),
        );
        write(
            "account_state",
            &format!("state-{tag}"),
            &client.state().encode(),
        );
        write("manifest", &format!("params-{tag}"), &w.params.encode());
        let mut fields = verified_with(&w.spec, w.built.entries(), 1)
            .expect("manifest")
            .manifest()
            .clone()
            .into_fields();
        fields.not_after = 10;
        fields.revokes = vec![3];
        let m = Manifest::new(fields).expect("manifest");
        write("manifest", &format!("manifest-{tag}"), &m.encode());
        // Full-size v1 vouchers (P = 79 under `silent`, 237 under `intervene`; the seed names
        // keep their old "p79" prefix).
        let p79 = Params::v1(policy);
        let v79 = hashguard_protocol::voucher::Voucher {
            epoch: 1,
            voucher_id: [2; 16],
            probes: bv
                .voucher
                .probes
                .iter()
                .cycle()
                .take(usize::from(p79.probes()))
                .cloned()
                .collect(),
            rct: vec![0; VoucherLayout::pdq(&p79).rct_len()],
        };
        write("voucher", &format!("p79-{tag}"), &v79.encode());
    }
}

//! Fuzz target: load an index file from bytes (see `hashguard_fuzz::index::check`).
//!
//! With the default feature `libfuzzer` (what `cargo fuzz run load` uses) this
//! is a libFuzzer target. Without it (`--no-default-features`), it is a plain
//! program:
//! `load FILE...` replays files (e.g. a corpus), and `load --random SECONDS
//! [SEED]` feeds seeded random inputs, most of them mutations of valid index
//! images, for that long.
#![cfg_attr(feature = "libfuzzer", no_main)]

#[cfg(feature = "libfuzzer")]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hashguard_fuzz::index::check(data);
});

#[cfg(not(feature = "libfuzzer"))]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--random") {
        let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
        let mut seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
        let mut next = move || {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut runs = 0u64;
        while std::time::Instant::now() < end {
            let len = (next() % 200) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(first) = data.first_mut() {
                // Bias towards the structured mode.
                if next() % 2 == 0 {
                    *first = 2;
                }
            }
            hashguard_fuzz::index::check(&data);
            runs += 1;
        }
        println!("{runs} random inputs, no failure");
        return;
    }
    for path in &args {
        let data = std::fs::read(path).expect("read input");
        hashguard_fuzz::index::check(&data);
    }
    println!("{} inputs replayed, no failure", args.len());
}

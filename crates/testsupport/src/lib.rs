//! Helpers that the workspace's test suites share, so that each rule lives in one place:
//!
//! - **Where the shared test data is.** The reference images, videos and stand-in lists live in
//!   `../shared/testdata` beside the repository (never inside it), or wherever
//!   `$HASHGUARD_TESTDATA` points. A test that needs them and does not find them must say so
//!   plainly and skip, never pass silently: [`testdata`] prints one `SKIPPED` line naming the
//!   test and the path it looked for.
//! - **Deterministic test data.** [`rng`] is a seeded ChaCha8 generator, so generated hashes,
//!   images and lists are the same on every run and every machine.
//!
//! ```
//! use hashguard_testsupport::{rng, Rng};
//! assert_eq!(rng(7).next_u64(), rng(7).next_u64());
//! ```
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;

pub use rand_core::Rng;

#[cfg(feature = "postgres")]
pub mod postgres;

/// The shared test data: `$HASHGUARD_TESTDATA`, else `../shared/testdata` beside the repository.
pub fn testdata_root() -> PathBuf {
    std::env::var_os("HASHGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        })
}

/// The folder `sub` of the shared test data, if `sub/marker` exists in it (`marker` = `""`
/// checks the folder itself). Otherwise prints `SKIPPED <test>: <path> not found` and returns
/// `None`, so that the caller can return early and the skip shows in the test output.
pub fn testdata(test: &str, sub: &str, marker: &str) -> Option<PathBuf> {
    let dir = testdata_root().join(sub);
    let probe = dir.join(marker);
    if probe.exists() {
        Some(dir)
    } else {
        skipped(
            test,
            &format!(
                "{} not found (set HASHGUARD_TESTDATA to the shared test data)",
                probe.display()
            ),
        );
        None
    }
}

/// Reports that `test` is skipped and why, as one `SKIPPED <test>: <why>` line on stderr.
/// Written to stderr directly: the test harness captures the print macros and shows them only
/// for failing tests, and a skip must be visible in a passing run.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The generator [`rng`] returns.
pub type TestRng = rand_chacha::ChaCha8Rng;

/// A seeded generator with the draws the suites' data generators use: 64-bit words, 256-bit
/// codes (four words, as PDQ hashes are stored), and bounded integers.
pub struct TestGen(TestRng);

impl TestGen {
    /// The generator for `seed`.
    pub fn seeded(seed: u64) -> TestGen {
        TestGen(rng(seed))
    }

    /// The next 64-bit word.
    pub fn word(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Four words: a random 256-bit code.
    pub fn code(&mut self) -> [u64; 4] {
        [self.word(), self.word(), self.word(), self.word()]
    }

    /// A word below `n` (below 1 for `n` = 0); modulo bias is immaterial for test data.
    pub fn below(&mut self, n: u64) -> u64 {
        self.word() % n.max(1)
    }

    /// A uniform value in [0, 1) with 24 bits of precision.
    pub fn unit(&mut self) -> f32 {
        (self.word() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A seeded generator for test data (ChaCha8: fast, and the same stream everywhere).
pub fn rng(seed: u64) -> TestRng {
    rand_core::SeedableRng::seed_from_u64(seed)
}

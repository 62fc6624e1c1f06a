//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The shared test data folder (`HASHGUARD_TESTDATA`, or `../shared/testdata` beside the
/// repository), or `None` with a message saying the test is skipped.
pub fn testdata(test: &str) -> Option<PathBuf> {
    hashguard_testsupport::testdata(test, "", "pdq/expected.txt")
}

/// Runs the `hashguard` binary built for these tests.
pub fn hashguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hashguard"))
        .args(args)
        .output()
        .expect("the hashguard binary runs")
}

/// Runs `hashguard` and returns its standard output, failing the test (with stderr) if the
/// command did not succeed.
pub fn hashguard_ok(args: &[&str]) -> String {
    let out = hashguard(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Splits a `hash,quality,path` line (the path may contain commas).
pub fn csv_fields(line: &str) -> (&str, &str, &str) {
    let mut parts = line.splitn(3, ',');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(hash), Some(quality), Some(path)) => (hash, quality, path),
        _ => panic!("not a hash,quality,path line: {line:?}"),
    }
}

/// Lines of a reference file without comments and blank lines.
pub fn data_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

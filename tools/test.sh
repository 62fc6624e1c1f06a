#!/usr/bin/env bash
# The whole test, as CI runs it: formatting, lints and documentation with warnings denied, then
# every test of the workspace. Run after tools/setup.sh on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "test.sh: $*" >&2; }

# Incremental compilation state roughly doubles the debug target folder and buys nothing in a
# one-shot run; CI once ran out of disk. The free space is printed so a CI log shows it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . >&2 || true

step "cargo fmt --all --check"
cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc --workspace --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
step "cargo test --workspace"
cargo test --workspace --locked
du -sh target >&2 || true

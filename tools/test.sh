#!/usr/bin/env bash
# The whole test, as CI runs it: formatting, lints and documentation with warnings denied, then
# every test of the workspace. Run after tools/setup.sh on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "test.sh: $*" >&2; }

step "cargo fmt --all --check"
cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo doc --workspace --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
step "cargo test --workspace"
cargo test --workspace --locked

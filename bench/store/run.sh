#!/usr/bin/env bash
# Times loading the consensus view's input (`Store::load_enabled`) of 1.9 million generated PDQ
# hashes in 4 banks (4 organisations, 2 jurisdictions, overlapping values) on SQLite and on
# PostgreSQL: bench/store/consensus_load.rs, built in release mode. Results:
# docs/store.md.
#
#   bench/store/run.sh [ARGS...]   ARGS go to the program: --db sqlite|postgres|both (default
#                                  both), --n N (default 1900000), --reps R (default 3)
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), CARGO_TARGET_DIR.
# Takes a few minutes on 2 cores: most of it is importing the lists, which is not timed as the
# result. Not part of `cargo test` or CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release -p hashguard-store --example consensus_load >&2)
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/consensus_load" "$@"

#!/usr/bin/env bash
# The upload service under load (issue 13): uploads/s and p50/p99 latency over HTTP on loopback
# with real vouchers (the v1 preset's P: 237 under intervene since the dihedral probes), at 1
# and 2 server threads, on SQLite and PostgreSQL, against the protocol's own opening rate
# measured in the same run: bench/serve/serve_load.rs, built in release mode. Results: docs/serve.md, "Performance".
#
#   bench/serve/run.sh [ARGS...]   ARGS go to every run of the program (see its header), e.g.
#                                  --step-secs 2 --open-loop-secs 5 for a quicker matrix
# Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test), CARGO_TARGET_DIR,
# DBS (default "sqlite postgres"), THREADS (default "1 2"), QUIET_WAIT (seconds each run waits
# at most for a machine less than 10% busy; default 120).
# TMPDIR=/dev/shm puts the SQLite file and the blobs on tmpfs (fsync free): a diagnostic of what
# durable writes cost, never a result.
# About 45 s per configuration on 2 cores, plus the build. Not part of `cargo test` or CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$ROOT" && cargo build --release -p hashguard-server --example serve_load >&2)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/serve_load"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
for db in ${DBS:-sqlite postgres}; do
    for threads in ${THREADS:-1 2}; do
        RUST_LOG=${RUST_LOG:-warn} "$BIN" --db "$db" --server-threads "$threads" \
            --quiet-wait "${QUIET_WAIT:-120}" --rows "$@" >>"$OUT"
    done
done
"$BIN" --print-header main
grep -v ' | peak (concurrency \| | open loop at 80% |' "$OUT"
echo
echo "CPU milliseconds per upload (from /proc), in the peak's window and in the open-loop phase:"
echo
"$BIN" --print-header cpu
grep ' | peak (concurrency \| | open loop at 80% |' "$OUT"

#!/usr/bin/env bash
# Runs the hashguard index benchmark and the faiss peer on the same data in the
# same run, and prints one table.
#
#   bench/index/run.sh [N] [DATASETS] [RADII]
#   N         number of codes (default 10000000)
#   DATASETS  comma list of uniform,clustered,adversarial (default uniform,clustered)
#   RADII     comma list (default 31)
# Environment:
#   PYTHON         python with faiss-cpu and numpy (default: .venv-bench/bin/python in the
#                  repository, created with faiss-cpu and numpy on first use)
#   QUERIES        hashguard queries per kind (default 5000); FAISS_QUERIES (default 100)
#   FAISS_CHECK    queries whose faiss result sets are compared with hashguard's (default 100)
#   REPS           timed passes for hashguard, median reported (default 5)
#   LAYOUT         hashguard layouts to run, e.g. "11:18,16:16" (default: the default layout)
#   NHASH          faiss multi-hash table counts (default 8,16,32)
#   DIR            data directory (default /tmp/hashguard-bench)
#   SKIP_FAISS=1   run hashguard only
# Everything runs on one thread. Data files are generated deterministically
# (seed 42) by bench_index on first use and then read by both engines.
set -euo pipefail
N=${1:-10000000}
DATASETS=${2:-uniform,clustered}
RADII=${3:-31}
if [ -z "${PYTHON:-}" ]; then
  PYTHON="$(cd "$(dirname "$0")/../.." && pwd)/.venv-bench/bin/python"
  if ! "$PYTHON" -c "import faiss, numpy" 2>/dev/null; then
    python3 -m venv "$(dirname "$(dirname "$PYTHON")")"
    "$PYTHON" -m pip install -q --disable-pip-version-check faiss-cpu numpy
  fi
fi
QUERIES=${QUERIES:-5000}
FAISS_QUERIES=${FAISS_QUERIES:-100}
FAISS_CHECK=${FAISS_CHECK:-100}
REPS=${REPS:-5}
NHASH=${NHASH:-8,16,32}
DIR=${DIR:-/tmp/hashguard-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

(cd "$ROOT" && cargo build --release -p hashguard-index --example bench_index >&2)
BENCH="$TARGET/release/examples/bench_index"
ROWS=$(mktemp)
trap 'rm -f "$ROWS"' EXIT
printf 'engine\tconfig\tsimd\tdataset\tn\tqueries\tr\tqps\tqps_cpu\tus/query\tbuild_s\tB/hash\tresults/q\textra\n' >"$ROWS"
LAYOUT_ARGS=()
if [ -n "${LAYOUT:-}" ]; then LAYOUT_ARGS=(--layout "$LAYOUT"); fi
for ds in ${DATASETS//,/ }; do
  echo "== $ds n=$N: hashguard" >&2
  "$BENCH" --n "$N" --dataset "$ds" --queries "$QUERIES" --reps "$REPS" \
    --radius "$RADII" --dir "$DIR" "${LAYOUT_ARGS[@]}" | tee -a "$ROWS" >&2
  if [ "${SKIP_FAISS:-0}" != 1 ]; then
    echo "== $ds n=$N: faiss" >&2
    OMP_NUM_THREADS=1 "$PYTHON" "$HERE/faiss_peer.py" --n "$N" --dataset "$ds" \
      --radius "$RADII" --queries "$FAISS_QUERIES" --check "$FAISS_CHECK" --nhash "$NHASH" --dir "$DIR" | tee -a "$ROWS" >&2
  fi
done
echo
echo "qps = wall-clock queries/s; qps_cpu = queries per CPU-second of the query thread (equal on an idle machine)"
echo "hashguard extra = mean candidates/query, linear-scan queries; faiss extra = result sets equal to hashguard's (first FAISS_CHECK queries)"
column -t -s $'\t' "$ROWS"

#!/usr/bin/env bash
# The measurements behind the design choices in crates/index (layout, SIMD
# level, file mapping, giant-bucket fallback, radius). hashguard only, one thread.
#
#   bench/index/sweep.sh [N] [WHAT...]
#   WHAT: layout simd via adversarial radius (default: all)
# Environment: QUERIES (default 2000), REPS (default 3), DIR, CARGO_TARGET_DIR.
set -euo pipefail
N=${1:-10000000}
shift || true
WHAT=${*:-layout simd via adversarial radius}
QUERIES=${QUERIES:-2000}
REPS=${REPS:-3}
DIR=${DIR:-/tmp/hashguard-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
(cd "$ROOT" && cargo build --release -p hashguard-index --example bench_index >&2)
B() { "$TARGET/release/examples/bench_index" --dir "$DIR" --queries "$QUERIES" --reps "$REPS" "$@"; }
printf 'engine\tconfig\tsimd\tdataset\tn\tqueries\tr\tqps\tqps_cpu\tus/query\tbuild_s\tB/hash\tresults/q\textra\n'
for w in $WHAT; do
  case $w in
    layout) B --n "$N" --dataset uniform --radius 31 --layout 16:16,12:18,11:17,11:18,11:19,10:18,8:18 ;;
    simd)
      for s in portable popcnt avx2 avx512; do B --n "$N" --dataset uniform --radius 31 --simd $s; done
      for s in portable popcnt avx2 avx512; do B --n 1000000 --dataset uniform --radius 31 --simd $s --linear --queries 200; done ;;
    via) for v in load mmap; do B --n "$N" --dataset uniform --radius 31 --via $v; done ;;
    adversarial)
      B --n 2000000 --dataset adversarial --radius 31 --fraction inf --queries 300
      B --n 2000000 --dataset adversarial --radius 31 --queries 300
      B --n 2000000 --dataset adversarial --radius 31 --linear --queries 300 ;;
    radius) B --n "$N" --dataset uniform --radius 0,8,16,24,31,40,48,63 --queries 300 ;;
    *) echo "unknown: $w" >&2; exit 2 ;;
  esac
done

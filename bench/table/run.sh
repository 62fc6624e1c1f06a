#!/usr/bin/env bash
# Times `hashguard table build` end to end on generated stand-in banks (random hashes, no real
# list): the first epoch on 1 thread and on every core, the next epoch with unchanged banks
# (every shard kept), and an epoch after one added hash (one shard rebuilt); then `table
# verify --db` checks the result on 1 thread and on every core.
#
#   bench/table/run.sh [N]     N = hashes in bank A (default 100000); bank B holds 90% of them
# Environment: DIR (default /tmp/hashguard-table-bench), recreated on every run.
set -euo pipefail
N=${1:-100000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${DIR:-/tmp/hashguard-table-bench}
(cd "$ROOT" && cargo build --release -p hashguard >&2)
H="${CARGO_TARGET_DIR:-$ROOT/target}/release/hashguard"
rm -rf "$DIR" && mkdir -p "$DIR" && cd "$DIR"
python3 - "$N" <<'PY'
import random, sys
n = int(sys.argv[1])
random.seed(5)
vals = ['%064x' % random.getrandbits(256) for _ in range(n + 1)]
open('a.txt', 'w').write('\n'.join(vals[:n]) + '\n')
open('b.txt', 'w').write('\n'.join(vals[:n * 9 // 10]) + '\n')
open('b2.txt', 'w').write('\n'.join(vals[:n * 9 // 10] + [vals[n - 1]]) + '\n')
PY
"$H" list --db t.db create org-a --org "Org A" --jurisdiction GB >/dev/null
"$H" list --db t.db create org-b --org "Org B" --jurisdiction US >/dev/null
"$H" list --db t.db import org-a a.txt >/dev/null
"$H" list --db t.db import org-b b.txt >/dev/null
cores=$(nproc)
build() { # label, out dir, extra args
  local label=$1 out=$2; shift 2
  local start end
  start=$(date +%s%N)
  "$H" table build --db t.db --out "$out" --key "$out.key" "$@" 2>&1 >/dev/null | grep '^built' | sed "s/^/$label: /"
  end=$(date +%s%N)
  echo "$label: whole command $(( (end - start) / 1000000 )) ms"
}
build "epoch 1, 1 thread" one --threads 1
build "epoch 1, $cores threads" all --threads "$cores"
build "epoch 2, unchanged banks" all
"$H" list --db t.db import org-b b2.txt >/dev/null
build "epoch 3, one added hash" all
for t in 1 "$cores"; do
  start=$(date +%s%N)
  "$H" table verify all --db t.db --threads "$t" | tail -1
  end=$(date +%s%N)
  echo "table verify --db on $t thread(s): $(( (end - start) / 1000000 )) ms"
done

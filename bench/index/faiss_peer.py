#!/usr/bin/env python3
"""faiss peer for the hashguard index benchmark.

Reads the codes and queries that `bench_index` wrote (32 bytes per code, the
same bytes faiss's binary indexes use: Hamming distance does not depend on bit
order), runs exact range search at each radius with IndexBinaryFlat and
IndexBinaryMultiHash (nhash in --nhash, nflip = floor(r / nhash), the smallest
value that makes multi-hash search exact; larger nflip values are also tried
with --extra-nflip), on one thread, and prints one tab-separated row per
(index, query kind, radius), in the same columns as bench_index:

engine config simd dataset n kind r qps qps_cpu us/q build_s B/hash results exact

qps is wall-clock queries/s; qps_cpu is queries per second of this thread's
CPU time (the same figure on an idle machine; the fair one on a shared one).

`exact` compares faiss's result sets with hashguard's for the first --check
queries (files <dataset>-<n>-r<r>.<kind>.ids written by bench_index).
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import faiss


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def load(path):
    return np.fromfile(path, dtype=np.uint8).reshape(-1, 32)


def range_sets(index, qs, r):
    # faiss binary range search keeps distances strictly below the radius.
    lims, dist, labels = index.range_search(qs, r + 1)
    out = []
    for i in range(len(qs)):
        out.append(sorted(int(x) for x in labels[lims[i]:lims[i + 1]]))
    return out, dist


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/hashguard-bench")
    ap.add_argument("--dataset", default="uniform")
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--radius", default="31")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--check", type=int, default=100)
    ap.add_argument("--nhash", default="8,16,32")
    ap.add_argument("--extra-nflip", type=int, default=0,
                    help="also try nflip = floor(r/nhash) + 1 .. + this")
    ap.add_argument("--no-flat", action="store_true")
    ap.add_argument("--only", type=int, default=None,
                    help="run only config number ONLY (each config runs in its own "
                         "process so that its memory is measured alone)")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    base = os.path.join(args.dir, f"{args.dataset}-{args.n}")
    radii = [int(x) for x in args.radius.split(",")]

    configs = []
    if not args.no_flat:
        configs.append(("IndexBinaryFlat", lambda: faiss.IndexBinaryFlat(256), None))
    for nh in [int(x) for x in args.nhash.split(",") if x]:
        configs.append((f"IndexBinaryMultiHash nhash={nh}",
                        (lambda nh=nh: faiss.IndexBinaryMultiHash(256, nh, 256 // nh)), nh))

    if args.only is None:
        for i in range(len(configs)):
            rc = subprocess.call([sys.executable, __file__, *sys.argv[1:], "--only", str(i)])
            if rc != 0:
                return rc
        return 0
    codes = load(base + ".codes")
    assert len(codes) == args.n, "stale data file"
    qsets = {k: load(f"{base}.{k}.q") for k in ("near", "rand")}
    for name, make, nh in configs[args.only:args.only + 1]:
        before = rss_bytes()
        t0 = time.perf_counter()
        index = make()
        index.add(codes)
        build_s = time.perf_counter() - t0
        bph = (rss_bytes() - before) / args.n
        for r in radii:
            flips = [None] if nh is None else [r // nh + e for e in range(args.extra_nflip + 1)]
            for nflip in flips:
                if nflip is not None:
                    index.nflip = nflip
                cfg = name if nflip is None else f"{name} nflip={nflip}"
                for kind, qs in qsets.items():
                    sets, _ = range_sets(index, qs[:args.check], r)
                    exact = "-"
                    ids_path = f"{base}-r{r}.{kind}.ids"
                    if os.path.exists(ids_path):
                        with open(ids_path) as f:
                            ours = [sorted(int(x) for x in line.split()) for line in f]
                        k = min(len(ours), len(sets))
                        same = sum(1 for i in range(k) if ours[i] == sets[i])
                        exact = f"{same}/{k}"
                    take = qs[:args.queries]
                    t = time.perf_counter()
                    c = time.thread_time()
                    lims, _, _ = index.range_search(take, r + 1)
                    cpu = time.thread_time() - c
                    secs = time.perf_counter() - t
                    results = (lims[-1]) / len(take)
                    print(f"faiss\t{cfg}\t-\t{args.dataset}\t{args.n}\t{kind}\t{r}\t"
                          f"{len(take) / secs:.0f}\t{len(take) / cpu:.0f}\t{1e6 * secs / len(take):.1f}\t"
                          f"{build_s:.2f}\t{bph:.1f}\t{results:.2f}\t{exact}", flush=True)
        del index


if __name__ == "__main__":
    sys.exit(main())

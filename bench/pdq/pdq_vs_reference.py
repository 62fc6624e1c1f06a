#!/usr/bin/env python3
"""PDQ speed: hashguard against Meta's C++ reference, in one run, on the same pixels.

Usage (from the repository root, after tools/setup.sh):
    .venv/bin/python bench/pdq/pdq_vs_reference.py [--seconds S] [--images N]

1. Hashing stage (RGB in, hash out, one thread) at 1600x1000 and 4000x3000: hashguard's
   `hash_raw_rgb` example against (a) the C++ reference core (`fillFloatLumaFromRGB` +
   `pdqHash256FromFloatLuma`) and (b) `pdqhash.compute()`, both from the PyPI `pdqhash` build,
   on the same RGB bytes. Hashes must be identical. Each timing is the best of 3 rounds, so that
   other work on the machine inflates it as little as possible.
2. End to end (JPEG file to hash line): `hashguard hash` over N generated JPEGs with one thread
   and with all cores; for context, Pillow decode + `pdqhash.compute()` in one thread.
Prints a Markdown table.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools", "oracle"))
from pdq_reference import Reference, pdqhash_compute  # noqa: E402


def photo_like(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.sin(x / w * rng.uniform(3, 9)) * np.cos(y / h * rng.uniform(3, 9))
    img = np.stack([base * 100 + 128, base * 80 + 100, -base * 90 + 120], -1)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def time_python(fn, seconds: float):
    fn()
    best = None
    for _ in range(3):
        start, runs = time.perf_counter(), 0
        while runs < 2 or time.perf_counter() - start < seconds:
            out = fn()
            runs += 1
        per = (time.perf_counter() - start) / runs
        best = per if best is None else min(best, per)
    return out, best


def time_rust(binary: str, raw: str, w: int, h: int, seconds: float):
    best, out = None, None
    for _ in range(3):
        line = subprocess.run([binary, raw, str(w), str(h), str(seconds)], check=True,
                              capture_output=True, text=True).stdout.strip()
        hash_, quality, runs, elapsed = line.split(",")
        per = float(elapsed) / int(runs)
        best = per if best is None else min(best, per)
        out = (hash_, int(quality))
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--images", type=int, default=48)
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hashguard-pdq", "--example",
                    "hash_raw_rgb"], check=True, cwd=ROOT)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hashguard"], check=True, cwd=ROOT)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    raw_bin = os.path.join(target, "release", "examples", "hash_raw_rgb")
    cli = os.path.join(target, "release", "hashguard")
    ref = Reference()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        print("## Hashing stage: RGB in, hash out, one thread (best of 3 rounds)\n")
        print("| size | hashguard | C++ reference core | pdqhash.compute | speed-up vs C++ core "
              "| speed-up vs pdqhash.compute | identical |")
        print("|---|---|---|---|---|---|---|")
        for (w, h) in [(1600, 1000), (4000, 3000)]:
            rgb = photo_like(w, h, w)
            raw = os.path.join(tmp, f"{w}x{h}.rgb")
            rgb.tofile(raw)
            ours, t_ours = time_rust(raw_bin, raw, w, h, args.seconds)
            cpp, t_cpp = time_python(lambda: ref.hash_rgb(rgb), args.seconds)
            wrap, t_wrap = time_python(lambda: pdqhash_compute(rgb), args.seconds)
            same = ours == cpp == wrap
            print(f"| {w}x{h} | {t_ours * 1e3:.2f} ms | {t_cpp * 1e3:.1f} ms | {t_wrap * 1e3:.1f} ms "
                  f"| {t_cpp / t_ours:.1f}x | {t_wrap / t_ours:.1f}x | {'yes' if same else 'NO'} |")
            if not same:
                print(f"hash mismatch: ours {ours} C++ {cpp} pdqhash {wrap}", file=sys.stderr)
                rows.append("mismatch")

        images = os.path.join(tmp, "jpegs")
        os.makedirs(images)
        for i in range(args.images):
            Image.fromarray(photo_like(1600, 1000, 1000 + i)).save(
                os.path.join(images, f"{i:03d}.jpg"), quality=90)
        cores = os.cpu_count() or 1
        print(f"\n## End to end: {args.images} JPEGs of 1600x1000 (q90), file to hash line\n")
        print("| what | threads | images/s |")
        print("|---|---|---|")
        for threads in sorted({1, cores}):
            best = None
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run([cli, "hash", "--threads", str(threads), images], check=True,
                               stdout=subprocess.DEVNULL)
                elapsed = time.perf_counter() - start
                best = elapsed if best is None else min(best, elapsed)
            print(f"| hashguard hash (libjpeg-turbo + PDQ) | {threads} | {args.images / best:.1f} |")
        files = sorted(os.listdir(images))
        start = time.perf_counter()
        for f in files:
            pdqhash_compute(np.asarray(Image.open(os.path.join(images, f)).convert("RGB")))
        elapsed = time.perf_counter() - start
        print(f"| Pillow + pdqhash.compute | 1 | {len(files) / elapsed:.1f} |")
    if rows:
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates large images (1,500 to 5,000 px a side) for the differential test, with the
reference's answers and intermediates for each.

Usage: make_large_corpus.py OUT_DIR [--seed N] [--jobs N] [--only NAME_PREFIX]

The content is the kind issue 11 reported: smooth periodic structure plus noise,
`(sin(x/a) + cos(y/b)) * A + 128` per channel, channels rolled or flipped, Gaussian noise of
sigma 2 to 20, saved as PNG or JPEG q88. On such images the box filter averages the noise away,
so most of the 256 DCT coefficients are tiny and the two next to the median are often a few
1e-4 apart; float rounding in the filter's long running sums moves every coefficient by about
that much. So a single float operation done differently (the luma, the running sums, the DCT
order) swaps the two bits next to the median on a few percent of such images, and changes the
coefficients' bits on nearly all of them.

Writes OUT_DIR/images, OUT_DIR/expected.tsv in make_differential_corpus.py's format
(`file, reference hash, reference quality, pdqhash hash, pdqhash quality, mode`) and, per image,
OUT_DIR/floats/FILE.f32: four little-endian float32 arrays, the C++ reference's 64x64 buffer
and 16x16 coefficients (`pdqFloat256FromFloatLuma`) on its own float32 luma
(`fillFloatLumaFromRGB`), then the same two on the float64-rounded luma of `pdqhash.compute()`.

Images are fully determined by the seed: the periodic part is computed with Python's `math`
on one row and one column and combined with exact float32 operations, and the noise comes from
numpy's seeded generator, so no SIMD sin/cos of the local numpy changes the pixels.
"""
import argparse
import math
import multiprocessing
import os

import numpy as np
from PIL import Image

from pdq_reference import Reference, pdqhash_compute

# (width, height, format): many sizes from 1,500 to 5,000, including the sizes where the box
# window (ceil(side / 128)) steps (1536/1537, 2048/2049, 4096/4097, 4992/4993), heights that are
# not a multiple of the streaming filter's 16-row strips, extreme aspect ratios and 5000x5000.
# PNG and JPEG alternate, except that the largest are JPEG (a 25-megapixel PNG takes seconds to
# write).
SIZES = [
    (1500, 1500, "PNG"), (1535, 1537, "JPEG"), (1536, 2048, "PNG"), (1537, 2049, "JPEG"),
    (1601, 4999, "PNG"), (1707, 2560, "JPEG"), (2047, 3071, "PNG"), (2300, 1777, "JPEG"),
    (2560, 2560, "PNG"), (2999, 4001, "JPEG"), (3072, 1999, "PNG"), (3333, 2222, "JPEG"),
    (3500, 1500, "PNG"), (4000, 3000, "JPEG"), (4095, 4097, "PNG"), (4096, 1536, "JPEG"),
    (4500, 2813, "PNG"), (4991, 1601, "JPEG"), (4992, 4993, "JPEG"), (5000, 1500, "PNG"),
    (1500, 5000, "PNG"), (5000, 5000, "JPEG"),
]
# Extra images (index, width, height) whose two bits next to the median differ between the C++
# float32-luma pipeline and pdqhash.compute's float64-rounded luma: 3 of the 7 such images
# among indices 100-399 of this generator's content at random sizes of 1,500-3,200 px (the
# rate is about 2%). PNG, so that no JPEG encoder version can change their pixels.
NEAR_TIES = [(163, 1802, 3099), (214, 2391, 1760), (331, 1694, 3181)]


def periodic_noise(w: int, h: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The issue's content: per channel (sin(x/a) + cos(y/b)) * A + 128, channels rolled or
    flipped, plus Gaussian noise; returns HxWx3 uint8 and a description."""
    out = np.empty((h, w, 3), np.uint8)
    sigma = float(rng.uniform(2, 20))
    for c in range(3):
        a, b, amp = (float(v) for v in rng.uniform([20, 20, 20], [600, 600, 60]))
        row = np.array([math.sin(x / a) for x in range(w)], np.float32)
        col = np.array([math.cos(y / b) for y in range(h)], np.float32)
        chan = (col[:, None] + row[None, :]) * np.float32(amp) + np.float32(128)
        chan += np.float32(sigma) * rng.standard_normal((h, w), np.float32)
        np.clip(chan, 0, 255, out=chan)
        out[:, :, c] = chan
    op = ["roll1", "roll2", "flip"][int(rng.integers(0, 3))]
    if op == "flip":
        out = np.ascontiguousarray(out[:, :, ::-1])
    else:
        out = np.roll(out, int(op[-1]), axis=-1)
    return out, f"sigma{sigma:.0f}_{op}"


def make_one(job):
    """Writes one image and its reference answers; returns its expected.tsv row."""
    out_dir, seed, index, w, h, fmt = job
    rng = np.random.default_rng([seed, index])
    rgb, desc = periodic_noise(w, h, rng)
    ext = "png" if fmt == "PNG" else "jpg"
    name = f"{index:03d}_periodic_{w}x{h}_{desc}.{ext}"
    path = os.path.join(out_dir, "images", name)
    if fmt == "PNG":
        # Lowest compression: the test time is in these files, not their size.
        Image.fromarray(rgb).save(path, "PNG", compress_level=1)
    else:
        Image.fromarray(rgb).save(path, "JPEG", quality=88)
    decoded = Image.open(path)
    pixels = np.ascontiguousarray(np.asarray(decoded.convert("RGB")))
    ref = Reference()
    ref_hash, ref_q, ref_b64, ref_b16 = ref.floats_luma(ref.luma(pixels))
    # pdqhash.compute's luma, computed as its bindings.pyx does, through the same C++ core, for
    # the intermediates; the hash column is pdqhash.compute's own answer.
    luma64 = (pixels[:, :, 0] * 0.299 + pixels[:, :, 1] * 0.587
              + pixels[:, :, 2] * 0.114).astype(np.float32)
    wrap_hash_i, wrap_q_i, wrap_b64, wrap_b16 = ref.floats_luma(luma64)
    wrap_hash, wrap_q = pdqhash_compute(pixels)
    assert (wrap_hash, wrap_q) == (wrap_hash_i, wrap_q_i), name
    with open(os.path.join(out_dir, "floats", name + ".f32"), "wb") as f:
        for a in (ref_b64, ref_b16, wrap_b64, wrap_b16):
            f.write(np.ascontiguousarray(a, "<f4").tobytes())
    return f"{name}\t{ref_hash}\t{ref_q}\t{wrap_hash}\t{wrap_q}\t{decoded.mode}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--only", default="", help="make only images whose name starts so")
    args = parser.parse_args()
    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    os.makedirs(os.path.join(args.out, "floats"), exist_ok=True)
    jobs = [(args.out, args.seed, i, w, h, fmt) for i, (w, h, fmt) in enumerate(SIZES)]
    jobs += [(args.out, args.seed, i, w, h, "PNG") for (i, w, h) in NEAR_TIES]
    if args.only:
        jobs = [j for j in jobs if f"{j[2]:03d}".startswith(args.only)]
    # Largest first, so that the pool does not end on one 5000x5000 image.
    jobs.sort(key=lambda j: -j[3] * j[4])
    with multiprocessing.Pool(max(1, args.jobs)) as pool:
        rows = pool.map(make_one, jobs, chunksize=1)
    with open(os.path.join(args.out, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    disagree = sum(1 for r in rows if r.split("\t")[1:3] != r.split("\t")[3:5])
    print(f"{len(rows)} images; pdqhash.compute differs from the C++ pipeline on {disagree}")


if __name__ == "__main__":
    main()

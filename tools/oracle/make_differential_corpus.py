#!/usr/bin/env python3
"""Generates the differential-test corpus and the reference's answers for it.

Usage: make_differential_corpus.py OUT_DIR [--seed N]

Writes images of many sizes (1x1 to 3000x2000, exactly 64x64, under 5 px), contents (noise,
gradients, flat colours, shapes, text-like strokes), Pillow modes (1 L LA P PA RGB RGBA CMYK I;16
YCbCr) and formats (PNG, JPEG at several qualities, WebP lossy and lossless, GIF, BMP, TIFF) into
OUT_DIR/images, and OUT_DIR/expected.tsv with one line per image:
`file<TAB>reference_hash<TAB>reference_quality<TAB>pdqhash_hash<TAB>pdqhash_quality<TAB>mode`.
The reference hash is Meta's C++ code on Pillow's `convert("RGB")` pixels (the pipeline of
testdata/pdq/expected.txt); the pdqhash columns are the `pdqhash.compute()` wrapper's answer.
"""
import argparse
import os
import random

import numpy as np
from PIL import Image, ImageDraw

from pdq_reference import Reference, pdqhash_compute

SIZES = [(1, 1), (2, 3), (4, 4), (4, 9), (5, 5), (6, 5), (7, 11), (16, 16), (31, 17), (63, 64),
         (64, 64), (65, 64), (64, 65), (100, 100), (127, 129), (128, 128), (200, 150),
         (255, 257), (320, 240), (333, 500), (512, 512), (640, 480), (800, 600), (1023, 767),
         (1024, 1024), (1600, 1004), (1920, 1080), (2048, 1536), (3000, 2000)]
CONTENTS = ["noise", "gradient", "flat", "shapes", "stripes", "photo_like"]
# (mode, format, save options)
VARIANTS = [
    ("RGB", "PNG", {}), ("RGB", "JPEG", {"quality": 95}), ("RGB", "JPEG", {"quality": 75}),
    ("RGB", "JPEG", {"quality": 30}), ("RGB", "WEBP", {"lossless": True}),
    ("RGB", "WEBP", {"quality": 80}), ("RGB", "BMP", {}), ("RGB", "TIFF", {}),
    ("RGBA", "PNG", {}), ("RGBA", "WEBP", {"lossless": True}), ("L", "PNG", {}),
    ("L", "JPEG", {"quality": 85}), ("LA", "PNG", {}), ("P", "PNG", {}), ("P", "GIF", {}),
    ("PA", "WEBP", {"lossless": True}), ("P", "PNG", {"transparency": 0}), ("1", "PNG", {}), ("1", "BMP", {}), ("CMYK", "JPEG", {"quality": 90}),
    ("I;16", "PNG", {}), ("YCbCr", "JPEG", {"quality": 90}), ("L", "TIFF", {}),
]
EXT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif", "GIF": "gif"}


def content(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "gradient":
        a = rng.uniform(0.2, 3.0, 3)
        img = np.stack([(x * a[0] + y * (1 - a[0] / 3)) * 255 / max(w + h, 1),
                        255 * y / max(h - 1, 1) * a[1] / 3,
                        255 * (x + y) / max(w + h - 2, 1)], axis=-1)
        return np.clip(img, 0, 255).astype(np.uint8)
    if kind == "flat":
        c = rng.integers(0, 256, 3, dtype=np.uint8)
        return np.broadcast_to(c, (h, w, 3)).copy()
    if kind == "stripes":
        period = max(2, int(rng.integers(2, 40)))
        v = ((x // period + y // (period + 1)) % 2) * 255
        return np.stack([v, 255 - v, v / 2], axis=-1).astype(np.uint8)
    if kind == "photo_like":
        base = np.sin(x / max(w, 1) * rng.uniform(1, 9)) * np.cos(y / max(h, 1) * rng.uniform(1, 9))
        img = np.stack([base * 100 + 128, base * 80 + 100, -base * 90 + 120], axis=-1)
        img += rng.normal(0, 12, img.shape)
        return np.clip(img, 0, 255).astype(np.uint8)
    # shapes
    im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 12))):
        x0, x1 = sorted(rng.integers(0, w + 1, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h + 1, 2).tolist())
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        else:
            draw.ellipse([x0, y0, x1, y1], fill=fill)
    return np.asarray(im)


def to_mode(rgb: np.ndarray, mode: str, rng: np.random.Generator) -> Image.Image:
    im = Image.fromarray(rgb, "RGB")
    if mode == "RGBA" or mode == "LA" or mode == "PA":
        alpha = Image.fromarray(rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8), "L")
        base = im.convert({"RGBA": "RGB", "LA": "L", "PA": "P"}[mode])
        if mode == "PA":
            base = im.convert("P")
            out = base.convert("PA")
            out.putalpha(alpha)
            return out
        base.putalpha(alpha)
        return base
    if mode == "I;16":
        # Values over 255 exercise the clamp; PNG stores them as 16-bit grey.
        grey = np.asarray(im.convert("L")).astype(np.uint16) * int(rng.integers(1, 300))
        out = Image.new("I;16", im.size)
        out.frombytes(grey.astype("<u2").tobytes(), "raw", "I;16")
        return out
    return im.convert(mode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=20261126)
    args = parser.parse_args()
    images = os.path.join(args.out, "images")
    os.makedirs(images, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    pick = random.Random(args.seed)
    ref = Reference()
    rows = []
    n = 0
    # Every size with every content at least once, in rotating modes and formats; big sizes
    # fewer times to keep the corpus quick to make and to hash.
    jobs = []
    for (w, h) in SIZES:
        repeats = 2 if w * h > 1_000_000 else 12
        for r in range(repeats):
            jobs.append((w, h, CONTENTS[(r + w) % len(CONTENTS)], VARIANTS[(r * 5 + h) % len(VARIANTS)]))
    # Every variant on a mid-size image with every content.
    for v in VARIANTS:
        for c in CONTENTS:
            jobs.append((pick.choice([97, 150, 301]), pick.choice([89, 160, 257]), c, v))
    for (w, h, kind, (mode, fmt, opts)) in jobs:
        rgb = content(kind, w, h, rng)
        im = to_mode(rgb, mode, rng)
        name = f"{n:04d}_{kind}_{w}x{h}_{mode.replace(';', '')}.{EXT[fmt]}"
        path = os.path.join(images, name)
        try:
            im.save(path, fmt, **opts)
        except (OSError, ValueError, KeyError) as e:
            # Some mode/format pairs Pillow cannot write (e.g. tiny WebP); not an image then.
            print(f"skip {name}: {e}")
            continue
        decoded = Image.open(path)
        pixels = np.asarray(decoded.convert("RGB"))
        ref_hash, ref_q = ref.hash_rgb(pixels)
        wrap_hash, wrap_q = pdqhash_compute(pixels)
        rows.append(f"{name}\t{ref_hash}\t{ref_q}\t{wrap_hash}\t{wrap_q}\t{decoded.mode}")
        n += 1
    with open(os.path.join(args.out, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{n} images")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes JPEGs carrying each EXIF orientation (1-8) and the reference's answers for them.

Usage: make_exif_corpus.py OUT_DIR
OUT_DIR/expected.tsv: `file<TAB>hash as stored<TAB>hash after Pillow's ImageOps.exif_transpose`,
both by the C++ reference core (pdq_reference.py) on Pillow's decoded pixels.
"""
import os
import sys

import numpy as np
from PIL import Image, ImageOps

from pdq_reference import Reference


def main() -> None:
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    ref = Reference()
    rng = np.random.default_rng(6)
    y, x = np.mgrid[0:240, 0:320]
    base = np.stack([x * 0.8, y, (x + 2 * y) % 256], -1) + rng.normal(0, 8, (240, 320, 3))
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    rows = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        name = f"orientation-{orientation}.jpg"
        path = os.path.join(out, "images", name)
        im.save(path, quality=90, exif=exif.tobytes())
        decoded = Image.open(path)
        stored = ref.hash_rgb(np.asarray(decoded.convert("RGB")))[0]
        turned = ref.hash_rgb(np.asarray(ImageOps.exif_transpose(decoded).convert("RGB")))[0]
        rows.append(f"{name}\t{stored}\t{turned}")
    with open(os.path.join(out, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()

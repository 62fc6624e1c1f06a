#!/usr/bin/env python3
"""Reference oracles and peers for the second hash (issue 17 item 6, docs/second-hash.md).

usage: second_hash_oracle.py hash DIR        one line per PNG in DIR (sorted):
           name<TAB>phash<TAB>whash<TAB>dhash<TAB>dhash_vertical<TAB>dhash16<TAB>profiles
           (imagehash 4.x: phash(8, 4), whash(8, image_scale=32, 'haar'), dhash(8),
           dhash_vertical(8), dhash(16); hex, first bit = most significant; profiles: the
           shipped second hash's profile bits, by numpy, see `profiles`)
       second_hash_oracle.py time DIR REPS   seconds per hash of each peer (imagehash and
           Thorn's perception) over the PNGs in DIR, as JSON

Images are read with Pillow and hashed as given: a caller that wants an exact comparison
writes pixels already at the hash's own size (32x32 for phash and whash, 9x8 for dhash, 8x9 for
dhash_vertical, 17x16 for dhash16, 64x64 for the profiles), so the library's internal resize is
the identity (Pillow returns a copy for an equal size).
"""
import json
import os
import sys
import time

import imagehash
from PIL import Image


def profiles(img):
    """The profile bits of hashguard's second hash (crates/hashing/src/second.rs), written from
    its definition: the picture at 64x64 (Pillow's bilinear resize when it is not), its column
    sums and row sums, and of each the signs of the DCT-II coefficients at frequencies 1..16 in
    PDQ's basis sqrt(2/64) cos(pi/128 k (2j+1)); a bit is set above 1e-6. 8 hex digits, the
    column profile's frequency 1 the most significant bit."""
    import numpy

    grey = img.convert("L")
    if grey.size != (64, 64):
        grey = grey.resize((64, 64), Image.BILINEAR)
    a = numpy.asarray(grey, dtype=numpy.float64)
    j = numpy.arange(64)
    k = numpy.arange(1, 17)[:, None]
    basis = numpy.sqrt(2.0 / 64.0) * numpy.cos(numpy.pi / 128.0 * k * (2 * j + 1))
    value = 0
    for c in list(basis @ a.sum(axis=0)) + list(basis @ a.sum(axis=1)):
        value = (value << 1) | int(c > 1e-6)
    return f"{value:08x}"


def hashes(path):
    img = Image.open(path)
    img.load()
    return (
        str(imagehash.phash(img)),
        str(imagehash.whash(img, image_scale=32)),
        str(imagehash.dhash(img)),
        str(imagehash.dhash_vertical(img)),
        str(imagehash.dhash(img, hash_size=16)),
        profiles(img),
    )


def pngs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".png"))


def main():
    cmd, d = sys.argv[1], sys.argv[2]
    if cmd == "hash":
        for name in pngs(d):
            print(name, *hashes(os.path.join(d, name)), sep="\t")
    elif cmd == "time":
        import numpy
        from perception import hashers

        reps = int(sys.argv[3])
        images = []
        for name in pngs(d):
            img = Image.open(os.path.join(d, name))
            img.load()
            images.append(img)
        arrays = [numpy.asarray(i.convert("RGB")) for i in images]
        peers = {
            "imagehash.phash": lambda i, a: imagehash.phash(i),
            "imagehash.whash(32)": lambda i, a: imagehash.whash(i, image_scale=32),
            "imagehash.dhash": lambda i, a: imagehash.dhash(i),
            "imagehash.dhash+dhash_vertical": lambda i, a: (
                imagehash.dhash(i),
                imagehash.dhash_vertical(i),
            ),
            "imagehash.dhash+dhash_vertical+profiles (the shipped hash)": lambda i, a: (
                imagehash.dhash(i),
                imagehash.dhash_vertical(i),
                profiles(i),
            ),
            "perception.PHash": (lambda h: lambda i, a: h.compute(a))(hashers.PHash()),
            "perception.WaveletHash": (lambda h: lambda i, a: h.compute(a))(hashers.WaveletHash()),
            "perception.DHash": (lambda h: lambda i, a: h.compute(a))(hashers.DHash()),
        }
        out = {}
        for name, f in peers.items():
            start = time.perf_counter()
            for _ in range(reps):
                for i, a in zip(images, arrays):
                    f(i, a)
            out[name] = (time.perf_counter() - start) / (reps * len(images))
        print(json.dumps(out))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

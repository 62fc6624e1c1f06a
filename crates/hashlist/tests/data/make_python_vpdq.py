#!/usr/bin/env python3
"""Writes the python-threatexchange reference outputs that tests/vpdq.rs checks against.

Run from this directory: `python3 make_python_vpdq.py`. Needs only the standard library: the
serialisation below is python-threatexchange's (`vpdq_util.py`: `VpdqCompactFeature.__str__` is
f"{pdq_hex},{quality},{timestamp:.3}" and `vpdq_to_json` is `json.dumps([...])`; the local_file
writer is f"{signal_type} {signal}\\n"; CSV rows are written with the `csv` module), applied to
stand-in frames (hashes from a fixed PRNG, not from any real video).
"""
import csv
import json
import random
import struct


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x: float) -> str:
    return struct.pack(">f", x).hex()


rng = random.Random(20261126)


def hexhash() -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(64))


videos = []
# 30 fps, every frame, mixed qualities (0..100, low frames kept as the tool keeps them).
videos.append([(hexhash(), q, f32(f32(i) / f32(30.0))) for i, q in enumerate([100, 0, 49, 50, 87])])
# One frame.
videos.append([(hexhash(), 100, 0.0)])
# 1 frame per second of a 29.97 fps video for over an hour: timestamps reach scientific notation.
videos.append(
    [(hexhash(), rng.randint(0, 100), f32(f32(i * 30) / f32(29.97))) for i in range(0, 4000, 97)]
)
# A repeated hash (a still scene) and 23.976 fps.
h = hexhash()
videos.append([(h, 100, f32(f32(i) / f32(23.976))) for i in range(4)] + [(hexhash(), 63, f32(4 / 23.976))])

with open("vpdq_frames.txt", "w") as out:
    out.write("# video index hex quality timestamp-f32-bits (stand-in frames)\n")
    for v, frames in enumerate(videos):
        for i, (hx, q, t) in enumerate(frames):
            out.write(f"{v} {i} {hx} {q} {f32_bits(t)}\n")


def signal_str(frames) -> str:
    return json.dumps([f"{hx},{q},{t:.3}" for hx, q, t in frames])


with open("vpdq_local_file.txt", "w") as out:
    for frames in videos:
        out.write(f"vpdq {signal_str(frames)}\n")

with open("vpdq.csv", "w", newline="") as out:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["signal_type", "signal_str", "collab", "category", "tags"])
    for i, frames in enumerate(videos):
        tags = "standin video" if i == 0 else ""
        category = "Stand-in, category" if i == 0 else ""
        w.writerow(["vpdq", signal_str(frames), "Stand-in Org", category, tags])

# Timestamps: frame / fps as the hasher computes them (in f32), and f32 values spread over many
# magnitudes, with Python's format(t, ".3").
values = set()
for fps in [23.976, 24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0, 120.0]:
    for frame in list(range(0, 200)) + list(range(200, 500000, 1999)):
        values.add(f32(f32(frame) / f32(fps)))
for _ in range(2000):
    values.add(f32(10 ** rng.uniform(-7, 9)))
for x in [0.0, 1e-5, 0.0001, 0.00099995, 9.995, 99.95, 99.949997, 1.125, 12.25, 0.125, 3e38]:
    values.add(f32(x))
with open("timestamps.txt", "w") as out:
    out.write("# f32 bits, Python format(float(t), '.3')\n")
    for t in sorted(values):
        out.write(f"{f32_bits(t)} {t:.3}\n")

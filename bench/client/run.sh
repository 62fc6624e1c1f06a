#!/usr/bin/env bash
# The client's cost to prepare one attachment (issue 14): decode, hash, vouchers and encryption
# of a 12-megapixel JPEG and of a 30 s 1080p video, one thread, through the SDK
# (bench/client/prepare.rs); then where the photo's hashing time goes, stage by stage
# (bench/client/hash_stages.rs: the PDQ of the image, of its two dihedral variants, the visual
# derivative); then the voucher alone on each of curve25519-dalek's three field
# backends (AVX-512 IFMA, AVX2, portable 64-bit), from the protocol crate's criterion bench
# (`client_voucher_*`), each backend built in its own target directory. Results: docs/client.md.
#
#   bench/client/run.sh
#
# Needs the `ffmpeg` command (Debian package ffmpeg) to make the test video (testsrc2, H.264).
# A backend the CPU lacks falls back at run time (the bench prints which one ran).
# About 10 minutes on 2 cores after the builds. Not part of `cargo test` or CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

VIDEO="$WORK/video-1080p-30s.mp4"
if command -v ffmpeg >/dev/null; then
    ffmpeg -loglevel error -f lavfi -i testsrc2=size=1920x1080:rate=30 -t 30 \
        -c:v libx264 -preset veryfast -pix_fmt yuv420p "$VIDEO"
    VIDEO_ARGS=(--video "$VIDEO")
else
    echo "run.sh: no ffmpeg command (apt-get install ffmpeg): the video is not measured" >&2
    VIDEO_ARGS=()
fi

(cd "$ROOT" && cargo build --release -p hashguard-client --example client_prepare >&2)
RUST_LOG=${RUST_LOG:-warn} "$TARGET/release/examples/client_prepare" "${VIDEO_ARGS[@]}" "$@"

echo
echo "The photo's hashing, stage by stage:"
(cd "$ROOT" && cargo build --release -p hashguard-hashing --example hash_stages >&2)
"$TARGET/release/examples/hash_stages"

echo
# `client_voucher_P79` is v1 under `intervene` (P = 237) built without dihedral input: 79 real
# probes and 158 dummies; `client_voucher_P79_dihedral` is what the SDK builds (every probe
# real, as the `vouchers` row above). Likewise P13 (lite, P = 39).
echo "The voucher alone (criterion, median of its samples), by backend:"
for backend in avx512 avx2 serial; do
    case $backend in
        avx512) flags='--cfg curve25519_dalek_backend="avx512"' ;;
        # RUSTFLAGS replaces .cargo/config.toml's list: AVX2 and serial compiled, AVX2 runs.
        avx2) flags='' ;;
        serial) flags='--cfg curve25519_dalek_backend="serial"' ;;
    esac
    (cd "$ROOT" && RUSTFLAGS="$flags" CARGO_TARGET_DIR="$TARGET/bench-$backend" \
        cargo bench -p hashguard-protocol --bench protocol -- --noplot 'client_voucher_' 2>&1) |
        grep -E 'field backend|^client_voucher|time:' | sed "s/^/[$backend] /"
done

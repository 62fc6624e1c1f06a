#!/usr/bin/env bash
# Installs what building and testing hashguard needs beyond Rust, on Debian/Ubuntu, idempotently:
# - system packages: nasm (libjpeg-turbo's SIMD in the mozjpeg crate; without it JPEG decoding
#   is several times slower), pkg-config, clang/libclang (bindgen), FFmpeg development packages
#   (video, libav); Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)
#   for the review UI's browser test (nothing downloads a browser); fonts-dejavu-core for the
#   detection-quality figures (crates/quality/src/plots.rs);
# - a Python virtual environment at .venv with the reference implementations used as test
#   oracles and benchmark peers (tools/oracle/requirements.txt), and schemathesis, which the
#   server's tests run against its OpenAPI document.
# Quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nasm pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
          libswscale-dev python3-venv chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c "import pdqhash, numpy, PIL, threatexchange, imagehash, perception" 2>/dev/null; then
  echo "setup: creating .venv with the reference oracles" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tools/oracle/requirements.txt
fi

# schemathesis, the property-based API tester the server's tests run against /openapi.json.
if ! .venv/bin/schemathesis --version >/dev/null 2>&1; then
  echo "setup: installing schemathesis into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

#!/usr/bin/env bash
# Builds the benign image corpus for the detection-quality measurement (issue 17) and writes
# its manifest, bench/quality/corpus.csv.
#
#   bench/quality/corpus.sh            # download (once), extract, hash, deduplicate, write the manifest
#   HASHGUARD_CORPUS=/big/disk bench/quality/corpus.sh
#
# Images come only from Debian packages that ship benign artwork (bench/quality/packages.txt),
# fetched with `apt-get download` (never installed; the versions in bench/quality/corpus-debs.txt
# while the archive has them) into $HASHGUARD_CORPUS (default
# ~/.cache/hashguard-corpus), outside the repository: no image is ever committed, only the
# manifest. Each .deb is unpacked with `dpkg-deb -x`; every file that is not an image by its
# extension is deleted right away, so the cache holds the .debs plus the images (about 6 GB).
# Then `hashguard-quality corpus` decodes every image with the project's decoder (crates/media),
# hashes it with crates/pdq, drops images of PDQ quality < 50 or a side < 64 px, keeps one image
# of every group within PDQ distance 31, and writes the manifest. Needs network only for the
# first download (`apt-get update` once on a fresh machine); everything after is offline.
set -euo pipefail
cd "$(dirname "$0")/../.."
CORPUS="${HASHGUARD_CORPUS:-$HOME/.cache/hashguard-corpus}"
mkdir -p "$CORPUS/debs" "$CORPUS/extract"
mapfile -t PKGS < <(grep -v '^\s*#' bench/quality/packages.txt | sed 's/\s.*//' | grep -v '^$')

# The versions the committed manifest was built from (bench/quality/corpus-debs.txt), so that a
# fresh machine rebuilds the same corpus while the archive still has them; a package whose
# pinned version is gone (a later point release) is fetched at the archive's version instead,
# with a warning, and the manifest may then differ slightly.
declare -A PINNED=()
while read -r deb; do
    name=${deb%%_*}
    rest=${deb#*_}
    version=${rest%_*}
    PINNED[$name]=${version//%3a/:}
done < <(grep -v '^\s*#' bench/quality/corpus-debs.txt | grep -v '^$')

missing=()
for p in "${PKGS[@]}"; do
    ls "$CORPUS/debs/${p}_"*.deb >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "downloading ${#missing[@]} packages into $CORPUS/debs" >&2
    for p in "${missing[@]}"; do
        if [ -n "${PINNED[$p]:-}" ] \
            && (cd "$CORPUS/debs" && nice apt-get download -q "$p=${PINNED[$p]}"); then
            continue
        fi
        [ -n "${PINNED[$p]:-}" ] \
            && echo "warning: $p ${PINNED[$p]} is no longer in the archive; fetching its current version" >&2
        (cd "$CORPUS/debs" && nice apt-get download -q "$p")
    done
fi

for p in "${PKGS[@]}"; do
    deb=$(ls "$CORPUS/debs/${p}_"*.deb | head -n 1)
    out="$CORPUS/extract/$p"
    [ -e "$out/.done" ] && continue
    rm -rf "$out"
    mkdir -p "$out"
    nice dpkg-deb -x "$deb" "$out"
    # Keep regular image files only (symlinks would count an image twice).
    find "$out" \( -type l -o \( -type f ! -iregex '.*\.\(png\|jpe?g\|webp\|gif\|bmp\|tiff?\)' \) \) -delete
    find "$out" -type d -empty -delete
    mkdir -p "$out"
    basename "$deb" >"$out/.done"
    echo "extracted $p: $(find "$out" -type f ! -name .done | wc -l) image files" >&2
done
du -sh "$CORPUS" >&2

export CARGO_INCREMENTAL=0
nice cargo run --release --locked -q -p hashguard-quality -- corpus \
    --dir "$CORPUS/extract" --out bench/quality/corpus.csv "$@"

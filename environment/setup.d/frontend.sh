#!/usr/bin/env bash
# The front-end test's browser driver: puppeteer-core from npm (no browser download: it drives Debian's chromium), pinned,
# into its own folder of the data cache (<data>/frontend), as kernel.sh does for plotly.js. 24.x is the last line that
# runs on Node.js 18-20 (25.x needs 22.12). Idempotent.
set -euo pipefail
data="${PEFT_DATA:-$HOME/.cache/peft-workbench}"
version="24.43.1"
package="$data/frontend/node_modules/puppeteer-core/package.json"
if [ -f "$package" ] && grep -q "\"version\": \"$version\"" "$package"; then
    echo "[frontend] puppeteer-core $version present"
    exit 0
fi
mkdir -p "$data/frontend"
# PUPPETEER_SKIP_DOWNLOAD: -core never downloads a browser, and this makes sure no install script tries.
PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$data/frontend" --no-audit --no-fund --no-save --loglevel=error "puppeteer-core@$version"
test -f "$package"
echo "[frontend] puppeteer-core $version installed in $data/frontend"

#!/usr/bin/env bash
# The C# kernel's offline chart renderer: plotly.js 1.58.5 (the version XPlot.Plotly 4.1 targets) from npm, into its own
# folder of the data cache (<data>/plotly; a shared npm prefix would be pruned by other installs). Idempotent.
set -euo pipefail
data="${PEFT_DATA:-$HOME/.cache/peft-workbench}"
target="$data/plotly/node_modules/plotly.js-dist-min/plotly.min.js"
if [ -f "$target" ] && grep -q '"version": "1.58.5"' "$data/plotly/node_modules/plotly.js-dist-min/package.json"; then
    echo "[kernel] plotly.js 1.58.5 present"
    exit 0
fi
mkdir -p "$data/plotly"
npm install --prefix "$data/plotly" --no-audit --no-fund --no-save --loglevel=error plotly.js-dist-min@1.58.5
test -f "$target"
echo "[kernel] plotly.js 1.58.5 installed in $data/plotly"

#!/usr/bin/env bash
# The main job: set up, then run every notebook headless on the embedded default
# (profile from $PEFT_PROFILE, default "default"); executed notebooks and HTML go to out/notebooks/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bash "$here/setup.sh"
peft() { dotnet "$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft.dll" "$@"; }
peft info
peft notebooks run "$repo"/notebooks/*.ipynb --profile "${PEFT_PROFILE:-default}" --out "$repo/out/notebooks"
echo "[study] executed notebooks and HTML in $repo/out/notebooks"

#!/usr/bin/env bash
# The main job: set up, then run the study on the embedded default.
# For now: workbench info and a forward pass of the mini ViT; later issues grow this into every notebook.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bash "$here/setup.sh"
peft() { dotnet "$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft.dll" "$@"; }
peft info
peft vit summary --preset mini
peft vit forward --preset mini

#!/usr/bin/env bash
# The main job: set up (setup.sh is idempotent: on a set-up machine it only checks and builds incrementally), then run
# every notebook headless with the default profile ($PEFT_PROFILE overrides: smoke for seconds, mini-full overnight),
# then write the report: the executed notebooks, their HTML and index.html (one line per finding, ours beside the
# paper's) in out/notebooks/. A failing notebook is named on its line and the others still run; the exit code is 1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
bash "$here/setup.sh"

# The `peft` launcher setup.d/launcher.sh installed, when the one on PATH runs this checkout; else this checkout's build.
peft=(dotnet "$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft.dll")
if launcher="$(command -v peft)" && grep -qF "\"$repo\"/src/PeftWorkbench.Cli/" "$launcher" 2>/dev/null; then peft=("$launcher"); fi

profile="${PEFT_PROFILE:-default}"
out="$repo/out/notebooks"
notebooks=("$repo"/notebooks/*.ipynb)
"${peft[@]}" info
echo "[study] ${#notebooks[@]} notebooks, profile $profile; each notebook's wall time is printed as it ends"
start=$SECONDS
status=0
"${peft[@]}" notebooks run "${notebooks[@]}" --profile "$profile" --out "$out" --keep-going || status=$?
echo "[study] $(( (SECONDS - start) / 60 )) min $(( (SECONDS - start) % 60 )) s for ${#notebooks[@]} notebooks$([ $status -eq 0 ] || echo ", some FAILED (see the index)")"
echo "[study] report: $out/index.html (and index.md; executed notebooks and their HTML beside it)"
exit $status

#!/usr/bin/env bash
# The `peft` command on PATH, for shells and batch scripts alike (an alias reaches neither a batch script nor
# another shell): a two-line launcher that runs this checkout's CLI build with the dotnet found now.
# Root: /usr/local/bin/peft; otherwise ~/.local/bin/peft; PEFT_LAUNCHER_DIR overrides. Rewritten on every run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(dirname "$here")"
dir="${PEFT_LAUNCHER_DIR:-}"
if [ -z "$dir" ]; then
    if [ "$(id -u)" -eq 0 ]; then dir=/usr/local/bin; else dir="$HOME/.local/bin"; fi
fi
dotnet="$(readlink -f "$(command -v dotnet)")"
mkdir -p "$dir"
tmp="$(mktemp "$dir/.peft.XXXXXX")"
cat > "$tmp" <<LAUNCHER
#!/bin/sh
# The PeftWorkbench CLI of $repo (written by environment/setup.d/launcher.sh).
for dll in "$repo"/src/PeftWorkbench.Cli/bin/Release/net10.0/*/peft.dll; do
    [ -f "\$dll" ] && exec "$dotnet" "\$dll" "\$@"
done
echo "peft: the CLI is not built in $repo; run $repo/environment/setup.sh" >&2
exit 127
LAUNCHER
chmod 755 "$tmp"
mv -f "$tmp" "$dir/peft"
echo "[launcher] $dir/peft runs the CLI built in $repo"
case ":$PATH:" in *":$dir:"*) ;; *) echo "[launcher] $dir is not on PATH here: add it (export PATH=\"$dir:\$PATH\")" ;; esac

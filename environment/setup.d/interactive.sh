#!/usr/bin/env bash
# The notebooks' two kernels. Idempotent; a second run only checks (a few seconds).
# 1. Packs the library into the local feed artifacts/packages (git-ignored) when its sources changed; a changed package
#    of the same version also leaves the NuGet cache, or .NET Interactive would keep restoring the old one.
# 2. Registers that folder as the NuGet source "peft-workbench" in the user's NuGet config, which is where
#    .NET Interactive's `#r "nuget: PeftWorkbench, <version>"` restores from.
# 3. Installs the dotnet-interactive tool, pinned, into a tool path in the data cache (no global tool).
# 4. Registers the kernelspecs `.net-csharp` (argv pointing at that tool, its HTTP API on loopback only, on a port range that differs between kernels started together) and ours, `peft-workbench`, for this user.
# Nothing else on the machine changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
data="${PEFT_DATA:-$HOME/.cache/peft-workbench}"
tool_version="1.0.712001"
tool_dir="$data/tools/dotnet-interactive-$tool_version"
feed="$repo/artifacts/packages"
kernels="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}/kernels"
log() { printf '[interactive] %s\n' "$*"; }

version="$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props" | head -1)"
nupkg="$feed/PeftWorkbench.$version.nupkg"
cache="${NUGET_PACKAGES:-$HOME/.nuget/packages}/peftworkbench/$version"

# 1. The package, packed again only when a source of it is newer than the feed's copy.
changed=yes
if [ -f "$nupkg" ] && [ -z "$(find "$repo/src/PeftWorkbench" "$repo/build" "$repo/Directory.Build.props" "$repo/Directory.Packages.props" \
        -newer "$nupkg" -type f -not -path '*/bin/*' -not -path '*/obj/*' | head -1)" ]; then
    changed=no
fi
if [ "$changed" = yes ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    dotnet pack "$repo/src/PeftWorkbench" -c Release -nologo -v q -o "$tmp" >/dev/null
    # The same bytes inside (a deterministic build) keep the feed and the cache as they are.
    digest() { unzip -p "$1" lib/net10.0/PeftWorkbench.dll interactive-extensions/dotnet/extension.dib | sha256sum; }
    mkdir -p "$feed"
    if [ -f "$nupkg" ] && [ "$(digest "$nupkg")" = "$(digest "$tmp/PeftWorkbench.$version.nupkg")" ]; then
        touch "$nupkg"
        log "PeftWorkbench $version in $feed is current"
    else
        mv "$tmp/PeftWorkbench.$version.nupkg" "$nupkg"
        rm -rf "$cache"
        log "packed PeftWorkbench $version into $feed"
    fi
else
    log "PeftWorkbench $version in $feed is current"
fi

# 2. The feed as a source in the user's NuGet config (named explicitly: without --configfile, dotnet nuget would edit
#    the nearest config, the repo's own). Updated in place if it pointed elsewhere.
user_config="$HOME/.nuget/NuGet/NuGet.Config"
if [ ! -f "$user_config" ]; then
    mkdir -p "$(dirname "$user_config")"
    printf '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n  <packageSources>\n    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />\n  </packageSources>\n</configuration>\n' > "$user_config"
fi
if grep -q "key=\"peft-workbench\" value=\"$feed\"" "$user_config"; then
    log "NuGet source peft-workbench present"
elif grep -q 'key="peft-workbench"' "$user_config"; then
    dotnet nuget update source peft-workbench --source "$feed" --configfile "$user_config" >/dev/null
    log "NuGet source peft-workbench now points at $feed"
else
    dotnet nuget add source "$feed" --name peft-workbench --configfile "$user_config" >/dev/null
    log "NuGet source peft-workbench added to $user_config ($feed)"
fi

# 3. The tool, pinned, in its own tool path.
if [ -x "$tool_dir/dotnet-interactive" ] && "$tool_dir/dotnet-interactive" --version 2>/dev/null | grep -q "^$tool_version"; then
    log "dotnet-interactive $tool_version present"
else
    rm -rf "$tool_dir"
    (cd "$repo" && dotnet tool install Microsoft.dotnet-interactive --version "$tool_version" --tool-path "$tool_dir" >/dev/null)
    log "dotnet-interactive $tool_version installed in $tool_dir"
fi

# 4. Kernelspecs. The tool writes the global-tool form of argv (`dotnet interactive jupyter ...`) and three kernels:
#    keep .net-csharp only, with argv[0..1] replaced by the tool's path.
spec="$kernels/.net-csharp/kernel.json"
if [ -f "$spec" ] && grep -q "\"$tool_dir/dotnet-interactive\"" "$spec" && grep -q '"--http-local-only"' "$spec" && grep -q 'http-port-range' "$spec" && grep -q '"DOTNET_INTERACTIVE_CLI_TELEMETRY_OPTOUT"' "$spec"; then
    log "kernelspec .net-csharp present"
else
    tmp_k="$(mktemp -d)"
    mkdir -p "$tmp_k/kernels"
    "$tool_dir/dotnet-interactive" jupyter install --path "$tmp_k/kernels" >/dev/null
    # argv: the tool by its path, and its unauthenticated HTTP API on loopback only (see the script).
    /usr/bin/python3 "$here/dotnet-kernelspec.py" "$tmp_k/kernels/.net-csharp/kernel.json" "$tool_dir/dotnet-interactive"
    mkdir -p "$kernels"
    rm -rf "$kernels/.net-csharp"
    cp -r "$tmp_k/kernels/.net-csharp" "$kernels/.net-csharp"
    rm -rf "$tmp_k"
    log "kernelspec .net-csharp installed in $kernels (runs $tool_dir/dotnet-interactive)"
fi

# Ours needs the CLI's build output (its argv starts it): built here, incrementally, if missing.
peft="$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft.dll"
if [ -f "$kernels/peft-workbench/kernel.json" ] && grep -q "\"$peft\"" "$kernels/peft-workbench/kernel.json"; then
    log "kernelspec peft-workbench present"
else
    [ -f "$peft" ] || dotnet build "$repo/src/PeftWorkbench.Cli" -c Release -nologo -v q >/dev/null
    dotnet "$peft" kernel install --jupyter-path "$(dirname "$kernels")" >/dev/null
    log "kernelspec peft-workbench installed in $kernels"
fi

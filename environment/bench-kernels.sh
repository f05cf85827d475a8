#!/usr/bin/env bash
# Start-up and per-notebook times of the notebooks' two kernels, in alternating rounds, with medians and ratios:
# ours (peft-workbench) and .NET Interactive (.net-csharp), both through Jupyter's client and the kernelspecs that
# environment/setup.d/interactive.sh registers. "start" = kernel process start until it answers kernel_info; "cell" =
# a trivial cell; "notebook" = `peft notebooks run --kernel K` of each notebook (smoke profile, with load), per kernel.
# Usage: bash environment/bench-kernels.sh [ROUNDS=3] [NOTEBOOK...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
rounds="${1:-3}"; shift || true
notebooks=("$@"); [ ${#notebooks[@]} -gt 0 ] || notebooks=("$repo"/notebooks/*.ipynb)
peft="$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft.dll"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$rounds" "$peft" "${notebooks[@]}" <<'PY'
import statistics, subprocess, sys, tempfile, time
from jupyter_client.manager import start_new_kernel
rounds, peft, notebooks = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
kernels = {"workbench": "peft-workbench", "dotnet-interactive": ".net-csharp"}
times = {(k, what): [] for k in kernels for what in ["start", "cell"] + notebooks}
for r in range(rounds):
    order = list(kernels) if r % 2 == 0 else list(reversed(kernels))
    for k in order:
        t = time.time()
        km, kc = start_new_kernel(kernel_name=kernels[k], startup_timeout=120)
        times[(k, "start")].append(time.time() - t)
        t = time.time()
        kc.execute_interactive("1 + 1", timeout=60, output_hook=lambda msg: None)
        times[(k, "cell")].append(time.time() - t)
        kc.stop_channels(); km.shutdown_kernel(now=True)
        for nb in notebooks:
            with tempfile.TemporaryDirectory() as out:
                t = time.time()
                subprocess.run(["dotnet", peft, "notebooks", "run", nb, "--kernel", k, "--profile", "smoke", "--out", out],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[(k, nb)].append(time.time() - t)
for what in ["start", "cell"] + notebooks:
    ours, theirs = (statistics.median(times[(k, what)]) for k in kernels)
    label = what if what in ("start", "cell") else "notebook " + what.split("/")[-1]
    print(f"{label:32} workbench {ours:6.2f} s   dotnet-interactive {theirs:6.2f} s   ratio {theirs / ours:4.1f}x   (medians of {rounds})")
PY
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# What each runtime setting (see src/PeftWorkbench/Training/NativeTuning.cs) buys: `peft bench methods` (training steps) under
# the workbench's defaults and with one setting changed at a time, in alternating rounds (a change of load on the
# machine then hits every setting alike). Prints img/s per setting (median over rounds) and the ratio to the defaults.
#   bash environment/bench-settings.sh [--preset mini] [--rounds 3]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
peft="$repo/src/PeftWorkbench.Cli/bin/Release/net10.0/linux-x64/peft"
preset=mini; rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) preset="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--preset NAME] [--rounds N]" >&2; exit 2 ;;
  esac
done
[ -x "$peft" ] || { echo "build first: dotnet build -c Release ($peft missing)" >&2; exit 1; }
methods=lora,rand_h_adapter,vpt_deep,bitfit
# name | environment | extra arguments
settings=(
  "defaults||"
  "MKL: its generic path on AMD|PEFT_MKL=default|"
  "malloc: glibc defaults|PEFT_MALLOC=default|"
  "OpenMP: sleep in barriers (PASSIVE)|OMP_WAIT_POLICY=PASSIVE|"
  "1 torch thread||--threads 1"
)
out="$(mktemp -d)"; trap 'rm -rf "$out"' EXIT
echo "bench settings: preset $preset, $rounds alternating rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
  for i in "${!settings[@]}"; do
    IFS='|' read -r name envs args <<< "${settings[$i]}"
    # shellcheck disable=SC2086
    env $envs "$peft" bench methods --preset "$preset" --methods "$methods" --rounds 1 --steps 10 $args \
      | awk '$2 ~ /^[0-9,]+$/ && $3 ~ /^[0-9]+$/ {print $1, $3}' >> "$out/$i"
    echo -n "." >&2
  done
done
echo >&2
# Median img/s per method and setting; ratio to the defaults (setting 0).
python3 - "$out" "${#settings[@]}" "${settings[@]}" <<'PY'
import sys, statistics, collections
d, n = sys.argv[1], int(sys.argv[2]); names = [s.split('|')[0] for s in sys.argv[3:3 + n]]
runs = []
for i in range(n):
    by = collections.defaultdict(list)
    for line in open(f"{d}/{i}"):
        m, v = line.split(); by[m].append(float(v))
    runs.append({m: statistics.median(v) for m, v in by.items()})
methods = list(runs[0])
print(f"| setting | " + " | ".join(methods) + " | mean ratio |")
print("|---|" + "---|" * (len(methods) + 1))
for name, r in zip(names, runs):
    ratios = [r[m] / runs[0][m] for m in methods]
    print(f"| {name} | " + " | ".join(f"{r[m]:.0f}" for m in methods) + f" | {sum(ratios) / len(ratios):.2f} |")
PY

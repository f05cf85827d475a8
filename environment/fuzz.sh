#!/usr/bin/env bash
# The fuzz suite (issue 17) at a larger scale than CI runs it, then its table: per area and case, how many hostile
# inputs were tried and how many ended clean (a right result, or an error naming the file, key or line, in time), and
# the issue-17 item each case guards. A case whose test fails has no row; dotnet's summary above names it.
#   bash environment/fuzz.sh [SCALE]    (SCALE: times more inputs than CI; default 10)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
scale="${1:-10}"
table="$(mktemp)"
export PEFT_FUZZ_SCALE="$scale" PEFT_FUZZ_TABLE="$table"
status=0
for project in PeftWorkbench.Tests PeftWorkbench.Kernel.Tests; do
    dotnet build "$repo/tests/$project" -c Release -nologo -v q >/dev/null || { echo "build of $project failed"; exit 1; }
    dotnet test "$repo/tests/$project" -c Release --no-build -nologo \
        --filter "FullyQualifiedName~Fuzz|FullyQualifiedName~CliGuard" || status=1
done
echo
echo "fuzz table (scale $scale)"
printf '%-12s %-66s %7s %7s  %s\n' area case tried clean item
sort -s -t$'\t' -k1,1 "$table" | awk -F'\t' '{printf "%-12s %-66s %7d %7d  %s\n", $1, $2, $3, $4, $5; t += $3; c += $4}
    END {printf "%-12s %-66s %7d %7d\n", "total", "", t, c}'
rm -f "$table"
exit $status

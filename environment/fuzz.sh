#!/usr/bin/env bash
# The fuzz suite (issue 17) at a larger scale than CI runs it, then its table: per area and case, how many hostile
# inputs were tried and how many ended clean (a right result, or an error naming the file, key or line, in time), and
# the issue item each case guards (17; 26.N for issue 26), and how the rest ended: crash, hang, silent wrong
# result or injection. A case whose test fails has no row; dotnet's summary above names it.
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
        --filter "FullyQualifiedName~Fuzz|FullyQualifiedName~CliGuard|FullyQualifiedName~KernelspecNetwork" || status=1
done
echo
echo "fuzz table (scale $scale)"
# Columns 6-9 (crash, hang, silent-wrong, injection) come from cases that classify each input; a row of an older case
# has all its non-clean inputs under crash (such a case asserts all clean, and a failing test records no row).
printf '%-10s %-66s %6s %6s %6s %5s %7s %9s  %s\n' area case tried clean crash hang silent injection item
sort -s -t$'\t' -k1,1 "$table" | awk -F'\t' '{printf "%-10s %-66s %6d %6d %6d %5d %7d %9d  %s\n", $1, $2, $3, $4, $6, $7, $8, $9, $5;
        t += $3; c += $4; x += $6; h += $7; s += $8; i += $9}
    END {printf "%-10s %-66s %6d %6d %6d %5d %7d %9d\n", "total", "", t, c, x, h, s, i}'
rm -f "$table"
exit $status

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The array benchmark under glibc's default heap and under the heap setting
# docs/operations.md offers as an option (GLIBC_TUNABLES=glibc.malloc.hugetlb=1:
# the heap madvised for transparent huge pages, so that growing it takes one
# page fault per 2 MiB instead of per 4 KiB). Runs build/tests/bench/array_bench
# alternately under each, RUNS times, and prints every run, one JSON line with
# the medians (cold: a fresh process whose heap grows; warm: the same array
# again in that process) and the ratios, and a summary. Asserts nothing.
#
#   tests/bench/array_heap.sh [RUNS=5] [BUILD=build] [array_bench args...]
set -euo pipefail
RUNS="${1:-5}"
BUILD="${2:-build}"
shift $(($# < 2 ? $# : 2))
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="$ROOT/$BUILD/tests/bench/array_bench"
[ -x "$BIN" ] || { echo "array_heap: $BIN not built" >&2; exit 2; }
THP=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo unknown)
echo "array_heap: transparent huge pages: $THP" >&2
TUNED="glibc.malloc.hugetlb=1"
dc=() dw=() tc=() tw=()
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
for i in $(seq "$RUNS"); do
  d=$(env -u GLIBC_TUNABLES "$BIN" "$@" | grep '^{"bench"')
  t=$(GLIBC_TUNABLES="$TUNED" "$BIN" "$@" | grep '^{"bench"')
  dc+=("$(field array_placements_per_s <<<"$d")") dw+=("$(field warm_array_placements_per_s <<<"$d")")
  tc+=("$(field array_placements_per_s <<<"$t")") tw+=("$(field warm_array_placements_per_s <<<"$t")")
  echo "array_heap: run $i: default heap cold ${dc[-1]}/s warm ${dw[-1]}/s; $TUNED cold ${tc[-1]}/s warm ${tw[-1]}/s" >&2
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
DC=$(median "${dc[@]}") DW=$(median "${dw[@]}") TC=$(median "${tc[@]}") TW=$(median "${tw[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
RC=$(ratio "$TC" "$DC") RW=$(ratio "$TW" "$DW")
echo "{\"bench\":\"array_heap\",\"runs\":$RUNS,\"default_cold\":$DC,\"default_warm\":$DW,\"hugetlb_cold\":$TC,\"hugetlb_warm\":$TW,\"ratio_cold\":$RC,\"ratio_warm\":$RW,\"thp\":\"$THP\"}"
echo "array placements/s, median of $RUNS: default heap cold $DC warm $DW; glibc.malloc.hugetlb=1 cold $TC warm $TW (ratios $RC, $RW)"

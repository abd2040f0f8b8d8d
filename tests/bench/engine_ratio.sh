#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The placement engine now against an earlier commit, in one run. This
# machine's speed drifts over the day (the same binary has given 13,000 and
# 18,000 decisions/s within an hour), so what means something is the ratio of
# the two rates measured side by side: engine_bench of BASE (built once in a
# git worktree under $BENCH_TMP, default /tmp) and of BUILD, alternated
# ROUNDS times on one core (taskset -c 1), each run 10,000 agents and
# DECISIONS decisions.
#
# Prints one JSON line per run, then one with the medians and the median of
# the per-round ratios, then a summary. Building BASE takes minutes the first
# time (ninja -j2, only engine_bench and what it links).
#
#   tests/bench/engine_ratio.sh [BASE=46408db] [ROUNDS=5] [DECISIONS=20000] [BUILD=build]
set -euo pipefail
BASE="${1:-46408db}"
ROUNDS="${2:-5}"
DECISIONS="${3:-20000}"
BUILD="${4:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TMP="${BENCH_TMP:-/tmp}"
commit="$(git -C "$ROOT" rev-parse --short "$BASE")"
tree="$TMP/portolan-engine-base-$commit"
if [[ ! -x "$tree/build/tests/bench/engine_bench" ]]; then
  echo "engine_ratio: building engine_bench at $commit in $tree" >&2
  if [[ ! -d "$tree" ]]; then
    git -C "$ROOT" worktree add --detach -f "$tree" "$commit" >/dev/null 2>&1
  fi
  cmake -S "$tree" -B "$tree/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$tree/build" -j2 engine_bench >/dev/null
fi
base_bin="$tree/build/tests/bench/engine_bench"
new_bin="$ROOT/$BUILD/tests/bench/engine_bench"
[[ -x "$new_bin" ]] || { echo "engine_ratio: no $new_bin (cmake --build $BUILD --target engine_bench)" >&2; exit 2; }

rate() {  # decisions/s of one run of binary $1
  taskset -c 1 "$1" --agents 10000 --decisions "$DECISIONS" |
    sed -n 's/.*"decisions_per_s":\([0-9.]*\).*/\1/p'
}
bases=() news=() ratios=()
for r in $(seq 1 "$ROUNDS"); do
  b="$(rate "$base_bin")"
  n="$(rate "$new_bin")"
  ratio="$(awk -v n="$n" -v b="$b" 'BEGIN { printf "%.2f", n / b }')"
  bases+=("$b") news+=("$n") ratios+=("$ratio")
  printf '{"bench":"engine_ratio","round":%d,"base":"%s","base_per_s":%s,"now_per_s":%s,"ratio":%s}\n' \
    "$r" "$commit" "$b" "$n" "$ratio"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mb="$(median "${bases[@]}")" mn="$(median "${news[@]}")" mr="$(median "${ratios[@]}")"
printf '{"bench":"engine_ratio","base":"%s","rounds":%d,"decisions":%d,"base_median_per_s":%s,"now_median_per_s":%s,"ratio_median":%s}\n' \
  "$commit" "$ROUNDS" "$DECISIONS" "$mb" "$mn" "$mr"
echo "engine_ratio: $ROUNDS alternating rounds, 10000 agents: $commit ${mb} decisions/s, now ${mn} decisions/s (medians); now/$commit ${mr}x (median of per-round ratios)"

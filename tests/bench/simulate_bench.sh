#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Policy what-if at scale and beside a submit stream:
#  1. fills a state directory with JOBS ended jobs through the real SQLite
#     store (tests/bench/populate_store.cc, each with a CN personal dataset of
#     one of DISTINCT subject counts, so jobs differ in what a decision reads),
#     starts the scheduler on it and AGENTS emulated agents (portolan-sim)
#     spread over Lingang, Hong Kong and Singapore;
#  2. times POST /v1/policy:simulate over the whole history (include history,
#     capacity ignore) with a candidate that denies CN data to Singapore,
#     three times;
#  3. runs wrk's durable submit stream (tests/bench/submit.lua) for SECONDS
#     alone, then SECONDS while simulations of the whole state (the active
#     jobs, the submitted ones among them, and the history) run back to back,
#     twice in turn, and prints the mean rates and their ratio (same run, same
#     scheduler).
# Prints one JSON line and a summary; stops what it started.
# SIMULATE_BENCH_CONTROL=1 runs no simulation beside the second and fourth
# windows: the ratio then shows the machine's own drift between windows.
# SIMULATE_THREADS=N passes --simulate-threads N.
#
#   tests/bench/simulate_bench.sh [JOBS=100000] [DISTINCT=20000] [SECONDS=10] [AGENTS=150] [BUILD=build]
set -euo pipefail
JOBS="${1:-100000}"
DISTINCT="${2:-20000}"
SECONDS_RUN="${3:-10}"
AGENTS="${4:-150}"
BUILD="${5:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
if ! command -v wrk >/dev/null; then
  echo "simulate_bench: installing Debian's wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
POP=$(bench_program populate_store)
bench_init simulate

echo "simulate_bench: storing $JOBS ended jobs ($DISTINCT distinct datasets)" >&2
"$POP" --state-dir "$WORK/state" --jobs "$JOBS" --queued-per-mille 0 --datasets "$DISTINCT" >&2
bench_admin_token
bench_scheduler --state-dir "$WORK/state" --tokens "$WORK/tokens.yaml" --rate-limit-rps 0 \
  --simulate-deadline-ms 120000 --simulate-max-jobs 1000000 ${SIMULATE_THREADS:+--simulate-threads "$SIMULATE_THREADS"}
"$BIN/portolan-sim" --scheduler "127.0.0.1:$RPC" --agents "$AGENTS" --seconds 600 \
  --sites lingang-idc-1,hongkong-1,singapore-1 --topology 1x2x8x2 --memory-gib 64 \
  >"$WORK/sim.out" 2>&1 &
PIDS+=("$!")
api() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
for _ in $(seq 1 300); do
  n=$(api "http://127.0.0.1:$REST/v1/agents" | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("agents", [])))')
  [ "$n" -ge "$AGENTS" ] && break
  sleep 0.1
done
[ "$n" -ge "$AGENTS" ] || { echo "simulate_bench: only $n of $AGENTS agents registered" >&2; exit 1; }

# The candidate: the policy in force with a first rule denying CN data to SG.
api "http://127.0.0.1:$REST/v1/policy" | python3 -c '
import json, sys
p = json.load(sys.stdin)
p.pop("version", None)
# Lingang IDC 1 decommissioned, and CN data no longer allowed to Singapore.
gone = "lingang-idc-1"
p["sites"] = [s for s in p["sites"] if s["id"] != gone]
p["links"] = [l for l in p["links"] if gone not in (l["a"], l["b"])]
p["rules"].insert(0, {"id": "no-cn-to-sg", "when": {"origin": ["CN"], "destination": ["SG"]}, "effect": "deny"})
print(json.dumps({"policy": p, "include": ["history"], "capacity": "ignore", "max_changes": 10}))' \
  >"$WORK/history.json"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1])); r["include"] = ["active", "history"]
print(json.dumps(r))' "$WORK/history.json" >"$WORK/both.json"

TIMES=()
for i in 1 2 3; do
  api -X POST --data-binary @"$WORK/history.json" "http://127.0.0.1:$REST/v1/policy:simulate" \
    >"$WORK/sim$i.json"
  TIMES+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["elapsed_ms"])' "$WORK/sim$i.json")")
done
read -r EXAMINED CLASSES MOVED < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["jobs_examined"], r["decision_classes"], r["summary"]["moved"] + r["summary"]["newly_unschedulable"] + r["summary"]["newly_waiting"])' "$WORK/sim3.json")
MEDIAN_MS=$(printf '%s\n' "${TIMES[@]}" | sort -g | sed -n 2p)

# Submits alone, then beside back-to-back simulations of the active jobs and the history.
wrk_rate() {
  PORTOLAN_TOKEN="$TOKEN" WRK_CONNECTIONS=32 wrk -t2 -c32 -d"${SECONDS_RUN}s" --timeout 10s \
    -s "$ROOT/tests/bench/submit.lua" "http://127.0.0.1:$REST" >"$WORK/wrk-$1.out"
  sed -n 's/.*"submits_per_s":\([0-9]*\).*/\1/p' "$WORK/wrk-$1.out"
}
# Alternating, twice each, so that a drift of the machine's speed falls on both.
ALONE=0
BESIDE=0
SIMS=0
for round in 1 2; do
  ALONE=$((ALONE + $(wrk_rate "alone$round")))
  (
    end=$((SECONDS + SECONDS_RUN + 1))
    n=0
    while [ "$SECONDS" -lt "$end" ]; do
      if [ -n "${SIMULATE_BENCH_CONTROL:-}" ]; then sleep 1; continue; fi
      api -X POST --data-binary @"$WORK/both.json" "http://127.0.0.1:$REST/v1/policy:simulate" >/dev/null && n=$((n + 1))
    done
    echo "$n" >"$WORK/simulations"
  ) &
  LOOP=$!
  BESIDE=$((BESIDE + $(wrk_rate "beside$round")))
  wait "$LOOP"
  SIMS=$((SIMS + $(cat "$WORK/simulations")))
done
ALONE=$((ALONE / 2))
BESIDE=$((BESIDE / 2))
RATIO=$(awk -v a="$BESIDE" -v b="$ALONE" 'BEGIN {printf "%.2f", a / b}')
grep "policy simulation" "$WORK/scheduler.log" | tail -3 >&2
echo "{\"bench\":\"simulate\",\"jobs\":$JOBS,\"examined\":$EXAMINED,\"decision_classes\":$CLASSES,\"agents\":$AGENTS,\"history_ms\":[${TIMES[0]},${TIMES[1]},${TIMES[2]}],\"history_ms_median\":$MEDIAN_MS,\"changed\":$MOVED,\"submits_per_s_alone\":$ALONE,\"submits_per_s_beside_simulations\":$BESIDE,\"ratio\":$RATIO,\"simulations_during\":$SIMS}"
echo "simulate_bench: $EXAMINED stored jobs ($CLASSES decision classes, $AGENTS agents) re-decided under a candidate in ${MEDIAN_MS} ms (median of 3; $MOVED changed); submits ${ALONE}/s alone, ${BESIDE}/s beside $SIMS simulations: ratio $RATIO"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end throughput on this machine: starts a scheduler and 4 agents
# (real portolan-agent processes, real hwloc topology, loopback, plain RPC,
# no REST auth) and runs e2e_bench: N trivial jobs (/bin/true, 1 cpu)
# submitted over REST, placed, run and reported back; prints jobs/s as a JSON
# line and a summary, then the CPU the scheduler and the agents used (an
# e2e_cpu JSON line and a summary, on stderr). Stops exactly the processes it
# started.
#
#   tests/bench/e2e.sh [JOBS=2000] [BUILD=build]
# Environment: E2E_AGENTS (default 4), E2E_CLIENTS (submitting threads, 16),
# E2E_AGENT_ARGS (extra agent flags, e.g. "--sandbox none --cgroup none" to
# measure what isolation costs per job).
set -euo pipefail
JOBS="${1:-2000}"
BUILD="${2:-build}"
AGENTS="${E2E_AGENTS:-4}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
BENCH=$(bench_program e2e_bench)
bench_init e2e
chmod 711 "$WORK"  # jobs run under their own uids and must reach the agents' state directories
bench_scheduler --no-auth --state-dir "$WORK/state" --rate-limit-rps 0
SITES=(lingang-idc-1 hongkong-1 singapore-1 frankfurt-1)
for i in $(seq 1 "$AGENTS"); do
  site="${SITES[$(((i - 1) % ${#SITES[@]}))]}"
  uids=(--job-uid-range "$((270000 + i * 1000))-$((270000 + i * 1000 + 999))")
  case "${E2E_AGENT_ARGS:-}" in *--job-uid-range*) uids=() ;; esac
  # shellcheck disable=SC2086 # E2E_AGENT_ARGS is a list of flags
  "$BIN/portolan-agent" --id "e2e-$i" --site "$site" --scheduler "127.0.0.1:$RPC" --insecure \
    --state-dir "$WORK/agent-$i" "${uids[@]}" --stop-jobs-on-exit ${E2E_AGENT_ARGS:-} \
    >"$WORK/agent-$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 1 100); do
  n=$(curl -fsS "http://127.0.0.1:$REST/v1/agents" | grep -o '"connected":true' | wc -l || true)
  [ "$n" -ge "$AGENTS" ] && break
  sleep 0.1
done
[ "$n" -ge "$AGENTS" ] || { echo "e2e: only $n of $AGENTS agents registered" >&2; tail -3 "$WORK"/agent-1.log >&2; exit 1; }
PUS=$(curl -fsS "http://127.0.0.1:$REST/v1/agents" | grep -o '"capacity":{"cpus":[0-9]*' | sed 's/.*://' | awk '{s += $1} END {print s}')
echo "e2e: scheduler and $AGENTS agents up ($PUS PUs in all); submitting $JOBS jobs" >&2
S0=$(cpu_ticks "$SCHED")
A0=0
for p in "${PIDS[@]:1}"; do A0=$((A0 + $(cpu_ticks "$p"))); done
"$BENCH" --server "http://127.0.0.1:$REST" --jobs "$JOBS" --clients "${E2E_CLIENTS:-16}"
# CPU the scheduler and the agent processes used over the run (their jobs'
# processes are not counted; they are the agents' grandchildren).
S1=$(cpu_ticks "$SCHED")
A1=0
for p in "${PIDS[@]:1}"; do A1=$((A1 + $(cpu_ticks "$p"))); done
HZ=$(getconf CLK_TCK)
awk -v s=$((S1 - S0)) -v a=$((A1 - A0)) -v hz="$HZ" -v n="$JOBS" 'BEGIN {
  printf "{\"bench\":\"e2e_cpu\",\"scheduler_cpu_s\":%.2f,\"agents_cpu_s\":%.2f,\"scheduler_cpu_ms_per_job\":%.3f}\n", s / hz, a / hz, 1000 * s / hz / n
  printf "e2e: the scheduler used %.2f s of CPU (%.3f ms a job), the agents %.2f s\n", s / hz, 1000 * s / hz / n, a / hz }' >&2

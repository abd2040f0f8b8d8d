#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Idle agent CPU: starts a scheduler and one agent (real hwloc topology,
# loopback, default heartbeat interval), lets it settle, then reads the
# agent's CPU time (utime + stime from /proc) over SECONDS with no jobs.
# Prints one JSON line and a summary; stops what it started.
#
#   tests/bench/agent_idle.sh [SECONDS=60] [BUILD=build]
set -euo pipefail
SECS="${1:-60}"
BUILD="${2:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init idle
chmod 711 "$WORK"  # the agent's job user must reach its state directory
bench_scheduler --no-auth --state-dir "$WORK/state"
"$BIN/portolan-agent" --id idle-1 --site lingang-idc-1 --scheduler "127.0.0.1:$RPC" --insecure \
  --state-dir "$WORK/agent" >"$WORK/agent.log" 2>&1 &
AGENT=$!
PIDS+=("$AGENT")
sleep 5
grep -q "registered" "$WORK/agent.log" || { tail -3 "$WORK/agent.log" >&2; exit 1; }
HZ=$(getconf CLK_TCK)
T0=$(cpu_ticks "$AGENT")
sleep "$SECS"
T1=$(cpu_ticks "$AGENT")
RSS=$(rss_kib "$AGENT")
PCT=$(awk -v t="$((T1 - T0))" -v hz="$HZ" -v s="$SECS" 'BEGIN {printf "%.3f", t * 100 / hz / s}')
echo "{\"bench\":\"agent_idle\",\"seconds\":$SECS,\"cpu_ticks\":$((T1 - T0)),\"clk_tck\":$HZ,\"cpu_pct\":$PCT,\"rss_kib\":$RSS}"
echo "agent_idle: $((T1 - T0)) ticks (1/$HZ s) of CPU in ${SECS} s idle: ${PCT}% of one core; RSS $RSS KiB"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scheduler at scale with emulated agents: starts a scheduler (no auth,
# loopback; agent RPC plain TCP, or mutual TLS with `tls`), measures its
# resident memory, registers N agents from portolan-sim (each a real RPC
# session with a 2x2x16x2 = 128-PU topology; with TLS each has its own
# certificate from a development CA made here), measures again once all are
# registered and heartbeating, and prints one JSON line and a summary. Stops
# exactly the processes it started.
#
#   tests/bench/sim_scale.sh [AGENTS=10000] [BUILD=build] [plain|tls]
set -euo pipefail
AGENTS="${1:-10000}"
BUILD="${2:-build}"
RPC_MODE="${3:-plain}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init sim
SIM_TLS=()
case "$RPC_MODE" in
  plain) bench_scheduler --no-auth --state-dir "$WORK/state" --rate-limit-rps 0 ;;
  tls)
    "$ROOT/deploy/dev-ca.sh" "$WORK/ca" init >/dev/null
    "$ROOT/deploy/dev-ca.sh" "$WORK/ca" scheduler >/dev/null
    bench_scheduler --no-auth --state-dir "$WORK/state" --rate-limit-rps 0 \
      --tls-cert "$WORK/ca/scheduler.pem" --tls-key "$WORK/ca/scheduler.key" --tls-ca "$WORK/ca/ca.pem"
    SIM_TLS=(--tls-ca "$WORK/ca/ca.pem" --tls-ca-key "$WORK/ca/ca.key")
    ;;
  *) echo "sim_scale: the third argument is plain or tls, not '$RPC_MODE'" >&2; exit 2 ;;
esac
sleep 1
BEFORE=$(rss_kib "$SCHED")
"$BIN/portolan-sim" --scheduler "127.0.0.1:$RPC" --agents "$AGENTS" --seconds 600 "${SIM_TLS[@]}" \
  >"$WORK/sim.out" 2>&1 &
PIDS+=($!)
START=$(date +%s.%N)
REG_S=""
for _ in $(seq 1 1200); do
  sleep 0.5
  n=$(tail -n 1 "$WORK/sim.out" 2>/dev/null | sed -n 's/.*"registered":\([0-9]*\).*/\1/p')
  if [ "${n:-0}" -ge "$AGENTS" ]; then REG_S=$(awk -v a="$(date +%s.%N)" -v b="$START" 'BEGIN {printf "%.1f", a - b}'); break; fi
done
[ -n "$REG_S" ] || { tail -3 "$WORK/sim.out"; tail -5 "$WORK/scheduler.log"; echo "sim_scale: not all agents registered" >&2; exit 1; }
# Steady state: a few heartbeat rounds (5 s interval), then memory and CPU.
sleep 11
AFTER=$(rss_kib "$SCHED")
T0=$(cpu_ticks "$SCHED"); sleep 10; T1=$(cpu_ticks "$SCHED")
HZ=$(getconf CLK_TCK)
CPU=$(awk -v t="$((T1 - T0))" -v hz="$HZ" 'BEGIN {printf "%.1f", t * 100 / hz / 10}')
PER=$(awk -v d="$((AFTER - BEFORE))" -v n="$AGENTS" 'BEGIN {printf "%.2f", d / n}')
printf '{"bench":"sim_scale","rpc":"%s","agents":%d,"register_all_s":%.1f,"rss_before_kib":%d,"rss_after_kib":%d,"kib_per_agent":%s,"scheduler_cpu_pct_steady":%s}\n' \
  "$RPC_MODE" "$AGENTS" "$REG_S" "$BEFORE" "$AFTER" "$PER" "$CPU"
echo "sim_scale: $AGENTS agents ($RPC_MODE RPC) registered in ${REG_S}s; scheduler RSS ${BEFORE} -> ${AFTER} KiB (${PER} KiB per agent); ${CPU}% of one core while they heartbeat every 5 s"

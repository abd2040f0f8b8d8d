#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# High availability on etcd, measured in one run on this machine:
#  1. durable REST submits/s and p99 (wrk, tests/bench/submit.lua) against a
#     scheduler whose state is a 3-member etcd cluster on loopback, and
#     against one on SQLite, one after the other, with the ratio;
#  2. takeover: N active (queued) jobs written into etcd (populate_store),
#     two schedulers on it, kill -9 of the leader, and the time until the
#     standby answers /readyz with 200 (it has loaded all N).
# Prints a JSON line and a summary. Stops exactly the processes it started.
#
#   tests/bench/ha_bench.sh [SECONDS=20] [CONNECTIONS=64] [ACTIVE_JOBS=100000] [BUILD=build]
# Environment: HA_BENCH_PORT (42379): etcd uses it, +10 and +20 (clients)
# and each +1 (peers).
set -euo pipefail
SECONDS_RUN="${1:-20}"
CONNS="${2:-64}"
ACTIVE="${3:-100000}"
BUILD="${4:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
if ! command -v wrk >/dev/null; then
  echo "ha_bench: installing Debian's wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
bench_init ha
POPULATE=$(bench_program populate_store)
BASE="${HA_BENCH_PORT:-42379}"

# --- a 3-member etcd cluster ------------------------------------------------
CLUSTER=""
for i in 0 1 2; do CLUSTER+="${CLUSTER:+,}e$i=http://127.0.0.1:$((BASE + 10 * i + 1))"; done
ENDPOINTS=""
for i in 0 1 2; do
  c=$((BASE + 10 * i))
  p=$((c + 1))
  etcd --name "e$i" --data-dir "$WORK/etcd-$i" --listen-client-urls "http://127.0.0.1:$c" \
    --advertise-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
    --initial-advertise-peer-urls "http://127.0.0.1:$p" --initial-cluster "$CLUSTER" \
    --initial-cluster-state new --initial-cluster-token "ha-bench-$$" >"$WORK/etcd-$i.log" 2>&1 &
  PIDS+=($!)
  ENDPOINTS+="${ENDPOINTS:+,}127.0.0.1:$c"
done
for _ in $(seq 1 200); do
  ETCDCTL_API=3 etcdctl --endpoints "$ENDPOINTS" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
echo "ha_bench: etcd cluster of 3 on $ENDPOINTS ($(etcd --version | head -1))" >&2

bench_admin_token

# run_wrk LABEL: wrk against $REST; sets RATE and P99 from its JSON line.
run_wrk() {
  PORTOLAN_TOKEN="$TOKEN" WRK_CONNECTIONS="$CONNS" wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" \
    --timeout 10s --latency -s "$ROOT/tests/bench/submit.lua" "http://127.0.0.1:$REST" >"$WORK/wrk-$1.out"
  local json
  json=$(grep '^{"bench":"rest_wrk"' "$WORK/wrk-$1.out")
  RATE=$(sed 's/.*"submits_per_s":\([0-9]*\).*/\1/' <<<"$json")
  P99=$(sed 's/.*"p99_ms":\([0-9.]*\).*/\1/' <<<"$json")
  echo "ha_bench: $1: $RATE durable submits/s, p99 $P99 ms ($CONNS connections, ${SECONDS_RUN} s)" >&2
}

# stop_sched: stops the scheduler started last (by pid).
stop_sched() {
  kill "$SCHED" 2>/dev/null || true
  wait "$SCHED" 2>/dev/null || true
  rm -f "$WORK/ports.json"
}

# --- 1. durable submits: etcd, then SQLite -----------------------------------
bench_scheduler --store "etcd://$ENDPOINTS/bench" --tokens "$WORK/tokens.yaml" --rate-limit-rps 0
until curl -sf "http://127.0.0.1:$REST/readyz" >/dev/null; do sleep 0.05; done
run_wrk etcd
ETCD_RATE=$RATE ETCD_P99=$P99
stop_sched
bench_scheduler --state-dir "$WORK/state" --tokens "$WORK/tokens.yaml" --rate-limit-rps 0
run_wrk sqlite
SQLITE_RATE=$RATE SQLITE_P99=$P99
stop_sched

# --- 2. takeover with ACTIVE active jobs --------------------------------------
echo "ha_bench: writing $ACTIVE queued jobs into etcd (prefix takeover)" >&2
"$POPULATE" --store "etcd://$ENDPOINTS/takeover" --jobs "$ACTIVE" --queued-per-mille 1000 \
  --threads 64 >"$WORK/populate.json"
start_member() {  # n: a scheduler on the takeover prefix; sets M_PID[n], M_REST[n]
  local n="$1"
  "$BIN/portolan-scheduler" --insecure --rest-addr 127.0.0.1:0 --rpc-addr 127.0.0.1:0 \
    --policy "$ROOT/deploy/policy/default.yaml" --tokens "$WORK/tokens.yaml" \
    --store "etcd://$ENDPOINTS/takeover" --member-id "m$n" --leader-ttl-ms 2000 \
    --ports-file "$WORK/m$n.json" >"$WORK/m$n.log" 2>&1 &
  M_PID[n]=$!
  PIDS+=("${M_PID[n]}")
  until [ -f "$WORK/m$n.json" ]; do sleep 0.02; done
  M_REST[n]=$(sed 's/.*"rest": \([0-9]*\).*/\1/' "$WORK/m$n.json")
}
declare -a M_PID M_REST
start_member 1
until curl -sf "http://127.0.0.1:${M_REST[1]}/readyz" >/dev/null; do sleep 0.05; done
FIRST_LOAD=$(sed -n 's/.*ready as leader.*(recovered in \(.*\))/\1/p' "$WORK/m1.log" | tail -1)
start_member 2
sleep 1
T0=$(date +%s.%N)
kill -9 "${M_PID[1]}"
until curl -sf "http://127.0.0.1:${M_REST[2]}/readyz" >/dev/null; do sleep 0.02; done
T1=$(date +%s.%N)
TAKEOVER=$(echo "$T1 - $T0" | bc)
RECOVERED=$(sed -n 's/.*ready as leader.*(recovered in \(.*\))/\1/p' "$WORK/m2.log" | tail -1)
HELD=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:${M_REST[2]}/metrics" |
  awk '/^portolan_jobs\{/ {s += $2} END {printf "%d", s}')

RATIO=$(echo "scale=2; $ETCD_RATE / $SQLITE_RATE" | bc)
echo "{\"bench\":\"ha\",\"etcd_members\":3,\"connections\":$CONNS,\"seconds\":$SECONDS_RUN,\"etcd_submits_per_s\":$ETCD_RATE,\"etcd_p99_ms\":$ETCD_P99,\"sqlite_submits_per_s\":$SQLITE_RATE,\"sqlite_p99_ms\":$SQLITE_P99,\"etcd_over_sqlite\":$RATIO,\"active_jobs\":$ACTIVE,\"jobs_held_after_takeover\":$HELD,\"takeover_s\":$TAKEOVER,\"lease_s\":2,\"load_after_takeover\":\"$RECOVERED\",\"first_load\":\"$FIRST_LOAD\"}"
echo "ha_bench: durable submits/s: etcd (3 members) $ETCD_RATE (p99 $ETCD_P99 ms), SQLite $SQLITE_RATE (p99 $SQLITE_P99 ms): etcd/SQLite = $RATIO"
echo "ha_bench: kill -9 of the leader with $ACTIVE active jobs in etcd: the standby ready after $TAKEOVER s (lease 2 s; state loaded in $RECOVERED), holding $HELD jobs"

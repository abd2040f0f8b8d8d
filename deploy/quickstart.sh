#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Portolan quickstart: installs missing packages, builds if needed, starts a
# scheduler and five agents on loopback (Lingang IDC, Hongqiao, Lingang
# offshore, Hong Kong, Singapore; each an emulated data-centre server),
# submits the sample jobs in deploy/examples/jobs through the CLI, prints
# where each ran, and leaves the system running. Agents authenticate with
# certificates from a development CA (deploy/dev-ca.sh, in .quickstart/pki)
# and REST is HTTPS.
#
#   deploy/quickstart.sh          start (restarts a previous quickstart)
#   deploy/quickstart.sh --ha     the same with high availability: a 3-member
#                                 etcd cluster on loopback (client ports 2379,
#                                 22379, 32379) and two schedulers (REST 7080
#                                 and 7090, RPC 7081 and 7091) sharing it, one
#                                 leading; the agents and the CLI know both
#   deploy/quickstart.sh --stop   stop what the quickstart started
#
# Environment: PORTOLAN_REST_PORT (7080), PORTOLAN_RPC_PORT (7081); with --ha
# the second scheduler uses each plus 10.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RUN="$ROOT/.quickstart"
BIN="$ROOT/build/bin"
REST_PORT="${PORTOLAN_REST_PORT:-7080}"
RPC_PORT="${PORTOLAN_RPC_PORT:-7081}"

stop_all() {
  local stopped=0
  shopt -s nullglob
  # Agents first, then schedulers (which resign their leadership in etcd),
  # then etcd.
  for pidfile in "$RUN"/agent-*.pid "$RUN"/scheduler*.pid "$RUN"/etcd-*.pid "$RUN"/*.pid; do
    [ -f "$pidfile" ] || continue
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
  done
  echo "quickstart: stopped $stopped process(es)"
}

HA=0
if [ "${1:-}" = "--stop" ]; then
  stop_all
  exit 0
elif [ "${1:-}" = "--ha" ]; then
  HA=1
elif [ -n "${1:-}" ]; then
  echo "usage: deploy/quickstart.sh [--ha | --stop]" >&2
  exit 2
fi
REST_PORT2=$((REST_PORT + 10))
RPC_PORT2=$((RPC_PORT + 10))
ETCD_CLIENT_PORTS=(2379 22379 32379)
ETCD_PEER_PORTS=(2380 22380 32380)

bash "$ROOT/deploy/install-deps.sh"
if [ ! -x "$BIN/portolan-scheduler" ] || [ ! -x "$BIN/portolan-agent" ] || [ ! -x "$BIN/portolan" ] ||
   [ -n "$(find "$ROOT/api" "$ROOT/scheduler" "$ROOT/agent" "$ROOT/policy" "$ROOT/include" -newer "$BIN/portolan-scheduler" -type f 2>/dev/null | head -1)" ]; then
  echo "quickstart: building into build/ (first time takes a few minutes)"
  cmake -S "$ROOT" -B "$ROOT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build" -j 2 --target portolan-scheduler portolan-agent portolan
fi

mkdir -p "$RUN"
stop_all >/dev/null
rm -rf "$RUN/state" "$RUN"/agent-* "$RUN"/etcd-* "$RUN"/*.log

PORTS=("$REST_PORT" "$RPC_PORT")
[ "$HA" -eq 1 ] && PORTS+=("$REST_PORT2" "$RPC_PORT2" "${ETCD_CLIENT_PORTS[@]}" "${ETCD_PEER_PORTS[@]}")
for port in "${PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "quickstart: port $port on 127.0.0.1 is in use; set PORTOLAN_REST_PORT / PORTOLAN_RPC_PORT" >&2
    exit 1
  fi
done

# An admin token for this demo: only its SHA-256 goes into the tokens file.
TOKEN="ptk_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$TOKEN" >"$RUN/admin.token"
chmod 600 "$RUN/admin.token"
printf 'tokens:\n  - {name: quickstart-admin, role: admin, sha256: %s}\n' \
  "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$RUN/tokens.yaml"
chmod 600 "$RUN/tokens.yaml"
export PORTOLAN_TOKEN="$TOKEN"

# A development CA (kept across runs) with certificates for the scheduler and
# each agent: mutual TLS on the agent RPC, HTTPS on REST.
PKI="$RUN/pki"
bash "$ROOT/deploy/dev-ca.sh" "$PKI" init >/dev/null
bash "$ROOT/deploy/dev-ca.sh" "$PKI" scheduler >/dev/null
export PORTOLAN_CA="$PKI/ca.pem"

SCHEDULER_FLAGS=(--tokens "$RUN/tokens.yaml"
  --tls-cert "$PKI/scheduler.pem" --tls-key "$PKI/scheduler.key" --tls-ca "$PKI/ca.pem"
  --https-cert "$PKI/scheduler.pem" --https-key "$PKI/scheduler.key"
  --policy "$ROOT/deploy/policy/default.yaml" --heartbeat-interval-ms 2000 --agent-ttl-ms 10000)

ready() {  # url: true when that scheduler answers /readyz with 200 (the leader)
  curl -sf --cacert "$PORTOLAN_CA" "$1/readyz" >/dev/null 2>&1
}

if [ "$HA" -eq 0 ]; then
  "$BIN/portolan-scheduler" --rest-addr "127.0.0.1:$REST_PORT" --rpc-addr "127.0.0.1:$RPC_PORT" \
    --state-dir "$RUN/state" "${SCHEDULER_FLAGS[@]}" >"$RUN/scheduler.log" 2>&1 &
  echo $! >"$RUN/scheduler.pid"
  export PORTOLAN_SERVER="https://127.0.0.1:$REST_PORT"
  SCHEDULER_RPC="127.0.0.1:$RPC_PORT"
  for _ in $(seq 1 100); do ready "$PORTOLAN_SERVER" && break; sleep 0.1; done
  ready "$PORTOLAN_SERVER" || { echo "quickstart: scheduler did not become ready; see $RUN/scheduler.log" >&2; exit 1; }
  echo "quickstart: scheduler ready on $PORTOLAN_SERVER (agent RPC $SCHEDULER_RPC, mutual TLS)"
else
  # Three etcd members on loopback (Debian's etcd-server), one data directory each.
  cluster=""
  for i in 0 1 2; do
    cluster+="${cluster:+,}etcd-$((i + 1))=http://127.0.0.1:${ETCD_PEER_PORTS[$i]}"
  done
  for i in 0 1 2; do
    n=$((i + 1))
    etcd --name "etcd-$n" --data-dir "$RUN/etcd-$n" \
      --listen-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[$i]}" \
      --advertise-client-urls "http://127.0.0.1:${ETCD_CLIENT_PORTS[$i]}" \
      --listen-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[$i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_PEER_PORTS[$i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "portolan-quickstart" \
      --auto-compaction-mode periodic --auto-compaction-retention 1h >"$RUN/etcd-$n.log" 2>&1 &
    echo $! >"$RUN/etcd-$n.pid"
  done
  STORE="etcd://127.0.0.1:${ETCD_CLIENT_PORTS[0]},127.0.0.1:${ETCD_CLIENT_PORTS[1]},127.0.0.1:${ETCD_CLIENT_PORTS[2]}/portolan"
  for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:${ETCD_CLIENT_PORTS[0]}" endpoint health >/dev/null 2>&1 && break
    sleep 0.1
  done
  echo "quickstart: etcd cluster of 3 on 127.0.0.1:${ETCD_CLIENT_PORTS[0]},${ETCD_CLIENT_PORTS[1]},${ETCD_CLIENT_PORTS[2]}"
  n=1
  for ports in "$REST_PORT:$RPC_PORT" "$REST_PORT2:$RPC_PORT2"; do
    "$BIN/portolan-scheduler" --rest-addr "127.0.0.1:${ports%%:*}" --rpc-addr "127.0.0.1:${ports##*:}" \
      --store "$STORE" --member-id "scheduler-$n" "${SCHEDULER_FLAGS[@]}" \
      >"$RUN/scheduler-$n.log" 2>&1 &
    echo $! >"$RUN/scheduler-$n.pid"
    n=$((n + 1))
  done
  # The CLI and the agents are given both; they find the leader.
  export PORTOLAN_SERVER="https://127.0.0.1:$REST_PORT,https://127.0.0.1:$REST_PORT2"
  SCHEDULER_RPC="127.0.0.1:$RPC_PORT,127.0.0.1:$RPC_PORT2"
  up=0
  for _ in $(seq 1 100); do
    if ready "https://127.0.0.1:$REST_PORT" || ready "https://127.0.0.1:$REST_PORT2"; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" -eq 1 ] || { echo "quickstart: no scheduler became leader; see $RUN/scheduler-*.log" >&2; exit 1; }
  echo "quickstart: schedulers on https://127.0.0.1:$REST_PORT and :$REST_PORT2 (agent RPC $SCHEDULER_RPC), one leading:"
  "$BIN/portolan" cluster
fi
echo

AGENT_N=0
start_agent() {  # id site synthetic-topology label...
  local id="$1" site="$2" topo="$3"
  shift 3
  # Each agent on this one machine runs its jobs under uids of its own.
  # --stop-jobs-on-exit: `--stop` ends the jobs too (an agent's jobs otherwise
  # outlive it, for the next agent process to re-adopt).
  local uids="$((200000 + AGENT_N * 10000))-$((200000 + AGENT_N * 10000 + 9999))"
  AGENT_N=$((AGENT_N + 1))
  local labels=()
  for l in "$@"; do labels+=(--label "$l"); done
  bash "$ROOT/deploy/dev-ca.sh" "$PKI" agent "$id" "$site" >/dev/null
  # The site's datasets (docs/datasets.md): registered paths are relative to
  # .quickstart/data/<site>/; the data endpoint serves them to agents of
  # other sites under the scheduler's transfer grants.
  mkdir -p "$RUN/data/$site"
  "$BIN/portolan-agent" --id "$id" --site "$site" --scheduler "$SCHEDULER_RPC" \
    --tls-cert "$PKI/agent-$id.pem" --tls-key "$PKI/agent-$id.key" --tls-ca "$PKI/ca.pem" \
    --state-dir "$RUN/agent-$id" --topology-synthetic "$topo" --job-uid-range "$uids" "${labels[@]}" \
    --data-dir "$RUN/data/$site" --data-listen 127.0.0.1:0 \
    --stop-jobs-on-exit >"$RUN/agent-$id.log" 2>&1 &
  echo $! >"$RUN/agent-$id.pid"
}
# A small sample of the docs' reads-2026q3 (docs/datasets.md), where it lives.
mkdir -p "$RUN/data/lingang-idc-1/reads/2026q3"
[ -f "$RUN/data/lingang-idc-1/reads/2026q3/part-1" ] ||
  head -c 4194304 /dev/urandom >"$RUN/data/lingang-idc-1/reads/2026q3/part-1"
# Realistic servers: dual-socket 2x24-core SMT (Lingang IDC), dual-socket
# 2x32-core (Hongqiao), single-socket 32-core with 2 NUMA nodes (offshore).
start_agent lg1-node-01 lingang-idc-1 "pack:2 numa:2(memory=192GiB) l3:1 core:12 pu:2" zone=lingang
start_agent hq1-node-01 hongqiao-1 "pack:2 numa:1(memory=256GiB) l3:1 core:32 pu:2" zone=shanghai
start_agent lgo-node-01 lingang-offshore-1 "pack:1 numa:2(memory=128GiB) l3:1 core:16 pu:2" zone=lingang-offshore
start_agent hk1-node-01 hongkong-1 "pack:1 numa:1(memory=128GiB) l3:1 core:16 pu:2" zone=hongkong
start_agent sg1-node-01 singapore-1 "pack:1 numa:1(memory=128GiB) l3:1 core:16 pu:2" zone=singapore

for _ in $(seq 1 100); do
  n=$("$BIN/portolan" -o json agents | grep -c '"connected": true' || true)
  [ "$n" -ge 5 ] && break
  sleep 0.1
done
"$BIN/portolan" agents
echo

declare -a ids names sites
for f in "$ROOT"/deploy/examples/jobs/*.yaml; do
  out=$("$BIN/portolan" -o json submit "$f")
  id=$(echo "$out" | sed -n 's/^ *"id": "\(job-[0-9a-f]*\)".*/\1/p' | head -1)
  site=$(sed -n 's/^ *sites: \[\([a-z0-9-]*\).*/\1/p' "$f" | head -1)
  [ -n "$site" ] || site=$(sed -n 's/^# expect: \([a-z0-9-]*\).*/\1/p' "$f" | head -1)
  ids+=("$id"); names+=("$(basename "$f" .yaml)"); sites+=("$site")
  echo "submitted $(basename "$f") as $id (expected at $site)"
done
echo

# While the NUMA job runs, draw the machine it runs on.
for i in "${!ids[@]}"; do
  if [ "${names[$i]}" = numa-single-sim ]; then
    for _ in $(seq 1 100); do
      "$BIN/portolan" -o json job "${ids[$i]}" | grep -q '"state": "running"' && break
      sleep 0.1
    done
    echo "=== lg1-node-01 while ${ids[$i]} runs: portolan agent lg1-node-01"
    "$BIN/portolan" agent lg1-node-01
    echo
  fi
done

failed=0
printf "%-26s %-22s %-20s %-20s %-10s\n" SAMPLE JOB "EXPECTED SITE" "RAN ON" STATE
for i in "${!ids[@]}"; do
  "$BIN/portolan" wait "${ids[$i]}" --timeout-s 60 >/dev/null || true
  job=$("$BIN/portolan" -o json job "${ids[$i]}")
  state=$(echo "$job" | sed -n 's/^ *"state": "\([a-z_]*\)".*/\1/p' | tail -1)
  ran=$(echo "$job" | sed -n 's/^ *"site": "\([a-z0-9-]*\)".*/\1/p' | head -1)
  printf "%-26s %-22s %-20s %-20s %-10s\n" "${names[$i]}" "${ids[$i]}" "${sites[$i]}" "${ran:--}" "$state"
  if [ "$state" != "succeeded" ] || [ "$ran" != "${sites[$i]}" ]; then failed=1; fi
done
echo
echo "Output of ${ids[0]}:"
"$BIN/portolan" logs "${ids[0]}"
for i in "${!ids[@]}"; do
  case "${names[$i]}" in
    residency-*|gravity-*)
      echo
      echo "=== Why ${names[$i]} ran at ${sites[$i]}: portolan explain ${ids[$i]}"
      "$BIN/portolan" explain "${ids[$i]}"
      ;;
    numa-single-*)
      echo
      echo "=== ${names[$i]}: one NUMA node of an emulated two-socket server: portolan job ${ids[$i]}"
      "$BIN/portolan" job "${ids[$i]}"
      echo "--- its output:"
      "$BIN/portolan" logs "${ids[$i]}"
      ;;
  esac
done
echo
if [ "$failed" -ne 0 ]; then
  echo "quickstart: a sample job did not succeed on its site; logs are in $RUN/" >&2
  exit 1
fi
cat <<MSG
quickstart: all sample jobs succeeded on the sites expected.
The scheduler(s) and five agents keep running (logs in .quickstart/). Try:
  export PORTOLAN_SERVER=$PORTOLAN_SERVER PORTOLAN_CA=$PORTOLAN_CA
  export PORTOLAN_TOKEN=\$(cat .quickstart/admin.token)     # admin; see docs/security.md
  build/bin/portolan jobs
  build/bin/portolan cluster                               # with --ha: kill -9 the leader, run it again
  build/bin/portolan submit --name hi --cpus 1 --memory-mb 64 --wait -- /bin/echo hello
  curl -sL --cacert \$PORTOLAN_CA -H "Authorization: Bearer \$PORTOLAN_TOKEN" -H "Content-Type: application/json" -X POST https://127.0.0.1:$REST_PORT/v1/jobs -d '{"name":"hi","command":["/bin/echo","hello"],"resources":{"cpus":1,"memory_mb":64}}'
Stop everything with: deploy/quickstart.sh --stop
MSG

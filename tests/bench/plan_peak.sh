#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bounded work per request (issue 15): the scheduler's memory peak and the
# plan latency under 16 concurrent maximal POST /v1/plan requests (64
# datasets, 64 placement sites, 64 KiB of environment, 256 KiB of command:
# the contract's caps), first on an empty scheduler, then again after
# JOBS (default 20000) queued jobs were submitted, so the two latencies show
# whether a plan's cost grows with the state the scheduler holds. Prints
# figures; stops exactly the processes it started.
#
#   tests/bench/plan_peak.sh [ROUNDS=10] [JOBS=20000] [BUILD=build]
set -euo pipefail
ROUNDS="${1:-10}"
JOBS="${2:-20000}"
BUILD="${3:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init plan-peak
bench_scheduler --state-dir "$WORK/state" --no-auth --rate-limit-rps 0

python3 - "$WORK/plan.json" <<'EOF'
import json, sys
sites = ["london-1", "frankfurt-1", "tokyo-1", "singapore-1", "hongkong-1"]
job = {
    "tenant": "bench",
    "command": ["/bin/echo"] + ["x" * 4000] * 64,
    "env": {f"V{i}": "y" * 1000 for i in range(60)},
    "resources": {"cpus": 1, "memory_mb": 16},
    "datasets": [{"id": f"d{i}", "origin": "CN", "location": "lingang-idc-1", "size_gb": 10,
                  "categories": ["personal"], "subjects": 1000} for i in range(64)],
    "placement": {"sites": [sites[i % 5] for i in range(5)],
                  "max_rtt_ms": {f"lingang-idc-{1 + i % 2}": 500 for i in range(2)}},
}
open(sys.argv[1], "w").write(json.dumps(job))
EOF
echo "plan_peak: body $(wc -c <"$WORK/plan.json") bytes; scheduler pid $SCHED at 127.0.0.1:$REST" >&2

hwm() { awk '/VmHWM/ {print $2}' "/proc/$SCHED/status"; }
# round: 16 concurrent plans; prints the slowest one's seconds.
round() {
  local i
  for i in $(seq 16); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H 'Content-Type: application/json' \
      --data-binary @"$WORK/plan.json" "http://127.0.0.1:$REST/v1/plan" &
  done | sort -k2 -n | tail -1
  wait
}
measure() {
  local label=$1 worst=0 r code t
  for r in $(seq "$ROUNDS"); do
    read -r code t < <(round)
    [ "$code" = 200 ] || { echo "plan_peak: a plan answered $code" >&2; exit 1; }
    worst=$(awk -v a="$worst" -v b="$t" 'BEGIN {print (b > a) ? b : a}')
  done
  echo "$label: slowest of $((ROUNDS * 16)) plans ${worst} s; RSS $(rss_kib "$SCHED") KiB, peak $(hwm) KiB"
}

RSS0=$(rss_kib "$SCHED")
echo "idle: RSS $RSS0 KiB"
measure "empty scheduler"
echo "submitting $JOBS queued jobs" >&2
python3 - "$REST" "$JOBS" <<'EOF'
import json, sys, urllib.request
port, n = sys.argv[1], int(sys.argv[2])
body = json.dumps({"tenant": "bench", "command": ["/bin/true"], "resources": {"cpus": 1, "memory_mb": 16},
                   "placement": {"sites": ["london-1"]}}).encode()
from concurrent.futures import ThreadPoolExecutor
def submit(_):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", data=body,
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req).status
with ThreadPoolExecutor(16) as pool:
    codes = list(pool.map(submit, range(n)))
assert all(c == 201 for c in codes), set(codes)
EOF
measure "with $JOBS queued jobs"

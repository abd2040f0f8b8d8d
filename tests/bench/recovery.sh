#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Restart time with a large history: fills a state directory with N jobs
# through the real store (tests/bench/populate_store.cc: 99 % finished, 1 %
# queued), then starts the scheduler on it and measures the time from exec
# until it is ready (it writes its ports file only once recovered and
# listening; /readyz answers 200 then), and its resident memory at that
# point. Prints one JSON line and a summary; stops what it started.
#
#   tests/bench/recovery.sh [JOBS=1000000] [BUILD=build]
# Environment: RECOVERY_KEEP=DIR reuses (or fills once) a state directory.
set -euo pipefail
JOBS="${1:-1000000}"
BUILD="${2:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
POP=$(bench_program populate_store)
bench_init recovery
STATE="${RECOVERY_KEEP:-$WORK/state}"

if [ ! -f "$STATE/portolan.db" ]; then
  echo "recovery: storing $JOBS jobs in $STATE" >&2
  "$POP" --state-dir "$STATE" --jobs "$JOBS" >&2
fi
DB_MIB=$(du -m "$STATE/portolan.db" | cut -f1)
sync
T0=$(date +%s.%N)
bench_scheduler --no-auth --state-dir "$STATE"
T1=$(date +%s.%N)
READY_S=$(awk -v a="$T1" -v b="$T0" 'BEGIN {printf "%.2f", a - b}')
curl -fsS "http://127.0.0.1:$REST/readyz" >/dev/null
RSS=$(rss_kib "$SCHED")
LOADED=$(grep -o "recovered [0-9]* jobs.*reading the store)" "$WORK/scheduler.log" | head -1)
# How long one scrape of /metrics takes at this size (it holds the core lock).
S0=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$REST/metrics" >/dev/null
S1=$(date +%s.%N)
SCRAPE_MS=$(awk -v a="$S1" -v b="$S0" 'BEGIN {printf "%.0f", (a - b) * 1000}')
echo "{\"bench\":\"recovery\",\"jobs\":$JOBS,\"db_mib\":$DB_MIB,\"ready_s\":$READY_S,\"rss_kib\":$RSS,\"metrics_scrape_ms\":$SCRAPE_MS}"
echo "recovery: $LOADED; ready ${READY_S}s after start with a ${DB_MIB} MiB database; RSS $((RSS / 1024)) MiB; one /metrics scrape ${SCRAPE_MS} ms"

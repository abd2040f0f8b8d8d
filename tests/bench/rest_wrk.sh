#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Durable REST submits under load with wrk (Debian's `wrk`, installed if
# missing): starts a scheduler on loopback with authentication on and the
# rate limit off, makes an admin token, and runs wrk with
# tests/bench/submit.lua (each request a job submit; 201 = committed to
# SQLite with synchronous=FULL). Then, in the same run, the same wrk load
# against tests/bench/bare_listener: the same HTTP server stack and token
# check answering 201 without any work; the ratio of the two is the share
# of the stack's own ceiling that durable submits keep. Prints wrk's
# report, JSON lines and a summary. Stops exactly the processes it started.
#
#   tests/bench/rest_wrk.sh [SECONDS=60] [CONNECTIONS=64] [THREADS=2] [BUILD=build]
set -euo pipefail
SECONDS_RUN="${1:-60}"
CONNS="${2:-64}"
THREADS="${3:-2}"
BUILD="${4:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
if ! command -v wrk >/dev/null; then
  echo "rest_wrk: installing Debian's wrk" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
bench_init wrk

bench_admin_token
bench_scheduler --state-dir "$WORK/state" --tokens "$WORK/tokens.yaml" --rate-limit-rps 0 ${REST_WRK_ARGS:-}
echo "rest_wrk: wrk -t$THREADS -c$CONNS -d${SECONDS_RUN}s against the scheduler at 127.0.0.1:$REST (pid $SCHED)" >&2
TICKS0=$(cpu_ticks "$SCHED")
PORTOLAN_TOKEN="$TOKEN" WRK_CONNECTIONS="$CONNS" wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" \
  --timeout 10s --latency -s "$ROOT/tests/bench/submit.lua" "http://127.0.0.1:$REST" >"$WORK/wrk.out"
TICKS1=$(cpu_ticks "$SCHED")
grep -v '^{"bench"' "$WORK/wrk.out"  # wrk's report; the JSON line follows, with the scheduler's counts
JSON=$(grep '^{"bench":"rest_wrk"' "$WORK/wrk.out")
# Cross-check against the scheduler itself: the jobs it holds must be at least the 201s.
curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$REST/metrics" >"$WORK/metrics.txt"
STORED=$(awk '/^portolan_submits_total/ {s += $2} END {printf "%d", s}' "$WORK/metrics.txt")
# The server's CPU time (user + system, all threads) per answered request:
# what each one costs, whatever the machine's speed left idle.
cpu_us() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.0f", (n > 0 ? t * 1e6 / hz / n : 0)}'; }
ack() { sed 's/.*"acknowledged":\([0-9]*\).*/\1/' <<<"$1"; }
ACK=$(ack "$JSON")
RSS=$(rss_kib "$SCHED")
# The store's group commits (fsync included), from the scheduler's histogram:
# how many, and how many took over 100 and 250 ms (a submit waits for its
# commit, so these are where the latency tail comes from, if anywhere).
COMMITS=$(awk '/^portolan_store_commit_duration_seconds_count/ {print $2}' "$WORK/metrics.txt")
le() { awk -v le="$1" '$1 == "portolan_store_commit_duration_seconds_bucket{le=\"" le "\"}" {print $2}' "$WORK/metrics.txt"; }
OVER100=$((COMMITS - $(le 0.1)))
OVER250=$((COMMITS - $(le 0.25)))
CPU_US=$(cpu_us $((TICKS1 - TICKS0)) "$ACK")
echo "${JSON%\}},\"server_cpu_us_per_request\":$CPU_US,\"scheduler_submits_total\":$STORED,\"scheduler_rss_kib\":$RSS,\"store_commits\":$COMMITS,\"commits_over_100ms\":$OVER100,\"commits_over_250ms\":$OVER250}"
if [ "$STORED" -lt "$ACK" ]; then
  echo "rest_wrk: the scheduler counted $STORED submits but wrk saw $ACK acknowledged" >&2
  exit 1
fi
# The same load against the bare stack, with the scheduler stopped first.
kill "$SCHED"
wait "$SCHED" 2>/dev/null || true
BARE=$(bench_program bare_listener)
"$BARE" --tokens "$WORK/tokens.yaml" --ports-file "$WORK/bare.json" 2>"$WORK/bare.log" &
BARE_PID=$!
PIDS+=("$BARE_PID")
for _ in $(seq 1 100); do [ -s "$WORK/bare.json" ] && break; sleep 0.05; done
BARE_PORT=$(sed 's/.*"rest": \([0-9]*\).*/\1/' "$WORK/bare.json")
TICKS0=$(cpu_ticks "$BARE_PID")
PORTOLAN_TOKEN="$TOKEN" WRK_CONNECTIONS="$CONNS" wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" \
  --timeout 10s --latency -s "$ROOT/tests/bench/submit.lua" "http://127.0.0.1:$BARE_PORT" >"$WORK/bare.out"
TICKS1=$(cpu_ticks "$BARE_PID")
BARE_JSON=$(grep '^{"bench":"rest_wrk"' "$WORK/bare.out" | sed 's/"bench":"rest_wrk"/"bench":"rest_wrk_bare"/')
BARE_CPU_US=$(cpu_us $((TICKS1 - TICKS0)) "$(ack "$BARE_JSON")")
BARE_JSON="${BARE_JSON%\}},\"server_cpu_us_per_request\":$BARE_CPU_US}"
echo "$BARE_JSON"
rate() { sed 's/.*"submits_per_s":\([0-9]*\).*/\1/' <<<"$1"; }
RATIO=$(awk -v a="$(rate "$JSON")" -v b="$(rate "$BARE_JSON")" 'BEGIN {printf "%.2f", a / b}')
echo "{\"bench\":\"rest_wrk_ratio\",\"durable_submits_per_s\":$(rate "$JSON"),\"bare_posts_per_s\":$(rate "$BARE_JSON"),\"ratio\":$RATIO,\"cpu_us_per_submit\":$CPU_US,\"cpu_us_per_bare_post\":$BARE_CPU_US}"
sed 's/.*"submits_per_s":\([0-9]*\),"p50_ms":\([0-9.]*\),"p90_ms":[0-9.]*,"p99_ms":\([0-9.]*\).*/rest_wrk: \1 durable submits\/s, p50 \2 ms, p99 \3 ms/' <<<"$JSON"
sed 's/.*"submits_per_s":\([0-9]*\),"p50_ms":\([0-9.]*\),"p90_ms":[0-9.]*,"p99_ms":\([0-9.]*\).*/rest_wrk: the bare stack answered \1 POSTs\/s, p50 \2 ms, p99 \3 ms/' <<<"$BARE_JSON"
echo "rest_wrk: durable submits are $RATIO of the bare stack's rate, same run"
echo "rest_wrk: server CPU time per request: $CPU_US us per durable submit, $BARE_CPU_US us per bare POST"
echo "rest_wrk: $CONNS connections, ${SECONDS_RUN} s; the scheduler holds $STORED submitted jobs, RSS $RSS KiB; $COMMITS store commits, $OVER100 over 100 ms, $OVER250 over 250 ms"

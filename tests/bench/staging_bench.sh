#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Staging throughput on loopback against the same machine's TLS limits, in one
# run (docs/datasets.md, "Benchmark"): staging_bench (a Portolan pull under a
# grant vs. a plain TLS copy of the same file, same certificates), then
# `openssl s_time` fetching a file of the same size from `openssl s_server
# -WWW` for 5 s. Prints one JSON line and a summary.
#
#   tests/bench/staging_bench.sh [MIB=256] [RUNS=3]     (BUILD=build by default)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${BUILD:-build}"
MIB="${1:-256}"
RUNS="${2:-3}"
# shellcheck source=tests/bench/lib.sh
. "$ROOT/tests/bench/lib.sh"
bench_init staging

ours="$("$ROOT/$BUILD/tests/bench/staging_bench" --mib "$MIB" --runs "$RUNS" | grep "^{\"bench\"")"
pull="$(sed -n 's/.*"pull_mb_s":\([0-9.]*\).*/\1/p' <<<"$ours")"

# openssl's own server and client, ECDSA P-256 like the agents' certificates.
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem \
  -out cert.pem -days 1 -subj /CN=staging-bench 2>/dev/null
head -c "$((MIB * 1024 * 1024))" /dev/urandom >data.bin
openssl s_server -WWW -accept 127.0.0.1:0 -cert cert.pem -key key.pem >s_server.log 2>&1 &
PIDS+=("$!")
port=""
for _ in $(seq 50); do
  port="$(sed -n 's/^ACCEPT .*:\([0-9][0-9]*\)$/\1/p' s_server.log)"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "openssl s_server did not start:" >&2; cat s_server.log >&2; exit 1; }
start="$(date +%s.%N)"
openssl s_time -connect "127.0.0.1:$port" -www /data.bin -time 5 -new >s_time.log 2>&1
end="$(date +%s.%N)"
bytes="$(sed -n 's/.*bytes read \([0-9]*\)$/\1/p' s_time.log | head -1)"
[ -n "$bytes" ] || { echo "openssl s_time said:" >&2; cat s_time.log >&2; exit 1; }
s_time="$(awk -v b="$bytes" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", b / 1e6 / (e - s) }')"
ratio="$(awk -v p="$pull" -v o="$s_time" 'BEGIN { printf "%.3f", p / o }')"

printf '%s\n' "${ours%\}},\"openssl_s_time_mb_s\":$s_time,\"pull_vs_openssl\":$ratio}"
echo "staging $MIB MiB: Portolan pull $pull MB/s; openssl s_time (s_server -WWW, new connection per fetch) $s_time MB/s; ratio $ratio"

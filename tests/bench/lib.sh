# SPDX-License-Identifier: Apache-2.0
# Shared by the benchmark scripts (sourced, not run): a private work
# directory, the processes a script starts (stopped by pid when it exits),
# a scheduler on loopback, and /proc readers. Callers set ROOT and BUILD.

# bench_init NAME: makes $WORK ($BENCH_TMP or /tmp, then portolan-NAME.XXXXXX)
# and arranges for the processes in $PIDS to be stopped and $WORK removed on
# exit (kept, with the daemons' logs, when BENCH_KEEP is set).
bench_init() {
  BIN="$ROOT/$BUILD/bin"
  WORK="$(mktemp -d "${BENCH_TMP:-/tmp}/portolan-$1.XXXXXX")"
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${BENCH_KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}

# bench_scheduler ARGS...: starts portolan-scheduler on loopback (plain RPC
# unless ARGS give --tls-cert, the default policy, REST and RPC on free
# ports) with ARGS added (state directory, authentication, limits, TLS),
# logging to $WORK/scheduler.log, and waits until it is ready (it writes its
# ports file only then). Sets SCHED, REST and RPC.
bench_scheduler() {
  local plain=--insecure a
  for a in "$@"; do [ "$a" != --tls-cert ] || plain=""; done
  "$BIN/portolan-scheduler" ${plain:+"$plain"} --rest-addr 127.0.0.1:0 --rpc-addr 127.0.0.1:0 \
    --policy "$ROOT/deploy/policy/default.yaml" --ports-file "$WORK/ports.json" "$@" \
    >"$WORK/scheduler.log" 2>&1 &
  SCHED=$!
  PIDS+=("$SCHED")
  while [ ! -f "$WORK/ports.json" ]; do
    if ! kill -0 "$SCHED" 2>/dev/null; then
      echo "the scheduler exited before it was ready:" >&2
      tail -5 "$WORK/scheduler.log" >&2
      exit 1
    fi
    sleep 0.02
  done
  REST=$(sed 's/.*"rest": \([0-9]*\).*/\1/' "$WORK/ports.json")
  RPC=$(sed 's/.*"rpc": \([0-9]*\).*/\1/' "$WORK/ports.json")
}

# bench_program NAME: the path of benchmark program NAME (tests/bench),
# built first if missing.
bench_program() {
  local p="$ROOT/$BUILD/tests/bench/$1"
  [ -x "$p" ] || cmake --build "$ROOT/$BUILD" --target "$1" >/dev/null
  echo "$p"
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# bench_admin_token: makes an admin token, writes its hashed entry to
# $WORK/tokens.yaml (mode 600) and sets TOKEN.
bench_admin_token() {
  TOKEN=$("$BIN/portolan" token new --name bench --role admin | sed -n 's/^token.*: \(ptk_.*\)$/\1/p')
  [ -n "$TOKEN" ] || { echo "could not make a token" >&2; exit 1; }
  printf 'tokens:\n  - {name: bench, role: admin, sha256: %s}\n' \
    "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$WORK/tokens.yaml"
  chmod 600 "$WORK/tokens.yaml"
}

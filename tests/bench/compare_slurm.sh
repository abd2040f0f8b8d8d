#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Portolan, Slurm and the machine's own limit side by side, in one run: N
# trivial jobs (/bin/true, 1 cpu each) submitted, scheduled, run and
# completed. This machine's speed drifts over the day, so the figures that
# mean something are the ratios of rates measured here, in this run.
#
#  * The limit: tests/bench/spawn_limit (posix_spawn + waitpid of /bin/true,
#    one process per core), before and after the schedulers; their mean.
#  * Slurm: installs Debian's slurm-wlm and munge if missing; starts munged,
#    slurmctld and one slurmd on loopback ports from a private directory
#    (nothing under /etc is changed), with as many CPUs as the Portolan
#    agents offer together, so both run the same number of jobs at once; then
#    runs the N jobs the two ways Slurm users do: one job array
#    (sbatch --array=1-N) and N separate sbatch calls (8 in parallel), each
#    timed until squeue is empty.
#  * Portolan: tests/bench/e2e.sh (a scheduler and 4 agents, N REST submits).
#
# Prints each rate and the ratios as JSON lines, then a summary. Stops the
# daemons it started, by their pids.
#
#   tests/bench/compare_slurm.sh [JOBS=1000] [BUILD=build]
# Environment: SLURM_DEBUG=debug (daemon log level), COMPARE_SLURM_KEEP=1
# (keep the private directory with the Slurm logs)
set -euo pipefail
JOBS="${1:-1000}"
BUILD="${2:-build}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
AGENTS=4
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "compare_slurm: installing Debian's slurm-wlm and munge" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi
WORK="$(mktemp -d /tmp/portolan-slurm.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  if [ -n "${COMPARE_SLURM_KEEP:-}" ]; then echo "compare_slurm: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- munge, with its own key, socket and files ---
mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool" "$WORK/log"
chmod 700 "$WORK/munge"
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
munged --force --key-file="$WORK/munge/munge.key" --socket="$WORK/munge/munge.sock" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
  --seed-file="$WORK/munge/munged.seed"
for _ in $(seq 1 50); do [ -s "$WORK/munge/munged.pid" ] && break; sleep 0.1; done
PIDS+=("$(cat "$WORK/munge/munged.pid")")

# --- Slurm: one node with the CPUs of the Portolan agents together ---
PUS=$(nproc)
CPUS=$((PUS * AGENTS))
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
MEM_MB=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
cat >"$WORK/slurm.conf" <<CONF
ClusterName=portolan-bench
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
SlurmctldDebug=${SLURM_DEBUG:-error}
SlurmdDebug=${SLURM_DEBUG:-error}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
DefMemPerCPU=64
SchedulerParameters=batch_sched_delay=0,default_queue_depth=1000,sched_min_interval=0
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SlurmdParameters=config_overrides
MaxJobCount=1000000
MaxArraySize=$((JOBS + 1))
MinJobAge=2
NodeName=$(hostname -s) NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=bench Nodes=$(hostname -s) Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF="$WORK/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 &
PIDS+=($!)
state=""
for _ in $(seq 1 150); do
  state=$(sinfo -h -o %T 2>/dev/null | head -1 || true)
  [ "$state" = idle ] && break
  sleep 0.2
done
if [ "$state" != idle ]; then
  echo "compare_slurm: the Slurm node did not become idle (state '$state')" >&2
  tail -5 "$WORK"/log/*.log "$WORK"/log/*.out >&2 || true
  exit 1
fi
echo "compare_slurm: Slurm $(sinfo -V | awk '{print $2}') up: slurmctld on 127.0.0.1:$CTLD_PORT, one node with $CPUS CPUs; submitting $JOBS jobs" >&2

# --- the machine's limit, then Slurm both ways ---
SPAWN="$ROOT/$BUILD/tests/bench/spawn_limit"
[ -x "$SPAWN" ] || cmake --build "$ROOT/$BUILD" --target spawn_limit >/dev/null
SPAWN1=$("$SPAWN" --seconds 5 2>/dev/null | sed -n 's/.*"spawns_per_s":\([0-9.]*\).*/\1/p')
echo "compare_slurm: spawn_limit before: $SPAWN1 spawns/s" >&2
SLURM_VERSION=$(sinfo -V | awk '{print $2}')
# slurm_run MODE: submits the N jobs (array or separate), waits until squeue
# is empty; prints a JSON line and sets SLURM_RATE.
slurm_run() {
  local t0 t1 t2
  t0=$(date +%s.%N)
  if [ "$1" = array ]; then
    sbatch -Q --array=1-"$JOBS" --wrap=/bin/true -n 1 -o /dev/null -e /dev/null -J arr >"$WORK/sbatch.out"
  else
    seq 1 "$JOBS" | xargs -P 8 -I{} sbatch -Q --wrap=/bin/true -n 1 -o /dev/null -e /dev/null -J b{} >"$WORK/sbatch.out"
  fi
  t1=$(date +%s.%N)
  while [ "$(squeue -h -r -o %i | wc -l)" -gt 0 ]; do sleep 0.05; done
  t2=$(date +%s.%N)
  local submit_s total_s
  submit_s=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
  total_s=$(awk -v a="$t2" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
  SLURM_RATE=$(awk -v n="$JOBS" -v t="$total_s" 'BEGIN {printf "%.1f", n / t}')
  echo "{\"bench\":\"slurm\",\"mode\":\"$1\",\"version\":\"$SLURM_VERSION\",\"jobs\":$JOBS,\"cpus\":$CPUS,\"submit_s\":$submit_s,\"total_s\":$total_s,\"jobs_per_s\":$SLURM_RATE}"
  echo "slurm ($1): $JOBS jobs submitted in ${submit_s}s, all completed in ${total_s}s: $SLURM_RATE jobs/s" >&2
}
slurm_run array
SLURM_ARRAY=$SLURM_RATE
slurm_run separate
SLURM_SEPARATE=$SLURM_RATE
# Slurm's daemons would compete with Portolan for the 2 cores: stop them first.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
PIDS=()

# --- the Portolan run, then the limit again ---
E2E_AGENTS=$AGENTS "$ROOT/tests/bench/e2e.sh" "$JOBS" "$BUILD" | tee "$WORK/e2e.out"
P_RATE=$(sed -n 's/.*"jobs_per_s":\([0-9.]*\).*/\1/p' "$WORK/e2e.out")
SPAWN2=$("$SPAWN" --seconds 5 2>/dev/null | sed -n 's/.*"spawns_per_s":\([0-9.]*\).*/\1/p')
echo "compare_slurm: spawn_limit after: $SPAWN2 spawns/s" >&2
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
LIMIT=$(awk -v a="$SPAWN1" -v b="$SPAWN2" 'BEGIN {printf "%.1f", (a + b) / 2}')
OF_LIMIT=$(ratio "$P_RATE" "$LIMIT")
VS_ARRAY=$(ratio "$P_RATE" "$SLURM_ARRAY")
VS_SEPARATE=$(ratio "$P_RATE" "$SLURM_SEPARATE")
echo "{\"bench\":\"compare_slurm\",\"jobs\":$JOBS,\"portolan_jobs_per_s\":$P_RATE,\"slurm_array_jobs_per_s\":$SLURM_ARRAY,\"slurm_separate_jobs_per_s\":$SLURM_SEPARATE,\"spawn_limit_per_s\":$LIMIT,\"portolan_of_limit\":$OF_LIMIT,\"vs_slurm_array\":$VS_ARRAY,\"vs_slurm_separate\":$VS_SEPARATE}"
echo "compare_slurm: $JOBS trivial jobs: Portolan $P_RATE jobs/s = $OF_LIMIT of this machine's spawn-and-reap limit ($LIMIT/s: $SPAWN1 before, $SPAWN2 after); Slurm $SLURM_VERSION $SLURM_ARRAY jobs/s as one array (${VS_ARRAY}x), $SLURM_SEPARATE jobs/s as separate sbatch calls (${VS_SEPARATE}x)"

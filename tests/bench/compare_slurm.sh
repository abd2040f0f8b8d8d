#!/usr/bin/env bash
# Portolan and Slurm side by side on this machine, in one run: N trivial jobs
# (/bin/true, 1 cpu each) submitted, scheduled, run and completed.
#
#  * Slurm: installs Debian's slurm-wlm and munge if missing; starts munged,
#    slurmctld and one slurmd on loopback ports from a private directory
#    (nothing under /etc is changed), with as many CPUs as the Portolan
#    agents offer together, so both run the same number of jobs at once;
#    submits with sbatch (8 in parallel) and waits until squeue is empty.
#  * Portolan: tests/bench/e2e.sh (a scheduler and 4 agents, REST submits).
#
# Prints both rates as JSON lines, the ratio and a summary. Stops the
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

# --- the Slurm run ---
T0=$(date +%s.%N)
seq 1 "$JOBS" | xargs -P 8 -I{} sbatch -Q --wrap=/bin/true -n 1 -o /dev/null -e /dev/null -J b{} >"$WORK/sbatch.out"
T1=$(date +%s.%N)
while [ "$(squeue -h -o %i | wc -l)" -gt 0 ]; do sleep 0.05; done
T2=$(date +%s.%N)
SUBMIT_S=$(awk -v a="$T1" -v b="$T0" 'BEGIN {printf "%.2f", a - b}')
TOTAL_S=$(awk -v a="$T2" -v b="$T0" 'BEGIN {printf "%.2f", a - b}')
SLURM_RATE=$(awk -v n="$JOBS" -v t="$TOTAL_S" 'BEGIN {printf "%.1f", n / t}')
echo "{\"bench\":\"slurm\",\"version\":\"$(sinfo -V | awk '{print $2}')\",\"jobs\":$JOBS,\"cpus\":$CPUS,\"submit_s\":$SUBMIT_S,\"total_s\":$TOTAL_S,\"jobs_per_s\":$SLURM_RATE}"
echo "slurm: $JOBS jobs submitted in ${SUBMIT_S}s, all completed in ${TOTAL_S}s: $SLURM_RATE jobs/s" >&2
# Slurm's daemons would compete with Portolan for the 2 cores: stop them first.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
PIDS=()

# --- the Portolan run ---
E2E_AGENTS=$AGENTS "$ROOT/tests/bench/e2e.sh" "$JOBS" "$BUILD" | tee "$WORK/e2e.out"
P_RATE=$(sed -n 's/.*"jobs_per_s":\([0-9.]*\).*/\1/p' "$WORK/e2e.out")
RATIO=$(awk -v p="$P_RATE" -v s="$SLURM_RATE" 'BEGIN {printf "%.1f", p / s}')
echo "{\"bench\":\"compare_slurm\",\"jobs\":$JOBS,\"portolan_jobs_per_s\":$P_RATE,\"slurm_jobs_per_s\":$SLURM_RATE,\"ratio\":$RATIO}"
echo "compare_slurm: $JOBS trivial jobs: Portolan $P_RATE jobs/s, Slurm $SLURM_RATE jobs/s: ${RATIO}x"

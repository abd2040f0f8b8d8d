#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# On a real machine with NVIDIA GPUs: what the agent discovers and what a job
# sees. Starts a scheduler and one agent on the machine's real topology
# (loopback, plain RPC, no REST auth), then checks, printing PASS or FAIL for
# each and exiting 1 if any failed:
#   - the agent lists as many GPUs as nvidia-smi, by the same PCI bus ids;
#   - a job given one GPU sees exactly that one (CUDA_VISIBLE_DEVICES, with
#     CUDA_DEVICE_ORDER=PCI_BUS_ID) and computes on it with PyTorch;
#   - a job given none sees no GPU, also when it unsets CUDA_VISIBLE_DEVICES
#     (the sandbox denies it the device nodes of GPUs it was not given);
#   - a job asking for one GPU more than the machine has is refused with a
#     reason that names the GPUs (plan), and nothing is run.
#
#   tests/device/gpu_check.sh [PACK=build]
# PACK is a build folder (bin/ inside) or a folder made by tests/device/pack.sh
# (then its lib/ is loaded by Portolan's programs, never by the jobs).
# Environment: GPU_CHECK_PYTHON (the Python with torch; default: python3 on
# PATH), GPU_CHECK_OUT (copy the daemons' logs there), GPU_CHECK_AGENT_ARGS.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PACK="${1:-build}"
case "$PACK" in /*) ;; *) PACK="$ROOT/$PACK" ;; esac
BIN="$PACK/bin"
POLICY="$ROOT/deploy/policy/default.yaml"
[ -f "$PACK/policy.yaml" ] && POLICY="$PACK/policy.yaml"
[ -d "$PACK/lib" ] && export LD_LIBRARY_PATH="$PACK/lib"
PY="$(command -v "${GPU_CHECK_PYTHON:-python3}" || true)"
WORK="$(mktemp -d /tmp/portolan-gpu.XXXXXX)"
chmod 711 "$WORK"  # jobs run under uids of their own
PIDS=()
FAILED=0
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${GPU_CHECK_OUT:-}" ]; then cp "$WORK"/*.log "$WORK"/*.txt "$GPU_CHECK_OUT/" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
check() {  # name, then a command that succeeds when it holds
  local name="$1"
  shift
  if "$@"; then echo "PASS $name"; else echo "FAIL $name"; FAILED=1; fi
}
# PCI bus ids as the agent writes them: 0000:3b:00.0, lower case.
norm_bus() { tr 'A-F' 'a-f' | sed -E 's/^[0-9a-f]*([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f])$/\1/'; }

echo "== the machine"
nvidia-smi --query-gpu=index,pci.bus_id,name,memory.total --format=csv,noheader | tee "$WORK/nvidia-smi.txt"
SMI_BUS=$(cut -d, -f2 "$WORK/nvidia-smi.txt" | tr -d ' ' | norm_bus | sort | paste -sd' ')
echo "nproc: $(nproc); python: ${PY:-none}"

echo "== what the agent discovers (--print-topology)"
# shellcheck disable=SC2086 # extra flags
"$BIN/portolan-agent" --print-topology ${GPU_CHECK_AGENT_ARGS:-} | tee "$WORK/topology.txt"
AGENT_BUS=$(grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]' "$WORK/topology.txt" | sort -u | paste -sd' ')
echo "nvidia-smi: [$SMI_BUS]  agent: [$AGENT_BUS]"
check "the agent lists the GPUs nvidia-smi lists, by PCI bus id" test -n "$SMI_BUS" -a "$SMI_BUS" = "$AGENT_BUS"
NGPU=$(wc -w <<<"$SMI_BUS")

echo "== a scheduler and one agent on this machine"
"$BIN/portolan-scheduler" --insecure --no-auth --rest-addr 127.0.0.1:0 --rpc-addr 127.0.0.1:0 \
  --policy "$POLICY" --ports-file "$WORK/ports.json" --state-dir "$WORK/state" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do [ -f "$WORK/ports.json" ] && break; sleep 0.05; done
[ -f "$WORK/ports.json" ] || { echo "FAIL the scheduler did not start"; tail -5 "$WORK/scheduler.log"; exit 1; }
REST=$(sed 's/.*"rest": \([0-9]*\).*/\1/' "$WORK/ports.json")
RPC=$(sed 's/.*"rpc": \([0-9]*\).*/\1/' "$WORK/ports.json")
# shellcheck disable=SC2086 # extra flags
"$BIN/portolan-agent" --id gpu-1 --site lingang-idc-1 --scheduler "127.0.0.1:$RPC" --insecure \
  --state-dir "$WORK/agent" --stop-jobs-on-exit ${GPU_CHECK_AGENT_ARGS:-} >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
cli() { "$BIN/portolan" --server "http://127.0.0.1:$REST" "$@"; }
for _ in $(seq 1 100); do cli -o json agents 2>/dev/null | grep -q '"connected": true' && break; sleep 0.1; done
cli agent gpu-1 | tee "$WORK/agent-view.txt"

# The job's program: what it is given and what CUDA makes of it. The jobs run
# without the pack's LD_LIBRARY_PATH (torch brings its own libraries).
PROBE='import os
for k in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "PORTOLAN_GPUS"):
    print("%s=%s" % (k, os.environ.get(k, "<unset>")))
try:
    import torch
    n = torch.cuda.device_count()
    print("torch_devices=%d" % n)
    for i in range(n):
        p = torch.cuda.get_device_properties(i)
        print("torch_device=%s bus=%04x:%02x:%02x.0 memory_mib=%d" % (p.name, p.pci_domain_id, p.pci_bus_id, p.pci_device_id, p.total_memory >> 20))
    if n:
        x = torch.ones(4096, 4096, device="cuda")
        print("matmul_sum=%d" % int((x @ x).sum().item() / 4096))
except Exception as e:
    print("torch_error=%r" % (e,))'
run_job() {  # name gpus [env flags]: runs the probe, prints its log into $WORK/NAME.txt
  local id
  # shellcheck disable=SC2086 # $3: flags for env, split on purpose
  id=$(cli -o json submit --name "$1" --cpus 2 --memory-mb 16384 --gpus "$2" -- \
    /usr/bin/env -u LD_LIBRARY_PATH ${3:-} "$PY" -c "$PROBE" | sed -n 's/^ *"id": "\(job-[^"]*\)".*/\1/p' | head -1)
  [ -n "$id" ] || { echo "could not submit $1"; return 1; }
  cli wait "$id" --timeout-s 120
  cli job "$id" >"$WORK/$1-job.txt"
  cli logs "$id" | tee "$WORK/$1.txt"
  grep -E "allocat|GPUs" "$WORK/$1-job.txt" | head -3
}
echo "== a job given one GPU"
run_job one-gpu 1
FIRST_BUS=$(cut -d' ' -f1 <<<"$SMI_BUS")
check "the one-GPU job sees one device" grep -q '^torch_devices=1$' "$WORK/one-gpu.txt"
check "the one-GPU job's device is the GPU the scheduler allotted" \
  grep -q "^PORTOLAN_GPUS=$(grep -o '^torch_device=.* bus=[^ ]*' "$WORK/one-gpu.txt" | sed 's/.* bus=//')\$" "$WORK/one-gpu.txt"
check "the one-GPU job computed on it" grep -q '^matmul_sum=16777216$' "$WORK/one-gpu.txt"
check "CUDA numbers devices by PCI bus id in the job" grep -q '^CUDA_DEVICE_ORDER=PCI_BUS_ID$' "$WORK/one-gpu.txt"
echo "(first GPU by bus id: $FIRST_BUS)"

echo "== a job given no GPU"
run_job no-gpu 0
check "the job given no GPU sees none" grep -q '^torch_devices=0$' "$WORK/no-gpu.txt"

echo "== a job given no GPU that ignores CUDA_VISIBLE_DEVICES"
run_job sneaky 0 "-u CUDA_VISIBLE_DEVICES"
check "it still sees none: the GPU's device node is denied in its sandbox" \
  grep -q '^torch_devices=0$' "$WORK/sneaky.txt"
grep "GPUs: a job can open" "$WORK/agent.log"

echo "== a job asking for $((NGPU + 1)) GPUs"
printf '{"name":"too-many","resources":{"cpus":1,"memory_mb":256,"gpus":%d},"command":["/bin/true"]}\n' \
  "$((NGPU + 1))" >"$WORK/too-many.json"
cli plan "$WORK/too-many.json" | tee "$WORK/too-many-plan.txt"
check "a job asking for more GPUs than the machine has is not placed, and the reason names GPUs" \
  grep -q "insufficient_gpus" "$WORK/too-many-plan.txt"
exit "$FAILED"

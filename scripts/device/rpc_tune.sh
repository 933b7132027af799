#!/usr/bin/env bash
# One GPU call on a machine with two or more GPUs (the device tool's nvidia-h200-x2): TVM's RPC
# tracker on this host, RPC servers started by `python -m tpat_bridge.tools.rpc_server` (TVM's
# server with CUDA left uninitialised in the process that forks a child per session: see that
# module; TVM's own launcher made every timing fail with cudaErrorInitializationError on
# 2026-11-28), then `tpat tune` of the packed OUT folder(s) twice with the same trials:
#   1. key tpat-1gpu: one server (GPU 0), --rpc-workers 1
#   2. key tpat-2gpu: one server per GPU (CUDA_VISIBLE_DEVICES=k), --rpc-workers <GPUs>
# Each run tunes a fresh copy of the OUT folders, with no time budget: both runs measure the same
# number of candidates unless a run hits its hard limit (the summary says so). Per run: wall time,
# candidates measured and failed; per task the default schedule and the best candidate, both timed
# by the same runner and recorded in the same database, and whether the tuned schedule was kept.
# rpc-compare.txt puts both runs side by side. Logs in $OUT (or .gpu/logs).
#
# Before (CPU machine): scripts/device/rpc_prepare.sh (generates out/rpc-set/tvm: several TVM-lowered
# reductions whose MetaSchedule spaces have many points, and packs it into .gpu/). TVM's wheels and
# tornado, cloudpickle, psutil, xgboost are staged by .stage/c1..c3 (docs/tuning.md); the call is
#   bash .stage/c3/absorb.sh && scripts/device/rpc_tune.sh        (carry [".gpu", ".stage/c3"])
# after two calls that ran .stage/c1/absorb.sh and .stage/c2/absorb.sh.
#
# Usage: [TUNE_OUTS="name ..."] [RUN_LIMIT_S=215] [TOTAL_S=480] [POPULATION=128] scripts/device/rpc_tune.sh [TRIALS]
#   TRIALS (default 32) per plugin; RUN_LIMIT_S: hard limit per run; TOTAL_S: the whole script
#   (the second run gets what is left, at most RUN_LIMIT_S); POPULATION: the evolutionary
#   search's population (TPAT_TUNE_POPULATION; MetaSchedule's 512 costs CPU time per batch).
#   RPC_TUNE_CPU=1: a rehearsal of this script on a machine without GPUs (the llvm target, two
#   servers standing for two GPUs, this venv's Python): checks the script, not the GPUs.
set -uo pipefail
cd "$(dirname "$0")/../.."
t_start=$(date +%s)
trials=${1:-32}
cpu=${RPC_TUNE_CPU:-0}
if [ "$cpu" = 1 ]; then PY=${PY:-$PWD/.venv/bin/python}; export TPAT_TUNE_TARGET=llvm; else PY=$(command -v python3); fi
RUN_LIMIT_S=${RUN_LIMIT_S:-215}
TOTAL_S=${TOTAL_S:-480}
logs=${OUT:-.gpu/logs}; mkdir -p "$logs"
say() { echo "$*" | tee -a "$logs/rpc-summary.txt"; }
[ -f .gpu/pack.tar.xz ] || { say "error: no .gpu/pack.tar.xz (scripts/device/rpc_prepare.sh)"; exit 2; }
tmp=$(mktemp -d); tar -C "$tmp" -xJf .gpu/pack.tar.xz
export LD_LIBRARY_PATH="$tmp/pack/lib:${LD_LIBRARY_PATH:-}" TPAT_HOME="$PWD" TPAT_PYTHON="$PY"
export CUDA_PATH=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH" PYTHONPATH="/tmp/tpat-site:$PWD/python:${PYTHONPATH:-}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# The plans of rpc_prepare.sh's OUT use TVM's lowering: search the same functions.
export TPAT_LOWERING=${TPAT_LOWERING:-tvm} TPAT_TUNE_POPULATION=${POPULATION:-128}
# Every process of the tuning host too: no torch DLPack add-on (a JIT build on first use) and no
# cuInit from torch.cuda.is_available() in each of the builder workers.
export TVM_FFI_DISABLE_TORCH_C_DLPACK=1 PYTORCH_NVML_BASED_CUDA_CHECK=1
if ! "$PY" -c 'import tvm, tornado, cloudpickle, psutil, xgboost' > "$logs/rpc-imports.log" 2>&1; then
  say "error: python3 cannot import tvm/tornado/cloudpickle/psutil/xgboost (stage the wheels first; $logs/rpc-imports.log)"
  tail -3 "$logs/rpc-imports.log"; exit 2
fi
# The image sets PYTHONDONTWRITEBYTECODE and the staged wheels carry no byte code: without this,
# every worker process compiles TVM's Python files again (docs/tuning.md).
t0=$(date +%s)
[ "$cpu" = 1 ] || "$PY" -m compileall -q -j 0 /tmp/tpat-site "$PWD/python" > /dev/null 2>&1
say "byte code compiled in $(( $(date +%s) - t0 )) s"
if [ "$cpu" = 1 ]; then gpus=2; echo "RPC_TUNE_CPU=1: 2 CPU servers stand for 2 GPUs" | tee "$logs/rpc-device.txt"
else gpus=$(nvidia-smi -L | wc -l); nvidia-smi -L | tee "$logs/rpc-device.txt"; fi
[ "$gpus" -ge 2 ] || { say "error: $gpus GPU(s): this script compares one GPU with several"; exit 2; }
outs=${TUNE_OUTS:-$(ls .gpu/outs)}
pids=()
cleanup() { for p in "${pids[@]}"; do kill -- -"$p" 2>/dev/null; done; }  # each a process group (setsid): TVM's popen_worker children too
trap cleanup EXIT
port=9190
setsid "$PY" -m tvm.exec.rpc_tracker --host 127.0.0.1 --port $port > "$logs/rpc-tracker.log" 2>&1 &
pids+=($!)
server() {  # server GPU KEY PORT LOG
  CUDA_VISIBLE_DEVICES=$1 setsid "$PY" -m tpat_bridge.tools.rpc_server --tracker 127.0.0.1:$port --key "$2" \
    --host 127.0.0.1 --port "$3" --port-end $(($3 + 49)) > "$4" 2>&1 &
  pids+=($!)
}
server 0 tpat-1gpu 9100 "$logs/rpc-server-1gpu.log"
for ((g = 0; g < gpus; g++)); do server "$g" tpat-2gpu $((9150 + 50 * g)) "$logs/rpc-server-2gpu-$g.log"; done
# wait (45 s at most) until the tracker lists every server
want=$((gpus + 1))
for _ in $(seq 45); do
  n=$(timeout 10 "$PY" -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port $port 2>/dev/null | grep -c 'server:tpat-')
  [ "${n:-0}" -ge "$want" ] && break
  sleep 1
done
timeout 10 "$PY" -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port $port > "$logs/rpc-query.txt" 2>&1
cat "$logs/rpc-query.txt"
[ "$(grep -c 'server:tpat-' "$logs/rpc-query.txt")" -ge "$want" ] || { say "error: the tracker does not list $want servers (rpc-*.log)"; exit 1; }
rc=0
run() {  # run KEY WORKERS
  local key=$1 workers=$2 dir="$tmp/runs/$1" log="$logs/rpc-tune-$1.log"
  local limit=$RUN_LIMIT_S left_total=$((TOTAL_S - ($(date +%s) - t_start) - 15))
  [ $left_total -lt $limit ] && limit=$left_total
  mkdir -p "$dir"
  for name in $outs; do cp -a ".gpu/outs/$name" "$dir/" && rm -rf "$dir/$name/plugins/build" "$dir/$name/tuning"; done
  local t0 t1 status=0; t0=$(date +%s)
  for out in "$dir"/*/; do
    local left=$((limit - ($(date +%s) - t0)))
    [ $left -gt 20 ] || { echo "== $key $(basename "$out"): skipped, run time limit reached" | tee -a "$log"; status=124; continue; }
    echo "== $key $(basename "$out") ($(date +%T))" >> "$log"
    timeout -k 5 $left "$tmp/pack/tpat" tune "$out" --trials "$trials" \
      --rpc-tracker 127.0.0.1:$port --rpc-key "$key" --rpc-workers "$workers" >> "$log" 2>&1 || status=$?
  done
  t1=$(date +%s)
  [ $status -eq 0 ] || rc=1
  local measured failed
  measured=$(grep -E '^[A-Za-z0-9]+_[0-9a-f]{8}: .* task\(s\)' "$log" | sed -E 's/.* task\(s\), ([0-9]+) trials.*/\1/' | awk '{s += $1} END {print s + 0}')
  failed=$(grep -E '^tune: .*: [0-9]+ of [0-9]+ candidate\(s\) failed' "$log" | sed -E 's/.*: ([0-9]+) of .*/\1/' | awk '{s += $1} END {print s + 0}')
  local cut=""; [ $status -eq 124 ] && cut=" (CUT at the ${limit} s limit: the runs are not comparable)"
  say "$key: $workers server(s), --rpc-workers $workers, $trials trials per plugin: wall $((t1 - t0)) s, candidates measured $measured, failed $failed, exit $status$cut"
}
run tpat-1gpu 1
run tpat-2gpu "$gpus"
"$PY" scripts/device/rpc_compare.py "$logs/rpc-tune-tpat-1gpu.log" "$logs/rpc-tune-tpat-2gpu.log" \
  --servers "$logs/rpc-server-1gpu.log" "$(ls "$logs"/rpc-server-2gpu-*.log | paste -sd,)" > "$logs/rpc-compare.txt"
tee -a "$logs/rpc-summary.txt" < "$logs/rpc-compare.txt"
grep -h "not searched\|did not run\|did not build" "$logs"/rpc-tune-*.log | sort | uniq -c | head -20 | tee -a "$logs/rpc-summary.txt"
say "script wall $(( $(date +%s) - t_start )) s"
exit $rc

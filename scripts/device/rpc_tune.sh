#!/usr/bin/env bash
# On a machine with two or more GPUs (the device tool's nvidia-h200-x2), after TVM's wheels were
# staged into /tmp/tpat-site (docs/tuning.md, /work/shared/device/stage-wheels): TVM's RPC tracker on
# this host and one `tvm.exec.rpc_server` per GPU (CUDA_VISIBLE_DEVICES=k), then `tpat tune` of every
# OUT folder packed by scripts/device/pack.sh twice, with the same trials:
#   1. key tpat-1gpu: one server (GPU 0), --rpc-workers 1
#   2. key tpat-2gpu: one server per GPU, --rpc-workers <GPUs>
# Each run tunes a fresh copy of the OUT folders. Wall times, best times per plugin and the tracker's
# view go to $OUT (or .gpu/logs).   Usage: [TUNE_OUTS="name ..."] scripts/device/rpc_tune.sh [TRIALS]
set -uo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-32}
logs=${OUT:-.gpu/logs}; mkdir -p "$logs"
tmp=$(mktemp -d); tar -C "$tmp" -xJf .gpu/pack.tar.xz
export LD_LIBRARY_PATH="$tmp/pack/lib:${LD_LIBRARY_PATH:-}" TPAT_HOME="$PWD" TPAT_PYTHON="$(command -v python3)"
export CUDA_PATH=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH" PYTHONPATH="/tmp/tpat-site:${PYTHONPATH:-}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
gpus=$(nvidia-smi -L | wc -l)
nvidia-smi -L | tee "$logs/rpc-device.txt"
[ "$gpus" -ge 2 ] || { echo "error: $gpus GPU(s): this script compares one GPU with several" >&2; exit 2; }
port=9190
python3 -m tvm.exec.rpc_tracker --host 127.0.0.1 --port $port > "$logs/rpc-tracker.log" 2>&1 &
pids=($!)
sleep 3
CUDA_VISIBLE_DEVICES=0 python3 -m tvm.exec.rpc_server --tracker 127.0.0.1:$port --key tpat-1gpu --port 9100 --port-end 9149 > "$logs/rpc-server-1gpu.log" 2>&1 &
pids+=($!)
for ((g = 0; g < gpus; g++)); do
  CUDA_VISIBLE_DEVICES=$g python3 -m tvm.exec.rpc_server --tracker 127.0.0.1:$port --key tpat-2gpu --port $((9150 + 50 * g)) --port-end $((9199 + 50 * g)) > "$logs/rpc-server-2gpu-$g.log" 2>&1 &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
sleep 8
python3 -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port $port | tee "$logs/rpc-query.txt"
rc=0
run() {  # run KEY WORKERS
  local key=$1 workers=$2 dir="$tmp/runs/$1"
  mkdir -p "$dir"
  for name in ${TUNE_OUTS:-$(ls .gpu/outs)}; do cp -a ".gpu/outs/$name" "$dir/" && rm -rf "$dir/$name/plugins/build" "$dir/$name/tuning"; done
  local t0; t0=$(date +%s)
  for out in "$dir"/*/; do
    echo "== $key $(basename "$out")" | tee -a "$logs/rpc-tune-$key.log"
    "$tmp/pack/tpat" tune "$out" --trials "$trials" --rpc-tracker 127.0.0.1:$port --rpc-key "$key" --rpc-workers "$workers" \
      >> "$logs/rpc-tune-$key.log" 2>&1 || rc=1
  done
  local t1; t1=$(date +%s)
  echo "$key: $workers server(s), --rpc-workers $workers, $trials trials per plugin: wall $((t1 - t0)) s" | tee -a "$logs/rpc-summary.txt"
}
run tpat-1gpu 1
run tpat-2gpu "$gpus"
grep -h "task(s)" "$logs"/rpc-tune-*.log | tee -a "$logs/rpc-summary.txt"
exit $rc

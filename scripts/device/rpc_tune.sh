#!/usr/bin/env bash
# One GPU call on a machine with two or more GPUs (the device tool's nvidia-h200-x2): TVM's RPC
# tracker on this host, one `tvm.exec.rpc_server` per GPU (CUDA_VISIBLE_DEVICES=k), then `tpat tune`
# of the OUT folders packed by scripts/device/pack.sh, twice with the same trials:
#   1. key tpat-1gpu: one server (GPU 0), --rpc-workers 1
#   2. key tpat-2gpu: one server per GPU, --rpc-workers <GPUs>
# Each run tunes a fresh copy of the OUT folders. Per run: wall time, candidates measured, per task
# the best candidate against the default (dlight) schedule timed by the same runner, and whether
# the tuned schedule was kept; rpc-compare.txt puts both runs side by side. Logs in $OUT (or
# .gpu/logs). Every step has a time limit; the whole script stays under ~7 minutes.
#
# Before (on the CPU machine): generate OUT folders whose kernels MetaSchedule can search (static
# shapes, TVM/dlight-scheduled functions; docs/tuning.md lists such bench cases), e.g.
#   for m in reducemax_two_axes:ReduceMax gridsample:GridSample layernorm_axis1_f32:LayerNormalization; do
#     tpat generate bench/models/${m%%:*}.onnx --ops ${m##*:} -o out/tune-set/${m%%:*}; done
#   scripts/device/pack.sh out/tune-set/*
# and stage TVM's wheels plus tornado, cloudpickle, psutil, xgboost (docs/tuning.md) so that the
# call's own command is:   bash .stage/cN/absorb.sh && scripts/device/rpc_tune.sh
#
# Usage: [TUNE_OUTS="name ..."] [RUN_LIMIT_S=190] [BUDGET_MIN=1.2] scripts/device/rpc_tune.sh [TRIALS]
#   TRIALS (default 16) per plugin; BUDGET_MIN: tpat tune's --time-budget (whole folder set, per run,
#   checked between batches); RUN_LIMIT_S: hard limit per run (timeout). Symbolic dims are searched
#   at TPAT_TUNE_BINDINGS (e.g. "s0=64"), else at the plugin's largest reference case.
set -uo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-16}
RUN_LIMIT_S=${RUN_LIMIT_S:-190}
BUDGET_MIN=${BUDGET_MIN:-1.2}
logs=${OUT:-.gpu/logs}; mkdir -p "$logs"
say() { echo "$*" | tee -a "$logs/rpc-summary.txt"; }
[ -f .gpu/pack.tar.xz ] || { say "error: no .gpu/pack.tar.xz (scripts/device/pack.sh OUT...)"; exit 2; }
tmp=$(mktemp -d); tar -C "$tmp" -xJf .gpu/pack.tar.xz
export LD_LIBRARY_PATH="$tmp/pack/lib:${LD_LIBRARY_PATH:-}" TPAT_HOME="$PWD" TPAT_PYTHON="$(command -v python3)"
export CUDA_PATH=/usr/local/cuda PATH="/usr/local/cuda/bin:$PATH" PYTHONPATH="/tmp/tpat-site:${PYTHONPATH:-}"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
if ! python3 -c 'import tvm, tornado, cloudpickle, psutil, xgboost' > "$logs/rpc-imports.log" 2>&1; then
  say "error: python3 cannot import tvm/tornado/cloudpickle/psutil/xgboost (stage the wheels first; $logs/rpc-imports.log)"
  tail -3 "$logs/rpc-imports.log"; exit 2
fi
gpus=$(nvidia-smi -L | wc -l)
nvidia-smi -L | tee "$logs/rpc-device.txt"
[ "$gpus" -ge 2 ] || { say "error: $gpus GPU(s): this script compares one GPU with several"; exit 2; }
outs=${TUNE_OUTS:-$(ls .gpu/outs)}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
port=9190
python3 -m tvm.exec.rpc_tracker --host 127.0.0.1 --port $port > "$logs/rpc-tracker.log" 2>&1 &
pids+=($!)
CUDA_VISIBLE_DEVICES=0 python3 -m tvm.exec.rpc_server --tracker 127.0.0.1:$port --key tpat-1gpu --host 127.0.0.1 \
  --port 9100 --port-end 9149 > "$logs/rpc-server-1gpu.log" 2>&1 &
pids+=($!)
for ((g = 0; g < gpus; g++)); do
  CUDA_VISIBLE_DEVICES=$g python3 -m tvm.exec.rpc_server --tracker 127.0.0.1:$port --key tpat-2gpu --host 127.0.0.1 \
    --port $((9150 + 50 * g)) --port-end $((9199 + 50 * g)) > "$logs/rpc-server-2gpu-$g.log" 2>&1 &
  pids+=($!)
done
# wait (45 s at most) until the tracker lists every server
want=$((gpus + 1))
for _ in $(seq 45); do
  n=$(timeout 10 python3 -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port $port 2>/dev/null | grep -c 'server:tpat-')
  [ "${n:-0}" -ge "$want" ] && break
  sleep 1
done
timeout 10 python3 -m tvm.exec.query_rpc_tracker --host 127.0.0.1 --port $port > "$logs/rpc-query.txt" 2>&1
cat "$logs/rpc-query.txt"
[ "$(grep -c 'server:tpat-' "$logs/rpc-query.txt")" -ge "$want" ] || { say "error: the tracker does not list $want servers (rpc-*.log)"; exit 1; }
rc=0
run() {  # run KEY WORKERS
  local key=$1 workers=$2 dir="$tmp/runs/$1" log="$logs/rpc-tune-$1.log"
  mkdir -p "$dir"
  for name in $outs; do cp -a ".gpu/outs/$name" "$dir/" && rm -rf "$dir/$name/plugins/build" "$dir/$name/tuning"; done
  local t0 t1 status=0; t0=$(date +%s)
  # one tpat tune per OUT folder, all inside RUN_LIMIT_S (the budget is shared out by folders)
  local per n; n=$(echo $outs | wc -w); per=$(python3 -c "print(round($BUDGET_MIN / max(1, $n), 3))")
  for out in "$dir"/*/; do
    local left=$((RUN_LIMIT_S - ($(date +%s) - t0)))
    [ $left -gt 20 ] || { echo "== $key $(basename "$out"): skipped, run time limit reached" | tee -a "$log"; status=124; continue; }
    echo "== $key $(basename "$out")" >> "$log"
    timeout -k 5 $left "$tmp/pack/tpat" tune "$out" --trials "$trials" --time-budget "$per" \
      --rpc-tracker 127.0.0.1:$port --rpc-key "$key" --rpc-workers "$workers" >> "$log" 2>&1 || status=$?
  done
  t1=$(date +%s)
  [ $status -eq 0 ] || rc=1
  local measured; measured=$(grep -E '^[A-Za-z]+_[0-9a-f]{8}: .* task\(s\)' "$log" | sed -E 's/.* task\(s\), ([0-9]+) trials.*/\1/' | awk '{s += $1} END {print s + 0}')
  say "$key: $workers server(s), --rpc-workers $workers, $trials trials per plugin: wall $((t1 - t0)) s, candidates measured ${measured:-0}, exit $status"
}
run tpat-1gpu 1
run tpat-2gpu "$gpus"
# side by side: per task the best candidate of each run against the default schedule
python3 - "$logs/rpc-tune-tpat-1gpu.log" "$logs/rpc-tune-tpat-2gpu.log" > "$logs/rpc-compare.txt" <<'PY'
import re, sys
pat = re.compile(r"^tune: (\S+): best ([0-9.]+) us vs default ([0-9.-]+) us -> (kept|dropped)")
def read(path):
    out, plugin = {}, "?"
    for line in open(path, errors="replace"):
        m = re.match(r"^== tuning (\S+)", line)
        if m:
            plugin = m.group(1)
        m = pat.match(line)
        if m:
            out[(plugin, m.group(1))] = (float(m.group(2)), m.group(3), m.group(4))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
print(f"{'plugin / task':50} {'default us':>11} {'1 GPU best':>11} {'2 GPU best':>11} {'2/1':>6}  kept(1,2)")
for k in sorted(set(a) | set(b)):
    ra, rb = a.get(k), b.get(k)
    d = (ra or rb)[1]
    ratio = f"{rb[0] / ra[0]:.2f}" if ra and rb else "-"
    print(f"{k[0] + ' / ' + k[1]:50} {d:>11} {ra[0] if ra else '-':>11} {rb[0] if rb else '-':>11} {ratio:>6}  "
          f"{ra[2] if ra else '-'},{rb[2] if rb else '-'}")
if not a and not b:
    print("no task measured a best candidate in either run")
PY
cat "$logs/rpc-compare.txt" | tee -a "$logs/rpc-summary.txt"
grep -h "not searched" "$logs"/rpc-tune-*.log | sort -u | tee -a "$logs/rpc-summary.txt"
exit $rc

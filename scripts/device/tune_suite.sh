#!/usr/bin/env bash
# Tune a handful of bench cases with `tune` (MetaSchedule), searching every lowering the planner
# makes a tactic of (TPAT's and TVM's), and keep each case's database only where a tuned tactic
# beats the best untuned one by >= 3%. On the GPU machine (TVM wheels staged as docs/tuning.md
# says: /tmp/tpat-site); runs on the CPU too with TARGET=llvm (the scripts' own test).
#
#   [TRIALS=64] [BUDGET=60] [TOTAL_S=340] [POPULATION=128] [LOWERING=both] scripts/device/tune_suite.sh [case id ...]
#
# One Python process (scripts/device/tune_suite.py) runs every case, so MetaSchedule's start-up is
# paid once; the run keeps to TOTAL_S seconds (each case's search budget is at most BUDGET, less
# when the cases left need it). Per case: `tune` of $MODELS/<id>.onnx into $DIR/db/<id>, then
# scripts/device/tune_compare.py's timing of every tactic untuned (TPAT's lowering; TVM's with
# dlight) and tuned (the database's records); the database moves to $DIR/kept/<id> (a plan's
# "database", `tpat generate --tuning`) when the fastest tuned tactic wins by >= 3%, else it is
# dropped. Results: $DIR/summary.tsv (per case: op, tune seconds, trials, tasks with their
# lowering, untuned best, tuned best, kept), printed at the end; per case <id>.tune.json,
# <id>.compare.json, <id>.log. DIR defaults to $OUT/tune-suite (.gpu/tune-suite without OUT).
set -uo pipefail
cd "$(dirname "$0")/../.."
TARGET=${TARGET:-sm_90}
TRIALS=${TRIALS:-64}
BUDGET=${BUDGET:-60}
TOTAL_S=${TOTAL_S:-340}
RESERVE_S=${RESERVE_S:-30}
LOWERING=${LOWERING:-both}
# Bench cases whose TVM lowering has a MetaSchedule space of many points on sm_90 (reductions:
# 2 sketches x 2 decisions; layer_norm: 4 x 3; tune.task_space), next to TPAT's hand-made
# lowering of the same node; onehot_vocab (TVM's one-hot: a one-point space) from the old list.
CASES=${CASES:-"reducemax_two_axes reducesum_middle_fp16 reducemax_leading layernorm_axis1_f32 reducelogsumexp_vocab onehot_vocab"}
DIR=${DIR:-${OUT:-.gpu}/tune-suite}
PY=${PYTHON:-python3}
MODELS=${MODELS:-bench/models}  # folder of <id>.onnx (the CPU test uses small ones)
export TPAT_HOME="$PWD" PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
[ "$TARGET" = llvm ] || export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda} PATH="/usr/local/cuda/bin:$PATH"
# A smaller evolutionary-search population than MetaSchedule's 512: less CPU per batch.
export TPAT_TUNE_POPULATION=${POPULATION:-128}
# No torch DLPack add-on (a JIT build on first use) and no cuInit from torch in every builder worker.
export TVM_FFI_DISABLE_TORCH_C_DLPACK=1 PYTORCH_NVML_BASED_CUDA_CHECK=1
# TVM's wheels staged by .stage/cN/absorb.sh (docs/tuning.md) live in /tmp/tpat-site; the image sets
# PYTHONDONTWRITEBYTECODE, so compile their byte code once (else every worker process does).
if [ -d /tmp/tpat-site ]; then
  export PYTHONPATH="/tmp/tpat-site:$PYTHONPATH"
  t0=$(date +%s); "$PY" -m compileall -q -j 0 /tmp/tpat-site "$PWD/python" > /dev/null 2>&1
  echo "byte code compiled in $(( $(date +%s) - t0 )) s"
fi
mkdir -p "$DIR"
ids=("$@"); [ ${#ids[@]} -eq 0 ] && read -r -a ids <<< "$CASES"
"$PY" scripts/device/tune_suite.py --dir "$DIR" --models "$MODELS" --target "$TARGET" --trials "$TRIALS" \
  --budget "$BUDGET" --total "$TOTAL_S" --reserve "$RESERVE_S" --lowering "$LOWERING" "${ids[@]}"
rc=$?
echo "== $DIR/summary.tsv"
column -t -s $'\t' "$DIR/summary.tsv" 2>/dev/null || cat "$DIR/summary.tsv"
exit $rc

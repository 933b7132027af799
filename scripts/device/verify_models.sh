#!/usr/bin/env bash
# Whole-model proof on the GPU machine (issue 14 item 6): for every OUT packed by
# scripts/device/pack.sh (.gpu/outs/<name>, the original model in .gpu/models/<name>/), builds the
# plugins for sm_90 (`tpat build`, skipped when plugins/build/libtpat_kernels.so is there) and runs
#   tpat verify OUT --model --original MODEL [--inputs MODEL_STEM.inputs.npz when packed]
# (TPAT's plugins through their launchers on the GPU, every other node through ONNX Runtime, against
# ONNX Runtime on the original). Logs go to $OUT (the device tool's output folder) or .gpu/logs:
# verify-models.log (one line per model: PASS / FAIL / BUILD_FAILED / NO_MODEL / ERROR), and
# build-<name>.log, verify-model-<name>.log per model.
#   scripts/device/verify_models.sh [--cpu] [--arch 90] [NAME...]
#     --cpu   plugins through their LLVM builds instead (no GPU, needs TVM: TPAT's venv); no build
#     NAME    only these packed OUTs (default: all)
# Exit 0 when every model passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/../.."
cpu=() arch=90 names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) cpu=(--cpu); shift ;;
    --arch) arch=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ -f .gpu/pack.tar.xz ] || { echo "error: .gpu/pack.tar.xz missing (scripts/device/pack.sh first)" >&2; exit 2; }
logs=${OUT:-.gpu/logs}; mkdir -p "$logs"
summary="$logs/verify-models.log"; : > "$summary"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar -C "$tmp" -xJf .gpu/pack.tar.xz
tpat="$tmp/pack/tpat"
export LD_LIBRARY_PATH="$tmp/pack/lib:${LD_LIBRARY_PATH:-}" TPAT_HOME="$PWD"
if [ ${#cpu[@]} -gt 0 ] && [ -x .venv/bin/python ]; then
  export TPAT_PYTHON="$PWD/.venv/bin/python"  # TVM for the LLVM builds
else
  export TPAT_PYTHON="${TPAT_PYTHON:-$(command -v python3)}" CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
fi
trt=(); [ -d .gpu/trt/include ] && trt=(--tensorrt-root "$PWD/.gpu/trt")
if [ ${#cpu[@]} -eq 0 ]; then
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/device.txt"
fi
[ ${#names[@]} -gt 0 ] || for d in .gpu/outs/*/; do [ -d "$d" ] && names+=("$(basename "$d")"); done
rc=0
for name in "${names[@]}"; do
  out=.gpu/outs/$name
  if [ ! -f "$out/tpat-generate.json" ]; then
    echo "ERROR         $name: not packed (.gpu/outs/$name)" | tee -a "$summary"; rc=1; continue
  fi
  model=$(find ".gpu/models/$name" -maxdepth 1 -name '*.onnx' 2>/dev/null | head -1)
  if [ -z "$model" ]; then
    echo "NO_MODEL      $name: the original model was not packed" | tee -a "$summary"; rc=1; continue
  fi
  if [ ${#cpu[@]} -eq 0 ] && [ ! -f "$out/plugins/build/libtpat_kernels.so" ]; then
    if ! "$tpat" build "$out" --arch "$arch" "${trt[@]}" > "$logs/build-$name.log" 2>&1; then
      echo "BUILD_FAILED  $name (build-$name.log)" | tee -a "$summary"; tail -20 "$logs/build-$name.log"; rc=1; continue
    fi
  fi
  inputs=(); [ -f "${model%.onnx}.inputs.npz" ] && inputs=(--inputs "${model%.onnx}.inputs.npz")
  t0=$(date +%s)
  "$tpat" verify "$out" --model "${cpu[@]}" --original "$model" "${inputs[@]}" > "$logs/verify-model-$name.log" 2>&1
  status=$?
  secs=$(( $(date +%s) - t0 ))
  log="$logs/verify-model-$name.log"
  line="$(grep -m1 'tensors compared' "$log" | sed 's/^ *//'); outputs: $(grep -c '^  PASS  output' "$log") pass, $(grep -c '^  FAIL  output' "$log") fail"
  grep -q 'first tensor that differs' "$log" && line="$line; $(grep -m1 'first tensor that differs' "$log" | sed 's/^ *//')"
  case $status in
    0) echo "PASS          $name (${secs} s): $line" | tee -a "$summary" ;;
    1) echo "FAIL          $name (${secs} s): $line" | tee -a "$summary"; rc=1 ;;
    *) echo "ERROR         $name (exit $status, ${secs} s): $(grep -m1 '^error:' "$log" | cut -c1-300 || tail -1 "$log")" | tee -a "$summary"; rc=1 ;;
  esac
done
echo "logs: $logs"
exit $rc

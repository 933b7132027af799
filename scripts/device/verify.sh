#!/usr/bin/env bash
# On the GPU machine (no Swift, no TVM): builds every OUT folder packed by scripts/device/pack.sh
# for sm_90 with the machine's cmake and /usr/local/cuda, then `tpat verify --sanitize` each;
# logs to $OUT (the device tool's output folder) or .gpu/logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
logs=${OUT:-.gpu/logs}; mkdir -p "$logs"
tmp=$(mktemp -d); tar -C "$tmp" -xJf .gpu/pack.tar.xz
export LD_LIBRARY_PATH="$tmp/pack/lib:${LD_LIBRARY_PATH:-}" TPAT_HOME="$PWD" TPAT_PYTHON="$(command -v python3)" CUDA_PATH=/usr/local/cuda
trt=(); [ -d .gpu/trt/include ] && trt=(--tensorrt-root "$PWD/.gpu/trt")
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$logs/device.txt"
rc=0
for out in .gpu/outs/*/; do
  name=$(basename "$out")
  echo "== $name" | tee -a "$logs/verify.log"
  if ! "$tmp/pack/tpat" build "$out" --arch 90 "${trt[@]}" > "$logs/build-$name.log" 2>&1; then
    echo "  BUILD FAILED (build-$name.log)" | tee -a "$logs/verify.log"; tail -30 "$logs/build-$name.log"; rc=1; continue
  fi
  "$tmp/pack/tpat" verify --sanitize "$out" 2>&1 | tee -a "$logs/verify.log" || rc=1
done
exit $rc

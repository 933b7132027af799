#!/usr/bin/env bash
# The GPU half of the conformance suite (docs/conformance.md): every plugin that
# `scripts/conformance.py run` made is built with CMake and run through its launcher by tpat_check
# on the ONNX backend test's own inputs and expected outputs (<P>/conformance/manifest.txt), every
# tactic, optionally under compute-sanitizer memcheck. Needs cmake, nvcc (CUDAToolkit), a GPU; no
# TVM, no TensorRT, no tpat binary.
#
#   scripts/conformance_gpu.sh [WORK=out/conformance] [ARCH=90] [JOBS=8] [SANITIZE=0] > log
#
# One line per plugin: "<case> <plugin> PASS|FAIL|BUILD_FAILED ..." and a summary at the end;
# build logs in <case>/out/plugins/build.log. Exit 0 when every plugin passed (and there was one).
set -u
work=${1:-out/conformance}
arch=${2:-90}
jobs=${3:-8}
sanitize=${4:-0}
export arch sanitize

one() {
  gen=$1
  case_name=$(basename "$(dirname "$gen")")
  b="$gen/plugins/build"
  if ! { cmake -S "$gen/plugins" -B "$b" -DTPAT_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release \
         && cmake --build "$b" -j 2 --target tpat_kernels tpat_check; } >"$gen/plugins/build.log" 2>&1; then
    echo "$case_name - BUILD_FAILED (see $gen/plugins/build.log)"
    return
  fi
  for m in "$gen"/plugins/*/conformance/manifest.txt; do
    [ -f "$m" ] || continue
    p=$(basename "$(dirname "$(dirname "$m")")")
    if [ "$sanitize" = 1 ]; then
      out=$(compute-sanitizer --tool memcheck --error-exitcode 99 "$b/tpat_check" "$b/libtpat_kernels.so" "$m" --all-tactics 2>&1); rc=$?
    else
      out=$("$b/tpat_check" "$b/libtpat_kernels.so" "$m" --all-tactics 2>&1); rc=$?
    fi
    if [ $rc = 0 ]; then echo "$case_name $p PASS"; else echo "$case_name $p FAIL rc=$rc"; fi
    printf '%s\n' "$out" | sed 's/^/    /'
  done
}
export -f one

ls -d "$work"/*/out 2>/dev/null | while read -r g; do [ -d "$g/plugins" ] && echo "$g"; done \
  | xargs -r -P "$jobs" -I{} bash -c 'one "$@"' _ {} | tee "$work/gpu-results.txt"
pass=$(grep -c ' PASS$' "$work/gpu-results.txt"); fail=$(grep -c ' FAIL ' "$work/gpu-results.txt"); bf=$(grep -c BUILD_FAILED "$work/gpu-results.txt")
echo "summary: $pass passed, $fail failed, $bf builds failed ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
[ "$pass" -gt 0 ] && [ "$fail" = 0 ] && [ "$bf" = 0 ]

#!/usr/bin/env bash
# Packs what `tpat verify` needs on a GPU machine without Swift or TVM into .gpu/ (git-ignored):
# the tpat binary with the Swift runtime libraries it links, the generated OUT folders given as
# arguments (copied to .gpu/outs/<name>; an OUT named `gen` is named after its parent, as
# out/real-models/<model>/gen), each OUT's original model (the `model` path in its
# tpat-generate.json, copied to .gpu/models/<name>/, for `tpat verify OUT --model`; with
# <model>.inputs.npz beside it when the model has one), and TensorRT headers when TensorRT_ROOT is set.
#   scripts/device/pack.sh [--budget MIB] [--real-models DIR] OUT...
#     --real-models DIR  also every DIR/<model>/gen that holds plugins (`make real-models` output),
#                        smallest first
#     --budget MIB       the most .gpu/ may hold (default 56: the device tool carries 64 MiB with
#                        the working tree); an OUT that would go over it is skipped and named
# Then on the GPU machine (the device tool, carry [".gpu"]): scripts/device/verify.sh (every plugin's
# check under compute-sanitizer) and scripts/device/verify_models.sh (whole models).
set -euo pipefail
cd "$(dirname "$0")/../.."
budget=56
outs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) budget=$2; shift 2 ;;
    --real-models)  # smallest first, so that the budget keeps as many as it can
      while read -r _ gen; do
        python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("plugins") else 1)' "$gen/tpat-generate.json" && outs+=("$gen")
      done < <(for gen in "$2"/*/gen; do [ -f "$gen/tpat-generate.json" ] && echo "$(du -sk --exclude=build "$gen" | cut -f1) $gen"; done | sort -n)
      shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) outs+=("$1"); shift ;;
  esac
done
bin=${TPAT_BIN:-.build/debug/tpat}
[ -x "$bin" ] || { echo "error: $bin not built (swift build)" >&2; exit 2; }
# The binary's archive is kept when it is newer than the binary (xz takes minutes).
rm -rf .gpu/outs .gpu/models .gpu/trt .gpu/pack .gpu/logs && mkdir -p .gpu/outs .gpu/models
if [ ! -f .gpu/pack.tar.xz ] || [ "$bin" -nt .gpu/pack.tar.xz ]; then
  rm -f .gpu/pack.tar.xz && mkdir -p .gpu/pack/lib
  cp "$bin" .gpu/pack/tpat
  ldd "$bin" | awk '/=> \// {print $3}' | grep -E 'swift|Foundation|dispatch|BlocksRuntime|_Testing|icu' | while read -r lib; do cp -L "$lib" .gpu/pack/lib/; done
  tar -C .gpu -cJf .gpu/pack.tar.xz.part pack && mv .gpu/pack.tar.xz.part .gpu/pack.tar.xz && rm -rf .gpu/pack
fi
if [ -n "${TensorRT_ROOT:-}" ] && [ -f "$TensorRT_ROOT/include/NvInfer.h" ]; then
  mkdir -p .gpu/trt && cp -r "$TensorRT_ROOT/include" .gpu/trt/
fi
kib() { du -sk "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
limit=$((budget * 1024))
skipped=()
for out in "${outs[@]}"; do
  out=${out%/}
  name=$(basename "$out")
  [ "$name" = gen ] && name=$(basename "$(dirname "$out")")
  if [ ! -f "$out/tpat-generate.json" ]; then
    echo "skipped $name: $out has no tpat-generate.json" >&2; skipped+=("$name"); continue
  fi
  if [ -e ".gpu/outs/$name" ]; then
    echo "skipped $out: a folder named $name is packed already" >&2; skipped+=("$name"); continue
  fi
  model=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"])' "$out/tpat-generate.json")
  cp -a "$out" ".gpu/outs/$name" && rm -rf ".gpu/outs/$name/plugins/build"
  if [ -f "$model" ]; then
    mkdir -p ".gpu/models/$name" && cp "$model" ".gpu/models/$name/"
    inputs="${model%.onnx}.inputs.npz"  # the exporter's example inputs (scripts/real_models/export.py)
    [ -f "$inputs" ] && cp "$inputs" ".gpu/models/$name/"
  else
    echo "note: $name: the original model $model is not here (verify_models.sh will skip it)" >&2
  fi
  if [ "$(kib .gpu)" -gt "$limit" ]; then
    size=$(( ($(kib ".gpu/outs/$name" ".gpu/models/$name") + 1023) / 1024 ))
    rm -rf ".gpu/outs/$name" ".gpu/models/$name"
    echo "skipped $name: its OUT and model ($size MiB) would take .gpu/ over the ${budget} MiB budget" >&2
    skipped+=("$name")
  fi
done
echo "packed: $(ls .gpu/outs | tr '\n' ' ')"
[ ${#skipped[@]} -eq 0 ] || echo "skipped: ${skipped[*]}"
du -sh .gpu

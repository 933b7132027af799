#!/usr/bin/env bash
# Packs what `tpat verify` needs on a GPU machine without Swift or TVM into .gpu/ (git-ignored):
# the tpat binary with the Swift runtime libraries it links, the generated OUT folders given as
# arguments (copied to .gpu/outs/<name>), and TensorRT headers when TensorRT_ROOT is set.
#   scripts/device/pack.sh out/demo out/hostile ...
# Then on the GPU machine (the device tool, carry [".gpu"]): scripts/device/verify.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${TPAT_BIN:-.build/debug/tpat}
[ -x "$bin" ] || { echo "error: $bin not built (swift build)" >&2; exit 2; }
rm -rf .gpu && mkdir -p .gpu/pack/lib .gpu/outs
cp "$bin" .gpu/pack/tpat
ldd "$bin" | awk '/=> \// {print $3}' | grep -E 'swift|Foundation|dispatch|BlocksRuntime|_Testing|icu' | while read -r lib; do cp -L "$lib" .gpu/pack/lib/; done
for out in "$@"; do
  name=$(basename "$out")
  cp -a "$out" ".gpu/outs/$name" && rm -rf ".gpu/outs/$name/plugins/build"
done
if [ -n "${TensorRT_ROOT:-}" ] && [ -f "$TensorRT_ROOT/include/NvInfer.h" ]; then
  mkdir -p .gpu/trt && cp -r "$TensorRT_ROOT/include" .gpu/trt/
fi
tar -C .gpu -cJf .gpu/pack.tar.xz pack && rm -rf .gpu/pack
du -sh .gpu

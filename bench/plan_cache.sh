#!/usr/bin/env bash
# Benchmark (not a test): `tpat plan` per node, cold (empty plan cache: TVM runs) and cached
# (same request again: the plan comes from the cache), measured in the same run.
# Usage: bench/plan_cache.sh   (after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
tpat=.build/debug/tpat
cache=$(mktemp -d); trap 'rm -rf "$cache"' EXIT
export TPAT_CACHE_DIR=$cache
printf '%-22s %-20s %9s %9s %7s\n' model node cold_s cached_s ratio
for spec in plugins_symbolic:scatter_rows_add plugins_symbolic:topk_unsorted plugins_symbolic:band_a \
            plugins_static:gridsample_5d plugins_static:resize_cubic plugins_static:maxunpool plugins_static:topk_4096; do
  model=tests/fixtures/models/${spec%%:*}.onnx node=${spec##*:}
  t0=$(date +%s.%N); $tpat plan "$model" --node "$node" -o /dev/null 2>/dev/null
  t1=$(date +%s.%N); $tpat plan "$model" --node "$node" -o /dev/null 2>/dev/null
  t2=$(date +%s.%N)
  python3 -c "c=$t1-$t0; w=$t2-$t1; print(f'%-22s %-20s %9.3f %9.3f %6.1fx' % ('${spec%%:*}', '$node', c, w, c / w))"
done

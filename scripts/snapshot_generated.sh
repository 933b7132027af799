#!/usr/bin/env bash
# Generates the plugins of the demo, the fixture models and the bench suite into one folder, with a
# fresh plan cache (nothing served from an earlier run), so that two trees can be compared:
#
#   scripts/snapshot_generated.sh /tmp/before        # on the old tree
#   scripts/snapshot_generated.sh /tmp/after         # on the new tree
#   scripts/snapshot_generated.sh --diff /tmp/before /tmp/after
#
# --diff compares the generated sources (.cu .cuh .cpp .h CMakeLists.txt .cmake) byte for byte and
# lists the other files (plan JSON, reports) that differ. Needs `swift build` (.build/debug/tpat)
# and the venv. Runs from the repository root; TPAT_HOME is set to it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [[ "${1:-}" == "--diff" ]]; then
  a=$2; b=$3
  status=0
  if ! diff -r -q "$a" "$b" --exclude='*.json' --exclude='*.onnx' --exclude='*.log' >/dev/null; then
    echo "generated sources differ:"
    diff -r -q "$a" "$b" --exclude='*.json' --exclude='*.onnx' --exclude='*.log' || true
    status=1
  else
    echo "generated sources (.cu .cuh .cpp .h CMake) identical"
  fi
  echo "other files that differ (plans, reports, models):"
  diff -r -q "$a" "$b" | grep -v -e '\.cu ' -e '\.cuh ' -e '\.cpp ' -e '\.h ' || true
  exit $status
fi

OUT=${1:?usage: snapshot_generated.sh OUTDIR | --diff A B}
TPAT=${TPAT_BIN:-$ROOT/.build/debug/tpat}  # TPAT_BIN: another build of tpat
PY=$ROOT/.venv/bin/python
test -x "$TPAT" || { echo "error: build first (swift build)" >&2; exit 2; }
mkdir -p "$OUT"
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
export TPAT_HOME=${TPAT_HOME:-$ROOT} TPAT_CACHE_DIR=$CACHE  # TPAT_HOME: the tree whose python/ is used

gen() {  # name model args...
  local name=$1 model=$2; shift 2
  if "$TPAT" generate "$model" -o "$OUT/$name" --no-reference --force --trt 11 "$@" >"$OUT/$name.log" 2>&1; then
    echo "ok   $name"
  else
    echo "exit $? $name (see $OUT/$name.log)"
  fi
}

gen demo examples/demo.onnx --auto
for m in tests/fixtures/models/*.onnx; do
  n=$(basename "$m" .onnx)
  gen "fixture-$n" "$m" --auto
done
"$PY" - <<'EOF' >"$CACHE/cases"
import json
for c in json.load(open("bench/cases.json"))["cases"]:
    print(c["id"], c["model"], c["select"])
EOF
while read -r id model op; do
  gen "bench-$id" "bench/models/$model" --ops "$op"
done <"$CACHE/cases"
ops=$("$PY" -c 'import onnx; print(",".join(sorted({n.op_type for n in onnx.load("bench/models/lowerings_check.onnx").graph.node})))')
gen bench-lowerings_check bench/models/lowerings_check.onnx --ops "$ops"

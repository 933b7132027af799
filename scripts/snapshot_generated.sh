#!/usr/bin/env bash
# Generates the plugins of the demo, the fixture models and the bench suite into one folder, with a
# fresh plan cache (nothing served from an earlier run), so that two trees can be compared:
#
#   scripts/snapshot_generated.sh /tmp/before        # on the old tree
#   scripts/snapshot_generated.sh /tmp/after         # on the new tree
#   scripts/snapshot_generated.sh --diff /tmp/before /tmp/after
#
# --diff compares the generated sources (.cu .cuh .cpp .h CMakeLists.txt .cmake) byte for byte, with
# plugins paired by op type and nodes (their names carry the planner's digest), and lists the other
# files (plan JSON, specs, reports) that differ. Needs `swift build` (.build/debug/tpat)
# and the venv. Runs from the repository root; TPAT_HOME is set to it.
#
# SNAPSHOT_ONLY=<regex>: only the cases whose name (demo, fixture-<model>, bench-<case>) matches.
set -euo pipefail
cd "${TPAT_ROOT:-$(dirname "$0")/..}"  # TPAT_ROOT: the checkout, when this script runs from a copy
ROOT=$PWD

if [[ "${1:-}" == "--diff" ]]; then
  # Plugin names end in the plan-cache key, which covers the Python package's digest: a changed .py
  # file renames every plugin. Plugins are paired by op type and covered nodes
  # (tpat-generate.json) and B's names replaced by A's before comparing bytes.
  exec "${PYTHON:-.venv/bin/python}" - "$2" "$3" <<'PY'
import json, os, sys
a, b = sys.argv[1], sys.argv[2]
SOURCES = (".cu", ".cuh", ".cpp", ".h", ".cmake", "CMakeLists.txt")
def names(case_dir):
    try:
        rep = json.load(open(os.path.join(case_dir, "tpat-generate.json")))
    except OSError:
        return {}
    return {(p["opType"], tuple(sorted(p["nodes"]))): p["name"] for p in rep.get("plugins", [])}
def files(root):
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            out[os.path.relpath(os.path.join(d, f), root)] = os.path.join(d, f)
    return out
src_diff, other_diff = [], []
cases = sorted(set(os.listdir(a)) | set(os.listdir(b)))
for case in cases:
    ca, cb = os.path.join(a, case), os.path.join(b, case)
    if not (os.path.isdir(ca) and os.path.isdir(cb)):
        if os.path.isdir(ca) or os.path.isdir(cb):
            src_diff.append(f"{case}: only in {'A' if os.path.isdir(ca) else 'B'}")
        continue
    na, nb = names(ca), names(cb)
    rename = {nb[k]: na[k] for k in nb if k in na}
    def norm(rel, data):
        for new, old in rename.items():
            rel = rel.replace(new, old)
            data = data.replace(new.encode(), old.encode())
        return rel, data
    fa = files(ca)
    fb = {}
    for rel, path in files(cb).items():
        r, data = norm(rel, open(path, "rb").read())
        fb[r] = data
    for rel in sorted(set(fa) | set(fb)):
        is_src = rel.endswith(SOURCES)
        target = src_diff if is_src else other_diff
        if rel not in fa or rel not in fb:
            target.append(f"{case}/{rel}: only in {'A' if rel in fa else 'B'}")
        elif open(fa[rel], "rb").read() != fb[rel]:
            target.append(f"{case}/{rel}")
    if set(nb.values()) != set(rename):
        src_diff.append(f"{case}: plugins without a partner: {sorted(set(nb.values()) - set(rename))}")
print("generated sources (.cu .cuh .cpp .h CMake), plugin names paired:",
      "identical" if not src_diff else f"{len(src_diff)} differ")
for x in src_diff:
    print("  ", x)
print(f"other files that differ (plans, specs, reports, models, logs): {len(other_diff)}")
for x in other_diff:
    print("  ", x)
sys.exit(1 if src_diff else 0)
PY
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
  [[ -z "${SNAPSHOT_ONLY:-}" || "$name" =~ $SNAPSHOT_ONLY ]] || return 0
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

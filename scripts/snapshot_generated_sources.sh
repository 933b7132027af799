#!/usr/bin/env bash
# Snapshot the sources `tpat generate` writes for the demo, the fixture models and the bench suite,
# so that a change to code generation can be diffed against the tree before it:
#
#   scripts/snapshot_generated_sources.sh /tmp/before    # on the old tree (after swift build)
#   scripts/snapshot_generated_sources.sh /tmp/after     # on the new tree
#   diff -r /tmp/before /tmp/after
#
# Each model goes to DEST/<label>/ (demo, fixtures-<model>, bench-<case>; --auto selection except
# for the bench cases, which select their op as bench/README.md does); only the generated
# plugin sources and the rewritten model's report are kept (not build outputs). The cross-check
# and the reference data are skipped (TPAT_CROSS_CHECK=0, --no-reference): they do not change the
# sources and cost minutes. Plans may come from the plan cache (~/.cache/tpat). A model that
# yields no plugin (exit 3, or nothing selected) still gets its folder and exit code, so that the
# set of outcomes is compared too. TPAT (default .build/debug/tpat) and TPAT_HOME (default the repo)
# can be overridden.
set -u
DEST=${1:?usage: $0 DEST}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TPAT=${TPAT:-$REPO/.build/debug/tpat}
export TPAT_HOME=${TPAT_HOME:-$REPO}
export TPAT_CROSS_CHECK=0
mkdir -p "$DEST"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() { # label model [args...]
    local label=$1 model=$2
    shift 2
    "$TPAT" generate "$model" -o "$WORK/$label" --no-reference --force "$@" >"$WORK/$label.log" 2>&1
    local rc=$?
    mkdir -p "$DEST/$label"
    echo "$rc" >"$DEST/$label/exit-code"
    if [ -d "$WORK/$label/plugins" ]; then
        # Sources only: *.cu, *.cuh, *.h, *.cpp, *.json specs, CMakeLists.txt.
        (cd "$WORK/$label" && find plugins -type f \( -name '*.cu' -o -name '*.cuh' -o -name '*.h' -o -name '*.cpp' \
            -o -name '*.json' -o -name 'CMakeLists.txt' -o -name '*.cmake' -o -name '*.map' \) -print0 |
            xargs -0 -r cp --parents -t "$DEST/$label")
    fi
    echo "$label: exit $rc"
}

run demo "$REPO/examples/demo.onnx" --auto
for m in "$REPO"/tests/fixtures/models/*.onnx; do
    run "fixtures-$(basename "$m" .onnx)" "$m" --auto
done
run bench-lowerings_check "$REPO/bench/models/lowerings_check.onnx" --auto
python3 - "$REPO/bench/cases.json" >"$WORK/cases.txt" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1]))["cases"]:
    print(c["id"], c["model"], c["select"])
EOF
while read -r id model op; do
    run "bench-$id" "$REPO/bench/models/$model" --ops "$op"
done <"$WORK/cases.txt"

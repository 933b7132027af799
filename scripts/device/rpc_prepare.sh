#!/usr/bin/env bash
# On the CPU machine, before scripts/device/rpc_tune.sh: the OUT folder it tunes, packed into .gpu/.
# One ONNX model holding the nodes of several bench cases side by side (bench/models/<id>.onnx,
# names prefixed c0_, c1_, ...), generated with TVM's own lowering (TPAT_LOWERING=tvm): TPAT's
# lowerings of these ops give MetaSchedule a space of one point (0 sampled decisions on sm_90),
# TVM's give it several (layer_norm: 4 sketches x 3 decisions; max/sum/ReduceL2: 2 x 2), and the
# plans use the same functions, so tuned records apply to them. One OUT folder means one bridge
# process per `tpat tune` run: MetaSchedule's start-up is paid once per run, not once per plugin.
#   [CASES="id ..."] [TPAT=path/to/tpat] scripts/device/rpc_prepare.sh
# Writes out/rpc-set/model.onnx and out/rpc-set/tvm (the OUT), then scripts/device/pack.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
CASES=${CASES:-"layernorm_axis1_f32 reducemax_two_axes reducesum_middle_fp16"}
TPAT=${TPAT:-.build/debug/tpat}
PY=${PY:-.venv/bin/python}
[ -x "$TPAT" ] || { echo "error: $TPAT not built (swift build, or TPAT=/path/to/tpat)" >&2; exit 2; }
dir=out/rpc-set
rm -rf "$dir" && mkdir -p "$dir"
# shellcheck disable=SC2086
ops=$("$PY" - "$dir/model.onnx" $CASES <<'PY'
import sys

import onnx
from onnx import compose, helper

out, cases = sys.argv[1], sys.argv[2:]
graphs, opsets, ops = [], {}, []
for i, case in enumerate(cases):
    m = compose.add_prefix(onnx.load(f"bench/models/{case}.onnx"), f"c{i}_")
    graphs.append(m.graph)
    for o in m.opset_import:
        opsets[o.domain] = max(o.version, opsets.get(o.domain, 0))
    ops += [n.op_type for n in m.graph.node if n.op_type not in ops]
g = helper.make_graph(
    [n for g in graphs for n in g.node],
    "rpc_set",
    [x for g in graphs for x in g.input],
    [x for g in graphs for x in g.output],
    [x for g in graphs for x in g.initializer],
)
model = helper.make_model(g, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
model.ir_version = 9
onnx.checker.check_model(model)
onnx.save(model, out)
print(",".join(ops))
PY
)
echo "model: $dir/model.onnx ($CASES), ops $ops"
TPAT_HOME="$PWD" TPAT_LOWERING=tvm "$TPAT" generate "$dir/model.onnx" --trt 11 --ops "$ops" -o "$dir/tvm" -q
TPAT_BIN="$TPAT" scripts/device/pack.sh "$dir/tvm"
ls .gpu/outs

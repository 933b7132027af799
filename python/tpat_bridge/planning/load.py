"""Node loading: the one-node ONNX model of a plan request -> NodeInfo (inputs, outputs, symbols).

Unnamed symbolic input dims get names (<input>_dim<d>), TopK sorted=0 is planned as sorted=1; each
such change is a human note in `NodeInfo.fixups`. Ops whose output shape depends on input values are
refused here (`data_dependent_shape`): they have no static launch plan, except those TPAT lowers
itself with a size-tensor output (`DATA_DEPENDENT_LOWERED`; the planner refuses them when that
lowering does not apply).
"""

from __future__ import annotations

import onnx

from ..dtypes import onnx_dtype
from ..errors import PlanError
from ..node import NodeInfo

# ONNX ops whose output shape depends on input values: no static launch plan exists.
DATA_DEPENDENT_OPS = {
    "NonZero": "output shape depends on the number of non-zero elements",
    "Unique": "output shape depends on the number of distinct values",
    "NonMaxSuppression": "output shape depends on the number of selected boxes",
    "Compress": "output shape depends on the condition values",
    "StringNormalizer": "string tensors",
}

# Of those, the ones TPAT lowers itself (a size-tensor output, docs/kernel-plan.md "Data-dependent
# outputs"): planned only through TPAT's lowering, refused when it does not apply.
DATA_DEPENDENT_LOWERED = ("NonZero", "Compress", "Unique", "NonMaxSuppression")


MAX_ELEMENTS = 2**62  # a tensor's static element count must stay far from int64 overflow


def _check_dims(name, shape):
    """A declared static dim is >= 0 and the static dims' product is below MAX_ELEMENTS (exact
    Python ints: nothing wraps), else `invalid_model`."""
    count = 1
    for d in shape:
        if isinstance(d, int):
            if d < 0:
                raise PlanError("invalid_model", f"'{name}' has a negative dim {d}")
            count *= d
    if count >= MAX_ELEMENTS:
        raise PlanError("invalid_model", f"'{name}' would have {count} elements (>= 2^62)")


def load_node(model_path: str) -> NodeInfo:
    try:
        model = onnx.load(model_path, load_external_data=False)  # TPAT writes node models inline
    except Exception as e:  # noqa: BLE001
        raise PlanError("model_load_failed", f"cannot read ONNX model '{model_path}': {e}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PlanError("invalid_model", f"ONNX checker rejected the model: {first}") from None
    g = model.graph
    if len(g.node) != 1:
        raise PlanError("not_single_node", f"expected exactly one node, found {len(g.node)}")
    node = g.node[0]
    if (
        node.op_type in DATA_DEPENDENT_OPS
        and node.domain in ("", "ai.onnx")
        and node.op_type not in DATA_DEPENDENT_LOWERED
    ):
        raise PlanError(
            "data_dependent_shape",
            f"{node.op_type}: {DATA_DEPENDENT_OPS[node.op_type]}; TVM lowers it to runtime "
            "builtins, not to kernels with a static launch plan",
        )
    init_names = {t.name for t in g.initializer}
    inputs, symbols, seen = [], [], set()
    changed = False
    for gi in g.input:
        if gi.name in init_names:
            continue
        tt = gi.type.tensor_type
        if not gi.type.HasField("tensor_type"):
            raise PlanError("unsupported_model", f"input '{gi.name}' is not a tensor")
        dtype = onnx_dtype(tt.elem_type)
        shape = []
        if not tt.HasField("shape"):
            raise PlanError("unsupported_model", f"input '{gi.name}' has no rank")
        for d, dim in enumerate(tt.shape.dim):
            if dim.HasField("dim_value"):
                shape.append(int(dim.dim_value))
            else:
                name = dim.dim_param if dim.HasField("dim_param") and dim.dim_param else None
                if name is None:
                    name = f"{gi.name}_dim{d}"
                    dim.dim_param = name
                    changed = True
                shape.append(name)
                if name not in seen:
                    seen.add(name)
                    symbols.append({"name": name, "input": len(inputs), "dim": d})
        _check_dims(gi.name, shape)
        inputs.append({"name": gi.name, "dtype": dtype, "shape": shape})
    outputs = []
    for go in g.output:
        tt = go.type.tensor_type
        dtype = onnx_dtype(tt.elem_type)
        shape = None
        if tt.HasField("shape"):
            shape = [int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
            _check_dims(go.name, shape)
        outputs.append({"name": go.name, "dtype": dtype, "shape": shape})
    info = NodeInfo(node.op_type, inputs, outputs, symbols, model)
    if changed:
        info.fixups.append("unnamed input dims were given symbol names <input>_dim<d>")
    if node.op_type == "TopK":
        # sorted=0 leaves the output order unspecified, so the sorted result is a valid answer;
        # TVM's frontend only implements sorted=1.
        for a in node.attribute:
            if a.name == "sorted" and a.i == 0:
                a.i = 1
                info.fixups.append("TopK sorted=0 planned as sorted=1 (a sorted result is a valid unsorted one)")
    return info

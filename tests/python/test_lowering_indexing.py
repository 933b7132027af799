"""TPAT's own GatherND and OneHot lowerings (python/tpat_bridge/lowerings/gather.py, onehot.py), CPU only.
(The grids of attributes and dtypes are in test_lowering_gather.py and test_lowering_onehot.py.)

Every case: the plan validates against the schema, names the lowering and launches exactly one
kernel; its CUDA source compiles with nvcc -arch=sm_90; the TE compute built for LLVM matches
ONNX Runtime. Cases: GatherND with batch_dims 0 and 1, negative indices, a symbolic
dim, a full index (scalar slices); OneHot on the last, first and a middle axis, constant and runtime values, negative and
out-of-range indices.

Run: .venv/bin/python -m pytest tests/python/test_lowering_indexing.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks  # noqa: E402

vi = h.make_tensor_value_info


def _mk(node, inputs, outputs, inits=()):
    g = h.make_graph([node], "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


def _gathernd(dshape, qshape, oshape, b=0, qtype=TP.INT64):
    n = h.make_node("GatherND", ["data", "idx"], ["y"], batch_dims=b)
    return _mk(n, [vi("data", TP.FLOAT, dshape), vi("idx", qtype, qshape)], [vi("y", TP.FLOAT, oshape)])


def _onehot(ishape, depth, oshape, axis=-1, runtime_values=False):
    n = h.make_node("OneHot", ["ind", "depth", "vals"], ["y"], axis=axis)
    inputs = [vi("ind", TP.INT64, ishape)]
    inits = [h.make_tensor("depth", TP.INT64, [], [depth])]
    if runtime_values:
        inputs.append(vi("vals", TP.FLOAT, [2]))
    else:
        inits.append(h.make_tensor("vals", TP.FLOAT, [2], [-0.5, 2.0]))
    return _mk(n, inputs, [vi("y", TP.FLOAT, oshape)], inits)


CASES = {
    # name: (model, {symbol: size})
    "gathernd_b0": (_gathernd([4, 5, 6], [7, 2], [7, 6]), {}),
    "gathernd_b1_sym": (_gathernd(["B", 5, 6], ["B", 3, 1], ["B", 3, 6], b=1), {"B": 2}),
    "gathernd_full_index": (_gathernd([4, 5], [6, 2], [6]), {}),
    "onehot_last": (_onehot([3, 4], 10, [3, 4, 10]), {}),
    "onehot_axis0_runtime_values": (_onehot([5], 7, [7, 5], axis=0, runtime_values=True), {}),
    "onehot_middle_sym": (_onehot(["N", 3], 6, ["N", 6, 3], axis=1), {"N": 4}),
}


def _feeds(name, model, syms, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in model.graph.input:
        shape = input_shape(inp, syms)
        if inp.name == "data":
            feeds["data"] = rng.standard_normal(shape).astype(np.float32)
        elif inp.name == "vals":
            feeds["vals"] = np.array([0.25, -3.0], np.float32)
        elif inp.name == "idx":
            dshape = feeds["data"].shape
            k, b = shape[-1], (1 if "b1" in name else 0)
            cols = [rng.integers(-dshape[b + j], dshape[b + j], shape[:-1]) for j in range(k)]
            dt = np.int32 if inp.type.tensor_type.elem_type == TP.INT32 else np.int64
            feeds["idx"] = np.stack(cols, -1).astype(dt)
        elif inp.name == "ind":
            depth = int(onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "depth")))
            feeds["ind"] = rng.integers(-depth - 2, depth + 2, shape).astype(np.int64)
    return feeds


@pytest.mark.parametrize("name", list(CASES))
def test_plan_is_one_kernel(built, name):
    want = "gather_nd" if name.startswith("gathernd") else "one_hot"
    plan = lowered_plan(built[name]["res"], want)
    assert len(launches(plan)) == 1


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(CASES, feeds=lambda name: _feeds(name, *CASES[name]))

"""TPAT's OneHot lowering (python/tpat_bridge/lowerings/onehot.py), CPU only.

Every case: the plan validates, names the lowering, launches one kernel in the expected form (row:
the depth axis last; column: any other axis) with the expected vector width; nvcc -arch=sm_90
compiles it (16-byte stores where the shape allows); the same TIR with serial loops built for
LLVM matches ONNX Runtime (or, for the output types ONNX Runtime's OneHot has no kernel for, a
numpy reference of the ONNX definition) exactly. The grid: axis last / 0 / middle / negative,
depth 1, smaller than the vector, not a multiple of it (a vector straddles two rows), large;
negative and out-of-range indices (all-`off` lines); int32, int64 and float indices; constant and
runtime values; float32/16, bfloat16, int64/32/8, uint8, bool outputs; symbolic dims.

Run: .venv/bin/python -m pytest tests/python/test_lowering_onehot.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks  # noqa: E402

vi = h.make_tensor_value_info
NP = {
    TP.FLOAT: np.float32,
    TP.FLOAT16: np.float16,
    TP.BFLOAT16: ml_dtypes.bfloat16,
    TP.INT64: np.int64,
    TP.INT32: np.int32,
    TP.INT8: np.int8,
    TP.UINT8: np.uint8,
    TP.BOOL: np.bool_,
}
VALUES = {TP.BOOL: [False, True], TP.UINT8: [3, 250], TP.INT8: [-7, 100]}
# (indices, values) types of ONNX Runtime's CPU OneHot kernels with an int64 depth, as far as the
# cases use them; the others are checked against the numpy reference only
ORT_KERNELS = {(TP.INT64, TP.FLOAT), (TP.INT64, TP.FLOAT16), (TP.INT64, TP.INT64), (TP.INT64, TP.INT32)}


def _onehot(ishape, depth, axis=-1, vt=TP.FLOAT, it=TP.INT64, runtime_values=False):
    r = len(ishape)
    a = axis % (r + 1)
    oshape = ishape[:a] + [depth] + ishape[a:]
    n = h.make_node("OneHot", ["ind", "depth", "vals"], ["y"], axis=axis)
    inputs = [vi("ind", it, ishape)]
    inits = [h.make_tensor("depth", TP.INT64, [], [depth])]
    vals = np.array(VALUES.get(vt, [-0.5, 2.0])).astype(NP[vt])
    if runtime_values:
        inputs.append(vi("vals", vt, [2]))
    else:
        inits.append(numpy_helper.from_array(vals, "vals"))
    g = h.make_graph([n], "g", inputs, [vi("y", vt, oshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 11)])
    m.ir_version = 9
    return m


# name: (model, {symbol: size}, form, vector width)
CASES = {
    "last_f32": (_onehot([3, 4], 12), {}, "row", 4),
    "last_f32_straddle": (_onehot([6], 10), {}, "row", 4),
    "last_f32_odd_depth": (_onehot([5, 3], 13), {}, "row", 1),
    "last_fp16_straddle": (_onehot([8], 12, vt=TP.FLOAT16), {}, "row", 8),
    "last_fp16_depth1": (_onehot([4], 1, vt=TP.FLOAT16), {}, "row", 1),
    "last_fp16_small_depth": (_onehot([16], 3, vt=TP.FLOAT16), {}, "row", 2),
    "last_vocab_f32": (_onehot([2, 3], 1001), {}, "row", 2),
    # large enough for 4 vectors per thread (row_vectors): a vector straddles two rows, a tail
    # block; fp16 with runtime values (no straddle)
    "last_vocab_f32_u4": (_onehot([88], 50257), {}, "row", 4),
    "last_fp16_u4_runtime": (_onehot([4, 68], 32000, vt=TP.FLOAT16, runtime_values=True), {}, "row", 8),
    "last_int64": (_onehot([4, 2], 6, vt=TP.INT64), {}, "row", 2),
    "last_int32_idx32": (_onehot([5], 8, vt=TP.INT32, it=TP.INT32), {}, "row", 4),
    "last_float_indices": (_onehot([7], 9, it=TP.FLOAT), {}, "row", 1),
    "last_runtime_values": (_onehot([3, 2], 8, runtime_values=True), {}, "row", 4),
    "last_runtime_values_fp16": (_onehot([4], 16, vt=TP.FLOAT16, runtime_values=True), {}, "row", 8),
    "last_bool": (_onehot([6], 16, vt=TP.BOOL), {}, "row", 1),
    "last_uint8": (_onehot([2, 3], 32, vt=TP.UINT8), {}, "row", 16),
    "last_bf16": (_onehot([5], 8, vt=TP.BFLOAT16), {}, "row", 8),
    "axis0_fp16": (_onehot([64], 20, axis=0, vt=TP.FLOAT16), {}, "column", 8),
    "axis0_f32_deep": (_onehot([12], 40, axis=0), {}, "column", 4),
    "axis0_odd_inner": (_onehot([7], 5, axis=0), {}, "column", 1),
    "axis1_middle_int8": (_onehot([3, 32], 6, axis=1, vt=TP.INT8), {}, "column", 16),
    "axis_neg2_f32": (_onehot([2, 3, 8], 5, axis=-2), {}, "column", 4),
    "axis0_runtime_values_fp16": (_onehot([16], 4, axis=0, vt=TP.FLOAT16, runtime_values=True), {}, "column", 8),
    "symbolic_last": (_onehot(["N"], 8), {"N": 5}, "row", 4),
    "symbolic_middle": (_onehot(["N", 4], 6, axis=1), {"N": 3}, "column", 4),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    depth = int(numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "depth")))
    feeds = {}
    for inp in model.graph.input:
        shape = input_shape(inp, syms)
        et = inp.type.tensor_type.elem_type
        if inp.name == "ind":
            x = rng.integers(-depth - 3, depth + 3, shape)
            feeds["ind"] = (x + 0.0).astype(np.float32) if et == TP.FLOAT else x.astype(NP[et])
        elif inp.name == "vals":
            feeds["vals"] = np.array([0.25, -3.0]).astype(NP[et])
    return feeds


def _numpy_onehot(model, feeds):
    """ONNX's definition: wrap negative indices once, out of range -> all off."""
    node = model.graph.node[0]
    depth = int(numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "depth")))
    vals = feeds.get("vals")
    if vals is None:
        vals = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == "vals"))
    ind = feeds["ind"].astype(np.int64)
    ind = np.where(ind < 0, ind + depth, ind)
    r = ind.ndim
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1) % (r + 1)
    hit = np.expand_dims(ind, axis) == np.arange(depth).reshape([depth if k == axis else 1 for k in range(r + 1)])
    return np.where(hit, vals[1], vals[0]).astype(vals.dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_plan_form_and_vector(built, name):
    _, _, form, vec = CASES[name]
    plan = lowered_plan(built[name]["res"], "one_hot")
    assert len(launches(plan)) == 1
    assert f"{form} form, {vec}-element vector stores" in plan["lowering_detail"], plan["lowering_detail"]
    assert ("4 vectors per thread" in plan["lowering_detail"]) == ("_u4" in name), plan["lowering_detail"]
    out_bytes = {"float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int8": 1, "uint8": 1}
    if vec * out_bytes.get(plan["outputs"][0]["dtype"], 0) == 16:
        assert re.search(r"\*\((uint4|float4|int4|longlong2)\*\)\(out_w_ptr", plan["cuda_source"]), "no 16-byte store"


def _ort_has(name):
    model = CASES[name][0]
    return (
        model.graph.input[0].type.tensor_type.elem_type,
        model.graph.output[0].type.tensor_type.elem_type,
    ) in ORT_KERNELS


test_nvcc_compiles, test_numerics_llvm = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    ort_has=_ort_has,
    reference=lambda name, feeds: [_numpy_onehot(CASES[name][0], feeds)],
)

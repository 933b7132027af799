"""TPAT's CenterCropPad lowering (python/tpat_bridge/lowerings/centercroppad.py), CPU only.

Every case: the plan validates against the schema and names the lowering, one kernel; its CUDA source
compiles with nvcc -arch=sm_90; the same TE compute built for LLVM matches ONNX Runtime (and ONNX's
reference implementation, except where the reference skips an axis whose target length equals the
axis number: `if sh == a` in onnx/reference/ops/op_center_crop_pad.py; TPAT follows ONNX Runtime).
Cases: crop, pad, crop and pad together, odd differences (the extra element at the end), the axes
attribute (negative too, HWC and CHW), symbolic cropped and copied-through dims, float16, int64,
bool, uint8, a vectorized copy (last axis copied through) and a 1-D input. A runtime shape declines.

Run: .venv/bin/python -m pytest tests/python/test_lowering_centercroppad.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import assert_matches, input_shape, launches, lowered_plan, lowering_checks  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "int64": TP.INT64, "bool": TP.BOOL, "uint8": TP.UINT8}


def _model(xshape, target, oshape, dtype="float32", const=True, **attrs):
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    inits = []
    if const:
        inits = [numpy_helper.from_array(np.array(target, np.int64), "shape")]
    else:
        inputs.append(h.make_tensor_value_info("shape", TP.INT64, [len(target)]))
    node = h.make_node("CenterCropPad", ["x", "shape"], ["y"], **attrs)
    g = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size})
    "crop": (_model([20, 10, 3], [10, 7, 3], [10, 7, 3]), {}),  # test_center_crop_pad_crop
    "pad": (_model([10, 7, 3], [20, 10, 3], [20, 10, 3]), {}),
    "crop_and_pad": (_model([20, 8, 3], [10, 10, 3], [10, 10, 3]), {}),
    "odd_differences": (_model([9, 4, 6], [4, 9, 3], [4, 9, 3]), {}),
    "axes_hwc": (_model([20, 8, 3], [10, 9], [10, 9, 3], axes=[0, 1]), {}),
    "axes_chw_negative": (_model([3, 20, 8], [10, 9], [3, 10, 9], axes=[-2, -1]), {}),
    "target_equals_axis_number": (_model([3, 5, 8], [2], [3, 5, 2], axes=[2]), {}),
    "symbolic_cropped_axis": (_model(["N", 6, 8], [4, 5], [4, 6, 5], axes=[0, 2]), {"N": 7}),
    "symbolic_copied_axis": (_model(["B", 9, 16], [5], ["B", 5, 16], axes=[1]), {"B": 3}),
    "vectorized_fp16": (_model([4, 13, 64], [7, 3], [7, 3, 64], "float16", axes=[0, 1]), {}),
    "int64": (_model([5, 6], [8, 3], [8, 3], "int64"), {}),
    "bool": (_model([5, 6], [2, 9], [2, 9], "bool"), {}),
    "uint8_last_axis_copied": (_model([6, 5, 32], [9], [6, 9, 32], "uint8", axes=[1]), {}),
    "one_d": (_model([7], [12], [12]), {}),
    # the last axis cropped / padded by whole vectors: vectorized (a crop without bounds tests)
    "crop_last_vectorized": (_model([2, 6, 32], [4, 24], [2, 4, 24], axes=[1, 2]), {}),
    "pad_last_vectorized": (_model([3, 5, 8], [7, 16], [3, 7, 16], axes=[1, 2]), {}),
    "pad_last_narrower_vector_fp16": (_model([3, 12], [16], [3, 16], "float16", axes=[1]), {}),
    "crop_last_odd_offset": (_model([4, 10], [7], [4, 7], axes=[1]), {}),
}
VEC = {
    "vectorized_fp16": 8,
    "uint8_last_axis_copied": 1,
    "crop_last_vectorized": 4,
    "pad_last_vectorized": 4,
    "pad_last_narrower_vector_fp16": 2,  # offset 2: 2-element (4-byte) vectors
    "crop_last_odd_offset": 1,
}

NOT_LOWERED = {"runtime_shape": _model([20, 10, 3], [10, 7, 3], [10, 7, 3], const=False)}

# ONNX's reference skips an axis whose target equals the axis number (`if sh == a: pass`)
REFERENCE_DIFFERS = {"target_equals_axis_number"}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    t = vi.type.tensor_type.elem_type
    if t == TP.BOOL:
        return {"x": rng.integers(0, 2, shape).astype(bool)}
    if t in (TP.INT64, TP.UINT8):
        return {"x": rng.integers(1, 100, shape).astype(np.int64 if t == TP.INT64 else np.uint8)}
    return {"x": rng.standard_normal(shape).astype(np.float16 if t == TP.FLOAT16 else np.float32)}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "center_crop_pad")
    assert len(launches(plan)) == 1
    if name in VEC:
        assert f"{VEC[name]} element(s) per thread" in plan["lowering_detail"]


def _onnx_reference(name, feeds, outs):
    ref = ReferenceEvaluator(CASES[name][0]).run(None, feeds)[0]
    if name in REFERENCE_DIFFERS:
        assert ref.shape != outs[0].shape  # the reference keeps the axis whole
    else:
        assert_matches(outs[0], ref, 0)


test_nvcc_compiles, test_numerics_llvm_vs_ort_and_onnx_reference = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name]), also=_onnx_reference
)


def test_runtime_shape_declines(built):
    choice = registry.choose(load_node(str(built["runtime_shape"]["path"])))
    assert choice.lowering is None and "runtime input" in choice.reason

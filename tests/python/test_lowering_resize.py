"""TPAT's own Resize lowering (python/tpat_bridge/lowerings/resize.py), CPU only.

Every case: the plan validates against the schema and names the lowering; its CUDA source compiles
with nvcc -arch=sm_90; the same TE compute built for LLVM matches ONNX Runtime (float16 cases: ONNX
Runtime in float32, rounded). Cases cover linear and cubic, every coordinate transform TPAT lowers,
scales and sizes, down- and up-scaling, 1, 2 and 3 resized axes, exclude_outside, cubic_coeff_a,
the opset-18 `axes` attribute and a symbolic batch dimension. Modes TPAT does not lower (nearest,
tf_crop_and_resize, antialias) keep TVM's lowering.

Run: .venv/bin/python -m pytest tests/python/test_lowering_resize.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import assert_matches, input_shape, lowered_plan, run_llvm, run_ort  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16}


def _model(xshape, oshape, dtype="float32", scales=None, sizes=None, opset=19, **attrs):
    inputs = ["x", "", "scales" if scales is not None else ""]
    inits = []
    if scales is not None:
        inits.append(h.make_tensor("scales", TP.FLOAT, [len(scales)], scales))
    if sizes is not None:
        inputs.append("sizes")
        inits.append(h.make_tensor("sizes", TP.INT64, [len(sizes)], sizes))
    n = h.make_node("Resize", inputs, ["y"], **attrs)
    g = h.make_graph(
        [n],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)],
        inits,
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, tolerance)
    "linear_half_pixel_up": (_model([1, 2, 5, 7], [1, 2, 20, 14], scales=[1, 1, 4, 2], mode="linear"), {}, 1e-5),
    "linear_half_pixel_down": (_model([2, 3, 9, 8], [2, 3, 4, 3], scales=[1, 1, 0.5, 0.4], mode="linear"), {}, 1e-5),
    "linear_align_corners": (
        _model(
            [1, 1, 4, 6],
            [1, 1, 7, 11],
            sizes=[1, 1, 7, 11],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        ),
        {},
        1e-5,
    ),
    "linear_asymmetric": (
        _model(
            [1, 2, 3, 5], [1, 2, 6, 7], sizes=[1, 2, 6, 7], mode="linear", coordinate_transformation_mode="asymmetric"
        ),
        {},
        1e-5,
    ),
    "linear_pytorch_half_pixel": (
        _model(
            [1, 2, 4, 5],
            [1, 2, 1, 9],
            sizes=[1, 2, 1, 9],
            mode="linear",
            coordinate_transformation_mode="pytorch_half_pixel",
        ),
        {},
        1e-5,
    ),
    "linear_half_pixel_symmetric": (
        _model(
            [1, 1, 5, 6],
            [1, 1, 8, 9],
            sizes=[1, 1, 8, 9],
            mode="linear",
            coordinate_transformation_mode="half_pixel_symmetric",
        ),
        {},
        1e-5,
    ),
    "linear_3d_symbolic_batch": (
        _model(["N", 2, 3, 4, 5], ["N", 2, 6, 8, 10], scales=[1, 1, 2, 2, 2], mode="linear"),
        {"N": 2},
        1e-5,
    ),
    "linear_1d_axes_attr": (_model([3, 10], [3, 25], scales=[2.5], axes=[1], mode="linear"), {}, 1e-5),
    "linear_fp16": (_model([1, 4, 6, 6], [1, 4, 12, 18], "float16", scales=[1, 1, 2, 3], mode="linear"), {}, 2e-2),
    "cubic_half_pixel": (_model([1, 2, 6, 5], [1, 2, 12, 15], scales=[1, 1, 2, 3], mode="cubic"), {}, 1e-4),
    "cubic_exclude_outside_a05": (
        _model([1, 1, 5, 7], [1, 1, 9, 4], sizes=[1, 1, 9, 4], mode="cubic", exclude_outside=1, cubic_coeff_a=-0.5),
        {},
        1e-4,
    ),
    "cubic_align_corners_down": (
        _model(
            [2, 1, 9, 9], [2, 1, 4, 5], sizes=[2, 1, 4, 5], mode="cubic", coordinate_transformation_mode="align_corners"
        ),
        {},
        1e-4,
    ),
    "cubic_fp16_asymmetric": (
        _model(
            [1, 3, 4, 4],
            [1, 3, 8, 8],
            "float16",
            scales=[1, 1, 2, 2],
            mode="cubic",
            coordinate_transformation_mode="asymmetric",
        ),
        {},
        2e-2,
    ),
}

# Not lowered by TPAT: TVM's frontend lowering is used.
NOT_LOWERED = {
    "nearest": _model([1, 1, 4, 4], [1, 1, 8, 8], scales=[1, 1, 2, 2], mode="nearest"),
    "tf_crop_and_resize": _model(
        [1, 1, 4, 4],
        [1, 1, 8, 8],
        sizes=[1, 1, 8, 8],
        mode="linear",
        coordinate_transformation_mode="tf_crop_and_resize",
    ),
    "antialias": _model([1, 1, 8, 8], [1, 1, 4, 4], scales=[1, 1, 0.5, 0.5], mode="linear", antialias=1),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    dtype = {TP.FLOAT: np.float32, TP.FLOAT16: np.float16}[vi.type.tensor_type.elem_type]
    return {"x": rng.standard_normal(shape).astype(dtype)}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "resize")
    assert len(plan["kernels"]) == 1


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    model, syms, tol = CASES[name]
    feeds = _feeds(model, syms)
    got = run_llvm(built[name]["path"], feeds)[0]
    # ONNX Runtime's CPU Resize has no float16 kernel
    want = run_ort(model, feeds, via_float32=feeds["x"].dtype == np.float16)[0]
    assert_matches(got, want, tol)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_modes_keep_tvm_lowering(built, name):
    res = built[name]["res"]
    info = load_node(str(built[name]["path"]))
    choice = registry.choose(info)
    sel, reason = choice.selection, choice.reason
    assert (choice.declined[-1][1] == reason) if choice.declined else reason == "no TPAT lowering for this op"
    assert sel is None and reason
    if res["ok"]:
        assert res["plan"]["lowering"] == "tvm-default" and res["plan"]["declined"][0]["lowering"] == "resize"

"""TPAT's own Resize lowering (python/tpat_bridge/lowerings/resize.py), CPU only.

Every case: the plan validates against the schema and names the lowering; its CUDA source compiles
with nvcc -arch=sm_90; the same TE compute built for LLVM matches ONNX Runtime (float16 cases: ONNX
Runtime in float32, rounded). Cases cover linear and cubic, every coordinate transform TPAT lowers,
scales and sizes, down- and up-scaling, 1, 2 and 3 resized axes, exclude_outside, cubic_coeff_a,
the opset-18 `axes` attribute and a symbolic batch dimension. Modes TPAT does not lower (nearest,
tf_crop_and_resize) keep TVM's lowering. antialias=1 (opset 18): linear and cubic, up- and
downsampling, every coordinate transform, exclude_outside, cubic_coeff_a, the axes attribute,
keep_aspect_ratio_policy, the reduction form (more than 64 taps per output), float16, a symbolic
batch: against ONNX Runtime and ONNX's reference implementation; over a symbolic resized axis it
is declined and TVM's path refuses it (unsupported_attribute).

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

from lowering_harness import (  # noqa: E402
    assert_matches,
    float32_twin,
    input_shape,
    lowered_plan,
    lowering_checks,
    run_llvm,
    run_ort_half_via_float32,
)
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16}


def _model(xshape, oshape, dtype="float32", scales=None, sizes=None, opset=19, ctm=None, **attrs):
    """A one-node Resize model; ctm: its coordinate_transformation_mode."""
    if ctm is not None:
        attrs["coordinate_transformation_mode"] = ctm
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


def _aa(xshape, oshape, dtype="float32", **kw):
    """An antialias=1 case (opset 18)."""
    return _model(xshape, oshape, dtype, opset=18, antialias=1, **kw)


def _cases(make, rows):
    """name -> (model, {symbol: size}, tolerance) from rows (name, input shape, output shape, the
    keywords of `make`): a symbolic dim is 2; the tolerance is 2e-2 in float16, 1e-4 for cubic
    without antialias, else 1e-5."""
    out = {}
    for name, xshape, oshape, kw in rows:
        syms = {d: 2 for d in xshape if isinstance(d, str)}
        if kw.get("dtype") == "float16":
            tol = 2e-2
        elif kw["mode"] == "cubic" and make is _model:
            tol = 1e-4
        else:
            tol = 1e-5
        out[name] = (make(xshape, oshape, **kw), syms, tol)
    return out


F16 = "float16"
CASES = _cases(
    _model,
    [
        ("linear_half_pixel_up", [1, 2, 5, 7], [1, 2, 20, 14], dict(scales=[1, 1, 4, 2], mode="linear")),
        ("linear_half_pixel_down", [2, 3, 9, 8], [2, 3, 4, 3], dict(scales=[1, 1, 0.5, 0.4], mode="linear")),
        (
            "linear_align_corners",
            [1, 1, 4, 6],
            [1, 1, 7, 11],
            dict(sizes=[1, 1, 7, 11], mode="linear", ctm="align_corners"),
        ),
        ("linear_asymmetric", [1, 2, 3, 5], [1, 2, 6, 7], dict(sizes=[1, 2, 6, 7], mode="linear", ctm="asymmetric")),
        (
            "linear_pytorch_half_pixel",
            [1, 2, 4, 5],
            [1, 2, 1, 9],
            dict(sizes=[1, 2, 1, 9], mode="linear", ctm="pytorch_half_pixel"),
        ),
        (
            "linear_half_pixel_symmetric",
            [1, 1, 5, 6],
            [1, 1, 8, 9],
            dict(sizes=[1, 1, 8, 9], mode="linear", ctm="half_pixel_symmetric"),
        ),
        (
            "linear_3d_symbolic_batch",
            ["N", 2, 3, 4, 5],
            ["N", 2, 6, 8, 10],
            dict(scales=[1, 1, 2, 2, 2], mode="linear"),
        ),
        ("linear_1d_axes_attr", [3, 10], [3, 25], dict(scales=[2.5], axes=[1], mode="linear")),
        ("linear_fp16", [1, 4, 6, 6], [1, 4, 12, 18], dict(dtype=F16, scales=[1, 1, 2, 3], mode="linear")),
        ("cubic_half_pixel", [1, 2, 6, 5], [1, 2, 12, 15], dict(scales=[1, 1, 2, 3], mode="cubic")),
        (
            "cubic_exclude_outside_a05",
            [1, 1, 5, 7],
            [1, 1, 9, 4],
            dict(sizes=[1, 1, 9, 4], mode="cubic", exclude_outside=1, cubic_coeff_a=-0.5),
        ),
        (
            "cubic_align_corners_down",
            [2, 1, 9, 9],
            [2, 1, 4, 5],
            dict(sizes=[2, 1, 4, 5], mode="cubic", ctm="align_corners"),
        ),
        (
            "cubic_fp16_asymmetric",
            [1, 3, 4, 4],
            [1, 3, 8, 8],
            dict(dtype=F16, scales=[1, 1, 2, 2], mode="cubic", ctm="asymmetric"),
        ),
    ],
)

# antialias=1: checked against ONNX Runtime and ONNX's reference implementation (both)
AA_CASES = _cases(
    _aa,
    [
        ("aa_linear_half", [1, 2, 16, 12], [1, 2, 8, 6], dict(scales=[1, 1, 0.5, 0.5], mode="linear")),
        ("aa_linear_sizes", [2, 1, 15, 17], [2, 1, 4, 9], dict(sizes=[2, 1, 4, 9], mode="linear")),
        ("aa_cubic_half", [1, 2, 16, 16], [1, 2, 8, 8], dict(scales=[1, 1, 0.5, 0.5], mode="cubic")),
        (
            "aa_cubic_sizes_a05_exclude",
            [1, 1, 13, 11],
            [1, 1, 5, 4],
            dict(sizes=[1, 1, 5, 4], mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1),
        ),
        (
            "aa_linear_exclude_outside",
            [1, 1, 12, 10],
            [1, 1, 3, 4],
            dict(scales=[1, 1, 0.3, 0.4], mode="linear", exclude_outside=1),
        ),
        (
            "aa_linear_pytorch_half_pixel",
            [1, 2, 12, 9],
            [1, 2, 5, 1],
            dict(sizes=[1, 2, 5, 1], mode="linear", ctm="pytorch_half_pixel"),
        ),
        (
            "aa_cubic_half_pixel_symmetric",
            [1, 1, 14, 10],
            [1, 1, 6, 4],
            dict(scales=[1, 1, 0.45, 0.45], mode="cubic", ctm="half_pixel_symmetric"),
        ),
        (
            "aa_linear_asymmetric",
            [1, 1, 10, 10],
            [1, 1, 3, 6],
            dict(scales=[1, 1, 0.3, 0.6], mode="linear", ctm="asymmetric"),
        ),
        (
            "aa_cubic_align_corners_sizes",
            [1, 1, 11, 9],
            [1, 1, 4, 3],
            dict(sizes=[1, 1, 4, 3], mode="cubic", ctm="align_corners"),
        ),
        (
            "aa_axes_attr_not_larger",
            [2, 3, 20, 15],
            [2, 3, 8, 6],
            dict(sizes=[8, 8], axes=[2, 3], mode="linear", keep_aspect_ratio_policy="not_larger"),
        ),
        (
            "aa_cubic_not_smaller",
            [1, 2, 20, 15],
            [1, 2, 11, 8],
            dict(sizes=[5, 8], axes=[2, 3], mode="cubic", keep_aspect_ratio_policy="not_smaller"),
        ),
        ("aa_mixed_up_down", [1, 2, 12, 5], [1, 2, 4, 10], dict(scales=[1, 1, 1 / 3, 2], mode="linear")),
        ("aa_cubic_upsample", [1, 1, 5, 6], [1, 1, 10, 12], dict(scales=[1, 1, 2, 2], mode="cubic")),
        ("aa_cubic_reduction_form", [1, 1, 40, 30], [1, 1, 8, 6], dict(scales=[1, 1, 0.2, 0.2], mode="cubic")),
        (
            "aa_linear_3d_symbolic_batch",
            ["N", 1, 8, 9, 10],
            ["N", 1, 4, 3, 5],
            dict(scales=[1, 1, 0.5, 1 / 3, 0.5], mode="linear"),
        ),
        ("aa_linear_fp16", [1, 4, 16, 16], [1, 4, 6, 6], dict(dtype=F16, sizes=[1, 4, 6, 6], mode="linear")),
        ("aa_cubic_reduction_fp16", [1, 2, 32, 24], [1, 2, 6, 5], dict(dtype=F16, sizes=[1, 2, 6, 5], mode="cubic")),
    ],
)
CASES.update(AA_CASES)

# Not lowered by TPAT: TVM's frontend lowering is used.
NOT_LOWERED = {
    "nearest": _model([1, 1, 4, 4], [1, 1, 8, 8], scales=[1, 1, 2, 2], mode="nearest"),
    "tf_crop_and_resize": _model(
        [1, 1, 4, 4], [1, 1, 8, 8], sizes=[1, 1, 8, 8], mode="linear", ctm="tf_crop_and_resize"
    ),
    # a symbolic resized axis: TPAT declines, and TVM's path refuses antialias (refusals.py)
    "antialias_symbolic_axis": _model(
        [1, 1, "H", 8], [1, 1, "H2", 4], scales=[1, 1, 0.5, 0.5], mode="linear", antialias=1, opset=18
    ),
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


# ONNX Runtime's CPU Resize has no float16 kernel
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=run_ort_half_via_float32
)


@pytest.mark.parametrize("name", list(AA_CASES))
def test_antialias_matches_onnx_reference(built, name):
    """antialias=1 against ONNX's reference implementation too (it and ONNX Runtime agree on every
    case here; align_corners with scales is the known disagreement, docs/lowerings.md)."""
    from onnx.reference import ReferenceEvaluator

    model, syms, tol = CASES[name]
    assert "antialias" in lowered_plan(built[name]["res"], "resize")["lowering_detail"]
    feeds = _feeds(model, syms)
    got = run_llvm(built[name]["path"], feeds)[0]
    f32 = {"x": feeds["x"].astype(np.float32)}
    want = ReferenceEvaluator(float32_twin(model)).run(None, f32)[0]
    if name in REFERENCE_DIFFERS:  # TPAT follows ONNX Runtime there (test_numerics_llvm_vs_ort)
        assert not np.allclose(got.astype(np.float32), want, atol=1e-3), "the reference agrees now"
        return
    assert_matches(got, want.astype(got.dtype), tol)


# Cases where ONNX's reference and ONNX Runtime disagree; TPAT follows ONNX Runtime (docs/lowerings.md):
# pytorch_half_pixel with an output length of 1 maps it to coordinate -0.5 in the reference, 0 in ORT.
REFERENCE_DIFFERS = {"aa_linear_pytorch_half_pixel"}


def test_antialias_refused_on_tvm_path(built):
    res = built["antialias_symbolic_axis"]["res"]
    assert not res["ok"] and res["error"]["code"] == "unsupported_attribute", res
    assert "antialias" in res["error"]["reason"]


def test_huge_antialias_support_declines(tmp_path):
    import onnx

    m = _aa([1, 1, 4000, 4000], [1, 1, 4, 4], scales=[1, 1, 0.001, 0.001], mode="cubic")
    p = tmp_path / "m.onnx"
    onnx.save(m, str(p))
    choice = registry.choose(load_node(str(p)))
    assert choice.lowering is None and "taps per output" in choice.reason


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

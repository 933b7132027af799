"""TPAT's own RoiAlign lowering (python/tpat_bridge/lowerings/roialign.py), CPU only.

Per case: a schema-valid plan made by the lowering (one kernel), nvcc -arch=sm_90 compiles its CUDA
source, and the LLVM build of the same IR matches ONNX Runtime and ONNX's reference
(onnx.reference). The grid: mode avg and max, half_pixel and output_half_pixel, spatial_scale 1,
1/4, 1/16, 1/32, sampling_ratio 0 (adaptive, per box on the device) and 1/2, 7x7 and 14x14 outputs,
torchvision-like detector boxes partly outside the image, degenerate and reversed boxes, symbolic
number of boxes and batch, opset 10 and 16, float16 (ONNX Runtime through float32), bfloat16
(compile only: neither ONNX Runtime nor LLVM's numpy path run it). ONNX's backend node tests for
RoiAlign run through the same LLVM build against their expected outputs. Declined: float64,
sampling_ratio < 0, an unknown mode.

Run: .venv/bin/python -m pytest tests/python/test_lowering_roialign.py
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

from lowering_harness import (  # noqa: E402
    float32_twin,
    input_shape,
    launches,
    lowered_plan,
    lowering_checks,
    run_llvm,
    run_ort,
    run_ort_half_via_float32,
)
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "bfloat16": TP.BFLOAT16, "float64": TP.DOUBLE}


def _model(xshape, rois, oh, ow, dtype="float32", opset=16, **attrs):
    node = h.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=oh, output_width=ow, **attrs)
    t = ONNX_T[dtype]
    vis = [
        h.make_tensor_value_info("x", t, xshape),
        h.make_tensor_value_info("rois", t, [rois, 4]),
        h.make_tensor_value_info("bi", TP.INT64, [rois]),
    ]
    out = [h.make_tensor_value_info("y", t, [rois, xshape[1], oh, ow])]
    m = h.make_model(h.make_graph([node], "g", vis, out), opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10 if opset >= 16 else 8
    return m


HP, OHP = "half_pixel", "output_half_pixel"
# name -> (model, symbol values, tolerance)
CASES = {
    # torchvision's MultiScaleRoIAlign, aligned=True (half_pixel), P4/P5-like scales
    "tv_aligned_s16_r0_7x7": (
        _model([2, 8, "H", "W"], "R", 7, 7, sampling_ratio=0, spatial_scale=1 / 16, coordinate_transformation_mode=HP),
        {"H": 13, "W": 17, "R": 12},
        1e-4,
    ),
    "tv_aligned_s32_r2_7x7": (
        _model([2, 8, 9, 11], 10, 7, 7, sampling_ratio=2, spatial_scale=1 / 32, coordinate_transformation_mode=HP),
        {},
        1e-4,
    ),
    "tv_aligned_s16_r2_14x14": (
        _model(
            ["N", 4, 12, 15], "R", 14, 14, sampling_ratio=2, spatial_scale=1 / 16, coordinate_transformation_mode=HP
        ),
        {"N": 3, "R": 7},
        1e-4,
    ),
    "tv_aligned_s32_r0_14x14": (
        _model([1, 4, 8, 10], 6, 14, 14, sampling_ratio=0, spatial_scale=1 / 32, coordinate_transformation_mode=HP),
        {},
        1e-4,
    ),
    # aligned=False (output_half_pixel), torchvision's default export
    "tv_unaligned_s16_r2_7x7": (
        _model([2, 8, 13, 17], 9, 7, 7, sampling_ratio=2, spatial_scale=1 / 16, coordinate_transformation_mode=OHP),
        {},
        1e-4,
    ),
    "tv_unaligned_s4_r0_7x7": (
        _model([2, 6, 20, 24], 8, 7, 7, sampling_ratio=0, spatial_scale=0.25, coordinate_transformation_mode=OHP),
        {},
        1e-4,
    ),
    "max_half_pixel_r0": (
        _model([2, 5, 12, 14], 8, 5, 4, mode="max", sampling_ratio=0, spatial_scale=0.5),
        {},
        1e-4,
    ),
    "max_output_half_pixel_r2": (
        _model([1, 5, 10, 10], 6, 3, 3, mode="max", sampling_ratio=2, coordinate_transformation_mode=OHP),
        {},
        1e-4,
    ),
    "max_s16_r1_7x7": (
        _model([2, 4, 11, 13], 7, 7, 7, mode="max", sampling_ratio=1, spatial_scale=1 / 16),
        {},
        1e-4,
    ),
    "opset10_default": (_model([1, 3, 10, 10], 5, 3, 3, opset=10), {}, 1e-4),
    "opset10_max": (_model([1, 3, 10, 10], 5, 3, 4, opset=10, mode="max", spatial_scale=0.5), {}, 1e-4),
    "opset16_default": (_model([2, 3, 9, 7], 5, 2, 2), {}, 1e-4),
    "fp16_s16_r0": (
        _model([2, 4, 10, 12], 6, 7, 7, dtype="float16", sampling_ratio=0, spatial_scale=1 / 16),
        {},
        2e-2,
    ),
    "fp16_max": (_model([1, 4, 10, 12], 5, 3, 3, dtype="float16", mode="max", sampling_ratio=2), {}, 2e-2),
}
BF16 = {
    "bf16_s16_r0": _model([2, 4, 10, 12], 6, 7, 7, dtype="bfloat16", sampling_ratio=0, spatial_scale=1 / 16),
}
NOT_LOWERED = {
    "float64": _model([1, 2, 6, 6], 3, 2, 2, dtype="float64"),
    "negative_ratio": _model([1, 2, 6, 6], 3, 2, 2, sampling_ratio=-1),
    "mode_min": _model([1, 2, 6, 6], 3, 2, 2, mode="min"),
}


def _attr(model, name, default):
    a = next((a for a in model.graph.node[0].attribute if a.name == name), None)
    return default if a is None else h.get_attribute_value(a)


def _feeds(model, syms, seed=0):
    """Boxes in image coordinates, some partly outside the image, one reversed (x2 < x1), one
    degenerate (a point), batch indices in range."""
    rng = np.random.default_rng(seed)
    x_shape, r_shape, _ = (input_shape(vi, syms) for vi in model.graph.input)
    scale = _attr(model, "spatial_scale", 1.0)
    hh, ww = x_shape[2] / scale, x_shape[3] / scale
    n = r_shape[0]
    x1, y1 = rng.uniform(-0.2 * ww, ww * 0.8, n), rng.uniform(-0.2 * hh, hh * 0.8, n)
    rois = np.stack([x1, y1, x1 + rng.uniform(0.5, ww * 0.6, n), y1 + rng.uniform(0.5, hh * 0.6, n)], 1)
    rois[0] = [ww * 0.3, hh * 0.3, ww * 0.3, hh * 0.3]
    if n > 2:
        rois[1] = [ww * 0.7, hh * 0.6, ww * 0.2, hh * 0.1]  # reversed
        rois[2] = [-0.5 * ww, -0.3 * hh, 1.4 * ww, 1.2 * hh]  # larger than the image
    t = model.graph.input[0].type.tensor_type.elem_type
    dt = np.float16 if t == TP.FLOAT16 else np.float32
    return {
        "x": rng.standard_normal(x_shape).astype(dt),
        "rois": rois.astype(dt),
        "bi": rng.integers(0, x_shape[0], n).astype(np.int64),
    }


def _onnx_reference(model, feeds):
    from onnx.reference import ReferenceEvaluator

    f = {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in feeds.items()}
    m = onnx.ModelProto()
    m.CopyFrom(model)
    if m.opset_import[0].version < 16:
        # onnx.reference runs RoiAlign-10 with half_pixel (opset 16's default); RoiAlign-10 is
        # output_half_pixel (the spec's 16 changelog, ONNX Runtime): run it as RoiAlign-16 with that
        m.opset_import[0].version = 16
        m.ir_version = 10
        m.graph.node[0].attribute.append(h.make_attribute("coordinate_transformation_mode", "output_half_pixel"))
    return ReferenceEvaluator(float32_twin(m)).run(None, f)[0]


@pytest.fixture(scope="module")
def built(workdir):
    from lowering_harness import plan_all

    return plan_all({**{n: c[0] for n, c in CASES.items()}, **BF16, **NOT_LOWERED}, workdir)


@pytest.fixture(scope="module")
def compiled(built, workdir):
    from lowering_harness import compile_all

    return compile_all(built, list(CASES) + list(BF16), workdir)


@pytest.mark.parametrize("name", list(CASES) + list(BF16))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "roi_align")
    assert launches(plan) == ["tpat_roi_align_kernel"], launches(plan)


def _close_in_float32(got, want, tol):
    assert got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=tol, atol=tol)


def _dtype_and_hits(name, feeds, outs):
    assert outs[0].dtype == feeds["x"].dtype  # ONNX Runtime's output type: T1, the image's
    assert np.abs(outs[0].astype(np.float32)).max() > 0  # boxes hit the image: not all zero


test_nvcc_compiles, test_numerics_llvm_vs_ort_and_onnx_reference = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    tol=lambda name: CASES[name][2],
    ort=run_ort_half_via_float32,
    reference=lambda name, feeds: [_onnx_reference(CASES[name][0], feeds)],
    compare=_close_in_float32,
    also=_dtype_and_hits,
    compile_names=list(CASES) + list(BF16),
)


def test_out_of_range_batch_index_gives_zeros(built):
    model, syms, _ = CASES["opset16_default"]
    feeds = _feeds(model, syms)
    feeds["bi"][1], feeds["bi"][3] = 7, -1
    got = run_llvm(built["opset16_default"]["path"], feeds)[0]
    assert not got[1].any() and not got[3].any()
    ok = [0, 2, 4]
    want = run_ort(model, {**feeds, "bi": np.where(feeds["bi"] < 0, 0, np.minimum(feeds["bi"], 1))})[0]
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    assert choice.selection is None and choice.reason
    assert any(n == "roi_align" for n, _ in choice.declined)


def _backend_cases():
    root = Path(onnx.__file__).parent / "backend" / "test" / "data" / "node"
    return sorted(p for p in root.glob("test_roialign*") if p.is_dir())


@pytest.mark.parametrize("case", _backend_cases(), ids=lambda p: p.name)
def test_onnx_backend_node_tests(case, tmp_path):
    """ONNX's own RoiAlign tests: the LLVM build of TPAT's lowering against the expected outputs."""
    from onnx import numpy_helper

    model = onnx.load(str(case / "model.onnx"))
    ds = sorted((case / "test_data_set_0").glob("input_*.pb"))
    ins = [numpy_helper.to_array(onnx.load_tensor(str(p))) for p in ds]
    outs = [
        numpy_helper.to_array(onnx.load_tensor(str(p))) for p in sorted((case / "test_data_set_0").glob("output_*.pb"))
    ]
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    info = load_node(str(path))
    choice = registry.choose(info)
    assert choice.lowering is not None and choice.lowering.name == "roi_align", choice.reason
    feeds = {vi.name: a for vi, a in zip(model.graph.input, ins)}
    got = run_llvm(path, feeds)[0]
    np.testing.assert_allclose(got, outs[0], rtol=1e-4, atol=1e-4)

"""RoiAlign through TVM's own lowering (the plan request's `lowering: "tvm"`; TPAT's own lowering,
lowerings/roialign.py, is tested in test_lowering_roialign.py), CPU only.

TVM 0.27 plans RoiAlign only because the planner guards dlight's rules
(`pipeline.default_schedule_pass`): dlight's Reduction rule asserts that every access region has
extent 1, which the data-dependent bilinear reads of RoiAlign break, and the bare
`AssertionError` became `tvm_error` with an empty message (issue 14). Guarded, the rule counts as
not applying and GeneralReduction / Fallback schedule the function. Per case: the plan is made
(`roi_align_kernel` launched), nvcc -arch=sm_90 compiles it, and the same Relax module built for
LLVM matches ONNX Runtime (boxes inside the image, valid batch indices; mode avg: mode max stays
refused, refusals.py). half_pixel with spatial_scale != 1 is refused: TVM's converter subtracts 0.5
before scaling ((roi - 0.5) * s instead of roi * s - 0.5), found by this test.

Run: .venv/bin/python -m pytest tests/python/test_roialign_plan.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import assert_matches, compile_all, input_shape, launches, run_ort  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.planning.relax_import import build_relax_module  # noqa: E402


def _model(xshape, rois, oh, ow, **attrs):
    node = h.make_node("RoiAlign", ["x", "rois", "bi"], ["y"], output_height=oh, output_width=ow, **attrs)
    vis = [
        h.make_tensor_value_info("x", TP.FLOAT, xshape),
        h.make_tensor_value_info("rois", TP.FLOAT, [rois, 4]),
        h.make_tensor_value_info("bi", TP.INT64, [rois]),
    ]
    out = [h.make_tensor_value_info("y", TP.FLOAT, [rois, xshape[1], oh, ow])]
    m = h.make_model(h.make_graph([node], "g", vis, out), opset_imports=[h.make_opsetid("", 16)])
    m.ir_version = 10
    return m


# name -> (model, symbol values)
CASES = {
    "static_ratio2": (_model([2, 8, 20, 24], 10, 7, 7, sampling_ratio=2), {}),
    # torchvision's MultiScaleRoIAlign export: aligned=False -> output_half_pixel, scale 1/4..1/32
    "torchvision_sym": (
        _model(
            [2, 16, "H", "W"],
            "R",
            7,
            7,
            sampling_ratio=2,
            spatial_scale=0.25,
            coordinate_transformation_mode="output_half_pixel",
        ),
        {"H": 12, "W": 15, "R": 6},
    ),
    "output_half_pixel_ratio1": (
        _model([1, 4, 9, 11], 3, 3, 3, sampling_ratio=1, coordinate_transformation_mode="output_half_pixel"),
        {},
    ),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    x_shape, r_shape, _ = (input_shape(vi, syms) for vi in model.graph.input)
    scale = next((a.f for a in model.graph.node[0].attribute if a.name == "spatial_scale"), 1.0)
    hh, ww = x_shape[2] / scale, x_shape[3] / scale
    n = r_shape[0]
    x1, y1 = rng.uniform(0, ww * 0.6, n), rng.uniform(0, hh * 0.6, n)
    rois = np.stack([x1, y1, x1 + rng.uniform(1, ww * 0.4, n), y1 + rng.uniform(1, hh * 0.4, n)], 1)
    return {
        "x": rng.standard_normal(x_shape).astype(np.float32),
        "rois": rois.astype(np.float32),
        "bi": rng.integers(0, x_shape[0], n).astype(np.int64),
    }


@pytest.fixture(scope="module")
def built(workdir):
    out = {}
    for name, (model, _) in CASES.items():
        import onnx

        path = workdir / f"{name}.onnx"
        onnx.save(model, str(path))
        res = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90", "lowering": "tvm"})
        out[name] = {"path": path, "res": res}
    return out


@pytest.fixture(scope="module")
def compiled(built, workdir):
    return compile_all(built, CASES, workdir)


@pytest.mark.parametrize("name", list(CASES))
def test_plan_made_by_tvm_lowering(built, name):
    res = built[name]["res"]
    assert res["ok"], res.get("error")
    assert "roi_align_kernel" in launches(res["plan"])


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    import tvm
    from tvm import relax

    model, syms = CASES[name]
    feeds = _feeds(model, syms)
    info = load_node(str(built[name]["path"]))
    ex = tvm.compile(build_relax_module(info), target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    got = vm["main"](*[tvm.runtime.tensor(feeds[i["name"]]) for i in info.inputs]).numpy()
    assert_matches(got, run_ort(model, feeds)[0], 1e-4)


# name -> (model, expected code, words in the reason)
REFUSED = {
    # half_pixel is RoiAlign-16's default
    "half_pixel_scaled": (
        _model([2, 8, 12, 15], 6, 5, 4, sampling_ratio=2, spatial_scale=0.25),
        "unsupported_attribute",
        "spatial_scale",
    ),
    # sampling_ratio 0: TVM's sample count per bin depends on the box (a loop bound read on the host)
    "adaptive_ratio": (
        _model([2, 8, 12, 15], 6, 5, 4, sampling_ratio=0),
        "unsupported_lowering",
        "host-side condition",
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_with_a_reason(workdir, name):
    import onnx

    model, code, words = REFUSED[name]
    path = workdir / f"refused_{name}.onnx"
    onnx.save(model, str(path))
    res = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90", "lowering": "tvm"})
    assert not res["ok"] and res["error"]["code"] == code, res
    assert words in res["error"]["reason"]

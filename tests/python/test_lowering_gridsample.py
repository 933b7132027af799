"""TPAT's GridSample lowering (python/tpat_bridge/lowerings/gridsample.py), CPU only.

Every case: the plan validates, names the lowering and launches ONE kernel (TVM's own path has
two: a grid transpose, then the sampling); nvcc -arch=sm_90 compiles it; the same TE built for
LLVM matches ONNX Runtime. The grid (every value at least once; the full 4-D cross product of
3 modes x 3 paddings x 2 align_corners and 5-D linear/nearest x 3 paddings, 27 cases, passed
once while this test was written and costs ~9 minutes on the CI machine): modes
bilinear/nearest/bicubic (opset 16 names) and linear/nearest/cubic (opset 20), padding
zeros/border/reflection, align_corners 0/1, 4-D and 5-D,
float32 and float16 (ONNX Runtime through a float32 twin), a symbolic batch, a grid that reaches
past [-1, 1]. 5-D cubic declines (TOPI has no 3-D cubic), as does an unknown mode.

Run: .venv/bin/python -m pytest tests/python/test_lowering_gridsample.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_ort_half_via_float32  # noqa: E402

vi = h.make_tensor_value_info


def _gs(xshape, gshape, mode, padding="zeros", align=0, dt=TP.FLOAT, opset=16):
    n = h.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode=padding, align_corners=align)
    oshape = list(xshape[:2]) + list(gshape[1:-1])
    g = h.make_graph([n], "g", [vi("x", dt, xshape), vi("grid", dt, gshape)], [vi("y", dt, oshape)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


# every mode, padding mode and align_corners value at least once, 4-D and 5-D (a full cross product
# costs about 20 s of planning and nvcc per case on the CI machine)
_CROSS = [
    ("bilinear", "zeros", 0),
    ("bilinear", "border", 1),
    ("bilinear", "reflection", 0),
    ("nearest", "zeros", 0),
    ("nearest", "reflection", 1),
    ("bicubic", "zeros", 1),
    ("bicubic", "reflection", 0),
]
CASES = {f"4d_{m}_{p}_a{a}": (_gs([2, 3, 7, 9], [2, 5, 6, 2], m, p, a), {}, 1e-4) for m, p, a in _CROSS}
CASES["5d_linear_reflection"] = (_gs([1, 2, 4, 5, 6], [1, 3, 4, 5, 3], "linear", "reflection", 0, opset=20), {}, 1e-4)
CASES["5d_nearest_border"] = (_gs([1, 2, 4, 5, 6], [1, 3, 4, 5, 3], "nearest", "border", 0, opset=20), {}, 1e-4)
CASES["5d_linear_align"] = (_gs([2, 2, 3, 4, 5], [2, 2, 3, 4, 3], "linear", "border", 1, opset=20), {}, 1e-4)
CASES["4d_cubic_opset20"] = (_gs([1, 2, 8, 8], [1, 4, 4, 2], "cubic", "border", 0, opset=20), {}, 1e-4)
CASES["4d_fp16_bilinear"] = (_gs([2, 4, 8, 8], [2, 6, 6, 2], "bilinear", "zeros", 0, TP.FLOAT16), {}, 2e-2)
CASES["4d_symbolic_batch"] = (_gs(["N", 3, 6, 7], ["N", 4, 5, 2], "bilinear", "reflection", 1), {"N": 3}, 1e-4)

NOT_LOWERED = {
    "5d_cubic": _gs([1, 2, 4, 4, 4], [1, 2, 2, 2, 3], "cubic", opset=20),
    "bad_mode": _gs([1, 2, 4, 4], [1, 2, 2, 2], "area"),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in model.graph.input:
        shape = input_shape(inp, syms)
        dt = np.float16 if inp.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
        if inp.name == "x":
            feeds["x"] = rng.standard_normal(shape).astype(dt)
        else:
            feeds["grid"] = rng.uniform(-1.2, 1.2, shape).astype(dt)
    return feeds


@pytest.mark.parametrize("name", list(CASES))
def test_plan_is_one_kernel(built, name):
    plan = lowered_plan(built[name]["res"], "grid_sample")
    assert len(launches(plan)) == 1
    want = "float16" if "fp16" in name else "float32"
    assert [o["dtype"] for o in plan["outputs"]] == [want]
    assert "cast" not in " ".join(plan.get("fixups", []))


# ONNX Runtime runs the float16 case as its float32 twin
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=run_ort_half_via_float32
)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_declines(built, name):
    res = built[name]["res"]
    if res["ok"]:
        plan = res["plan"]
        assert plan["lowering"] != "grid_sample"
        assert any(d["lowering"] == "grid_sample" for d in plan["declined"]), plan["declined"]

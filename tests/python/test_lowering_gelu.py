"""TPAT's own Gelu lowering (python/tpat_bridge/lowerings/elementwise.py), CPU only.

Every case: the plan names the lowering and has one kernel; static float16 shapes move 16 bytes
per thread (uint4 loads and stores); the CUDA source compiles with nvcc -arch=sm_90; the TE
compute built for LLVM matches ONNX Runtime (erf and tanh forms, float32/float16, symbolic dims).

Run: .venv/bin/python -m pytest tests/python/test_lowering_gelu.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_ort  # noqa: E402


def _model(shape, dtype=TP.FLOAT, approximate="none"):
    n = h.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    g = h.make_graph(
        [n], "g", [h.make_tensor_value_info("x", dtype, shape)], [h.make_tensor_value_info("y", dtype, shape)]
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 20)])
    m.ir_version = 9
    return m


CASES = {
    "fp32_erf": (_model([4, 64]), {}, 1e-5, "4 element"),
    "fp32_tanh": (_model([3, 32], approximate="tanh"), {}, 1e-5, "4 element"),
    "fp16_erf": (_model([8, 256], TP.FLOAT16), {}, 2e-3, "8 element"),
    "fp16_symbolic": (_model(["N", 100], TP.FLOAT16), {"N": 3}, 2e-3, "1 element"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "gelu")
    assert CASES[name][3] in plan["lowering_detail"], plan["lowering_detail"]
    assert len(launches(plan)) == 1
    if name == "fp16_erf":
        assert "*(uint4*)" in plan["cuda_source"]


def _feeds(name):
    model, syms = CASES[name][:2]
    vi = model.graph.input[0]
    dt = np.float16 if vi.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
    return {"x": (np.random.default_rng(0).standard_normal(input_shape(vi, syms)) * 3).astype(dt)}


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(CASES, feeds=_feeds, tol=lambda name: CASES[name][2])


def test_shared_check_catches_a_wrong_answer(built):
    """lowering_checks' numerics check fails on an answer off by more than the tolerance, and on a
    case that neither ONNX Runtime nor a reference checks."""
    off = lambda model, feeds: [w + np.asarray(1e-2, w.dtype) for w in run_ort(model, feeds)]
    _, wrong = lowering_checks(CASES, feeds=_feeds, tol=lambda name: CASES[name][2], ort=off)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        wrong(built, "fp32_erf")
    _, unchecked = lowering_checks(CASES, feeds=_feeds, ort_has=lambda name: False)
    with pytest.raises(AssertionError, match="neither"):
        unchecked(built, "fp32_erf")

"""TPAT's own Gelu lowering (python/tpat_bridge/lowerings/elementwise.py), CPU only.

Every case: the plan names the lowering and has one kernel; static float16 shapes move 16 bytes
per thread (uint4 loads and stores); the CUDA source compiles with nvcc -arch=sm_90; the TE
compute built for LLVM matches ONNX Runtime (erf and tanh forms, float32/float16, symbolic dims).

Run: .venv/bin/python -m pytest tests/python/test_lowering_gelu.py
"""

from __future__ import annotations

import re
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
    # large enough for 4 rows per thread (8192 / 4 x 128 vectors / 256 threads = 1024 blocks)
    "fp16_rows": (_model([8192, 1024], TP.FLOAT16, approximate="tanh"), {}, 2e-3, "32 element"),
    "fp32_rows_2": (_model([4097, 2, 1024]), {}, 1e-5, "8 element"),
}
# The LLVM build runs the compute without the GPU schedule: the large cases only add the schedule
# (checked by plan and nvcc), their numerics are those of the small cases.
SMALL = [n for n in CASES if "rows" not in n]


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "gelu")
    assert CASES[name][3] in plan["lowering_detail"], plan["lowering_detail"]
    assert len(launches(plan)) == 1
    if name == "fp16_erf":
        assert "*(uint4*)" in plan["cuda_source"]
    body = plan["cuda_source"].split("__global__")[-1]
    if "tanh" in name or name == "fp16_rows":
        # x / (1 + exp(-2u)): __expf and __fdividef on the GPU (~15 SASS per element, not
        # tanhf's ~25); the LLVM numerics below check the same formula with an exact division
        assert "__expf(" in body and "__fdividef(" in body and "tanh" not in body, body[:400]
    else:
        assert "erff(" in body and "__fdividef" not in body
    if "rows" in name:
        src = plan["cuda_source"]
        body = src[src.index("tpat_gelu_kernel(", src.index("__global__") + 1) :]
        body = body[body.index("{") :]
        loads = [m.start() for m in re.finditer(r"= \*\((uint4|float4)\*\)\(x_ptr", body)]
        stores = [m.start() for m in re.finditer(r"\*\((uint4|float4)\*\)\(tpat_gelu_ptr", body)]
        rows = 4 if name == "fp16_rows" else 2
        # R coalesced 16-B loads, all issued before the first store
        assert len(loads) == len(stores) == rows, (len(loads), len(stores))
        assert max(loads) < min(stores)


def test_rows_per_thread():
    """R vectors per thread only where the rows divide by R, a row is a warp of vectors wide and
    the grid keeps MIN_BLOCKS blocks; symbolic or 1-D shapes keep one vector per thread."""
    from tpat_bridge.lowerings.elementwise import rows_per_thread

    assert rows_per_thread([8192, 4096], 8) == 4
    assert rows_per_thread([8192 + 2, 4096], 8) == 2  # not a multiple of 4
    assert rows_per_thread([2, 4097, 4096], 8) == 1  # R rows must not cross the leading axis
    assert rows_per_thread([8191, 4096], 8) == 1
    assert rows_per_thread([8192, 128], 8) == 1  # 16 vectors a row: under a warp
    assert rows_per_thread([64, 4096], 8) == 1  # too few blocks
    assert rows_per_thread(["N", 4096], 8) == 1
    assert rows_per_thread([1 << 26], 8) == 1
    assert rows_per_thread([0, 4096], 8) == 1


def _feeds(name):
    model, syms = CASES[name][:2]
    vi = model.graph.input[0]
    dt = np.float16 if vi.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
    return {"x": (np.random.default_rng(0).standard_normal(input_shape(vi, syms)) * 3).astype(dt)}


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=_feeds, tol=lambda name: CASES[name][2], names=SMALL
)


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

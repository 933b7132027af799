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


def test_tanh_form_gpu_arithmetic_emulated():
    """The GPU's tanh form, x / (1 + __expf(-2u)), emulated in float32 over every finite bfloat16
    and float16 input: __expf as 2^(float32(-2u x log2 e)) (ex2.approx is exact to ~2 ulp; the
    rounding of its argument dominates), __fdividef as x x (1 / d). Against x sigmoid(2u) in
    float64 (the exact function; 0.5 x (1 + tanh u) cancels for x < -5): relative error under
    1e-5 wherever the result is a normal float32, i.e. far under a 16-bit ulp."""
    import ml_dtypes

    f = np.float32
    for dt in (ml_dtypes.bfloat16, np.float16):
        bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
        x = bits.view(dt).astype(np.float32)
        x = x[np.isfinite(x)]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            u2 = f(-2.0 * np.sqrt(2.0 / np.pi)) * (x + f(0.044715) * x * x * x)
            e = np.exp2((u2 * f(np.log2(np.e))).astype(np.float64)).astype(np.float32)
            y = x * (f(1.0) / (f(1.0) + e))
            xd = x.astype(np.float64)
            exact = xd / (1.0 + np.exp(-2.0 * np.sqrt(2.0 / np.pi) * (xd + 0.044715 * xd**3)))
        normal = np.abs(exact) > np.finfo(np.float32).tiny * 1e8
        rel = np.abs(y[normal] - exact[normal]) / np.abs(exact[normal])
        assert rel.max() < 1e-5, (dt, rel.max())
        assert not np.isnan(y[np.isfinite(exact)]).any()

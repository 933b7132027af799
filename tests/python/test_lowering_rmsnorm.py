"""TPAT's own RMSNormalization lowering (python/tpat_bridge/lowerings/rmsnorm.py), CPU only.

TVM 0.27 has no RMSNormalization converter; without this lowering the node is `tvm_error`.
Every case: a schema-valid plan made by the lowering (one kernel, warp shuffles, vector loads
where N allows), nvcc -arch=sm_90 compiles it, and the LLVM build matches ONNX Runtime (opset 23).
Cases: float32 / float16 / bfloat16 (X, Scale and Y of different types are declined), every
axis incl. negative ones, broadcast and constant Scale, a symbolic leading dim, ragged N, epsilon.

Run: .venv/bin/python -m pytest tests/python/test_lowering_rmsnorm.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import launches, lowered_plan, lowering_checks  # noqa: E402
from norm_cases import feeds_for, norm_model, ort_answer  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

RMS = "RMSNormalization"
CASES = {
    "fp32": (norm_model(RMS, [6, 256]), {}, 1e-4, True),
    "fp16_sym": (norm_model(RMS, ["B", 5, 1024], "float16"), {"B": 2}, 2e-2, True),
    "bf16": (norm_model(RMS, [4, 512], "bfloat16"), {}, 3e-2, True),
    "axis1_rank3": (norm_model(RMS, [2, 3, 40], axis=1, eps=1e-2), {}, 1e-4, True),
    "axis0": (norm_model(RMS, [2, 3, 16], axis=0), {}, 1e-4, True),
    "axis_m2_bcast": (norm_model(RMS, [2, 4, 32], axis=-2, pshape=[32]), {}, 1e-4, True),
    "ragged_n33_const": (norm_model(RMS, [5, 33], const_params=True), {}, 1e-4, False),
    "bcast_col_fp16": (norm_model(RMS, [2, 6, 40], "float16", axis=1, pshape=[6, 1]), {}, 2e-2, True),
    "block_n16384": (norm_model(RMS, [2, 16384]), {}, 1e-4, True),  # N > MAX_N: a block per row
}
NOT_LOWERED = {
    "stash_double": norm_model(RMS, [4, 64], stash_type=11),
    "x_fp32_scale_fp16": norm_model(RMS, [3, 128], "float32", sdtype="float16"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "rms_norm")
    assert launches(plan) == ["tpat_rms_norm_kernel"]
    src = plan["cuda_source"]
    assert "__syncthreads" in src if name.startswith("block_") else "__shfl_down_sync" in src
    if CASES[name][3]:
        assert "*(uint4*)" in src or "*(float4*)" in src or "*(uint2*)" in src or "*(float2*)" in src


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: feeds_for(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=ort_answer
)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    sel, reason = choice.selection, choice.reason
    assert (choice.declined[-1][1] == reason) if choice.declined else reason == "no TPAT lowering for this op"
    assert sel is None and reason

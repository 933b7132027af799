"""TPAT's own LayerNormalization lowering (python/tpat_bridge/lowerings/layernorm.py), CPU only.

Every case: the plan validates against the schema, names the lowering and launches one kernel
whose reductions are warp shuffles (16-byte vector loads where N allows); the CUDA source
compiles with nvcc -arch=sm_90; the same formulas built for LLVM (serial loops) match ONNX
Runtime on every output (Y, Mean, InvStdDev). Cases: float32 / float16 / bfloat16 (bfloat16
against ONNX Runtime's float32 answer), every axis of a rank-3 input (negative ones too), with and
without B, broadcast Scale/B, constant Scale/B, a symbolic leading dim, N not a multiple of 32,
epsilon values; N beyond MAX_N (a block per row). Declined (TVM's path or a refusal): stash_type 11, Scale that does
not broadcast, a symbolic normalized dim.

Run: .venv/bin/python -m pytest tests/python/test_lowering_layernorm.py
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

LN = "LayerNormalization"
# name -> (model, symbol values, tolerance, vectorized)
CASES = {
    "fp32": (norm_model(LN, [6, 256]), {}, 1e-4, True),
    "fp16_rank3_sym": (norm_model(LN, ["B", 5, 1024], "float16"), {"B": 2}, 2e-2, True),
    "no_bias": (norm_model(LN, [4, 128], bias=False), {}, 1e-4, True),
    "const_params_fp16": (norm_model(LN, [3, 512], "float16", const_params=True), {}, 2e-2, True),
    "narrow_rows_n96": (norm_model(LN, [5, 96], eps=1e-3), {}, 1e-4, True),
    # Mean and InvStdDev, every axis of a rank-3 input
    "stats_axis_last": (norm_model(LN, [2, 3, 64], outputs=3), {}, 1e-4, True),
    "stats_axis1": (norm_model(LN, [2, 3, 40], axis=1, outputs=3), {}, 1e-4, True),
    "stats_axis0": (norm_model(LN, [2, 3, 16], axis=0, outputs=3, eps=1e-2), {}, 1e-4, True),
    "stats_axis_m2_fp16_sym": (norm_model(LN, ["B", 4, 48], "float16", axis=-2, outputs=3), {"B": 3}, 2e-2, True),
    "stats_axis_m3_mean_only": (norm_model(LN, [2, 3, 8], axis=-3, outputs=2), {}, 1e-4, True),
    "stats_bf16": (norm_model(LN, [4, 256], "bfloat16", outputs=3), {}, 3e-2, True),
    # ragged N (guarded chunks), broadcast Scale/B
    "ragged_n7": (norm_model(LN, [9, 7], outputs=3), {}, 1e-4, False),
    "bcast_scale_last": (norm_model(LN, [3, 4, 32], axis=1, pshape=[32], outputs=3), {}, 1e-4, True),
    "bcast_scale_col_fp16": (norm_model(LN, [2, 6, 40], "float16", axis=1, pshape=[6, 1]), {}, 2e-2, True),
    "bcast_scalar_const": (norm_model(LN, [3, 64], pshape=[1], const_params=True), {}, 1e-4, True),
    # N > MAX_N: a block per row (shifted sums, shared-memory tree)
    "block_n16384_stats": (norm_model(LN, [2, 16384], outputs=3), {}, 1e-4, True),
    "block_axis1_rank3_sym": (norm_model(LN, ["B", 96, 128], axis=1, outputs=3), {"B": 2}, 1e-4, True),
    "block_fp16_ragged_n9001": (norm_model(LN, [3, 9001], "float16"), {}, 2e-2, False),
    "block_bcast_axis0": (norm_model(LN, [4, 40, 64], axis=0, pshape=[64], outputs=2), {}, 1e-4, True),
}
BLOCK = {name for name in CASES if name.startswith("block_")}
NOT_LOWERED = {
    "stash_double": norm_model(LN, [4, 64], stash_type=11),
    "scale_not_broadcast": norm_model(LN, [4, 64], pshape=[32]),
    "symbolic_n": norm_model(LN, [4, "N"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "layer_norm")
    assert launches(plan) == ["tpat_layer_norm_kernel"]
    src = plan["cuda_source"]
    assert (
        ("__syncthreads" in src and "block of 1024" in plan["lowering_detail"])
        if name in BLOCK
        else "__shfl_down_sync" in src
    )
    if CASES[name][3]:
        assert "*(uint4*)" in src or "*(float4*)" in src or "*(uint2*)" in src or "*(float2*)" in src
    model = CASES[name][0]
    assert len(plan["outputs"]) == len(model.graph.output)


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: feeds_for(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=ort_answer
)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    sel, reason = choice.selection, choice.reason
    assert (choice.declined[-1][1] == reason) if choice.declined else reason == "no TPAT lowering for this op"
    assert sel is None and reason

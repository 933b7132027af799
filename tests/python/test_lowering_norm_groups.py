"""LayerNormalization / RMSNormalization rows spread over several warps (layernorm.py: `group`
warps per row when one warp would keep more than LANE_ELEMS elements per lane), CPU only.

Every case: the plan says how many warps own a row, the CUDA source combines the warps' partial
sums through shared memory behind a barrier, nvcc -arch=sm_90 compiles it, and the LLVM build
matches ONNX Runtime. The LLVM build runs the lowering's serial CPU formulas, not the GPU's
lane/warp indexing: that is proven by nvcc here and by the bench's check on the GPU.
Cases: 2, 4 and 8 warps per row, ragged N (guarded last chunk), a symbolic row count that leaves
the last block partly empty (its missing rows still reach the barriers), Mean/InvStdDev outputs,
a broadcast Scale, float16 / bfloat16 / float32.

Run: .venv/bin/python -m pytest tests/python/test_lowering_norm_groups.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import launches, lowered_plan, lowering_checks  # noqa: E402
from norm_cases import feeds_for, norm_model, ort_answer  # noqa: E402

LN, RMS = "LayerNormalization", "RMSNormalization"
# name -> (model, symbol values, tolerance, warps per row)
CASES = {
    "ln_fp16_n4096": (norm_model(LN, [6, 4096], "float16"), {}, 2e-2, 2),
    "ln_f32_ragged_n3000_sym_stats": (norm_model(LN, ["B", 3000], outputs=3), {"B": 5}, 1e-4, 2),
    "ln_fp16_bcast_col_n4096": (norm_model(LN, [2, 4, 1024], "float16", axis=1, pshape=[4, 1]), {}, 2e-2, 2),
    "rms_f32_n8192": (norm_model(RMS, [3, 8192]), {}, 1e-4, 4),
    "rms_fp16_n4096_sym": (norm_model(RMS, ["B", 4096], "float16"), {"B": 3}, 2e-2, 2),
    "rms_bf16_n8192": (norm_model(RMS, [2, 8192], "bfloat16"), {}, 3e-2, 4),
    "ln_f32_n8000_stats": (norm_model(LN, [3, 8000], outputs=2), {}, 1e-4, 4),
}


@pytest.mark.parametrize("name", list(CASES))
def test_rows_over_several_warps(built, name):
    model, _, _, warps = CASES[name]
    op = model.graph.node[0].op_type
    plan = lowered_plan(built[name]["res"], "rms_norm" if op == RMS else "layer_norm")
    assert f"{warps} warps per row" in plan["lowering_detail"], plan["lowering_detail"]
    assert len(launches(plan)) == 1
    src = plan["cuda_source"]
    assert "__shfl_down_sync" in src and "__syncthreads" in src and "__shared__" in src


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: feeds_for(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=ort_answer
)

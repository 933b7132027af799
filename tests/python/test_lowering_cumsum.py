"""TPAT's own CumSum lowering (python/tpat_bridge/lowerings/cumsum.py), CPU only.

Every case: the plan validates against the schema, names the lowering and launches one kernel; its
CUDA source compiles with nvcc -arch=sm_90; the same IR built for LLVM (serial loops for blocks
and threads) matches ONNX Runtime. Cases: exclusive/reverse, rows shorter and longer than the
block, short rows (a segment of lanes per row: lengths 1 to 1024, vector loads or ragged), rows of 1 to 10 tiles (one block per tile, one block looping over tiles), a length that
does not divide, float32/float16/int32/int64, a symbolic leading dim, rank 1
and 3; column scans on a leading, middle or negative axis (one thread per column, or chunks of
the axis in 3 kernels), reverse/exclusive, symbolic outer dims. An out-of-range axis declines.

Run: .venv/bin/python -m pytest tests/python/test_lowering_cumsum.py
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

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_ort_half_via_float32  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "int32": TP.INT32, "int64": TP.INT64}


def _model(xshape, axis=-1, dtype="float32", **attrs):
    n = h.make_node("CumSum", ["x", "axis"], ["y"], **attrs)
    g = h.make_graph(
        [n],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("y", ONNX_T[dtype], xshape)],
        [h.make_tensor("axis", TP.INT64, [], [axis])],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, tolerance)
    "short_rows": (_model([3, 37]), {}, 1e-5),
    "exclusive_rank3": (_model([2, 3, 1000], exclusive=1), {}, 1e-4),
    "reverse_long": (_model([4, 16384], axis=1, reverse=1), {}, 2e-3),
    "exclusive_reverse_odd": (_model([2, 5001], exclusive=1, reverse=1), {}, 1e-3),
    "rank1": (_model([7]), {}, 1e-6),
    "long_row_loops_tiles": (_model([2, 40000], reverse=1), {}, 5e-3),
    "symbolic_rows": (_model(["B", 3000]), {"B": 3}, 1e-3),
    "fp16": (_model([2, 700], dtype="float16"), {}, 5e-2),
    "int32": (_model([3, 5000], dtype="int32"), {}, 0),
    "int64_reverse": (_model([2, 2100], dtype="int64", reverse=1), {}, 0),
    # short rows (<= 1024): a segment of lanes per row, warp shuffles; vector loads when even
    "seg_fp16_vec_rev_excl": (_model([5, 128], dtype="float16", reverse=1, exclusive=1), {}, 5e-2),
    "seg_f32_vec_ragged_rows": (_model([33, 128]), {}, 1e-4),
    "seg_int64_excl": (_model([3, 64], dtype="int64", exclusive=1), {}, 0),
    "seg_symbolic_rev": (_model(["B", 16], reverse=1), {"B": 19}, 1e-5),
    "seg_len1_excl": (_model([4, 1], exclusive=1), {}, 0),
    "seg_int32_1024_rev": (_model([2, 1024], dtype="int32", reverse=1), {}, 0),
    "seg_rank1_ragged_rev_excl": (_model([77], reverse=1, exclusive=1), {}, 1e-4),
    # long rows whose tiles are all full: 16-byte vector loads/stores in the block scan
    "full_vec_fp16_rev_excl": (_model([2, 16384], dtype="float16", reverse=1, exclusive=1), {}, 0.5),
    "full_vec_int64_one_tile": (_model([3, 2048], dtype="int64"), {}, 0),
    "full_vec_excl_3phase": (_model([2, 36864], exclusive=1), {}, 1e-2),
    # three phases (more than 8 tiles of 4096 per row): tile sums, their scan, tile scans
    "long_rev_excl_3phase": (_model([3, 70001], exclusive=1, reverse=1), {}, 1e-2),
    "long_symbolic_3phase": (_model(["B", 36865]), {"B": 2}, 1e-2),
    "long_int64_3phase": (_model([2, 50000], dtype="int64", exclusive=1), {}, 0),
    "long_fp16_3phase": (_model([1, 80000], dtype="float16", reverse=1), {}, 1.0),
    # column scans (a non-last axis): chunks > 1 (3 kernels) or one thread per column
    "axis0_chunks": (_model([300, 4], axis=0), {}, 1e-4),
    "axis0_rev_excl": (_model([1000, 6], axis=0, reverse=1, exclusive=1), {}, 1e-3),
    "middle_axis_neg": (_model([3, 77, 5], axis=-2, exclusive=1), {}, 1e-4),
    "axis0_one_chunk": (_model([20, 3000], axis=0, reverse=1), {}, 1e-4),
    "axis1_symbolic_outer": (_model(["B", 500, 3], axis=1), {"B": 2}, 1e-3),
    "axis0_fp16": (_model([256, 8], axis=0, dtype="float16"), {}, 5e-2),
    "axis0_int64": (_model([333, 2], axis=0, dtype="int64", reverse=1), {}, 0),
}
COLUMN = {name for name in CASES if "axis" in name and name != "exclusive_rank3"}
THREE_PHASE = {name for name in CASES if "3phase" in name} | {"long_row_loops_tiles"}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    et = vi.type.tensor_type.elem_type
    if et in (TP.INT32, TP.INT64):
        return {"x": rng.integers(-1000, 1000, shape).astype(np.int32 if et == TP.INT32 else np.int64)}
    return {"x": rng.standard_normal(shape).astype(np.float16 if et == TP.FLOAT16 else np.float32)}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "cumsum")
    if name in COLUMN:  # chunk sums, their scan, chunk scans; or one kernel
        assert len(launches(plan)) == (1 if "one_chunk" in name else 3), launches(plan)
        assert "column scan" in plan["lowering_detail"]
    elif name in THREE_PHASE:
        assert len(launches(plan)) == 3 and "tile sums" in plan["lowering_detail"], plan["lowering_detail"]
    else:
        assert launches(plan) == ["tpat_cumsum_kernel"]
        n = CASES[name][0].graph.input[0].type.tensor_type.shape.dim[-1].dim_value
        assert ("lane(s) per row" in plan["lowering_detail"]) == (n <= 1024), plan["lowering_detail"]
        if "vec" in name:
            assert "vector loads" in plan["lowering_detail"], plan["lowering_detail"]


# ONNX Runtime's CPU CumSum has no float16 kernel
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name][:2]), tol=lambda name: CASES[name][2], ort=run_ort_half_via_float32
)


def test_bad_axis_declines(workdir):
    path = workdir / "axis_bad.onnx"
    m = _model([300, 4], axis=0)
    m.graph.initializer[0].CopyFrom(h.make_tensor("axis", TP.INT64, [], [5]))
    onnx.save(m, str(path))
    choice = registry.choose(load_node(str(path)))
    assert choice.selection is None and "out of range" in choice.reason

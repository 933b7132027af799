"""TPAT's Gather and GatherND lowerings (python/tpat_bridge/lowerings/gather.py), CPU only.

Every case: the plan validates, names the lowering and launches one kernel whose detail gives the
vector width and index type chosen; the CUDA source compiles with nvcc -arch=sm_90 (16-byte
`uint4` copies where the slice allows); the same TIR with serial loops built for LLVM matches ONNX
Runtime exactly. The grid covers: Gather on every axis (negative too), index ranks 0 to 3, int32
and int64 indices, negative indices, slices that are not a multiple of the vector width, a constant
(initializer) table, symbolic dims (int64 indexing), dtypes float32/16, int8, int64, bool;
GatherND with batch_dims 0, 1 and 2, tuple lengths from 1 to the full rank, symbolic batch. A
test forces the blockIdx.y cap (65535 in the kernel) down to 2 so the loop over the rest of
the slices runs on LLVM; another forces the block threshold of the 2- and 4-slices-per-thread
form (loads staged in registers before the stores) down to 1.

Run: .venv/bin/python -m pytest tests/python/test_lowering_gather.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import (  # noqa: E402
    assert_matches,
    input_shape,
    launches,
    lowered_plan,
    lowering_checks,
    plan_all,
    run_llvm,
    run_ort,
)

vi = h.make_tensor_value_info
NP = {TP.FLOAT: np.float32, TP.FLOAT16: np.float16, TP.INT8: np.int8, TP.INT64: np.int64, TP.BOOL: np.bool_}


def _mk(node, inputs, outputs, inits=()):
    g = h.make_graph([node], "g", inputs, outputs, list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


def _gather(dshape, qshape, axis, dt=TP.FLOAT, qt=TP.INT64, const_data=False):
    r = len(dshape)
    a = axis % r
    oshape = dshape[:a] + qshape + dshape[a + 1 :]
    n = h.make_node("Gather", ["data", "idx"], ["y"], axis=axis)
    inputs = [vi("idx", qt, qshape)]
    inits = []
    if const_data:
        rng = np.random.default_rng(7)
        inits.append(numpy_helper.from_array(rng.standard_normal(dshape).astype(NP[dt]), "data"))
    else:
        inputs.insert(0, vi("data", dt, dshape))
    return _mk(n, inputs, [vi("y", dt, oshape)], inits)


def _gathernd(dshape, qshape, b=0, dt=TP.FLOAT, qt=TP.INT64):
    k = qshape[-1]
    oshape = qshape[:-1] + dshape[b + k :]
    n = h.make_node("GatherND", ["data", "idx"], ["y"], batch_dims=b)
    return _mk(n, [vi("data", dt, dshape), vi("idx", qt, qshape)], [vi("y", dt, oshape)])


# name: (model, {symbol: size}, lowering detail prefix, vector width, index type)
CASES = {
    "g_axis0_rows_f32": (_gather([50, 64], [3, 4], 0), {}, "gather (axis=0", 4, "int32"),
    "g_axis0_fp16_embedding": (_gather([100, 256], [2, 5], 0, TP.FLOAT16), {}, "gather (axis=0", 8, "int32"),
    "g_axis1_3d": (_gather([4, 30, 16], [7], 1), {}, "gather (axis=1", 4, "int32"),
    "g_axis_last": (_gather([3, 5, 9], [4, 2], -1), {}, "gather (axis=2", 1, "int32"),
    "g_axis_neg2_fp16_odd": (_gather([3, 11, 6], [5], -2, TP.FLOAT16), {}, "gather (axis=1", 2, "int32"),
    "g_scalar_index": (_gather([6, 8, 8], [], 1), {}, "gather (axis=1", 4, "int32"),
    "g_idx_rank3_int32": (_gather([9, 12], [2, 3, 2], 0, qt=TP.INT32), {}, "gather (axis=0", 4, "int32"),
    "g_int8": (_gather([20, 48], [10], 0, TP.INT8), {}, "gather (axis=0", 16, "int32"),
    "g_int64_axis1": (_gather([5, 13, 4], [6], 1, TP.INT64), {}, "gather (axis=1", 2, "int32"),
    "g_bool": (_gather([7, 10], [4], 0, TP.BOOL), {}, "gather (axis=0", 1, "int32"),
    "g_const_table": (_gather([40, 32], ["T"], 0, const_data=True), {"T": 9}, "gather (axis=0", 4, "int64"),
    "g_symbolic": (_gather(["N", 10, 24], ["Q"], 1), {"N": 3, "Q": 5}, "gather (axis=1", 4, "int64"),
    "g_symbolic_inner": (_gather([10, "C", 8], [4], 0, TP.FLOAT16), {"C": 3}, "gather (axis=0", 8, "int64"),
    "nd_b0_rows": (_gathernd([6, 7, 32], [5, 2]), {}, "gather_nd (batch_dims=0, k=2", 4, "int32"),
    "nd_b0_scalars_fp16": (_gathernd([9, 10], [33, 2], dt=TP.FLOAT16), {}, "gather_nd (batch_dims=0, k=2", 1, "int32"),
    "nd_b0_k1": (_gathernd([12, 3, 8], [2, 3, 1]), {}, "gather_nd (batch_dims=0, k=1", 4, "int32"),
    "nd_b1": (_gathernd([4, 20, 16], [4, 6, 1], b=1), {}, "gather_nd (batch_dims=1, k=1", 4, "int32"),
    "nd_b1_k2_fp16": (
        _gathernd([3, 5, 6, 24], [3, 7, 2], b=1, dt=TP.FLOAT16),
        {},
        "gather_nd (batch_dims=1, k=2",
        8,
        "int32",
    ),
    "nd_b2": (_gathernd([2, 3, 9, 8], [2, 3, 4, 1], b=2), {}, "gather_nd (batch_dims=2, k=1", 4, "int32"),
    "nd_b2_full": (_gathernd([2, 3, 5, 6], [2, 3, 2], b=2), {}, "gather_nd (batch_dims=2, k=2", 1, "int32"),
    "nd_b1_symbolic": (
        _gathernd(["B", 11, 12], ["B", 5, 1], b=1),
        {"B": 3},
        "gather_nd (batch_dims=1, k=1",
        4,
        "int64",
    ),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    node = model.graph.node[0]
    for inp in model.graph.input:
        shape = input_shape(inp, syms)
        et = inp.type.tensor_type.elem_type
        if inp.name == "data":
            x = rng.standard_normal(shape) * 50
            feeds["data"] = (x > 0) if et == TP.BOOL else x.astype(NP[et])
    dshape = list(feeds["data"].shape) if "data" in feeds else list(inits["data"].shape)
    for inp in model.graph.input:
        if inp.name != "idx":
            continue
        shape = input_shape(inp, syms)
        dt = np.int32 if inp.type.tensor_type.elem_type == TP.INT32 else np.int64
        if node.op_type == "Gather":
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0) % len(dshape)
            d = dshape[axis]
            feeds["idx"] = rng.integers(-d, d, shape).astype(dt)
        else:
            b = next((a.i for a in node.attribute if a.name == "batch_dims"), 0)
            cols = [rng.integers(-dshape[b + j], dshape[b + j], shape[:-1]) for j in range(shape[-1])]
            feeds["idx"] = np.stack(cols, -1).astype(dt)
    return feeds


@pytest.mark.parametrize("name", list(CASES))
def test_plan_is_one_vectorized_kernel(built, name):
    _, _, detail, vec, ity = CASES[name]
    plan = lowered_plan(built[name]["res"], detail)
    assert len(launches(plan)) == 1
    assert f"slices as {vec}-element vectors" in plan["lowering_detail"]
    assert f"{ity} indexing" in plan["lowering_detail"]
    if vec * {"float32": 4, "float16": 2, "int8": 1, "int64": 8}.get(plan["inputs"][0]["dtype"], 0) == 16:
        assert re.search(r"\*\((uint4|int4|float4|longlong2)\*\)\(data_f_ptr", plan["cuda_source"]), "no 16-byte load"


test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(CASES, feeds=lambda name: _feeds(*CASES[name][:2]))


def test_out_of_range_indices_are_clamped(built):
    """ONNX leaves them undefined; the kernel wraps once and clamps, so it never reads outside."""
    model, syms = CASES["g_axis0_rows_f32"][:2]
    feeds = _feeds(model, syms)
    feeds["idx"] = np.array([[-1000, -51, -50, 49], [50, 10**12, -(10**12), 0], [1, 2, 3, 4]], np.int64)
    got = run_llvm(built["g_axis0_rows_f32"]["path"], feeds)[0]
    ref = np.clip(np.where(feeds["idx"] < 0, feeds["idx"] + 50, feeds["idx"]), 0, 49)
    np.testing.assert_array_equal(got, feeds["data"][ref])


def test_grid_y_cap_loops_over_the_rest(monkeypatch, workdir):
    """blockIdx.y is capped (65535); the slices beyond it are walked by a loop. With the cap forced
    to 2 the loop runs several times on LLVM and the result is still exact."""
    from tpat_bridge.lowerings import gather

    monkeypatch.setattr(gather, "GRID_Y", 2)
    cases = {"cap_gather": CASES["g_axis1_3d"], "cap_nd": CASES["nd_b1"]}
    built = plan_all({f"{k}": v[0] for k, v in cases.items()}, workdir)
    for name, case in cases.items():
        plan = lowered_plan(built[name]["res"], case[2])
        assert re.search(r"for \(int yo = 0;", plan["cuda_source"]), "no loop over the capped grid"
        feeds = _feeds(case[0], case[1])
        assert_matches(run_llvm(built[name]["path"], feeds)[0], run_ort(case[0], feeds)[0], 0)


@pytest.mark.parametrize("unroll", [2, 4])
def test_slices_per_thread_stage_every_load_first(monkeypatch, workdir, unroll):
    """Large outputs give a thread U = 2 or 4 slices, every load staged in registers before the
    first store. With the block threshold forced to 1 the small cases take that path on LLVM."""
    from tpat_bridge.lowerings import gather

    monkeypatch.setattr(gather, "UNROLL_BLOCKS", 1)
    # S slices divisible by TS * U: U = 4 where 4 divides, else 2
    cases = {
        2: {"u_gather_axis1": _gather([2, 6, 32], [4], 1), "u_nd_b1": _gathernd([2, 9, 16], [2, 8, 1], b=1)},
        4: {"u_gather_rows": _gather([30, 64], [4, 8], 0), "u_nd_b2": _gathernd([2, 2, 9, 8], [2, 2, 16, 1], b=2)},
    }[unroll]
    built = plan_all({f"{k}_{unroll}": m for k, m in cases.items()}, workdir)
    for name, model in cases.items():
        plan = lowered_plan(
            built[f"{name}_{unroll}"]["res"], model.graph.node[0].op_type.lower().replace("gathernd", "gather_nd")
        )
        assert f"{unroll} per thread" in plan["lowering_detail"], plan["lowering_detail"]
        assert "stage" in plan["cuda_source"]
        feeds = _feeds(model, {})
        assert_matches(run_llvm(built[f"{name}_{unroll}"]["path"], feeds)[0], run_ort(model, feeds)[0], 0)

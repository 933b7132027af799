"""TPAT's own TopK lowering (python/tpat_bridge/lowerings/topk.py), CPU only.

Every case: the plan validates against the schema, names the lowering and launches the chunk sort
plus one kernel per merge level; its CUDA source compiles with nvcc -arch=sm_90; the same IR built
for LLVM (serial loops for blocks and threads) gives exactly ONNX Runtime's values and indices,
with many ties (equal values must come by ascending index). Cases: one chunk and several, K below
and above the chunk size, K = N, largest and smallest, float32/float16/int32, a symbolic
leading dim, rank 1 and 3, a non-last axis (through transposes). 64-bit values keep TVM's lowering;
an out-of-range axis declines.

Run: .venv/bin/python -m pytest tests/python/test_lowering_topk.py
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


def _model(xshape, k, largest=1, dtype="float32", axis=-1):
    n = h.make_node("TopK", ["x", "k"], ["v", "i"], axis=axis, largest=largest)
    oshape = list(xshape)
    oshape[axis] = k
    g = h.make_graph(
        [n],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("v", ONNX_T[dtype], oshape), h.make_tensor_value_info("i", TP.INT64, oshape)],
        [h.make_tensor("k", TP.INT64, [1], [k])],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, merge levels)
    "one_chunk_small": (_model([3, 37], 35), {}, 0),
    "one_chunk_smallest_rank3": (_model([2, 3, 1000], 300, largest=0), {}, 0),
    "k_above_chunk": (_model([4, 9000], 4100), {}, 2),
    "k33_two_chunks": (_model([2, 5000], 33), {}, 1),
    "k_equals_n": (_model([2, 130], 130, largest=0), {}, 0),
    "rank1": (_model([20000], 1000), {}, 3),
    "symbolic_rows": (_model(["B", 8200], 64), {"B": 3}, 2),
    "fp16": (_model([2, 6000], 2000, dtype="float16"), {}, 1),
    "int32_smallest": (_model([3, 5000], 100, largest=0, dtype="int32"), {}, 1),
    # K <= 32: selection in registers (1, 2 or 8 warps per row), one kernel
    "sel_k1": (_model([5, 1000], 1), {}, -1),
    "sel_k8_smallest_ragged": (_model([33, 1023], 8, largest=0), {}, -1),
    "sel_k32_two_warps": (_model([3, 4097], 32), {}, -1),
    "sel_k16_eight_warps_fp16": (_model([2, 20000], 16, dtype="float16"), {}, -1),
    "sel_k5_int32_symbolic": (_model(["B", 300], 5, dtype="int32"), {"B": 9}, -1),
    "sel_k_eq_n": (_model([4, 7], 7, largest=0), {}, -1),
    "sel_rank1_k3": (_model([100], 3), {}, -1),
    "axis0_sel_k16_smallest": (_model([4096, 20], 16, largest=0, axis=0), {}, -1),
    # a non-last axis: transposed last, the outputs transposed back
    "axis0": (_model([300, 4], 40, axis=0), {}, 0),
    "axis_m2_rank3_smallest": (_model([2, 5000, 3], 40, largest=0, axis=-2), {}, 1),
    "axis1_symbolic_rows": (_model(["B", 64, 5], 64, axis=1), {"B": 2}, 0),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    et = vi.type.tensor_type.elem_type
    if et in (TP.INT32, TP.INT64):
        x = rng.integers(-200, 200, shape).astype(np.int32 if et == TP.INT32 else np.int64)
    else:
        x = rng.standard_normal(shape).astype(np.float16 if et == TP.FLOAT16 else np.float32)
        flat = x.reshape(-1)
        flat[::5] = flat[1]  # many ties
        flat[::11] = np.round(flat[::11], 1)
    return {"x": x}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "topk")
    kernels = launches(plan)
    levels = CASES[name][2]
    if name.startswith("axis"):  # X transposed in, values and indices transposed out
        assert "moved last by a transpose" in plan["lowering_detail"]
        assert sum(1 for k in kernels if "transpose" in k) == 3, kernels
        kernels = [k for k in kernels if "transpose" not in k]
    if levels < 0:  # K <= 32: one selection kernel
        assert kernels == ["tpat_topk_select_kernel"], kernels
        assert "selection in registers" in plan["lowering_detail"], plan["lowering_detail"]
        return
    assert kernels[0].startswith("tpat_topk_sort") and len(kernels) == 1 + levels, kernels
    assert all(k.startswith("tpat_topk_merge") for k in kernels[1:])


# values and indices equal; float16 values are exact in float32: the same order
test_nvcc_compiles, test_numerics_llvm_equal_ort = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name][:2]), ort=run_ort_half_via_float32
)


def test_nan_comes_first_for_largest(workdir):
    import tvm
    from tvm import relax

    path = workdir / "nan.onnx"
    onnx.save(_model([1, 300], 4), str(path))
    x = np.arange(300, dtype=np.float32)[None]
    x[0, 7] = np.nan
    mod, _ = registry.tpat_module(load_node(str(path)), mode="cpu")
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    res = vm["main"](tvm.runtime.tensor(x))
    v, i = res[0].numpy()[0], res[1].numpy()[0]
    assert np.isnan(v[0]) and i[0] == 7
    np.testing.assert_array_equal(v[1:], [299, 298, 297])


def test_bad_axis_declines(workdir):
    path = workdir / "axis_bad.onnx"
    m = _model([300, 4], 2, axis=0)
    for a in m.graph.node[0].attribute:
        if a.name == "axis":
            a.i = 3
    onnx.save(m, str(path))
    choice = registry.choose(load_node(str(path)))
    assert choice.selection is None and "out of range" in choice.reason

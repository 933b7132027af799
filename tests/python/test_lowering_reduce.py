"""TPAT's own reduction lowering (python/tpat_bridge/lowerings/reduce.py), CPU only.

Every case: the plan validates against the schema, names the lowering and launches the designed
kernels (one per pass; a split R adds a pass over the partials); its CUDA source compiles with
nvcc -arch=sm_90; the same kernels built for LLVM (serial loops for blocks and threads, the GPU's
loads and index arithmetic) match ONNX Runtime where it has a kernel for the type, and a numpy
reference with ONNX Runtime's semantics everywhere (bfloat16, 8/16-bit ints). Grid: the ten ops;
last / leading / middle / all / non-contiguous / negative / unsorted axes; axes as an attribute
(opset 13, ReduceSum 11) and as an input; empty axes (all axes) and noop_with_empty_axes; keepdims
0/1; rank 0 and 1; symbolic dims, a runtime 0 in a reduced dim (ONNX Runtime's empty values); rows
split in segments (two passes); float32/16, bfloat16, float64, int8/uint8/int32/int64. A runtime
axes input, a repeated axis and an axis out of range decline.

Run: .venv/bin/python -m pytest tests/python/test_lowering_reduce.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks, run_llvm  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {
    "float32": TP.FLOAT,
    "float16": TP.FLOAT16,
    "bfloat16": TP.BFLOAT16,
    "float64": TP.DOUBLE,
    "int8": TP.INT8,
    "uint8": TP.UINT8,
    "int32": TP.INT32,
    "int64": TP.INT64,
}
NP_T = {
    "float32": np.float32,
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int32": np.int32,
    "int64": np.int64,
}
ORT_TYPES = {"float32", "float16", "float64", "int32", "int64"}  # ONNX Runtime's CPU kernels (all ten ops)


def _model(
    op,
    xshape,
    axes=None,
    dtype="float32",
    keepdims=1,
    opset=18,
    attr_axes=False,
    runtime_axes=False,
    yshape=None,
    **attrs,
):
    """A one-node Reduce* model; axes None: no axes input/attribute."""
    ins, inits, inputs = ["x"], [], [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    if axes is not None and attr_axes:
        attrs["axes"] = list(axes)
    elif axes is not None:
        ins.append("axes")
        if runtime_axes:
            inputs.append(h.make_tensor_value_info("axes", TP.INT64, [len(axes)]))
        else:
            inits.append(onnx.numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    n = h.make_node(op, ins, ["y"], keepdims=keepdims, **attrs)
    g = h.make_graph([n], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], yshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m if yshape is not None else onnx.shape_inference.infer_shapes(m)


F32, F16 = 2e-4, 2e-2
CASES = {
    # name: (model, {symbol: size}, tolerance)
    "max_last": (_model("ReduceMax", [33, 1000], [-1]), {}, 0),
    "max_last_fp16_nokeep": (_model("ReduceMax", [16, 4096], [-1], "float16", keepdims=0), {}, 0),
    "min_leading": (_model("ReduceMin", [300, 130], [0]), {}, 0),
    "max_two_axes_split": (_model("ReduceMax", [2, 1024, 1024], [1, 2]), {}, 0),
    "sum_middle_fp16": (_model("ReduceSum", [8, 77, 64], [1], "float16"), {}, F16),
    "sum_split_row": (_model("ReduceSum", [2, 1100000], [1]), {}, 1e-3),
    "sum_leading_split": (_model("ReduceSum", [90000, 24], [0]), {}, 1e-3),
    "mean_last_bf16": (_model("ReduceMean", [64, 768], [-1], "bfloat16"), {}, F16),
    "mean_symbolic": (_model("ReduceMean", ["B", 50, 7], [1]), {"B": 3}, F32),
    "mean_int32": (_model("ReduceMean", [5, 9], [1], "int32"), {}, 0),
    "prod_f64": (_model("ReduceProd", [4, 6, 5], [2], "float64"), {}, 1e-12),
    "l1_noncontiguous": (_model("ReduceL1", [5, 6, 7, 8], [0, 2]), {}, F32),
    "l2_unsorted_neg": (_model("ReduceL2", [4, 6, 10, 3], [-1, 1]), {}, F32),
    "l2_int32": (_model("ReduceL2", [3, 40], [1], "int32"), {}, 0),
    "sumsquare_all": (_model("ReduceSumSquare", [7, 9, 11]), {}, 1e-3),
    "logsum_keep0": (_model("ReduceLogSum", [6, 5, 4], [1], keepdims=0), {}, F32),
    "lse_last": (_model("ReduceLogSumExp", [12, 3000], [1]), {}, F32),
    "lse_middle_fp16": (_model("ReduceLogSumExp", [4, 82, 12], [1], "float16"), {}, F16),
    "lse_int64": (_model("ReduceLogSumExp", [3, 7], [0], "int64"), {}, 0),
    "sum_attr_opset11": (_model("ReduceSum", [4, 5, 6], [0, 2], opset=11, attr_axes=True), {}, F32),
    "max_attr_opset13": (_model("ReduceMax", [4, 5, 6], [1], opset=13, attr_axes=True, keepdims=0), {}, 0),
    "sum_empty_axes_all": (_model("ReduceSum", [6, 10], []), {}, F32),
    "sum_noop": (_model("ReduceSum", [6, 10], [], noop_with_empty_axes=1), {}, 0),
    "sumsquare_noop": (_model("ReduceSumSquare", [6, 10], None, noop_with_empty_axes=1), {}, F32),
    "logsum_noop_f64": (_model("ReduceLogSum", [3, 8], None, "float64", noop_with_empty_axes=1), {}, 1e-12),
    "max_rank0": (_model("ReduceMax", [], None), {}, 0),
    "sum_rank1": (_model("ReduceSum", [1000], [0]), {}, 1e-4),
    "sum_size1_axis": (_model("ReduceSum", [5, 1, 7], [1]), {}, 0),
    "sum_int8": (_model("ReduceSum", [4, 100], [1], "int8"), {}, 0),
    "max_uint8": (_model("ReduceMax", [4, 100], [0], "uint8"), {}, 0),
    "max_int8_16wide": (_model("ReduceMax", [8, 64], [-1], "int8"), {}, 0),
    "min_int64_sym": (_model("ReduceMin", ["N", 9], [0], "int64"), {"N": 5}, 0),
    # short rows (sub-warp groups), short R under many columns (lanes over (o, column) pairs)
    "sum_short_rows": (_model("ReduceSum", [1000, 3], [-1]), {}, F32),
    "max_rows_of_12_fp16": (_model("ReduceMax", [300, 12], [1], "float16"), {}, 0),
    "sum_short_r_cols": (_model("ReduceSum", [500, 2, 16], [1]), {}, F32),
    "mean_sym_cols": (_model("ReduceMean", ["B", 5, "C"], [1]), {"B": 3, "C": 37}, F32),
    # R split in segments only where a pass reads >= 8 MiB (SPLIT_BYTES)
    "lse_split_cols_sym": (_model("ReduceLogSumExp", ["B", 70000, 32], [1]), {"B": 1}, 1e-4),
    # a runtime 0 in a reduced dim: ONNX Runtime's values for an empty reduction
    "max_empty": (_model("ReduceMax", [3, "N"], [1]), {"N": 0}, 0),
    "mean_empty": (_model("ReduceMean", ["N", 4], [0]), {"N": 0}, 0),
    "prod_empty": (_model("ReduceProd", [2, "N", 3], [1]), {"N": 0}, 0),
    "lse_empty": (_model("ReduceLogSumExp", [2, "N"], [1]), {"N": 0}, 0),
    "max_int32_empty": (_model("ReduceMax", [2, "N"], [1], "int32"), {"N": 0}, 0),
    "l2_symbolic_last": (_model("ReduceL2", ["B", "T"], [1]), {"B": 3, "T": 50}, F32),
}
NOT_LOWERED = {
    # output shapes given: ONNX's inference cannot (runtime axes) or refuses (bad axes)
    "runtime_axes": _model("ReduceSum", [4, 5], [1], runtime_axes=True, yshape=[4, 1]),
    "repeated_axis": _model("ReduceMax", [4, 5], [1, -1], yshape=[4, 1]),
    "axis_out_of_range": _model("ReduceMax", [4, 5], [2], yshape=[4, 5]),
}
SPLIT = {"max_two_axes_split", "sum_split_row", "sum_leading_split"}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    dt = next(k for k, v in ONNX_T.items() if v == vi.type.tensor_type.elem_type)
    op = model.graph.node[0].op_type
    if dt in ("int8", "uint8", "int32", "int64"):
        lo, hi = (0, 6) if dt == "uint8" else (-5, 6)
        if op in ("ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceProd"):
            lo = max(lo, 1)
        x = rng.integers(lo, hi, shape)
    else:
        x = rng.standard_normal(shape)
        if op in ("ReduceLogSum",):
            x = np.abs(x) + 0.1
        if op == "ReduceProd":
            x = 1 + 0.1 * x
    return {"x": np.asarray(x).astype(NP_T[dt])}


def numpy_reference(op, x, axes, keepdims, noop):
    """ONNX Runtime's semantics in float64 / int64 (empty: its identity values)."""
    dt = x.dtype
    is_int = dt.kind in "iu"
    w = x.astype(np.int64 if is_int else np.float64)
    if noop:
        ax = ()
    else:
        ax = tuple(range(x.ndim)) if not axes else tuple(a % x.ndim for a in axes)
    count = int(np.prod([x.shape[a] for a in ax])) if ax else 1

    def red(fn, v):
        return fn(v, axis=ax, keepdims=bool(keepdims)) if ax else v

    if op == "ReduceSum":
        r = red(np.sum, w)
    elif op == "ReduceMean":
        s = red(np.sum, w)
        r = (np.trunc(s / count) if is_int else s / count) if count else np.zeros_like(s)
    elif op in ("ReduceMax", "ReduceMin"):
        if count == 0:
            shape = np.sum(w, axis=ax, keepdims=bool(keepdims)).shape
            r = np.zeros(shape) if is_int else np.full(shape, -np.inf if op == "ReduceMax" else np.inf)
        else:
            r = red(np.max if op == "ReduceMax" else np.min, w)
    elif op == "ReduceProd":
        r = red(np.prod, w)
    elif op == "ReduceL1":
        r = red(np.sum, np.abs(w))
    elif op == "ReduceL2":
        r = np.sqrt(red(np.sum, w * w).astype(np.float64))
    elif op == "ReduceSumSquare":
        r = red(np.sum, w * w)
    elif op == "ReduceLogSum":
        with np.errstate(divide="ignore"):
            r = np.log(red(np.sum, w).astype(np.float64))
    else:
        wf = w.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if count == 0:
                r = np.full(np.sum(wf, axis=ax, keepdims=bool(keepdims)).shape, -np.inf)
            else:
                m = red(np.max, wf)
                mk = m if keepdims or not ax else np.expand_dims(m, ax)
                r = m + np.log(red(np.sum, np.exp(wf - mk)))
    r = np.asarray(r)
    if is_int:
        r = np.trunc(r) if r.dtype.kind == "f" else r
        return r.astype(np.int64).astype(dt)  # wraps like the kernel's arithmetic
    return r.astype(dt)


def _case_args(model):
    node = model.graph.node[0]
    attrs = {a.name: h.get_attribute_value(a) for a in node.attribute}
    axes = list(attrs.get("axes", []))
    for t in model.graph.initializer:
        if t.name == "axes":
            axes = onnx.numpy_helper.to_array(t).tolist()
    return node.op_type, axes, attrs.get("keepdims", 1), bool(attrs.get("noop_with_empty_axes", 0)) and not axes


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "reduce")
    n_pass = plan["lowering_detail"].count("(O=")
    assert len(launches(plan)) == n_pass, (launches(plan), plan["lowering_detail"])
    if name in SPLIT:
        assert "segments" in plan["lowering_detail"] and plan["workspace_bytes"] != {"int": 0}, plan["lowering_detail"]
    if name == "l1_noncontiguous":
        assert n_pass == 2, plan["lowering_detail"]


def _numpy(name, feeds):
    op, axes, keep, noop = _case_args(CASES[name][0])
    return [numpy_reference(op, feeds["x"], axes, keep, noop)]


def _ort_has(name):
    dtype = {v: k for k, v in ONNX_T.items()}[CASES[name][0].graph.input[0].type.tensor_type.elem_type]
    return dtype in ORT_TYPES


test_nvcc_compiles, test_numerics_llvm_vs_reference = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name][:2]),
    tol=lambda name: CASES[name][2],
    ort_has=_ort_has,
    reference=_numpy,
)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_declines_with_reason(built, name):
    res = built[name]["res"]
    if res["ok"]:
        plan = res["plan"]
        assert plan["lowering"] != "reduce"
        reasons = [d["reason"] for d in plan["declined"] if d["lowering"] == "reduce"]
    else:
        choice = registry.choose(load_node(str(built[name]["path"])))
        assert choice.selection is None
        reasons = [r for _, r in choice.declined]
    assert reasons and all(r.strip() for r in reasons)
    if name == "runtime_axes":
        assert "runtime" in reasons[0]


def test_nan_propagates_through_max_and_min(built):
    """Max/Min propagate NaN wherever it is (numpy, PyTorch); ONNX Runtime keeps it only first."""
    x = np.random.default_rng(3).standard_normal([33, 1000]).astype(np.float32)
    x[5, 500] = np.nan
    x[7, 999] = np.nan
    got = run_llvm(built["max_last"]["path"], {"x": x})[0]
    assert np.isnan(got[5, 0]) and np.isnan(got[7, 0]) and not np.isnan(np.delete(got, [5, 7])).any()


def test_logsumexp_is_stable(built):
    x = np.full([12, 3000], 100.0, np.float32)
    got = run_llvm(built["lse_last"]["path"], {"x": x})[0]
    np.testing.assert_allclose(got, 100 + np.log(3000), rtol=1e-5)


def test_detail_names_the_kernels(built):
    d = lowered_plan(built["max_last_fp16_nokeep"]["res"], "reduce")["lowering_detail"]
    assert "warp per row, 8-wide" in d, d
    d = lowered_plan(built["min_leading"]["res"], "reduce")["lowering_detail"]
    assert "columns" in d, d


def test_onnx_backend_reduce_node_tests(tmp_path):
    """ONNX's own backend node tests of the ten ops (test_reduce_*, the axes input made a constant)
    through the lowering on LLVM against their expected outputs; only bool Max/Min decline."""
    import glob
    import os

    from onnx import numpy_helper

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    ran, declined, bad = 0, [], []
    for t in sorted(glob.glob(os.path.join(root, "test_reduce_*"))):
        name = os.path.basename(t)
        if name.endswith("_expanded"):
            continue
        m = onnx.load(os.path.join(t, "model.onnx"))
        ins = [numpy_helper.to_array(onnx.load_tensor(f)) for f in sorted(glob.glob(t + "/test_data_set_0/input_*.pb"))]
        want = numpy_helper.to_array(onnx.load_tensor(sorted(glob.glob(t + "/test_data_set_0/output_*.pb"))[0]))
        g = m.graph
        for vi, arr in list(zip(list(g.input)[1:], ins[1:])):
            g.initializer.append(numpy_helper.from_array(arr, vi.name))
            g.input.remove(vi)
        path = tmp_path / f"{name}.onnx"
        onnx.save(m, str(path))
        info = load_node(str(path))
        if registry.choose(info).lowering is None:
            declined.append(name)
            continue
        got = run_llvm(path, {info.inputs[0]["name"]: ins[0]})[0]
        ran += 1
        if got.shape != want.shape or not np.allclose(
            got.astype(np.float64), want.astype(np.float64), rtol=1e-4, atol=1e-5, equal_nan=True
        ):
            bad.append((name, got.ravel()[:4], want.ravel()[:4]))
    assert not bad, bad
    assert sorted(declined) == ["test_reduce_max_bool_inputs", "test_reduce_min_bool_inputs"], declined
    assert ran >= 80, ran


def test_column_split_fits_the_blocks_per_sm():
    """A split column pass plans its segments for the blocks per SM its kernel fits: 16-bit inputs
    (8-wide, 38 registers: 6 blocks of 256 threads per SM) 12 segments of (32, 2048, 512) axis 1:
    768 blocks, 0.97 waves of 132 x 6 (15 segments gave 960 blocks = 1.21 waves: 30.4 us, 12
    gave 28.6 us on the H200, membw3-2); float32 (26 registers, 8 per SM) keeps its plan."""
    from tpat_bridge.lowerings import reduce as rd

    (p, _) = rd._passes([32, 2048, 512], (1,), "float16", "float32")
    assert (p.kernel, p.vec, p.s) == ("col", 8, 12)
    blocks = 32 * (512 // 8) // p.g * p.s
    assert blocks <= rd.SMS * 6 and blocks / (rd.SMS * 6) >= 0.9
    (p, _) = rd._passes([4096, 8192], (0,), "float32", "float32")
    assert (p.kernel, p.vec, p.s) == ("col", 4, 15)
    assert rd._col_blocks_per_sm(8, 2) == 6 and rd._col_blocks_per_sm(4, 4) == 8

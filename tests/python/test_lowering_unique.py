"""TPAT's Unique lowering (python/tpat_bridge/lowerings/unique.py): data-dependent outputs sharing
one size tensor, CPU only.

Every case: the plan validates against the schema, declares Y, indices and counts data-dependent
on one trailing 0-D int64 size output (inverse_indices stays [N]); its CUDA source compiles with
nvcc -arch=sm_90; the same IR built for LLVM matches ONNX Runtime on the actual shapes (all four
outputs or a subset). Cases: sorted and first-occurrence order, float32/float64/int32/int64/int8,
several blocks, all equal, all distinct, ties at block edges, a wide int64 range (all 16 radix
passes; sorted and not); along an axis (first, middle, last, negative; sorted and not; a subset
of outputs). Symbolic input dims: planned, flattened (the radix sort has no host-side condition)
and with an axis.

Run: .venv/bin/python -m pytest tests/python/test_lowering_unique.py
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

from lowering_harness import lowered_plan, lowering_checks, run_llvm, run_ort  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.tools import cross_check, reference  # noqa: E402
from tpat_bridge.tools.compare import actual_outputs  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float64": TP.DOUBLE, "int32": TP.INT32, "int64": TP.INT64, "int8": TP.INT8}
ALL = ("Y", "ind", "inv", "cnt")


def _model(xshape, dtype="float32", sorted_=1, outs=ALL, axis=None):
    kw = {"sorted": sorted_} if axis is None else {"sorted": sorted_, "axis": axis}
    n = h.make_node("Unique", ["x"], list(outs), **kw)
    types = [ONNX_T[dtype], TP.INT64, TP.INT64, TP.INT64]
    r = len(xshape)
    yshape = ["u"] if axis is None else ["u" if i == axis % r else f"d{i}" for i in range(r)]
    outputs = [
        h.make_tensor_value_info(nm, types[k], ["n"] if k == 2 else yshape if k == 0 else ["u"])
        for k, nm in enumerate(outs)
        if nm
    ]
    g = h.make_graph([n], "g", [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)], outputs)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, value range (lo, hi) or "distinct" / "equal")
    "sorted_f32": (_model([20]), (-8, 8)),
    "sorted_int64_blocks": (_model([4, 700], "int64"), (-50, 50)),
    "unsorted_f32": (_model([50], sorted_=0), (-8, 8)),
    "unsorted_int32_blocks": (_model([3000], "int32", sorted_=0), (-500, 500)),
    "float64_subset": (_model([6, 7], "float64", outs=("Y", "", "inv", "")), (-4, 4)),
    "int8_no_inverse": (_model([3000], "int8", outs=("Y", "ind", "", "cnt")), (-100, 100)),
    "all_equal": (_model([1500], "int64"), "equal"),
    "all_distinct_unsorted": (_model([2100], "int64", sorted_=0), "distinct"),
    "only_y": (_model([9, 11], outs=("Y",)), (-3, 3)),
    # values over most of the int64 range: every radix pass runs
    "wide_int64_all_passes": (_model([5000], "int64"), (-(2**62), 2**62)),
    "wide_int64_unsorted": (_model([4500], "int64", sorted_=0), (-(2**62), 2**62)),
    # along an axis: the slices are the values (lexicographic order)
    "axis0_rows": (_model([6, 3], axis=0), (0, 2)),
    "axis1_int64": (_model([2, 7, 3], "int64", axis=1), (0, 2)),
    "axis1_unsorted": (_model([4, 9], "int64", sorted_=0, axis=1), (0, 2)),
    "axis_last_long_slices": (_model([3, 2, 300], axis=-1), (0, 2)),
    "axis0_many_slices_unsorted": (_model([600, 2], "int64", sorted_=0, axis=0), (0, 2)),
    "axis0_subset": (_model([40, 2], "int64", outs=("Y", "", "inv", ""), axis=0), (0, 3)),
}


def _x(model, values, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    dt = {v: k for k, v in ONNX_T.items()}[vi.type.tensor_type.elem_type]
    n = int(np.prod(shape))
    if values == "equal":
        x = np.full(n, 7)
    elif values == "distinct":
        x = rng.permutation(n) * 3 - n
    else:
        x = rng.integers(values[0], values[1], n)
    x = x.astype(dt)
    if dt.startswith("float") and values not in ((0, 2), (0, 3)):
        x = x / 2
    return {"x": x.reshape(shape)}


def _data_dependent(path):
    info = load_node(str(path))
    registry.tpat_module(info, mode="cpu")
    return info.data_dependent


@pytest.mark.parametrize("name", list(CASES))
def test_plan_declares_one_size_output(built, name):
    plan = lowered_plan(built[name]["res"], "unique")
    model = CASES[name][0]
    present = [k for k, o in enumerate(model.graph.node[0].output) if o]
    outs = plan["outputs"]
    assert len(outs) == len(present) + 1
    size = outs[-1]
    assert size["dtype"] == "int64" and size["shape_expr"] == []
    dd = [j for j, k in enumerate(present) if k != 2]
    assert size["size_of"] == dd
    ax = next((a.i for a in model.graph.node[0].attribute if a.name == "axis"), None)
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    for j, k in enumerate(present):
        dim = ax % rank if (k == 0 and ax is not None) else 0
        assert outs[j].get("data_dependent") == ({"dim": dim, "size_output": len(present)} if k != 2 else None)


def _numpy_only(name):
    """ONNX Runtime's CPU Unique: float, int64, int8 (and strings); numpy for the others."""
    model = CASES[name][0]
    has_axis = any(a.name == "axis" for a in model.graph.node[0].attribute)
    return not has_axis and model.graph.input[0].type.tensor_type.elem_type in (TP.DOUBLE, TP.INT32)


def _numpy_unique(name, feeds):
    model = CASES[name][0]
    if not _numpy_only(name):
        return None
    y, ind, inv, cnt = np.unique(feeds["x"].reshape(-1), return_index=True, return_inverse=True, return_counts=True)
    if model.graph.node[0].attribute[0].i == 0:  # sorted=0: first-occurrence order
        order = np.argsort(ind, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        y, ind, cnt, inv = y[order], ind[order], cnt[order], rank[inv]
    allw = [y, ind.astype(np.int64), inv.astype(np.int64).reshape(-1), cnt.astype(np.int64)]
    return [allw[k] for k, o in enumerate(model.graph.node[0].output) if o]


# data-dependent outputs cut to their size output's count
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES,
    feeds=lambda name: _x(*CASES[name]),
    ort_has=lambda name: not _numpy_only(name),
    reference=_numpy_unique,
)


def test_symbolic_dims(workdir):
    """The radix sort (flattened, and sorted=0's sort of first occurrences) and the slice ranking
    (with an axis) take symbolic sizes: planned, and the LLVM build matches ONNX Runtime."""
    p = workdir / "u_sym.onnx"
    onnx.save(_model(["b", 700], "int64"), str(p))
    r = handle_plan({"command": "plan", "model_path": str(p)})
    assert r["ok"], r
    feeds = {"x": np.random.default_rng(2).integers(-30, 30, (3, 700)).astype(np.int64)}
    want = run_ort(onnx.load(str(p)), feeds)
    for g, w in zip(actual_outputs(run_llvm(p, feeds), want, _data_dependent(p)), want):
        np.testing.assert_array_equal(g, w)
    p = workdir / "u_sym_axis.onnx"
    onnx.save(_model(["b", 5], "int64", axis=0), str(p))
    r = handle_plan({"command": "plan", "model_path": str(p)})
    assert r["ok"], r
    feeds = {"x": np.random.default_rng(1).integers(0, 2, (40, 5)).astype(np.int64)}
    got = actual_outputs(run_llvm(p, feeds), run_ort(onnx.load(str(p)), feeds), _data_dependent(p))
    for g, w in zip(got, run_ort(onnx.load(str(p)), feeds)):
        np.testing.assert_array_equal(g, w)


def test_reference_and_cross_check_agree(tmp_path):
    p = tmp_path / "u.onnx"
    m = _model([5, 40], "int64", sorted_=0)
    m.graph.input[0].name = m.graph.node[0].input[0] = "in0"
    for k in range(4):
        m.graph.output[k].name = m.graph.node[0].output[k] = f"out{k}"
    onnx.save(m, str(p))
    ans = reference.make_reference(
        {"command": "reference", "model_path": str(p), "out_dir": str(tmp_path / "ref"), "prefix": "x", "plugin": "x"}
    )
    assert ans["cases"] >= 1
    res = cross_check.cross_check({"model_path": str(p), "reference_dir": str(tmp_path / "ref"), "tactics": ["tpat"]})
    assert [t["status"] for t in res["tactics"]] == ["agrees"], res

"""TPAT's Compress lowering (python/tpat_bridge/lowerings/compress.py): a data-dependent output, CPU only.

Every case: the plan validates against the schema, launches NonZero's count / scan / scatter
kernels on the condition and one gather kernel, and declares the compressed dim data-dependent
with a trailing 0-D int64 size output (upper bound min(len(condition), dim)); its CUDA source
compiles with nvcc -arch=sm_90; the same IR built for LLVM matches ONNX Runtime on the actual
shape. Cases: with axis (first, middle, last, negative), without axis (flattened), a condition
shorter and longer than the axis, a symbolic dim and a symbolic condition length, several blocks,
int64/float16/bool data, a constant condition, nothing selected. Then reference data + cross_check.

Run: .venv/bin/python -m pytest tests/python/test_lowering_compress.py
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
from tpat_bridge.tools import cross_check, reference  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16, "int64": TP.INT64, "bool": TP.BOOL}


def _model(xshape, clen, axis=None, dtype="float32", const_cond=None):
    kw = {} if axis is None else {"axis": axis}
    n = h.make_node("Compress", ["x", "c"], ["y"], **kw)
    oshape = ["n"] if axis is None else [f"d{i}" for i in range(len(xshape))]
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    inits = []
    if const_cond is None:
        inputs.append(h.make_tensor_value_info("c", TP.BOOL, [clen]))
    else:
        inits.append(h.make_tensor("c", TP.BOOL, [len(const_cond)], const_cond))
    g = h.make_graph([n], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, fraction of the condition true)
    "axis1": (_model([4, 5, 6], 5, axis=1), {}, 0.5),
    "axis_last_short_cond": (_model([4, 5, 6], 3, axis=-1), {}, 0.5),
    "axis0_int64": (_model([7, 3], 7, axis=0, dtype="int64"), {}, 0.5),
    "flat_long_cond": (_model([3, 7], 30), {}, 0.5),
    "flat_blocks_fp16": (_model([5000], 5000, dtype="float16"), {}, 0.5),
    "symbolic_rows": (_model(["b", 3000], 3000, axis=1), {"b": 2}, 0.5),
    "symbolic_cond": (_model([2, 1500], "L", axis=1, dtype="bool"), {"L": 1499}, 0.5),
    "none_selected": (_model([6, 8], 8, axis=1), {}, 0.0),
    "const_cond": (_model([6, 4], 4, axis=1, const_cond=[True, False, True, True]), {}, None),
}


def _feeds(model, syms, frac, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for vi in model.graph.input:
        shape = input_shape(vi, syms)
        et = vi.type.tensor_type.elem_type
        if vi.name == "c":
            out["c"] = rng.random(shape) < frac
        elif et == TP.BOOL:
            out[vi.name] = rng.random(shape) < 0.5
        elif et == TP.INT64:
            out[vi.name] = rng.integers(-100, 100, shape).astype(np.int64)
        else:
            out[vi.name] = rng.standard_normal(shape).astype(np.float16 if et == TP.FLOAT16 else np.float32)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_plan_declares_size_output(built, name):
    plan = lowered_plan(built[name]["res"], "compress")
    assert launches(plan) == [
        "tpat_compress_count_kernel",
        "tpat_compress_scan_kernel",
        "tpat_compress_select_kernel",
        "tpat_compress_gather_kernel",
    ]
    out, size = plan["outputs"]
    model = CASES[name][0]
    axis = next((a.i for a in model.graph.node[0].attribute if a.name == "axis"), None)
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    assert out["data_dependent"] == {"dim": 0 if axis is None else axis % rank, "size_output": 1}
    assert size["size_of"] == [0] and size["dtype"] == "int64" and size["shape_expr"] == []


# data-dependent: the LLVM output cut to its size output's count; ONNX Runtime's CPU Compress has no
# float16 kernel: through float32
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES, feeds=lambda name: _feeds(*CASES[name]), ort=run_ort_half_via_float32
)


def test_non_bool_or_2d_condition_declines(workdir):
    m = _model([4, 5], 5, axis=1)
    m.graph.input[1].type.tensor_type.shape.dim.add().dim_value = 1  # [5, 1]
    p = workdir / "c2d.onnx"
    onnx.save(m, str(p))
    assert registry.choose(load_node(str(p))).lowering is None


@pytest.mark.parametrize("axis", [None, 1])
def test_reference_and_cross_check_agree(tmp_path, axis):
    p = tmp_path / "c.onnx"
    m = _model([3, "s0"], "s0", axis=axis)
    for a, b in (("x", "in0"), ("c", "in1")):
        m.graph.input[[i.name for i in m.graph.input].index(a)].name = b
        m.graph.node[0].input[list(m.graph.node[0].input).index(a)] = b
    m.graph.output[0].name = m.graph.node[0].output[0] = "out0"
    onnx.save(m, str(p))
    ans = reference.make_reference(
        {"command": "reference", "model_path": str(p), "out_dir": str(tmp_path / "ref"), "prefix": "x", "plugin": "x"}
    )
    assert ans["cases"] >= 1
    res = cross_check.cross_check({"model_path": str(p), "reference_dir": str(tmp_path / "ref"), "tactics": ["tpat"]})
    assert [t["status"] for t in res["tactics"]] == ["agrees"], res

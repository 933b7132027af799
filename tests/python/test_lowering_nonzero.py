"""TPAT's NonZero lowering (python/tpat_bridge/lowerings/nonzero.py): a data-dependent output, CPU only.

Every case: the plan validates against the schema, launches the count / scan / scatter kernels,
declares output 0's dim 1 data-dependent with a trailing 0-D int64 size output (upper bound: the
input's element count); its CUDA source compiles with nvcc -arch=sm_90; the same IR built for
LLVM gives a count equal to ONNX Runtime's and the first rank * count elements equal ONNX
Runtime's result (row-major [rank, count]). Cases: ranks 1-4, float32/float16/float64/int32/
int64/uint8/bool, a symbolic dim, several blocks (more than one tile), all zero, all non-zero,
NaN and -0.0. Then the reference data + cross_check path `tpat generate` runs.

Run: .venv/bin/python -m pytest tests/python/test_lowering_nonzero.py
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

from lowering_harness import input_shape, launches, lowered_plan, lowering_checks  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.expr import evaluate  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.tools import cross_check, reference  # noqa: E402
from tpat_bridge.tools.compare import actual_outputs  # noqa: E402

ONNX_T = {
    "float32": TP.FLOAT,
    "float16": TP.FLOAT16,
    "float64": TP.DOUBLE,
    "int32": TP.INT32,
    "int64": TP.INT64,
    "uint8": TP.UINT8,
    "bool": TP.BOOL,
}


def _model(xshape, dtype="float32"):
    n = h.make_node("NonZero", ["x"], ["y"])
    g = h.make_graph(
        [n],
        "g",
        [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)],
        [h.make_tensor_value_info("y", TP.INT64, [len(xshape), "nnz"])],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    m.ir_version = 9
    return m


CASES = {
    # name: (model, {symbol: size}, fill)   fill: "half" zero, "zeros", "ones", "special"
    "rank1_one_block": (_model([37]), {}, "half"),
    "rank2_blocks": (_model([70, 40]), {}, "half"),
    "rank3_symbolic": (_model([3, "n", 5], "bool"), {"n": 7}, "half"),
    "rank4_int64": (_model([2, 3, 4, 5], "int64"), {}, "half"),
    "int32_many_blocks": (_model([5000], "int32"), {}, "half"),
    "uint8": (_model([9, 13], "uint8"), {}, "half"),
    "float16": (_model([6, 33], "float16"), {}, "half"),
    "float64": (_model([4, 9], "float64"), {}, "half"),
    "all_zero": (_model([3, 300]), {}, "zeros"),
    "all_nonzero": (_model([1100]), {}, "ones"),
    "nan_negzero": (_model([4, 6]), {}, "special"),
}


def _feeds(model, syms, fill, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.input[0]
    shape = input_shape(vi, syms)
    dt = {v: k for k, v in ONNX_T.items()}[vi.type.tensor_type.elem_type]
    npdt = np.bool_ if dt == "bool" else np.dtype(dt)
    x = rng.integers(1, 9, shape).astype(npdt)
    if fill == "half":
        x = np.where(rng.random(shape) < 0.5, x, np.zeros_like(x))
    elif fill == "zeros":
        x = np.zeros_like(x)
    elif fill == "special":
        x = np.where(rng.random(shape) < 0.5, x, np.zeros_like(x)).astype(np.float32)
        x.reshape(-1)[[1, 5, 7]] = [np.nan, -0.0, np.inf]
    return {"x": x}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_declares_size_output(built, name):
    plan = lowered_plan(built[name]["res"], "nonzero")
    assert launches(plan) == ["tpat_nonzero_count_kernel", "tpat_nonzero_scan_kernel", "tpat_nonzero_scatter_kernel"]
    out, size = plan["outputs"]
    assert out["data_dependent"] == {"dim": 1, "size_output": 1}
    assert size["size_of"] == [0] and size["dtype"] == "int64" and size["shape_expr"] == []
    model, syms, _ = CASES[name]
    n = int(np.prod(input_shape(model.graph.input[0], syms)))
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    env = dict(syms)
    assert [evaluate(e, env) for e in out["shape_expr"]] == [rank, n]  # the upper bound
    # a size output is written by a kernel (on the device), never copied back to the host
    assert any({"kind": "output", "index": 1} in s["args"] for s in plan["steps"] if s["kind"] == "launch")


def _numpy_nonzero(name, feeds):
    """numpy.nonzero, what ONNX defines, as [rank, count] int64."""
    x = feeds["x"]
    return [np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)]


# data-dependent: the LLVM buffer cut to its size output's count; ONNX Runtime's CPU NonZero has no
# float64 kernel: numpy alone there
test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(
    CASES,
    feeds=lambda name: _feeds(*CASES[name]),
    ort_has=lambda name: CASES[name][0].graph.input[0].type.tensor_type.elem_type != TP.DOUBLE,
    reference=_numpy_nonzero,
)


def test_tvm_switch_and_scalar_are_refused(workdir):
    p = workdir / "nz_tvm.onnx"
    onnx.save(_model([4, 5]), str(p))
    r = handle_plan({"command": "plan", "model_path": str(p), "lowering": "tvm"})
    assert not r["ok"] and r["error"]["code"] == "data_dependent_shape"
    p0 = workdir / "nz_scalar.onnx"
    onnx.save(_model([]), str(p0))
    choice = registry.choose(load_node(str(p0)))
    assert choice.lowering is None and choice.declined == [("nonzero", "scalar input")]
    assert not handle_plan({"command": "plan", "model_path": str(p0)})["ok"]


@pytest.mark.parametrize("shape,dtype", [([5, "s0"], "float32"), ([6, 7], "bool")])
def test_reference_and_cross_check_agree(tmp_path, shape, dtype):
    """What `tpat generate` runs per plugin: ONNX Runtime reference data (about half the inputs
    zero), then the TPAT tactic built for LLVM compared on the actual [rank, count] part."""
    p = tmp_path / "nz.onnx"
    m = _model([s if isinstance(s, int) else s for s in shape], dtype)
    m.graph.input[0].name = m.graph.node[0].input[0] = "in0"
    m.graph.output[0].name = m.graph.node[0].output[0] = "out0"
    onnx.save(m, str(p))
    ans = reference.make_reference(
        {"command": "reference", "model_path": str(p), "out_dir": str(tmp_path / "ref"), "prefix": "x", "plugin": "x"}
    )
    assert ans["cases"] >= 1 and any("NonZero" in n for n in ans["notes"])
    man = reference.read_case_arrays(str(tmp_path / "ref" / "manifest.json"))
    for _, ins, outs in man:
        x = ins[0]
        assert 0 < outs[0][0].shape[1] < x.size  # some zeros, some not
    res = cross_check.cross_check({"model_path": str(p), "reference_dir": str(tmp_path / "ref"), "tactics": ["tpat"]})
    assert [t["status"] for t in res["tactics"]] == ["agrees"], res


def test_cross_check_catches_a_wrong_count():
    """The actual-shape view: a size that differs from the reference is a shape mismatch."""
    want = [np.array([[0, 2]], dtype=np.int64)]
    buf = np.array([[0, 2, 3]], dtype=np.int64)
    ok = actual_outputs([buf, np.array(2)], want, [{"output": 0, "dim": 1, "size_output": 1}])
    assert len(ok) == 1 and np.array_equal(ok[0], want[0])
    bad = actual_outputs([buf, np.array(3)], want, [{"output": 0, "dim": 1, "size_output": 1}])
    assert bad[0].shape != want[0].shape

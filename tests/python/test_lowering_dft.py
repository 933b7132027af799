"""TPAT's own DFT lowering (python/tpat_bridge/lowerings/dft.py), CPU only.

TVM 0.27 has no DFT converter (`frontend_import_failed` without this lowering). Every case: a
schema-valid plan made by the lowering, nvcc -arch=sm_90 compiles its CUDA source, and the LLVM
build matches ONNX Runtime. Cases: real and complex input, onesided, inverse, every allowed axis
(negative too; opset 20's axis input and opset 17's attribute), dft_length shorter and longer than
the signal (truncation, zero padding), float16, a symbolic batch dim. Declined: inverse with
onesided, a runtime dft_length.

Run: .venv/bin/python -m pytest tests/python/test_lowering_dft.py
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

from lowering_harness import input_shape, lowered_plan, run_llvm, run_ort  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16}
NP_T = {"float32": np.float32, "float16": np.float16}


def _model(xshape, axis=None, n=None, inverse=0, onesided=0, dtype="float32", opset=20, runtime_length=False):
    r = len(xshape)
    ax = (-2 if opset >= 20 else 1) if axis is None else axis
    ins, inits, attrs = ["x"], [], {"inverse": inverse, "onesided": onesided}
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    if runtime_length:
        ins.append("len")
        inputs.append(h.make_tensor_value_info("len", TP.INT64, []))
    elif n is not None or (opset >= 20 and axis is not None):
        ins.append("len" if n is not None else "")
        if n is not None:
            inits.append(onnx.numpy_helper.from_array(np.array(n, np.int64), "len"))
    if opset >= 20 and axis is not None:
        ins.append("axis")
        inits.append(onnx.numpy_helper.from_array(np.array(axis, np.int64), "axis"))
    elif opset < 20 and axis is not None:
        attrs["axis"] = axis
    a = ax % r
    length = n if n is not None else xshape[a]
    oshape = list(xshape[:-1]) + [2]
    if not runtime_length:
        oshape[a] = length // 2 + 1 if onesided else length
    else:
        oshape[a] = "K"
    node = h.make_node("DFT", ins, ["y"], **attrs)
    g = h.make_graph([node], "g", inputs, [h.make_tensor_value_info("y", ONNX_T[dtype], oshape)], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


CASES = {
    "real_default_axis": (_model([3, 16, 1]), {}, 1e-4),
    "complex_sym_batch": (_model(["B", 12, 2]), {"B": 2}, 1e-4),
    "onesided_real": (_model([2, 20, 1], onesided=1), {}, 1e-4),
    "inverse_complex": (_model([2, 10, 2], inverse=1), {}, 1e-4),
    "axis1_rank4": (_model([2, 9, 3, 2], axis=1), {}, 1e-4),
    "axis_m3_rank4": (_model([2, 9, 3, 1], axis=-3, onesided=1), {}, 1e-4),
    "axis0": (_model([7, 3, 2], axis=0), {}, 1e-4),
    "dft_length_pad": (_model([2, 10, 1], n=16), {}, 1e-4),
    "dft_length_trunc": (_model([2, 10, 2], n=6, inverse=1), {}, 1e-4),
    "long_signal": (_model([2, 256, 1], onesided=1), {}, 2e-3),
    "opset17_axis_attr": (_model([2, 8, 2], axis=1, opset=17), {}, 1e-4),
    "fp16": (_model([2, 32, 1], dtype="float16"), {}, 3e-2),
}
NOT_LOWERED = {
    "inverse_onesided": _model([2, 8, 2], inverse=1, onesided=1),
    "runtime_length": _model([2, 8, 1], runtime_length=True),
}


def _feeds(model, syms):
    rng = np.random.default_rng(0)
    vi = model.graph.input[0]
    dt = np.float16 if vi.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
    return {"x": rng.standard_normal(input_shape(vi, syms)).astype(dt)}


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "dft")
    assert plan["steps"]


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    model, syms, tol = CASES[name]
    feeds = _feeds(model, syms)
    got = run_llvm(built[name]["path"], feeds)[0]
    want = run_ort(model, feeds, via_float32=model.graph.input[0].type.tensor_type.elem_type == TP.FLOAT16)[0]
    # a DFT sums n terms: the tolerance scales with the output's magnitude
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = max(1.0, float(np.abs(want.astype(np.float64)).max()))
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0, atol=tol * scale)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_decline_with_a_reason(built, name):
    choice = registry.choose(load_node(str(built[name]["path"])))
    sel, reason = choice.selection, choice.reason
    assert (choice.declined[-1][1] == reason) if choice.declined else reason == "no TPAT lowering for this op"
    assert sel is None and reason

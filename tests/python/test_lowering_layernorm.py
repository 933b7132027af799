"""TPAT's own LayerNormalization lowering (python/tpat_bridge/lowering_layernorm.py), CPU only.

Every case: the plan validates against the schema, names the lowering and launches one kernel
whose loads are 16-byte vectors and whose reductions are warp shuffles; the CUDA source compiles
with nvcc -arch=sm_90; the same formulas built for LLVM (serial loops) match ONNX Runtime.
Cases: float32/float16, with and without B, constant Scale/B, a symbolic leading dim, rank 3.
Other axes, a used Mean output and N not a multiple of 32 keep TVM's lowering.

Run: .venv/bin/python -m pytest tests/python/test_lowering_layernorm.py
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

from lowering_harness import (  # noqa: E402
    assert_matches, input_shape, launches, lowered_plan, run_llvm, run_ort)
from tpat_bridge import lowerings, planner  # noqa: E402

ONNX_T = {"float32": TP.FLOAT, "float16": TP.FLOAT16}
NP_T = {"float32": np.float32, "float16": np.float16}


def _model(xshape, dtype="float32", bias=True, const_params=False, axis=-1, outputs=1, eps=1e-5):
    n = xshape[-1]
    ins = ["x", "scale"] + (["bias"] if bias else [])
    outs = ["y", "mean"][:outputs]
    node = h.make_node("LayerNormalization", ins, outs, axis=axis, epsilon=eps)
    inputs = [h.make_tensor_value_info("x", ONNX_T[dtype], xshape)]
    inits = []
    rng = np.random.default_rng(1)
    for name in ins[1:]:
        if const_params:
            vals = (rng.standard_normal(n) * 0.5 + (1 if name == "scale" else 0)).astype(NP_T[dtype])
            inits.append(onnx.numpy_helper.from_array(vals, name))
        else:
            inputs.append(h.make_tensor_value_info(name, ONNX_T[dtype], [n]))
    outputs_vi = [h.make_tensor_value_info("y", ONNX_T[dtype], xshape)]
    if outputs > 1:
        outputs_vi.append(h.make_tensor_value_info("mean", TP.FLOAT, xshape[:-1] + [1]))
    g = h.make_graph([node], "g", inputs, outputs_vi, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


CASES = {
    "fp32": (_model([6, 256]), {}, 1e-4),
    "fp16_rank3_sym": (_model(["B", 5, 1024], "float16"), {"B": 2}, 2e-2),
    "no_bias": (_model([4, 128], bias=False), {}, 1e-4),
    "const_params_fp16": (_model([3, 512], "float16", const_params=True), {}, 2e-2),
    "narrow_rows_n96": (_model([5, 96], eps=1e-3), {}, 1e-4),
}
NOT_LOWERED = {
    "axis0": _model([64, 8], axis=0),
    "mean_used": _model([4, 64], outputs=2),
    "n_not_32": _model([4, 40]),
}


def _feeds(model, syms, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for vi in model.graph.input:
        shape = input_shape(vi, syms)
        dt = np.float16 if vi.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
        v = rng.standard_normal(shape) * (2 if vi.name == "x" else 0.5) + (3 if vi.name == "x" else 0)
        out[vi.name] = v.astype(dt)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_plan_uses_tpat_lowering(built, name):
    plan = lowered_plan(built[name]["res"], "tpat lowering: layer_norm")
    assert launches(plan) == ["tpat_layer_norm_kernel"]
    src = plan["cuda_source"]
    assert "__shfl_down_sync" in src
    if name != "narrow_rows_n96":  # 96 = 32 x 3: one element per load
        assert "*(uint4*)" in src or "*(float4*)" in src


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(compiled, name):
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    model, syms, tol = CASES[name]
    feeds = _feeds(model, syms)
    got = run_llvm(built[name]["path"], feeds)[0]
    want = run_ort(model, feeds)[0]
    assert_matches(got, want, tol)


@pytest.mark.parametrize("name", list(NOT_LOWERED))
def test_other_cases_keep_tvm_lowering(built, name):
    sel, reason = lowerings.select(planner.load_node(str(built[name]["path"])))
    assert sel is None and reason

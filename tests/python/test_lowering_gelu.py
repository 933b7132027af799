"""TPAT's own Gelu lowering (python/tpat_bridge/lowerings/elementwise.py), CPU only.

Every case: the plan names the lowering and has one kernel; static float16 shapes move 16 bytes
per thread (uint4 loads and stores); the CUDA source compiles with nvcc -arch=sm_90; the TE
compute built for LLVM matches ONNX Runtime (erf and tanh forms, float32/float16, symbolic dims).

Run: .venv/bin/python -m pytest tests/python/test_lowering_gelu.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402

NVCC = ROOT / ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc"


def _model(shape, dtype=TP.FLOAT, approximate="none"):
    n = h.make_node("Gelu", ["x"], ["y"], approximate=approximate)
    g = h.make_graph(
        [n], "g", [h.make_tensor_value_info("x", dtype, shape)], [h.make_tensor_value_info("y", dtype, shape)]
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 20)])
    m.ir_version = 9
    return m


CASES = {
    "fp32_erf": (_model([4, 64]), {}, 1e-5, "4 element"),
    "fp32_tanh": (_model([3, 32], approximate="tanh"), {}, 1e-5, "4 element"),
    "fp16_erf": (_model([8, 256], TP.FLOAT16), {}, 2e-3, "8 element"),
    "fp16_symbolic": (_model(["N", 100], TP.FLOAT16), {"N": 3}, 2e-3, "1 element"),
}


@pytest.fixture(scope="module")
def workdir():
    return Path(tempfile.mkdtemp(prefix="tpat_gelu_test_"))


@pytest.mark.parametrize("name", list(CASES))
def test_plan_compile_and_numerics(workdir, name):
    import onnxruntime as ort
    import tvm
    from tvm import relax

    model, syms, tol, per = CASES[name]
    path = workdir / f"{name}.onnx"
    onnx.save(model, str(path))
    res = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})
    assert res["ok"], res
    plan = res["plan"]
    assert plan["lowering"] == "gelu" and per in plan["lowering_detail"], plan["lowering_detail"]
    assert len([s for s in plan["steps"] if s["kind"] == "launch"]) == 1
    if name == "fp16_erf":
        assert "*(uint4*)" in plan["cuda_source"]
    cu = workdir / f"{name}.cu"
    cu.write_text(plan["cuda_source"])
    r = subprocess.run(
        [str(NVCC), "-arch=sm_90", "-c", "-w", *plan["compile_flags"], "-o", str(workdir / f"{name}.o"), str(cu)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]

    vi = model.graph.input[0]
    shape = [d.dim_value if d.HasField("dim_value") else syms[d.dim_param] for d in vi.type.tensor_type.shape.dim]
    dt = np.float16 if vi.type.tensor_type.elem_type == TP.FLOAT16 else np.float32
    x = (np.random.default_rng(0).standard_normal(shape) * 3).astype(dt)
    info = load_node(str(path))
    mod, _ = registry.tpat_module(info, mode="cpu")
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)

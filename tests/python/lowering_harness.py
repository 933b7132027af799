"""Shared steps of the lowering tests (tests/python/test_lowering_*.py), CPU only:
plan every case model, compile every plan's CUDA source with the venv's nvcc for sm_90, run the
TPAT lowering built for LLVM, and run ONNX Runtime (float16 through float32 where its CPU
provider has no float16 kernel).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.tools.reference import _float_twin  # noqa: E402

SCHEMA = json.loads((ROOT / "schemas" / "kernel-plan.schema.json").read_text())
NVCC = ROOT / ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc"


def plan_all(models: dict, workdir: Path) -> dict:
    """name -> {"path", "res"}: every model saved under workdir and planned for sm_90."""
    out = {}
    for name, model in models.items():
        path = workdir / f"{name}.onnx"
        onnx.save(model, str(path))
        out[name] = {"path": path, "res": handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})}
    return out


def compile_all(built: dict, names, workdir: Path) -> dict:
    """name -> (nvcc return code, stderr tail) for the plan's CUDA source, compiled in parallel."""

    def job(name):
        res = built[name]["res"]
        if not res["ok"]:
            return 1, str(res)
        p = res["plan"]
        cu = workdir / f"{name}.cu"
        cu.write_text(p["cuda_source"])
        r = subprocess.run(
            [str(NVCC), "-arch=sm_90", "-c", "-w", *p["compile_flags"], "-o", str(workdir / f"{name}.o"), str(cu)],
            capture_output=True,
            text=True,
        )
        return r.returncode, r.stderr[-3000:]

    names = list(names)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        return dict(zip(names, ex.map(job, names)))


def lowered_plan(res: dict, lowering: str) -> dict:
    """The plan of a successful answer, schema-valid and made by the named TPAT lowering
    (`lowering`: its registry name, or "name (detail prefix" to check the detail too)."""
    import jsonschema

    assert res["ok"], res.get("error")
    plan = res["plan"]
    jsonschema.validate(plan, SCHEMA)
    name = lowering.split(" ")[0]
    assert plan["lowering"] == name, (plan["lowering"], plan["declined"])
    assert plan["lowering_detail"].startswith(lowering), plan["lowering_detail"]
    assert not any(d["lowering"] == name for d in plan["declined"]), plan["declined"]
    return plan


def launches(plan: dict) -> list:
    return [s["kernel"] for s in plan["steps"] if s["kind"] == "launch"]


def input_shape(vi, syms: dict) -> list:
    return [d.dim_value if d.HasField("dim_value") else syms[d.dim_param] for d in vi.type.tensor_type.shape.dim]


def run_llvm(path: Path, feeds: dict) -> list:
    """TPAT's lowering of the node (mode "cpu"), built for LLVM: outputs as numpy arrays."""
    import tvm
    from tvm import relax

    info = load_node(str(path))
    mod, _ = registry.tpat_module(info, mode="cpu")
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    res = vm["main"](*[tvm.runtime.tensor(feeds[i["name"]]) for i in info.inputs])
    return [r.numpy() for r in res] if not hasattr(res, "numpy") else [res.numpy()]


def float32_twin(model, low=(TP.FLOAT16,)):
    """A copy of the model with its `low` tensors (float16) as float32: the reference data's own
    twin (tpat_bridge/tools/reference.py)."""
    return _float_twin(model, set(low), TP.FLOAT)


def run_ort(model, feeds: dict, via_float32: bool = False) -> list:
    """ONNX Runtime's CPU outputs; via_float32: float16 tensors run as float32 and come back
    rounded to float16."""
    import onnxruntime as ort

    if via_float32:
        f32 = {k: (v.astype(np.float32) if v.dtype == np.float16 else v) for k, v in feeds.items()}
        outs = run_ort(float32_twin(model), f32)
        half = [vi.type.tensor_type.elem_type == TP.FLOAT16 for vi in model.graph.output]
        return [o.astype(np.float16) if h else o for o, h in zip(outs, half)]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_matches(got, want, tol: float) -> None:
    """Same dtype and shape; equal when tol is 0, else within tol (relative and absolute)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if tol == 0:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), np.asarray(want).astype(np.float64), rtol=tol, atol=tol)

"""Shared steps of the lowering tests (tests/python/test_lowering_*.py), CPU only:
plan every case model, compile every plan's CUDA source with the venv's nvcc for sm_90, run the
TPAT lowering built for LLVM, and run ONNX Runtime (float16 through float32 where its CPU
provider has no float16 kernel). `lowering_checks` makes the two checks every case table gets:
nvcc compiles the plan, and the LLVM build matches ONNX Runtime (and any other reference).
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
import pytest
from onnx import TensorProto as TP

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.tools.compare import actual_outputs  # noqa: E402
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


def build_llvm(path: Path):
    """(run, info): TPAT's lowering of the node (mode "cpu") built for LLVM once; run(feeds) gives
    its outputs as numpy arrays; info.data_dependent names its data-dependent outputs."""
    import tvm
    from tvm import relax

    info = load_node(str(path))
    mod, _ = registry.tpat_module(info, mode="cpu")
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"})), tvm.cpu())

    def run(feeds: dict) -> list:
        res = vm["main"](*[tvm.runtime.tensor(feeds[i["name"]]) for i in info.inputs])
        return [r.numpy() for r in res] if not hasattr(res, "numpy") else [res.numpy()]

    return run, info


def run_llvm(path: Path, feeds: dict) -> list:
    """TPAT's lowering of the node (mode "cpu"), built for LLVM: outputs as numpy arrays."""
    return build_llvm(path)[0](feeds)


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


def run_ort_half_via_float32(model, feeds: dict) -> list:
    """run_ort, through float32 when a feed is float16: for ops whose ONNX Runtime CPU kernel has
    no float16 form."""
    return run_ort(model, feeds, via_float32=any(v.dtype == np.float16 for v in feeds.values()))


def assert_matches(got, want, tol: float) -> None:
    """Same dtype and shape; equal when tol is 0, else within tol (relative and absolute)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if tol == 0:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), np.asarray(want).astype(np.float64), rtol=tol, atol=tol)


def _per(value, name):
    return value(name) if callable(value) else value


def lowering_checks(
    cases: dict,
    feeds,
    *,
    tol=0,
    ort=run_ort,
    ort_has=None,
    reference=None,
    ref_tol=None,
    compare=assert_matches,
    also=None,
    names=None,
    compile_names=None,
):
    """The two checks of a lowering test module's case table `cases` (name -> (model, ...)), as
    pytest tests parametrized by case name, for the module to bind to test names:

        test_nvcc_compiles, test_numerics_llvm_vs_ort = lowering_checks(CASES, feeds=...)

    The first asserts that the case's plan compiled with nvcc -arch=sm_90 (conftest's `compiled`
    fixture; the cases `compile_names`, default all). The second (the cases `names`, default all)
    builds the lowering of the planned model (conftest's `built`) for LLVM once and runs it on
    feeds(name), one input dict or a list of them; on each it compares the LLVM outputs, cut to
    their actual size where data-dependent, output by output with compare(got, want, tol) (default
    assert_matches: same dtype and shape, equal when tol is 0, else within tol) against
    - ort(model, feeds): ONNX Runtime (run_ort; run_ort_half_via_float32 for ops without a float16
      CPU kernel), unless ort_has(name) is false (no kernel, or a wrong one, for that case);
    - reference(name, feeds), when given and not None: another reference (numpy, onnx.reference),
      within ref_tol (default tol).
    A case with neither fails. Then also(name, feeds, outputs) runs any further checks. tol and
    ref_tol: a number or name -> number.
    """

    @pytest.mark.parametrize("name", list(cases if compile_names is None else compile_names))
    def nvcc_compiles(compiled, name):
        rc, err = compiled[name]
        assert rc == 0, err

    @pytest.mark.parametrize("name", list(cases if names is None else names))
    def numerics(built, name):
        model = cases[name][0]
        run, info = build_llvm(built[name]["path"])
        sets = feeds(name)
        sets = sets if isinstance(sets, list) else [sets]
        for k, f in enumerate(sets):
            try:
                outs = run(f)
                wants = []
                if ort_has is None or ort_has(name):
                    wants.append((ort(model, f), _per(tol, name)))
                ref = reference(name, f) if reference is not None else None
                if ref is not None:
                    wants.append((ref, _per(tol if ref_tol is None else ref_tol, name)))
                assert wants, f"{name}: neither ONNX Runtime nor a reference checks this case"
                for want, t in wants:
                    got = actual_outputs(outs, want, info.data_dependent)
                    assert len(got) == len(want), (len(got), len(want))
                    for g, w in zip(got, want):
                        compare(g, np.asarray(w), t)
                if also is not None:
                    also(name, f, outs)
            except AssertionError as e:
                if len(sets) == 1:
                    raise
                raise AssertionError(f"input set {k} of {len(sets)}: {e}") from e

    return nvcc_compiles, numerics

"""TPAT's own scatter lowerings (python/tpat_bridge/lowerings/scatter.py), CPU only:
plans validate against the schema and name the lowering in `lowering`; their CUDA source (TPAT
prelude + TVM's source) compiles with nvcc -arch=sm_90; the same TIR built for LLVM (serial loops,
plain read-modify-write instead of atomics) matches ONNX Runtime for every reduction and dtype on
small shapes with duplicate and negative indices; the "tvm" switch is refused (TVM's default scatter has no bounds check).

Run: .venv/bin/python -m pytest tests/python/test_lowerings.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lowering_harness import run_ort  # noqa: E402
from tpat_bridge.lowerings import (  # noqa: E402
    prelude,
    registry,
    scatter,
)
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402

SCHEMA = json.loads((ROOT / "schemas" / "kernel-plan.schema.json").read_text())
NVCC = ROOT / ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc"

ONNX_T = {
    "float32": TP.FLOAT,
    "float16": TP.FLOAT16,
    "int32": TP.INT32,
    "int64": TP.INT64,
    "float64": TP.DOUBLE,
    "bfloat16": TP.BFLOAT16,
}
DTYPES = ["float32", "float16", "int32", "int64"]
REDS = ["none", "add", "mul", "max", "min"]


def _model(op, red, dtype, shapes, attrs=None, idx_dtype="int64"):
    kw = dict(attrs or {})
    if red != "none":
        kw["reduction"] = red
    n = h.make_node(op, ["data", "idx", "upd"], ["out"], **kw)
    t = ONNX_T[dtype]
    g = h.make_graph(
        [n],
        "g",
        [
            h.make_tensor_value_info("data", t, shapes["data"]),
            h.make_tensor_value_info("idx", ONNX_T[idx_dtype], shapes["idx"]),
            h.make_tensor_value_info("upd", t, shapes["upd"]),
        ],
        [h.make_tensor_value_info("out", t, shapes["data"])],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


def _values(rng, dtype, shape, red):
    if dtype.startswith("int"):
        lo, hi = (-3, 4) if red == "mul" else (-50, 50)
        return rng.integers(lo, hi, shape).astype(dtype)
    v = rng.standard_normal(shape)
    if red == "mul":
        v = 0.5 + rng.random(shape)  # keep products well inside fp16 range
    return v.astype(dtype)


def _case_scatternd(red, dtype, k):
    """data (N, 4, 5) with N symbolic; k index components; duplicates for reductions, negatives."""
    rng = np.random.default_rng(hash((red, dtype, k)) % 2**32)
    dshape = ["N", 4, 5]
    dims = [6, 4, 5]
    m_rows = 4
    shapes = {"data": dshape, "idx": ["M", k], "upd": ["M"] + dshape[k:]}
    if red == "none":  # unique targets (ONNX leaves duplicates undefined)
        flat = rng.choice(int(np.prod(dims[:k])), m_rows, replace=False)
        idx = np.stack(np.unravel_index(flat, dims[:k]), -1).astype(np.int64)
    else:  # duplicates on purpose
        idx = np.stack([rng.integers(0, dims[j], m_rows) for j in range(k)], -1).astype(np.int64)
        idx[1] = idx[0]
        idx[3] = idx[0]
    neg = rng.random(idx.shape) < 0.4
    idx = np.where(neg, idx - np.array(dims[:k]), idx)  # same targets, negative spelling
    feeds = {"data": _values(rng, dtype, dims, red), "idx": idx, "upd": _values(rng, dtype, [m_rows] + dims[k:], red)}
    return _model("ScatterND", red, dtype, shapes), feeds


def _case_scatterel(red, dtype, axis, idx_dtype="int64"):
    """data (B, 6, 3) B symbolic, indices (B, 4, 2): smaller than data off the axis too."""
    rng = np.random.default_rng(hash((red, dtype, axis, 7)) % 2**32)
    dims = [3, 6, 3]
    qdims = [3, 4, 2]
    qdims[axis] = 4 if axis == 1 else qdims[axis]
    shapes = {"data": ["B", 6, 3], "idx": ["B", 4, 2], "upd": ["B", 4, 2]}
    ext = dims[axis]
    if red == "none":  # unique along the axis within each line
        idx = np.zeros(qdims, np.int64)
        for pos in np.ndindex(*[q for j, q in enumerate(qdims) if j != axis]):
            perm = rng.choice(ext, qdims[axis], replace=False)
            sl = list(pos)
            sl.insert(axis, slice(None))
            idx[tuple(sl)] = perm
    else:
        idx = rng.integers(0, min(ext, 3), qdims).astype(np.int64)  # many duplicates
    idx = np.where(rng.random(qdims) < 0.4, idx - ext, idx).astype(idx_dtype)
    feeds = {"data": _values(rng, dtype, dims, red), "idx": idx, "upd": _values(rng, dtype, qdims, red)}
    return _model("ScatterElements", red, dtype, shapes, {"axis": axis - 3 if axis == 2 else axis}, idx_dtype), feeds


def _cases():
    out = {}
    for dtype in DTYPES:
        for red in REDS:
            out[f"nd_{red}_{dtype}"] = lambda r=red, d=dtype: _case_scatternd(r, d, 1 if d != "int64" else 2)
            out[f"el_{red}_{dtype}"] = lambda r=red, d=dtype: _case_scatterel(r, d, 1)
    out["nd_add_float32_k3"] = lambda: _case_scatternd("add", "float32", 3)
    out["nd_max_float16_k2"] = lambda: _case_scatternd("max", "float16", 2)
    out["el_add_float32_axis0"] = lambda: _case_scatterel("add", "float32", 0)
    out["el_min_int32_axisneg1_i32idx"] = lambda: _case_scatterel("min", "int32", 2, "int32")
    out["el_none_float32_axis0"] = lambda: _case_scatterel("none", "float32", 0)
    return out


CASES = _cases()
SYMS = {"N": 6, "M": 4, "B": 3}
TOL = {"float32": 1e-5, "float16": 1e-2, "int32": 0, "int64": 0}
# compile-only (no ONNX Runtime kernel for these on CPU): CUDA source must still compile
COMPILE_ONLY = {
    "nd_mul_bfloat16": lambda: _case_scatternd("mul", "bfloat16", 1),
    "el_max_bfloat16": lambda: _case_scatterel("max", "bfloat16", 1),
    "nd_min_float64": lambda: _case_scatternd("min", "float64", 2),
    "el_mul_float64": lambda: _case_scatterel("mul", "float64", 1),
}


@pytest.fixture(scope="session")
def workdir():
    return Path(tempfile.mkdtemp(prefix="tpat_lowerings_test_"))


@pytest.fixture(scope="session")
def built(workdir):
    out = {}
    for name, fn in {**CASES, **COMPILE_ONLY}.items():
        model, feeds = fn()
        path = workdir / f"{name}.onnx"
        onnx.save(model, str(path))
        res = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})
        out[name] = {"model": model, "feeds": feeds, "path": path, "res": res}
    return out


@pytest.fixture(scope="session")
def compiled(built, workdir):
    def job(name):
        b = built[name]
        if not b["res"]["ok"]:
            return 1, str(b["res"])
        p = b["res"]["plan"]
        cu = workdir / f"{name}.cu"
        cu.write_text(p["cuda_source"])
        cmd = [str(NVCC), "-arch=sm_90", "-c", "-w", *p["compile_flags"], "-o", str(workdir / f"{name}.o"), str(cu)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.returncode, r.stderr[-3000:]

    names = list(built)
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        return dict(zip(names, ex.map(job, names)))


def _plan(built, name):
    res = built[name]["res"]
    assert res["ok"], res.get("error")
    return res["plan"]


@pytest.mark.parametrize("name", list(CASES) + list(COMPILE_ONLY))
def test_plan_schema_and_lowering(built, name):
    import jsonschema

    plan = _plan(built, name)
    jsonschema.validate(plan, SCHEMA)
    assert plan["lowering"] in ("scatter_nd", "scatter_elements") and plan["lowering_detail"].startswith(
        plan["lowering"]
    ), plan
    # two kernels: the copy, then the parallel scatter
    assert len(plan["kernels"]) == 2
    assert [s["kind"] for s in plan["steps"]] == ["launch", "launch"]
    assert plan["workspace_bytes"] == {"int": 0}
    red = name.split("_")[1]
    src = plan["cuda_source"]
    if red == "none":
        assert "tpat_atomic_" not in src and prelude.PRELUDE_MARK not in src
    else:
        assert src.startswith(prelude.PRELUDE_MARK)
        assert f"tpat_atomic_{red}_" in src
    # the scatter kernel's grid covers every (update, element) pair at run time
    from tpat_bridge.planning.expr import evaluate

    env = {s["name"]: SYMS[s["name"]] for s in plan["symbols"]}
    feeds = built[name]["feeds"]
    st = plan["steps"][1]
    threads = evaluate(st["grid"][0], env) * evaluate(st["block"][0], env)
    assert threads >= feeds["upd"].size
    for a in st["args"]:
        if a["kind"] == "scalar":
            evaluate(a["expr"], env)


@pytest.mark.parametrize("name", list(CASES) + list(COMPILE_ONLY))
def test_nvcc_compiles(built, compiled, name):
    _plan(built, name)
    rc, err = compiled[name]
    assert rc == 0, err


def _run_llvm(b):
    import tvm
    from tvm import relax

    info = load_node(str(b["path"]))
    mod, _name = registry.tpat_module(info, mode="cpu")
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [tvm.runtime.tensor(b["feeds"][i["name"]]) for i in info.inputs]
    return vm["main"](*args).numpy()


def _run_ort(b):
    """ONNX Runtime (CPU). Where it has no float16 kernel (ScatterND/ScatterElements reductions)
    the same model runs in float32 and the result is rounded to float16."""
    try:
        return run_ort(b["model"], b["feeds"])[0]
    except Exception:  # noqa: BLE001
        if b["feeds"]["data"].dtype != np.float16:
            raise
    return run_ort(b["model"], b["feeds"], via_float32=True)[0]


def _numpy_ref(model, feeds):
    """Sequential reference (ONNX semantics, negative indices wrapped)."""
    node = model.graph.node[0]
    attrs = {a.name: h.get_attribute_value(a) for a in node.attribute}
    red = attrs.get("reduction", b"none")
    red = red.decode() if isinstance(red, bytes) else red
    data, idx, upd = feeds["data"], feeds["idx"].astype(np.int64), feeds["upd"]
    out = data.copy()
    f = {
        "none": lambda a, b: b,
        "add": lambda a, b: a + b,
        "mul": lambda a, b: a * b,
        "max": lambda a, b: max(a, b),
        "min": lambda a, b: min(a, b),
    }[red]
    if node.op_type == "ScatterND":
        k = idx.shape[-1]
        for pos in np.ndindex(*idx.shape[:-1]):
            t = tuple(int(x) % data.shape[j] for j, x in enumerate(idx[pos]))
            for e in np.ndindex(*data.shape[k:]):
                out[t + e] = f(out[t + e], upd[pos + e])
    else:
        axis = attrs.get("axis", 0) % data.ndim
        for pos in np.ndindex(*idx.shape):
            t = list(pos)
            t[axis] = int(idx[pos]) % data.shape[axis]
            out[tuple(t)] = f(out[tuple(t)], upd[pos])
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    b = built[name]
    got = _run_llvm(b)
    want = _run_ort(b)
    ref = _numpy_ref(b["model"], b["feeds"])
    dtype = str(b["feeds"]["data"].dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    tol = TOL[dtype]
    if tol == 0:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(ref, want)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)
        np.testing.assert_allclose(ref.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)
    # the case really scatters somewhere (output differs from data)
    assert not np.array_equal(got, b["feeds"]["data"])


def test_switch_tvm_refused_for_scatter(built, workdir):
    """TVM's default ScatterND writes out of bounds on out-of-range indices: never planned."""
    path = built["nd_add_float32"]["path"]
    r = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90", "lowering": "tvm"})
    assert not r["ok"] and r["error"]["code"] == "unchecked_indices", r
    assert "out of bounds" in r["error"]["reason"]
    bad = handle_plan({"command": "plan", "model_path": str(path), "lowering": "x"})
    assert not bad["ok"] and bad["error"]["code"] == "invalid_request"


def test_other_ops_unchanged(workdir):
    n = h.make_node("Elu", ["x"], ["out"], alpha=0.5)
    g = h.make_graph(
        [n], "g", [h.make_tensor_value_info("x", TP.FLOAT, [3, 5])], [h.make_tensor_value_info("out", TP.FLOAT, [3, 5])]
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    p = workdir / "elu.onnx"
    onnx.save(m, str(p))
    a = handle_plan({"command": "plan", "model_path": str(p), "target": "sm_90"})
    b = handle_plan({"command": "plan", "model_path": str(p), "target": "sm_90", "lowering": "tvm"})
    assert a["ok"] and b["ok"] and a["plan"] == b["plan"]


def test_static_bench_shape_vectorized_copy():
    """Suite shape: the copy kernel moves 16 bytes per thread (float4)."""
    src = scatter.scatter_nd_source([32, 128, 128, 256], [32, 600, 3], [32, 600, 256], "float32", "int64", "add")
    assert "T.vectorized(T.int64(4))" in src
    scatter.parse_primfunc(src)


def test_whole_rows_scatter_vectorized():
    """scatternd_rows: reduction none, whole 1024-float rows: the scatter moves 16 bytes per thread
    too (the LLVM cases nd_none_float32 / nd_none_int32, 20-element slices, run the same path);
    16-bit slices of 20 elements (not a multiple of 8) stay scalar."""
    src = scatter.scatter_nd_source([16384, 1024], [4096, 1], [4096, 1024], "float32", "int64", "none")
    assert src.count("T.vectorized(T.int64(4))") == 2
    scatter.parse_primfunc(src)
    assert (
        scatter.scatter_nd_source(["N", 4, 5], ["M", 1], ["M", 4, 5], "float32", "int64", "none", mode="cpu").count(
            "T.vectorized"
        )
        == 1
    )
    assert "T.vectorized" not in scatter.scatter_nd_source(
        ["N", 4, 5], ["M", 1], ["M", 4, 5], "float16", "int64", "none", mode="cpu"
    )
    assert (
        scatter.scatter_nd_source([64, 1024], [8, 1], [8, 1024], "float32", "int64", "add").count("T.vectorized") == 1
    )  # the copy only: atomics stay scalar


def test_prelude_idempotent():
    src = 'extern "C" __global__ void k(float* p) { tpat_atomic_max_f32(&p[0], 1.0f); }'
    once = prelude.with_prelude(src)
    assert once.startswith(prelude.PRELUDE_MARK) and once.endswith(src)
    assert prelude.with_prelude(once) == once
    assert "tpat_atomic_add_f32" not in once  # only the helpers the source calls
    assert prelude.with_prelude("no helpers") == "no helpers"

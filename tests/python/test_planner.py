"""KernelPlan tests (CPU only): schema, nvcc compile of the CUDA source, numerics (Relax VM on
LLVM vs ONNX Runtime), refusals. Run: .venv/bin/python -m pytest tests/python/test_planner.py

Plans, compiles and VM builds are done once per case (session fixtures) and reused.
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

from tpat_bridge import dtypes  # noqa: E402
from tpat_bridge.errors import PlanError  # noqa: E402
from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.node import narrowing_applies  # noqa: E402
from tpat_bridge.planning import pipeline  # noqa: E402
from tpat_bridge.planning.expr import evaluate  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402
from tpat_bridge.planning.relax_import import build_relax_module  # noqa: E402

SCHEMA = json.loads((ROOT / "schemas" / "kernel-plan.schema.json").read_text())
NVCC = Path(sys.prefix) / "lib" / "python3.11" / "site-packages" / "nvidia" / "cu13" / "bin" / "nvcc"
if not NVCC.exists():
    NVCC = ROOT / ".venv/lib/python3.11/site-packages/nvidia/cu13/bin/nvcc"

RNG = np.random.default_rng(0)


def mk(nodes, ins, outs, inits=(), opset=18):
    if not isinstance(nodes, list):
        nodes = [nodes]
    g = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info(*i) for i in ins],
        [h.make_tensor_value_info(*o) for o in outs],
        initializer=list(inits),
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def f32(*s):
    return RNG.standard_normal(s).astype(np.float32)


def f16(*s):
    return RNG.standard_normal(s).astype(np.float16)


# ---------------------------------------------------------------------------------------------
# Cases: name -> (model, {symbol: size}, feeds(sym) -> dict, tolerance)


def _scatternd(red):
    n = h.make_node("ScatterND", ["data", "idx", "upd"], ["out"], reduction=red)
    m = mk(
        n,
        [("data", TP.FLOAT, ["N", 4]), ("idx", TP.INT64, [3, 1]), ("upd", TP.FLOAT, [3, 4])],
        [("out", TP.FLOAT, ["N", 4])],
    )
    feeds = lambda s: {"data": f32(s["N"], 4), "idx": np.array([[4], [0], [2]], np.int64), "upd": f32(3, 4)}
    return m, {"N": 6}, feeds, 1e-5


def _scatterel(red):
    kw = {"axis": 1}
    if red != "none":
        kw["reduction"] = red
    n = h.make_node("ScatterElements", ["data", "idx", "upd"], ["out"], **kw)
    m = mk(
        n,
        [("data", TP.FLOAT, [3, 5]), ("idx", TP.INT64, [3, 2]), ("upd", TP.FLOAT, [3, 2])],
        [("out", TP.FLOAT, [3, 5])],
    )
    feeds = lambda s: {"data": f32(3, 5), "idx": np.array([[0, 3], [4, 1], [2, 0]], np.int64), "upd": f32(3, 2)}
    return m, {}, feeds, 1e-5


def _gathernd():
    n = h.make_node("GatherND", ["x", "i"], ["out"], batch_dims=1)
    m = mk(n, [("x", TP.FLOAT, [2, 3, 4]), ("i", TP.INT64, [2, 2, 1])], [("out", TP.FLOAT, [2, 2, 4])])
    return m, {}, lambda s: {"x": f32(2, 3, 4), "i": np.array([[[2], [0]], [[1], [1]]], np.int64)}, 1e-6


def _gatherel():
    n = h.make_node("GatherElements", ["x", "i"], ["out"], axis=1)
    m = mk(n, [("x", TP.FLOAT, ["N", 5]), ("i", TP.INT64, ["N", 2])], [("out", TP.FLOAT, ["N", 2])])
    return m, {"N": 3}, lambda s: {"x": f32(s["N"], 5), "i": RNG.integers(-5, 5, (s["N"], 2)).astype(np.int64)}, 1e-6


def _gridsample(nd):
    if nd == 4:
        n = h.make_node("GridSample", ["x", "g"], ["out"], align_corners=0, mode="linear")
        m = mk(
            n,
            [("x", TP.FLOAT, [1, 2, 4, 5]), ("g", TP.FLOAT, [1, 3, 3, 2])],
            [("out", TP.FLOAT, [1, 2, 3, 3])],
            opset=20,
        )
        return m, {}, lambda s: {"x": f32(1, 2, 4, 5), "g": RNG.uniform(-1, 1, (1, 3, 3, 2)).astype(np.float32)}, 1e-4
    n = h.make_node("GridSample", ["x", "g"], ["out"], align_corners=0, mode="linear")
    m = mk(
        n,
        [("x", TP.FLOAT, [1, 2, 3, 4, 5]), ("g", TP.FLOAT, [1, 2, 2, 2, 3])],
        [("out", TP.FLOAT, [1, 2, 2, 2, 2])],
        opset=20,
    )
    return m, {}, lambda s: {"x": f32(1, 2, 3, 4, 5), "g": RNG.uniform(-1, 1, (1, 2, 2, 2, 3)).astype(np.float32)}, 1e-4


def _onehot():
    n = h.make_node("OneHot", ["i", "depth", "values"], ["out"], axis=-1)
    m = mk(
        n,
        [("i", TP.INT64, [4])],
        [("out", TP.FLOAT, [4, 5])],
        [h.make_tensor("depth", TP.INT64, [], [5]), h.make_tensor("values", TP.FLOAT, [2], [0.5, 2.0])],
    )
    return m, {}, lambda s: {"i": np.array([0, 4, -1, 2], np.int64)}, 0


def _cumsum():
    n = h.make_node("CumSum", ["x", "axis"], ["out"])
    m = mk(
        n, [("x", TP.FLOAT, ["N", 300])], [("out", TP.FLOAT, ["N", 300])], [h.make_tensor("axis", TP.INT64, [], [1])]
    )
    return m, {"N": 3}, lambda s: {"x": f32(s["N"], 300)}, 1e-4


def _topk():
    n = h.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1)
    m = mk(
        n,
        [("x", TP.FLOAT, [2, 4096])],
        [("v", TP.FLOAT, [2, 3840]), ("i", TP.INT64, [2, 3840])],
        [h.make_tensor("k", TP.INT64, [1], [3840])],
    )
    return m, {}, lambda s: {"x": RNG.permutation(2 * 4096).reshape(2, 4096).astype(np.float32)}, 0


def _einsum():
    n = h.make_node("Einsum", ["a", "b"], ["out"], equation="bij,bjk->bik")
    m = mk(n, [("a", TP.FLOAT, ["B", 8, 16]), ("b", TP.FLOAT, ["B", 16, 4])], [("out", TP.FLOAT, ["B", 8, 4])])
    return m, {"B": 2}, lambda s: {"a": f32(s["B"], 8, 16), "b": f32(s["B"], 16, 4)}, 1e-4


def _layernorm():
    n = h.make_node("LayerNormalization", ["x", "g", "b"], ["out"], axis=-1, epsilon=1e-5)
    m = mk(
        n,
        [("x", TP.FLOAT16, ["N", 64])],
        [("out", TP.FLOAT16, ["N", 64])],
        [
            h.make_tensor("g", TP.FLOAT16, [64], np.linspace(0.5, 1.5, 64).astype(np.float16).tolist()),
            h.make_tensor("b", TP.FLOAT16, [64], np.linspace(-0.1, 0.1, 64).astype(np.float16).tolist()),
        ],
    )
    return m, {"N": 4}, lambda s: {"x": f16(s["N"], 64)}, 2e-2


def _resize_cubic():
    n = h.make_node("Resize", ["x", "", "scales"], ["out"], mode="cubic", coordinate_transformation_mode="half_pixel")
    m = mk(
        n,
        [("x", TP.FLOAT, [1, 1, 4, 4])],
        [("out", TP.FLOAT, [1, 1, 8, 8])],
        [h.make_tensor("scales", TP.FLOAT, [4], [1, 1, 2, 2])],
        opset=13,
    )
    return m, {}, lambda s: {"x": f32(1, 1, 4, 4)}, 1e-4


def _col2im():
    n = h.make_node("Col2Im", ["x", "img", "blk"], ["out"])
    m = mk(
        n,
        [("x", TP.FLOAT, [1, 4, 9])],
        [("out", TP.FLOAT, [1, 1, 4, 4])],
        [h.make_tensor("img", TP.INT64, [2], [4, 4]), h.make_tensor("blk", TP.INT64, [2], [2, 2])],
    )
    return m, {}, lambda s: {"x": f32(1, 4, 9)}, 1e-5


def _maxunpool():
    n = h.make_node("MaxUnpool", ["x", "i"], ["out"], kernel_shape=[2, 2], strides=[2, 2])
    m = mk(
        n, [("x", TP.FLOAT, [1, 1, 2, 2]), ("i", TP.INT64, [1, 1, 2, 2])], [("out", TP.FLOAT, [1, 1, 4, 4])], opset=11
    )
    return m, {}, lambda s: {"x": f32(1, 1, 2, 2), "i": np.array([[[[0, 3], [9, 14]]]], np.int64)}, 0


def _bitshift():
    n = h.make_node("BitShift", ["a", "b"], ["out"], direction="LEFT")
    m = mk(n, [("a", TP.UINT32, ["N"]), ("b", TP.UINT32, ["N"])], [("out", TP.UINT32, ["N"])])
    return (
        m,
        {"N": 7},
        lambda s: {
            "a": RNG.integers(0, 1000, s["N"]).astype(np.uint32),
            "b": RNG.integers(0, 8, s["N"]).astype(np.uint32),
        },
        0,
    )


def _mod(fmod):
    if fmod:
        n = h.make_node("Mod", ["a", "b"], ["out"], fmod=1)
        m = mk(n, [("a", TP.FLOAT, [6]), ("b", TP.FLOAT, [6])], [("out", TP.FLOAT, [6])])
        return m, {}, lambda s: {"a": f32(6) * 5, "b": (np.abs(f32(6)) + 0.5).astype(np.float32)}, 1e-5
    n = h.make_node("Mod", ["a", "b"], ["out"])
    m = mk(n, [("a", TP.INT32, ["N"]), ("b", TP.INT32, ["N"])], [("out", TP.INT32, ["N"])])
    return (
        m,
        {"N": 8},
        lambda s: {
            "a": RNG.integers(-50, 50, s["N"]).astype(np.int32),
            "b": np.array([3, -3, 7, -7, 5, 2, -2, 9][: s["N"]], np.int32),
        },
        0,
    )


def _gelu():
    n = h.make_node("Gelu", ["x"], ["out"])
    m = mk(n, [("x", TP.FLOAT, ["N", 16])], [("out", TP.FLOAT, ["N", 16])], opset=20)
    return m, {"N": 3}, lambda s: {"x": f32(s["N"], 16)}, 1e-4


def _erf():
    n = h.make_node("Erf", ["x"], ["out"])
    m = mk(n, [("x", TP.FLOAT, ["N"])], [("out", TP.FLOAT, ["N"])])
    return m, {"N": 33}, lambda s: {"x": f32(s["N"])}, 1e-4


def _where():
    n = h.make_node("Where", ["c", "a", "b"], ["out"])
    m = mk(
        n, [("c", TP.BOOL, ["N", 4]), ("a", TP.FLOAT, ["N", 4]), ("b", TP.FLOAT, [1, 4])], [("out", TP.FLOAT, ["N", 4])]
    )
    return (
        m,
        {"N": 5},
        lambda s: {"c": RNG.integers(0, 2, (s["N"], 4)).astype(bool), "a": f32(s["N"], 4), "b": f32(1, 4)},
        0,
    )


def _softmax():
    n = h.make_node("Softmax", ["x"], ["out"], axis=-1)
    m = mk(n, [("x", TP.FLOAT, ["N", "C"])], [("out", TP.FLOAT, ["N", "C"])])
    return m, {"N": 3, "C": 37}, lambda s: {"x": f32(s["N"], s["C"])}, 1e-5


def _reducemax():
    n = h.make_node("ReduceMax", ["x", "axes"], ["out"], keepdims=1)
    m = mk(
        n, [("x", TP.FLOAT, ["N", 6, 5])], [("out", TP.FLOAT, ["N", 1, 5])], [h.make_tensor("axes", TP.INT64, [1], [1])]
    )
    return m, {"N": 2}, lambda s: {"x": f32(s["N"], 6, 5)}, 0


def _cast(to):
    n = h.make_node("Cast", ["x"], ["out"], to=to)
    m = mk(n, [("x", TP.FLOAT, ["N"])], [("out", to, ["N"])])
    return m, {"N": 9}, lambda s: {"x": f32(s["N"]) * 10}, 1e-2


def _add_int8():
    n = h.make_node("Add", ["a", "b"], ["out"])
    m = mk(n, [("a", TP.INT8, ["N", 3]), ("b", TP.INT8, ["N", 3])], [("out", TP.INT8, ["N", 3])])
    return (
        m,
        {"N": 4},
        lambda s: {
            "a": RNG.integers(-60, 60, (s["N"], 3)).astype(np.int8),
            "b": RNG.integers(-60, 60, (s["N"], 3)).astype(np.int8),
        },
        0,
    )


def _sub_uint8_const():
    n = h.make_node("Sub", ["a", "b"], ["out"])
    m = mk(n, [("a", TP.UINT8, [2, 3])], [("out", TP.UINT8, [2, 3])], [h.make_tensor("b", TP.UINT8, [3], [1, 2, 3])])
    return m, {}, lambda s: {"a": RNG.integers(10, 200, (2, 3)).astype(np.uint8)}, 0


def _mul_int64():
    n = h.make_node("Mul", ["a", "b"], ["out"])
    m = mk(n, [("a", TP.INT64, ["N"]), ("b", TP.INT64, ["N"])], [("out", TP.INT64, ["N"])])
    return m, {"N": 5}, lambda s: {"a": RNG.integers(-99, 99, s["N"]), "b": RNG.integers(-99, 99, s["N"])}, 0


def _less_bool():
    n = h.make_node("Less", ["a", "b"], ["out"])
    m = mk(n, [("a", TP.FLOAT, ["N"]), ("b", TP.FLOAT, ["N"])], [("out", TP.BOOL, ["N"])])
    return m, {"N": 6}, lambda s: {"a": f32(s["N"]), "b": f32(s["N"])}, 0


def _matmul_const():
    w = RNG.standard_normal((16, 8)).astype(np.float32)
    n = h.make_node("MatMul", ["x", "w"], ["out"])
    m = mk(n, [("x", TP.FLOAT, ["M", 16])], [("out", TP.FLOAT, ["M", 8])], [onnx.numpy_helper.from_array(w, "w")])
    return m, {"M": 5}, lambda s: {"x": f32(s["M"], 16)}, 1e-4


def _split():
    n = h.make_node("Split", ["x", "sp"], ["o1", "o2"], axis=1)
    m = mk(
        n,
        [("x", TP.FLOAT, ["N", 6])],
        [("o1", TP.FLOAT, ["N", 2]), ("o2", TP.FLOAT, ["N", 4])],
        [h.make_tensor("sp", TP.INT64, [2], [2, 4])],
    )
    return m, {"N": 3}, lambda s: {"x": f32(s["N"], 6)}, 0


def _relu_bf16():
    n = h.make_node("Relu", ["x"], ["out"])
    m = mk(n, [("x", TP.BFLOAT16, ["N"])], [("out", TP.BFLOAT16, ["N"])])
    import ml_dtypes

    return m, {"N": 10}, lambda s: {"x": f32(s["N"]).astype(ml_dtypes.bfloat16)}, 0


def _transpose_u32():
    n = h.make_node("Transpose", ["x"], ["out"], perm=[1, 0])
    m = mk(n, [("x", TP.UINT32, ["N", 3])], [("out", TP.UINT32, [3, "N"])])
    return m, {"N": 4}, lambda s: {"x": RNG.integers(0, 2**31, (s["N"], 3)).astype(np.uint32)}, 0


CASES = {
    "scatternd_none": lambda: _scatternd("none"),
    "scatternd_add": lambda: _scatternd("add"),
    "scatternd_mul": lambda: _scatternd("mul"),
    "scatternd_max": lambda: _scatternd("max"),
    "scatternd_min": lambda: _scatternd("min"),
    "scatterelements_none": lambda: _scatterel("none"),
    "scatterelements_add": lambda: _scatterel("add"),
    "scatterelements_mul": lambda: _scatterel("mul"),
    "scatterelements_max": lambda: _scatterel("max"),
    "scatterelements_min": lambda: _scatterel("min"),
    "gathernd_b1": _gathernd,
    "gatherelements_sym": _gatherel,
    "gridsample_4d": lambda: _gridsample(4),
    "gridsample_5d": lambda: _gridsample(5),
    "onehot": _onehot,
    "cumsum_sym": _cumsum,
    "topk_3840": _topk,
    "einsum_bmm": _einsum,
    "layernorm_fp16": _layernorm,
    "resize_cubic": _resize_cubic,
    "col2im": _col2im,
    "maxunpool": _maxunpool,
    "bitshift_u32": _bitshift,
    "mod_int32": lambda: _mod(False),
    "mod_fmod_f32": lambda: _mod(True),
    "gelu_opset20": _gelu,
    "erf": _erf,
    "where_bool": _where,
    "softmax_2sym": _softmax,
    "reducemax": _reducemax,
    "cast_f16": lambda: _cast(TP.FLOAT16),
    "cast_bf16": lambda: _cast(TP.BFLOAT16),
    "cast_i32": lambda: _cast(TP.INT32),
    "add_int8": _add_int8,
    "sub_uint8_const": _sub_uint8_const,
    "mul_int64": _mul_int64,
    "less_bool_out": _less_bool,
    "matmul_const_w": _matmul_const,
    "split_2out": _split,
    "relu_bf16": _relu_bf16,
    "transpose_u32": _transpose_u32,
}

# Known results that are not a pass (case -> expected error code). Empty = all plan.
EXPECTED_REFUSALS: dict = {}


# ---------------------------------------------------------------------------------------------
# Session fixtures: build models, plan all, compile all sources in parallel.


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="tpat_plan_test_")
    return Path(d)


@pytest.fixture(scope="session")
def built(workdir):
    out = {}
    for name, fn in CASES.items():
        model, syms, feeds, tol = fn()
        path = workdir / f"{name}.onnx"
        onnx.save(model, str(path))
        res = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})
        out[name] = {"model": model, "syms": syms, "feeds": feeds, "tol": tol, "path": path, "res": res}
    return out


@pytest.fixture(scope="session")
def compiled(built, workdir):
    """nvcc -arch=sm_90 -c for each unique CUDA source, in parallel threads."""
    srcs = {}
    for name, b in built.items():
        if b["res"]["ok"]:
            p = b["res"]["plan"]
            key = (p["cuda_source"], tuple(p["compile_flags"]))
            srcs.setdefault(key, []).append(name)

    def job(i_key):
        i, (src, flags) = i_key
        cu = workdir / f"src{i}.cu"
        cu.write_text(src)
        cmd = [str(NVCC), "-arch=sm_90", "-c", "-w", *flags, "-o", str(workdir / f"src{i}.o"), str(cu)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.returncode, r.stderr[-3000:]

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        results = list(ex.map(job, enumerate(srcs.keys())))
    per_case = {}
    for (key, names), res in zip(srcs.items(), results):
        for n in names:
            per_case[n] = res
    return per_case


_VM_CACHE = {}


def run_tvm_llvm(b):
    import tvm
    from tvm import relax

    info = load_node(str(b["path"]))
    try:
        mod = build_relax_module(info)
    except PlanError as e:  # TVM 0.27 has no importer (Col2Im): the plan is TPAT's lowering, built for LLVM
        assert e.code == "frontend_import_failed", e
        mod = registry.tpat_module(info, mode="cpu")[0]
    target = tvm.target.Target({"kind": "llvm"})
    if narrowing_applies(info):
        # The planner's int32 index narrowing (static shapes) is checked on LLVM too.
        with target:
            mod = tvm.transform.Sequential(
                [
                    relax.transform.LegalizeOps(),
                    relax.transform.AnnotateTIROpPattern(),
                    relax.transform.FoldConstant(),
                    relax.transform.FuseOps(),
                    relax.transform.FuseTIR(),
                    pipeline.narrow_index_pass(),
                ]
            )(mod)
    ex = tvm.compile(mod, target=target)
    vm = relax.VirtualMachine(ex, tvm.cpu())
    feeds = b["feeds"](b["syms"])
    b["_feeds"] = feeds
    args = [tvm.runtime.tensor(feeds[i["name"]]) for i in info.inputs]
    res = vm["main"](*args)
    if not hasattr(res, "numpy"):
        res = [r for r in res]
    else:
        res = [res]
    return [r.numpy() for r in res]


# ONNX Runtime's CPU provider lacks bfloat16 kernels for these: numpy (ml_dtypes) reference.
NUMPY_REFERENCE = {
    "cast_bf16": lambda f: [f["x"].astype("bfloat16")],
    "relu_bf16": lambda f: [np.maximum(f["x"].astype(np.float32), 0).astype(f["x"].dtype)],
}


def run_ort(b, name=None):
    import ml_dtypes  # noqa: F401  (registers numpy "bfloat16")
    import onnxruntime as ort

    if name in NUMPY_REFERENCE:
        return NUMPY_REFERENCE[name](b["_feeds"])

    sess = ort.InferenceSession(b["model"].SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, b["_feeds"])


# ---------------------------------------------------------------------------------------------
# Tests


def _plan(built, name):
    res = built[name]["res"]
    if name in EXPECTED_REFUSALS:
        assert not res["ok"] and res["error"]["code"] == EXPECTED_REFUSALS[name], res
        pytest.skip(f"refused as expected: {res['error']}")
    assert res["ok"], res.get("error")
    return res["plan"]


def test_case_count():
    assert len(CASES) >= 25
    ops = {fn()[0].graph.node[0].op_type for fn in CASES.values()}
    assert len(ops) >= 25, sorted(ops)


@pytest.mark.parametrize("name", list(CASES))
def test_plan_schema(built, name):
    import jsonschema

    plan = _plan(built, name)
    jsonschema.validate(plan, SCHEMA)
    # consistency: args vs kernel params, buffer/constant ids, symbols
    sigs = {k["name"]: k["params"] for k in plan["kernels"]}
    buf_ids = {b["id"] for b in plan["buffers"]}
    const_ids = {c["id"] for c in plan["constants"]}
    env = {s["name"]: built[name]["syms"].get(s["name"], 3) for s in plan["symbols"]}

    def check(steps, env):
        for st in steps:
            if st["kind"] == "loop":
                for it in range(evaluate(st["extent"], env)):
                    check(st["body"], {**env, st["var"]: evaluate(st["begin"], env) + it})
                continue
            if st["kind"] == "copy":
                continue
            params = sigs[st["kernel"]]
            assert len(params) == len(st["args"])
            for p, a in zip(params, st["args"]):
                assert (p["type"] == "ptr") == (a["kind"] != "scalar"), (p, a)
                if a["kind"] == "buffer":
                    assert a["id"] in buf_ids
                if a["kind"] == "constant":
                    assert a["id"] in const_ids
                if a["kind"] == "input":
                    assert a["index"] < len(plan["inputs"])
                if a["kind"] == "output":
                    assert a["index"] < len(plan["outputs"])
                if a["kind"] == "scalar":
                    evaluate(a["expr"], env)
            for e in st["grid"] + st["block"]:
                evaluate(e, env)
            threads = 1
            for e in st["block"]:
                threads *= max(1, evaluate(e, env))
            assert threads <= 1024
            assert evaluate(st["dynamic_shared_memory_bytes"], env) >= 0

    check(plan["steps"], env)
    ws = evaluate(plan["workspace_bytes"], env)
    for b in plan["buffers"]:
        off, nb = evaluate(b["offset"], env), evaluate(b["bytes"], env)
        assert off % plan["workspace_alignment"] == 0 and off + nb <= ws
    for k, o in enumerate(plan["outputs"]):
        decl = built[name]["model"].graph.output[k].type.tensor_type.elem_type
        assert o["dtype"] == dtypes.onnx_dtype(decl)
    for s in plan["symbols"]:
        assert plan["inputs"][s["input"]]["shape"][s["dim"]] == s["name"]


@pytest.mark.parametrize("name", list(CASES))
def test_nvcc_compiles(built, compiled, name):
    _plan(built, name)
    rc, err = compiled[name]
    assert rc == 0, err


@pytest.mark.parametrize("name", list(CASES))
def test_numerics_llvm_vs_ort(built, name):
    plan = _plan(built, name)
    b = built[name]
    got = run_tvm_llvm(b)
    want = run_ort(b, name)
    assert len(got) == len(want) == len(plan["outputs"])
    for k, (g, w) in enumerate(zip(got, want)):
        o = plan["outputs"][k]
        env = {s["name"]: b["syms"][s["name"]] for s in plan["symbols"]}
        assert list(g.shape) == [evaluate(e, env) for e in o["shape_expr"]]
        assert list(g.shape) == list(w.shape)
        assert str(g.dtype) == o["dtype"] or (o["dtype"] == "bool" and g.dtype == np.bool_)
        tol = b["tol"]
        if tol == 0 and not o["dtype"].startswith(("float", "bfloat")):
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(
                g.astype(np.float64), np.asarray(w).astype(np.float64), rtol=max(tol, 1e-6), atol=max(tol, 1e-6)
            )


# ---------------------------------------------------------------------------------------------
# Refusals


def _plan_model(tmp_path, model, name="m.onnx"):
    p = tmp_path / name
    onnx.save(model, str(p))
    return handle_plan({"command": "plan", "model_path": str(p), "target": "sm_90"})


def test_nonzero_plans_with_a_size_output_only_through_tpat(tmp_path):
    """NonZero has TPAT's lowering (a size-tensor output, test_lowering_nonzero.py); TVM's own
    lowering is a runtime builtin, so `lowering: tvm` still refuses it."""
    m = mk(h.make_node("NonZero", ["x"], ["out"]), [("x", TP.FLOAT, [4])], [("out", TP.INT64, [1, "K"])])
    r = _plan_model(tmp_path, m)
    assert r["ok"] and r["plan"]["outputs"][0]["data_dependent"] == {"dim": 1, "size_output": 1}
    p = tmp_path / "m.onnx"
    r = handle_plan({"command": "plan", "model_path": str(p), "target": "sm_90", "lowering": "tvm"})
    assert r == {"ok": False, "error": {"code": "data_dependent_shape", "reason": r["error"]["reason"]}}


def test_refuse_nonmaxsuppression_with_a_runtime_max_output(tmp_path):
    # TPAT's NMS lowering (lowerings/nms.py) needs max_output_boxes_per_class constant: it bounds
    # the output
    m = mk(
        h.make_node("NonMaxSuppression", ["b", "s", "k"], ["y"]),
        [("b", TP.FLOAT, [1, 6, 4]), ("s", TP.FLOAT, [1, 1, 6]), ("k", TP.INT64, [1])],
        [("y", TP.INT64, ["K", 3])],
    )
    r = _plan_model(tmp_path, m)
    assert not r["ok"] and r["error"]["code"] == "data_dependent_shape"
    assert "must be a constant" in r["error"]["reason"]


def test_refuse_range_value_dependent(tmp_path):
    n = h.make_node("Range", ["s", "l", "d"], ["out"])
    m = mk(n, [("s", TP.INT64, []), ("l", TP.INT64, []), ("d", TP.INT64, [])], [("out", TP.INT64, ["K"])])
    r = _plan_model(tmp_path, m)
    assert not r["ok"] and r["error"]["code"] == "data_dependent_shape"


def test_identity_has_no_kernel(tmp_path):
    m = mk(h.make_node("Identity", ["x"], ["out"]), [("x", TP.FLOAT, ["N"])], [("out", TP.FLOAT, ["N"])])
    r = _plan_model(tmp_path, m)
    assert not r["ok"] and r["error"]["code"] == "no_kernel"


def test_malformed_model(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07this is not a protobuf\xff\xff\xff")
    r = handle_plan({"command": "plan", "model_path": str(p), "target": "sm_90"})
    assert not r["ok"] and set(r["error"]) == {"code", "reason"}
    assert r["error"]["code"] in ("model_load_failed", "invalid_model")


def test_invalid_graph(tmp_path):
    # node refers to an input that does not exist
    m = mk(h.make_node("Relu", ["nope"], ["out"]), [("x", TP.FLOAT, [4])], [("out", TP.FLOAT, [4])])
    r = _plan_model(tmp_path, m)
    assert not r["ok"] and r["error"]["code"] == "invalid_model"


def test_missing_file_and_bad_target(tmp_path):
    r = handle_plan({"command": "plan", "model_path": str(tmp_path / "none.onnx")})
    assert not r["ok"] and r["error"]["code"] == "model_load_failed"
    r = handle_plan({"command": "plan", "model_path": "x.onnx", "target": "sm_70"})
    assert not r["ok"] and r["error"]["code"] == "invalid_request"


def test_two_nodes_refused(tmp_path):
    m = mk(
        [h.make_node("Relu", ["x"], ["t"]), h.make_node("Relu", ["t"], ["out"])],
        [("x", TP.FLOAT, [4])],
        [("out", TP.FLOAT, [4])],
    )
    r = _plan_model(tmp_path, m)
    assert not r["ok"] and r["error"]["code"] == "not_single_node"


def test_targets_differ(tmp_path):
    m, _, _, _ = _softmax()
    p = tmp_path / "sm.onnx"
    onnx.save(m, str(p))
    for sm in ("sm_80", "sm_86", "sm_89"):
        r = handle_plan({"command": "plan", "model_path": str(p), "target": sm})
        assert r["ok"], r
        assert r["plan"]["target"]["sm"] == sm and r["plan"]["target"]["tvm_target"]["arch"] == sm


def test_cumsum_has_host_loop(built):
    # TVM's own CumSum lowering loops on the host (TPAT's lowering is one kernel: lowering "tvm")
    res = handle_plan(
        {"command": "plan", "model_path": str(built["cumsum_sym"]["path"]), "target": "sm_90", "lowering": "tvm"}
    )
    assert res["ok"], res
    plan = res["plan"]
    kinds = [s["kind"] for s in plan["steps"]]
    assert "loop" in kinds
    assert plan["buffers"], "cumsum needs a scratch buffer"


def test_onehot_fixup(built):
    # TVM's OneHot lowering produces float64 (TPAT's own lowering does not: lowering "tvm" here)
    res = handle_plan(
        {"command": "plan", "model_path": str(built["onehot"]["path"]), "target": "sm_90", "lowering": "tvm"}
    )
    assert res["ok"], res
    plan = res["plan"]
    assert plan["outputs"][0]["dtype"] == "float32"
    assert any("float64" in f for f in plan["fixups"])


def _kernel_bodies(src):
    """The text of every __global__ function of a CUDA source."""
    out = []
    for part in src.split("__global__ void")[1:]:
        start, semi = part.find("{"), part.find(";")
        if start < 0 or 0 <= semi < start:
            continue  # a declaration
        depth = 0
        for i in range(start, len(part)):
            depth += {"{": 1, "}": -1}.get(part[i], 0)
            if depth == 0:
                out.append(part[: i + 1])
                break
    return out


def test_static_shapes_index_in_int32(built):
    # narrow_index_pass: a static Resize indexes in int32 (64-bit division is emulated on GPUs).
    plan = _plan(built, "resize_cubic")
    bodies = _kernel_bodies(plan["cuda_source"])
    assert bodies
    for body in bodies:
        assert "int64_t" not in body.split("{", 1)[1], body[:400]


def test_symbolic_shapes_keep_int64(built):
    plan = _plan(built, "gatherelements_sym")
    assert any("int64_t" in b for b in _kernel_bodies(plan["cuda_source"]))


def test_narrowing_applies_only_to_static_small_shapes():
    class I:
        def __init__(self, ins, outs):
            self.inputs, self.outputs = ins, outs

    assert narrowing_applies(I([{"shape": [2, 3]}], [{"shape": [6]}]))
    assert not narrowing_applies(I([{"shape": ["N", 3]}], [{"shape": [6]}]))
    assert not narrowing_applies(I([{"shape": [2**16, 2**16]}], [{"shape": [1]}]))

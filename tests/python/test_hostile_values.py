"""Issue 11, item 4 (Python side): bad values in a model never crash the bridge.

A seeded property test: every model of the lowering tests (test_lowering_*.py `CASES` and
`NOT_LOWERED`) is mutated with hostile attribute values, constant values and dims (+-inf, nan,
2**63-1, -2**63, 0, negative, huge sizes, axes out of range, empty tensors, wrong dtypes) and then

- loaded as the planner loads a node (`load_node`, whose refusals are answers) and offered to every
  registered lowering whose `ops` has its op (`registry.offer`: `select`, a `BadValue` it raises
  declined): a `Selection` or a `Decline` with a reason, never another exception, within a time
  and memory bound;
- given to the reference-data generator (`tools/reference.py`) in a child process with a 4 GiB
  address-space limit: it answers reference data or a `BridgeError` with a known code, never
  another exception, a hang or an allocation past the limit.

`make test` runs a short seeded subset (TPAT_FUZZ_ITERATIONS unset: 3 mutations per model);
`make fuzz` runs TPAT_FUZZ_ITERATIONS mutations per model.
"""

from __future__ import annotations

import copy
import importlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(HERE))

ITERATIONS = int(os.environ.get("TPAT_FUZZ_ITERATIONS") or 0)
PER_MODEL = max(3, ITERATIONS // 100) if ITERATIONS else 3
SEED = int(os.environ.get("TPAT_FUZZ_SEED") or 11)

LOWERING_TESTS = [
    "cumsum",
    "dft",
    "stft",
    "gather",
    "gelu",
    "gridsample",
    "indexing",
    "layernorm",
    "resize",
    "rmsnorm",
    "topk",
    "nonzero",
    "onehot",
    "compress",
    "unique",
    "reduce",
    "attention",
    "col2im",
    "centercroppad",
    "losses",
    "roialign",
    "nms",
]

# The reference generator's documented codes (docs/reference-data.md).
REFERENCE_CODES = {"input", "model", "too_large", "reference"}

BIG = 2**63 - 1
HOSTILE_INTS = [0, -1, 1, 2, -2, 7, 1 << 20, 1 << 31, 1 << 40, BIG, -(2**63), -(1 << 40), 64, -64]
HOSTILE_FLOATS = [
    float("inf"),
    float("-inf"),
    float("nan"),
    0.0,
    -0.0,
    1e30,
    -1e30,
    1e-45,
    5e-324,
    2.0**63,
    -(2.0**63),
    1e308,
]
HOSTILE_STRINGS = ["", "nonsense", "linear\n", "x" * 300, "\u00e9", "cubic", "tanh", "none"]
HOSTILE_DIMS = [0, -1, -(2**63), BIG, 1 << 31, 1 << 40, 1]


def _mk(node, inputs, outputs, inits=(), opset=18):
    g = h.make_graph([node], "g", inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def _vi(name, shape, t=TP.FLOAT):
    return h.make_tensor_value_info(name, t, shape)


def _const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def extra_models() -> dict:
    """Base models for the lowerings whose tests declare no CASES (scatter, Gather, GatherElements)."""
    idx = np.array([[1], [3]], np.int64)
    return {
        "scatter_nd/const": _mk(
            h.make_node("ScatterND", ["x", "q", "u"], ["y"], reduction="add"),
            [_vi("x", [4, 5]), _vi("u", [2, 5])],
            [_vi("y", [4, 5])],
            [_const("q", idx)],
        ),
        "scatter_nd/param": _mk(
            h.make_node("ScatterND", ["x", "q", "u"], ["y"]),
            [_vi("x", ["s0", 5]), _vi("q", [2, 1], TP.INT64), _vi("u", [2, 5])],
            [_vi("y", ["s0", 5])],
        ),
        "scatter_elements/const": _mk(
            h.make_node("ScatterElements", ["x", "q", "u"], ["y"], axis=1, reduction="max"),
            [_vi("x", [3, 4]), _vi("u", [2, 2])],
            [_vi("y", [3, 4])],
            [_const("q", np.array([[0, 1], [2, 3]], np.int64))],
        ),
        "gather/const": _mk(
            h.make_node("Gather", ["x", "q"], ["y"], axis=1),
            [_vi("x", [3, 6])],
            [_vi("y", [3, 2])],
            [_const("q", np.array([0, 5], np.int64))],
        ),
        "gather/param": _mk(
            h.make_node("Gather", ["x", "q"], ["y"], axis=0),
            [_vi("x", [6, 3]), _vi("q", ["s0"], TP.INT32)],
            [_vi("y", ["s0", 3])],
        ),
        "gather_elements/const": _mk(
            h.make_node("GatherElements", ["x", "q"], ["y"], axis=-1),
            [_vi("x", [3, 4])],
            [_vi("y", [3, 2])],
            [_const("q", np.array([[0, 3], [1, 1], [2, 0]], np.int64))],
        ),
    }


def base_models() -> dict:
    """name -> ONNX model: every case of the lowering tests, and extra_models()."""
    models = dict(extra_models())
    for mod_name in LOWERING_TESTS:
        mod = importlib.import_module(f"test_lowering_{mod_name}")
        for name, case in getattr(mod, "CASES", {}).items():
            models[f"{mod_name}/{name}"] = case[0]
        for name, model in getattr(mod, "NOT_LOWERED", {}).items():
            models[f"{mod_name}/{name}"] = model
    return models


def _hostile_array(rng: random.Random, arr: np.ndarray) -> np.ndarray:
    """A hostile replacement for a constant input."""
    pick = rng.randrange(6)
    if pick == 0:  # empty
        return np.zeros((0,), dtype=arr.dtype)
    if pick == 1:  # wrong dtype
        dt = rng.choice([np.float32, np.float64, np.int32, np.int64, np.bool_, np.uint8])
        return (np.asarray(arr, dtype=np.float64) if arr.size else np.ones(3)).astype(dt)
    if pick == 2:  # wrong rank / shape
        return np.ones(rng.choice([(), (1,), (7,), (2, 3), (1, 1, 1, 1, 1)]), dtype=arr.dtype)
    vals = HOSTILE_FLOATS if arr.dtype.kind == "f" else HOSTILE_INTS
    shape = arr.shape if arr.size else (1,)
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(shape):
        out[ix] = rng.choice(vals)
    if arr.dtype.kind == "f":
        return out.astype(arr.dtype if arr.dtype.kind == "f" else np.float32)
    info = np.iinfo(arr.dtype) if arr.dtype.kind in "iu" else np.iinfo(np.int64)
    clipped = np.array([min(max(int(v), info.min), info.max) for v in out.ravel()], dtype=object)
    return clipped.astype(arr.dtype if arr.dtype.kind in "iu" else np.int64).reshape(shape)


def _mutate_attribute(rng: random.Random, node) -> str:
    if not node.attribute:
        kind = rng.choice(["axis", "k", "depth", "epsilon", "batch_dims", "mode"])
        node.attribute.append(h.make_attribute(kind, rng.choice(HOSTILE_INTS) if kind != "mode" else "x"))
        return f"added attribute {kind}"
    a = rng.choice(list(node.attribute))
    name = a.name
    new = None
    if a.type == onnx.AttributeProto.INT:
        new = h.make_attribute(name, rng.choice(HOSTILE_INTS))
    elif a.type == onnx.AttributeProto.FLOAT:
        new = h.make_attribute(name, rng.choice(HOSTILE_FLOATS))
    elif a.type == onnx.AttributeProto.INTS:
        new = h.make_attribute(
            name, [rng.choice(HOSTILE_INTS) for _ in range(rng.randrange(0, 6))], attr_type=onnx.AttributeProto.INTS
        )
    elif a.type == onnx.AttributeProto.FLOATS:
        new = h.make_attribute(
            name, [rng.choice(HOSTILE_FLOATS) for _ in range(rng.randrange(0, 6))], attr_type=onnx.AttributeProto.FLOATS
        )
    elif a.type == onnx.AttributeProto.STRING:
        new = h.make_attribute(name, rng.choice(HOSTILE_STRINGS))
    if new is None:
        return "no mutable attribute"
    if rng.random() < 0.2:  # the wrong type for the name
        new = h.make_attribute(name, rng.choice([rng.choice(HOSTILE_FLOATS), "s", [1, 2], rng.choice(HOSTILE_INTS)]))
    node.attribute.remove(a)
    node.attribute.append(new)
    return f"attribute {name} -> {h.get_attribute_value(new)!r}"


def mutate(rng: random.Random, model) -> tuple:
    """(mutated copy, what was done); one to three mutations."""
    m = copy.deepcopy(model)
    g = m.graph
    node = g.node[0]
    done = []
    for _ in range(rng.randrange(1, 4)):
        what = rng.randrange(4)
        if what == 0 or (what == 1 and not g.initializer):
            done.append(_mutate_attribute(rng, node))
        elif what == 1:
            t = rng.choice(list(g.initializer))
            arr = _hostile_array(rng, numpy_helper.to_array(t))
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
            done.append(f"constant {t.name} -> {arr.dtype}{list(arr.shape)} {arr.ravel()[:4].tolist()}")
        else:
            vis = [vi for vi in list(g.input) + list(g.output) if vi.type.tensor_type.shape.dim]
            if not vis:
                continue
            vi = rng.choice(vis)
            dims = vi.type.tensor_type.shape.dim
            d = dims[rng.randrange(len(dims))]
            d.Clear()
            d.dim_value = rng.choice(HOSTILE_DIMS)
            done.append(f"dim of {vi.name} -> {d.dim_value}")
    return m, "; ".join(done)


def _node_info(model):
    """NodeInfo as the planner's load_node makes it, without the ONNX checker (so that values the
    checker would refuse still reach the lowerings)."""
    from tpat_bridge.planning.load import load_node

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tpat_hostile_{os.getpid()}.onnx"
    onnx.save(model, str(path))
    try:
        import onnx.checker as chk

        real = chk.check_model
        chk.check_model = lambda *_a, **_k: None
        try:
            return load_node(str(path))
        finally:
            chk.check_model = real
    finally:
        path.unlink(missing_ok=True)


def _cases():
    rng = random.Random(SEED)
    out = []
    for name, model in sorted(base_models().items()):
        for k in range(PER_MODEL):
            out.append((f"{name}#{k}", model, rng.randrange(1 << 30)))
    return out


CASES = _cases()


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_base_models_reach_every_lowering():
    """The fuzz covers every registered lowering: some base model is offered to each."""
    from tpat_bridge.lowerings import registry

    reached = set()
    for model in base_models().values():
        reached.update(low.name for low in registry.candidates(_node_info(model)))
    # GELU, GATHER, GATHER_ELEMENTS have their CASES in test_lowering_gelu/indexing
    assert reached == {low.name for low in registry.LOWERINGS}, sorted(
        {low.name for low in registry.LOWERINGS} - reached
    )


@pytest.mark.parametrize("name,model,seed", CASES, ids=[c[0] for c in CASES])
def test_select_answers_selection_or_decline(name, model, seed):
    from tpat_bridge.errors import PlanError
    from tpat_bridge.lowerings import registry
    from tpat_bridge.lowerings.protocol import Decline, NodeView, Selection, node_operands

    rng = random.Random(seed)
    bad, what = mutate(rng, model)
    try:
        info = _node_info(bad)
    except PlanError as e:  # load_node's own refusals are answers too
        assert e.code and e.reason
        return
    lows = registry.candidates(info)
    if not lows:
        return
    before = _maxrss_mb()
    start = time.monotonic()
    ops = node_operands(info)
    if ops is None:
        return
    view = NodeView(node=info.model.graph.node[0], operands=ops, info=info)
    for low in lows:
        try:
            sel = registry.offer(low, view)  # select, with BadValue declined (the planner's path)
        except Exception as e:  # noqa: BLE001
            pytest.fail(f"{low.name}.select raised {type(e).__name__}: {e} on {name} ({what})")
        assert isinstance(sel, (Selection, Decline)), (low.name, what, sel)
        if isinstance(sel, Decline):
            assert isinstance(sel.reason, str) and sel.reason.strip(), (low.name, what)
        else:
            assert sel.describe()
    # choose() never raises either (it also answers for arity and operand problems)
    choice = registry.choose(info)
    assert choice.lowering is not None or choice.declined or choice.reason
    assert time.monotonic() - start < 5, f"select took {time.monotonic() - start:.1f}s on {what}"
    assert _maxrss_mb() - before < 256, f"select grew the process by {_maxrss_mb() - before:.0f} MB on {what}"


# ---------------------------------------------------------------- reference data, in a child


CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
sys.path.insert(0, sys.argv[1])
from tpat_bridge.errors import BridgeError
from tpat_bridge.tools import reference
answers = []
for path in sys.argv[3:]:
    open(sys.argv[2] + ".at", "w").write(path)
    try:
        r = reference.make_reference({"command": "reference", "model_path": path,
                                      "out_dir": path + ".ref", "plugin": "P"})
        answers.append({"ok": True})
    except BridgeError as e:
        answers.append({"ok": False, "code": e.code, "reason": e.reason[:300]})
    except BaseException as e:
        answers.append({"ok": False, "exception": type(e).__name__, "reason": str(e)[:300]})
json.dump(answers, open(sys.argv[2], "w"))
"""


def _canonical(model):
    """The model in the reference generator's canonical names (in<i>, const<i>, out<i>)."""
    m = copy.deepcopy(model)
    g = m.graph
    ren = {}
    inits = {t.name for t in g.initializer}
    k = 0
    for vi in g.input:
        if vi.name not in inits:
            ren[vi.name] = f"in{k}"
            k += 1
    for i, t in enumerate(g.initializer):
        ren[t.name] = f"const{i}"
    for i, vi in enumerate(g.output):
        ren[vi.name] = f"out{i}"
    for vi in list(g.input) + list(g.output):
        vi.name = ren.get(vi.name, vi.name)
    for t in g.initializer:
        t.name = ren[t.name]
    node = g.node[0]
    for j, nm in enumerate(node.input):
        node.input[j] = ren.get(nm, nm)
    for j, nm in enumerate(node.output):
        node.output[j] = ren.get(nm, nm)
    return m


def test_reference_answers_data_or_known_code(tmp_path):
    rng = random.Random(SEED + 1)
    paths, whats = [], []
    models = sorted(base_models().items())
    for name, model in models:
        for k in range(PER_MODEL):
            bad, what = mutate(rng, _canonical(model))
            p = tmp_path / f"m{len(paths)}.onnx"
            onnx.save(bad, str(p))
            paths.append(str(p))
            whats.append(f"{name}#{k}: {what}")
    out = tmp_path / "answers.json"
    timeout = 60 + 3 * len(paths)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "python"), str(out), *paths],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        at = Path(str(out) + ".at").read_text() if Path(str(out) + ".at").exists() else ""
        what = whats[paths.index(at)] if at in paths else "?"
        pytest.fail(f"the reference child died ({r.returncode}) on {what}: {r.stderr[-1500:]}")
    answers = json.loads(out.read_text())
    assert len(answers) == len(paths)
    bad = [(w, a) for w, a in zip(whats, answers) if not a["ok"] and a.get("code") not in REFERENCE_CODES]
    assert not bad, "\n".join(f"{w}: {a}" for w, a in bad[:20])
    # the corpus is not all refusals: the mutations leave some models the generator can run
    assert any(a["ok"] for a in answers), answers[:5]


# ---------------------------------------------------------------- through the CLI


TPAT = Path(os.environ.get("TPAT_BIN") or ROOT / ".build" / "debug" / "tpat")


def _cli_model():
    """Three nodes TPAT converts: a good BitwiseAnd, a CumSum whose axis constant is empty and a
    TopK whose K is 2^63-1 (the values that crashed ONNX Runtime and TVM's inputs before)."""
    nodes = [
        h.make_node("BitwiseAnd", ["a", "b"], ["y"], name="good"),
        h.make_node("CumSum", ["x", "empty_axis"], ["c"], name="bad_cumsum"),
        h.make_node("TopK", ["x", "huge_k"], ["v", "i"], name="bad_topk"),
    ]
    g = h.make_graph(
        nodes,
        "g",
        [_vi("a", [4], TP.INT32), _vi("b", [4], TP.INT32), _vi("x", [2, 8])],
        [_vi("y", [4], TP.INT32), _vi("c", [2, 8]), _vi("v", [2, 8]), _vi("i", [2, 8], TP.INT64)],
        initializer=[_const("empty_axis", np.zeros((0,), np.int64)), _const("huge_k", np.array([2**63 - 1], np.int64))],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 9
    return m


def test_generate_reports_the_bad_nodes_and_converts_the_others(tmp_path):
    if not TPAT.exists():
        pytest.fail(f"{TPAT} is missing: run `swift build` (make test builds it)")
    model = tmp_path / "model" / "m.onnx"
    model.parent.mkdir()
    onnx.save(_cli_model(), str(model))
    out = tmp_path / "out"
    env = dict(os.environ, TPAT_HOME=str(ROOT), TPAT_CACHE_DIR=str(tmp_path / "cache"), TPAT_CROSS_CHECK="0")
    r = subprocess.run(
        [str(TPAT), "generate", str(model), "--nodes", "good,bad_cumsum,bad_topk", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 3, r.stdout + r.stderr  # partial
    report = json.loads((out / "tpat-generate.json").read_text())
    assert report["outcome"] == "partial"
    assert [p["nodes"] for p in report["plugins"]] == [["good"]], report["plugins"]
    failures = {f["node"]: f for f in report["failures"]}
    assert set(failures) == {"bad_cumsum", "bad_topk"}, report["failures"]
    for f in failures.values():
        assert f["code"] == "invalid_value", f  # planning/values.py, before TVM or ONNX Runtime see them
        assert "\n" not in f["reason"]
    assert "Traceback" not in r.stdout + r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "model", "out"]


# ---------------------------------------------------------------- the planner, in a child

PLAN_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from tpat_bridge.planning import plan
answers = []
for path in sys.argv[3:]:
    open(sys.argv[2] + ".at", "w").write(path)
    try:
        r = plan.handle_plan({"model_path": path, "target": "sm_90"})
        answers.append({"ok": True} if r["ok"] else {"ok": False, **r["error"]})
    except BaseException as e:
        answers.append({"ok": False, "exception": type(e).__name__, "reason": str(e)[:300]})
    json.dump(answers, open(sys.argv[2], "w"))
"""

# The planner's documented codes (docs/kernel-plan.md, docs/generate-report.md).
PLAN_CODES = {
    "invalid_request",
    "model_load_failed",
    "invalid_model",
    "not_single_node",
    "data_dependent_shape",
    "frontend_import_failed",
    "frontend_shape_bug",
    "frontend_type_bug",
    "unsupported_lowering",
    "no_kernel",
    "unsupported_dtype",
    "tvm_error",
    "unsupported_attribute",
    "zero_size_tensor",
    "unchecked_indices",
    "unsupported_model",
    "invalid_value",
}
PLAN_MUTANTS = max(4, ITERATIONS // 200) if ITERATIONS else 4


def test_planner_answers_a_plan_or_a_known_code(tmp_path):
    """Hostile mutants through the whole planner (TVM included): a plan or a documented code, no
    crash of the process, no hang (TVM's own failures are `tvm_error`, a per-node failure)."""
    rng = random.Random(SEED + 2)
    models = sorted(base_models().items())
    paths, whats = [], []
    for k in range(PLAN_MUTANTS):
        name, model = models[rng.randrange(len(models))]
        bad, what = mutate(rng, model)
        p = tmp_path / f"p{k}.onnx"
        onnx.save(bad, str(p))
        paths.append(str(p))
        whats.append(f"{name}: {what}")
    out = tmp_path / "answers.json"
    r = subprocess.run(
        [sys.executable, "-c", PLAN_CHILD, str(ROOT / "python"), str(out), *paths],
        capture_output=True,
        text=True,
        timeout=120 + 30 * len(paths),
    )
    if r.returncode != 0:
        at = Path(str(out) + ".at").read_text() if Path(str(out) + ".at").exists() else ""
        pytest.fail(
            f"the planner child died ({r.returncode}) on {whats[paths.index(at)] if at in paths else '?'}: "
            f"{r.stderr[-1500:]}"
        )
    answers = json.loads(out.read_text())
    assert len(answers) == len(paths)
    bad = [(w, a) for w, a in zip(whats, answers) if not a["ok"] and a.get("code") not in PLAN_CODES]
    assert not bad, "\n".join(f"{w}: {a}" for w, a in bad)


def test_stft_values_that_crash_onnx_runtime_are_refused():
    """ONNX Runtime divides by STFT's frame_step and frame length: a 0 there, or an empty window,
    kills the process (SIGFPE), so `bad_value` refuses them before it runs (found by the seeded
    reference test above: an empty constant window)."""
    from tpat_bridge.planning.values import bad_value

    sig = [1, 64, 1]
    ok = bad_value("STFT", {}, [sig, [], [16], []], {1: np.array(8), 2: np.ones(16, np.float32), 3: np.array(16)})
    assert ok is None
    assert "frame_step=0" in bad_value("STFT", {}, [sig, [], None, None], {1: np.array(0)})
    assert "frame_length=-3" in bad_value("STFT", {}, [sig, [], None, []], {1: np.array(4), 3: np.array(-3)})
    assert "window is empty" in bad_value(
        "STFT", {}, [sig, [], [0], None], {1: np.array(4), 2: np.zeros(0, np.float32)}
    )
    assert "window is empty" in bad_value("STFT", {}, [sig, [], [0], None], {1: np.array(4)})


def test_reduce_segments_with_an_empty_outer_extent():
    """A 0 dim leaves no block to launch: the segment choice answers instead of dividing by zero
    (found by the seeded select test: reduce/mean_symbolic with a dim of 0)."""
    from tpat_bridge.lowerings import reduce

    assert reduce._segments(1024, 4, 8, lambda s: 0, 396) >= 1
    assert reduce._segments(1024, 4, 8, lambda s: 396 * s, 396) == 1


def test_roialign_sampling_ratio_past_32_bit_counts_is_refused():
    """ONNX Runtime aborted (SIGABRT, a vector index assertion) on RoiAlign with sampling_ratio 2^40 in
    the seeded reference test: its sample table is int-indexed. ratio^2 x out_h x out_w >= 2^31,
    a negative ratio and sizes < 1 are refused before it runs; the ratios ONNX models use pass."""
    from tpat_bridge.planning.values import bad_value

    x, rois, idx = [1, 3, 32, 32], [4, 4], [4]
    ok = {"output_height": 7, "output_width": 7, "sampling_ratio": 2}
    assert bad_value("RoiAlign", ok, [x, rois, idx], {}) is None
    assert bad_value("RoiAlign", {}, [x, rois, idx], {}) is None
    assert "past 2^31" in bad_value("RoiAlign", {"sampling_ratio": 2**40, "output_width": 64}, [x, rois, idx], {})
    assert "past 2^31" in bad_value(
        "RoiAlign", {"sampling_ratio": 8192, "output_height": 32, "output_width": 32}, [x, rois, idx], {}
    )
    assert "sampling_ratio=-1" in bad_value("RoiAlign", {"sampling_ratio": -1}, [x, rois, idx], {})
    assert "output_width=0" in bad_value("RoiAlign", {"output_width": 0}, [x, rois, idx], {})


def test_col2im_pads_past_32_bits_and_block_counts_are_refused():
    """ONNX Runtime looped without end on a Col2Im with pads [2^63 - 1, 2^20, 2^40, -64] (found by
    the seeded reference test after new lowering cases moved its picks). bad_value refuses
    negative or >= 2^31 pads, strides and dilations < 1, and (constant shapes) a block that does not
    fit or an input whose last dim is not the number of blocks."""
    from tpat_bridge.planning.values import bad_value

    img, block = np.array([13, 10]), np.array([3, 2])
    consts = {1: img, 2: block}
    ok = {"dilations": [3, 2], "strides": [2, 2], "pads": [0, 1, 1, 0]}
    # (13 + 1 - 6 - 1) // 2 + 1 = 4 and (10 + 1 - 2 - 1) // 2 + 1 = 5: 20 blocks
    assert bad_value("Col2Im", ok, [[1, 12, 20], [2], [2]], consts) is None
    assert bad_value("Col2Im", {}, [[1, 6, 99], [2], [2]], consts) is None  # defaults: 11 x 9 blocks
    hostile = dict(ok, pads=[2**63 - 1, 2**20, 2**40, -64])
    assert "pads=" in bad_value("Col2Im", hostile, [[1, 12, 20], [2], [2]], consts)
    assert "pads=" in bad_value("Col2Im", dict(ok, pads=[0, 0, -1, 0]), [[1, 12, 20], [2], [2]], consts)
    assert "strides=" in bad_value("Col2Im", dict(ok, strides=[0, 2]), [[1, 12, 20], [2], [2]], consts)
    assert "20 columns" in bad_value("Col2Im", dict(ok, strides=[1, 1]), [[1, 12, 20], [2], [2]], consts)
    assert "does not fit" in bad_value("Col2Im", ok, [[1, 12, 20], [2], [2]], {1: np.array([2, 10]), 2: block})
    # symbolic input length and non-constant shapes: only the attributes are checked
    assert bad_value("Col2Im", ok, [[1, 12, "L"], [2], [2]], consts) is None
    assert bad_value("Col2Im", ok, [[1, 12, 20], [2], [2]], {}) is None

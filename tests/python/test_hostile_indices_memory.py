"""Issue 11, items 7 and 8 (Python side): reference data is sized before ONNX Runtime runs, and no
index op tactic TPAT plans writes out of bounds on out-of-range indices.

- reference.py: OneHot with depth 2^28 (4.4 GB in ONNX Runtime before) and Expand to 2^30
  elements fail with code `too_large` before any allocation; small ones still work.
- planner: TVM's default ScatterND/ScatterElements lowering (no bounds check) is never planned.
- TPAT's own ScatterND/ScatterElements lowerings skip out-of-range indices (negative ones wrap);
  its GatherND lowering clamps them. Checked on the same TIR built for LLVM (CPU).
"""

from __future__ import annotations

import resource
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
sys.path.insert(0, str(ROOT / "python"))

from tpat_bridge.errors import BridgeError  # noqa: E402
from tpat_bridge.tools import reference  # noqa: E402


def _canonical(node, inputs, outputs, inits=(), opset=18):
    g = h.make_graph([node], "g", inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 9
    return m


def _maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference(tmp_path, model, name="P"):
    path = tmp_path / "node.onnx"
    onnx.save(model, str(path))
    return reference.make_reference(
        {"command": "reference", "model_path": str(path), "out_dir": str(tmp_path / "ref"), "plugin": name}
    )


def _onehot(depth, n="s0"):
    node = h.make_node("OneHot", ["in0", "const0", "const1"], ["out0"], axis=-1)
    return _canonical(
        node,
        [h.make_tensor_value_info("in0", TP.INT64, [n])],
        [h.make_tensor_value_info("out0", TP.FLOAT, [n, depth])],
        [
            numpy_helper.from_array(np.array([depth], np.int64), "const0"),
            numpy_helper.from_array(np.array([0, 1], np.float32), "const1"),
        ],
        opset=13,
    )


@pytest.mark.parametrize("n", ["s0", 4])
def test_onehot_huge_depth_is_refused_before_onnxruntime(tmp_path, n):
    before, start = _maxrss_mb(), time.time()
    with pytest.raises(BridgeError) as e:
        _reference(tmp_path, _onehot(1 << 28, n))
    assert e.value.code == "too_large", e.value.reason
    assert "too_large" in e.value.reason and "out0" in e.value.reason
    assert time.time() - start < 30
    assert _maxrss_mb() - before < 300, "ONNX Runtime allocated the huge output"


def test_expand_to_a_billion_elements_is_refused(tmp_path):
    node = h.make_node("Expand", ["in0", "const0"], ["out0"])
    m = _canonical(
        node,
        [h.make_tensor_value_info("in0", TP.FLOAT, [1, 1])],
        [h.make_tensor_value_info("out0", TP.FLOAT, None)],
        [numpy_helper.from_array(np.array([1 << 15, 1 << 15], np.int64), "const0")],
    )
    before = _maxrss_mb()
    with pytest.raises(BridgeError) as e:
        _reference(tmp_path, m)
    assert e.value.code == "too_large", e.value.reason
    assert _maxrss_mb() - before < 300


def test_small_onehot_still_gets_reference_data(tmp_path):
    r = _reference(tmp_path, _onehot(5))
    assert r["cases"] >= 1
    assert (tmp_path / "ref" / "case0" / "out0.bin").stat().st_size > 0


# --------------------------------------------------------------------------------------------
# index ops

tvm = pytest.importorskip("tvm")

from tpat_bridge.lowerings import registry  # noqa: E402
from tpat_bridge.planning.load import load_node  # noqa: E402
from tpat_bridge.planning.plan import handle_plan  # noqa: E402


def _scatter_model(op, red="none", idx_shape=("M", 1), axis=None):
    kw = {} if red == "none" else {"reduction": red}
    if axis is not None:
        kw["axis"] = axis
    n = h.make_node(op, ["data", "idx", "upd"], ["out"], **kw)
    if op == "ScatterND":
        ushape = list(idx_shape[:-1]) + [4]
    else:
        ushape = list(idx_shape)
    return _canonical(
        n,
        [
            h.make_tensor_value_info("data", TP.FLOAT, ["N", 4]),
            h.make_tensor_value_info("idx", TP.INT64, list(idx_shape)),
            h.make_tensor_value_info("upd", TP.FLOAT, ushape),
        ],
        [h.make_tensor_value_info("out", TP.FLOAT, ["N", 4])],
    )


def _run_cpu(tmp_path, model, feeds):
    from tvm import relax

    path = tmp_path / "node.onnx"
    onnx.save(model, str(path))
    info = load_node(str(path))
    mod, _ = registry.tpat_module(info, mode="cpu")
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(feeds[i["name"]]) for i in info.inputs]).numpy()


@pytest.mark.parametrize("red", ["none", "add"])
def test_tpat_scatternd_skips_out_of_range_indices(tmp_path, red):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((6, 4)).astype(np.float32)
    idx = np.array([[10], [-1], [-7], [2], [6], [-(2**62)]], np.int64)
    upd = rng.standard_normal((6, 4)).astype(np.float32)
    got = _run_cpu(tmp_path, _scatter_model("ScatterND", red), {"data": data, "idx": idx, "upd": upd})
    want = data.copy()
    for row, u in ((5, upd[1]), (2, upd[3])):  # -1 wraps to 5; 10, -7, 6 and -2^62 are skipped
        want[row] = u if red == "none" else want[row] + u
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_tpat_scatter_elements_skips_out_of_range_indices(tmp_path):
    data = np.zeros((3, 4), np.float32)
    idx = np.array([[0, 4], [-1, -5], [9, 2]], np.int64)
    upd = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    m = _scatter_model("ScatterElements", idx_shape=(3, 2), axis=1)
    got = _run_cpu(tmp_path, m, {"data": data, "idx": idx, "upd": upd})
    want = np.zeros((3, 4), np.float32)
    want[0, 0], want[1, 3], want[2, 2] = 1, 3, 6  # 4, -5 and 9 are out of range: skipped
    np.testing.assert_array_equal(got, want)


def test_tpat_gathernd_clamps_out_of_range_indices(tmp_path):
    n = h.make_node("GatherND", ["x", "i"], ["out"])
    m = _canonical(
        n,
        [h.make_tensor_value_info("x", TP.FLOAT, [5, 3]), h.make_tensor_value_info("i", TP.INT64, [4, 1])],
        [h.make_tensor_value_info("out", TP.FLOAT, [4, 3])],
    )
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    i = np.array([[7], [-1], [-9], [2]], np.int64)
    got = _run_cpu(tmp_path, m, {"x": x, "i": i})
    np.testing.assert_array_equal(got, x[[4, 4, 0, 2]])


@pytest.mark.parametrize(
    "op,lowering,idx_shape",
    [
        ("ScatterND", "tvm", ("M", 1)),
        ("ScatterElements", "tvm", ("M", 4)),
        ("ScatterND", "tpat", ("M", "K")),  # TPAT's lowering needs a static last index dim
    ],
)
def test_tvm_default_scatter_is_never_planned(tmp_path, op, lowering, idx_shape):
    m = _scatter_model(op, idx_shape=idx_shape, axis=1 if op == "ScatterElements" else None)
    path = tmp_path / "node.onnx"
    onnx.save(m, str(path))
    r = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90", "lowering": lowering})
    assert not r["ok"] and r["error"]["code"] == "unchecked_indices", r
    assert "out of bounds" in r["error"]["reason"]


def test_tvm_default_gathernd_is_never_planned(tmp_path):
    n = h.make_node("GatherND", ["x", "i"], ["out"])
    m = _canonical(
        n,
        [h.make_tensor_value_info("x", TP.FLOAT, [5, 3]), h.make_tensor_value_info("i", TP.INT64, [4, 1])],
        [h.make_tensor_value_info("out", TP.FLOAT, [4, 3])],
    )
    path = tmp_path / "node.onnx"
    onnx.save(m, str(path))
    r = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90", "lowering": "tvm"})
    assert not r["ok"] and r["error"]["code"] == "unchecked_indices", r
    assert "reads out of bounds" in r["error"]["reason"]
    ok = handle_plan({"command": "plan", "model_path": str(path), "target": "sm_90"})
    assert ok["ok"] and ok["plan"]["lowering"] == "gather_nd", ok


@pytest.mark.parametrize("axis,qshape", [(0, [4]), (1, [2, 3]), (1, [])])
def test_tpat_gather_clamps_out_of_range_indices(tmp_path, axis, qshape):
    n = h.make_node("Gather", ["x", "i"], ["out"], axis=axis)
    oshape = [5, 3][:axis] + qshape + [5, 3][axis + 1 :]
    m = _canonical(
        n,
        [h.make_tensor_value_info("x", TP.FLOAT, [5, 3]), h.make_tensor_value_info("i", TP.INT64, qshape)],
        [h.make_tensor_value_info("out", TP.FLOAT, oshape)],
    )
    x = np.arange(15, dtype=np.float32).reshape(5, 3)
    dim = x.shape[axis]
    i = np.array([7, -1, -9, 2, 2**40, -(2**62)][: int(np.prod(qshape))], np.int64).reshape(qshape)
    got = _run_cpu(tmp_path, m, {"x": x, "i": i})
    w = np.clip(np.where(i < 0, i + dim, i), 0, dim - 1)
    np.testing.assert_array_equal(got, np.take(x, w, axis=axis))
    r = handle_plan({"command": "plan", "model_path": str(tmp_path / "node.onnx"), "target": "sm_90"})
    assert r["ok"] and r["plan"]["lowering"] in ("gather", "gather_elements"), r


def test_tpat_gather_elements_clamps_out_of_range_indices(tmp_path):
    n = h.make_node("GatherElements", ["x", "i"], ["out"], axis=1)
    m = _canonical(
        n,
        [h.make_tensor_value_info("x", TP.FLOAT, ["N", 5]), h.make_tensor_value_info("i", TP.INT64, ["N", 3])],
        [h.make_tensor_value_info("out", TP.FLOAT, ["N", 3])],
    )
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    i = np.array([[5, -1, -7], [2**40, 0, -(2**62)]], np.int64)
    got = _run_cpu(tmp_path, m, {"x": x, "i": i})
    w = np.clip(np.where(i < 0, i + 5, i), 0, 4)
    np.testing.assert_array_equal(got, np.take_along_axis(x, w, axis=1))
    r = handle_plan(
        {"command": "plan", "model_path": str(tmp_path / "node.onnx"), "target": "sm_90", "lowering": "tvm"}
    )
    assert not r["ok"] and r["error"]["code"] == "unchecked_indices" and "reads" in r["error"]["reason"]
